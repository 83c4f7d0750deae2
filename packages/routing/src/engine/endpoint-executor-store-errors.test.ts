import { afterEach, describe, expect, it } from 'vitest';
import { FakeClock } from './clock.js';
import { EndpointExecutor } from './endpoint-executor.js';
import { RecordingEndpoint } from './fake-endpoints.js';
import { MemoryMessageStore } from './memory-store.js';
import { testMessage } from './message-store.contract.js';
import { queueName } from './queue-name.js';
import { settle, text, until } from './test-support.js';
import { ExecutorState, type StoredMessage } from './types.js';

const ID = '$upstream';

/**
 * A memory store whose reads fail `failures` times with an I/O-like error: a fake, because a real store cannot be
 * made to fail a read on cue.
 */
class FlakyReadStore extends MemoryMessageStore {
  constructor(public failures: number) {
    super();
  }
  override read(queue: string, fromOffset: bigint, limit: number): Promise<StoredMessage[]> {
    if (this.failures > 0) {
      this.failures--;
      return Promise.reject(new Error('EIO: fake read failure'));
    }
    return super.read(queue, fromOffset, limit);
  }
}

const executors: EndpointExecutor[] = [];
afterEach(async () => {
  await Promise.all(executors.splice(0).map((e) => e.close()));
});

async function setup(failures: number, maxRetries: number) {
  const clock = new FakeClock();
  const store = new FlakyReadStore(0);
  const endpoint = new RecordingEndpoint(ID);
  const ex = new EndpointExecutor({ endpoint, store, clock, random: () => 0, options: { retry: { initialDelayMs: 100, maxRetries, revivePeriodMs: 5_000 } } });
  executors.push(ex);
  await ex.ensureQueue(0);
  await until(() => ex.state === ExecutorState.Idle, 'idle');
  store.failures = failures;
  await store.add(queueName(ID, 0), testMessage('m', { id: 'm', enqueuedAt: clock.now() }), -1);
  ex.notify();
  return { clock, store, endpoint, ex, status: () => ex.status(store.stats()) };
}

describe('EndpointExecutor: store errors', () => {
  it('treats a failed read like a failed send: backoff, then the read is retried', async () => {
    const { clock, endpoint, ex, status } = await setup(1, 5);
    await until(() => ex.state === ExecutorState.Failing, 'failing');
    expect(status().failedAttempts).toBe(1);
    expect((clock.nextDue() as number) - clock.now()).toBe(100);
    clock.advance(100);
    await until(() => ex.state === ExecutorState.Idle, 'idle');
    expect(endpoint.received.map((m) => text(m.message.body))).toEqual(['m']);
    expect(status().failedAttempts).toBe(0);
  });

  it('goes dead once failed reads exceed maxRetries', async () => {
    const { clock, endpoint, ex } = await setup(2, 1);
    await until(() => ex.state === ExecutorState.Failing, 'failing');
    clock.advance(100);
    await until(() => ex.state === ExecutorState.Dead, 'dead');
    expect((clock.nextDue() as number) - clock.now()).toBe(5_000);
    clock.advance(5_000);
    await until(() => ex.state === ExecutorState.Idle, 'revived and idle');
    expect(endpoint.received).toHaveLength(1);
  });

  it('stops pumping, without an error, when the store is closed under it', async () => {
    const clock = new FakeClock();
    const store = new MemoryMessageStore();
    const ex = new EndpointExecutor({ endpoint: new RecordingEndpoint(ID), store, clock });
    executors.push(ex);
    await ex.ensureQueue(0);
    await until(() => ex.state === ExecutorState.Idle, 'idle');
    await store.close();
    ex.notify();
    // Before the fix the pump restarted forever in microtasks: this wait never got a turn of the event loop.
    await settle();
    expect(ex.state).toBe(ExecutorState.Idle);
    expect(ex.status(new MemoryMessageStore().stats()).failedAttempts).toBe(0);
    expect(clock.pending()).toBe(0);
  });
});
