/**
 * The edges of FsMessageStore on a real directory: option parsing and clamps, the record size limit at exactly its
 * bound, what each fsync policy syncs, its numbers, recovery of a copy taken while it ran (a crash image), foreign
 * and headerless files, checkpoint flushing, and every call after close.
 */
import { cp, mkdtemp, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { testMessage } from '@kedge/routing';
import { afterEach, describe, expect, it } from 'vitest';
import { openMessageStore, parseFsyncPolicy } from './index.js';
import { encodeRecord } from './record.js';
import { readState } from './state-file.js';

const dirs: string[] = [];
afterEach(async () => {
  await Promise.all(dirs.splice(0).map((d) => rm(d, { recursive: true, force: true })));
});
async function tempDir(): Promise<string> {
  const d = await mkdtemp(join(tmpdir(), 'kedge-edge-store-edges-'));
  dirs.push(d);
  return d;
}
async function until(cond: () => boolean | Promise<boolean>, what: string): Promise<void> {
  const deadline = Date.now() + 10_000;
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise<void>((resolve) => setTimeout(resolve, 2));
  }
}
const text = (b: Uint8Array): string => new TextDecoder().decode(b);
const segments = async (dir: string): Promise<string[]> => (await readdir(dir)).filter((f) => /^\d{20}\.seg$/.test(f)).sort();

describe('parseFsyncPolicy: bounds', () => {
  it('interval of 1 to 60000 ms, up to five digits; nothing else', () => {
    expect(parseFsyncPolicy('interval:1')).toEqual({ kind: 'interval', ms: 1 });
    expect(parseFsyncPolicy('interval:60000')).toEqual({ kind: 'interval', ms: 60_000 });
    expect(parseFsyncPolicy('interval:00005')).toEqual({ kind: 'interval', ms: 5 });
    for (const bad of ['interval:60001', 'interval:', 'interval:-1', 'interval:1.5', 'interval:000001', ' group', 'group ', 'GROUP', 'always:1', 'interval:5x', 'xinterval:5']) {
      expect(() => parseFsyncPolicy(bad), bad).toThrow(new RangeError(`fsync policy must be "group", "always" or "interval:<ms>" (1..60000), got ${JSON.stringify(bad)}`));
    }
  });
});

