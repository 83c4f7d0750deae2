/**
 * More FsMessageStore read edges on a real directory: a read while an add that overflowed the cache is still being
 * written, records at the largest size and last in their segment (read through the big-record path), a non-zero
 * byte inside a zero tail, a short file that starts like a segment, the interval policy's first tick, checkpoint
 * flush timing, and commits after close.
 */
import { cp, open, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { testMessage } from '@kedge/routing';
import { afterEach, describe, expect, it } from 'vitest';
import { openMessageStore } from './index.js';
import { readState } from './state-file.js';
import { recordSize, segName, sized, tempDirs, text, until } from './test-support/disk.js';

const tmp = tempDirs('kedge-edge-store-reads-');
afterEach(tmp.cleanup);

describe('FsMessageStore reads, more edges', () => {
  it('a read while an add that did not fit the cache is still being written returns what is durable', async () => {
    const dir = await tmp.make();
    const r = recordSize(1, { offset: 0n, message: testMessage('m0'), expiresAt: 0 });
    const store = await openMessageStore(dir, { cacheBytes: r });
    await store.addQueue('q');
    await store.add('q', testMessage('m0'), 3600);
    const pending = store.add('q', testMessage('m1'), 3600);
    expect((await store.read('q', 0n, 10)).map((m) => text(m.message.body))).toEqual(['m0']);
    await pending;
    expect((await store.read('q', 0n, 10)).map((m) => text(m.message.body))).toEqual(['m0', 'm1']);
    await store.close();
  });

  it('a record of the largest size, and a big record last in its segment, come back from disk', async () => {
    const segmentBytes = 1024 * 1024;
    const store = await openMessageStore(await tmp.make(), { cacheBytes: 0, segmentBytes });
    await store.addQueue('q');
    await store.add('q', sized(segmentBytes - 16), 3600);
    await store.add('q', sized(300 * 1024), 3600);
    await store.add('q', sized(1000), 3600);
    await store.add('q', sized(segmentBytes - 16 - 1000 - 300 * 1024 + 1), 3600);
    const got = await store.read('q', 0n, 10);
    expect(got.map((m) => m.offset)).toEqual([0n, 1n, 2n, 3n]);
    expect(got.map((m) => m.message.body.byteLength)).toEqual([0, 1, 2, 3].map((i) => [sized(segmentBytes - 16), sized(300 * 1024), sized(1000), sized(segmentBytes - 16 - 1000 - 300 * 1024 + 1)][i]?.body.byteLength));
    expect(store.stats().segments).toBe(3);
    expect((await store.read('q', 1n, 1)).map((m) => m.offset)).toEqual([1n]);
    await store.close();
  });

  it('a torn write whose non-zero bytes are inside the zero tail (not at its end) is cut', async () => {
    const dir = await tmp.make();
    const store = await openMessageStore(dir, { segmentBytes: 64 * 1024 });
    await store.addQueue('q');
    for (let i = 0; i < 3; i++) await store.add('q', sized(1001), 3600);
    const image = await tmp.make();
    await cp(dir, image, { recursive: true });
    await store.close();
    const path = join(image, segName(1));
    const size = (await stat(path)).size;
    const pos = 16 + 3 * 1001;
    const fh = await open(path, 'r+');
    await fh.write(Buffer.from([0xff]), 0, 1, pos + 1000);
    await fh.close();
    await writeFile(join(image, segName(2)), '');
    const recovered = await openMessageStore(image, { segmentBytes: 64 * 1024 });
    expect(recovered.stats().recovery).toEqual({ truncatedBytes: size - pos, segmentsScanned: 2, records: 3 });
    await recovered.close();
  });

  it('a file shorter than a segment header is deleted even when it starts with the magic', async () => {
    const dir = await tmp.make();
    await writeFile(join(dir, segName(1)), 'KEDGESEG123');
    const store = await openMessageStore(dir);
    expect(store.stats().recovery).toEqual({ truncatedBytes: 11, segmentsScanned: 1, records: 0 });
    await store.close();
  });
});

describe('FsMessageStore timers', () => {
  it('fsync interval: no sync before anything is written', async () => {
    const store = await openMessageStore(await tmp.make(), { fsync: 'interval:1' });
    await store.addQueue('q');
    await store.addQueue('r');
    expect(store.stats().fsyncs).toBe(0);
    await store.add('q', testMessage('a'), 60);
    await until(() => store.stats().fsyncs === 1, 'the interval sync');
    await store.close();
  });

  it('checkpointFlushMs sets how soon a commit reaches the state file', async () => {
    const dir = await tmp.make();
    const store = await openMessageStore(dir, { checkpointFlushMs: 1 });
    await store.addQueue('q');
    await store.add('q', testMessage('a'), 60);
    await (await store.checkpointer('q')).commit(0n);
    // Far sooner than the 1000 ms default.
    await until(async () => (await readState(dir)).queues[0]?.checkpoint === 0n, 'the flush', 800);
    await store.close();
  });

  it('a commit after close does not write the state file', async () => {
    const dir = await tmp.make();
    const store = await openMessageStore(dir, { checkpointFlushMs: 1 });
    await store.addQueue('q');
    await store.add('q', testMessage('a'), 60);
    const cp = await store.checkpointer('q');
    await store.close();
    await cp.commit(0n);
    // Wait well past the flush interval: nothing may come.
    await new Promise((r) => setTimeout(r, 100));
    expect((await readState(dir)).queues[0]?.checkpoint).toBe(-1n);
  });
});
