import { ListWatch, Watch } from '@kubernetes/client-node';
import type { KubeConfig, KubernetesListObject, KubernetesObject } from '@kubernetes/client-node';
import type { Logger } from 'pino';
import { listAll } from './client.js';
import { systemClock } from './clock.js';
import type { Clock, TimerHandle } from './clock.js';
import { DynamicApi } from './dynamic-api.js';
import { toKubeApiError } from './errors.js';
import type { KubeMetrics } from './metrics.js';

/** Informer event names. Handlers must only map the object to work-queue keys (never branch on the event). */
export const InformerEvent = { Add: 'add', Update: 'update', Delete: 'delete' } as const;
export type InformerEvent = (typeof InformerEvent)[keyof typeof InformerEvent];

export type InformerHandler<T extends KubernetesObject> = (obj: T) => void;

/** The subset of client-node's `Watch` the informer uses; inject a wrapper in tests to break or rewind watches. */
export type WatchLike = Pick<Watch, 'watch'>;

export interface InformerOptions {
  readonly apiVersion: string;
  readonly kind: string;
  /** Watch one namespace. @default all namespaces */
  readonly namespace?: string;
  readonly labelSelector?: string;
  /**
   * Every period, re-emit every cached object as `update`, so a controller re-reconciles everything and heals
   * anything a lost event or a failed reconcile left behind. 0 disables. @default 300_000 (5 min)
   */
  readonly resyncPeriodMs?: number;
  /**
   * Watch health: with no watch event (bookmarks included), no new watch connection and no successful list for
   * this long, the informer assumes a silently stalled connection and forces a full relist. Must exceed the
   * server-side watch timeout. @default 900_000 (15 min)
   */
  readonly staleAfterMs?: number;
  /** Restart backoff after an error: doubles from `initialMs` to `maxMs`. @default { initialMs: 1000, maxMs: 30_000 } */
  readonly backoff?: { readonly initialMs?: number; readonly maxMs?: number };
  /**
   * `timeoutSeconds` of each watch request: the apiserver ends the watch after it and the informer re-watches from
   * the last resourceVersion, so even an idle watch shows a sign of life. @default random in [300, 600) (client-go)
   */
  readonly watchTimeoutSeconds?: number;
  /** Client-side timeout of each list page. @default 60_000 */
  readonly listTimeoutMs?: number;
  /**
   * Applied to every object before it enters the cache (list items and watch events). Must return an object of the
   * same identity fields. @default {@link stripManagedFields}: the caches of a controller that owns thousands of
   * objects would otherwise hold every object's `managedFields`, often its largest part (controller-runtime's
   * `TransformStripManagedFields`).
   */
  readonly transform?: ((obj: KubernetesObject) => KubernetesObject) | null;
}

/** Drops `metadata.managedFields` (in place) and returns the object. */
export function stripManagedFields<T extends KubernetesObject>(obj: T): T {
  if (obj.metadata?.managedFields) delete obj.metadata.managedFields;
  return obj;
}

export interface InformerDeps {
  readonly kubeConfig: KubeConfig;
  readonly log: Logger;
  readonly metrics?: KubeMetrics;
  /** Drives the resync and watch-health timers. @default systemClock */
  readonly clock?: Clock;
  /** Waits before a restart (client-node's `delayFn` idea). @default a `clock` timer */
  readonly delay?: (ms: number) => Promise<void>;
  /** @default new Watch(kubeConfig) */
  readonly watch?: WatchLike;
}

/**
 * Marks a forced relist. client-node's `ListWatch.doneHandler` clears its resourceVersion, and so relists, when
 * the error has `code` or `statusCode` 410; anything else stops it. The informer hands this error to the
 * `done` callback of a watch it decided to abandon, which makes the cache diff against a fresh list (firing
 * `delete` for objects that vanished meanwhile) instead of starting from scratch.
 */
class ForcedRelist extends Error {
  readonly code = 410;
  constructor(reason: string) {
    super(`forced relist: ${reason}`);
    this.name = 'ForcedRelist';
  }
}

interface WatchHooks {
  /** A watch request was made (ListWatch only watches after it processed a list or to resume one). */
  onWatchStart(): void;
  /** The watch connected, or an event (bookmarks and errors included) arrived. */
  onActivity(): void;
  /** A watch `ERROR` event. */
  onErrorEvent(obj: unknown): void;
  timeoutSeconds(): number;
  /** Applied to each object of an ADDED/MODIFIED/DELETED event before ListWatch caches it. */
  transform(obj: unknown): unknown;
}

