/**
 * The `MessageStore` contract suite (after aedes-persistence `abstract.js`): every store runs it. Like `abstract.js`
 * it receives the test functions instead of importing vitest, so that `@kedge/routing` never loads a test runner
 * in production; assertions use `node:assert/strict`.
 */
import assert from 'node:assert/strict';
import { EngineErrorCode, type EdgeMessage, type MessageStore, type StoredMessage } from './types.js';

/** The test functions the suite registers its cases with (vitest's `describe` and `it` fit). */
export interface SuiteApi {
  describe(name: string, fn: () => void): void;
  it(name: string, fn: () => Promise<void>, timeoutMs?: number): void;
}

/** One store under test. */
export interface MessageStoreHarness {
  readonly store: MessageStore;
  /** Closes `store` and opens the same data again; when given, the persistence cases run. */
  reopen?(): Promise<MessageStore>;
  /** Removes what the harness created (after the store is closed). */
  cleanup?(): Promise<void>;
}

/** Makes a fresh, empty store for one test case. */
export type MessageStoreFactory = () => Promise<MessageStoreHarness>;

const enc = new TextEncoder();

/** A message for store tests: body `body`, hostile property keys included, enqueued now (a durable store may drop expired messages). */
export function testMessage(body: string, overrides: Partial<EdgeMessage> = {}): EdgeMessage {
  const properties = Object.create(null) as Record<string, string>;
  properties['temperature'] = '21.5';
  properties['__proto__'] = 'polluted?';
  properties['constructor'] = 'x';
  properties['ключ'] = 'значение';
  const systemProperties = Object.create(null) as Record<string, string>;
  systemProperties['messageId'] = `mid-${body}`;
  systemProperties['contentType'] = 'application/json';
  systemProperties['contentEncoding'] = 'utf-8';
  systemProperties['connectionDeviceId'] = 'dev1';
  systemProperties['connectionModuleId'] = 'sensor';
  return {
    id: `id-${body}`,
    body: enc.encode(body),
    properties,
    systemProperties,
    source: { deviceId: 'dev1', moduleId: 'sensor', output: 'out1' },
    enqueuedAt: Date.now(),
    ...overrides,
  };
}

function bag(r: Readonly<Record<string, string>>): [string, string][] {
  return Object.keys(r)
    .sort()
    .map((k) => [k, r[k] as string]);
}

/** Asserts that a stored message carries exactly `expected`'s content. */
export function assertSameMessage(actual: EdgeMessage, expected: EdgeMessage): void {
  assert.equal(actual.id, expected.id);
  assert.deepEqual([...actual.body], [...expected.body]);
  assert.deepEqual(bag(actual.properties), bag(expected.properties));
  assert.deepEqual(bag(actual.systemProperties), bag(expected.systemProperties));
  assert.deepEqual({ ...actual.source }, { ...expected.source });
  assert.equal(actual.enqueuedAt, expected.enqueuedAt);
}

async function rejectsWith(p: Promise<unknown>, code: string): Promise<void> {
  await assert.rejects(p, (err: unknown) => (err as { code?: unknown }).code === code);
}

const bodies = (ms: readonly StoredMessage[]): string[] => ms.map((m) => new TextDecoder().decode(m.message.body));

/**
 * Registers the contract cases for one store implementation under `describe(name)`. Each case gets a fresh store
 * from `factory` and closes it.
 */
