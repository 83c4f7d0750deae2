import { mkdtemp, readdir, rm, stat, truncate, appendFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describeMessageStore, testMessage, type MessageStore } from '@kedge/routing';
import { afterEach, describe, expect, it } from 'vitest';
import { openMessageStore, parseFsyncPolicy, type FsMessageStoreOptions } from './index.js';

const dirs: string[] = [];
afterEach(async () => {
  await Promise.all(dirs.splice(0).map((d) => rm(d, { recursive: true, force: true })));
});
async function tempDir(): Promise<string> {
  const d = await mkdtemp(join(tmpdir(), 'kedge-edge-store-'));
  dirs.push(d);
  return d;
}

for (const fsync of ['group', 'always', 'interval:5']) {
  describeMessageStore(
    `FsMessageStore (fsync ${fsync})`,
    async () => {
      const dir = await mkdtemp(join(tmpdir(), 'kedge-edge-store-contract-'));
      let store: MessageStore = await openMessageStore(dir, { fsync });
      return {
        store,
        reopen: async () => {
          await store.close();
          store = await openMessageStore(dir, { fsync });
          return store;
        },
        cleanup: () => rm(dir, { recursive: true, force: true }),
      };
    },
    { describe, it },
  );
}

const text = (b: Uint8Array): string => new TextDecoder().decode(b);
const body = (n: number, size = 1024): string => `${n}:`.padEnd(size, 'x');

