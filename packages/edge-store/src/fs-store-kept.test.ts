/**
 * A dropped segment is deleted only after the state file holding the checkpoint past it is written: when that write
 * fails, the segment file is kept (and read again after a restart: at least once, offsets never handed out twice)
 * until a later state write succeeds. The failure is real: a directory in the way of the state file's temporary file.
 */
import { mkdir, rmdir } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { openMessageStore } from './index.js';
import { readState, STATE_FILE } from './state-file.js';
import { captureLog, segmentFiles, sized, tempDirs, until } from './test-support/disk.js';

const tmp = tempDirs('kedge-edge-store-kept-');
afterEach(tmp.cleanup);

const KEPT = 'Writing store checkpoints failed; keeping a dropped segment until they are written';

describe('FsMessageStore: dropped segments wait for the state file', () => {
  it('a delivered segment whose checkpoint cannot be written stays on disk until a later state write succeeds', async () => {
    const dir = await tmp.make();
    const log = captureLog();
    const store = await openMessageStore(dir, { segmentBytes: 64 * 1024, checkpointFlushMs: 60_000, log });
    await store.addQueue('a');
    // 10000-byte records: six per 64 KiB segment.
    for (let i = 0; i < 19; i++) await store.add('a', sized(10_000), 3600);
    const [first, second] = await segmentFiles(dir);
    await mkdir(join(dir, `${STATE_FILE}.tmp`));
    const cp = await store.checkpointer('a');
    await cp.commit(5n);
    await until(() => log.lines.some((l) => l.msg === KEPT), 'the kept-segment warning');
    expect(log.lines.find((l) => l.msg === KEPT)?.obj).toMatchObject({ path: join(dir, first as string), err: { code: 'EISDIR' } });
    expect(store.stats().segments).toBe(3);
    expect(await segmentFiles(dir)).toContain(first);
    expect((await readState(dir)).queues).toEqual([{ name: 'a', id: 1, checkpoint: -1n }]);
    expect((await store.read('a', 0n, 1)).map((m) => m.offset)).toEqual([6n]);

    await rmdir(join(dir, `${STATE_FILE}.tmp`));
    await cp.commit(11n);
    await until(async () => !(await segmentFiles(dir)).includes(second as string), 'the second segment deleted');
    expect(await segmentFiles(dir)).not.toContain(first);
    expect((await readState(dir)).queues).toEqual([{ name: 'a', id: 1, checkpoint: 11n }]);
    await store.close();
  });

  it('a restart before the state is written reads the kept segment again and goes on from the offsets after it', async () => {
    const dir = await tmp.make();
    const log = captureLog();
    const opts = { segmentBytes: 64 * 1024, checkpointFlushMs: 60_000, log };
    const store = await openMessageStore(dir, opts);
    await store.addQueue('a');
    await store.addQueue('b');
    for (let i = 0; i < 6; i++) await store.add('a', sized(10_000), 3600);
    for (let i = 0; i < 7; i++) await store.add('b', sized(10_000), 3600);
    await mkdir(join(dir, `${STATE_FILE}.tmp`));
    await (await store.checkpointer('a')).commit(5n);
    await until(() => log.lines.some((l) => l.msg === KEPT), 'the kept-segment warning');
    await store.close();
    expect(log.lines.some((l) => l.msg === 'Writing store checkpoints at close failed')).toBe(true);
    await rmdir(join(dir, `${STATE_FILE}.tmp`));

    const again = await openMessageStore(dir, opts);
    expect((await again.read('a', 0n, 10)).map((m) => m.offset)).toEqual([0n, 1n, 2n, 3n, 4n, 5n]);
    await expect(again.add('a', sized(10_000), 3600)).resolves.toMatchObject({ offset: 6n });
    await again.close();
  });
});
