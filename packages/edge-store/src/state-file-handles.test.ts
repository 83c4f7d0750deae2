/**
 * Writing the state file leaves no file handle open in its directory (the directory fsync's handle included).
 */
import { mkdtemp, readdir, readlink, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { fsyncDir, writeState } from './state-file.js';

const dirs: string[] = [];
afterEach(async () => {
  await Promise.all(dirs.splice(0).map((d) => rm(d, { recursive: true, force: true })));
});

async function openUnder(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const fd of await readdir('/proc/self/fd')) {
    const target = await readlink(`/proc/self/fd/${fd}`).catch(() => '');
    if (target === dir || target.startsWith(`${dir}/`)) out.push(target);
  }
  return out;
}

describe('state file handles', () => {
  it('writeState and fsyncDir close what they open', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'kedge-edge-store-handles-'));
    dirs.push(dir);
    await writeState(dir, { nextQueueId: 2, queues: [{ name: 'q', id: 1, checkpoint: 5n }] });
    await fsyncDir(dir);
    expect(await openUnder(dir)).toEqual([]);
  });
});
