/**
 * The pipelined group commit of FsMessageStore on a real directory: adds keep arriving over many event-loop turns
 * while earlier batches are written and synced. Each add resolves in offset order, a message is readable from the
 * moment its add resolves and never before, and closing waits for every batch in flight.
 */
import { testMessage, type StoredMessage } from '@kedge/routing';
import { afterEach, describe, expect, it } from 'vitest';
import { openMessageStore, type FsyncPolicy } from './index.js';
import { tempDirs, text } from './test-support/disk.js';

const tmp = tempDirs('kedge-edge-store-pipeline-');
afterEach(tmp.cleanup);

const turn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

describe('FsMessageStore: pipelined group commit', () => {
  for (const fsync of ['group', 'always'] as const satisfies readonly FsyncPolicy['kind'][]) {
    it(`fsync ${fsync}: adds over many turns resolve in offset order, readable once resolved and not before`, async () => {
      const dir = await tmp.make();
      const store = await openMessageStore(dir, { fsync, segmentBytes: 64 * 1024 });
      await store.addQueue('q');
      const total = fsync === 'group' ? 400 : 100;
      const resolved: bigint[] = [];
      let acked = -1n;
      let reading = true;
      const violations: string[] = [];
      // A reader racing the writer: whatever it gets was acknowledged by the time its read returns.
      const reader = (async () => {
        let reads = 0;
        while (reading || reads === 0) {
          const got = await store.read('q', 0n, 10_000);
          reads++;
          const last = got[got.length - 1]?.offset ?? -1n;
          if (last > acked) violations.push(`read offset ${last} while only ${acked} was acknowledged`);
          if (got.some((m, i) => m.offset !== BigInt(i))) violations.push('a read skipped an offset');
          await turn();
        }
        return reads;
      })();
      const adds: Promise<StoredMessage>[] = [];
      for (let i = 0; i < total; i++) {
        adds.push(
          store.add('q', testMessage(`m${i}`, { body: new Uint8Array(700).fill(0x61 + (i % 26)) }), 3600).then((s) => {
            resolved.push(s.offset);
            if (s.offset > acked) acked = s.offset;
            return s;
          }),
        );
        if (i % 7 === 6) await turn();
      }
      await Promise.all(adds);
      reading = false;
      expect(await reader).toBeGreaterThan(0);
      expect(violations).toEqual([]);
      expect(resolved).toEqual(Array.from({ length: total }, (_, i) => BigInt(i)));
      const st = store.stats();
      expect(st.segments).toBeGreaterThan(1);
      if (fsync === 'group') {
        expect(st.batches).toBeGreaterThan(1);
        expect(st.batches).toBeLessThan(total);
      } else expect(st.batches).toBe(total);
      expect(st.fsyncs).toBe(st.batches);
      await store.close();

      const again = await openMessageStore(dir, { fsync, segmentBytes: 64 * 1024 });
      const back = await again.read('q', 0n, 10_000);
      expect(back.map((m) => m.offset)).toEqual(resolved);
      expect(back.map((m) => text(m.message.body).charCodeAt(0))).toEqual(Array.from({ length: total }, (_, i) => 0x61 + (i % 26)));
      await again.close();
    });
  }

  it('close while batches are in flight: every add made before it resolves and is on disk after a reopen', async () => {
    const dir = await tmp.make();
    const store = await openMessageStore(dir);
    await store.addQueue('q');
    const adds: Promise<StoredMessage>[] = [];
    for (let i = 0; i < 50; i++) {
      adds.push(store.add('q', testMessage(`m${i}`), 3600));
      if (i % 5 === 4) await turn();
    }
    const closed = store.close();
    await expect(store.add('q', testMessage('late'), 3600)).rejects.toMatchObject({ name: 'StoreClosedError' });
    const results = await Promise.all(adds);
    await closed;
    expect(results.map((s) => s.offset)).toEqual(Array.from({ length: 50 }, (_, i) => BigInt(i)));
    const again = await openMessageStore(dir);
    expect((await again.read('q', 0n, 100)).map((m) => text(m.message.body))).toEqual(Array.from({ length: 50 }, (_, i) => `m${i}`));
    await again.close();
  });
});
