/**
 * The edge hub engine's ports and values: messages as the edge hub stores them, endpoints (destinations), the
 * durable per-queue message store and its checkpointer. Modelled on Azure IoT Edge's Routing.Core (`IMessageStore`,
 * `ICheckpointer`, `ISinkResult`, `FailureKind`). Pure types: no I/O.
 */
import type { MessageSource } from '../message.js';
import type { RouteSink } from '../route.js';

/**
 * A message inside the edge hub. Property bags are null-prototype records: keys such as `__proto__` or
 * `constructor` are ordinary data.
 */
export interface EdgeMessage {
  /** Unique per edge hub (e.g. a time-ordered random id). */
  readonly id: string;
  readonly body: Uint8Array;
  /** Application properties. */
  readonly properties: Readonly<Record<string, string>>;
  /**
   * System properties: `messageId`, `correlationId`, `contentType`, `contentEncoding`, `connectionDeviceId`,
   * `connectionModuleId`, `outputName`, …
   */
  readonly systemProperties: Readonly<Record<string, string>>;
  /** Telemetry (device, module, output) or a twin-change notification. */
  readonly source: MessageSource;
  /** Milliseconds since the epoch, set by the edge hub on receipt. TTLs count from here. */
  readonly enqueuedAt: number;
}

/** A message in one store queue. */
export interface StoredMessage {
  /** Position in its queue: 0, 1, 2, … in the order `add` was called. */
  readonly offset: bigint;
  readonly message: EdgeMessage;
  /** Milliseconds since the epoch after which the message is dropped (counted as expired); `Infinity` = never. */
  readonly expiresAt: number;
}

/** Why an endpoint failed a batch (Routing.Core `FailureKind`). Names, not numbers. */
export const FailureKind = {
  Transient: 'Transient',
  Throttled: 'Throttled',
  Timeout: 'Timeout',
  InvalidInput: 'InvalidInput',
  Unauthorized: 'Unauthorized',
  NoConnection: 'NoConnection',
} as const;
export type FailureKind = (typeof FailureKind)[keyof typeof FailureKind];

/** A message the endpoint will never accept: checkpointed (dropped, counted as invalid) and never retried. */
export interface InvalidMessage {
  readonly message: StoredMessage;
  readonly reason: string;
}

/**
 * What an endpoint did with a batch (Routing.Core `ISinkResult`). Every message of the batch is in exactly one of
 * `succeeded`, `failed` (retried later) and `invalid` (dropped); a message in none of them counts as failed.
 */
export interface SinkResult {
  readonly succeeded: readonly StoredMessage[];
  readonly failed: readonly StoredMessage[];
  readonly invalid: readonly InvalidMessage[];
  /** Why `failed` is not empty. */
  readonly failure?: { readonly kind: FailureKind; readonly cause: unknown };
}

/**
 * A destination. `process` never throws or rejects: failures are reported in the result. It is called by one
 * executor pump at a time per endpoint (never concurrently for one endpoint), with batches in queue order. When
 * `signal` aborts (the executor's send timeout, or close), `process` should settle promptly; its late result is
 * ignored and the whole batch is retried.
 */
export interface Endpoint {
  /** Stable identity; the router uses `sinkKey(sink)` (`$upstream`, `/modules/<m>/inputs/<i>`). */
  readonly id: string;
  process(batch: readonly StoredMessage[], signal: AbortSignal, context?: BatchContext): Promise<SinkResult>;
  /** Releases the endpoint's resources; called once, after its last `process` settled. */
  close?(): Promise<void>;
}

/** What the executor tells an endpoint about a batch: every message of it comes from the queue of `priority`. */
export interface BatchContext {
  readonly priority: number;
}

/** Given to an {@link EndpointFactory}: how an endpoint tells its executor about the destination. */
export interface EndpointHooks {
  /**
   * The destination became reachable (a module connected, the upstream link is back): a failing or dead executor
   * retries at once instead of waiting out its backoff. Cheap and safe to call at any time, from any state.
   */
  available(): void;
}

/** Makes the endpoint for a route sink (`$upstream`, `BrokeredEndpoint("/modules/m/inputs/i")`). */
export type EndpointFactory = (sink: RouteSink, hooks: EndpointHooks) => Endpoint;

/**
 * A queue's checkpoint (Routing.Core `ICheckpointer`): the offset up to which every message has been handled
 * (delivered, expired or invalid).
 */
export interface Checkpointer {
  /** The highest handled offset; `-1n` when none. Only grows. */
  readonly offset: bigint;
  /**
   * Marks every message with an offset `<= upTo` as handled; smaller values than {@link offset} are ignored.
   * Resolves once recorded (a durable store may persist checkpoints lazily: a crash then redelivers, never loses).
   */
  commit(upTo: bigint): Promise<void>;
}

