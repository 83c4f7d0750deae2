/**
 * FsMessageStore's read cache and its disk reads, on a real directory. To see where a read was served from, the
 * tests rewrite the on-disk copy of records with valid records whose bodies are upper-cased (markOnDisk): upper-case
 * comes from disk, lower-case from memory.
 */
import { testMessage, type StoredMessage } from '@kedge/routing';
import { afterEach, describe, expect, it } from 'vitest';
import { openMessageStore, type FsMessageStore } from './index.js';
import { corruptOnDisk, diskRecords, markOnDisk, openFilesUnder, recordSize, segmentFiles, tempDirs, text, until } from './test-support/disk.js';

const tmp = tempDirs('kedge-edge-store-cache-');
afterEach(tmp.cleanup);

const enc = new TextEncoder();
const bodies = (ms: StoredMessage[]): string[] => ms.map((m) => text(m.message.body));
async function addAll(store: FsMessageStore, queue: string, names: string[], ttl = 3600): Promise<StoredMessage[]> {
  const out: StoredMessage[] = [];
  for (const n of names) out.push(await store.add(queue, testMessage(n), ttl));
  return out;
}
const names = (p: string, n: number): string[] => Array.from({ length: n }, (_, i) => `${p}${i}`);

describe('FsMessageStore cache', () => {
  it('holds up to cacheBytes (inclusive); a queue over it reads from disk until the cache restarts with later adds', async () => {
    const dir = await tmp.make();
    const r = recordSize(1, { offset: 0n, message: testMessage('m0'), expiresAt: 0 });
    const store = await openMessageStore(dir, { cacheBytes: 3 * r });
    await store.addQueue('q');
    const first = await addAll(store, 'q', names('m', 4));
    for (const s of first) await markOnDisk(dir, 1, s);
    // m0..m2 filled the cache exactly; m3 did not fit: the cache was dropped, everything so far is on disk.
    expect(bodies(await store.read('q', 0n, 10))).toEqual(['M0', 'M1', 'M2', 'M3']);
    const later = await addAll(store, 'q', ['m4', 'm5']);
    for (const s of later) await markOnDisk(dir, 1, s);
    // The cache restarted at m4.
    expect(bodies(await store.read('q', 0n, 10))).toEqual(['M0', 'M1', 'M2', 'M3', 'm4', 'm5']);
    expect(bodies(await store.read('q', 2n, 3))).toEqual(['M2', 'M3', 'm4']);
    expect(bodies(await store.read('q', 4n, 10))).toEqual(['m4', 'm5']);
    await store.close();
  });

  it('commits free cache room: later adds stay in memory', async () => {
    const dir = await tmp.make();
    const r = recordSize(1, { offset: 0n, message: testMessage('m0'), expiresAt: 0 });
    const store = await openMessageStore(dir, { cacheBytes: 3 * r });
    await store.addQueue('q');
    await addAll(store, 'q', names('m', 3));
    await (await store.checkpointer('q')).commit(1n);
    const more = await addAll(store, 'q', ['m3', 'm4']);
    for (const s of more) await markOnDisk(dir, 1, s);
    const all = await diskRecords(dir);
    expect(all.map((x) => x.offset)).toEqual([0n, 1n, 2n, 3n, 4n]);
    expect(bodies(await store.read('q', 0n, 10))).toEqual(['m2', 'm3', 'm4']);
    // The cache is full again: one more does not fit and the queue goes to disk.
    const last = await store.add('q', testMessage('m5'), 3600);
    await markOnDisk(dir, 1, last);
    expect(bodies(await store.read('q', 0n, 10))).toEqual(['m2', 'M3', 'M4', 'M5']);
    await store.close();
  });

  it('the default cache keeps recent messages in memory; cacheBytes 0 reads everything from disk', async () => {
    for (const [opts, expected] of [
      [{}, ['a0', 'a1', 'a2']],
      [{ cacheBytes: 0 }, ['A0', 'A1', 'A2']],
    ] as const) {
      const dir = await tmp.make();
      const store = await openMessageStore(dir, opts);
      await store.addQueue('q');
      for (const s of await addAll(store, 'q', names('a', 3))) await markOnDisk(dir, 1, s);
      expect(bodies(await store.read('q', 0n, 10)), JSON.stringify(opts)).toEqual(expected);
      await store.close();
    }
  });

  it('an add is not readable until it is durable, from memory either', async () => {
    const store = await openMessageStore(await tmp.make());
    await store.addQueue('q');
    await store.add('q', testMessage('a'), 60);
    const pending = store.add('q', testMessage('b'), 60);
    expect(bodies(await store.read('q', 0n, 10))).toEqual(['a']);
    await pending;
    expect(bodies(await store.read('q', 0n, 10))).toEqual(['a', 'b']);
    await store.close();
  });
});

