/**
 * FsMessageStore's state file when it cannot be written (a directory where its temporary file goes, a real EISDIR):
 * a queue is not added, a failed checkpoint flush is logged, close still closes and says what it could not write.
 */
import { mkdir, rmdir } from 'node:fs/promises';
import { join } from 'node:path';
import { testMessage } from '@kedge/routing';
import { afterEach, describe, expect, it } from 'vitest';
import { openMessageStore } from './index.js';
import { readState, STATE_FILE } from './state-file.js';
import { captureLog, tempDirs, until } from './test-support/disk.js';

const tmp = tempDirs('kedge-edge-store-checkpoints-');
afterEach(tmp.cleanup);

const code = (e: unknown): unknown => (e as NodeJS.ErrnoException | undefined)?.code;

describe('FsMessageStore state file failures', () => {
  it('a checkpoint flush that fails is logged; close writes the checkpoint once it can', async () => {
    const dir = await tmp.make();
    const log = captureLog();
    const store = await openMessageStore(dir, { checkpointFlushMs: 5, log });
    await store.addQueue('q');
    for (const b of ['a', 'b', 'c']) await store.add('q', testMessage(b), 3600);
    const blocker = join(dir, `${STATE_FILE}.tmp`);
    await mkdir(blocker);
    await (await store.checkpointer('q')).commit(1n);
    await until(() => log.lines.some((l) => l.level === 'warn'), 'the flush warning');
    expect(log.lines.map((l) => [l.level, l.msg, code(l.obj['err'])])).toEqual([['warn', 'Writing store checkpoints failed; retrying', 'EISDIR']]);
    expect((await readState(dir)).queues[0]?.checkpoint).toBe(-1n);
    await rmdir(blocker);
    await store.close();
    expect((await readState(dir)).queues[0]?.checkpoint).toBe(1n);
  });

  it('close resolves when the state file cannot be written, and logs it', async () => {
    const dir = await tmp.make();
    const log = captureLog();
    const store = await openMessageStore(dir, { log });
    await store.addQueue('q');
    await store.add('q', testMessage('a'), 3600);
    await (await store.checkpointer('q')).commit(0n);
    await mkdir(join(dir, `${STATE_FILE}.tmp`));
    await expect(store.close()).resolves.toBeUndefined();
    expect(log.lines.map((l) => [l.level, l.msg, code(l.obj['err'])])).toEqual([['warn', 'Writing store checkpoints at close failed', 'EISDIR']]);
  });

  it('addQueue rejects when the state file cannot be written', async () => {
    const dir = await tmp.make();
    const store = await openMessageStore(dir);
    await mkdir(join(dir, `${STATE_FILE}.tmp`));
    await expect(store.addQueue('q')).rejects.toMatchObject({ code: 'EISDIR' });
    await rmdir(join(dir, `${STATE_FILE}.tmp`));
    await store.close();
  });
});
