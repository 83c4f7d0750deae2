import { randomUUID } from 'node:crypto';
import type { KubernetesObject } from './types.js';
import type { Logger } from 'pino';
import { systemClock } from './clock.js';
import type { Clock } from './clock.js';
import { isTerminal } from './errors.js';
import type { Informer } from './informer.js';
import { formatKey, objectKey, parseKey } from './keys.js';
import type { ObjectKey } from './keys.js';
import { ReconcileOutcome } from './metrics.js';
import type { KubeMetrics } from './metrics.js';
import { WorkQueue } from './workqueue.js';
import type { BackoffOptions } from './workqueue.js';

/** What a reconcile gets besides its key. */
export interface ReconcileContext {
  /** Child logger with `controller`, `namespace`, `name` and `reconcileId`. */
  readonly log: Logger;
  /** Aborted on timeout and on controller stop: pass it to every slow call. */
  readonly signal: AbortSignal;
  readonly reconcileId: string;
}

/** What a successful reconcile asks for. `{}` means done until the next event or resync. */
export type ReconcileResult = {
  /** Reconcile this key again after this long (polling something that is not watched). */
  readonly requeueAfterMs?: number;
};

/**
 * Level-triggered reconciliation of one object (controller-runtime `reconcile.Reconciler`). It gets only the key,
 * re-reads current state, makes the world match it and is idempotent. A thrown error is retried with per-key
 * backoff, except a {@link TerminalError}; an object that no longer exists is a success, not an error.
 */
export interface Reconciler {
  reconcile(ctx: ReconcileContext, key: ObjectKey): Promise<ReconcileResult>;
}

export interface ControllerOptions {
  /** `controller` log field and metric label, work-queue name. */
  readonly name: string;
  readonly reconciler: Reconciler;
  /** Concurrent reconciles (of different keys: one key is never reconciled twice at once). @default 1 */
  readonly workers?: number;
  readonly log: Logger;
  readonly metrics?: KubeMetrics;
  /**
   * Per-reconcile timeout: the signal aborts and the attempt counts as an error (rate-limited retry). A reconcile
   * that ignores its signal frees its worker, but its key stays locked until it settles. @default 300_000
   */
  readonly reconcileTimeoutMs?: number;
  /** Retry backoff of failed reconciles. @default { baseDelayMs: 5, maxDelayMs: 1_000_000 } (controller-runtime) */
  readonly backoff?: BackoffOptions;
  /** @default systemClock */
  readonly clock?: Clock;
}

/** How the events of one watched informer enqueue keys. */
export interface WatchOptions<T extends KubernetesObject = KubernetesObject> {
  /**
   * Enqueue each key this long after the first event instead of at once; the events of a burst in that window (a
   * rollout's pods going Pending → ContainerCreating → Running) then make one reconcile instead of one each.
   * For changes that only feed status. A function decides per event (e.g. 0 when the spec changed). @default 0
   */
  readonly coalesceMs?: number | ((obj: T) => number);
}

/** Maps an event's object to the keys to reconcile. Must be pure and cheap: no I/O, no branching on event type. */
export type MapFunc<T extends KubernetesObject> = (obj: T) => readonly ObjectKey[];

/** The controller ownerReference of `obj` if it is of `ownerKind` (and of `ownerApiGroup`, when given). */
export function controllerOwnerKey(obj: KubernetesObject, ownerKind: string, ownerApiGroup?: string): ObjectKey | undefined {
  const ref = obj.metadata?.ownerReferences?.find((r) => r.controller === true);
  if (!ref || ref.kind !== ownerKind) return undefined;
  if (ownerApiGroup !== undefined && apiGroup(ref.apiVersion) !== ownerApiGroup) return undefined;
  // Owner references never cross namespaces: a namespaced owner lives in the object's namespace.
  return { namespace: obj.metadata?.namespace ?? '', name: ref.name };
}

function apiGroup(apiVersion: string): string {
  const i = apiVersion.indexOf('/');
  return i < 0 ? '' : apiVersion.slice(0, i);
}

const TIMED_OUT = Symbol('timed out');