describe('FsMessageStore disk reads', () => {
  it('return exactly the limit, re-read from an earlier offset, and a limit of 0 reads nothing', async () => {
    const dir = await tmp.make();
    const store = await openMessageStore(dir, { cacheBytes: 0 });
    await store.addQueue('q');
    await addAll(store, 'q', names('m', 10));
    expect(bodies(await store.read('q', 0n, 3))).toEqual(['m0', 'm1', 'm2']);
    expect(bodies(await store.read('q', 3n, 3))).toEqual(['m3', 'm4', 'm5']);
    // A redelivery reads again from before where the last read stopped.
    expect(bodies(await store.read('q', 1n, 2))).toEqual(['m1', 'm2']);
    expect(bodies(await store.read('q', 0n, 1))).toEqual(['m0']);
    expect(await store.read('q', 0n, 0)).toEqual([]);
    expect(await store.read('q', 0n, -5)).toEqual([]);
    await (await store.checkpointer('q')).commit(4n);
    expect(bodies(await store.read('q', 0n, 2))).toEqual(['m5', 'm6']);
    expect(bodies(await store.read('q', 4n, 2))).toEqual(['m5', 'm6']);
    expect(bodies(await store.read('q', 5n, 100))).toEqual(['m5', 'm6', 'm7', 'm8', 'm9']);
    await store.close();
  });

  it('page through several segments and queues one message at a time, skipping segments without the queue', async () => {
    const dir = await tmp.make();
    const store = await openMessageStore(dir, { cacheBytes: 0, segmentBytes: 64 * 1024 });
    await store.addQueue('a');
    await store.addQueue('b');
    const big = (n: string): ReturnType<typeof testMessage> => testMessage(n.padEnd(9000, '.'));
    const want: string[] = [];
    // a in the first segments, then a segment of b only, then a again.
    for (let i = 0; i < 12; i++) want.push(text((await store.add('a', big(`a${i}`), 3600)).message.body));
    for (let i = 0; i < 8; i++) await store.add('b', big(`b${i}`), 3600);
    for (let i = 12; i < 20; i++) want.push(text((await store.add('a', big(`a${i}`), 3600)).message.body));
    expect(store.stats().segments).toBeGreaterThanOrEqual(4);
    const onlyB = new Set((await diskRecords(dir)).filter((x) => x.queueId === 2).map((x) => x.file));
    const withA = new Set((await diskRecords(dir)).filter((x) => x.queueId === 1).map((x) => x.file));
    expect([...onlyB].some((f) => !withA.has(f))).toBe(true);
    const got: string[] = [];
    for (let from = 0n; ; ) {
      const page = await store.read('a', from, 1);
      if (page.length === 0) break;
      expect(page).toHaveLength(1);
      got.push(text((page[0] as StoredMessage).message.body));
      from = (page[0] as StoredMessage).offset + 1n;
    }
    expect(got).toEqual(want);
    expect(bodies(await store.read('a', 0n, 7))).toEqual(want.slice(0, 7));
    expect(bodies(await store.read('a', 10n, 5))).toEqual(want.slice(10, 15));
    expect(bodies(await store.read('b', 0n, 100)).map((b) => b.slice(0, 2))).toEqual(names('b', 8));
    await store.close();
  });

  it('a record larger than one read chunk (256 KiB) comes back whole', async () => {
    const dir = await tmp.make();
    const store = await openMessageStore(dir, { cacheBytes: 0, segmentBytes: 1024 * 1024 });
    await store.addQueue('q');
    const bigBody = new Uint8Array(300 * 1024).map((_, i) => i % 251);
    await store.add('q', testMessage('small'), 3600);
    await store.add('q', testMessage('', { body: bigBody }), 3600);
    await store.add('q', testMessage('after'), 3600);
    const got = await store.read('q', 0n, 10);
    expect(got.map((m) => m.message.body.byteLength)).toEqual([5, 300 * 1024, 5]);
    expect(Buffer.from((got[1] as StoredMessage).message.body).equals(Buffer.from(bigBody))).toBe(true);
    expect(bodies(await store.read('q', 1n, 1)).map((b) => b.length)).toEqual([300 * 1024]);
    await store.close();
  });

  it('a corrupted record of the queue fails the read (CRC mismatch); one of another queue is skipped', async () => {
    const dir = await tmp.make();
    const store = await openMessageStore(dir, { cacheBytes: 0 });
    await store.addQueue('a');
    await store.addQueue('b');
    await store.add('a', testMessage('a0'), 3600);
    await store.add('b', testMessage('b0'), 3600);
    await store.add('a', testMessage('a1'), 3600);
    await store.add('b', testMessage('b1'), 3600);
    // The last byte of the body: the record still parses, only its CRC is wrong.
    const rb = (await diskRecords(dir)).find((x) => x.queueId === 2 && x.offset === 0n);
    await corruptOnDisk(dir, 2, 0n, (rb?.size ?? 0) - 1, Buffer.from('Z'));
    expect(bodies(await store.read('a', 0n, 10))).toEqual(['a0', 'a1']);
    const seg = (await segmentFiles(dir))[0] as string;
    const rb0 = rb?.pos ?? 0;
    await expect(store.read('b', 0n, 10)).rejects.toMatchObject({ code: 'EDGE_ERR_STORE_FAILED', message: `Record CRC mismatch in ${dir}/${seg} at ${rb0}` });
    // b's second record is fine.
    expect(bodies(await store.read('b', 1n, 10))).toEqual(['b1']);
    await store.close();
  });

  it('a record whose kind or length is damaged fails the read as corrupt, at its position', async () => {
    const dir = await tmp.make();
    const store = await openMessageStore(dir, { cacheBytes: 0 });
    await store.addQueue('q');
    await addAll(store, 'q', names('m', 3));
    const seg = (await segmentFiles(dir))[0] as string;
    // Kind byte (first payload byte) of the second record.
    const r1 = await corruptOnDisk(dir, 1, 1n, 8, Buffer.from([7]));
    await expect(store.read('q', 0n, 10)).rejects.toMatchObject({ code: 'EDGE_ERR_STORE_FAILED', message: `Corrupt record in ${dir}/${seg} at ${r1.pos}` });
    expect(bodies(await store.read('q', 0n, 1))).toEqual(['m0']);
    await store.close();
  });

  it('a length field pointing past the data fails the read as corrupt', async () => {
    const dir = await tmp.make();
    const store = await openMessageStore(dir, { cacheBytes: 0 });
    await store.addQueue('q');
    await addAll(store, 'q', names('m', 2));
    const seg = (await segmentFiles(dir))[0] as string;
    const len = Buffer.alloc(4);
    len.writeUInt32LE(4000);
    const r0 = await corruptOnDisk(dir, 1, 0n, 0, len);
    await expect(store.read('q', 0n, 10)).rejects.toMatchObject({ code: 'EDGE_ERR_STORE_FAILED', message: `Corrupt record in ${dir}/${seg} at ${r0.pos}` });
    await store.close();
  });

  it('concurrent disk reads of two queues in one segment share its file; reclaimed segments leave no open file behind', async () => {
    const dir = await tmp.make();
    const store = await openMessageStore(dir, { cacheBytes: 0, segmentBytes: 2 * 1024 * 1024 });
    await store.addQueue('a');
    await store.addQueue('b');
    const body = (n: string): string => n.padEnd(20_000, '-');
    for (let i = 0; i < 40; i++) await Promise.all([store.add('a', testMessage(`a${i}`, { body: enc.encode(body(`a${i}`)) }), 3600), store.add('b', testMessage(`b${i}`, { body: enc.encode(body(`b${i}`)) }), 3600)]);
    const [ra, rb] = await Promise.all([store.read('a', 0n, 100), store.read('b', 0n, 100)]);
    expect(bodies(ra).map((b) => b.slice(0, 3).replace('-', ''))).toEqual(names('a', 40));
    expect(bodies(rb).map((b) => b.slice(0, 3).replace('-', ''))).toEqual(names('b', 40));
    // Roll to a new segment and deliver everything: the old segment is deleted and its reader closed.
    const files = await segmentFiles(dir);
    await store.add('a', testMessage('big', { body: new Uint8Array(1_900_000) }), 3600);
    expect(store.stats().segments).toBe(2);
    await (await store.checkpointer('a')).commit(40n);
    await (await store.checkpointer('b')).commit(39n);
    await until(async () => !(await segmentFiles(dir)).includes(files[0] as string), 'the delivered segment deleted');
    await until(async () => (await openFilesUnder(dir)).every((f) => !f.includes(files[0] as string)), 'its reader closed');
    await store.close();
    expect(await openFilesUnder(dir)).toEqual([]);
  });

  it('close closes the readers of segments it read', async () => {
    const dir = await tmp.make();
    const store = await openMessageStore(dir, { cacheBytes: 0, segmentBytes: 64 * 1024 });
    await store.addQueue('q');
    for (let i = 0; i < 20; i++) await store.add('q', testMessage(`m${i}`.padEnd(10_000, '.')), 3600);
    expect((await store.read('q', 0n, 100)).length).toBe(20);
    expect((await openFilesUnder(dir)).length).toBeGreaterThan(2);
    await store.close();
    expect(await openFilesUnder(dir)).toEqual([]);
  });
});
