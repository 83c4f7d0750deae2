import { afterEach, describe, expect, it } from 'vitest';
import { FakeClock } from './clock.js';
import { EndpointExecutor } from './endpoint-executor.js';
import { PartialFailureEndpoint, RecordingEndpoint, RevivableEndpoint, StalledEndpoint } from './fake-endpoints.js';
import { MemoryMessageStore } from './memory-store.js';
import { testMessage } from './message-store.contract.js';
import { queueName } from './queue-name.js';
import { settle, text, until } from './test-support.js';
import { ExecutorState, FailureKind, type Endpoint, type EngineLogger, type ExecutorOptions, type SinkResult, type StoredMessage } from './types.js';

const ID = '/modules/b/inputs/in';

class Logs implements EngineLogger {
  readonly entries: { level: string; obj: Record<string, unknown>; msg: string }[] = [];
  debug(obj: object, msg: string): void {
    this.entries.push({ level: 'debug', obj: obj as Record<string, unknown>, msg });
  }
  info(obj: object, msg: string): void {
    this.entries.push({ level: 'info', obj: obj as Record<string, unknown>, msg });
  }
  warn(obj: object, msg: string): void {
    this.entries.push({ level: 'warn', obj: obj as Record<string, unknown>, msg });
  }
  error(obj: object, msg: string): void {
    this.entries.push({ level: 'error', obj: obj as Record<string, unknown>, msg });
  }
  states(): string[] {
    return this.entries.filter((e) => e.msg === 'Endpoint executor state changed').map((e) => `${String(e.obj['from'])}>${String(e.obj['to'])}`);
  }
  levelsOf(msg: string): string[] {
    return this.entries.filter((e) => e.msg === msg).map((e) => e.level);
  }
}

/** An endpoint whose results the test decides, one scripted function per call. */
class ScriptedEndpoint implements Endpoint {
  readonly batches: (readonly StoredMessage[])[] = [];
  constructor(
    readonly id: string,
    readonly script: (batch: readonly StoredMessage[], call: number) => SinkResult,
  ) {}
  process(batch: readonly StoredMessage[]): Promise<SinkResult> {
    this.batches.push(batch);
    return Promise.resolve(this.script(batch, this.batches.length));
  }
}

const executors: EndpointExecutor[] = [];
afterEach(async () => {
  await Promise.all(executors.splice(0).map((e) => e.close()));
});

function setup(endpoint: Endpoint, options: ExecutorOptions = {}, extra: { onRetired?: (e: EndpointExecutor) => void; store?: MemoryMessageStore } = {}) {
  const clock = new FakeClock();
  const store = extra.store ?? new MemoryMessageStore();
  const log = new Logs();
  const ex = new EndpointExecutor({ endpoint, store, clock, log, options, random: () => 0.5, ...(extra.onRetired ? { onRetired: extra.onRetired } : {}) });
  executors.push(ex);
  const status = () => ex.status(store.stats());
  const q = (priority = 0) => status().queues.find((x) => x.priority === priority);
  return { clock, store, log, ex, status, q };
}

const msg = (body: string, at: number) => testMessage(body, { id: body, enqueuedAt: at });
const bodiesOf = (b: readonly StoredMessage[]) => b.map((m) => text(m.message.body));

describe('EndpointExecutor: queues and status', () => {
  it('reports an idle executor and keeps its queues sorted by priority, one per priority', async () => {
    const { ex, status } = setup(new RecordingEndpoint(ID));
    await ex.ensureQueue(5);
    await Promise.all([ex.ensureQueue(1), ex.ensureQueue(1)]);
    await ex.ensureQueue(3);
    expect(ex.priorities).toEqual([1, 3, 5]);
    await until(() => ex.state === ExecutorState.Idle, 'idle');
    const s = status();
    expect(s).toStrictEqual({
      id: ID,
      state: 'idle',
      retiring: false,
      failedAttempts: 0,
      queues: [1, 3, 5].map((p) => ({ queue: queueName(ID, p), priority: p, length: 0, delivered: 0, dropped: { expired: 0, evicted: 0, invalid: 0 } })),
    });
    expect(ex.retiring).toBe(false);
    // A queue the store does not know yet reads as empty.
    expect(ex.status({ bytes: 0, maxBytes: 0, rejected: 0, queues: {} }).queues[0]).toMatchObject({ length: 0, dropped: { expired: 0, evicted: 0 } });
    // The store's own drops are added to the executor's.
    const withDrops = ex.status({ bytes: 0, maxBytes: 0, rejected: 0, queues: { [queueName(ID, 1)]: { length: 7, nextOffset: 9n, checkpoint: 1n, expired: 4, evicted: 2 } } });
    expect(withDrops.queues[0]).toMatchObject({ length: 7, dropped: { expired: 4, evicted: 2, invalid: 0 } });
  });

  it('refuses messages for a priority it has no queue for', async () => {
    const { ex } = setup(new RecordingEndpoint(ID));
    await expect(ex.invoke(msg('a', 0), 7, -1)).rejects.toThrow(`No queue for priority 7 on endpoint ${ID}`);
  });

  it('delivers recovered messages from the checkpoint on, in batches of batchSize (at least 1)', async () => {
    for (const [batchSize, sizes] of [
      [2, [2, 2, 1]],
      [0, [1, 1, 1, 1, 1]],
    ] as const) {
      const store = new MemoryMessageStore();
      const name = queueName(ID, 0);
      await store.addQueue(name);
      for (const b of ['a', 'b', 'c', 'd', 'e']) await store.add(name, msg(b, 0), -1);
      const e = new RecordingEndpoint(ID);
      const { ex, q } = setup(e, { batchSize }, { store });
      await ex.ensureQueue(0);
      await until(() => e.received.length === 5 && ex.state === ExecutorState.Idle, 'delivered');
      expect(e.batches.map((b) => b.length)).toEqual(sizes);
      expect(bodiesOf(e.received)).toEqual(['a', 'b', 'c', 'd', 'e']);
      expect(q()).toMatchObject({ length: 0, delivered: 5 });
    }
  });
});

