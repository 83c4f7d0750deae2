/**
 * The store's small state file (`state.json`: queues, their ids and checkpoints), replaced atomically: write a temp
 * file, fsync it, rename it over the old one, fsync the directory. A crash leaves either the old or the new file.
 */
import { open, readFile, rename } from 'node:fs/promises';
import { dirname, join } from 'node:path';

export const STATE_FILE = 'state.json';
const VERSION = 1;

/** One queue as persisted. */
export interface PersistedQueue {
  readonly name: string;
  readonly id: number;
  readonly checkpoint: bigint;
}

export interface PersistedState {
  readonly nextQueueId: number;
  readonly queues: readonly PersistedQueue[];
}

/** Fsyncs a directory, so that renames and new files in it are durable. */
export async function fsyncDir(dir: string): Promise<void> {
  const fh = await open(dir, 'r');
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

/**
 * Writes `text` to `path` atomically and durably: a temporary file beside it (`<path>.tmp`), fsynced, renamed over
 * the target, and the directory fsynced, so a crash leaves the old or the new content, never a torn file. `mode`
 * applies when the file is created (before the umask). Used by the store's state file and the agent's state
 * directory.
 */
export async function writeFileDurably(path: string, text: string, mode = 0o600): Promise<void> {
  const tmp = `${path}.tmp`;
  const fh = await open(tmp, 'w', mode);
  try {
    await fh.writeFile(text);
    await fh.sync();
  } finally {
    await fh.close();
  }
  await rename(tmp, path);
  await fsyncDir(dirname(path));
}

/** Writes the state file atomically and durably. */
export async function writeState(dir: string, state: PersistedState): Promise<void> {
  const doc = {
    version: VERSION,
    nextQueueId: state.nextQueueId,
    queues: state.queues.map((q) => ({ name: q.name, id: q.id, checkpoint: q.checkpoint.toString() })),
  };
  await writeFileDurably(join(dir, STATE_FILE), JSON.stringify(doc), 0o666);
}

/** The file's version or contents are not what this code wrote. */
export class StateFileError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'StateFileError';
  }
}

/** Reads the state file; an empty state when there is none. */
export async function readState(dir: string): Promise<PersistedState> {
  let text: string;
  try {
    text = await readFile(join(dir, STATE_FILE), 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { nextQueueId: 1, queues: [] };
    throw err;
  }
  const doc = JSON.parse(text) as { version?: unknown; nextQueueId?: unknown; queues?: unknown };
  if (doc.version !== VERSION || typeof doc.nextQueueId !== 'number' || !Array.isArray(doc.queues)) {
    throw new StateFileError(`${join(dir, STATE_FILE)} is not a version ${VERSION} store state file`);
  }
  const queues = (doc.queues as unknown[]).map((q): PersistedQueue => {
    const o = q as { name?: unknown; id?: unknown; checkpoint?: unknown };
    if (typeof o.name !== 'string' || typeof o.id !== 'number' || typeof o.checkpoint !== 'string' || !/^-?\d+$/.test(o.checkpoint)) {
      throw new StateFileError(`${join(dir, STATE_FILE)} has a malformed queue entry`);
    }
    return { name: o.name, id: o.id, checkpoint: BigInt(o.checkpoint) };
  });
  return { nextQueueId: doc.nextQueueId, queues };
}