describe('FsMessageStore edges', () => {
  it('a record of exactly segment size less the segment header fits; a byte more is EDGE_ERR_MESSAGE_TOO_LARGE', async () => {
    const store = await openMessageStore(await tempDir(), { segmentBytes: 64 * 1024 });
    await store.addQueue('q');
    const sized = (bytes: number) => {
      const probe = testMessage('', { enqueuedAt: 1 });
      const overhead = encodeRecord(1, { offset: 0n, message: probe, expiresAt: 0 }).length;
      return testMessage('', { enqueuedAt: 1, body: new Uint8Array(bytes - overhead) });
    };
    await expect(store.add('q', sized(64 * 1024 - 16 + 1), 60)).rejects.toMatchObject({ code: 'EDGE_ERR_MESSAGE_TOO_LARGE', message: `A ${64 * 1024 - 15}-byte record exceeds the store's ${64 * 1024 - 16}-byte limit` });
    await expect(store.add('q', sized(64 * 1024 - 16), 60)).resolves.toMatchObject({ offset: 0n });
    await store.close();
  });

  it('segments are at least 64 KiB and at most an eighth of the quota', async () => {
    const small = await openMessageStore(await tempDir(), { segmentBytes: 1000 });
    await small.addQueue('q');
    await expect(small.add('q', testMessage('x', { body: new Uint8Array(60 * 1024) }), 60)).resolves.toMatchObject({ offset: 0n });
    await small.close();
    const quota = await openMessageStore(await tempDir(), { maxBytes: 1024 * 1024 });
    await quota.addQueue('q');
    await expect(quota.add('q', testMessage('x', { body: new Uint8Array(120 * 1024) }), 60)).resolves.toMatchObject({ offset: 0n });
    await expect(quota.add('q', testMessage('x', { body: new Uint8Array(129 * 1024) }), 60)).rejects.toMatchObject({ code: 'EDGE_ERR_MESSAGE_TOO_LARGE' });
    expect(quota.stats().maxBytes).toBe(1024 * 1024);
    await quota.close();
  });

  it('fsync always: one write and one fdatasync per add; group: one for concurrent adds; a policy object works like its text', async () => {
    for (const [fsync, batches] of [
      ['always', 5],
      [{ kind: 'always' } as const, 5],
      ['group', 1],
      [undefined, 1],
    ] as const) {
      const store = await openMessageStore(await tempDir(), fsync === undefined ? {} : { fsync });
      await store.addQueue('q');
      const before = store.stats();
      await Promise.all(Array.from({ length: 5 }, (_, i) => store.add('q', testMessage(`m${i}`), 60)));
      const after = store.stats();
      expect(after.batches - before.batches, JSON.stringify(fsync)).toBe(batches);
      expect(after.fsyncs - before.fsyncs, JSON.stringify(fsync)).toBe(batches);
      expect((await store.read('q', 0n, 10)).map((m) => text(m.message.body))).toEqual(['m0', 'm1', 'm2', 'm3', 'm4']);
      await store.close();
    }
  });

  it('fsync interval: adds resolve without an fdatasync; the timer syncs what was written, once', async () => {
    const store = await openMessageStore(await tempDir(), { fsync: 'interval:20' });
    await store.addQueue('q');
    const before = store.stats().fsyncs;
    await store.add('q', testMessage('a'), 60);
    expect(store.stats().fsyncs).toBe(before);
    expect(store.stats().batches).toBe(1);
    await until(() => store.stats().fsyncs === before + 1, 'the interval sync');
    // Nothing new written: no more syncs.
    await new Promise((r) => setTimeout(r, 100));
    expect(store.stats().fsyncs).toBe(before + 1);
    await store.close();
  });

  it('stats: bytes, quota, queues with length, next offset, checkpoint, expired and evicted', async () => {
    const store = await openMessageStore(await tempDir());
    const empty = store.stats();
    expect(empty).toMatchObject({ maxBytes: Infinity, rejected: 0, segments: 1, batches: 0, fsyncs: 0, recovery: { truncatedBytes: 0, segmentsScanned: 0, records: 0 } });
    expect(empty.bytes).toBe(16);
    await store.addQueue('q');
    const a = await store.add('q', testMessage('a'), 60);
    await store.add('q', testMessage('b'), 60);
    await (await store.checkpointer('q')).commit(0n);
    const st = store.stats();
    expect(st.bytes).toBe(16 + 2 * encodeRecord(1, a).length);
    expect({ ...st.queues }).toEqual({ q: { length: 1, nextOffset: 2n, checkpoint: 0n, expired: 0, evicted: 0 } });
    await store.close();
  });

  it('checkpoints: commits past the end stop at the last message, lower ones change nothing, a removed queue ignores them', async () => {
    const dir = await tempDir();
    const store = await openMessageStore(dir, { checkpointFlushMs: 10 });
    await store.addQueue('q');
    for (const b of ['a', 'b', 'c']) await store.add('q', testMessage(b), 60);
    const cp = await store.checkpointer('q');
    await cp.commit(99n);
    expect(cp.offset).toBe(2n);
    await cp.commit(1n);
    expect(cp.offset).toBe(2n);
    expect(await store.read('q', 0n, 10)).toEqual([]);
    // Written to the state file by the flush timer, without a close.
    await until(async () => (await readState(dir)).queues[0]?.checkpoint === 2n, 'the checkpoint flush');
    await store.removeQueue('q');
    await cp.commit(5n);
    expect(cp.offset).toBe(2n);
    await store.close();
  });

  it('reads start after the checkpoint and return nothing for a limit of 0 or less', async () => {
    const store = await openMessageStore(await tempDir());
    await store.addQueue('q');
    for (const b of ['a', 'b', 'c']) await store.add('q', testMessage(b), 60);
    await (await store.checkpointer('q')).commit(0n);
    expect((await store.read('q', 0n, 10)).map((m) => m.offset)).toEqual([1n, 2n]);
    expect((await store.read('q', 2n, 10)).map((m) => m.offset)).toEqual([2n]);
    expect((await store.read('q', 1n, 1)).map((m) => m.offset)).toEqual([1n]);
    expect(await store.read('q', 0n, 0)).toEqual([]);
    expect(await store.read('q', 0n, -1)).toEqual([]);
    expect(await store.read('q', 3n, 10)).toEqual([]);
    await store.close();
  });

  it('queues: addQueue twice is one queue, removeQueue of an unknown one resolves, a re-added queue gets a new id', async () => {
    const dir = await tempDir();
    const store = await openMessageStore(dir);
    await store.addQueue('a');
    await store.addQueue('a');
    await store.addQueue('b');
    expect(store.queues()).toEqual(['a', 'b']);
    await store.removeQueue('nope');
    await store.removeQueue('a');
    expect(store.queues()).toEqual(['b']);
    await store.addQueue('a');
    await store.close();
    const state = await readState(dir);
    expect(state.nextQueueId).toBe(4);
    expect(state.queues.map((q) => [q.name, q.id])).toEqual([
      ['b', 2],
      ['a', 3],
    ]);
  });

  it('after close every call is refused with EDGE_ERR_STORE_CLOSED, and close again is the same close', async () => {
    const store = await openMessageStore(await tempDir());
    await store.addQueue('q');
    const closing = store.close();
    expect(store.close()).toBe(closing);
    await closing;
    const code = { code: 'EDGE_ERR_STORE_CLOSED' };
    await expect(store.add('q', testMessage('x'), 60)).rejects.toMatchObject(code);
    await expect(store.addQueue('r')).rejects.toMatchObject(code);
    await expect(store.removeQueue('q')).rejects.toMatchObject(code);
    await expect(store.read('q', 0n, 1)).rejects.toMatchObject(code);
    await expect(store.checkpointer('q')).rejects.toMatchObject(code);
  });

  it('close writes what adds were still pending', async () => {
    const dir = await tempDir();
    const store = await openMessageStore(dir);
    await store.addQueue('q');
    const adds = Array.from({ length: 20 }, (_, i) => store.add('q', testMessage(`p${i}`), 3600));
    await store.close();
    await Promise.all(adds);
    const again = await openMessageStore(dir);
    expect((await again.read('q', 0n, 100)).map((m) => text(m.message.body))).toEqual(Array.from({ length: 20 }, (_, i) => `p${i}`));
    await again.close();
  });
});

