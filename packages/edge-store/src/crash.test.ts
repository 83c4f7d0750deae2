import { spawn, spawnSync } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { assertSameMessage, type StoredMessage } from '@kedge/routing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openMessageStore } from './index.js';
import { crashMessage } from './test-support/crash-message.js';

const root = fileURLToPath(new URL('../../..', import.meta.url));
const writer = fileURLToPath(new URL('../dist/test-support/crash-writer.js', import.meta.url));
let dir: string;

beforeAll(async () => {
  // The child runs the compiled store: build it (a no-op when up to date).
  const tsc = spawnSync(process.execPath, [join(root, 'node_modules/typescript/bin/tsc'), '-b', 'packages/edge-store'], { cwd: root, encoding: 'utf8' });
  if (tsc.status !== 0) throw new Error(`tsc -b failed: ${tsc.stdout}${tsc.stderr}`);
  dir = await mkdtemp(join(tmpdir(), 'kedge-edge-store-crash-'));
}, 120_000);
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** Runs the writer until it acknowledged `acks` messages, then SIGKILLs it; the indexes it acknowledged. */
async function writeAndKill(first: number, acks: number): Promise<number[]> {
  const child = spawn(process.execPath, [writer, dir, String(first), '64'], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const exited = new Promise<NodeJS.Signals | number | null>((resolve) => child.on('exit', (code, signal) => resolve(signal ?? code)));
  const acked: number[] = [];
  const lines = createInterface({ input: child.stdout });
  for await (const line of lines) {
    if (line === 'ready') continue;
    acked.push(Number(line));
    if (acked.length === acks) {
      child.kill('SIGKILL');
      break;
    }
  }
  const how = await exited;
  if (how !== 'SIGKILL') throw new Error(`writer ended with ${String(how)} before it was killed: ${stderr}`);
  return acked;
}

async function readAll(store: Awaited<ReturnType<typeof openMessageStore>>, queue: string): Promise<StoredMessage[]> {
  const out: StoredMessage[] = [];
  for (let from = 0n; ; ) {
    const got = await store.read(queue, from, 1000);
    if (got.length === 0) return out;
    out.push(...got);
    from = (got[got.length - 1] as StoredMessage).offset + 1n;
  }
}

describe('FsMessageStore crash safety', () => {
  it('keeps every acknowledged message across kill -9 (twice), with its content, in order, without duplicates', async () => {
    // 1. A writer is killed mid-stream; 2. a second writer reopens the same store, appends, and is killed too.
    const round1 = await writeAndKill(0, 3000);
    const round2 = await writeAndKill(1_000_000, 3000);
    const acked = [...round1, ...round2];
    // 3. Reopen and check.
    const store = await openMessageStore(dir);
    const a = await readAll(store, 'a');
    const byIndex = new Map<number, StoredMessage[]>();
    for (const m of a) {
      const i = Number(m.message.properties['i']);
      byIndex.set(i, [...(byIndex.get(i) ?? []), m]);
    }
    const missing = acked.filter((i) => !byIndex.has(i));
    const duplicates = [...byIndex.values()].filter((v) => v.length > 1).length;
    console.log(
      `crash test: ${acked.length} acknowledged, ${a.length} recovered in queue a (${a.length - acked.length} written but not yet acknowledged when killed), ` +
        `${missing.length} missing, ${duplicates} duplicated, ${store.stats().recovery.truncatedBytes} torn bytes truncated`,
    );
    expect(missing).toEqual([]);
    expect(duplicates).toBe(0);
    for (const i of acked) assertSameMessage((byIndex.get(i) as StoredMessage[])[0]?.message as never, crashMessage(i));
    // Offsets are contiguous and follow the order the adds were made in (index order within each round).
    expect(a.every((m, k) => m.offset === BigInt(k))).toBe(true);
    const indexes = a.map((m) => Number(m.message.properties['i']));
    expect(indexes).toEqual([...indexes].sort((x, y) => x - y));
    // Queue b: every acknowledged message above its recovered checkpoint is there.
    const b = await readAll(store, 'b');
    const cp = (await store.checkpointer('b')).offset;
    expect(cp).toBeGreaterThan(0n);
    // Both queues got each message's adds in the same order, so a message has the same offset in both.
    const inB = new Set(b.map((m) => Number(m.message.properties['i'])));
    expect(b.every((m) => m.offset > cp)).toBe(true);
    expect(acked.filter((i) => ((byIndex.get(i) as StoredMessage[])[0]?.offset ?? 0n) > cp && !inB.has(i))).toEqual([]);
    expect(b.length).toBe(a.length - Number(cp + 1n));
    // 4. The recovered store keeps working.
    const next = await store.add('a', crashMessage(7), -1);
    expect(next.offset).toBe(BigInt(a.length));
    await store.close();
  }, 120_000);
});