describe('EndpointExecutor: failing, dead, revived', () => {
  it('backs off exponentially up to the cap, goes dead after maxRetries, probes after the revive period, revives on success', async () => {
    const e = new RevivableEndpoint(ID, true);
    const { ex, clock, status, log, q } = setup(e, { retry: { initialDelayMs: 100, maxDelayMs: 250, maxRetries: 3, revivePeriodMs: 10_000, jitter: 0 } });
    await ex.ensureQueue(0);
    const t0 = clock.now();
    await ex.invoke(msg('m', t0), 0, -1);
    await until(() => ex.state === ExecutorState.Failing, 'failing');
    expect(status()).toMatchObject({ state: 'failing', failedAttempts: 1, lastFailure: { kind: FailureKind.NoConnection, at: t0 } });
    const delays: number[] = [];
    for (let attempt = 2; attempt <= 4; attempt++) {
      const due = (clock.nextDue() as number) - clock.now();
      delays.push(due);
      clock.advance(due - 1);
      await settle();
      expect(e.attempts).toBe(attempt - 1);
      clock.advance(1);
      await until(() => e.attempts === attempt && ex.state !== ExecutorState.Sending, `attempt ${attempt}`);
    }
    expect(delays).toEqual([100, 200, 250]);
    expect(ex.state).toBe(ExecutorState.Dead);
    expect(status().failedAttempts).toBe(4);
    expect((clock.nextDue() as number) - clock.now()).toBe(10_000);
    // The probe after the revive period fails: dead again for another period.
    clock.advance(10_000);
    await until(() => e.attempts === 5 && ex.state === ExecutorState.Dead, 'probe failed');
    expect((clock.nextDue() as number) - clock.now()).toBe(10_000);
    // The destination is back: available() sends at once, cancelling the revive timer.
    e.down = false;
    ex.available();
    await until(() => ex.state === ExecutorState.Idle, 'revived and drained');
    expect(clock.pending()).toBe(0);
    expect(bodiesOf(e.received)).toEqual(['m']);
    expect(status().failedAttempts).toBe(0);
    expect(q()).toMatchObject({ length: 0, delivered: 1 });
    expect(log.states()).toEqual(['idle>sending', 'sending>failing', 'failing>sending', 'sending>failing', 'failing>sending', 'sending>failing', 'failing>sending', 'sending>dead', 'dead>revived', 'revived>dead', 'dead>revived', 'revived>sending', 'sending>idle']);
    // The first failure and giving up are warnings, the retries in between debug.
    expect(log.levelsOf('Endpoint send failed; retrying with backoff')).toEqual(['warn', 'debug', 'debug', 'warn', 'warn']);
  });

  it('clamps jitter to [0, 1]', async () => {
    for (const [jitter, delay] of [
      [2, 50],
      [-1, 100],
      [0.5, 75],
    ] as const) {
      const e = new RevivableEndpoint(ID, true);
      const { ex, clock } = setup(e, { retry: { initialDelayMs: 100, jitter } });
      await ex.ensureQueue(0);
      await ex.invoke(msg('m', clock.now()), 0, -1);
      await until(() => ex.state === ExecutorState.Failing, 'failing');
      expect((clock.nextDue() as number) - clock.now(), `jitter ${jitter}`).toBe(delay);
    }
  });

  it('fails a batch whose send does not settle within sendTimeoutMs', async () => {
    const e = new StalledEndpoint(ID);
    const { ex, clock, status } = setup(e, { sendTimeoutMs: 500, retry: { initialDelayMs: 100_000, jitter: 0 } });
    await ex.ensureQueue(0);
    await ex.invoke(msg('m', clock.now()), 0, -1);
    await until(() => e.calls === 1, 'sent');
    clock.advance(499);
    await settle();
    expect(ex.state).toBe(ExecutorState.Sending);
    clock.advance(1);
    await until(() => ex.state === ExecutorState.Failing, 'timed out');
    expect(status().lastFailure?.kind).toBe(FailureKind.Timeout);
    // Only the backoff timer is left: the send timer was cleared.
    expect(clock.pending()).toBe(1);
  });
});