/**
 * The controller runner (controller-runtime `internal/controller`): informer events → keys → deduplicating,
 * rate-limited {@link WorkQueue} → N workers → `reconciler.reconcile(ctx, key)`.
 *
 * - error → `addRateLimited`; {@link TerminalError} → logged, counted, never retried;
 * - `{ requeueAfterMs }` → `forget` + `addAfter`; `{}` → `forget`;
 * - each reconcile gets a child logger, a fresh `reconcileId`, a timeout and a catch-all.
 */
export class Controller {
  readonly name: string;
  readonly #opts: ControllerOptions;
  readonly #log: Logger;
  readonly #clock: Clock;
  readonly #queue: WorkQueue<string>;
  readonly #informers: Informer<KubernetesObject>[] = [];
  readonly #startedInformers: Informer<KubernetesObject>[] = [];
  readonly #workers: Promise<void>[] = [];
  readonly #stopController = new AbortController();
  #started = false;
  #stopping: Promise<void> | undefined;

  constructor(opts: ControllerOptions) {
    this.name = opts.name;
    this.#opts = opts;
    this.#log = opts.log.child({ controller: opts.name });
    this.#clock = opts.clock ?? systemClock;
    this.#queue = new WorkQueue<string>({ name: opts.name, backoff: opts.backoff }, { clock: this.#clock, metrics: opts.metrics });
  }

  /** The primary kind: each event enqueues the object's own key. */
  for<T extends KubernetesObject>(informer: Informer<T>, opts: WatchOptions<T> = {}): this {
    return this.watchMap(informer, (obj) => [objectKey(obj)], opts);
  }

  /**
   * An owned kind: each event enqueues the object's controller owner of kind `ownerKind` (and API group
   * `ownerApiGroup`, when given). Objects without such an owner are ignored. Only the new object of an update is
   * seen, so removing an ownerReference notifies the former owner at the next resync, not at once.
   */
  owns<T extends KubernetesObject>(informer: Informer<T>, ownerKind: string, ownerApiGroup?: string, opts: WatchOptions<T> = {}): this {
    return this.watchMap(
      informer,
      (obj) => {
        const key = controllerOwnerKey(obj, ownerKind, ownerApiGroup);
        return key ? [key] : [];
      },
      opts,
    );
  }

