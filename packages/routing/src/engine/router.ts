import { Evaluator } from '../evaluator.js';
import { sinkKey, type RouteSink } from '../route.js';
import { DEFAULT_TIME_TO_LIVE_SECS, type RouteSpec } from '../routes-config.js';
import { systemClock } from './clock.js';
import { EndpointExecutor } from './endpoint-executor.js';
import { parseQueueName, queueName } from './queue-name.js';
import {
  EngineError,
  EngineErrorCode,
  ExecutorState,
  type Clock,
  type Delivery,
  type EdgeMessage,
  type EngineLogger,
  type RouteOutcome,
  type RouterOptions,
  type RouterStatus,
} from './types.js';

/** What `route()` reads: the evaluator and the executors of the same routes, swapped together in one assignment. */
interface Snapshot {
  readonly evaluator: Evaluator;
  readonly executors: ReadonlyMap<string, EndpointExecutor>;
}

/**
 * The edge hub's router (Routing.Core `Router`): evaluates each message against the routes and stores it in the
 * queue of every matched endpoint and priority; endpoint executors deliver from there. The store is the caller's:
 * `close()` does not close it.
 */
export class Router {
  readonly #opts: RouterOptions;
  readonly #clock: Clock;
  readonly #log: EngineLogger | undefined;
  #snapshot: Snapshot = { evaluator: new Evaluator([]), executors: new Map() };
  /** Every live executor, including retiring ones, by endpoint id. */
  readonly #all = new Map<string, EndpointExecutor>();
  #writer: Promise<void> = Promise.resolve();
  #recovered = false;
  #closed = false;
  #routed = 0;
  #unrouted = 0;

  constructor(opts: RouterOptions) {
    this.#opts = opts;
    this.#clock = opts.clock ?? systemClock;
    this.#log = opts.log;
  }

