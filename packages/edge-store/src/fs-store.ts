import { mkdir, open, readdir, readFile, unlink, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import {
  EngineError,
  EngineErrorCode,
  StoreClosedError,
  StoreFullError,
  UnknownQueueError,
  expiryOf,
  type Checkpointer,
  type EdgeMessage,
  type EngineLogger,
  type MessageStore,
  type MessageStoreStats,
  type QueueStats,
  type StoredMessage,
} from '@kedge/routing';
import { crcOk, decodeRecord, encodeRecord, readHead } from './record.js';
import { fsyncDir, readState, writeState, type PersistedQueue } from './state-file.js';

/**
 * When an `add()` resolves, and what a crash can lose (ADR 0008):
 * - `group` (default): after the `fdatasync` that covers it; concurrent adds share one. Nothing acknowledged is lost.
 * - `always`: after its own write and `fdatasync` (one record per sync). Nothing acknowledged is lost; slowest.
 * - `interval`: after `write()` (in the kernel's page cache), synced every `ms`. A process crash loses nothing; a
 *   power loss or kernel crash loses up to `ms` of acknowledged messages.
 */
export type FsyncPolicy = { readonly kind: 'group' } | { readonly kind: 'always' } | { readonly kind: 'interval'; readonly ms: number };

/** What the store does when an add would exceed `maxBytes`. */
export type OnFull = 'evictOldest' | 'rejectNew';

/** Options of {@link openMessageStore}. */
export interface FsMessageStoreOptions {
  /** `group`, `always` or `interval:<ms>`, or a parsed {@link FsyncPolicy}. @default 'group' */
  readonly fsync?: FsyncPolicy | string;
  /** Disk quota for segment files, in bytes. @default Infinity */
  readonly maxBytes?: number;
  /**
   * At the quota: `evictOldest` deletes the oldest segment (every queue's messages in it; counted as evicted per
   * queue) so new messages are always accepted; `rejectNew` keeps what is stored and rejects the add with
   * `StoreFullError` (counted as rejected). Segments whose messages are all delivered or expired go first either way.
   * @default 'evictOldest'
   */
  readonly onFull?: OnFull;
  /** Size at which the active segment is sealed and a new one started; at most a quarter of `maxBytes`. @default 16 MiB */
  readonly segmentBytes?: number;
  /** Memory for recently added messages, so caught-up executors read without disk I/O. @default 32 MiB */
  readonly cacheBytes?: number;
  /** How often changed checkpoints are written (a crash redelivers at most this much). @default 1000 */
  readonly checkpointFlushMs?: number;
  /** How often segments that are delivered or expired are deleted (also after commits and when full). @default 30000 */
  readonly sweepIntervalMs?: number;
  /** Wall-clock milliseconds, for TTL expiry. @default Date.now */
  readonly now?: () => number;
  readonly log?: EngineLogger;
}

/** Parses `group`, `always` or `interval:<ms>` (1 ≤ ms ≤ 60000). Throws `RangeError` otherwise. */
export function parseFsyncPolicy(text: string): FsyncPolicy {
  if (text === 'group') return { kind: 'group' };
  if (text === 'always') return { kind: 'always' };
  const m = /^interval:(\d{1,5})$/.exec(text);
  const ms = m ? Number(m[1]) : NaN;
  if (ms >= 1 && ms <= 60_000) return { kind: 'interval', ms };
  throw new RangeError(`fsync policy must be "group", "always" or "interval:<ms>" (1..60000), got ${JSON.stringify(text)}`);
}

const MAGIC = Buffer.from('KEDGESEG', 'ascii');
const SEGMENT_VERSION = 1;
const SEGMENT_HEADER = 16;
const READ_CHUNK = 256 * 1024;
const MiB = 1024 * 1024;

interface Range {
  first: bigint;
  last: bigint;
  maxExpiresAt: number;
}

interface Segment {
  readonly id: number;
  readonly path: string;
  /** Bytes durable per the fsync policy (readers never look past this). */
  size: number;
  /** Bytes written (the next write's position): `size` plus batches whose `fdatasync` has not returned yet. */
  written: number;
  readonly ranges: Map<number, Range>;
  writer?: FileHandle | undefined;
  reader?: Promise<FileHandle> | undefined;
  /** Reads in progress on `reader`; a dropped segment's reader closes when the last one ends. */
  reading: number;
  dropped: boolean;
}

interface QueueState {
  readonly name: string;
  readonly id: number;
  next: bigint;
  /** Offsets below this are durable and readable. */
  durableNext: bigint;
  checkpoint: bigint;
  /** Recently added messages: `cache[cacheHead…]` are offsets `cacheStart…`, contiguous. */
  cache: { stored: StoredMessage; bytes: number }[];
  cacheHead: number;
  cacheStart: bigint;
  cursor?: { seg: Segment; pos: number; offset: bigint } | undefined;
  expired: number;
  evicted: number;
  removed: boolean;
  ready: Promise<void>;
  readonly checkpointer: Checkpointer;
}

interface PendingAdd {
  readonly q: QueueState;
  readonly stored: StoredMessage;
  readonly buf: Buffer;
  readonly resolve: (s: StoredMessage) => void;
  readonly reject: (e: Error) => void;
}

const segmentName = (id: number): string => `${String(id).padStart(20, '0')}.seg`;

/**
 * Opens (creating if needed) the durable message store in `dir` and recovers it: segments are scanned, records
 * checked by CRC, and a torn or corrupt tail is truncated (counted in `recovery.truncatedBytes`). One process per
 * directory.
 */
export async function openMessageStore(dir: string, options: FsMessageStoreOptions = {}): Promise<FsMessageStore> {
  await mkdir(dir, { recursive: true });
  const store = new FsMessageStore(dir, options);
  await store.recover();
  return store;
}

/** Numbers of one {@link FsMessageStore} beyond `MessageStoreStats`. */
export interface FsStoreStats extends MessageStoreStats {
  readonly segments: number;
  /** Write batches and fdatasyncs done (group commit: many adds per fsync). */
  readonly batches: number;
  readonly fsyncs: number;
  readonly recovery: { readonly truncatedBytes: number; readonly segmentsScanned: number; readonly records: number };
}

/**
 * The durable `MessageStore` (ADR 0008): one shared append-only log of segment files for every queue, written with
 * group commit, a small atomically replaced state file for queues and checkpoints, and in-memory per-segment
 * indexes (offset range and latest expiry per queue) so delivered, expired and evicted segments are deleted whole,
 * without reading them. Passes `describeMessageStore`.
 */
export class FsMessageStore implements MessageStore {
  readonly #dir: string;
  readonly #policy: FsyncPolicy;
  readonly #maxBytes: number;
  readonly #onFull: OnFull;
  readonly #segmentBytes: number;
  readonly #budget: number;
  readonly #maxRecord: number;
  readonly #cacheLimit: number;
  readonly #checkpointFlushMs: number;
  readonly #sweepMs: number;
  readonly #now: () => number;
  readonly #log: EngineLogger | undefined;

  readonly #queues = new Map<string, QueueState>();
  readonly #byId = new Map<number, QueueState>();
  #nextQueueId = 1;
  #segments: Segment[] = [];
  #bytes = 0;
  #pendingBytes = 0;
  #cacheBytes = 0;
  #pending: PendingAdd[] = [];
  #flushing: Promise<void> | undefined;
  #flushScheduled = false;
  /** Wakes a flush loop that waits for an outstanding `fdatasync` when adds arrive meanwhile. */
  #wake: (() => void) | undefined;
  #wakeScheduled = false;
  #failed: EngineError | undefined;
  #closed: Promise<void> | undefined;
  #rejected = 0;
  #batches = 0;
  #fsyncs = 0;
  #recovery = { truncatedBytes: 0, segmentsScanned: 0, records: 0 };
  #metaChain: Promise<void> = Promise.resolve();
  #metaTimer: ReturnType<typeof setTimeout> | undefined;
  #metaDirty = false;
  #reclaimScheduled = false;
  #unlinks: Promise<void> = Promise.resolve();
  /** Dropped segments whose deletion waits for a state file write (the last one failed). */
  #kept: Segment[] = [];
  #sweepTimer: ReturnType<typeof setInterval> | undefined;
  /** The next segment, created and preallocated ahead of time so a roll does not wait for it. */
  #spare: Promise<Segment | undefined> | undefined;
  #sealing: Promise<void> = Promise.resolve();
  #syncTimer: ReturnType<typeof setInterval> | undefined;
  #unsynced = false;

  /** Use {@link openMessageStore}. */
  constructor(dir: string, o: FsMessageStoreOptions) {
    this.#dir = dir;
    this.#policy = typeof o.fsync === 'string' ? parseFsyncPolicy(o.fsync) : (o.fsync ?? { kind: 'group' });
    this.#maxBytes = o.maxBytes ?? Number.POSITIVE_INFINITY;
    this.#onFull = o.onFull ?? 'evictOldest';
    this.#segmentBytes = Math.max(64 * 1024, Math.min(o.segmentBytes ?? 16 * MiB, Math.floor(this.#maxBytes / 8)));
    // The active and the spare segment are preallocated in full: the records' budget leaves room for both.
    this.#budget = this.#maxBytes - 2 * this.#segmentBytes;
    this.#maxRecord = this.#segmentBytes - SEGMENT_HEADER;
    this.#cacheLimit = o.cacheBytes ?? 32 * MiB;
    this.#checkpointFlushMs = o.checkpointFlushMs ?? 1000;
    this.#sweepMs = o.sweepIntervalMs ?? 30_000;
    this.#now = o.now ?? Date.now;
    this.#log = o.log;
  }

  // ---- recovery -------------------------------------------------------------------------------------------------

  /** Loads the state file and scans the segments. Called once by {@link openMessageStore}. */
  async recover(): Promise<void> {
    const state = await readState(this.#dir);
    this.#nextQueueId = state.nextQueueId;
    for (const p of state.queues) this.#install(p);
    const files = (await readdir(this.#dir)).filter((f) => /^\d{20}\.seg$/.test(f)).sort();
    let lastId = 0;
    for (const f of files) {
      const id = Number(f.slice(0, 20));
      lastId = Math.max(lastId, id);
      await this.#scan(id, join(this.#dir, f));
    }
    for (const q of this.#queues.values()) {
      if (q.next <= q.checkpoint) q.next = q.checkpoint + 1n;
      q.durableNext = q.next;
      q.cacheStart = q.next;
    }
    const active = await this.#createSegment(lastId + 1);
    this.#segments.push(active);
    this.#bytes += active.size;
    this.#spare = this.#prepareSpare(lastId + 2);
    this.#sweepTimer = setInterval(() => this.#reclaim(), this.#sweepMs);
    this.#sweepTimer.unref();
    if (this.#policy.kind === 'interval') {
      this.#syncTimer = setInterval(() => void this.#intervalSync(), this.#policy.ms);
      this.#syncTimer.unref();
    }
    this.#reclaim();
  }

  #install(p: PersistedQueue): QueueState {
    const q: QueueState = {
      name: p.name,
      id: p.id,
      next: p.checkpoint + 1n,
      durableNext: p.checkpoint + 1n,
      checkpoint: p.checkpoint,
      cache: [],
      cacheHead: 0,
      cacheStart: p.checkpoint + 1n,
      expired: 0,
      evicted: 0,
      removed: false,
      ready: Promise.resolve(),
      checkpointer: undefined as unknown as Checkpointer,
    };
    (q as { checkpointer: Checkpointer }).checkpointer = {
      get offset() {
        return q.checkpoint;
      },
      commit: (upTo: bigint) => this.#commit(q, upTo),
    };
    this.#queues.set(q.name, q);
    this.#byId.set(q.id, q);
    return q;
  }

  async #scan(id: number, path: string): Promise<void> {
    const buf = await readFile(path);
    this.#recovery.segmentsScanned++;
    if (buf.length < SEGMENT_HEADER || !buf.subarray(0, 8).equals(MAGIC)) {
      // A segment whose header never made it to disk holds no acknowledged record (the header is synced first).
      this.#log?.warn({ path, bytes: buf.length }, 'Deleting a segment without a valid header');
      this.#recovery.truncatedBytes += buf.length;
      await unlink(path);
      return;
    }
    const seg: Segment = { id, path, size: SEGMENT_HEADER, written: SEGMENT_HEADER, ranges: new Map(), reading: 0, dropped: false };
    let pos = SEGMENT_HEADER;
    for (;;) {
      const head = readHead(buf, pos, buf.length, true, this.#maxRecord);
      if (head === undefined) break;
      this.#recovery.records++;
      const q = this.#byId.get(head.queueId);
      if (q !== undefined) {
        addToRange(seg, head.queueId, head.offset, head.expiresAt);
        if (head.offset >= q.next) q.next = head.offset + 1n;
      }
      pos += head.size;
    }
    if (pos < buf.length) {
      // Zeros are preallocated space. Anything else is a torn last write (a crash mid-batch: none of its adds had
      // resolved) or corruption: keep what precedes it.
      if (!isZero(buf, pos)) {
        this.#recovery.truncatedBytes += buf.length - pos;
        this.#log?.warn({ path, at: pos, dropped: buf.length - pos }, 'Truncating a torn or corrupt segment tail');
      }
      const fh = await open(path, 'r+');
      try {
        await fh.truncate(pos);
        await fh.sync();
      } finally {
        await fh.close();
      }
    }
    seg.size = seg.written = pos;
    if (seg.ranges.size === 0) {
      await unlink(path);
      return;
    }
    this.#segments.push(seg);
    this.#bytes += seg.size;
  }

  /**
   * Creates segment `id` preallocated to its full size with zeros: appending inside an allocated, written file lets
   * `fdatasync` skip the metadata journal commit a growing file needs (as PostgreSQL does with its WAL segments).
   * Zeros also end a recovery scan cleanly. The header and the directory entry are synced before any record goes in.
   */
  async #createSegment(id: number): Promise<Segment> {
    const path = join(this.#dir, segmentName(id));
    const fh = await open(path, 'wx');
    try {
      const zeros = Buffer.alloc(Math.min(MiB, this.#segmentBytes));
      for (let at = 0; at < this.#segmentBytes; at += zeros.length) await writeAll(fh, zeros.subarray(0, Math.min(zeros.length, this.#segmentBytes - at)), at);
      const header = Buffer.alloc(SEGMENT_HEADER);
      MAGIC.copy(header, 0);
      header.writeUInt32LE(SEGMENT_VERSION, 8);
      header.writeUInt32LE(id, 12);
      await writeAll(fh, header, 0);
      await fh.sync();
      await fsyncDir(this.#dir);
    } catch (err) {
      await fh.close();
      throw err;
    }
    return { id, path, size: SEGMENT_HEADER, written: SEGMENT_HEADER, ranges: new Map(), writer: fh, reading: 0, dropped: false };
  }

  #prepareSpare(id: number): Promise<Segment | undefined> {
    return this.#createSegment(id).catch((err: unknown) => {
      this.#log?.warn({ err, dir: this.#dir }, 'Preparing the next store segment failed; retrying at the next roll');
      return undefined;
    });
  }

  get #active(): Segment {
    return this.#segments[this.#segments.length - 1] as Segment;
  }

  // ---- queues ---------------------------------------------------------------------------------------------------

  #queue(name: string): QueueState {
    if (this.#closed !== undefined) throw new StoreClosedError();
    const q = this.#queues.get(name);
    if (q === undefined) throw new UnknownQueueError(name);
    return q;
  }

  addQueue(queue: string): Promise<void> {
    if (this.#closed !== undefined) return Promise.reject(new StoreClosedError());
    const existing = this.#queues.get(queue);
    if (existing !== undefined) return existing.ready;
    const q = this.#install({ name: queue, id: this.#nextQueueId++, checkpoint: -1n });
    q.ready = this.#writeMeta();
    return q.ready;
  }

  removeQueue(queue: string): Promise<void> {
    if (this.#closed !== undefined) return Promise.reject(new StoreClosedError());
    const q = this.#queues.get(queue);
    if (q === undefined) return this.#metaChain;
    q.removed = true;
    this.#queues.delete(queue);
    this.#byId.delete(q.id);
    this.#dropCache(q);
    const done = this.#writeMeta();
    this.#scheduleReclaim();
    return done;
  }

  queues(): readonly string[] {
    return [...this.#queues.keys()];
  }

  checkpointer(queue: string): Promise<Checkpointer> {
    return settled(() => this.#queue(queue).checkpointer);
  }

  #commit(q: QueueState, upTo: bigint): Promise<void> {
    if (q.removed) return Promise.resolve();
    const max = q.next - 1n;
    const v = upTo > max ? max : upTo;
    if (v <= q.checkpoint) return Promise.resolve();
    q.checkpoint = v;
    this.#trimCache(q);
    this.#metaDirty = true;
    if (this.#metaTimer === undefined && this.#closed === undefined) {
      this.#metaTimer = setTimeout(() => {
        this.#metaTimer = undefined;
        if (this.#metaDirty) void this.#writeMeta().catch((err: unknown) => this.#log?.warn({ err }, 'Writing store checkpoints failed; retrying'));
      }, this.#checkpointFlushMs);
      this.#metaTimer.unref();
    }
    this.#scheduleReclaim();
    return Promise.resolve();
  }

  /** Writes the state file (serialized; each write takes the state as it is when it starts). */
  #writeMeta(): Promise<void> {
    const run = this.#metaChain.then(() => {
      this.#metaDirty = false;
      const queues = [...this.#queues.values()].map((q) => ({ name: q.name, id: q.id, checkpoint: q.checkpoint }));
      return writeState(this.#dir, { nextQueueId: this.#nextQueueId, queues }).then(
        () => {
          // Dropped segments kept while the state file still pointed into them can go now.
          const kept = this.#kept.splice(0);
          if (kept.length > 0) this.#unlinks = this.#unlinks.then(async () => void (await Promise.all(kept.map((seg) => this.#deleteSegment(seg)))));
        },
        (err: unknown) => {
          this.#metaDirty = true;
          throw err;
        },
      );
    });
    this.#metaChain = run.catch(() => undefined);
    return run;
  }

  // ---- writes ---------------------------------------------------------------------------------------------------

  add(queue: string, message: EdgeMessage, ttlSeconds: number): Promise<StoredMessage> {
    if (this.#failed !== undefined) return Promise.reject(this.#failed);
    if (this.#closed !== undefined) return Promise.reject(new StoreClosedError());
    const q = this.#queues.get(queue);
    if (q === undefined) return Promise.reject(new UnknownQueueError(queue));
    const stored: StoredMessage = Object.freeze({ offset: q.next, message, expiresAt: expiryOf(message, ttlSeconds) });
    const buf = encodeRecord(q.id, stored);
    if (buf.length > this.#maxRecord) {
      return Promise.reject(new EngineError(EngineErrorCode.MessageTooLarge, `A ${buf.length}-byte record exceeds the store's ${this.#maxRecord}-byte limit`));
    }
    if (!this.#makeRoom(buf.length)) {
      this.#rejected++;
      const why = this.#onFull === 'rejectNew' ? 'its policy is rejectNew' : 'nothing older is left to evict (the rest is being written)';
      return Promise.reject(new StoreFullError(`Message store is full (${this.#bytes + this.#pendingBytes} of ${this.#maxBytes} bytes) and ${why}`));
    }
    q.next++;
    this.#cacheAppend(q, stored, buf.length);
    this.#pendingBytes += buf.length;
    return new Promise<StoredMessage>((resolve, reject) => {
      this.#pending.push({ q, stored, buf, resolve, reject });
      if (this.#flushing === undefined) {
        if (!this.#flushScheduled) {
          this.#flushScheduled = true;
          // setImmediate, not a microtask: adds arriving in the same I/O phase join this batch (group commit).
          setImmediate(() => this.#startFlush());
        }
      } else if (this.#wake !== undefined && !this.#wakeScheduled) {
        this.#wakeScheduled = true;
        setImmediate(() => {
          this.#wakeScheduled = false;
          const wake = this.#wake;
          this.#wake = undefined;
          wake?.();
        });
      }
    });
  }

  #startFlush(): void {
    this.#flushScheduled = false;
    if (this.#flushing !== undefined) return;
    this.#flushing = this.#flushLoop().finally(() => {
      this.#flushing = undefined;
      if (this.#pending.length > 0 && this.#failed === undefined) this.#startFlush();
    });
  }

  /**
   * Group commit, pipelined: the next batch is written while the previous batch's `fdatasync` runs (one outstanding
   * at most), so a batch's wait for the disk is not also the next batch's. Batches commit (become readable, resolve)
   * in order, each only after its own `fdatasync` returned, which was issued after every earlier write returned and so
   * covers them too. A failed write or sync fails its batch and every batch after it.
   */
  async #flushLoop(): Promise<void> {
    let older: Promise<boolean> = Promise.resolve(true);
    let last: Promise<boolean> = Promise.resolve(true);
    while (this.#failed === undefined) {
      if (this.#pending.length === 0) {
        // Nothing to write: wait for the outstanding commit, or for adds arriving meanwhile (written while it syncs).
        const more = new Promise<boolean>((resolve) => (this.#wake = () => resolve(false)));
        const committed = await Promise.race([last.then(() => true), more]);
        this.#wake = undefined;
        if (committed && this.#pending.length === 0) break;
        continue;
      }
      await older;
      if (this.#failed !== undefined) break;
      // `always`: one record per write+fsync. Otherwise everything waiting is one batch: one write, one fdatasync.
      const batch = this.#policy.kind === 'always' ? this.#pending.splice(0, 1) : this.#pending.splice(0);
      older = last;
      last = (await this.#writeBatch(batch, last)).commit;
    }
    await last;
  }

  /** Writes `batch`; resolves once written, with its commit (true once durable and resolved, false when it failed). */
  async #writeBatch(batch: PendingAdd[], previous: Promise<boolean>): Promise<{ commit: Promise<boolean> }> {
    let bytes = 0;
    for (const p of batch) bytes += p.buf.length;
    let seg: Segment;
    let synced: Promise<void>;
    try {
      if (this.#active.written > SEGMENT_HEADER && this.#active.written + bytes > this.#segmentBytes) {
        // Rolling seals (closes) the active segment: the writes on it commit first.
        if (!(await previous)) return { commit: this.#refuse(batch) };
        await this.#roll();
      }
      seg = this.#active;
      const data = batch.length === 1 ? (batch[0] as PendingAdd).buf : Buffer.concat(batch.map((p) => p.buf), bytes);
      await writeAll(seg.writer as FileHandle, data, seg.written);
      seg.written += bytes;
      if (this.#policy.kind === 'interval') {
        this.#unsynced = true;
        synced = Promise.resolve();
      } else synced = (seg.writer as FileHandle).datasync();
    } catch (err) {
      this.#fail(err, batch);
      return { commit: Promise.resolve(false) };
    }
    const commit = Promise.all([previous, synced]).then(
      ([ok]) => {
        if (this.#policy.kind !== 'interval') this.#fsyncs++;
        if (!ok) return this.#refuse(batch);
        for (const p of batch) {
          if (!p.q.removed) addToRange(seg, p.q.id, p.stored.offset, p.stored.expiresAt);
          if (p.q.durableNext <= p.stored.offset) p.q.durableNext = p.stored.offset + 1n;
        }
        seg.size += bytes;
        this.#bytes += bytes;
        this.#pendingBytes -= bytes;
        this.#batches++;
        for (const p of batch) p.resolve(p.stored);
        return true;
      },
      (err: unknown) => {
        this.#fail(err, batch);
        return false;
      },
    );
    return { commit };
  }

  /** Fails a written batch after an earlier batch failed: the store has failed (nothing after a failure commits). */
  #refuse(batch: PendingAdd[]): Promise<boolean> {
    this.#fail(new Error('an earlier write failed'), batch);
    return Promise.resolve(false);
  }

  /** Seals the active segment and starts the next one. */
  async #roll(): Promise<void> {
    const old = this.#active;
    if (this.#policy.kind === 'interval') await (old.writer as FileHandle).datasync();
    const next = (await this.#spare) ?? (await this.#createSegment(old.id + 1));
    this.#segments.push(next);
    this.#bytes += next.size;
    this.#spare = this.#prepareSpare(next.id + 1);
    // Sealing (cutting the unused preallocated tail, closing) is off the write path.
    const writer = old.writer as FileHandle;
    old.writer = undefined;
    this.#sealing = this.#sealing.then(() => seal(writer, old.size).catch((err: unknown) => this.#log?.warn({ err, path: old.path }, 'Sealing a store segment failed')));
    this.#reclaim();
  }

  async #intervalSync(): Promise<void> {
    if (!this.#unsynced || this.#failed !== undefined) return;
    this.#unsynced = false;
    const w = this.#active.writer;
    try {
      await w?.datasync();
      this.#fsyncs++;
    } catch (err) {
      // A closed handle after a roll is fine: the roll synced it.
      if ((err as NodeJS.ErrnoException).code !== 'EBADF') this.#fail(err, []);
    }
  }

  /** Refuses `batch` and everything waiting; the first failure stays the store's error until it is reopened. */
  #fail(err: unknown, batch: PendingAdd[]): void {
    if (this.#failed === undefined) {
      this.#failed = new EngineError(EngineErrorCode.StoreFailed, `Message store write failed: ${(err as Error).message}`, { cause: err });
      this.#log?.error({ err, dir: this.#dir }, 'Message store write failed; refusing writes until reopened');
    }
    const failed = this.#failed;
    const all = [...batch, ...this.#pending.splice(0)];
    for (const p of all) {
      // A refused add was never acknowledged: the queue's next offset (and its length) go back to it.
      if (p.stored.offset < p.q.next) p.q.next = p.stored.offset;
      this.#pendingBytes -= p.buf.length;
      p.reject(failed);
    }
  }

  // ---- quota, expiry, deletion ----------------------------------------------------------------------------------

  /** Makes room for `n` more bytes; false when the quota cannot be met under the policy. */
  #makeRoom(n: number): boolean {
    if (this.#bytes + this.#pendingBytes + n <= this.#budget) return true;
    this.#reclaim();
    while (this.#bytes + this.#pendingBytes + n > this.#budget) {
      if (this.#onFull !== 'evictOldest' || this.#segments.length < 2) return false;
      this.#drop(this.#segments[0] as Segment, 'evicted');
    }
    return true;
  }

  #scheduleReclaim(): void {
    if (this.#reclaimScheduled || this.#closed !== undefined) return;
    this.#reclaimScheduled = true;
    setImmediate(() => {
      this.#reclaimScheduled = false;
      this.#reclaim();
    });
  }

  /**
   * Deletes sealed segments in which every queue's messages are checkpointed or expired (without reading them: the
   * per-segment index has each queue's offset range and latest expiry). A queue's range expires only when nothing
   * of that queue before it is left, so checkpoints stay contiguous.
   */
  #reclaim(): void {
    if (this.#closed !== undefined) return;
    const now = this.#now();
    const blocked = new Set<number>();
    for (const seg of this.#segments.slice(0, -1)) {
      let ok = true;
      for (const [qid, r] of seg.ranges) {
        const q = this.#byId.get(qid);
        if (q === undefined || r.last <= q.checkpoint) continue;
        if (r.maxExpiresAt <= now && !blocked.has(qid)) continue;
        ok = false;
      }
      if (ok) this.#drop(seg, 'expired');
      else for (const [qid, r] of seg.ranges) if ((this.#byId.get(qid)?.checkpoint ?? r.last) < r.last) blocked.add(qid);
    }
  }

  /** Forgets a sealed segment now (its undelivered messages counted as `reason`) and deletes its file after. */
  #drop(seg: Segment, reason: 'expired' | 'evicted'): void {
    for (const [qid, r] of seg.ranges) {
      const q = this.#byId.get(qid);
      if (q === undefined || r.last <= q.checkpoint) continue;
      const from = q.checkpoint >= r.first ? q.checkpoint + 1n : r.first;
      const count = Number(r.last - from + 1n);
      if (reason === 'evicted') q.evicted += count;
      else q.expired += count;
      q.checkpoint = r.last;
      this.#trimCache(q);
      this.#metaDirty = true;
      this.#log?.[reason === 'evicted' ? 'warn' : 'debug']({ queue: q.name, count, reason }, 'Dropped stored messages');
    }
    for (const q of this.#queues.values()) if (q.cursor?.seg === seg) q.cursor = undefined;
    seg.dropped = true;
    this.#segments = this.#segments.filter((s) => s !== seg);
    this.#bytes -= seg.size;
    const metaFirst = this.#metaDirty;
    this.#unlinks = this.#unlinks.then(async () => {
      // Checkpoints first: a segment is never gone while the state file still points into it (a restart would find
      // neither its records nor the checkpoint past them, and could hand out their offsets again). Kept until a later
      // state write succeeds; a restart before that reads its records again (at least once).
      if (metaFirst) {
        try {
          await this.#writeMeta();
        } catch (err) {
          this.#log?.warn({ err, path: seg.path }, 'Writing store checkpoints failed; keeping a dropped segment until they are written');
          this.#kept.push(seg);
          return;
        }
      }
      await this.#deleteSegment(seg);
    });
  }

  async #deleteSegment(seg: Segment): Promise<void> {
    // A read in progress keeps its handle (Linux keeps an unlinked file's data until it is closed).
    if (seg.reading === 0) await closeReader(seg);
    await unlink(seg.path).catch((err: unknown) => this.#log?.warn({ err, path: seg.path }, 'Deleting a segment failed'));
  }

  // ---- cache ----------------------------------------------------------------------------------------------------

  #cacheAppend(q: QueueState, stored: StoredMessage, bytes: number): void {
    // An empty cache (re)starts at this offset: reads below it go to disk. Adds come in offset order per queue.
    const empty = q.cacheHead === q.cache.length;
    if (this.#cacheBytes + bytes <= this.#cacheLimit) {
      if (empty) {
        q.cache = [];
        q.cacheHead = 0;
        q.cacheStart = stored.offset;
      }
      q.cache.push({ stored, bytes });
      this.#cacheBytes += bytes;
      return;
    }
    // Over budget (a queue far behind): this queue reads from disk until it catches up with later adds.
    this.#dropCache(q);
    q.cacheStart = stored.offset + 1n;
  }

  #dropCache(q: QueueState): void {
    for (let i = q.cacheHead; i < q.cache.length; i++) this.#cacheBytes -= (q.cache[i] as { bytes: number }).bytes;
    q.cacheStart += BigInt(q.cache.length - q.cacheHead);
    q.cache = [];
    q.cacheHead = 0;
  }

  #trimCache(q: QueueState): void {
    while (q.cacheHead < q.cache.length && q.cacheStart <= q.checkpoint) {
      this.#cacheBytes -= (q.cache[q.cacheHead] as { bytes: number }).bytes;
      q.cacheHead++;
      q.cacheStart++;
    }
    if (q.cacheHead === q.cache.length) {
      q.cache = [];
      q.cacheHead = 0;
      if (q.cacheStart <= q.checkpoint) q.cacheStart = q.checkpoint + 1n;
    } else if (q.cacheHead > 1024 && q.cacheHead * 2 > q.cache.length) {
      q.cache = q.cache.slice(q.cacheHead);
      q.cacheHead = 0;
    }
  }

  // ---- reads ----------------------------------------------------------------------------------------------------

  async read(queue: string, fromOffset: bigint, limit: number): Promise<StoredMessage[]> {
    const q = this.#queue(queue);
    const out: StoredMessage[] = [];
    if (limit <= 0) return out;
    let next = fromOffset > q.checkpoint ? fromOffset : q.checkpoint + 1n;
    if (next < q.cacheStart && next < q.durableNext) {
      const stopAt = q.cacheStart < q.durableNext ? q.cacheStart : q.durableNext;
      await this.#readDisk(q, next, limit, stopAt, out);
      next = out.length > 0 ? (out[out.length - 1] as StoredMessage).offset + 1n : stopAt;
    }
    if (out.length < limit && next >= q.cacheStart) {
      for (let i = q.cacheHead + Number(next - q.cacheStart); i < q.cache.length && out.length < limit; i++) {
        const s = (q.cache[i] as { stored: StoredMessage }).stored;
        if (s.offset >= q.durableNext) break;
        out.push(s);
      }
    }
    return out;
  }

  async #readDisk(q: QueueState, from: bigint, limit: number, stopAt: bigint, out: StoredMessage[]): Promise<void> {
    for (const seg of [...this.#segments]) {
      const r = seg.ranges.get(q.id);
      if (r === undefined || r.last < from) continue;
      if (r.first >= stopAt) return;
      const pos = q.cursor !== undefined && q.cursor.seg === seg && q.cursor.offset <= from ? q.cursor.pos : SEGMENT_HEADER;
      if (seg.dropped) continue;
      seg.reader ??= open(seg.path, 'r');
      seg.reading++;
      try {
        if (await this.#readSegment(q, seg, pos, from, limit, stopAt, out)) return;
      } finally {
        if (--seg.reading === 0 && seg.dropped) await closeReader(seg);
      }
    }
  }

  /** Scans one segment from `pos` for `q`'s records in `[from, stopAt)`; true when `out` is full or complete. */
  async #readSegment(q: QueueState, seg: Segment, start: number, from: bigint, limit: number, stopAt: bigint, out: StoredMessage[]): Promise<boolean> {
    let pos = start;
      let seen = from;
      const end = seg.size;
      const fh = await (seg.reader as Promise<FileHandle>);
      while (pos < end) {
        const { buffer: buf, bytesRead } = await fh.read(Buffer.allocUnsafe(Math.min(READ_CHUNK, end - pos)), 0, Math.min(READ_CHUNK, end - pos), pos);
        let chunk = buf.subarray(0, bytesRead);
        let p = 0;
        if (readHead(chunk, 0, chunk.length, false, this.#maxRecord) === undefined && chunk.length >= 4) {
          // A record larger than one chunk: read exactly that record.
          const size = chunk.readUInt32LE(0) + 8;
          if (size > this.#maxRecord + 8 || pos + size > end) throw new EngineError(EngineErrorCode.StoreFailed, `Corrupt record in ${seg.path} at ${pos}`);
          const big = await fh.read(Buffer.allocUnsafe(size), 0, size, pos);
          chunk = big.buffer.subarray(0, big.bytesRead);
        }
        for (;;) {
          const head = readHead(chunk, p, chunk.length, false, this.#maxRecord);
          if (head === undefined) break;
          if (head.queueId === q.id && head.offset >= from && head.offset < stopAt) {
            if (!crcOk(chunk, p, head.size)) throw new EngineError(EngineErrorCode.StoreFailed, `Record CRC mismatch in ${seg.path} at ${pos + p}`);
            out.push(decodeRecord(chunk, p, head));
            seen = head.offset + 1n;
            if (out.length >= limit || seen >= stopAt) {
              q.cursor = { seg, pos: pos + p + head.size, offset: seen };
              return true;
            }
          } else if (head.queueId === q.id && head.offset >= seen) seen = head.offset + 1n;
          p += head.size;
        }
        if (p === 0) throw new EngineError(EngineErrorCode.StoreFailed, `Corrupt record in ${seg.path} at ${pos}`);
        pos += p;
      }
      q.cursor = { seg, pos, offset: seen };
    return false;
  }

  // ---- status, close --------------------------------------------------------------------------------------------

  stats(): FsStoreStats {
    const queues = Object.create(null) as Record<string, QueueStats>;
    for (const q of this.#queues.values()) {
      queues[q.name] = { length: Number(q.next - 1n - q.checkpoint), nextOffset: q.next, checkpoint: q.checkpoint, expired: q.expired, evicted: q.evicted };
    }
    return {
      bytes: this.#bytes + this.#pendingBytes,
      maxBytes: this.#maxBytes,
      rejected: this.#rejected,
      queues,
      segments: this.#segments.length,
      batches: this.#batches,
      fsyncs: this.#fsyncs,
      recovery: { ...this.#recovery },
    };
  }

  close(): Promise<void> {
    this.#closed ??= this.#close();
    return this.#closed;
  }

  async #close(): Promise<void> {
    clearInterval(this.#sweepTimer);
    clearInterval(this.#syncTimer);
    clearTimeout(this.#metaTimer);
    while (this.#flushing !== undefined || this.#pending.length > 0) {
      if (this.#flushing === undefined) this.#startFlush();
      await this.#flushing;
      if (this.#failed !== undefined) break;
    }
    await this.#unlinks;
    const spare = await this.#spare;
    if (spare !== undefined) {
      await spare.writer?.close().catch(() => undefined);
      await unlink(spare.path).catch(() => undefined);
    }
    await this.#sealing;
    await this.#writeMeta().catch((err: unknown) => this.#log?.warn({ err }, 'Writing store checkpoints at close failed'));
    // Segments kept for want of a state write are deleted once it succeeded.
    await this.#unlinks;
    for (const seg of this.#segments) {
      if (seg.writer !== undefined) {
        await seal(seg.writer, seg.size).catch((err: unknown) => this.#log?.warn({ err, path: seg.path }, 'Sealing a store segment failed'));
        seg.writer = undefined;
      }
      if (seg.reader !== undefined) await (await seg.reader).close().catch(() => undefined);
      seg.reader = undefined;
    }
  }
}

function addToRange(seg: Segment, qid: number, offset: bigint, expiresAt: number): void {
  const r = seg.ranges.get(qid);
  if (r === undefined) seg.ranges.set(qid, { first: offset, last: offset, maxExpiresAt: expiresAt });
  else {
    if (offset < r.first) r.first = offset;
    if (offset > r.last) r.last = offset;
    if (expiresAt > r.maxExpiresAt) r.maxExpiresAt = expiresAt;
  }
}

async function closeReader(seg: Segment): Promise<void> {
  const r = seg.reader;
  seg.reader = undefined;
  if (r !== undefined) await (await r).close().catch(() => undefined);
}

/** Syncs a segment, cuts its unused preallocated tail and closes it. */
async function seal(fh: FileHandle, size: number): Promise<void> {
  try {
    await fh.datasync();
    await fh.truncate(size);
    await fh.sync();
  } finally {
    await fh.close();
  }
}

/** True when `buf[from…]` is all zero bytes. */
function isZero(buf: Buffer, from: number): boolean {
  let i = from;
  for (; i + 8 <= buf.length; i += 8) if (buf.readBigUInt64LE(i) !== 0n) return false;
  for (; i < buf.length; i++) if (buf[i] !== 0) return false;
  return true;
}

async function writeAll(fh: FileHandle, data: Buffer, position: number): Promise<void> {
  let done = 0;
  while (done < data.length) {
    const { bytesWritten } = await fh.write(data, done, data.length - done, position + done);
    done += bytesWritten;
  }
}

function settled<T>(fn: () => T): Promise<T> {
  return new Promise<T>((resolve) => resolve(fn()));
}
