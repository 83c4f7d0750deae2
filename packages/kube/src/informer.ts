import type { Logger } from 'pino';
import { listAll } from './client.js';
import { systemClock } from './clock.js';
import type { Clock, TimerHandle } from './clock.js';
import type { ClusterConfig } from './config.js';
import { KubeApiError, KubeErrorCode, isGone, toKubeApiError } from './errors.js';
import type { KubeMetrics } from './metrics.js';
import { KubeTransport } from './transport.js';
import type { WatchLike } from './transport.js';
import type { KubernetesObject } from './types.js';

/** Informer event names. Handlers must only map the object to work-queue keys (never branch on the event). */
export const InformerEvent = { Add: 'add', Update: 'update', Delete: 'delete' } as const;
export type InformerEvent = (typeof InformerEvent)[keyof typeof InformerEvent];

export type InformerHandler<T extends KubernetesObject> = (obj: T) => void;

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
  const meta = obj.metadata as { managedFields?: unknown } | undefined;
  if (meta?.managedFields) delete meta.managedFields;
  return obj;
}

export interface InformerDeps {
  readonly config: ClusterConfig;
  readonly log: Logger;
  readonly metrics?: KubeMetrics;
  /** Drives the resync and watch-health timers. @default systemClock */
  readonly clock?: Clock;
  /** Waits before a restart; resolves early when `signal` aborts. @default a `clock` timer */
  readonly delay?: (ms: number, signal: AbortSignal) => Promise<void>;
  /** @default the config's shared transport */
  readonly watch?: WatchLike;
}

/** Why the informer ended a watch itself: to relist (a silent connection), or to stop. */
class WatchAbandoned extends Error {
  constructor(
    readonly relist: boolean,
    reason: string,
  ) {
    super(reason);
    this.name = 'WatchAbandoned';
  }
}

type WatchStatus = { code?: unknown; reason?: unknown; message?: unknown };

