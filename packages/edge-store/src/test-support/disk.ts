/**
 * Test helpers that look at a store's directory the way an operator (or a crash) would: its segment files, the
 * records in them, the file descriptors this process holds on them. Used by the fs-store-*.test.ts files.
 */
import { mkdtemp, open, readdir, readFile, readlink, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { testMessage, type EdgeMessage, type EngineLogger, type StoredMessage } from '@kedge/routing';
import { encodeRecord, readHead } from '../record.js';

/** Temporary directories of one test file, removed by `cleanup()` (call it in `afterEach`). */
export function tempDirs(prefix: string): { make: () => Promise<string>; cleanup: () => Promise<void> } {
  const dirs: string[] = [];
  return {
    make: async () => {
      const d = await mkdtemp(join(tmpdir(), prefix));
      dirs.push(d);
      return d;
    },
    cleanup: async () => {
      await Promise.all(dirs.splice(0).map((d) => rm(d, { recursive: true, force: true })));
    },
  };
}

/** Waits for `cond` with a deadline (no fixed sleeps). */
export async function until(cond: () => boolean | Promise<boolean>, what: string, ms = 10_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise<void>((resolve) => setTimeout(resolve, 2));
  }
}

export const text = (b: Uint8Array): string => new TextDecoder().decode(b);
export const segName = (id: number): string => `${String(id).padStart(20, '0')}.seg`;
export const segmentFiles = async (dir: string): Promise<string[]> => (await readdir(dir)).filter((f) => /^\d{20}\.seg$/.test(f)).sort();

/** A message whose record (queue id 1) is exactly `bytes` long; `tag` keeps its id and meta the same length. */
export function sized(bytes: number, tag = 'x', overrides: Partial<EdgeMessage> = {}): EdgeMessage {
  const probe = testMessage(tag, { enqueuedAt: Date.now(), ...overrides });
  const overhead = encodeRecord(1, { offset: 0n, message: probe, expiresAt: 0 }).length - probe.body.byteLength;
  return { ...probe, body: new Uint8Array(bytes - overhead).fill(0x61) };
}

export const recordSize = (queueId: number, stored: StoredMessage): number => encodeRecord(queueId, stored).length;

export interface DiskRecord {
  readonly file: string;
  readonly pos: number;
  readonly size: number;
  readonly queueId: number;
  readonly offset: bigint;
}

/** Every whole, CRC-valid record in the directory's segment files, in file order. */
export async function diskRecords(dir: string): Promise<DiskRecord[]> {
  const out: DiskRecord[] = [];
  for (const f of await segmentFiles(dir)) {
    const buf = await readFile(join(dir, f));
    for (let pos = 16; ; ) {
      const h = readHead(buf, pos, buf.length, true, 1 << 30);
      if (h === undefined) break;
      out.push({ file: join(dir, f), pos, size: h.size, queueId: h.queueId, offset: h.offset });
      pos += h.size;
    }
  }
  return out;
}

async function locate(dir: string, queueId: number, offset: bigint): Promise<DiskRecord> {
  const r = (await diskRecords(dir)).find((x) => x.queueId === queueId && x.offset === offset);
  if (r === undefined) throw new Error(`no record of queue ${queueId} at ${offset} on disk`);
  return r;
}

async function writeAt(path: string, data: Buffer, pos: number): Promise<void> {
  const fh = await open(path, 'r+');
  try {
    await fh.write(data, 0, data.length, pos);
  } finally {
    await fh.close();
  }
}

/**
 * Replaces the on-disk copy of `stored` (queue `queueId`) with a valid record of the same size whose body is
 * upper-cased: a read that comes back upper-cased was served from disk, one that does not from memory.
 */
export async function markOnDisk(dir: string, queueId: number, stored: StoredMessage): Promise<void> {
  const r = await locate(dir, queueId, stored.offset);
  const body = new TextEncoder().encode(text(stored.message.body).toUpperCase());
  const buf = encodeRecord(queueId, { ...stored, message: { ...stored.message, body } });
  if (buf.length !== r.size) throw new Error('marked record changed size');
  await writeAt(r.file, buf, r.pos);
}

/** Overwrites bytes of the record of queue `queueId` at `offset`, `at` bytes into it (a disk corruption). */
export async function corruptOnDisk(dir: string, queueId: number, offset: bigint, at: number, bytes: Buffer): Promise<DiskRecord> {
  const r = await locate(dir, queueId, offset);
  await writeAt(r.file, bytes, r.pos + at);
  return r;
}

/** The files under `dir` this process has open (Linux /proc/self/fd), "(deleted)" kept in the name. */
export async function openFilesUnder(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const fd of await readdir('/proc/self/fd')) {
    const target = await readlink(`/proc/self/fd/${fd}`).catch(() => '');
    if (target.startsWith(`${dir}/`)) out.push(target);
  }
  return out.sort();
}

/** A logger that keeps what it is told. */
export function captureLog(): EngineLogger & { readonly lines: { level: string; obj: Record<string, unknown>; msg: string }[] } {
  const lines: { level: string; obj: Record<string, unknown>; msg: string }[] = [];
  const at = (level: string) => (obj: object, msg: string) => void lines.push({ level, obj: obj as Record<string, unknown>, msg });
  return { lines, debug: at('debug'), info: at('info'), warn: at('warn'), error: at('error') };
}
