/**
 * FsMessageStore's failure paths when it has no logger (the `log` option is optional), on a real directory: each
 * must still fail or recover as it does with one. Also the failures' visible details: a segment deleted behind the
 * store's back, a full store's message with adds pending, and a close with `always` and many adds still queued.
 */
import { mkdir, rmdir, unlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { testMessage } from '@kedge/routing';
import { afterEach, describe, expect, it } from 'vitest';
import { openMessageStore } from './index.js';
import { readState, STATE_FILE } from './state-file.js';
import { captureLog, segName, sized, tempDirs, text, until } from './test-support/disk.js';

const tmp = tempDirs('kedge-edge-store-unlogged-');
afterEach(tmp.cleanup);

describe('FsMessageStore without a logger', () => {
  it('a spare that cannot be created and then a roll that cannot either fail the store with the file error', async () => {
    const dir = await tmp.make();
    const store = await openMessageStore(dir, { segmentBytes: 64 * 1024 });
    await store.addQueue('q');
    await writeFile(join(dir, segName(3)), 'in the way');
    await store.add('q', sized(40_000), 3600);
    await store.add('q', sized(40_000), 3600);
    await expect(store.add('q', sized(40_000), 3600)).rejects.toMatchObject({ code: 'EDGE_ERR_STORE_FAILED', message: expect.stringMatching(/^Message store write failed: EEXIST/) });
    await expect(store.add('q', sized(1000), 3600)).rejects.toMatchObject({ code: 'EDGE_ERR_STORE_FAILED' });
    await store.close();
  });

  it('a state file that cannot be written at close still lets it close, leaving the old state', async () => {
    const dir = await tmp.make();
    const store = await openMessageStore(dir, { checkpointFlushMs: 60_000 });
    await store.addQueue('q');
    await store.add('q', testMessage('a'), 3600);
    await (await store.checkpointer('q')).commit(0n);
    const blocker = join(dir, `${STATE_FILE}.tmp`);
    await mkdir(blocker);
    await expect(store.close()).resolves.toBeUndefined();
    await rmdir(blocker);
    expect((await readState(dir)).queues[0]?.checkpoint).toBe(-1n);
    const again = await openMessageStore(dir);
    expect((await again.read('q', 0n, 10)).map((m) => text(m.message.body))).toEqual(['a']);
    await again.close();
  });
});

describe('FsMessageStore failures seen from outside', () => {
  it('a delivered segment whose file is already gone is forgotten, the failed delete logged (or not, without a logger)', async () => {
    for (const log of [captureLog(), undefined]) {
      const dir = await tmp.make();
      const store = await openMessageStore(dir, { segmentBytes: 64 * 1024, ...(log ? { log } : {}) });
      await store.addQueue('q');
      await store.add('q', sized(40_000), 3600);
      await store.add('q', sized(40_000), 3600);
      const path = join(dir, segName(1));
      await unlink(path);
      await (await store.checkpointer('q')).commit(0n);
      await until(() => store.stats().segments === 1, 'the segment forgotten');
      if (log) {
        await until(() => log.lines.some((l) => l.level === 'warn'), 'the warning');
        expect(log.lines.filter((l) => l.level === 'warn').map((l) => [l.msg, l.obj['path'], (l.obj['err'] as NodeJS.ErrnoException).code])).toEqual([['Deleting a segment failed', path, 'ENOENT']]);
      }
      await expect(store.add('q', sized(1000), 3600)).resolves.toMatchObject({ offset: 2n });
      await expect(store.close()).resolves.toBeUndefined();
    }
  });

  it("a full store's message counts the adds still pending", async () => {
    const maxBytes = 512 * 1024;
    const budget = maxBytes - 2 * 64 * 1024;
    const store = await openMessageStore(await tmp.make(), { maxBytes, onFull: 'rejectNew' });
    await store.addQueue('q');
    const first = Array.from({ length: 6 }, () => store.add('q', sized(60_000), 3600));
    const exact = store.add('q', sized(budget - 16 - 6 * 60_000), 3600);
    await expect(store.add('q', sized(1000), 3600)).rejects.toThrow(`Message store is full (${budget} of ${maxBytes} bytes) and its policy is rejectNew`);
    await Promise.all([...first, exact]);
    await store.close();
  });

  it('close with fsync always waits for every queued add, one write and sync at a time', async () => {
    const dir = await tmp.make();
    const store = await openMessageStore(dir, { fsync: 'always' });
    await store.addQueue('q');
    const adds = Array.from({ length: 100 }, (_, i) => store.add('q', testMessage(`p${i}`), 3600));
    await store.close();
    await expect(Promise.all(adds)).resolves.toHaveLength(100);
    const again = await openMessageStore(dir);
    expect((await again.read('q', 0n, 1000)).map((m) => text(m.message.body))).toEqual(Array.from({ length: 100 }, (_, i) => `p${i}`));
    await again.close();
  });
});