describe('EndpointExecutor: expiry while failing', () => {
  it('drops messages whose TTL passed before a retry, counts them once and reports them to onExpired', async () => {
    const expired: { id: string; priority: number; bodies: string[] }[] = [];
    const e = new RevivableEndpoint(ID, true);
    const { ex, clock, q } = setup(e, {
      retry: { initialDelayMs: 2_000, jitter: 0 },
      onExpired: (id, priority, ms) => expired.push({ id, priority, bodies: bodiesOf(ms) }),
    });
    await ex.ensureQueue(4);
    const t0 = clock.now();
    await ex.invoke(msg('short', t0), 4, 2);
    await ex.invoke(msg('long', t0), 4, 100);
    await until(() => ex.state === ExecutorState.Failing && e.attempts >= 1, 'failing');
    const before = e.attempts;
    // The retry fires exactly when 'short' expires (expiresAt === now counts as expired).
    clock.advance(2_000);
    await until(() => e.attempts === before + 1 && ex.state === ExecutorState.Failing, 'retried');
    expect(expired).toEqual([{ id: ID, priority: 4, bodies: ['short'] }]);
    expect(q(4)?.dropped.expired).toBe(1);
    // It fails again: the expired message is not counted twice.
    clock.advance(4_000);
    await until(() => e.attempts === before + 2 && ex.state === ExecutorState.Failing, 'retried twice');
    expect(expired).toHaveLength(1);
    expect(q(4)?.dropped.expired).toBe(1);
    e.down = false;
    ex.available();
    await until(() => ex.state === ExecutorState.Idle, 'idle');
    expect(bodiesOf(e.received)).toEqual(['long']);
    expect(q(4)).toMatchObject({ length: 0, delivered: 1, dropped: { expired: 1 } });
  });

  it('checkpoints a batch that expired whole and goes idle', async () => {
    const e = new RevivableEndpoint(ID, true);
    const { ex, clock, q } = setup(e, { retry: { initialDelayMs: 5_000, jitter: 0 } });
    await ex.ensureQueue(0);
    await ex.invoke(msg('a', clock.now()), 0, 1);
    await ex.invoke(msg('b', clock.now()), 0, 1);
    await until(() => ex.state === ExecutorState.Failing, 'failing');
    const tries = e.attempts;
    clock.advance(5_000);
    await until(() => ex.state === ExecutorState.Idle, 'idle');
    expect(e.attempts).toBe(tries);
    expect(q()).toMatchObject({ length: 0, delivered: 0, dropped: { expired: 2 } });
  });
});