/**
 * The `Watch` given to `ListWatch`. It delegates to the real (or injected) watch and adds what a long-running
 * controller needs: bookmarks and a server-side timeout on every watch, activity tracking for the health check, an
 * abort that never leaks a spurious `done(error)` into ListWatch, and {@link HealthWatch.forceRelist}.
 */
class HealthWatch extends Watch {
  readonly #inner: WatchLike;
  readonly #hooks: WatchHooks;
  #active: { readonly finish: (err: unknown) => void } | undefined;

  constructor(kc: KubeConfig, inner: WatchLike, hooks: WatchHooks) {
    super(kc);
    this.#inner = inner;
    this.#hooks = hooks;
  }

  /** True while a watch request is open (connecting or streaming). */
  get active(): boolean {
    return this.#active !== undefined;
  }

  /** Ends the open watch as if the apiserver had answered 410 Gone; returns false if none is open. */
  forceRelist(reason: string): boolean {
    const active = this.#active;
    if (!active) return false;
    active.finish(new ForcedRelist(reason));
    return true;
  }

  override watch(
    path: string,
    queryParams: Record<string, string | number | boolean | undefined>,
    callback: (phase: string, apiObj: unknown, watchObj?: unknown) => void,
    done: (err: unknown) => void,
  ): Promise<AbortController> {
    const outer = new AbortController();
    let finished = false;
    let inner: AbortController | undefined;
    const entry = {
      finish: (err: unknown): void => {
        if (finished) return;
        finished = true;
        if (this.#active === entry) this.#active = undefined;
        inner?.abort();
        done(err);
      },
    };
    this.#active = entry;
    // ListWatch aborts the request it holds when it stops or moves on: it expects no callback for it after that.
    outer.signal.addEventListener(
      'abort',
      () => {
        finished = true;
        if (this.#active === entry) this.#active = undefined;
        inner?.abort();
      },
      { once: true },
    );
    this.#hooks.onWatchStart();
    const params = { ...queryParams, allowWatchBookmarks: true, timeoutSeconds: this.#hooks.timeoutSeconds() };
    this.#inner
      .watch(
        path,
        params,
        (phase, obj, raw) => {
          if (finished) return;
          this.#hooks.onActivity();
          if (phase === 'ERROR') this.#hooks.onErrorEvent(obj);
          callback(phase, phase === 'ERROR' || phase === 'BOOKMARK' ? obj : this.#hooks.transform(obj), raw);
        },
        (err) => entry.finish(err),
      )
      .then(
        (c) => {
          inner = c;
          if (finished) c.abort();
          else this.#hooks.onActivity();
        },
        (err: unknown) => entry.finish(err),
      );
    // Returned at once so the health check can abandon a watch whose connection hangs before any response.
    return Promise.resolve(outer);
  }
}

/**
 * A shared informer over client-node's `ListWatch`: a cache of one kind (optionally one namespace and a label
 * selector) and `add`/`update`/`delete` events. What it adds to ListWatch:
 *
 * - **Restart on error.** ListWatch stops for good on any error but 410; this restarts it with exponential backoff
 *   (1 s → 30 s), resuming from the last resourceVersion. A 410 relists (ListWatch does that itself).
 * - **Watch health.** No event, bookmark, watch connection or list for `staleAfterMs` forces a full relist, so a
 *   silently dead connection cannot freeze the cache.
 * - **Resync.** Every `resyncPeriodMs`, every cached object is re-emitted as `update`.
 * - Plain JSON objects everywhere (list items get `apiVersion`/`kind`), the same as watch events.
 *
 * Register handlers before {@link Informer.start}. Handlers run synchronously and must not throw (a throw is
 * logged and swallowed); they should only enqueue keys.
 */
export class Informer<T extends KubernetesObject = KubernetesObject> {
  readonly apiVersion: string;
  readonly kind: string;
  readonly namespace: string | undefined;
  readonly labelSelector: string | undefined;
  readonly #deps: InformerDeps;
  readonly #log: Logger;
  readonly #clock: Clock;
  readonly #api: DynamicApi;
  readonly #resyncMs: number;
  readonly #staleMs: number;
  readonly #backoffInitial: number;
  readonly #backoffMax: number;
  readonly #listTimeoutMs: number;
  readonly #transform: ((obj: KubernetesObject) => KubernetesObject) | undefined;
  readonly #watchTimeoutSeconds: number | undefined;
  readonly #handlers: Record<InformerEvent, InformerHandler<T>[]> = { add: [], update: [], delete: [] };
  #lw: ListWatch<T> | undefined;
  #watch: HealthWatch | undefined;
  #started = false;
  #stopped = false;
  #synced = false;
  #syncWaiters: (() => void)[] = [];
  #lists = 0;
  #listing = false;
  #restartPending = false;
  #failures = 0;
  #lastActivity = 0;
  #resyncTimer: TimerHandle | undefined;
  #healthTimer: TimerHandle | undefined;

  constructor(opts: InformerOptions, deps: InformerDeps) {
    this.apiVersion = opts.apiVersion;
    this.kind = opts.kind;
    this.namespace = opts.namespace;
    this.labelSelector = opts.labelSelector;
    this.#deps = deps;
    this.#clock = deps.clock ?? systemClock;
    this.#log = deps.log.child({ informer: opts.kind, ...(opts.namespace ? { namespace: opts.namespace } : {}) });
    this.#api = DynamicApi.create(deps.kubeConfig);
    this.#resyncMs = opts.resyncPeriodMs ?? 300_000;
    this.#staleMs = opts.staleAfterMs ?? 900_000;
    this.#backoffInitial = opts.backoff?.initialMs ?? 1000;
    this.#backoffMax = opts.backoff?.maxMs ?? 30_000;
    this.#listTimeoutMs = opts.listTimeoutMs ?? 60_000;
    this.#transform = opts.transform === null ? undefined : (opts.transform ?? stripManagedFields);
    this.#watchTimeoutSeconds = opts.watchTimeoutSeconds;
  }

  /** Registers an event handler. Call before {@link start}: objects listed before registration are not replayed. */
  on(event: InformerEvent, handler: InformerHandler<T>): void {
    this.#handlers[event].push(handler);
  }

  /** The cached object, or undefined. `namespace` is required for namespaced kinds. */
  get(name: string, namespace?: string): T | undefined {
    return this.#lw?.get(name, namespace);
  }

  /** Cached objects, in one namespace or all. */
  list(namespace?: string): readonly T[] {
    return this.#lw?.list(namespace) ?? [];
  }

  /** True once {@link start} was called. */
  get started(): boolean {
    return this.#started;
  }

  /** True once the first list is in the cache (and its `add` events were emitted). Stays true across relists. */
  hasSynced(): boolean {
    return this.#synced;
  }

  /** Resolves true once synced, false if `signal` aborts or the informer stops first. */
  waitForSync(signal?: AbortSignal): Promise<boolean> {
    if (this.#synced) return Promise.resolve(true);
    if (this.#stopped || signal?.aborted) return Promise.resolve(false);
    return new Promise((resolve) => {
      const onAbort = (): void => resolve(false);
      signal?.addEventListener('abort', onAbort, { once: true });
      this.#syncWaiters.push(() => {
        signal?.removeEventListener('abort', onAbort);
        resolve(this.#synced);
      });
    });
  }

  /**
   * Starts listing and watching in the background; returns at once. Errors (the apiserver down, the CRD not
   * installed yet) are logged and retried with backoff: never thrown.
   */
  start(): void {
    if (this.#started) throw new Error(`Informer for ${this.kind} already started`);
    this.#started = true;
    this.#lastActivity = this.#clock.now();
    this.#scheduleHealth();
    void this.#init();
  }

  /** Stops watching and the timers. The cache keeps its last content. Idempotent. */
  async stop(): Promise<void> {
    if (this.#stopped) return;
    this.#stopped = true;
    if (this.#resyncTimer) this.#clock.clearTimeout(this.#resyncTimer);
    if (this.#healthTimer) this.#clock.clearTimeout(this.#healthTimer);
    const waiters = this.#syncWaiters;
    this.#syncWaiters = [];
    for (const w of waiters) w();
    await this.#lw?.stop();
  }

  async #init(): Promise<void> {
    let path: string;
    try {
      path = await this.#api.path(this.apiVersion, this.kind, this.namespace);
    } catch (e) {
      this.#onError(e);
      return;
    }
    if (this.#stopped) return;
    const hooks: WatchHooks = {
      onWatchStart: () => this.#onWatchStart(),
      onActivity: () => this.#onActivity(),
      onErrorEvent: (obj) => this.#log.debug({ status: obj }, 'Received watch error event'),
      timeoutSeconds: () => this.#watchTimeoutSeconds ?? 300 + Math.floor(Math.random() * 300),
      transform: (obj) => (this.#transform && typeof obj === 'object' && obj !== null ? this.#transform(obj) : obj),
    };
    this.#watch = new HealthWatch(this.#deps.kubeConfig, this.#deps.watch ?? new Watch(this.#deps.kubeConfig), hooks);
    const lw = new ListWatch<T>(path, this.#watch, () => this.#list(), false, this.labelSelector);
    lw.on('add', (o) => this.#emit('add', o));
    lw.on('update', (o) => this.#emit('update', o));
    lw.on('delete', (o) => this.#emit('delete', o));
    lw.on('error', (e: unknown) => this.#onError(e));
    this.#lw = lw;
    await this.#startListWatch();
  }

  async #startListWatch(): Promise<void> {
    try {
      await this.#lw?.start();
    } catch (e) {
      this.#onError(e);
    }
  }

  async #list(): Promise<KubernetesListObject<T>> {
    this.#listing = true;
    try {
      const { items, resourceVersion } = await listAll(
        this.#api,
        this.apiVersion,
        this.kind,
        this.namespace,
        this.labelSelector,
        this.#listTimeoutMs,
      );
      this.#onActivity();
      if (this.#lists++ > 0) {
        this.#deps.metrics?.informerRelists.inc({ kind: this.kind });
        this.#log.info({ objects: items.length, resourceVersion }, 'Relisted');
      }
      const t = this.#transform;
      return { metadata: { resourceVersion }, items: (t ? items.map((i) => t(i)) : items) as T[] };
    } catch (e) {
      throw toKubeApiError(e, { verb: 'list', apiVersion: this.apiVersion, kind: this.kind, namespace: this.namespace });
    } finally {
      this.#listing = false;
    }
  }

  #onWatchStart(): void {
    if (!this.#synced && this.#lists > 0) {
      // ListWatch processes a list synchronously and then watches: the cache is complete now.
      this.#synced = true;
      this.#log.debug({ objects: this.list().length }, 'Synced');
      this.#scheduleResync();
      const waiters = this.#syncWaiters;
      this.#syncWaiters = [];
      for (const w of waiters) w();
    }
  }

  #onActivity(): void {
    this.#lastActivity = this.#clock.now();
    this.#failures = 0;
  }

  #onError(e: unknown): void {
    if (this.#stopped || this.#restartPending) return;
    this.#restartPending = true;
    const delayMs = Math.min(this.#backoffInitial * 2 ** this.#failures, this.#backoffMax);
    this.#failures++;
    this.#deps.metrics?.informerRestarts.inc({ kind: this.kind });
    const err = toKubeApiError(e, { verb: 'watch', apiVersion: this.apiVersion, kind: this.kind, namespace: this.namespace });
    this.#log.warn({ err, delayMs, failures: this.#failures }, 'Informer list/watch failed; restarting');
    void this.#delay(delayMs).then(() => {
      this.#restartPending = false;
      if (this.#stopped) return;
      if (this.#lw) void this.#startListWatch();
      else void this.#init();
    });
  }

  #delay(ms: number): Promise<void> {
    if (this.#deps.delay) return this.#deps.delay(ms);
    return new Promise((resolve) => this.#clock.setTimeout(resolve, ms));
  }

  #emit(event: InformerEvent, obj: T): void {
    for (const h of this.#handlers[event]) {
      try {
        h(obj);
      } catch (err) {
        // A throwing handler must not break ListWatch's loop (it calls handlers synchronously).
        this.#log.error({ err, event, name: obj.metadata?.name }, 'Informer event handler threw');
      }
    }
  }

  #scheduleResync(): void {
    if (this.#resyncMs <= 0 || this.#stopped) return;
    this.#resyncTimer = this.#clock.setTimeout(() => {
      for (const obj of this.list()) this.#emit('update', obj);
      this.#scheduleResync();
    }, this.#resyncMs);
  }

  #scheduleHealth(): void {
    if (this.#staleMs <= 0 || this.#stopped) return;
    this.#healthTimer = this.#clock.setTimeout(
      () => {
        this.#checkHealth();
        this.#scheduleHealth();
      },
      Math.max(10, Math.min(this.#staleMs / 4, 60_000)),
    );
  }

  #checkHealth(): void {
    const idleMs = this.#clock.now() - this.#lastActivity;
    if (idleMs < this.#staleMs || this.#restartPending || this.#listing) return;
    this.#log.warn({ idleMs }, 'Watch showed no sign of life; forcing a relist');
    this.#lastActivity = this.#clock.now();
    if (!this.#watch?.forceRelist(`no watch activity for ${idleMs} ms`)) {
      // Neither watching, listing nor waiting to restart: ListWatch is wedged; restart it.
      this.#onError(new Error(`informer idle for ${idleMs} ms with no open watch`));
    }
  }
}