export function describeMessageStore(name: string, factory: MessageStoreFactory, t: SuiteApi): void {
  const withStore = (title: string, fn: (h: MessageStoreHarness, s: { store: MessageStore }) => Promise<void>, timeoutMs?: number): void => {
    t.it(
      title,
      async () => {
        const h = await factory();
        const s = { store: h.store };
        try {
          await fn(h, s);
        } finally {
          await s.store.close();
          await h.cleanup?.();
        }
      },
      timeoutMs,
    );
  };

  t.describe(`MessageStore contract: ${name}`, () => {
    withStore('offsets start at 0 and grow by one per queue, independently', async (_h, { store }) => {
      await store.addQueue('a@0');
      await store.addQueue('b@0');
      const a0 = await store.add('a@0', testMessage('a0'), 60);
      const a1 = await store.add('a@0', testMessage('a1'), 60);
      const b0 = await store.add('b@0', testMessage('b0'), 60);
      assert.deepEqual([a0.offset, a1.offset, b0.offset], [0n, 1n, 0n]);
      assert.deepEqual([...store.queues()].sort(), ['a@0', 'b@0']);
    });

    withStore('add and read on an unknown queue reject with EDGE_ERR_UNKNOWN_QUEUE', async (_h, { store }) => {
      await rejectsWith(store.add('nope', testMessage('x'), 60), EngineErrorCode.UnknownQueue);
      await rejectsWith(store.read('nope', 0n, 10), EngineErrorCode.UnknownQueue);
      await rejectsWith(store.checkpointer('nope'), EngineErrorCode.UnknownQueue);
    });

    withStore('addQueue is idempotent and keeps what the queue holds', async (_h, { store }) => {
      await store.addQueue('q');
      await store.add('q', testMessage('m0'), 60);
      await store.addQueue('q');
      assert.deepEqual(bodies(await store.read('q', 0n, 10)), ['m0']);
    });

    withStore('a message reads back with the same content (binary body, hostile keys, source)', async (_h, { store }) => {
      await store.addQueue('q');
      const binary = testMessage('bin', { body: new Uint8Array([0, 255, 10, 13, 0x7b, 0]) });
      const twin = testMessage('twin', { source: { kind: 'twinChangeNotification', deviceId: 'dev1', moduleId: 'm' } });
      const leaf = testMessage('leaf', { source: { deviceId: 'leaf1' }, properties: Object.create(null) as Record<string, string> });
      for (const m of [binary, twin, leaf]) await store.add('q', m, 60);
      const got = await store.read('q', 0n, 10);
      assert.equal(got.length, 3);
      assertSameMessage((got[0] as StoredMessage).message, binary);
      assertSameMessage((got[1] as StoredMessage).message, twin);
      assertSameMessage((got[2] as StoredMessage).message, leaf);
      const props = (got[0] as StoredMessage).message.properties;
      assert.ok(Object.hasOwn(props, '__proto__'), '__proto__ is an own key');
      assert.equal(props['__proto__'], 'polluted?');
      assert.equal(({} as Record<string, unknown>)['polluted?'], undefined);
    });

    withStore('expiresAt is enqueuedAt + ttl; a negative ttl never expires', async (_h, { store }) => {
      await store.addQueue('q');
      const m = testMessage('m');
      const a = await store.add('q', m, 30);
      const b = await store.add('q', m, -1);
      assert.equal(a.expiresAt, m.enqueuedAt + 30_000);
      assert.equal(b.expiresAt, Number.POSITIVE_INFINITY);
      const got = await store.read('q', 0n, 10);
      assert.deepEqual(
        got.map((x) => x.expiresAt),
        [m.enqueuedAt + 30_000, Number.POSITIVE_INFINITY],
      );
    });

    withStore('read honours fromOffset and limit', async (_h, { store }) => {
      await store.addQueue('q');
      for (let i = 0; i < 10; i++) await store.add('q', testMessage(`m${i}`), 60);
      assert.deepEqual(bodies(await store.read('q', 3n, 4)), ['m3', 'm4', 'm5', 'm6']);
      assert.deepEqual(bodies(await store.read('q', 8n, 100)), ['m8', 'm9']);
      assert.deepEqual(await store.read('q', 10n, 100), []);
      assert.deepEqual(await store.read('q', 0n, 0), []);
      const offsets = (await store.read('q', 0n, 100)).map((m) => m.offset);
      assert.deepEqual(offsets, [0n, 1n, 2n, 3n, 4n, 5n, 6n, 7n, 8n, 9n]);
    });

    withStore('concurrent adds get offsets in call order and read back in that order', async (_h, { store }) => {
      await store.addQueue('q');
      const n = 500;
      const stored = await Promise.all(Array.from({ length: n }, (_, i) => store.add('q', testMessage(`c${i}`), 60)));
      assert.deepEqual(
        stored.map((s) => s.offset),
        Array.from({ length: n }, (_, i) => BigInt(i)),
      );
      const got = await store.read('q', 0n, n);
      assert.deepEqual(bodies(got), Array.from({ length: n }, (_, i) => `c${i}`));
    });

    withStore('a resolved add is readable at once', async (_h, { store }) => {
      await store.addQueue('q');
      for (let i = 0; i < 20; i++) {
        const s = await store.add('q', testMessage(`r${i}`), 60);
        const got = await store.read('q', s.offset, 1);
        assert.deepEqual(bodies(got), [`r${i}`]);
      }
    });

    withStore('the checkpointer starts at -1, only grows, and is shared', async (_h, { store }) => {
      await store.addQueue('q');
      for (let i = 0; i < 5; i++) await store.add('q', testMessage(`m${i}`), 60);
      const cp = await store.checkpointer('q');
      assert.equal(cp.offset, -1n);
      assert.equal(store.stats().queues['q']?.length, 5);
      await cp.commit(2n);
      assert.equal(cp.offset, 2n);
      await cp.commit(1n);
      assert.equal(cp.offset, 2n);
      assert.equal((await store.checkpointer('q')).offset, 2n);
      assert.equal(store.stats().queues['q']?.length, 2);
      assert.equal(store.stats().queues['q']?.checkpoint, 2n);
      assert.equal(store.stats().queues['q']?.nextOffset, 5n);
      assert.deepEqual(bodies(await store.read('q', 3n, 10)), ['m3', 'm4']);
      await cp.commit(4n);
      assert.equal(store.stats().queues['q']?.length, 0);
    });

    withStore('checkpoints are per queue', async (_h, { store }) => {
      await store.addQueue('a');
      await store.addQueue('b');
      await store.add('a', testMessage('a0'), 60);
      await store.add('b', testMessage('b0'), 60);
      await (await store.checkpointer('a')).commit(0n);
      assert.equal((await store.checkpointer('b')).offset, -1n);
      assert.deepEqual(bodies(await store.read('b', 0n, 10)), ['b0']);
    });

    withStore('removeQueue deletes messages and checkpoint; a re-added queue starts empty', async (_h, { store }) => {
      await store.addQueue('q');
      await store.addQueue('keep');
      for (let i = 0; i < 3; i++) await store.add('q', testMessage(`old${i}`), 60);
      await store.add('keep', testMessage('k0'), 60);
      await (await store.checkpointer('q')).commit(0n);
      await store.removeQueue('q');
      await store.removeQueue('q');
      assert.deepEqual([...store.queues()], ['keep']);
      await rejectsWith(store.read('q', 0n, 10), EngineErrorCode.UnknownQueue);
      await store.addQueue('q');
      assert.deepEqual(await store.read('q', 0n, 10), []);
      assert.equal((await store.checkpointer('q')).offset, -1n);
      const s = await store.add('q', testMessage('new0'), 60);
      assert.equal(s.offset, 0n);
      assert.deepEqual(bodies(await store.read('q', 0n, 10)), ['new0']);
      assert.deepEqual(bodies(await store.read('keep', 0n, 10)), ['k0']);
    });

    withStore('close is idempotent and later calls reject with EDGE_ERR_STORE_CLOSED', async (_h, { store }) => {
      await store.addQueue('q');
      await store.close();
      await store.close();
      await rejectsWith(store.add('q', testMessage('x'), 60), EngineErrorCode.StoreClosed);
      await rejectsWith(store.read('q', 0n, 1), EngineErrorCode.StoreClosed);
    });

    withStore('messages, checkpoints and offsets survive close and reopen (durable stores)', async (h, s) => {
      if (h.reopen === undefined) return;
      await s.store.addQueue('q');
      await s.store.addQueue('gone');
      await s.store.addQueue('empty');
      const added = Array.from({ length: 5 }, (_, i) => testMessage(`p${i}`));
      for (const m of added) await s.store.add('q', m, 3600);
      await s.store.add('gone', testMessage('g'), 3600);
      await (await s.store.checkpointer('q')).commit(1n);
      await s.store.removeQueue('gone');
      s.store = await h.reopen();
      assert.deepEqual([...s.store.queues()].sort(), ['empty', 'q']);
      assert.equal((await s.store.checkpointer('q')).offset, 1n);
      const got = await s.store.read('q', 2n, 10);
      assert.deepEqual(bodies(got), ['p2', 'p3', 'p4']);
      assertSameMessage((got[0] as StoredMessage).message, added[2] as EdgeMessage);
      assert.equal((got[0] as StoredMessage).expiresAt, (added[2] as EdgeMessage).enqueuedAt + 3_600_000);
      const next = await s.store.add('q', testMessage('p5'), 3600);
      assert.equal(next.offset, 5n);
      assert.equal(s.store.stats().queues['q']?.length, 4);
    });
  });
}
