/**
 * FsMessageStore's recovery on a real directory: a record with a bad CRC in the middle of a segment (everything from
 * it is cut, counted and logged), header-only segments, a missing state file, files that only look like segments,
 * and the byte count after reopen.
 */
import { readdir, stat, unlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { testMessage } from '@kedge/routing';
import { afterEach, describe, expect, it } from 'vitest';
import { openMessageStore } from './index.js';
import { STATE_FILE } from './state-file.js';
import { captureLog, corruptOnDisk, diskRecords, openFilesUnder, segName, segmentFiles, sized, tempDirs, text } from './test-support/disk.js';

const tmp = tempDirs('kedge-edge-store-recovery-');
afterEach(tmp.cleanup);

const sizes = async (dir: string): Promise<number[]> => Promise.all((await segmentFiles(dir)).map(async (f) => (await stat(join(dir, f))).size));

describe('FsMessageStore recovery', () => {
  it('a record with a bad CRC cuts the segment there: the records before it stay, the rest is counted and logged', async () => {
    const dir = await tmp.make();
    const store = await openMessageStore(dir);
    await store.addQueue('q');
    for (let i = 0; i < 10; i++) await store.add('q', testMessage(`m${i}`), 3600);
    await store.close();
    const [seg] = await segmentFiles(dir);
    const path = join(dir, seg as string);
    const size = (await stat(path)).size;
    // One body byte of the fifth record: its length and kind still look right.
    const r4 = (await diskRecords(dir))[4];
    await corruptOnDisk(dir, 1, 4n, (r4?.size ?? 0) - 1, Buffer.from('!'));
    const log = captureLog();
    const again = await openMessageStore(dir, { log });
    const pos = r4?.pos ?? 0;
    expect(again.stats().recovery).toEqual({ truncatedBytes: size - pos, segmentsScanned: 1, records: 4 });
    expect(log.lines.filter((l) => l.level !== 'debug')).toEqual([{ level: 'warn', obj: { path, at: pos, dropped: size - pos }, msg: 'Truncating a torn or corrupt segment tail' }]);
    expect((await stat(path)).size).toBe(pos);
    // The truncation's file handle is closed.
    expect(await openFilesUnder(dir)).not.toContain(path);
    expect((await again.read('q', 0n, 100)).map((m) => text(m.message.body))).toEqual(['m0', 'm1', 'm2', 'm3']);
    expect(again.stats().queues['q']).toMatchObject({ nextOffset: 4n, length: 4 });
    expect(again.stats().bytes).toBe(pos + 16);
    await expect(again.add('q', testMessage('m4 again'), 3600)).resolves.toMatchObject({ offset: 4n });
    await again.close();
  });

  it('a segment with a header and no records is not damage: it is scanned and deleted', async () => {
    const dir = await tmp.make();
    const first = await openMessageStore(dir);
    await first.close();
    expect(await segmentFiles(dir)).toEqual([segName(1)]);
    expect(await sizes(dir)).toEqual([16]);
    const log = captureLog();
    const again = await openMessageStore(dir, { log });
    expect(again.stats().recovery).toEqual({ truncatedBytes: 0, segmentsScanned: 1, records: 0 });
    expect(log.lines.filter((l) => l.level === 'warn' || l.level === 'error')).toEqual([]);
    await again.close();
    expect(await segmentFiles(dir)).toEqual([segName(2)]);
  });

  it('deletes a segment without a valid header, saying so', async () => {
    const dir = await tmp.make();
    const path = join(dir, segName(4));
    await writeFile(path, 'KEDGESEX and more bytes');
    const log = captureLog();
    const store = await openMessageStore(dir, { log });
    expect(log.lines.filter((l) => l.level === 'warn')).toEqual([{ level: 'warn', obj: { path, bytes: 23 }, msg: 'Deleting a segment without a valid header' }]);
    expect(store.stats().recovery).toEqual({ truncatedBytes: 23, segmentsScanned: 1, records: 0 });
    await store.close();
  });

  it('without its state file the store starts empty: old segments are deleted, not given to new queues', async () => {
    const dir = await tmp.make();
    const store = await openMessageStore(dir, { segmentBytes: 64 * 1024 });
    await store.addQueue('q');
    for (let i = 0; i < 10; i++) await store.add('q', sized(20_000), 3600);
    await store.close();
    expect((await segmentFiles(dir)).length).toBeGreaterThan(2);
    await unlink(join(dir, STATE_FILE));
    const again = await openMessageStore(dir, { segmentBytes: 64 * 1024 });
    expect(again.queues()).toEqual([]);
    expect(again.stats()).toMatchObject({ segments: 1, bytes: 16, recovery: { records: 10, truncatedBytes: 0 } });
    await again.addQueue('q');
    expect(await again.read('q', 0n, 100)).toEqual([]);
    await expect(again.add('q', testMessage('new'), 3600)).resolves.toMatchObject({ offset: 0n });
    expect((await again.read('q', 0n, 100)).map((m) => text(m.message.body))).toEqual(['new']);
    await again.close();
    expect((await diskRecords(dir)).map((r) => r.offset)).toEqual([0n]);
  });

  it('leaves files that only look like segments alone', async () => {
    const dir = await tmp.make();
    const names = [`x${segName(1)}`, `${segName(2)}.old`, `${segName(3)}~`];
    for (const n of names) await writeFile(join(dir, n), 'not a segment');
    const store = await openMessageStore(dir);
    expect(store.stats().recovery).toEqual({ truncatedBytes: 0, segmentsScanned: 0, records: 0 });
    await store.close();
    const files = await readdir(dir);
    for (const n of names) expect(files).toContain(n);
    expect(await segmentFiles(dir)).toEqual([segName(1)]);
  });

  it('counts the recovered segments in its bytes, and rolls add their headers', async () => {
    const dir = await tmp.make();
    const store = await openMessageStore(dir, { segmentBytes: 64 * 1024 });
    await store.addQueue('q');
    for (let i = 0; i < 5; i++) await store.add('q', sized(30_000), 3600);
    // Two records per segment: three segments, the last one active.
    expect(store.stats()).toMatchObject({ segments: 3, bytes: 3 * 16 + 5 * 30_000 });
    await store.close();
    expect(await sizes(dir)).toEqual([60_016, 60_016, 30_016]);
    const again = await openMessageStore(dir, { segmentBytes: 64 * 1024 });
    expect(again.stats()).toMatchObject({ segments: 4, bytes: 4 * 16 + 5 * 30_000 });
    await again.close();
  });

});
