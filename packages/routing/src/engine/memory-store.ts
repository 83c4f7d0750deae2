import {
  StoreClosedError,
  UnknownQueueError,
  type Checkpointer,
  type EdgeMessage,
  type MessageStore,
  type MessageStoreStats,
  type QueueStats,
  type StoredMessage,
} from './types.js';

/** When a message added with `ttlSeconds` expires: `Infinity` for a negative or non-finite TTL. */
export function expiryOf(message: EdgeMessage, ttlSeconds: number): number {
  return Number.isFinite(ttlSeconds) && ttlSeconds >= 0 ? message.enqueuedAt + ttlSeconds * 1000 : Number.POSITIVE_INFINITY;
}

/** `fn()` as a promise: its value, or its throw as a rejection. */
function settled<T>(fn: () => T): Promise<T> {
  return new Promise<T>((resolve) => resolve(fn()));
}

class MemoryQueue implements Checkpointer {
  /** Messages above the checkpoint, in offset order. */
  messages: StoredMessage[] = [];
  next = 0n;
  #offset = -1n;

  get offset(): bigint {
    return this.#offset;
  }

  commit(upTo: bigint): Promise<void> {
    if (upTo > this.#offset) {
      this.#offset = upTo < this.next ? upTo : this.next - 1n;
      let drop = 0;
      while (drop < this.messages.length && (this.messages[drop] as StoredMessage).offset <= this.#offset) drop++;
      if (drop > 0) this.messages = this.messages.slice(drop);
    }
    return Promise.resolve();
  }
}

/**
 * A `MessageStore` in memory, for unit tests and for running without a disk: nothing survives the process. Passes
 * `describeMessageStore`. No quota and no expiry of its own (executors drop expired messages when they read them).
 */
export class MemoryMessageStore implements MessageStore {
  readonly #queues = new Map<string, MemoryQueue>();
  #closed = false;

  #queue(name: string): MemoryQueue {
    if (this.#closed) throw new StoreClosedError();
    const q = this.#queues.get(name);
    if (q === undefined) throw new UnknownQueueError(name);
    return q;
  }

  addQueue(queue: string): Promise<void> {
    if (this.#closed) return Promise.reject(new StoreClosedError());
    if (!this.#queues.has(queue)) this.#queues.set(queue, new MemoryQueue());
    return Promise.resolve();
  }

  add(queue: string, message: EdgeMessage, ttlSeconds: number): Promise<StoredMessage> {
    return settled(() => {
      const q = this.#queue(queue);
      const stored: StoredMessage = Object.freeze({ offset: q.next++, message, expiresAt: expiryOf(message, ttlSeconds) });
      q.messages.push(stored);
      return stored;
    });
  }

  read(queue: string, fromOffset: bigint, limit: number): Promise<StoredMessage[]> {
    return settled(() => {
      const q = this.#queue(queue);
      const out: StoredMessage[] = [];
      const first = q.messages[0];
      if (first === undefined || limit <= 0) return out;
      const start = fromOffset <= first.offset ? 0 : Number(fromOffset - first.offset);
      for (let i = start; i < q.messages.length && out.length < limit; i++) out.push(q.messages[i] as StoredMessage);
      return out;
    });
  }

  removeQueue(queue: string): Promise<void> {
    if (this.#closed) return Promise.reject(new StoreClosedError());
    this.#queues.delete(queue);
    return Promise.resolve();
  }

  checkpointer(queue: string): Promise<Checkpointer> {
    return settled((): Checkpointer => this.#queue(queue));
  }

  queues(): readonly string[] {
    return [...this.#queues.keys()];
  }

  stats(): MessageStoreStats {
    const queues: Record<string, QueueStats> = Object.create(null) as Record<string, QueueStats>;
    let bytes = 0;
    for (const [name, q] of this.#queues) {
      for (const m of q.messages) bytes += m.message.body.byteLength;
      queues[name] = { length: q.messages.length, nextOffset: q.next, checkpoint: q.offset, expired: 0, evicted: 0 };
    }
    return { bytes, maxBytes: Number.POSITIVE_INFINITY, rejected: 0, queues };
  }

  close(): Promise<void> {
    this.#closed = true;
    return Promise.resolve();
  }
}
