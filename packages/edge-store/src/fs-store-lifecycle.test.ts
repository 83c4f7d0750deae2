/**
 * FsMessageStore's file handles and byte counts over its life, on a real directory: a read that is running when its
 * segment is deleted, sealed segments' writers, a segment's expiry taken from its latest-expiring message, pending
 * adds in the byte count, a torn byte at the very end of a preallocated segment, and the cause of a write failure.
 */
import { cp, open, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { testMessage } from '@kedge/routing';
import { afterEach, describe, expect, it } from 'vitest';
import { openMessageStore } from './index.js';
import { captureLog, openFilesUnder, segName, segmentFiles, sized, tempDirs, text, until } from './test-support/disk.js';

const tmp = tempDirs('kedge-edge-store-lifecycle-');
afterEach(tmp.cleanup);

describe('FsMessageStore file handles', () => {
  it('a disk read running when its segment is deleted finishes, and then its file is closed', async () => {
    const dir = await tmp.make();
    const store = await openMessageStore(dir, { cacheBytes: 0, segmentBytes: 16 * 1024 * 1024 });
    await store.addQueue('q');
    const enc = new TextEncoder();
    // A long read: 16 MB in 20000 records, 64 chunks.
    const n = 20_000;
    for (let i = 0; i < n; i += 1000) {
      await Promise.all(Array.from({ length: 1000 }, (_, j) => store.add('q', testMessage(`m${i + j}`, { body: enc.encode(`m${i + j}`.padEnd(400, '.')) }), 3600)));
    }
    await store.add('q', testMessage('roll', { body: new Uint8Array(16 * 1024 * 1024 - 100_000) }), 3600);
    expect(store.stats().segments).toBe(2);
    const first = join(dir, segName(1));
    // The read starts on the first segment; the commit deletes it while the read is still going through it.
    const reading = store.read('q', 0n, n);
    await (await store.checkpointer('q')).commit(BigInt(n - 1));
    const got = await reading;
    expect(got.map((m) => text(m.message.body).replace(/\.+$/, ''))).toEqual(Array.from({ length: n }, (_, i) => `m${i}`));
    await until(async () => !(await segmentFiles(dir)).includes(segName(1)), 'the delivered segment deleted');
    await until(async () => (await openFilesUnder(dir)).every((f) => !f.startsWith(first)), 'its reader closed');
    await store.close();
    expect(await openFilesUnder(dir)).toEqual([]);
  });

  it('sealed segments keep no file open: only the active and the spare segment are', async () => {
    const dir = await tmp.make();
    const store = await openMessageStore(dir, { segmentBytes: 64 * 1024 });
    await store.addQueue('q');
    for (let i = 0; i < 4; i++) await store.add('q', sized(40_000), 3600);
    const want = [join(dir, segName(4)), join(dir, segName(5))];
    await until(async () => JSON.stringify(await openFilesUnder(dir)) === JSON.stringify(want), 'only the active and the spare open');
    await store.close();
    expect(await openFilesUnder(dir)).toEqual([]);
  });
});

describe('FsMessageStore numbers', () => {
  it("a segment expires with its latest-expiring message, not its last one", async () => {
    const t0 = Date.UTC(2026, 0, 1);
    let now = t0;
    const store = await openMessageStore(await tmp.make(), { segmentBytes: 64 * 1024, now: () => now });
    await store.addQueue('q');
    await store.add('q', sized(10_000, 'x', { enqueuedAt: t0 + 3_600_000 }), 1);
    for (let i = 0; i < 5; i++) await store.add('q', sized(10_000, 'x', { enqueuedAt: t0 }), 1);
    now = t0 + 5000;
    // The roll sweeps: the first segment has a message that has not expired.
    await store.add('q', sized(60_000, 'x', { enqueuedAt: t0 + 3_600_000 }), 1);
    expect(store.stats().segments).toBe(2);
    expect(store.stats().queues['q']).toMatchObject({ expired: 0, length: 7 });
    await store.close();
  });

  it('bytes count adds still waiting for their write', async () => {
    const store = await openMessageStore(await tmp.make());
    await store.addQueue('q');
    const pending = store.add('q', sized(5000), 3600);
    expect(store.stats().bytes).toBe(16 + 5000);
    await pending;
    expect(store.stats().bytes).toBe(16 + 5000);
    await store.close();
  });

  it('a torn write whose only non-zero bytes are the last bytes of the preallocated segment is cut', async () => {
    const dir = await tmp.make();
    const store = await openMessageStore(dir, { segmentBytes: 64 * 1024 });
    await store.addQueue('q');
    // Three 1001-byte records: the zero tail after them is not a multiple of 8 bytes long.
    for (let i = 0; i < 3; i++) await store.add('q', sized(1001), 3600);
    const image = await tmp.make();
    await cp(dir, image, { recursive: true });
    await store.close();
    const path = join(image, segName(1));
    const size = (await stat(path)).size;
    expect(size).toBe(64 * 1024);
    const fh = await open(path, 'r+');
    await fh.write(Buffer.from([0, 0, 9]), 0, 3, size - 3);
    await fh.close();
    // Drop the spare of the image: only the active segment is looked at.
    await writeFile(join(image, segName(2)), '');
    const recovered = await openMessageStore(image, { segmentBytes: 64 * 1024 });
    const kept = recovered.stats().recovery;
    expect((await recovered.read('q', 0n, 10)).map((m) => m.offset)).toEqual([0n, 1n, 2n]);
    const pos = 16 + 3 * 1001;
    expect(kept).toEqual({ truncatedBytes: size - pos, segmentsScanned: 2, records: 3 });
    expect((await stat(path)).size).toBe(pos);
    await recovered.close();
  });

  it('a write failure keeps the error that caused it', async () => {
    const dir = await tmp.make();
    const log = captureLog();
    const store = await openMessageStore(dir, { segmentBytes: 64 * 1024, log });
    await store.addQueue('q');
    await writeFile(join(dir, segName(3)), 'in the way');
    await store.add('q', sized(40_000), 3600);
    await store.add('q', sized(40_000), 3600);
    await until(() => log.lines.some((l) => l.level === 'warn'), 'the spare warning');
    const err = await store.add('q', sized(40_000), 3600).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'EDGE_ERR_STORE_FAILED', cause: { code: 'EEXIST' } });
    await store.close();
  });
});