describe('EndpointExecutor: partial results', () => {
  it('checkpoints up to the first failed message and retries the rest, in order', async () => {
    const e = new PartialFailureEndpoint(ID, 1, new Set(['bad']));
    const { ex, clock, q, store } = setup(e, { retry: { initialDelayMs: 10, jitter: 0 } });
    const name = queueName(ID, 0);
    await store.addQueue(name);
    for (const b of ['a', 'bad', 'c', 'd']) await store.add(name, msg(b, 0), -1);
    await ex.ensureQueue(0);
    await until(() => ex.state === ExecutorState.Failing, 'failing');
    // 'a' delivered, 'bad' dropped as invalid, 'c' and 'd' failed (one accepted per batch).
    expect(q()).toMatchObject({ length: 2, delivered: 1, dropped: { invalid: 1 } });
    expect((await store.checkpointer(name)).offset).toBe(1n);
    clock.advance(10);
    await until(() => e.batches.length === 2 && ex.state === ExecutorState.Failing, 'first retry');
    expect(bodiesOf(e.batches[1] as StoredMessage[])).toEqual(['c', 'd']);
    expect((await store.checkpointer(name)).offset).toBe(2n);
    expect(q()).toMatchObject({ length: 1, delivered: 2 });
    clock.advance(20);
    await until(() => ex.state === ExecutorState.Idle, 'idle');
    expect(bodiesOf(e.batches[2] as StoredMessage[])).toEqual(['d']);
    expect(bodiesOf(e.received)).toEqual(['a', 'c', 'd']);
    expect(q()).toMatchObject({ length: 0, delivered: 3, dropped: { invalid: 1 } });
  });

  it('counts a message listed twice, or not from the batch, once or not at all, and retries what it did not list', async () => {
    const e = new ScriptedEndpoint(ID, (batch, call) => {
      const a = batch[0] as StoredMessage;
      if (call === 1) {
        const stranger: StoredMessage = { offset: 99n, message: a.message, expiresAt: Infinity };
        return { succeeded: [a, a], failed: [], invalid: [{ message: a, reason: 'dup' }, { message: stranger, reason: 'not ours' }] };
      }
      return { succeeded: batch, failed: [], invalid: [] };
    });
    const { ex, clock, q, store } = setup(e, { retry: { initialDelayMs: 10, jitter: 0 } });
    const name = queueName(ID, 0);
    await store.addQueue(name);
    for (const b of ['a', 'b']) await store.add(name, msg(b, 0), -1);
    await ex.ensureQueue(0);
    await until(() => ex.state === ExecutorState.Failing, 'failing');
    expect(q()).toMatchObject({ length: 1, delivered: 1, dropped: { invalid: 0 } });
    expect(ex.status(store.stats()).lastFailure?.kind).toBe(FailureKind.Transient);
    clock.advance(10);
    await until(() => ex.state === ExecutorState.Idle, 'idle');
    expect(bodiesOf(e.batches[1] as StoredMessage[])).toEqual(['b']);
    expect(q()).toMatchObject({ length: 0, delivered: 2 });
  });

  it('does not take a same-length result with other messages as all delivered', async () => {
    const e = new ScriptedEndpoint(ID, (batch, call) => (call === 1 ? { succeeded: [batch[1] as StoredMessage, batch[1] as StoredMessage], failed: [], invalid: [] } : { succeeded: batch, failed: [], invalid: [] }));
    const { ex, clock, q, store } = setup(e, { retry: { initialDelayMs: 10, jitter: 0 } });
    const name = queueName(ID, 0);
    await store.addQueue(name);
    for (const b of ['a', 'b']) await store.add(name, msg(b, 0), -1);
    await ex.ensureQueue(0);
    await until(() => ex.state === ExecutorState.Failing, 'failing');
    expect(q()).toMatchObject({ length: 2, delivered: 1 });
    clock.advance(10);
    await until(() => ex.state === ExecutorState.Idle, 'idle');
    expect(bodiesOf(e.batches[1] as StoredMessage[])).toEqual(['a']);
    expect(q()).toMatchObject({ length: 0, delivered: 2 });
  });
});

describe('EndpointExecutor: retiring', () => {
  it('retires only the named priorities, removes drained queues and closes when none is left', async () => {
    const retired: EndpointExecutor[] = [];
    const e = new RecordingEndpoint(ID);
    const { ex, store } = setup(e, {}, { onRetired: (x) => retired.push(x) });
    await ex.ensureQueue(0);
    await ex.ensureQueue(1);
    await until(() => ex.state === ExecutorState.Idle, 'idle');
    ex.retire([0]);
    expect(ex.retiring).toBe(false);
    await until(() => ex.priorities.length === 1, 'queue 0 removed');
    expect(ex.priorities).toEqual([1]);
    expect(store.queues()).toEqual([queueName(ID, 1)]);
    expect(ex.state).toBe(ExecutorState.Idle);
    // ensureQueue un-retires.
    ex.retire();
    expect(ex.retiring).toBe(true);
    await until(() => retired.length === 1, 'retired');
    expect(retired[0]).toBe(ex);
    expect(ex.state).toBe(ExecutorState.Closed);
    expect(e.closed).toBe(true);
    expect(store.queues()).toEqual([]);
  });

  it('keeps a retiring queue until its messages are delivered; ensureQueue takes the retirement back', async () => {
    const e = new RevivableEndpoint(ID, true);
    const { ex, clock, store } = setup(e, { retry: { initialDelayMs: 10, jitter: 0 } });
    await ex.ensureQueue(0);
    await ex.invoke(msg('m', clock.now()), 0, -1);
    await until(() => ex.state === ExecutorState.Failing, 'failing');
    ex.retire();
    expect(ex.retiring).toBe(true);
    await ex.ensureQueue(0);
    expect(ex.retiring).toBe(false);
    ex.retire();
    e.down = false;
    clock.advance(10);
    await until(() => ex.state === ExecutorState.Closed, 'closed');
    expect(bodiesOf(e.received)).toEqual(['m']);
    expect(store.queues()).toEqual([]);
  });
});
