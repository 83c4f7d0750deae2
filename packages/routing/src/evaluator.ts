import { contextFor, type MessageContext, type RouteMessage } from './message.js';
import { sinkKey, type RouteSink } from './route.js';
import type { RouteSpec } from './routes-config.js';

/** A route that matched a message, with the delivery settings that apply. */
export interface MatchedRoute {
  readonly name: string;
  readonly sink: RouteSink;
  readonly priority: number;
  readonly timeToLiveSecs: number;
}

interface Entry {
  readonly match: MatchedRoute;
  readonly matchesIn: (ctx: MessageContext) => boolean;
  /** Index of the route's sink among the snapshot's distinct sinks. */
  readonly sink: number;
}

interface Snapshot {
  readonly routes: readonly RouteSpec[];
  readonly entries: readonly Entry[];
  readonly sinkCount: number;
}

function snapshot(routes: readonly RouteSpec[]): Snapshot {
  const sinks = new Map<string, number>();
  const entries = routes.map((r): Entry => {
    const key = sinkKey(r.route.sink);
    let sink = sinks.get(key);
    if (sink === undefined) {
      sink = sinks.size;
      sinks.set(key, sink);
    }
    const match = Object.freeze({ name: r.name, sink: r.route.sink, priority: r.priority, timeToLiveSecs: r.timeToLiveSecs });
    return { match, matchesIn: r.route.matchesIn, sink };
  });
  return Object.freeze({ routes: Object.freeze([...routes]), entries, sinkCount: sinks.size });
}

/**
 * Evaluates messages against an immutable snapshot of routes (edgeHub `Evaluator`). `replaceRoutes` swaps the
 * snapshot in one assignment; an evaluation in progress keeps the snapshot it started with. The message context
 * (property bags, parsed body) is built once per message and shared by all routes.
 */
export class Evaluator {
  #snapshot: Snapshot;

  constructor(routes: readonly RouteSpec[] = []) {
    this.#snapshot = snapshot(routes);
  }

  /** The current snapshot's routes. */
  get routes(): readonly RouteSpec[] {
    return this.#snapshot.routes;
  }

  /** Replaces the snapshot; later evaluations see only the new routes. */
  replaceRoutes(routes: readonly RouteSpec[]): void {
    this.#snapshot = snapshot(routes);
  }

  /** Every route whose source matches and whose condition is `true`, in snapshot order. */
  matching(message: RouteMessage): MatchedRoute[] {
    const ctx = contextFor(message);
    const out: MatchedRoute[] = [];
    for (const e of this.#snapshot.entries) if (e.matchesIn(ctx)) out.push(e.match);
    return out;
  }

  /**
   * The deliveries for a message: one per sink, from the matching route with the lowest priority value (the
   * highest priority), carrying that route's TTL; ties keep the first route in snapshot order. Results are in
   * the order the sinks first appear in the snapshot.
   */
  evaluate(message: RouteMessage): MatchedRoute[] {
    const snap = this.#snapshot;
    const ctx = contextFor(message);
    const best: (MatchedRoute | undefined)[] = new Array<MatchedRoute | undefined>(snap.sinkCount);
    for (const e of snap.entries) {
      const prev = best[e.sink];
      // Skip the condition when this sink already has a route that cannot be beaten.
      if (prev !== undefined && prev.priority <= e.match.priority) continue;
      if (e.matchesIn(ctx)) best[e.sink] = e.match;
    }
    const out: MatchedRoute[] = [];
    for (const m of best) if (m !== undefined) out.push(m);
    return out;
  }
}
