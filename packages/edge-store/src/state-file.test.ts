/**
 * The store's state file on a real directory: what is written is read back, anything else is refused with a
 * StateFileError (never half-read), and writes replace the file whole.
 */
import { mkdir, mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { fsyncDir, readState, STATE_FILE, StateFileError, writeFileDurably, writeState } from './state-file.js';

const dirs: string[] = [];
afterEach(async () => {
  await Promise.all(dirs.splice(0).map((d) => rm(d, { recursive: true, force: true })));
});
async function tempDir(): Promise<string> {
  const d = await mkdtemp(join(tmpdir(), 'kedge-state-file-'));
  dirs.push(d);
  return d;
}
/** The mode a file created with `mode` gets here (the umask applied), from a reference file. */
async function created(dir: string, mode: number): Promise<number> {
  const ref = join(dir, `ref-${mode.toString(8)}`);
  await writeFile(ref, '', { mode });
  const m = (await stat(ref)).mode & 0o777;
  await rm(ref);
  return m;
}

describe('state file', () => {
  it('no file: an empty state whose first queue id is 1', async () => {
    expect(await readState(await tempDir())).toEqual({ nextQueueId: 1, queues: [] });
  });

  it('reads back what it wrote: names, ids, checkpoints beyond 2^53 and -1', async () => {
    const dir = await tempDir();
    const state = {
      nextQueueId: 4,
      queues: [
        { name: 'q/a', id: 1, checkpoint: -1n },
        { name: '__proto__', id: 3, checkpoint: 2n ** 63n - 1n },
      ],
    };
    await writeState(dir, state);
    expect(await readState(dir)).toEqual(state);
    expect(JSON.parse(await readFile(join(dir, STATE_FILE), 'utf8'))).toEqual({
      version: 1,
      nextQueueId: 4,
      queues: [
        { name: 'q/a', id: 1, checkpoint: '-1' },
        { name: '__proto__', id: 3, checkpoint: '9223372036854775807' },
      ],
    });
    await writeState(dir, { nextQueueId: 5, queues: [] });
    expect(await readState(dir)).toEqual({ nextQueueId: 5, queues: [] });
    expect((await readdir(dir)).sort()).toEqual([STATE_FILE]);
    expect((await stat(join(dir, STATE_FILE))).mode & 0o777).toBe(await created(dir, 0o666));
  });

  it('refuses a file of another version or shape', async () => {
    const dir = await tempDir();
    for (const doc of [
      { version: 2, nextQueueId: 1, queues: [] },
      { nextQueueId: 1, queues: [] },
      { version: '1', nextQueueId: 1, queues: [] },
      { version: 1, nextQueueId: '1', queues: [] },
      { version: 1, queues: [] },
      { version: 1, nextQueueId: 1, queues: {} },
      { version: 1, nextQueueId: 1 },
    ]) {
      await writeFile(join(dir, STATE_FILE), JSON.stringify(doc));
      await expect(readState(dir), JSON.stringify(doc)).rejects.toThrow(new StateFileError(`${join(dir, STATE_FILE)} is not a version 1 store state file`));
    }
  });

  it('refuses a malformed queue entry', async () => {
    const dir = await tempDir();
    const good = { name: 'q', id: 1, checkpoint: '5' };
    for (const q of [
      { ...good, name: 1 },
      { id: 1, checkpoint: '5' },
      { ...good, id: '1' },
      { name: 'q', checkpoint: '5' },
      { ...good, checkpoint: 5 },
      { name: 'q', id: 1 },
      { ...good, checkpoint: '' },
      { ...good, checkpoint: '1.5' },
      { ...good, checkpoint: ' 1' },
      { ...good, checkpoint: '1 ' },
      { ...good, checkpoint: 'x1' },
      { ...good, checkpoint: '1x' },
      { ...good, checkpoint: '--1' },
    ]) {
      await writeFile(join(dir, STATE_FILE), JSON.stringify({ version: 1, nextQueueId: 2, queues: [good, q] }));
      const e = await readState(dir).then(
        () => undefined,
        (err: unknown) => err,
      );
      expect(e, JSON.stringify(q)).toBeInstanceOf(StateFileError);
      expect((e as Error).message).toBe(`${join(dir, STATE_FILE)} has a malformed queue entry`);
      expect((e as Error).name).toBe('StateFileError');
    }
    await writeFile(join(dir, STATE_FILE), JSON.stringify({ version: 1, nextQueueId: 2, queues: [good, { ...good, checkpoint: '-12' }] }));
    expect((await readState(dir)).queues).toEqual([
      { name: 'q', id: 1, checkpoint: 5n },
      { name: 'q', id: 1, checkpoint: -12n },
    ]);
  });

  it('a read error other than a missing file is not an empty state', async () => {
    const dir = await tempDir();
    await mkdir(join(dir, STATE_FILE));
    await expect(readState(dir)).rejects.toMatchObject({ code: 'EISDIR' });
  });
});

describe('writeFileDurably', () => {
  it('creates the file with its mode (default 0600), replaces it whole, leaves no temporary file', async () => {
    const dir = await tempDir();
    const path = join(dir, 'f.json');
    await writeFileDurably(path, 'one');
    expect(await readFile(path, 'utf8')).toBe('one');
    expect((await stat(path)).mode & 0o777).toBe(0o600);
    // A temporary file left by a crash is overwritten, not appended to.
    await writeFile(`${path}.tmp`, 'stale stale stale');
    await writeFileDurably(path, 'two');
    expect(await readFile(path, 'utf8')).toBe('two');
    expect(await readdir(dir)).toEqual(['f.json']);
    await writeFileDurably(join(dir, 'g'), 'x', 0o640);
    expect((await stat(join(dir, 'g'))).mode & 0o777).toBe(await created(dir, 0o640));
  });

  it('fails, changing nothing, when the directory is not there', async () => {
    const dir = await tempDir();
    await expect(writeFileDurably(join(dir, 'missing', 'f'), 'x')).rejects.toMatchObject({ code: 'ENOENT' });
    await expect(fsyncDir(join(dir, 'missing'))).rejects.toMatchObject({ code: 'ENOENT' });
    expect(await readdir(dir)).toEqual([]);
  });
});
