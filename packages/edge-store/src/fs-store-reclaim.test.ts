/**
 * FsMessageStore's quota, eviction and reclaim on a real directory: the quota at exactly its bound (and with adds
 * still pending), what eviction counts when a queue was part-way through the oldest segment, that checkpoints stay
 * contiguous (an expired segment behind an undelivered one is kept), that the state file is written before a
 * segment is deleted, and the sweep timer.
 */
import type { EdgeMessage } from '@kedge/routing';
import { afterEach, describe, expect, it } from 'vitest';
import { openMessageStore, type FsMessageStore } from './index.js';
import { readState } from './state-file.js';
import { captureLog, diskRecords, segmentFiles, sized, tempDirs, text, until } from './test-support/disk.js';

const tmp = tempDirs('kedge-edge-store-reclaim-');
afterEach(tmp.cleanup);

// maxBytes 512 KiB: 64 KiB segments (an eighth), a records' budget of 512 - 2 * 64 KiB.
const maxBytes = 512 * 1024;
const budget = maxBytes - 2 * 64 * 1024;
const queue = (s: FsMessageStore, q: string) => s.stats().queues[q];

describe('FsMessageStore quota', () => {
  for (const onFull of ['rejectNew', 'evictOldest'] as const) {
    it(`${onFull}: an add that ends exactly at the quota is accepted; one byte more is not (${onFull === 'rejectNew' ? 'rejected' : 'evicts'})`, async () => {
      const store = await openMessageStore(await tmp.make(), { maxBytes, onFull });
      await store.addQueue('q');
      // One 60000-byte record per 64 KiB segment.
      for (let i = 0; i < 6; i++) await store.add('q', sized(60_000), 3600);
      const remaining = budget - store.stats().bytes;
      expect(remaining).toBe(budget - 6 * 60_016);
      if (onFull === 'rejectNew') {
        await expect(store.add('q', sized(remaining + 1), 3600)).rejects.toMatchObject({ code: 'EDGE_ERR_STORE_FULL' });
        expect(store.stats().rejected).toBe(1);
      }
      await expect(store.add('q', sized(remaining), 3600)).resolves.toMatchObject({ offset: onFull === 'rejectNew' ? 6n : 6n });
      expect(queue(store, 'q')).toMatchObject({ evicted: 0, length: 7 });
      if (onFull === 'rejectNew') {
        await expect(store.add('q', sized(1000), 3600)).rejects.toMatchObject({
          code: 'EDGE_ERR_STORE_FULL',
          message: `Message store is full (${store.stats().bytes} of ${maxBytes} bytes) and its policy is rejectNew`,
        });
        expect(store.stats().rejected).toBe(2);
        expect(queue(store, 'q')).toMatchObject({ evicted: 0, length: 7 });
      } else {
        await expect(store.add('q', sized(1000), 3600)).resolves.toMatchObject({ offset: 7n });
        expect(queue(store, 'q')).toMatchObject({ evicted: 1, checkpoint: 0n, length: 7 });
        expect(store.stats().rejected).toBe(0);
      }
      await store.close();
    });
  }

  it('counts adds still pending against the quota; a burst beyond it with nothing to evict is refused either way', async () => {
    for (const onFull of ['rejectNew', 'evictOldest'] as const) {
      const store = await openMessageStore(await tmp.make(), { maxBytes, onFull });
      await store.addQueue('q');
      const first = Array.from({ length: 6 }, () => store.add('q', sized(60_000), 3600));
      const exact = store.add('q', sized(budget - 16 - 6 * 60_000), 3600);
      const over = store.add('q', sized(1000), 3600);
      await expect(over, onFull).rejects.toMatchObject({ code: 'EDGE_ERR_STORE_FULL' });
      await Promise.all([...first, exact]);
      expect(store.stats().rejected, onFull).toBe(1);
      expect(queue(store, 'q'), onFull).toMatchObject({ length: 7, evicted: 0 });
      expect((await store.read('q', 0n, 100)).map((m) => m.offset)).toEqual([0n, 1n, 2n, 3n, 4n, 5n, 6n]);
      await store.close();
    }
  });
});

