/**
 * FsMessageStore's segment files on a real directory: preallocation to the segment size, when a write rolls to the
 * next segment, sealing (the preallocated tail cut), the spare segment and what happens when it cannot be created
 * (a foreign file where it goes: a warning, then the store fails its writes when the roll cannot create one either).
 */
import { stat, unlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { testMessage } from '@kedge/routing';
import { afterEach, describe, expect, it } from 'vitest';
import { openMessageStore } from './index.js';
import { captureLog, diskRecords, segName, segmentFiles, sized, tempDirs, text, until } from './test-support/disk.js';

const tmp = tempDirs('kedge-edge-store-segments-');
afterEach(tmp.cleanup);

const sizeOf = async (dir: string, id: number): Promise<number> => (await stat(join(dir, segName(id)))).size;

describe('FsMessageStore segments', () => {
  for (const [segmentBytes, expected] of [
    [undefined, 16 * 1024 * 1024],
    [64 * 1024, 64 * 1024],
    [1.5 * 1024 * 1024, 1.5 * 1024 * 1024],
  ] as const) {
    it(`preallocates the active and the spare segment to the segment size (${expected} bytes)`, async () => {
      const dir = await tmp.make();
      const store = await openMessageStore(dir, segmentBytes === undefined ? {} : { segmentBytes });
      expect(await sizeOf(dir, 1)).toBe(expected);
      await until(async () => (await segmentFiles(dir)).length === 2 && (await sizeOf(dir, 2)) === expected, 'the spare segment');
      await store.close();
      // Close cuts the active segment to its data and deletes the spare.
      expect(await segmentFiles(dir)).toEqual([segName(1)]);
      expect(await sizeOf(dir, 1)).toBe(16);
    });
  }

  it('a record that fills the segment exactly stays in it; the next one rolls', async () => {
    const dir = await tmp.make();
    const store = await openMessageStore(dir, { segmentBytes: 64 * 1024 });
    await store.addQueue('q');
    await store.add('q', sized(30_000), 3600);
    await store.add('q', sized(64 * 1024 - 16 - 30_000), 3600);
    expect(store.stats().segments).toBe(1);
    await store.add('q', sized(1000), 3600);
    expect(store.stats().segments).toBe(2);
    expect((await diskRecords(dir)).map((r) => [r.file.slice(-24), r.offset])).toEqual([
      [segName(1), 0n],
      [segName(1), 1n],
      [segName(2), 2n],
    ]);
    await store.close();
  });

  it('a batch larger than a segment goes into the empty active segment without a roll', async () => {
    const dir = await tmp.make();
    const store = await openMessageStore(dir, { segmentBytes: 64 * 1024 });
    await store.addQueue('q');
    await Promise.all([0, 1, 2].map(() => store.add('q', sized(30_000), 3600)));
    expect(store.stats()).toMatchObject({ segments: 1, batches: 1, bytes: 16 + 90_000 });
    expect(new Set((await diskRecords(dir)).map((r) => r.file.slice(-24)))).toEqual(new Set([segName(1)]));
    await store.close();
  });

  it('rolls use the spare, number segments one after the other, seal the old one to its data, and log nothing', async () => {
    const dir = await tmp.make();
    const log = captureLog();
    const store = await openMessageStore(dir, { segmentBytes: 64 * 1024, log });
    await store.addQueue('q');
    for (let i = 0; i < 4; i++) await store.add('q', sized(40_000), 3600);
    expect(store.stats().segments).toBe(4);
    await until(async () => (await segmentFiles(dir)).length === 5, 'the next spare');
    expect(await segmentFiles(dir)).toEqual([1, 2, 3, 4, 5].map(segName));
    // Sealed segments are cut to their one record; the active and the spare stay preallocated.
    await until(async () => (await sizeOf(dir, 3)) === 40_016, 'the third segment sealed');
    expect([await sizeOf(dir, 1), await sizeOf(dir, 2), await sizeOf(dir, 4), await sizeOf(dir, 5)]).toEqual([40_016, 40_016, 64 * 1024, 64 * 1024]);
    await store.close();
    expect(log.lines.filter((l) => l.level === 'warn' || l.level === 'error')).toEqual([]);
    expect(await segmentFiles(dir)).toEqual([1, 2, 3, 4].map(segName));
    const again = await openMessageStore(dir, { segmentBytes: 64 * 1024 });
    expect((await again.read('q', 0n, 10)).map((m) => m.offset)).toEqual([0n, 1n, 2n, 3n]);
    await again.close();
  });

  it('a spare that cannot be created is logged and made at the next roll instead', async () => {
    const dir = await tmp.make();
    const log = captureLog();
    const store = await openMessageStore(dir, { segmentBytes: 64 * 1024, log });
    await store.addQueue('q');
    // A foreign file where the spare after the first roll goes.
    await writeFile(join(dir, segName(3)), 'in the way');
    await store.add('q', sized(40_000), 3600);
    await store.add('q', sized(40_000), 3600);
    await until(() => log.lines.some((l) => l.level === 'warn'), 'the warning');
    expect(log.lines.filter((l) => l.level === 'warn').map((l) => [l.msg, l.obj['dir'], (l.obj['err'] as NodeJS.ErrnoException).code])).toEqual([
      ['Preparing the next store segment failed; retrying at the next roll', dir, 'EEXIST'],
    ]);
    await unlink(join(dir, segName(3)));
    await expect(store.add('q', sized(40_000), 3600)).resolves.toMatchObject({ offset: 2n });
    expect(store.stats().segments).toBe(3);
    expect((await diskRecords(dir)).map((r) => r.file.slice(-24))).toEqual([1, 2, 3].map(segName));
    await store.close();
  });

  it('a roll that cannot create its segment fails the store: that add and every later one are refused, reads go on', async () => {
    const dir = await tmp.make();
    const log = captureLog();
    const store = await openMessageStore(dir, { segmentBytes: 64 * 1024, log });
    await store.addQueue('q');
    await writeFile(join(dir, segName(3)), 'in the way');
    await store.add('q', testMessage('a', { body: new Uint8Array(40_000) }), 3600);
    await store.add('q', testMessage('b', { body: new Uint8Array(40_000) }), 3600);
    await until(() => log.lines.some((l) => l.level === 'warn'), 'the spare warning');
    const failing = [store.add('q', testMessage('c', { body: new Uint8Array(40_000) }), 3600), store.add('q', testMessage('d'), 3600)];
    for (const p of failing) await expect(p).rejects.toMatchObject({ code: 'EDGE_ERR_STORE_FAILED', message: expect.stringMatching(/^Message store write failed: EEXIST/) });
    const errors = log.lines.filter((l) => l.level === 'error');
    expect(errors.map((l) => [l.msg, l.obj['dir']])).toEqual([['Message store write failed; refusing writes until reopened', dir]]);
    expect((errors[0]?.obj['err'] as NodeJS.ErrnoException).code).toBe('EEXIST');
    await expect(store.add('q', testMessage('e'), 3600)).rejects.toMatchObject({ code: 'EDGE_ERR_STORE_FAILED', message: expect.stringMatching(/^Message store write failed: EEXIST/) });
    // The refused adds are not counted as stored.
    expect(store.stats().queues['q']).toMatchObject({ length: 2, nextOffset: 2n });
    expect((await store.read('q', 0n, 10)).map((m) => m.message.id)).toEqual(['id-a', 'id-b']);
    await store.close();
    await unlink(join(dir, segName(3)));
    const again = await openMessageStore(dir, { segmentBytes: 64 * 1024 });
    expect((await again.read('q', 0n, 10)).map((m) => text(m.message.body).length)).toEqual([40_000, 40_000]);
    await expect(again.add('q', testMessage('f'), 3600)).resolves.toMatchObject({ offset: 2n });
    await again.close();
  });
});
