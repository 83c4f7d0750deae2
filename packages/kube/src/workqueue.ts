import { systemClock } from './clock.js';
import type { Clock, TimerHandle } from './clock.js';
import type { KubeMetrics } from './metrics.js';

/** Per-key exponential backoff settings (client-go `ItemExponentialFailureRateLimiter`). */
export interface BackoffOptions {
  /** Delay after the first failure. @default 5 */
  readonly baseDelayMs?: number;
  /** Upper bound of the delay. @default 1_000_000 (1000 s) */
  readonly maxDelayMs?: number;
  /** Adds up to this fraction of the delay at random, so keys that failed together do not retry together. @default 0 */
  readonly jitter?: number;
  /** Source of randomness for `jitter`, in [0, 1). @default Math.random */
  readonly random?: () => number;
}

/**
 * Per-key exponential backoff: the n-th consecutive failure of a key waits `baseDelayMs * 2^(n-1)`, capped at
 * `maxDelayMs`. {@link ExponentialBackoff.forget} resets a key.
 */
export class ExponentialBackoff<K> {
  readonly #base: number;
  readonly #max: number;
  readonly #jitter: number;
  readonly #random: () => number;
  readonly #failures = new Map<K, number>();

  constructor(opts: BackoffOptions = {}) {
    this.#base = opts.baseDelayMs ?? 5;
    this.#max = opts.maxDelayMs ?? 1_000_000;
    this.#jitter = opts.jitter ?? 0;
    this.#random = opts.random ?? Math.random;
  }

  /** Records a failure of `key` and returns how long to wait before retrying it. */
  when(key: K): number {
    const n = this.#failures.get(key) ?? 0;
    this.#failures.set(key, n + 1);
    // 2 ** 1100 is Infinity, which Math.min caps; no overflow handling needed.
    const delay = Math.min(this.#base * 2 ** n, this.#max);
    return this.#jitter > 0 ? Math.min(delay * (1 + this.#jitter * this.#random()), this.#max) : delay;
  }

  /** Consecutive failures recorded for `key`. */
  retries(key: K): number {
    return this.#failures.get(key) ?? 0;
  }

  forget(key: K): void {
    this.#failures.delete(key);
  }
}

export interface WorkQueueOptions {
  /** `name` label of the workqueue metrics. @default 'default' */
  readonly name?: string;
  /** Backoff of {@link WorkQueue.addRateLimited}. */
  readonly backoff?: BackoffOptions;
}

export interface WorkQueueDeps {
  /** @default systemClock */
  readonly clock?: Clock;
  readonly metrics?: KubeMetrics;
}

/**
 * A deduplicating, rate-limited work queue with client-go semantics (`k8s.io/client-go/util/workqueue`):
 *
 * - A key is *dirty* from `add` until a worker takes it with `get`; adding a dirty key is a no-op (coalescing).
 * - A key is *processing* from `get` until `done`. It is never handed to a second worker meanwhile; if it was added
 *   again while processing, `done` puts it back in the queue (so the latest change is always reconciled).
 * - `addRateLimited` waits a per-key exponential backoff before adding; `forget` resets it (call it on success).
 * - `addAfter` schedules an add; several pending `addAfter`s of one key keep only the earliest.
 * - After `shutDown`, adds are ignored and `get` resolves `undefined` at once (queued keys are abandoned).
 */
export class WorkQueue<K extends NonNullable<unknown> = string> {
  readonly name: string;
  readonly #clock: Clock;
  readonly #metrics: KubeMetrics | undefined;
  readonly #backoff: ExponentialBackoff<K>;
  #queue: K[] = [];
  readonly #dirty = new Set<K>();
  readonly #processing = new Set<K>();
  readonly #waiting = new Map<K, { readonly at: number; readonly timer: TimerHandle }>();
  #getters: ((key: K | undefined) => void)[] = [];
  #drainers: (() => void)[] = [];
  #shuttingDown = false;

  constructor(opts: WorkQueueOptions = {}, deps: WorkQueueDeps = {}) {
    this.name = opts.name ?? 'default';
    this.#clock = deps.clock ?? systemClock;
    this.#metrics = deps.metrics;
    this.#backoff = new ExponentialBackoff<K>(opts.backoff);
  }

