import { describe, expect, it } from 'vitest';
import { expiryOf, MemoryMessageStore } from './memory-store.js';
import { testMessage } from './message-store.contract.js';
import { EngineError, EngineErrorCode, StoreClosedError, StoreFullError, UnknownQueueError } from './types.js';

const m = (body: string, at = 1_000) => testMessage(body, { id: body, enqueuedAt: at });

async function filled(n: number) {
  const store = new MemoryMessageStore();
  await store.addQueue('q');
  for (let i = 0; i < n; i++) await store.add('q', m(`m${i}`), -1);
  return { store, cp: await store.checkpointer('q') };
}
const offsets = (ms: { offset: bigint }[]) => ms.map((x) => x.offset);

describe('MemoryMessageStore edges', () => {
  it('expires a TTL of 0 at once, a negative or infinite TTL never', () => {
    expect(expiryOf(m('a', 5_000), 0)).toBe(5_000);
    expect(expiryOf(m('a', 5_000), 2)).toBe(7_000);
    expect(expiryOf(m('a', 5_000), -1)).toBe(Infinity);
    expect(expiryOf(m('a', 5_000), Infinity)).toBe(Infinity);
  });

  it('caps a checkpoint beyond the last message at the last offset', async () => {
    const a = await filled(2);
    await a.cp.commit(2n);
    expect(a.cp.offset).toBe(1n);
    const b = await filled(2);
    await b.cp.commit(10n);
    expect(b.cp.offset).toBe(1n);
    expect(b.store.stats().queues['q']).toMatchObject({ length: 0, checkpoint: 1n, nextOffset: 2n });
    const c = await filled(3);
    await c.cp.commit(0n);
    await c.cp.commit(0n);
    expect(c.cp.offset).toBe(0n);
    expect(c.store.stats().queues['q']?.length).toBe(2);
  });

  it('reads from an offset below or inside what is left above the checkpoint', async () => {
    const { store, cp } = await filled(4);
    await cp.commit(0n);
    expect(offsets(await store.read('q', 0n, 10))).toEqual([1n, 2n, 3n]);
    expect(offsets(await store.read('q', 2n, 10))).toEqual([2n, 3n]);
    expect(offsets(await store.read('q', 3n, 10))).toEqual([3n]);
    expect(await store.read('q', 1n, 0)).toEqual([]);
    const empty = new MemoryMessageStore();
    await empty.addQueue('e');
    expect(await empty.read('e', 0n, 10)).toEqual([]);
  });

  it('counts the bytes of the messages above the checkpoint', async () => {
    const { store, cp } = await filled(3);
    expect(store.stats().bytes).toBe(6);
    await cp.commit(0n);
    expect(store.stats().bytes).toBe(4);
  });

  it('refuses every call once closed', async () => {
    const { store } = await filled(1);
    await store.close();
    await expect(store.addQueue('r')).rejects.toBeInstanceOf(StoreClosedError);
    await expect(store.removeQueue('q')).rejects.toBeInstanceOf(StoreClosedError);
    await expect(store.read('q', 0n, 1)).rejects.toBeInstanceOf(StoreClosedError);
  });
});

describe('engine errors', () => {
  it('carry a name, a code and a message', () => {
    const errors = [new EngineError(EngineErrorCode.RouterClosed, 'x'), new UnknownQueueError('a"b'), new StoreFullError('full'), new StoreClosedError(), new StoreClosedError('Router')];
    expect(errors.map((e) => [e.name, e.code, e.message])).toEqual([
      ['EngineError', EngineErrorCode.RouterClosed, 'x'],
      ['UnknownQueueError', EngineErrorCode.UnknownQueue, 'Unknown store queue "a\\"b"'],
      ['StoreFullError', EngineErrorCode.StoreFull, 'full'],
      ['StoreClosedError', EngineErrorCode.StoreClosed, 'Message store is closed'],
      ['StoreClosedError', EngineErrorCode.StoreClosed, 'Router is closed'],
    ]);
    expect(errors.every((e) => e instanceof EngineError && e instanceof Error)).toBe(true);
  });
});
