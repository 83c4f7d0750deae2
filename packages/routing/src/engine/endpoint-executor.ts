import { backoffDelay, ExecutorAction, ExecutorEvent, transition } from './executor-fsm.js';
import { queueName } from './queue-name.js';
import {
  ExecutorState,
  FailureKind,
  StoreClosedError,
  type Checkpointer,
  type Clock,
  type EdgeMessage,
  type Endpoint,
  type EndpointStatus,
  type EngineLogger,
  type ExecutorOptions,
  type MessageStore,
  type MessageStoreStats,
  type SinkResult,
  type StoredMessage,
  type TimerHandle,
} from './types.js';

interface Queue {
  readonly name: string;
  readonly priority: number;
  readonly checkpointer: Checkpointer;
  /** Next offset to read; everything below was handed to the endpoint (or dropped) already. */
  cursor: bigint;
  retiring: boolean;
  delivered: number;
  expired: number;
  invalid: number;
}

interface Batch {
  readonly queue: Queue;
  readonly messages: readonly StoredMessage[];
  /** The last offset read with this batch: checkpointed once every message of the batch is handled. */
  readonly end: bigint;
}

/** Dependencies of an {@link EndpointExecutor}. */
export interface EndpointExecutorDeps {
  readonly endpoint: Endpoint;
  readonly store: MessageStore;
  readonly clock: Clock;
  readonly log?: EngineLogger | undefined;
  readonly options?: ExecutorOptions | undefined;
  readonly random?: (() => number) | undefined;
  /** Called once the executor retired (every queue drained or expired) and closed. */
  readonly onRetired?: ((executor: EndpointExecutor) => void) | undefined;
}

const DEFAULTS = {
  batchSize: 100,
  sendTimeoutMs: 30_000,
  initialDelayMs: 1_000,
  maxDelayMs: 60_000,
  maxRetries: 20,
  revivePeriodMs: 600_000,
  jitter: 0.5,
};

const ABORTED = Symbol('aborted');

/**
 * Delivers one endpoint's store queues (one per priority) to the endpoint (Routing.Core
 * `StoringAsyncEndpointExecutor`). One pump reads batches from the checkpoint on, always from the highest-priority
 * queue (lowest priority value) that has messages, so higher-priority queues drain first; `process` is never called
 * concurrently. Succeeded and invalid messages are checkpointed (invalid ones logged once, counted, never retried);
 * expired ones are dropped and counted; failed ones are retried, in order and before anything newer of their
 * queue, with jittered exponential backoff. The states follow the explicit table in `executor-fsm.ts`.
 */
export class EndpointExecutor {
  readonly endpoint: Endpoint;
  readonly #store: MessageStore;
  readonly #clock: Clock;
  readonly #log: EngineLogger | undefined;
  readonly #random: () => number;
  readonly #onRetired: ((e: EndpointExecutor) => void) | undefined;
  readonly #batchSize: number;
  readonly #sendTimeoutMs: number;
  readonly #retry: { initialDelayMs: number; maxDelayMs: number; maxRetries: number; revivePeriodMs: number; jitter: number };
  /** Sorted by priority value, ascending (highest priority first). */
  #queues: Queue[] = [];
  #state: ExecutorState = ExecutorState.Idle;
  #retiring = false;
  #pending: Batch | undefined;
  #attempts = 0;
  #lastFailure: { kind: FailureKind; at: number } | undefined;
  #timer: TimerHandle | undefined;
  #abort: AbortController | undefined;
  #pump: Promise<void> | undefined;
  /** Set by `notify`, cleared before each read: a notification during a read is never lost. */
  #dirty = false;
  #inflightAdds = 0;
  #closed: Promise<void> | undefined;
  readonly #onExpired: ExecutorOptions['onExpired'];

