import fc from 'fast-check';
import { Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { FakeClock } from './clock.js';
import { KubeMetrics } from './metrics.js';
import { ExponentialBackoff, WorkQueue } from './workqueue.js';

/** Resolves with the value if `p` settled within the current macrotask, else 'pending'. */
async function peek<T>(p: Promise<T>): Promise<T | 'pending'> {
  return Promise.race([p, new Promise<'pending'>((r) => setImmediate(() => r('pending')))]);
}

describe('WorkQueue', () => {
  it('coalesces adds of a dirty key and hands keys out FIFO', async () => {
    const q = new WorkQueue();
    q.add('ns/a');
    q.add('ns/b');
    q.add('ns/a');
    expect(q.len()).toBe(2);
    expect(await q.get()).toBe('ns/a');
    expect(await q.get()).toBe('ns/b');
    expect(q.len()).toBe(0);
    expect(q.processing()).toBe(2);
  });

  it('never hands a processing key to a second worker, and re-queues it once on done if it became dirty', async () => {
    const q = new WorkQueue();
    q.add('ns/a');
    const first = await q.get();
    expect(first).toBe('ns/a');

    // 1. The key changes three times while worker 1 processes it.
    q.add('ns/a');
    q.add('ns/a');
    q.add('ns/a');
    expect(q.len()).toBe(0);

    // 2. Worker 2 waits: the only dirty key is being processed.
    const second = q.get();
    expect(await peek(second)).toBe('pending');

    // 3. done() re-queues it exactly once, and worker 2 gets it.
    q.done('ns/a');
    expect(await second).toBe('ns/a');
    expect(q.len()).toBe(0);
    q.done('ns/a');
    expect(q.len()).toBe(0);
    expect(q.processing()).toBe(0);
  });

  it('does not re-queue a key that was not added during processing', async () => {
    const q = new WorkQueue();
    q.add('k');
    await q.get();
    q.done('k');
    expect(q.len()).toBe(0);
    expect(await peek(q.get())).toBe('pending');
    q.shutDown();
  });

  it('gives each key to exactly one of several waiting workers', async () => {
    const q = new WorkQueue();
    const getters = [q.get(), q.get(), q.get()];
    q.add('a');
    q.add('b');
    const got = await Promise.all(getters.slice(0, 2));
    expect(got.sort()).toEqual(['a', 'b']);
    expect(await peek(getters[2]!)).toBe('pending');
    q.shutDown();
    expect(await getters[2]).toBeUndefined();
  });

  it('backs off addRateLimited exponentially per key until forget', () => {
    const clock = new FakeClock();
    const q = new WorkQueue({ backoff: { baseDelayMs: 5, maxDelayMs: 30 } }, { clock });

    q.addRateLimited('a'); // 5 ms
    expect(q.numRequeues('a')).toBe(1);
    clock.advance(4);
    expect(q.len()).toBe(0);
    clock.advance(1);
    expect(q.len()).toBe(1);

    q.addRateLimited('a'); // 10 ms; 'a' is already queued, so the later add coalesces
    q.addRateLimited('b'); // 5 ms: keys back off independently
    clock.advance(5);
    expect(q.len()).toBe(2);

    // t=10; the 10 ms add of 'a' is still pending, due at t=15.
    q.addRateLimited('a'); // 20 ms, due at 30: the pending add is earlier and wins
    q.addRateLimited('a'); // 30 ms (40 capped), due at 40: likewise
    expect(q.numRequeues('a')).toBe(4);
    expect(clock.pending()).toBe(1);
    q.forget('a');
    expect(q.numRequeues('a')).toBe(0);
    q.addRateLimited('a'); // 5 ms again after forget
    expect(q.numRequeues('a')).toBe(1);
    clock.advance(5);
    expect(q.len()).toBe(2); // 'a' coalesced into its queued entry, 'b' still queued
  });

  it('caps and jitters the backoff', () => {
    const b = new ExponentialBackoff<string>({ baseDelayMs: 5, maxDelayMs: 1_000_000 });
    const delays = Array.from({ length: 30 }, () => b.when('k'));
    expect(delays.slice(0, 4)).toEqual([5, 10, 20, 40]);
    expect(delays.at(-1)).toBe(1_000_000);
    expect(Math.max(...delays)).toBe(1_000_000);

    const j = new ExponentialBackoff<string>({ baseDelayMs: 100, maxDelayMs: 1000, jitter: 0.5, random: () => 0.5 });
    expect([j.when('k'), j.when('k'), j.when('k'), j.when('k'), j.when('k')]).toEqual([125, 250, 500, 1000, 1000]);
  });

  it('keeps only the earliest of several addAfter calls of one key', () => {
    const clock = new FakeClock();
    const q = new WorkQueue({}, { clock });
    q.addAfter('a', 100);
    q.addAfter('a', 50);
    q.addAfter('a', 200);
    expect(clock.pending()).toBe(1);
    clock.advance(50);
    expect(q.len()).toBe(1);
    clock.advance(1000);
    expect(q.len()).toBe(1);
    q.addAfter('b', 0);
    expect(q.len()).toBe(2);
  });

  it('resolves get() with undefined after shutDown, ignores later adds and cancels delayed adds', async () => {
    const clock = new FakeClock();
    const q = new WorkQueue({}, { clock });
    const waiting = q.get();
    q.addAfter('late', 10);
    q.shutDown();
    expect(await waiting).toBeUndefined();
    expect(clock.pending()).toBe(0);
    q.add('a');
    q.addRateLimited('b');
    expect(q.len()).toBe(0);
    expect(await q.get()).toBeUndefined();
  });

  it('shutDownWithDrain waits for processing keys to be done', async () => {
    const q = new WorkQueue();
    q.add('a');
    q.add('b');
    await q.get();
    await q.get();
    const drained = q.shutDownWithDrain();
    expect(await peek(drained)).toBe('pending');
    q.done('a');
    expect(await peek(drained)).toBe('pending');
    q.done('b');
    await drained;
    expect(q.processing()).toBe(0);
    await q.shutDownWithDrain(); // idempotent, nothing processing
  });

  it('reports depth, adds and retries on the injected registry', async () => {
    const registry = new Registry();
    const metrics = KubeMetrics.forRegistry(registry);
    expect(KubeMetrics.forRegistry(registry)).toBe(metrics);
    const clock = new FakeClock();
    const q = new WorkQueue({ name: 'edge' }, { clock, metrics });
    q.add('a');
    q.add('a');
    q.add('b');
    q.addRateLimited('c');
    clock.advance(5);
    const text = await registry.metrics();
    expect(text).toContain('kedge_workqueue_depth{name="edge"} 3');
    expect(text).toContain('kedge_workqueue_adds_total{name="edge"} 3');
    expect(text).toContain('kedge_workqueue_retries_total{name="edge"} 1');
  });

  it('keeps its invariants under random interleavings of workers and adds (model check)', async () => {
    const op = fc.oneof(
      fc.record({ t: fc.constant('add' as const), k: fc.constantFrom('a', 'b', 'c') }),
      fc.record({ t: fc.constant('get' as const) }),
      fc.record({ t: fc.constant('done' as const), i: fc.nat(4) }),
    );
    await fc.assert(
      fc.asyncProperty(fc.array(op, { maxLength: 60 }), async (ops) => {
        const q = new WorkQueue();
        const inFlight: string[] = []; // keys handed out and not yet done
        const addedSinceTaken = new Set<string>(); // model of "dirty"
        for (const o of ops) {
          if (o.t === 'add') {
            q.add(o.k);
            addedSinceTaken.add(o.k);
          } else if (o.t === 'get') {
            if (q.len() === 0) continue; // a get on an empty queue would block this sequential model
            const k = await q.get();
            expect(k).toBeDefined();
            // Invariant 1: a key is never handed out while it is in flight.
            expect(inFlight).not.toContain(k);
            inFlight.push(k!);
            addedSinceTaken.delete(k!);
          } else if (inFlight.length > 0) {
            const [k] = inFlight.splice(o.i % inFlight.length, 1);
            q.done(k!);
          }
          // Invariant 2: exactly the dirty keys that are not in flight are queued.
          const queued = [...addedSinceTaken].filter((k) => !inFlight.includes(k));
          expect(q.len()).toBe(queued.length);
        }
        // Invariant 3: after all workers finish, every dirty key is still delivered exactly once.
        for (const k of inFlight.splice(0)) q.done(k);
        const rest: string[] = [];
        while (q.len() > 0) {
          const k = await q.get();
          rest.push(k!);
          q.done(k!);
        }
        expect(rest.sort()).toEqual([...addedSinceTaken].sort());
      }),
      { numRuns: 200 },
    );
  });
});
