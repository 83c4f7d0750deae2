import type { Logger } from 'pino';
import type { KubeClient } from './client.js';
import { FIELD_MANAGER } from './client.js';
import { systemClock } from './clock.js';
import type { Clock } from './clock.js';
import type { KubernetesObject } from './types.js';

export const EventType = { Normal: 'Normal', Warning: 'Warning' } as const;
export type EventType = (typeof EventType)[keyof typeof EventType];

/** What an event is about (`involvedObject`): a namespaced object with its uid. */
export interface EventTarget {
  readonly apiVersion: string;
  readonly kind: string;
  readonly namespace: string;
  readonly name: string;
  readonly uid: string;
}

export interface EventRecord {
  readonly type: EventType;
  /** UpperCamelCase, machine-readable: `InvalidSpec`, `ModuleFailed`. */
  readonly reason: string;
  /** Human-readable; cut to 1024 characters. */
  readonly message: string;
}

/** Where a controller sends events; {@link EventRecorder} is the real one. */
export interface EventSink {
  record(target: EventTarget, event: EventRecord): void;
}

export interface EventRecorderOptions {
  /** `source.component` / `reportingComponent`, e.g. `kedge-agent`. */
  readonly component: string;
  /** `reportingInstance`, e.g. the pod name. */
  readonly instance?: string;
  readonly log: Logger;
  /** @default systemClock */
  readonly clock?: Clock;
  /** Events one object may emit at once before the spam filter drops them. @default 25 (client-go) */
  readonly burst?: number;
  /** One more event allowed per this many ms. @default 300_000 (client-go: 1 per 5 minutes) */
  readonly refillMs?: number;
  /** A repeat of the same event within this window raises the first one's `count` instead of making another. @default 600_000 */
  readonly aggregateWindowMs?: number;
  /** Bound of the aggregation cache (least recently used entries go first). @default 4096 */
  readonly maxEntries?: number;
}

const MAX_MESSAGE = 1024;

interface Series {
  readonly name: string;
  readonly first: string;
  count: number;
  lastAt: number;
}

interface Bucket {
  tokens: number;
  at: number;
}

/**
 * Writes Kubernetes Events (`core/v1`, what `kubectl describe` and `kubectl get events` show) for a controller,
 * the way client-go's recorder does, with bounded cost:
 *
 * - **Aggregation:** the same type, reason and message about the same object within `aggregateWindowMs` updates the
 *   existing Event (`count`, `lastTimestamp`) instead of creating another.
 * - **Spam filter:** a token bucket per object (25, then one per 5 minutes); excess events are dropped and logged
 *   at debug.
 * - **Never in the way:** {@link record} returns at once; writes happen in the background and a failure is only
 *   logged. Reconciles must not fail, or wait, because an Event could not be written.
 */
export class EventRecorder implements EventSink {
  readonly #kube: KubeClient;
  readonly #opts: EventRecorderOptions;
  readonly #clock: Clock;
  readonly #series = new Map<string, Series>();
  readonly #buckets = new Map<string, Bucket>();
  readonly #pending = new Set<Promise<void>>();
  #seq = 0;

  constructor(kube: KubeClient, opts: EventRecorderOptions) {
    this.#kube = kube;
    this.#opts = opts;
    this.#clock = opts.clock ?? systemClock;
  }

  record(target: EventTarget, event: EventRecord): void {
    const now = this.#clock.now();
    const message = event.message.length > MAX_MESSAGE ? `${event.message.slice(0, MAX_MESSAGE - 1)}…` : event.message;
    const key = `${target.uid}\u0000${event.type}\u0000${event.reason}\u0000${message}`;
    let series = this.#series.get(key);
    if (series && now - series.lastAt > (this.#opts.aggregateWindowMs ?? 600_000)) series = undefined;
    if (!series && !this.#take(target.uid, now)) {
      this.#opts.log.debug({ object: `${target.kind}/${target.namespace}/${target.name}`, reason: event.reason }, 'Event dropped by the spam filter');
      return;
    }
    const stamp = new Date(now).toISOString();
    if (series) {
      series.count++;
      series.lastAt = now;
      this.#series.delete(key); // re-insert: most recently used last
    } else {
      series = { name: `${target.name}.${now.toString(16)}${(this.#seq++ % 4096).toString(16).padStart(3, '0')}`, first: stamp, count: 1, lastAt: now };
    }
    this.#series.set(key, series);
    this.#evict();
    const obj: KubernetesObject & Record<string, unknown> = {
      apiVersion: 'v1',
      kind: 'Event',
      metadata: { name: series.name, namespace: target.namespace },
      involvedObject: { apiVersion: target.apiVersion, kind: target.kind, namespace: target.namespace, name: target.name, uid: target.uid },
      type: event.type,
      reason: event.reason,
      message,
      source: { component: this.#opts.component },
      reportingComponent: this.#opts.component,
      reportingInstance: this.#opts.instance ?? '',
      firstTimestamp: series.first,
      lastTimestamp: stamp,
      count: series.count,
    };
    const write = this.#kube
      .apply(obj, { fieldManager: FIELD_MANAGER, force: true })
      .then(
        () => undefined,
        (err: unknown) => this.#opts.log.warn({ err, reason: event.reason, object: `${target.kind}/${target.namespace}/${target.name}` }, 'Could not write event'),
      )
      .finally(() => this.#pending.delete(write));
    this.#pending.add(write);
  }

  /** Resolves once every event recorded so far has been written (or has failed). */
  async flush(): Promise<void> {
    while (this.#pending.size > 0) await Promise.all([...this.#pending]);
  }

  #take(uid: string, now: number): boolean {
    const burst = this.#opts.burst ?? 25;
    const refill = this.#opts.refillMs ?? 300_000;
    const b = this.#buckets.get(uid) ?? { tokens: burst, at: now };
    const gained = Math.floor((now - b.at) / refill);
    if (gained > 0) {
      b.tokens = Math.min(burst, b.tokens + gained);
      b.at += gained * refill;
    }
    this.#buckets.delete(uid);
    this.#buckets.set(uid, b);
    if (b.tokens < 1) return false;
    b.tokens--;
    return true;
  }

  #evict(): void {
    const max = this.#opts.maxEntries ?? 4096;
    for (const map of [this.#series, this.#buckets] as Map<string, unknown>[]) {
      while (map.size > max) {
        const oldest = map.keys().next().value;
        if (oldest === undefined) break;
        map.delete(oldest);
      }
    }
  }
}