  /**
   * Evaluates the routes and stores the message in every matched endpoint queue (per sink, the matching route with
   * the highest priority, with that route's TTL). Resolves once the message is durable in all of them, so the broker
   * may acknowledge it; rejects when any store write fails (the broker must not acknowledge then). Empty
   * `deliveries`: no route matched, counted as unrouted; the broker still acknowledges.
   */
  async route(message: EdgeMessage): Promise<RouteOutcome> {
    if (this.#closed) throw new EngineError(EngineErrorCode.RouterClosed, 'Router is closed');
    // No lock here, on purpose (as Router.cs): a route() waiting on a slow or full store must never block
    // replaceRoutes(), which may be the fix. The snapshot is immutable; routes replaced meanwhile apply to the next
    // message, and an executor retired meanwhile still drains what this call stores.
    const snap = this.#snapshot;
    const matches = snap.evaluator.evaluate(message);
    if (matches.length === 0) {
      this.#unrouted++;
      return { deliveries: [] };
    }
    this.#routed++;
    const deliveries = await Promise.all(
      matches.map(async (m): Promise<Delivery> => {
        const endpoint = sinkKey(m.sink);
        const executor = snap.executors.get(endpoint) as EndpointExecutor;
        const stored = await executor.invoke(message, m.priority, m.timeToLiveSecs);
        return { route: m.name, endpoint, priority: m.priority, queue: queueName(endpoint, m.priority), offset: stored.offset, expiresAt: stored.expiresAt };
      }),
    );
    return { deliveries };
  }

  /**
   * Applies routes live (`RouteSpec[]` from `parseEdgeHubDesired`). Serialized with other calls; never blocks
   * `route()`. New endpoints and priorities get their queue and executor before the new routes take effect;
   * endpoints and priorities no route uses any more are retired: they keep delivering until their queue drains or
   * expires, then their queues are removed and their endpoints closed. A route whose TTL is 0 takes
   * `storeAndForward.timeToLiveSecs` (default {@link DEFAULT_TIME_TO_LIVE_SECS}).
   *
   * The first call also picks up queues the store recovered from disk (a previous run): queues no route uses are
   * drained and retired the same way. Call it at start-up, with `[]` when no routes are known yet, so that
   * recovered messages are delivered.
   */
  replaceRoutes(routes: readonly RouteSpec[], storeAndForward?: { readonly timeToLiveSecs: number }): Promise<void> {
    const run = this.#writer.then(() => this.#replace(routes, storeAndForward));
    this.#writer = run.catch(() => undefined);
    return run;
  }

  async #replace(routes: readonly RouteSpec[], saf: { readonly timeToLiveSecs: number } | undefined): Promise<void> {
    if (this.#closed) throw new EngineError(EngineErrorCode.RouterClosed, 'Router is closed');
    const defaultTtl = saf?.timeToLiveSecs ?? DEFAULT_TIME_TO_LIVE_SECS;
    const specs = routes.map((r) => (r.timeToLiveSecs === 0 ? Object.freeze({ ...r, timeToLiveSecs: defaultTtl }) : r));
    const wanted = new Map<string, { sink: RouteSink; priorities: Set<number> }>();
    for (const r of specs) {
      const id = sinkKey(r.route.sink);
      let w = wanted.get(id);
      if (w === undefined) wanted.set(id, (w = { sink: r.route.sink, priorities: new Set() }));
      w.priorities.add(r.priority);
    }
    // 1. Queues and executors for everything the new routes need, before route() can see them.
    const executors = new Map<string, EndpointExecutor>();
    for (const [id, w] of wanted) {
      const executor = this.#executor(id, w.sink);
      for (const p of w.priorities) await executor.ensureQueue(p);
      executors.set(id, executor);
    }
    // 2. Queues left from a previous run (first call only): deliver them, retire those no route wants.
    if (!this.#recovered) {
      this.#recovered = true;
      for (const name of this.#opts.store.queues()) {
        const q = parseQueueName(name);
        if (q === undefined) {
          this.#log?.warn({ queue: name }, 'Store queue with an unknown name left alone');
          continue;
        }
        await this.#executor(q.endpointId, q.sink).ensureQueue(q.priority);
      }
    }
    // 3. The swap: one assignment, seen by every later route().
    this.#snapshot = { evaluator: new Evaluator(specs), executors };
    // 4. Retire what the new routes do not use.
    for (const [id, executor] of this.#all) {
      const w = wanted.get(id);
      const stale = executor.priorities.filter((p) => w === undefined || !w.priorities.has(p));
      if (stale.length > 0) executor.retire(stale);
    }
    this.#log?.info({ routes: specs.length, endpoints: executors.size }, 'Routes applied');
  }

  #executor(id: string, sink: RouteSink): EndpointExecutor {
    const existing = this.#all.get(id);
    // A retired executor may still be closing: a new one takes over its endpoint id.
    if (existing !== undefined && existing.state !== ExecutorState.Closed) return existing;
    const hooks = { available: () => this.#all.get(id)?.available() };
    const executor = new EndpointExecutor({
      endpoint: this.#opts.endpoints(sink, hooks),
      store: this.#opts.store,
      clock: this.#clock,
      log: this.#log,
      options: this.#opts.executor,
      random: this.#opts.random,
      onRetired: (e) => {
        if (this.#all.get(id) === e) this.#all.delete(id);
      },
    });
    this.#all.set(id, executor);
    return executor;
  }

  /** Endpoint states, queue lengths and drop counters, for metrics and `$edgeHub` reported properties. */
  status(): RouterStatus {
    const store = this.#opts.store.stats();
    return {
      routed: this.#routed,
      unrouted: this.#unrouted,
      endpoints: [...this.#all.values()].map((e) => e.status(store)),
      store,
    };
  }

  /** The routes in effect. */
  get routes(): readonly RouteSpec[] {
    return this.#snapshot.evaluator.routes;
  }

  /** Stops every executor (sends in flight are aborted) and closes their endpoints; idempotent. Messages stay stored. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await this.#writer;
    await Promise.all([...this.#all.values()].map((e) => e.close()));
    this.#all.clear();
  }
}