describe('FsMessageStore recovery', () => {
  it('a copy taken while it runs (a crash image) has every acknowledged message; its zero tail is not damage', async () => {
    const dir = await tempDir();
    const store = await openMessageStore(dir, { checkpointFlushMs: 10 });
    await store.addQueue('q');
    for (let i = 0; i < 10; i++) await store.add('q', testMessage(`m${i}`), 3600);
    await (await store.checkpointer('q')).commit(3n);
    await until(async () => (await readState(dir)).queues[0]?.checkpoint === 3n, 'the checkpoint flush');
    const image = await tempDir();
    await cp(dir, image, { recursive: true });
    await store.close();
    const spareAndActive = await segments(image);
    const recovered = await openMessageStore(image);
    expect(recovered.stats().recovery).toEqual({ truncatedBytes: 0, segmentsScanned: spareAndActive.length, records: 10 });
    expect((await recovered.read('q', 0n, 100)).map((m) => text(m.message.body))).toEqual(['m4', 'm5', 'm6', 'm7', 'm8', 'm9']);
    expect(recovered.stats().queues['q']).toMatchObject({ nextOffset: 10n, checkpoint: 3n, length: 6 });
    // New segments are numbered after the ones found.
    const id = (f: string | undefined): number => Number((f ?? '').slice(0, 20));
    const now = await segments(image);
    expect(id(now.at(-1))).toBeGreaterThan(id(spareAndActive.at(-1)));
    // The spare found in the image held no record: it is gone.
    expect(now).not.toContain(spareAndActive.at(-1));
    await expect(recovered.add('q', testMessage('next'), 3600)).resolves.toMatchObject({ offset: 10n });
    await recovered.close();
  });

  it('deletes a segment without a valid header (counting its bytes), ignores files that are not segments', async () => {
    const dir = await tempDir();
    await writeFile(join(dir, `${'9'.padStart(20, '0')}.seg`), 'NOTASEGMENTHEADER!');
    await writeFile(join(dir, `${'8'.padStart(20, '0')}.seg`), 'short');
    await writeFile(join(dir, '1.seg'), 'not matched by name');
    await writeFile(join(dir, 'notes.txt'), 'left alone');
    const store = await openMessageStore(dir);
    expect(store.stats().recovery).toMatchObject({ truncatedBytes: 18 + 5, segmentsScanned: 2, records: 0 });
    const files = await readdir(dir);
    expect(files).toContain('1.seg');
    expect(files).toContain('notes.txt');
    expect(files).not.toContain(`${'9'.padStart(20, '0')}.seg`);
    expect(files).not.toContain(`${'8'.padStart(20, '0')}.seg`);
    // The next segment is numbered after the highest one found, even a deleted one.
    expect(await segments(dir)).toEqual([`${'10'.padStart(20, '0')}.seg`, `${'11'.padStart(20, '0')}.seg`]);
    await store.close();
  });

  it('a segment whose records all belong to queues that are gone is deleted at recovery', async () => {
    const dir = await tempDir();
    const store = await openMessageStore(dir);
    await store.addQueue('gone');
    await store.add('gone', testMessage('x'), 3600);
    await store.removeQueue('gone');
    await store.close();
    const again = await openMessageStore(dir);
    expect(again.stats()).toMatchObject({ segments: 1, recovery: { records: 1 } });
    await again.close();
    expect((await Promise.all((await segments(dir)).map(async (f) => (await stat(join(dir, f))).size)))).toEqual([16]);
  });
});