  constructor(deps: EndpointExecutorDeps) {
    this.endpoint = deps.endpoint;
    this.#store = deps.store;
    this.#clock = deps.clock;
    this.#log = deps.log;
    this.#random = deps.random ?? Math.random;
    this.#onRetired = deps.onRetired;
    const o = deps.options ?? {};
    this.#onExpired = o.onExpired;
    this.#batchSize = Math.max(1, o.batchSize ?? DEFAULTS.batchSize);
    this.#sendTimeoutMs = o.sendTimeoutMs ?? DEFAULTS.sendTimeoutMs;
    const r = o.retry ?? {};
    this.#retry = {
      initialDelayMs: r.initialDelayMs ?? DEFAULTS.initialDelayMs,
      maxDelayMs: r.maxDelayMs ?? DEFAULTS.maxDelayMs,
      maxRetries: r.maxRetries ?? DEFAULTS.maxRetries,
      revivePeriodMs: r.revivePeriodMs ?? DEFAULTS.revivePeriodMs,
      jitter: Math.min(1, Math.max(0, r.jitter ?? DEFAULTS.jitter)),
    };
  }

  get state(): ExecutorState {
    return this.#state;
  }

  /** True once every queue of this executor is retiring. */
  get retiring(): boolean {
    return this.#retiring;
  }

  /** Priorities this executor has a queue for (retiring ones included). */
  get priorities(): readonly number[] {
    return this.#queues.map((q) => q.priority);
  }

  /**
   * Makes sure the queue for `priority` exists in the store and in this executor, and is not retiring. Existing
   * messages (recovered from disk) are delivered from the queue's checkpoint on.
   */
  async ensureQueue(priority: number): Promise<void> {
    const existing = this.#queues.find((q) => q.priority === priority);
    if (existing) {
      existing.retiring = false;
      this.#retiring = false;
      return;
    }
    const name = queueName(this.endpoint.id, priority);
    await this.#store.addQueue(name);
    const checkpointer = await this.#store.checkpointer(name);
    if (this.#queues.some((q) => q.priority === priority)) return;
    const queue: Queue = { name, priority, checkpointer, cursor: checkpointer.offset + 1n, retiring: false, delivered: 0, expired: 0, invalid: 0 };
    this.#queues = [...this.#queues, queue].sort((a, b) => a.priority - b.priority);
    this.#retiring = false;
    this.notify();
  }

  /**
   * Stores a message in the queue for `priority` and wakes the pump. Resolves with the stored message once it is
   * durable (the store's `add`).
   */
  async invoke(message: EdgeMessage, priority: number, ttlSeconds: number): Promise<StoredMessage> {
    const queue = this.#queues.find((q) => q.priority === priority);
    if (queue === undefined) throw new Error(`No queue for priority ${priority} on endpoint ${this.endpoint.id}`);
    this.#inflightAdds++;
    try {
      const stored = await this.#store.add(queue.name, message, ttlSeconds);
      this.notify();
      return stored;
    } finally {
      this.#inflightAdds--;
    }
  }

  /** New messages are in the store: start the pump if idle. */
  notify(): void {
    this.#dirty = true;
    this.#fire(ExecutorEvent.Work);
  }

  /** The destination is reachable again: a failing or dead executor retries now (`EndpointHooks.available`). */
  available(): void {
    this.#fire(ExecutorEvent.Available);
  }

  /**
   * Retires the queues for the given priorities (all when omitted): no new messages arrive through routes; each
   * is removed from the store once drained or expired, and the executor closes when none is left.
   */
  retire(priorities?: readonly number[]): void {
    for (const q of this.#queues) if (priorities === undefined || priorities.includes(q.priority)) q.retiring = true;
    this.#retiring = this.#queues.every((q) => q.retiring);
    this.notify();
  }

  /** Counters and state, with queue lengths from the store's stats. */
  status(stats: MessageStoreStats): EndpointStatus {
    return {
      id: this.endpoint.id,
      state: this.#state,
      retiring: this.#retiring,
      failedAttempts: this.#attempts,
      ...(this.#lastFailure ? { lastFailure: { ...this.#lastFailure } } : {}),
      queues: this.#queues.map((q) => {
        const s = stats.queues[q.name];
        return {
          queue: q.name,
          priority: q.priority,
          length: s?.length ?? 0,
          delivered: q.delivered,
          dropped: { expired: q.expired + (s?.expired ?? 0), evicted: s?.evicted ?? 0, invalid: q.invalid },
        };
      }),
    };
  }

  /** Stops sending (aborting a send in flight), then closes the endpoint. Stored messages stay in the store. */
  close(): Promise<void> {
    this.#closed ??= this.#close();
    return this.#closed;
  }

  async #close(): Promise<void> {
    this.#fire(ExecutorEvent.Close);
    await this.#pump;
    await this.endpoint.close?.();
  }

  #fire(event: ExecutorEvent): void {
    const tr = transition(this.#state, event);
    if (tr === undefined) return;
    const from = this.#state;
    this.#state = tr.next;
    if (from !== tr.next) this.#log?.debug({ endpoint: this.endpoint.id, from, to: tr.next, event }, 'Endpoint executor state changed');
    switch (tr.action) {
      case ExecutorAction.None:
        return;
      case ExecutorAction.CancelTimerAndSend:
        this.#cancelTimer();
        this.#startPump();
        return;
      case ExecutorAction.Send:
        this.#startPump();
        return;
      case ExecutorAction.ScheduleRetry: {
        const delay = backoffDelay(this.#attempts, this.#retry, this.#random);
        this.#arm(delay);
        return;
      }
      case ExecutorAction.ScheduleRevive:
        this.#log?.warn({ endpoint: this.endpoint.id, attempts: this.#attempts, reviveInMs: this.#retry.revivePeriodMs }, 'Endpoint dead: messages stay stored until it revives or they expire');
        this.#arm(this.#retry.revivePeriodMs);
        return;
      case ExecutorAction.Stop:
        this.#cancelTimer();
        this.#abort?.abort();
        return;
    }
  }

  #arm(ms: number): void {
    this.#cancelTimer();
    this.#timer = this.#clock.setTimeout(() => {
      this.#timer = undefined;
      this.#fire(ExecutorEvent.TimerFired);
    }, ms);
  }

  #cancelTimer(): void {
    if (this.#timer !== undefined) this.#clock.clearTimeout(this.#timer);
    this.#timer = undefined;
  }

  #startPump(): void {
    if (this.#pump !== undefined) return;
    this.#pump = this.#run()
      .catch((err: unknown) => this.#onPumpError(err))
      .finally(() => {
        this.#pump = undefined;
        // A state change while the loop was winding down (e.g. Available during the last await) needs a new pump.
        if (this.#state === ExecutorState.Sending || this.#state === ExecutorState.Revived) this.#startPump();
      });
  }

  #onPumpError(err: unknown): void {
    if (this.#state === ExecutorState.Closed) return;
    // The store was closed under a running executor: nothing can be read any more. Stop pumping (idle) instead of
    // returning in a sending state, which made the pump restart at once, forever, in microtasks (a hung process).
    if (err instanceof StoreClosedError) return this.#fire(ExecutorEvent.Drained);
    // A store read or commit failed: treat like a failed send so the retry timer tries again.
    this.#log?.warn({ endpoint: this.endpoint.id, err }, 'Endpoint executor store error; retrying');
    this.#attempts++;
    this.#fire(this.#attempts > this.#retry.maxRetries ? ExecutorEvent.GaveUp : ExecutorEvent.Failed);
  }

  #sending(): boolean {
    return this.#state === ExecutorState.Sending || this.#state === ExecutorState.Revived;
  }

  async #run(): Promise<void> {
    while (this.#sending()) {
      const batch = this.#pending ?? (await this.#nextBatch());
      if (!this.#sending()) return;
      if (batch === undefined) {
        if (this.#dirty) continue;
        await this.#retireDrained();
        if (this.#dirty) continue;
        this.#fire(ExecutorEvent.Drained);
        return;
      }
      const live = await this.#dropExpired(batch);
      if (live.length === 0) {
        this.#pending = undefined;
        continue;
      }
      const result = await this.#send(live, batch.queue.priority);
      if (this.#state === ExecutorState.Closed) return;
      await this.#apply({ ...batch, messages: live }, result);
    }
  }

  /** Reads the next batch from the highest-priority queue that has messages; undefined when all are empty. */
  async #nextBatch(): Promise<Batch | undefined> {
    this.#dirty = false;
    for (const queue of this.#queues) {
      const messages = await this.#store.read(queue.name, queue.cursor, this.#batchSize);
      if (messages.length === 0) continue;
      const end = (messages[messages.length - 1] as StoredMessage).offset;
      queue.cursor = end + 1n;
      return { queue, messages, end };
    }
    return undefined;
  }

  /** Drops (counts and checkpoints) the batch's expired messages; the live rest. */
  async #dropExpired(batch: Batch): Promise<readonly StoredMessage[]> {
    const now = this.#clock.now();
    const live = batch.messages.filter((m) => m.expiresAt > now);
    const expired = batch.messages.length - live.length;
    if (expired > 0) {
      batch.queue.expired += expired;
      this.#log?.debug({ endpoint: this.endpoint.id, queue: batch.queue.name, expired }, 'Dropped expired messages');
      this.#onExpired?.(this.endpoint.id, batch.queue.priority, batch.messages.filter((m) => m.expiresAt <= now));
      if (live.length === 0) await batch.queue.checkpointer.commit(batch.end);
      else if (this.#pending !== undefined) this.#pending = { ...batch, messages: live };
    }
    return live;
  }

  /** Calls `process` with the send timeout; a throw or timeout fails the whole batch. */
  async #send(batch: readonly StoredMessage[], priority: number): Promise<SinkResult> {
    const abort = new AbortController();
    this.#abort = abort;
    let timer: TimerHandle | undefined;
    const aborted = new Promise<typeof ABORTED>((resolve) => {
      abort.signal.addEventListener('abort', () => resolve(ABORTED), { once: true });
      timer = this.#clock.setTimeout(() => abort.abort(), this.#sendTimeoutMs);
    });
    try {
      // Racing the abort: an endpoint that ignores its signal (StalledEndpoint) cannot stall the executor.
      const r = await Promise.race([this.endpoint.process(batch, abort.signal, { priority }), aborted]);
      if (r === ABORTED) return allFailed(batch, FailureKind.Timeout, new Error(`Endpoint ${this.endpoint.id} did not settle within ${this.#sendTimeoutMs} ms`));
      return r;
    } catch (cause) {
      return allFailed(batch, FailureKind.Transient, cause);
    } finally {
      if (timer !== undefined) this.#clock.clearTimeout(timer);
      this.#abort = undefined;
    }
  }

  /** Checkpoints what was handled and decides the next state. */
  async #apply(batch: Batch, result: SinkResult): Promise<void> {
    const { queue, messages, end } = batch;
    if (result.succeeded.length === messages.length && result.failed.length === 0 && result.invalid.length === 0 && sameMessages(result.succeeded, messages)) {
      // The common case, without building offset sets: everything delivered.
      queue.delivered += messages.length;
      if (end > queue.checkpointer.offset) await queue.checkpointer.commit(end);
      this.#pending = undefined;
      this.#attempts = 0;
      this.#fire(ExecutorEvent.Succeeded);
      return;
    }
    const inBatch = new Set(messages.map((m) => m.offset));
    const done = new Set<bigint>();
    let delivered = 0;
    for (const m of result.succeeded) {
      if (inBatch.has(m.offset) && !done.has(m.offset)) {
        done.add(m.offset);
        delivered++;
      }
    }
    for (const { message, reason } of result.invalid) {
      if (!inBatch.has(message.offset) || done.has(message.offset)) continue;
      done.add(message.offset);
      queue.invalid++;
      this.#log?.warn({ endpoint: this.endpoint.id, queue: queue.name, offset: message.offset.toString(), messageId: message.message.id, reason }, 'Dropped invalid message');
    }
    queue.delivered += delivered;
    // Whatever is neither succeeded nor invalid is retried, whether the endpoint listed it as failed or forgot it.
    const failed = messages.filter((m) => !done.has(m.offset));
    const firstFailed = failed[0];
    const upTo = firstFailed === undefined ? end : firstFailed.offset - 1n;
    if (upTo > queue.checkpointer.offset) await queue.checkpointer.commit(upTo);
    if (firstFailed === undefined) {
      this.#pending = undefined;
      this.#attempts = 0;
      this.#fire(ExecutorEvent.Succeeded);
      return;
    }
    this.#pending = { queue, messages: failed, end };
    this.#attempts++;
    const kind = result.failure?.kind ?? FailureKind.Transient;
    this.#lastFailure = { kind, at: this.#clock.now() };
    const gaveUp = this.#attempts > this.#retry.maxRetries;
    const level = this.#attempts === 1 || gaveUp ? 'warn' : 'debug';
    this.#log?.[level]({ endpoint: this.endpoint.id, queue: queue.name, failed: failed.length, kind, attempt: this.#attempts, err: result.failure?.cause }, 'Endpoint send failed; retrying with backoff');
    this.#fire(gaveUp ? ExecutorEvent.GaveUp : ExecutorEvent.Failed);
  }

  /** Removes retiring queues that are empty; closes the executor when none is left. */
  async #retireDrained(): Promise<void> {
    if (this.#inflightAdds > 0) return;
    const stats = this.#store.stats();
    for (const q of this.#queues) {
      if (!q.retiring || (stats.queues[q.name]?.length ?? 0) > 0) continue;
      // Drained: nothing stored above the checkpoint (the last read found nothing, so nothing live is left).
      await this.#store.removeQueue(q.name);
      this.#queues = this.#queues.filter((x) => x !== q);
      this.#log?.info({ endpoint: this.endpoint.id, queue: q.name }, 'Retired endpoint queue drained and removed');
    }
    if (this.#retiring && this.#queues.length === 0) {
      this.#fire(ExecutorEvent.Close);
      void this.close().then(
        () => this.#onRetired?.(this),
        (err: unknown) => this.#log?.warn({ endpoint: this.endpoint.id, err }, 'Closing a retired endpoint failed'),
      );
    }
  }
}

function sameMessages(a: readonly StoredMessage[], b: readonly StoredMessage[]): boolean {
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

function allFailed(batch: readonly StoredMessage[], kind: FailureKind, cause: unknown): SinkResult {
  return { succeeded: [], failed: batch, invalid: [], failure: { kind, cause } };
}
