import { isDeepStrictEqual } from 'node:util';
import type { RouteSpec } from '@kedge/manifest';

/**
 * What a device's edge hub says it loaded: the routes it compiled and runs (name → route as in the spec), or why it
 * refused them. The only source of the `RoutesApplied` condition: the agent never assumes the edge hub took a spec.
 */
export interface EdgeHubRoutesReport {
  /** The routes running now, exactly as the edge hub received them (`priority`/`timeToLiveSecs` when set). */
  readonly routes: Readonly<Record<string, RouteSpec>>;
  /** Set when the edge hub rejected the routes it was given (it keeps running the previous ones). */
  readonly error?: string;
  /** When the edge hub reported (ISO 8601). */
  readonly reportedAt: string;
}

/** Where reports come from (the workload API's route report endpoint, or the `$edgeHub` reported properties). */
export interface EdgeHubReports {
  /** The latest report of the edge hub of `namespace`, if it has reported since the agent started. */
  get(namespace: string): EdgeHubRoutesReport | undefined;
}

/** In-memory {@link EdgeHubReports}, one report per namespace (device); notifies listeners on every change. */
export class EdgeHubReportStore implements EdgeHubReports {
  readonly #reports = new Map<string, EdgeHubRoutesReport>();
  readonly #listeners = new Set<(namespace: string) => void>();

  get(namespace: string): EdgeHubRoutesReport | undefined {
    return this.#reports.get(namespace);
  }

  set(namespace: string, report: EdgeHubRoutesReport): void {
    this.#reports.set(namespace, report);
    for (const l of this.#listeners) l(namespace);
  }

  delete(namespace: string): void {
    if (this.#reports.delete(namespace)) for (const l of this.#listeners) l(namespace);
  }

  /** Calls `listener(namespace)` after every change; returns the unsubscribe function. */
  onChange(listener: (namespace: string) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }
}

/** `RoutesApplied` as one condition's status, reason and message. */
export interface RoutesCondition {
  readonly status: 'True' | 'False' | 'Unknown';
  readonly reason: string;
  readonly message: string;
}

export const RoutesReasons = {
  /** No report from the edge hub yet (not running, not started, or the agent restarted). */
  EdgeHubNotReported: 'EdgeHubNotReported',
  /** The edge hub runs other routes than the spec's (it has not picked up the change yet). */
  RoutesOutOfDate: 'RoutesOutOfDate',
  RoutesRejected: 'RoutesRejected',
  RoutesLoaded: 'RoutesLoaded',
} as const;

const normalize = (routes: Readonly<Record<string, RouteSpec>>): Record<string, RouteSpec> =>
  Object.fromEntries(
    Object.entries(routes)
      .sort(([a], [b]) => a.localeCompare(b))
      .map(([k, r]) => [k, { route: r.route.trim(), ...(r.priority !== undefined ? { priority: r.priority } : {}), ...(r.timeToLiveSecs ? { timeToLiveSecs: r.timeToLiveSecs } : {}) }]),
  );

/** `RoutesApplied` from the spec's routes and the edge hub's report: only what the edge hub said counts. */
export function routesCondition(spec: Readonly<Record<string, RouteSpec>>, report: EdgeHubRoutesReport | undefined): RoutesCondition {
  const n = Object.keys(spec).length;
  if (!report) return { status: 'Unknown', reason: RoutesReasons.EdgeHubNotReported, message: `Waiting for the edge hub to report the ${n} route(s) it loaded` };
  if (report.error !== undefined) return { status: 'False', reason: RoutesReasons.RoutesRejected, message: `The edge hub rejected the routes: ${report.error}` };
  if (!isDeepStrictEqual(normalize(spec), normalize(report.routes))) {
    return { status: 'Unknown', reason: RoutesReasons.RoutesOutOfDate, message: `The edge hub runs ${Object.keys(report.routes).length} route(s) that differ from the spec's ${n}` };
  }
  return { status: 'True', reason: RoutesReasons.RoutesLoaded, message: `The edge hub loaded the spec's ${n} route(s) at ${report.reportedAt}` };
}