/** Per-queue numbers of a {@link MessageStore}. */
export interface QueueStats {
  /** Messages added and not yet below the checkpoint (including expired ones not yet purged). */
  readonly length: number;
  /** The offset the next `add` gets. */
  readonly nextOffset: bigint;
  /** The queue's checkpoint ({@link Checkpointer.offset}). */
  readonly checkpoint: bigint;
  /** Messages the store dropped unread because their TTL passed. */
  readonly expired: number;
  /** Messages the store dropped to stay within its disk quota. */
  readonly evicted: number;
}

/** Store-wide numbers of a {@link MessageStore}. */
export interface MessageStoreStats {
  /** Bytes used (on disk for a durable store). */
  readonly bytes: number;
  /** The quota in bytes; `Infinity` when none. */
  readonly maxBytes: number;
  /** Adds refused because the store was full (policy `rejectNew`). */
  readonly rejected: number;
  readonly queues: Readonly<Record<string, QueueStats>>;
}

/**
 * The durable store: one ordered queue per (endpoint, priority), each with a checkpoint. Exact semantics are
 * defined by the contract suite `describeMessageStore`, which every implementation runs. Queue names are opaque.
 */
export interface MessageStore {
  /** Creates the queue if it does not exist (idempotent). */
  addQueue(queue: string): Promise<void>;
  /**
   * Appends a message; offsets are assigned in call order. `ttlSeconds < 0` (or not finite) means it never expires;
   * otherwise it expires at `message.enqueuedAt + ttlSeconds * 1000`. Resolves only once the message is durable under
   * the store's fsync policy; rejects ({@link UnknownQueueError}, {@link StoreFullError}, I/O errors) otherwise.
   */
  add(queue: string, message: EdgeMessage, ttlSeconds: number): Promise<StoredMessage>;
  /**
   * Up to `limit` messages with offset `>= fromOffset`, in offset order, skipping offsets the store dropped. Never
   * returns a message whose `add` has not resolved. Messages at or below the checkpoint may or may not be returned.
   */
  read(queue: string, fromOffset: bigint, limit: number): Promise<StoredMessage[]>;
  /** Deletes the queue, its messages and its checkpoint (idempotent). */
  removeQueue(queue: string): Promise<void>;
  /** The queue's checkpointer; the same state for every call. */
  checkpointer(queue: string): Promise<Checkpointer>;
  /** Names of the queues that exist (including ones recovered from disk). */
  queues(): readonly string[];
  stats(): MessageStoreStats;
  /** Flushes what is pending (checkpoints included) and releases resources; idempotent. Later calls reject. */
  close(): Promise<void>;
}

/** Codes of the errors the engine and stores raise; classify by `code`, never by message. */
export const EngineErrorCode = {
  UnknownQueue: 'EDGE_ERR_UNKNOWN_QUEUE',
  StoreFull: 'EDGE_ERR_STORE_FULL',
  StoreClosed: 'EDGE_ERR_STORE_CLOSED',
  MessageTooLarge: 'EDGE_ERR_MESSAGE_TOO_LARGE',
  RouterClosed: 'EDGE_ERR_ROUTER_CLOSED',
  /** A durable store's write or fsync failed; it refuses writes until reopened (the operator must look at the disk). */
  StoreFailed: 'EDGE_ERR_STORE_FAILED',
} as const;
export type EngineErrorCode = (typeof EngineErrorCode)[keyof typeof EngineErrorCode];

/** An error of the edge hub engine or a store, classified by {@link EngineErrorCode}. */
export class EngineError extends Error {
  readonly code: EngineErrorCode;
  constructor(code: EngineErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'EngineError';
    this.code = code;
  }
}

/** `add`/`read`/`checkpointer` named a queue that does not exist. */
export class UnknownQueueError extends EngineError {
  constructor(queue: string) {
    super(EngineErrorCode.UnknownQueue, `Unknown store queue ${JSON.stringify(queue)}`);
    this.name = 'UnknownQueueError';
  }
}

/** The store is at its quota and its policy refuses new messages. */
export class StoreFullError extends EngineError {
  constructor(message: string) {
    super(EngineErrorCode.StoreFull, message);
    this.name = 'StoreFullError';
  }
}

/** The store (or router) was closed. */
export class StoreClosedError extends EngineError {
  constructor(what = 'Message store') {
    super(EngineErrorCode.StoreClosed, `${what} is closed`);
    this.name = 'StoreClosedError';
  }
}