  /** Marks `key` as needing processing. No-op while it is dirty or after shutdown. */
  add(key: K): void {
    if (this.#shuttingDown || this.#dirty.has(key)) return;
    this.#metrics?.workqueueAdds.inc({ name: this.name });
    this.#dirty.add(key);
    // A processing key is re-queued by done(): never hand it to a second worker.
    if (this.#processing.has(key)) return;
    this.#queue.push(key);
    this.#updateDepth();
    this.#dispatch();
  }

  /** Adds `key` after `delayMs`; keeps only the earliest of several pending delayed adds of the same key. */
  addAfter(key: K, delayMs: number): void {
    if (this.#shuttingDown) return;
    if (delayMs <= 0) {
      this.add(key);
      return;
    }
    const at = this.#clock.now() + delayMs;
    const pending = this.#waiting.get(key);
    if (pending) {
      if (pending.at <= at) return;
      this.#clock.clearTimeout(pending.timer);
    }
    const timer = this.#clock.setTimeout(() => {
      this.#waiting.delete(key);
      this.add(key);
    }, delayMs);
    this.#waiting.set(key, { at, timer });
  }

  /** Adds `key` after its backoff: 5 ms, 10 ms, 20 ms, ... for consecutive calls until {@link forget}. */
  addRateLimited(key: K): void {
    if (this.#shuttingDown) return;
    this.#metrics?.workqueueRetries.inc({ name: this.name });
    this.addAfter(key, this.#backoff.when(key));
  }

  /** Resets the backoff of `key` (it stays queued if it is). */
  forget(key: K): void {
    this.#backoff.forget(key);
  }

  /** Consecutive rate-limited adds of `key` since the last {@link forget}. */
  numRequeues(key: K): number {
    return this.#backoff.retries(key);
  }

  /**
   * Waits for a key and marks it processing; the caller must call {@link done} with it. Resolves `undefined` once
   * the queue is shut down.
   */
  get(): Promise<K | undefined> {
    if (this.#shuttingDown) return Promise.resolve(undefined);
    const key = this.#take();
    if (key !== undefined) return Promise.resolve(key);
    return new Promise((resolve) => this.#getters.push(resolve));
  }

  /** Ends processing of `key`; re-queues it if it was added meanwhile. */
  done(key: K): void {
    if (!this.#processing.delete(key)) return;
    if (this.#dirty.has(key) && !this.#shuttingDown) {
      this.#queue.push(key);
      this.#updateDepth();
      this.#dispatch();
    }
    if (this.#processing.size === 0) {
      const drainers = this.#drainers;
      this.#drainers = [];
      for (const d of drainers) d();
    }
  }

  /** Keys queued and not yet taken (excludes processing keys and pending delayed adds). */
  len(): number {
    return this.#queue.length;
  }

  /** Keys currently between `get` and `done`. */
  processing(): number {
    return this.#processing.size;
  }

  isShuttingDown(): boolean {
    return this.#shuttingDown;
  }

  /** Stops the queue: adds are ignored, pending delayed adds are cancelled and every `get` resolves `undefined`. */
  shutDown(): void {
    if (!this.#shuttingDown) {
      this.#shuttingDown = true;
      for (const { timer } of this.#waiting.values()) this.#clock.clearTimeout(timer);
      this.#waiting.clear();
      this.#queue = [];
      this.#dirty.clear();
      this.#updateDepth();
    }
    const getters = this.#getters;
    this.#getters = [];
    for (const g of getters) g(undefined);
  }

  /** {@link shutDown}, then waits until every processing key is `done`. */
  async shutDownWithDrain(): Promise<void> {
    this.shutDown();
    if (this.#processing.size === 0) return;
    await new Promise<void>((resolve) => this.#drainers.push(resolve));
  }

  #take(): K | undefined {
    const key = this.#queue.shift();
    if (key === undefined) return undefined;
    this.#dirty.delete(key);
    this.#processing.add(key);
    this.#updateDepth();
    return key;
  }

  #dispatch(): void {
    while (this.#getters.length > 0 && this.#queue.length > 0) {
      const getter = this.#getters.shift();
      const key = this.#take();
      if (getter && key !== undefined) getter(key);
    }
  }

  #updateDepth(): void {
    this.#metrics?.workqueueDepth.set({ name: this.name }, this.#queue.length);
  }
}