/**
 * A shared informer: a cache of one kind (optionally one namespace and a label selector) kept current by list +
 * watch, and `add`/`update`/`delete` events (client-go's reflector + store, for one consumer).
 *
 * - **List, then watch** from the list's resourceVersion, with bookmarks and a server-side `timeoutSeconds`; when
 *   the apiserver ends a watch, re-watch from the last resourceVersion seen.
 * - **410 Gone** (the resourceVersion was compacted away) **relists** at once; the fresh list is diffed against the
 *   cache, so an object deleted meanwhile fires `delete`.
 * - **Any other error** (network, 5xx, the kind not served yet) retries with exponential backoff (1 s → 30 s),
 *   re-watching from the last resourceVersion when there is one.
 * - **Watch health.** No event, bookmark, watch connection or list for `staleAfterMs` abandons the watch and
 *   relists, so a silently dead (half-open) connection cannot freeze the cache.
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
  readonly #log: Logger;
  readonly #metrics: KubeMetrics | undefined;
  readonly #clock: Clock;
  readonly #api: KubeTransport;
  readonly #watcher: WatchLike;
  readonly #delayFn: ((ms: number, signal: AbortSignal) => Promise<void>) | undefined;
  readonly #resyncMs: number;
  readonly #staleMs: number;
  readonly #backoffInitial: number;
  readonly #backoffMax: number;
  readonly #listTimeoutMs: number;
  readonly #transform: ((obj: KubernetesObject) => KubernetesObject) | undefined;
  readonly #watchTimeoutSeconds: number | undefined;
  readonly #handlers: Record<InformerEvent, InformerHandler<T>[]> = { add: [], update: [], delete: [] };
  /** namespace ('' for cluster-scoped) → name → object */
  readonly #cache = new Map<string, Map<string, T>>();
  readonly #stop = new AbortController();
  #resourceVersion = '';
  #started = false;
  #synced = false;
  #syncWaiters: (() => void)[] = [];
  #lists = 0;
  #failures = 0;
  #lastActivity = 0;
  #watchAbort: AbortController | undefined;
  #loop: Promise<void> | undefined;
  #resyncTimer: TimerHandle | undefined;
  #healthTimer: TimerHandle | undefined;

  constructor(opts: InformerOptions, deps: InformerDeps) {
    this.apiVersion = opts.apiVersion;
    this.kind = opts.kind;
    this.namespace = opts.namespace;
    this.labelSelector = opts.labelSelector;
    this.#metrics = deps.metrics;
    this.#clock = deps.clock ?? systemClock;
    this.#log = deps.log.child({ informer: opts.kind, ...(opts.namespace ? { namespace: opts.namespace } : {}) });
    this.#api = KubeTransport.for(deps.config);
    this.#watcher = deps.watch ?? this.#api;
    this.#delayFn = deps.delay;
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
    return this.#cache.get(namespace ?? '')?.get(name);
  }

  /** Cached objects, in one namespace or all. */
  list(namespace?: string): readonly T[] {
    if (namespace !== undefined) return [...(this.#cache.get(namespace)?.values() ?? [])];
    const out: T[] = [];
    for (const byName of this.#cache.values()) out.push(...byName.values());
    return out;
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
    if (this.#stop.signal.aborted || signal?.aborted) return Promise.resolve(false);
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
    this.#loop = this.#run();
  }

  /** Stops watching and the timers. The cache keeps its last content. Idempotent. */
  async stop(): Promise<void> {
    if (!this.#stop.signal.aborted) {
      this.#stop.abort();
      this.#watchAbort?.abort(new WatchAbandoned(false, 'informer stopped'));
      if (this.#resyncTimer) this.#clock.clearTimeout(this.#resyncTimer);
      if (this.#healthTimer) this.#clock.clearTimeout(this.#healthTimer);
      this.#wakeSyncWaiters();
    }
    await this.#loop;
  }

  async #run(): Promise<void> {
    let needList = true;
    while (!this.#stop.signal.aborted) {
      try {
        if (needList) {
          await this.#relist();
          needList = false;
        }
        needList = await this.#watchOnce();
      } catch (e) {
        if (this.#stop.signal.aborted) return;
        if (isGone(e)) {
          // The resourceVersion is too old (compacted): the watch cannot resume, only a fresh list can. Not an error.
          this.#log.info({ resourceVersion: this.#resourceVersion }, 'Watch expired (410); relisting');
          needList = true;
          continue;
        }
        const delayMs = Math.min(this.#backoffInitial * 2 ** this.#failures, this.#backoffMax);
        this.#failures++;
        this.#metrics?.informerRestarts.inc({ kind: this.kind });
        const err = toKubeApiError(e, { verb: needList ? 'list' : 'watch', apiVersion: this.apiVersion, kind: this.kind, namespace: this.namespace });
        this.#log.warn({ err, delayMs, failures: this.#failures }, 'Informer list/watch failed; restarting');
        // Resume from the last resourceVersion when there is one; a 410 on that watch then relists.
        needList ||= this.#resourceVersion === '';
        await this.#delay(delayMs);
      }
    }
  }

  /** Lists every page, replaces the cache and emits the difference. */
  async #relist(): Promise<void> {
    const { items, resourceVersion } = await listAll(this.#api, this.apiVersion, this.kind, this.namespace, this.labelSelector, this.#listTimeoutMs);
    if (this.#stop.signal.aborted) return;
    this.#onActivity();
    if (this.#lists++ > 0) {
      this.#metrics?.informerRelists.inc({ kind: this.kind });
      this.#log.info({ objects: items.length, resourceVersion }, 'Relisted');
    }
    const previous = new Map<string, Map<string, T>>();
    for (const [ns, byName] of this.#cache) previous.set(ns, new Map(byName));
    for (const raw of items) {
      const obj = this.#prepare(raw);
      const ns = obj.metadata?.namespace ?? '';
      const name = obj.metadata?.name ?? '';
      const old = previous.get(ns)?.get(name);
      previous.get(ns)?.delete(name);
      this.#put(ns, name, obj);
      if (!old) this.#emit('add', obj);
      else if (old.metadata?.resourceVersion !== obj.metadata?.resourceVersion) this.#emit('update', obj);
    }
    for (const [ns, byName] of previous) {
      for (const [name, obj] of byName) {
        this.#remove(ns, name);
        this.#emit('delete', obj);
      }
    }
    this.#resourceVersion = resourceVersion;
    if (!this.#synced) {
      this.#synced = true;
      this.#log.debug({ objects: items.length }, 'Synced');
      this.#scheduleResync();
      this.#wakeSyncWaiters();
    }
  }

  /** One watch from the current resourceVersion. Resolves true when the cache must be relisted. */
  async #watchOnce(): Promise<boolean> {
    const abort = new AbortController();
    this.#watchAbort = abort;
    const path = await this.#api.path(this.apiVersion, this.kind, this.namespace);
    this.#lastActivity = this.#clock.now();
    try {
      await this.#watcher.watch(
        path,
        {
          resourceVersion: this.#resourceVersion,
          allowWatchBookmarks: 'true',
          timeoutSeconds: String(this.#watchTimeoutSeconds ?? 300 + Math.floor(Math.random() * 300)),
          labelSelector: this.labelSelector,
        },
        (type, obj) => this.#onEvent(type, obj),
        abort.signal,
      );
      this.#onActivity();
      return false;
    } catch (e) {
      const reason: unknown = abort.signal.reason;
      if (abort.signal.aborted && reason instanceof WatchAbandoned) {
        if (reason.relist) return true;
        throw reason;
      }
      throw e;
    } finally {
      if (this.#watchAbort === abort) this.#watchAbort = undefined;
    }
  }

  #onEvent(type: string, raw: unknown): void {
    this.#onActivity();
    if (type === 'ERROR') {
      const s = (raw ?? {}) as WatchStatus;
      this.#log.debug({ status: raw }, 'Received watch error event');
      const code = typeof s.code === 'number' ? s.code : 0;
      throw new KubeApiError({
        code: KubeErrorCode.Api,
        status: code,
        reason: typeof s.reason === 'string' ? s.reason : '',
        message: typeof s.message === 'string' ? s.message : `watch error ${code}`,
        verb: 'watch',
        apiVersion: this.apiVersion,
        kind: this.kind,
        ...(this.namespace ? { namespace: this.namespace } : {}),
      });
    }
    if (typeof raw !== 'object' || raw === null) throw new Error(`watch ${type} event without an object`);
    const rv = (raw as KubernetesObject).metadata?.resourceVersion;
    if (type === 'BOOKMARK') {
      if (rv) this.#resourceVersion = rv;
      return;
    }
    const obj = this.#prepare(raw);
    const ns = obj.metadata?.namespace ?? '';
    const name = obj.metadata?.name ?? '';
    switch (type) {
      case 'ADDED':
      case 'MODIFIED': {
        const existed = this.#cache.get(ns)?.has(name) ?? false;
        this.#put(ns, name, obj);
        this.#emit(existed ? 'update' : 'add', obj);
        break;
      }
      case 'DELETED':
        this.#remove(ns, name);
        this.#emit('delete', obj);
        break;
      default:
        throw new Error(`unknown watch event type ${type}`);
    }
    if (rv) this.#resourceVersion = rv;
  }

  #prepare(obj: KubernetesObject): T {
    const withKind = obj.apiVersion && obj.kind ? obj : { ...obj, apiVersion: this.apiVersion, kind: this.kind };
    return (this.#transform ? this.#transform(withKind) : withKind) as T;
  }

  #put(ns: string, name: string, obj: T): void {
    let byName = this.#cache.get(ns);
    if (!byName) {
      byName = new Map();
      this.#cache.set(ns, byName);
    }
    byName.set(name, obj);
  }

  #remove(ns: string, name: string): void {
    const byName = this.#cache.get(ns);
    if (!byName) return;
    byName.delete(name);
    if (byName.size === 0) this.#cache.delete(ns);
  }

  /** A list, a watch connection or a watch event: the apiserver is reachable, so the backoff starts over. */
  #onActivity(): void {
    this.#lastActivity = this.#clock.now();
    this.#failures = 0;
  }

  #wakeSyncWaiters(): void {
    const waiters = this.#syncWaiters;
    this.#syncWaiters = [];
    for (const w of waiters) w();
  }

  #delay(ms: number): Promise<void> {
    const signal = this.#stop.signal;
    if (this.#delayFn) return this.#delayFn(ms, signal);
    return new Promise((resolve) => {
      const finish = (): void => {
        signal.removeEventListener('abort', finish);
        this.#clock.clearTimeout(timer);
        resolve();
      };
      const timer = this.#clock.setTimeout(finish, ms);
      signal.addEventListener('abort', finish, { once: true });
    });
  }

  #emit(event: InformerEvent, obj: T): void {
    for (const h of this.#handlers[event]) {
      try {
        h(obj);
      } catch (err) {
        // A throwing handler must not break the watch loop (handlers run synchronously inside it).
        this.#log.error({ err, event, name: obj.metadata?.name }, 'Informer event handler threw');
      }
    }
  }

  #scheduleResync(): void {
    if (this.#resyncMs <= 0 || this.#stop.signal.aborted) return;
    this.#resyncTimer = this.#clock.setTimeout(() => {
      for (const obj of this.list()) this.#emit('update', obj);
      this.#scheduleResync();
    }, this.#resyncMs);
  }

  #scheduleHealth(): void {
    if (this.#staleMs <= 0 || this.#stop.signal.aborted) return;
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
    // Listing has its own timeout; a backoff wait is not a stall.
    if (idleMs < this.#staleMs || !this.#watchAbort) return;
    this.#log.warn({ idleMs }, 'Watch showed no sign of life; forcing a relist');
    this.#lastActivity = this.#clock.now();
    this.#watchAbort.abort(new WatchAbandoned(true, `no watch activity for ${idleMs} ms`));
  }
}