describe('FsMessageStore eviction', () => {
  // 10000-byte records: six per 64 KiB segment.
  const fillUntilEvicted = async (store: FsMessageStore, q: string): Promise<number> => {
    let n = 0;
    while ((queue(store, q)?.evicted ?? 0) === 0) {
      await store.add(q, sized(10_000), 3600);
      if (++n > 100) throw new Error('nothing evicted');
    }
    return n;
  };

  for (const [commit, evicted] of [
    [undefined, 6],
    [0n, 5],
    [3n, 2],
  ] as const) {
    it(`counts only undelivered messages of the evicted segment (checkpoint ${commit ?? 'none'}: ${evicted}), and writes the checkpoint before deleting it`, async () => {
      const dir = await tmp.make();
      const log = captureLog();
      const store = await openMessageStore(dir, { maxBytes, checkpointFlushMs: 60_000, log });
      await store.addQueue('a');
      for (let i = 0; i < 6; i++) await store.add('a', sized(10_000), 3600);
      const oldest = (await segmentFiles(dir))[0] as string;
      if (commit !== undefined) await (await store.checkpointer('a')).commit(commit);
      await fillUntilEvicted(store, 'a');
      expect(queue(store, 'a')).toMatchObject({ evicted, checkpoint: 5n });
      expect(log.lines).toEqual([{ level: 'warn', obj: { queue: 'a', count: evicted, reason: 'evicted' }, msg: 'Dropped stored messages' }]);
      expect((await store.read('a', 0n, 1)).map((m) => m.offset)).toEqual([6n]);
      await until(async () => !(await segmentFiles(dir)).includes(oldest), 'the evicted segment deleted');
      expect((await readState(dir)).queues).toEqual([{ name: 'a', id: 1, checkpoint: 5n }]);
      await store.close();
    });
  }

  it('a queue delivered past the evicted segment keeps its checkpoint; a removed queue in it is ignored', async () => {
    const store = await openMessageStore(await tmp.make(), { maxBytes });
    for (const q of ['a', 'b', 'gone']) await store.addQueue(q);
    await store.add('a', sized(10_000), 3600);
    await store.add('b', sized(10_000), 3600);
    await store.add('gone', sized(10_000), 3600);
    await store.add('b', sized(10_000), 3600);
    await (await store.checkpointer('b')).commit(1n);
    await store.removeQueue('gone');
    let n = 0;
    while ((queue(store, 'a')?.evicted ?? 0) === 0) {
      await store.add('a', sized(10_000), 3600);
      if (++n > 100) throw new Error('nothing evicted');
    }
    expect(queue(store, 'b')).toMatchObject({ checkpoint: 1n, evicted: 0, expired: 0, length: 0 });
    expect(queue(store, 'a')?.evicted).toBe(3);
    expect(queue(store, 'a')?.checkpoint).toBe(2n);
    await store.close();
  });
});