describe('FsMessageStore', () => {
  it('parses fsync policies and refuses others', () => {
    expect(parseFsyncPolicy('group')).toEqual({ kind: 'group' });
    expect(parseFsyncPolicy('always')).toEqual({ kind: 'always' });
    expect(parseFsyncPolicy('interval:100')).toEqual({ kind: 'interval', ms: 100 });
    for (const bad of ['', 'interval:0', 'interval:x', 'sometimes', 'interval:999999']) expect(() => parseFsyncPolicy(bad)).toThrow(RangeError);
  });

  it('group-commits concurrent adds: one fdatasync covers many', async () => {
    const store = await openMessageStore(await tempDir());
    await store.addQueue('q');
    const before = store.stats().fsyncs;
    await Promise.all(Array.from({ length: 1000 }, (_, i) => store.add('q', testMessage(body(i, 100)), 60)));
    const fsyncs = store.stats().fsyncs - before;
    expect(fsyncs).toBeGreaterThanOrEqual(1);
    expect(fsyncs).toBeLessThan(50);
    await store.close();
  });

  it('reads from disk what no longer fits the cache, in order, across segments and reopen', async () => {
    const dir = await tempDir();
    const opts: FsMessageStoreOptions = { segmentBytes: 256 * 1024, cacheBytes: 64 * 1024 };
    let store = await openMessageStore(dir, opts);
    await store.addQueue('a');
    await store.addQueue('b');
    for (let i = 0; i < 600; i++) await Promise.all([store.add('a', testMessage(body(i)), 3600), store.add('b', testMessage(body(i)), 3600)]);
    expect(store.stats().segments).toBeGreaterThan(3);
    const all = async (s: MessageStore, q: string): Promise<string[]> => {
      const out: string[] = [];
      for (let from = 0n; ; ) {
        const got = await s.read(q, from, 37);
        if (got.length === 0) return out;
        out.push(...got.map((m) => text(m.message.body)));
        from = (got[got.length - 1]?.offset ?? 0n) + 1n;
      }
    };
    const expected = Array.from({ length: 600 }, (_, i) => body(i));
    expect(await all(store, 'a')).toEqual(expected);
    await store.close();
    store = await openMessageStore(dir, opts);
    expect(await all(store, 'b')).toEqual(expected);
    await store.close();
  });

  it('deletes segments once every queue checkpointed past them', async () => {
    const dir = await tempDir();
    const store = await openMessageStore(dir, { segmentBytes: 128 * 1024 });
    await store.addQueue('a');
    await store.addQueue('b');
    for (let i = 0; i < 400; i++) await Promise.all([store.add('a', testMessage(body(i)), 3600), store.add('b', testMessage(body(i)), 3600)]);
    const segments = store.stats().segments;
    expect(segments).toBeGreaterThan(4);
    await (await store.checkpointer('a')).commit(399n);
    await store.close();
    // b still needs everything: nothing deleted.
    const again = await openMessageStore(dir, { segmentBytes: 128 * 1024 });
    expect(again.stats().segments).toBeGreaterThanOrEqual(segments);
    await (await again.checkpointer('b')).commit(399n);
    await until(() => again.stats().segments === 1, 'segments reclaimed');
    await again.close();
    expect((await readdir(dir)).filter((f) => f.endsWith('.seg'))).toHaveLength(1);
  });

  it('expires whole segments by TTL without reading them, and counts what it dropped', async () => {
    const dir = await tempDir();
    let now = Date.UTC(2026, 0, 1);
    const store = await openMessageStore(dir, { segmentBytes: 128 * 1024, now: () => now });
    await store.addQueue('q');
    for (let i = 0; i < 300; i++) await store.add('q', testMessage(body(i), { enqueuedAt: now }), 60);
    await store.add('q', testMessage('fresh', { enqueuedAt: now + 120_000 }), 60);
    const segs = store.stats().segments;
    expect(segs).toBeGreaterThan(2);
    now += 61_000;
    // Rolling a segment sweeps; so does the timer. Force a roll with one more add that will not fit.
    await store.add('q', testMessage('big', { enqueuedAt: now, body: new Uint8Array(120 * 1024) }), 60);
    await until(() => (store.stats().queues['q']?.expired ?? 0) > 0, 'expired segments dropped');
    const st = store.stats().queues['q'];
    expect(st?.expired).toBeGreaterThan(200);
    expect(st?.checkpoint).toBe(BigInt((st?.expired ?? 0) - 1));
    const rest = await store.read('q', 0n, 1000);
    expect(rest.length + (st?.expired ?? 0)).toBe(302);
    expect(rest.some((m) => text(m.message.body) === 'fresh')).toBe(true);
    await store.close();
  });

  it('recovers from a torn last record: keeps every whole record and truncates the rest', async () => {
    const dir = await tempDir();
    const store = await openMessageStore(dir);
    await store.addQueue('q');
    for (let i = 0; i < 10; i++) await store.add('q', testMessage(body(i, 200)), 3600);
    await store.close();
    const seg = (await readdir(dir)).filter((f) => f.endsWith('.seg')).sort()[0] as string;
    const path = join(dir, seg);
    const size = (await stat(path)).size;
    // A torn write: half of an 11th record, then a record whose bytes are garbage.
    await truncate(path, size - 100);
    await appendFile(path, Buffer.from([1, 2, 3, 4, 5, 6, 7]));
    const again = await openMessageStore(dir);
    const got = await again.read('q', 0n, 100);
    expect(got.map((m) => text(m.message.body))).toEqual(Array.from({ length: 9 }, (_, i) => body(i, 200)));
    expect(again.stats().recovery.truncatedBytes).toBeGreaterThan(0);
    const next = await again.add('q', testMessage('after'), 3600);
    expect(next.offset).toBe(9n);
    await again.close();
    const third = await openMessageStore(dir);
    expect((await third.read('q', 0n, 100)).map((m) => text(m.message.body)).slice(-2)).toEqual([body(8, 200), 'after']);
    expect(third.stats().recovery.truncatedBytes).toBe(0);
    await third.close();
  });

  it('at its quota evicts the oldest segment, counts evicted per queue, and keeps accepting writes', async () => {
    const dir = await tempDir();
    const maxBytes = 1024 * 1024;
    const store = await openMessageStore(dir, { maxBytes, segmentBytes: 128 * 1024 });
    await store.addQueue('a');
    await store.addQueue('b');
    const n = 3000;
    for (let i = 0; i < n; i++) await store.add(i % 2 === 0 ? 'a' : 'b', testMessage(body(i)), 3600);
    const st = store.stats();
    expect(st.bytes).toBeLessThanOrEqual(maxBytes);
    const a = st.queues['a'];
    const b = st.queues['b'];
    expect((a?.evicted ?? 0) + (b?.evicted ?? 0)).toBeGreaterThan(1500);
    // Every message is either still stored or counted as evicted.
    expect((a?.evicted ?? 0) + (a?.length ?? 0)).toBe(n / 2);
    expect((b?.evicted ?? 0) + (b?.length ?? 0)).toBe(n / 2);
    // What is left is the newest, still in order.
    const left = await store.read('a', 0n, 10_000);
    expect(left.length).toBe(a?.length);
    expect(text(left[left.length - 1]?.message.body ?? new Uint8Array())).toBe(body(n - 2));
    expect(left.every((m, i) => i === 0 || m.offset === (left[i - 1]?.offset ?? 0n) + 1n)).toBe(true);
    const more = await store.add('a', testMessage('still writing'), 3600);
    expect(more.offset).toBe(BigInt(n / 2));
    await store.close();
    const total = (await Promise.all((await readdir(dir)).map((f) => stat(join(dir, f))))).reduce((s, x) => s + x.size, 0);
    expect(total).toBeLessThanOrEqual(maxBytes + 4096);
  });

  it('with rejectNew refuses adds at the quota (counted), keeps what it has, and accepts again after delivery', async () => {
    const dir = await tempDir();
    const store = await openMessageStore(dir, { maxBytes: 1024 * 1024, segmentBytes: 128 * 1024, onFull: 'rejectNew' });
    await store.addQueue('q');
    let accepted = 0;
    let refused: unknown;
    for (let i = 0; i < 3000 && refused === undefined; i++) {
      try {
        await store.add('q', testMessage(body(i)), 3600);
        accepted++;
      } catch (err) {
        refused = err;
      }
    }
    expect(refused).toMatchObject({ code: 'EDGE_ERR_STORE_FULL' });
    expect(store.stats().rejected).toBe(1);
    expect(store.stats().queues['q']?.length).toBe(accepted);
    expect(store.stats().queues['q']?.evicted).toBe(0);
    await (await store.checkpointer('q')).commit(BigInt(accepted - 1));
    await until(() => store.stats().segments === 1, 'delivered segments reclaimed');
    await expect(store.add('q', testMessage('room again'), 3600)).resolves.toMatchObject({ offset: BigInt(accepted) });
    await store.close();
  });

  it('refuses a record larger than a segment with EDGE_ERR_MESSAGE_TOO_LARGE and stays usable', async () => {
    const store = await openMessageStore(await tempDir(), { segmentBytes: 64 * 1024 });
    await store.addQueue('q');
    await expect(store.add('q', testMessage('x'.repeat(70 * 1024)), 60)).rejects.toMatchObject({ code: 'EDGE_ERR_MESSAGE_TOO_LARGE' });
    await expect(store.add('q', testMessage('ok'), 60)).resolves.toMatchObject({ offset: 0n });
    await store.close();
  });
});

async function until(cond: () => boolean, what: string): Promise<void> {
  const deadline = Date.now() + 10_000;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise<void>((resolve) => setImmediate(resolve));
  }
}