  /** Any related kind: each event enqueues the keys `map` returns. */
  watchMap<T extends KubernetesObject>(informer: Informer<T>, map: MapFunc<T>, opts: WatchOptions<T> = {}): this {
    if (this.#started) throw new Error(`Controller ${this.name}: add watches before start()`);
    const coalesce = opts.coalesceMs ?? 0;
    const handler = (obj: T): void => {
      const coalesceMs = typeof coalesce === 'number' ? coalesce : coalesce(obj);
      for (const key of map(obj)) {
        if (coalesceMs > 0) this.#queue.addAfter(formatKey(key), coalesceMs);
        else this.#queue.add(formatKey(key));
      }
    };
    // The same handler for every event type: what happened is irrelevant, only which keys to look at.
    informer.on('add', handler);
    informer.on('update', handler);
    informer.on('delete', handler);
    if (!this.#informers.includes(informer as unknown as Informer<KubernetesObject>)) {
      this.#informers.push(informer as unknown as Informer<KubernetesObject>);
    }
    return this;
  }

  /** Enqueues a key by hand (tests, external triggers). */
  enqueue(key: ObjectKey): void {
    this.#queue.add(formatKey(key));
  }

  /**
   * Starts the informers not started yet, waits until every informer synced, then starts the workers. Resolves
   * true once the workers run, false if `signal` aborted first. Aborting `signal` later stops the controller.
   */
  async start(signal: AbortSignal): Promise<boolean> {
    if (this.#started) throw new Error(`Controller ${this.name} already started`);
    this.#started = true;
    if (signal.aborted) {
      await this.stop();
      return false;
    }
    signal.addEventListener('abort', () => void this.stop(), { once: true });
    for (const inf of this.#informers) {
      if (!inf.started) {
        inf.start();
        this.#startedInformers.push(inf);
      }
    }
    this.#log.info({ informers: this.#informers.map((i) => i.kind) }, 'Waiting for caches to sync');
    const synced = await Promise.all(this.#informers.map((i) => i.waitForSync(AbortSignal.any([signal, this.#stopController.signal]))));
    if (!synced.every(Boolean) || this.#stopping) return false;
    const workers = this.#opts.workers ?? 1;
    this.#log.info({ workers }, 'Starting workers');
    for (let i = 0; i < workers; i++) this.#workers.push(this.#worker());
    return true;
  }

  /**
   * Stops taking work, aborts the signal of in-flight reconciles, waits for them to settle, then stops the
   * informers this controller started. Idempotent.
   */
  stop(): Promise<void> {
    this.#stopping ??= (async () => {
      this.#log.info('Stopping workers');
      this.#stopController.abort();
      await this.#queue.shutDownWithDrain();
      await Promise.all(this.#workers);
      await Promise.all(this.#startedInformers.map((i) => i.stop()));
      this.#log.info('Stopped');
    })();
    return this.#stopping;
  }

  async #worker(): Promise<void> {
    for (;;) {
      const key = await this.#queue.get();
      if (key === undefined) return;
      await this.#reconcileHandler(key);
    }
  }

  async #reconcileHandler(key: string): Promise<void> {
    const objKey = parseKey(key);
    const reconcileId = randomUUID();
    const log = this.#opts.log.child({ controller: this.name, namespace: objKey.namespace, name: objKey.name, reconcileId });
    const timeoutMs = this.#opts.reconcileTimeoutMs ?? 300_000;
    const timeout = new AbortController();
    const signal = AbortSignal.any([timeout.signal, this.#stopController.signal]);
    const ctx: ReconcileContext = { log, signal, reconcileId };
    const metrics = this.#opts.metrics;
    const t0 = this.#clock.now();

    // Catch-all: a synchronous throw, a rejected promise or a non-Error throw all become an error outcome.
    const attempt: Promise<ReconcileResult> = Promise.resolve().then(() => this.#opts.reconciler.reconcile(ctx, objKey));
    let timer: ReturnType<Clock['setTimeout']> | undefined;
    const timedOut = new Promise<typeof TIMED_OUT>((resolve) => {
      timer = this.#clock.setTimeout(() => {
        timeout.abort(new DOMException(`Reconcile exceeded ${timeoutMs} ms`, 'TimeoutError'));
        resolve(TIMED_OUT);
      }, timeoutMs);
    });

    let outcome: { result: ReconcileResult } | { error: unknown };
    let settled = true;
    try {
      const r = await Promise.race([attempt, timedOut]);
      if (r === TIMED_OUT) {
        settled = false;
        outcome = { error: new Error(`Reconcile of ${key} timed out after ${timeoutMs} ms`) };
      } else {
        outcome = { result: r ?? {} };
      }
    } catch (error) {
      outcome = { error };
    } finally {
      if (timer !== undefined) this.#clock.clearTimeout(timer);
    }
    metrics?.reconcileTime.observe({ controller: this.name }, (this.#clock.now() - t0) / 1000);

    if ('error' in outcome) {
      metrics?.reconcileErrors.inc({ controller: this.name });
      if (isTerminal(outcome.error)) {
        metrics?.reconcileTotal.inc({ controller: this.name, result: ReconcileOutcome.TerminalError });
        log.error({ err: outcome.error }, 'Reconciler error (terminal, not retried)');
        this.#queue.forget(key);
      } else {
        metrics?.reconcileTotal.inc({ controller: this.name, result: ReconcileOutcome.Error });
        log.error({ err: outcome.error, retries: this.#queue.numRequeues(key) }, 'Reconciler error');
        this.#queue.addRateLimited(key);
      }
    } else if ((outcome.result.requeueAfterMs ?? 0) > 0) {
      metrics?.reconcileTotal.inc({ controller: this.name, result: ReconcileOutcome.RequeueAfter });
      this.#queue.forget(key);
      this.#queue.addAfter(key, outcome.result.requeueAfterMs ?? 0);
    } else {
      metrics?.reconcileTotal.inc({ controller: this.name, result: ReconcileOutcome.Success });
      this.#queue.forget(key);
    }

    if (settled) {
      this.#queue.done(key);
    } else {
      // The worker moves on, but the key stays "processing" until the stray reconcile settles, so no second
      // worker ever reconciles it concurrently; the rate-limited add above runs right after.
      log.error({ timeoutMs }, 'Reconcile ignored its aborted signal; key stays locked until it returns');
      void attempt.then(
        () => this.#queue.done(key),
        () => this.#queue.done(key),
      );
    }
  }
}