/**
 * Time for the engine: `@kedge/contracts`' clock, read as wall-clock milliseconds (TTLs are absolute times) with
 * timers. Injected; tests use `FakeClock`.
 */
import type { Clock } from '@kedge/contracts';
export type { Clock, TimerHandle } from '@kedge/contracts';

/** The subset of a pino logger the engine uses. */
export interface EngineLogger {
  debug(obj: object, msg: string): void;
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
  error(obj: object, msg: string): void;
}

/** An endpoint executor's state (see `EXECUTOR_TRANSITIONS`). */
export const ExecutorState = {
  /** Nothing to send. */
  Idle: 'idle',
  /** A batch is with the endpoint. */
  Sending: 'sending',
  /** The last batch failed; waiting out a jittered exponential backoff before retrying it. */
  Failing: 'failing',
  /** Retries exhausted: no sends until the revive period passes or the endpoint reports `available()`. */
  Dead: 'dead',
  /** Out of dead: one probe batch is with the endpoint; success resumes, failure goes back to dead. */
  Revived: 'revived',
  Closed: 'closed',
} as const;
export type ExecutorState = (typeof ExecutorState)[keyof typeof ExecutorState];

/** Counters of one endpoint queue (endpoint × priority). */
export interface QueueStatus {
  readonly queue: string;
  readonly priority: number;
  /** Messages stored and not yet handled. */
  readonly length: number;
  readonly delivered: number;
  /** Messages dropped, by reason; every stored message ends delivered or in exactly one of these. */
  readonly dropped: { readonly expired: number; readonly evicted: number; readonly invalid: number };
}

/** One endpoint's executor. */
export interface EndpointStatus {
  readonly id: string;
  readonly state: ExecutorState;
  /** True once its routes were removed: it closes after its queues drain or expire. */
  readonly retiring: boolean;
  /** Consecutive failed attempts of the current batch. */
  readonly failedAttempts: number;
  readonly lastFailure?: { readonly kind: FailureKind; readonly at: number };
  readonly queues: readonly QueueStatus[];
}

/** What {@link Router.status} reports, for metrics and `$edgeHub` reported properties. */
export interface RouterStatus {
  /** Messages given to `route()` that matched at least one route. */
  readonly routed: number;
  /** Messages given to `route()` that matched none (still acknowledged to the sender). */
  readonly unrouted: number;
  readonly endpoints: readonly EndpointStatus[];
  readonly store: MessageStoreStats;
}

/** Where one routed message went. */
export interface Delivery {
  readonly route: string;
  readonly endpoint: string;
  readonly priority: number;
  readonly queue: string;
  readonly offset: bigint;
  readonly expiresAt: number;
}

/** The result of `Router.route`: empty `deliveries` means no route matched. */
export interface RouteOutcome {
  readonly deliveries: readonly Delivery[];
}

/** Retry policy of an endpoint executor: jittered exponential backoff, then dead until revived. */
export interface RetryOptions {
  /** Delay before the first retry. @default 1000 */
  readonly initialDelayMs?: number;
  /** Backoff cap. @default 60000 */
  readonly maxDelayMs?: number;
  /** Consecutive failures of one batch before the executor is dead. @default 20 */
  readonly maxRetries?: number;
  /** How long a dead executor waits before a probe batch (unless the endpoint reports `available()`). @default 600000 */
  readonly revivePeriodMs?: number;
  /** Fraction of each delay that is random: delay × (1 − jitter × random()). @default 0.5 */
  readonly jitter?: number;
}

/** Settings of every endpoint executor. */
export interface ExecutorOptions {
  /** Messages per `process` call. @default 100 */
  readonly batchSize?: number;
  /** A `process` call not settled after this is aborted and its batch retried (FailureKind.Timeout). @default 30000 */
  readonly sendTimeoutMs?: number;
  readonly retry?: RetryOptions;
  /**
   * Told of the messages an executor drops because their TTL passed (after they are counted as expired), with the
   * endpoint and the queue priority, so a caller can attribute drops to senders. Expired messages the store drops
   * itself (whole segments, unread) are only counted in `QueueStatus.dropped.expired`. Must not throw.
   */
  readonly onExpired?: (endpointId: string, priority: number, messages: readonly StoredMessage[]) => void;
}

/** Dependencies and settings of a `Router`. */
export interface RouterOptions {
  readonly store: MessageStore;
  readonly endpoints: EndpointFactory;
  /** @default the system clock (`Date.now`, unref'd timers) */
  readonly clock?: Clock;
  readonly log?: EngineLogger;
  readonly executor?: ExecutorOptions;
  /** Random numbers in [0, 1) for backoff jitter. @default Math.random */
  readonly random?: () => number;
}
