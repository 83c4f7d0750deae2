import { contextFor, type RouteMessage } from './message.js';
import { sinkKey, type RouteSink } from './route.js';
import type { RouteSpec } from './routes-config.js';

/** A route that matched a message, with the delivery settings that apply. */
export interface MatchedRoute {
  readonly name: string;
  readonly sink: RouteSink;
  readonly priority: number;
  readonly timeToLiveSecs: number;
}

/**
 * Evaluates messages against an immutable snapshot of routes. `replaceRoutes` swaps the snapshot atomically; an
 * evaluation in progress keeps using the snapshot it started with (edgeHub `Evaluator`).
 */
export class Evaluator {
  #routes: readonly RouteSpec[];

  constructor(routes: readonly RouteSpec[] = []) {
    this.#routes = Object.freeze([...routes]);
  }

  /** The current snapshot. */
  get routes(): readonly RouteSpec[] {
    return this.#routes;
  }

  /** Replaces the snapshot; later evaluations see only the new routes. */
  replaceRoutes(routes: readonly RouteSpec[]): void {
    this.#routes = Object.freeze([...routes]);
  }

  /** Every route whose source matches and whose condition is `true`, in snapshot order. */
  matching(message: RouteMessage): MatchedRoute[] {
    const ctx = contextFor(message);
    const out: MatchedRoute[] = [];
    for (const r of this.#routes) {
      if (r.route.matchesIn(ctx)) out.push({ name: r.name, sink: r.route.sink, priority: r.priority, timeToLiveSecs: r.timeToLiveSecs });
    }
    return out;
  }

  /**
   * The deliveries for a message: one per sink, from the matching route with the lowest priority value (the
   * highest priority), carrying that route's TTL; ties keep the first route in snapshot order.
   */
  evaluate(message: RouteMessage): MatchedRoute[] {
    const bySink = new Map<string, MatchedRoute>();
    for (const m of this.matching(message)) {
      const key = sinkKey(m.sink);
      const prev = bySink.get(key);
      if (prev === undefined || m.priority < prev.priority) bySink.set(key, m);
    }
    return [...bySink.values()];
  }
}