describe('FsMessageStore reclaim', () => {
  it('an expired segment behind an undelivered one is kept until that one goes (expiry at exactly its time)', async () => {
    const t0 = Date.UTC(2026, 0, 1);
    let now = t0;
    const store = await openMessageStore(await tmp.make(), { segmentBytes: 64 * 1024, now: () => now });
    await store.addQueue('a');
    const m = (ttlMs: number): EdgeMessage => sized(10_000, 'x', { enqueuedAt: t0 + ttlMs - 1000 });
    for (let i = 0; i < 6; i++) await store.add('a', m(3_600_000), 1);
    for (let i = 0; i < 6; i++) await store.add('a', m(1000), 1);
    await store.add('a', m(3_600_000), 1);
    expect(store.stats().segments).toBe(3);
    now = t0 + 1000;
    // A roll sweeps: its add resolves after.
    await store.add('a', sized(60_000, 'x', { enqueuedAt: t0 + 3_600_000 }), 1);
    expect(store.stats().segments).toBe(4);
    expect(queue(store, 'a')).toMatchObject({ expired: 0, checkpoint: -1n });
    await (await store.checkpointer('a')).commit(5n);
    await until(() => queue(store, 'a')?.expired === 6, 'the expired segment dropped once the one before it was delivered');
    expect(queue(store, 'a')).toMatchObject({ checkpoint: 11n, expired: 6 });
    expect(store.stats().segments).toBe(2);
    await store.close();
  });

  it("a delivered or removed queue in an undelivered segment does not hold back another queue's expired segment", async () => {
    const t0 = Date.UTC(2026, 0, 1);
    let now = t0;
    const store = await openMessageStore(await tmp.make(), { segmentBytes: 64 * 1024, now: () => now });
    for (const q of ['a', 'b', 'gone']) await store.addQueue(q);
    const long = sized(10_000, 'x', { enqueuedAt: t0 + 3_600_000 });
    const short = sized(10_000, 'x', { enqueuedAt: t0 });
    // First segment: a (undelivered), b (delivered), gone (removed later).
    await store.add('a', long, 1);
    for (let i = 0; i < 4; i++) await store.add('b', long, 1);
    await store.add('gone', long, 1);
    // Second segment: b, expiring at t0 + 1 s.
    for (let i = 0; i < 6; i++) await store.add('b', short, 1);
    await store.add('a', long, 1);
    expect(store.stats().segments).toBe(3);
    await (await store.checkpointer('b')).commit(3n);
    await store.removeQueue('gone');
    now = t0 + 1000;
    await store.add('a', sized(60_000, 'x', { enqueuedAt: t0 + 3_600_000 }), 1);
    expect(queue(store, 'b')).toMatchObject({ expired: 6, checkpoint: 9n, length: 0 });
    expect(queue(store, 'a')).toMatchObject({ expired: 0, checkpoint: -1n, length: 3 });
    expect((await store.read('a', 0n, 10)).map((x) => x.offset)).toEqual([0n, 1n, 2n]);
    await store.close();
  });

  it('every commit that delivers a segment deletes it (one after the other)', async () => {
    const dir = await tmp.make();
    const store = await openMessageStore(dir, { segmentBytes: 64 * 1024 });
    await store.addQueue('a');
    for (let i = 0; i < 19; i++) await store.add('a', sized(10_000), 3600);
    expect(store.stats().segments).toBe(4);
    const cp = await store.checkpointer('a');
    await cp.commit(5n);
    await until(() => store.stats().segments === 3, 'the first segment reclaimed');
    await cp.commit(11n);
    await until(() => store.stats().segments === 2, 'the second segment reclaimed');
    await until(async () => (await segmentFiles(dir)).length === 3, 'their files deleted (active and spare left)');
    expect(new Set((await diskRecords(dir)).map((r) => r.offset >= 12n))).toEqual(new Set([true]));
    await store.close();
  });

  it('the sweep timer drops expired segments with no add or commit to trigger it', async () => {
    const t0 = Date.UTC(2026, 0, 1);
    let now = t0;
    const log = captureLog();
    const store = await openMessageStore(await tmp.make(), { segmentBytes: 64 * 1024, sweepIntervalMs: 20, now: () => now, log });
    await store.addQueue('q');
    for (let i = 0; i < 7; i++) await store.add('q', sized(10_000, 'x', { enqueuedAt: t0 }), 1);
    expect(store.stats().segments).toBe(2);
    expect(queue(store, 'q')?.expired).toBe(0);
    now = t0 + 5000;
    await until(() => queue(store, 'q')?.expired === 6, 'the sweep');
    expect(log.lines).toEqual([{ level: 'debug', obj: { queue: 'q', count: 6, reason: 'expired' }, msg: 'Dropped stored messages' }]);
    expect((await store.read('q', 0n, 10)).map((m) => [m.offset, text(m.message.body).length])).toEqual([[6n, sized(10_000).body.byteLength]]);
    await store.close();
  });
});
