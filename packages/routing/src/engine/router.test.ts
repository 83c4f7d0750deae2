import { afterEach, describe, expect, it } from 'vitest';
import { sinkKey, type RouteSink } from '../route.js';
import { FakeClock } from './clock.js';
import { FailingEndpoint, PartialFailureEndpoint, RecordingEndpoint, RevivableEndpoint, StalledEndpoint } from './fake-endpoints.js';
import { MemoryMessageStore } from './memory-store.js';
import { testMessage } from './message-store.contract.js';
import { queueName } from './queue-name.js';
import { Router } from './router.js';
import { moduleMessage, routes, settle, text, until } from './test-support.js';
import { ExecutorState, FailureKind, type BatchContext, type Endpoint, type EndpointHooks, type RouterOptions, type SinkResult, type StoredMessage } from './types.js';

const B_IN = '/modules/b/inputs/in';

/** A router over a memory store whose endpoints are made by `make` and kept by id. */
function setup(make: (id: string) => Endpoint = (id) => new RecordingEndpoint(id), opts: Partial<RouterOptions> = {}) {
  const clock = new FakeClock();
  const store = new MemoryMessageStore();
  const endpoints = new Map<string, Endpoint>();
  const hooks = new Map<string, EndpointHooks>();
  const router = new Router({
    store,
    clock,
    random: () => 0,
    endpoints: (sink: RouteSink, h) => {
      const id = sinkKey(sink);
      const e = make(id);
      endpoints.set(id, e);
      hooks.set(id, h);
      return e;
    },
    ...opts,
  });
  routers.push(router);
  const ep = <T extends Endpoint>(id: string): T => endpoints.get(id) as T;
  const state = (id: string): ExecutorState | undefined => router.status().endpoints.find((e) => e.id === id)?.state;
  const queue = (id: string, priority = 2_000_000_000) =>
    router
      .status()
      .endpoints.find((e) => e.id === id)
      ?.queues.find((q) => q.queue === queueName(id, priority));
  return { clock, store, router, ep, hooks, state, queue };
}

const routers: Router[] = [];
afterEach(async () => {
  await Promise.all(routers.splice(0).map((r) => r.close()));
});

const bodies = (e: RecordingEndpoint): string[] => e.received.map((m) => text(m.message.body));

describe('Router', () => {
  it("delivers module a's output to module b's input through a route with a WHERE on $body, in order", async () => {
    const { router, ep, clock } = setup();
    await router.replaceRoutes(routes({ r1: `FROM /messages/modules/a/outputs/* WHERE $body.t > 30 INTO BrokeredEndpoint("${B_IN}")` }));
    const sent = [31, 10, 40, 50];
    const outcomes = [];
    for (const t of sent) outcomes.push(await router.route(moduleMessage('a', 'o', { t }, clock.now())));
    expect(outcomes.map((o) => o.deliveries.length)).toEqual([1, 0, 1, 1]);
    expect(outcomes[0]?.deliveries[0]).toMatchObject({ route: 'r1', endpoint: B_IN, queue: queueName(B_IN, 2_000_000_000), offset: 0n });
    const b = ep<RecordingEndpoint>(B_IN);
    await until(() => b.received.length === 3, 'three deliveries');
    expect(bodies(b)).toEqual(['{"t":31}', '{"t":40}', '{"t":50}']);
    const st = router.status();
    expect([st.routed, st.unrouted]).toEqual([3, 1]);
    await until(() => router.status().endpoints[0]?.queues[0]?.length === 0, 'checkpointed');
    expect(router.status().endpoints[0]?.queues[0]).toMatchObject({ delivered: 3, length: 0, dropped: { expired: 0, evicted: 0, invalid: 0 } });
  });

  it('stores with the route TTL, else the store-and-forward TTL', async () => {
    const { router, clock } = setup();
    const specs = routes({
      own: { route: 'FROM /messages/modules/a/* INTO $upstream', timeToLiveSecs: 30 },
      dflt: `FROM /messages/modules/z/* INTO BrokeredEndpoint("${B_IN}")`,
    });
    await router.replaceRoutes(specs.map((s) => (s.name === 'dflt' ? { ...s, timeToLiveSecs: 0 } : s)), { timeToLiveSecs: 90 });
    const now = clock.now();
    const a = await router.route(moduleMessage('a', 'o', 1, now));
    const z = await router.route(moduleMessage('z', 'o', 1, now));
    expect(a.deliveries[0]?.expiresAt).toBe(now + 30_000);
    expect(z.deliveries[0]?.expiresAt).toBe(now + 90_000);
  });

  it('drains the higher-priority queue of an endpoint first', async () => {
    const gate = new GateEndpoint('$upstream');
    const { router } = setup(() => gate);
    await router.replaceRoutes(
      routes({
        hi: { route: 'FROM /messages/modules/alarm/* INTO $upstream', priority: 0 },
        lo: { route: 'FROM /messages/modules/bulk/* INTO $upstream', priority: 5 },
      }),
    );
    // 1. b0 goes out alone and is held at the endpoint.
    await router.route(moduleMessage('bulk', 'o', 'b0', Date.now()));
    await until(() => gate.batches.length === 1, 'first send');
    // 2. More bulk, then an alarm, queue behind it.
    for (let i = 1; i < 3; i++) await router.route(moduleMessage('bulk', 'o', `b${i}`, Date.now()));
    await router.route(moduleMessage('alarm', 'o', 'a0', Date.now()));
    // 3. Released, the alarm overtakes the older bulk messages.
    gate.open = true;
    gate.release();
    await until(() => gate.received.length === 4, 'all delivered');
    expect(gate.batches.map((b) => b.map((m) => text(m.message.body)))).toEqual([['"b0"'], ['"a0"'], ['"b1"', '"b2"']]);
    // Each batch names the priority of the queue it came from (the edge hub's `priority` metric label).
    expect(gate.priorities).toEqual([5, 0, 5]);
  });

  it('retries a failing endpoint with exponential backoff and delivers in order once it is back', async () => {
    const { router, ep, clock, state } = setup((id) => new RevivableEndpoint(id, true), { executor: { retry: { initialDelayMs: 1000, maxDelayMs: 8000 } } });
    await router.replaceRoutes(routes({ r: 'FROM /messages/* INTO $upstream' }));
    for (let i = 0; i < 5; i++) await router.route(moduleMessage('a', 'o', i, clock.now()));
    const up = ep<RevivableEndpoint>('$upstream');
    await until(() => state('$upstream') === ExecutorState.Failing, 'failing');
    expect(up.attempts).toBe(1);
    clock.advance(999);
    await settle();
    expect(up.attempts).toBe(1);
    clock.advance(1);
    await until(() => up.attempts === 2, 'second attempt at 1 s');
    clock.advance(1999);
    await settle();
    expect(up.attempts).toBe(2);
    clock.advance(1);
    await until(() => up.attempts === 3, 'third attempt after 2 s more');
    expect(router.status().endpoints[0]).toMatchObject({ state: ExecutorState.Failing, failedAttempts: 3, lastFailure: { kind: FailureKind.NoConnection } });
    up.down = false;
    clock.advance(4000);
    await until(() => up.received.length === 5, 'delivered');
    expect(bodies(up)).toEqual(['0', '1', '2', '3', '4']);
    await until(() => state('$upstream') === ExecutorState.Idle, 'idle');
  });

  it('retries at once when the endpoint reports it is available', async () => {
    const { router, ep, hooks, state } = setup((id) => new RevivableEndpoint(id, true), { executor: { retry: { initialDelayMs: 60_000 } } });
    await router.replaceRoutes(routes({ r: 'FROM /messages/* INTO $upstream' }));
    await router.route(moduleMessage('a', 'o', 1, Date.now()));
    await until(() => state('$upstream') === ExecutorState.Failing, 'failing');
    const up = ep<RevivableEndpoint>('$upstream');
    up.down = false;
    hooks.get('$upstream')?.available();
    await until(() => up.received.length === 1, 'delivered without waiting the backoff');
  });

  it('goes dead after its retries, revives after the revive period, and keeps every message meanwhile', async () => {
    const { router, ep, clock, state, queue } = setup((id) => new RevivableEndpoint(id, true), {
      executor: { retry: { initialDelayMs: 100, maxDelayMs: 100, maxRetries: 2, revivePeriodMs: 10_000 } },
    });
    await router.replaceRoutes(routes({ r: 'FROM /messages/* INTO $upstream' }));
    await router.route(moduleMessage('a', 'o', 1, clock.now()));
    const up = ep<RevivableEndpoint>('$upstream');
    const armed = (s: ExecutorState) => () => state('$upstream') === s && clock.pending() === 1;
    await until(armed(ExecutorState.Failing), 'attempt 1 failed');
    clock.advance(100);
    await until(() => up.attempts === 2 && armed(ExecutorState.Failing)(), 'attempt 2 failed');
    clock.advance(100);
    await until(armed(ExecutorState.Dead), 'dead after 3 failures');
    expect(up.attempts).toBe(3);
    await router.route(moduleMessage('a', 'o', 2, clock.now()));
    clock.advance(9_999);
    await settle();
    expect(up.attempts).toBe(3);
    clock.advance(1);
    await until(() => up.attempts === 4 && armed(ExecutorState.Dead)(), 'dead again after a failed revive probe');
    expect(queue('$upstream')?.length).toBe(2);
    up.down = false;
    clock.advance(10_000);
    await until(() => up.received.length === 2, 'delivered after revival');
    expect(bodies(up)).toEqual(['1', '2']);
  });

  it('a dead module endpoint delivers at once when its module subscribes, without waiting for the revive period', async () => {
    const { router, ep, clock, state, hooks } = setup((id) => new RevivableEndpoint(id, true), {
      executor: { retry: { initialDelayMs: 100, maxDelayMs: 100, maxRetries: 1, revivePeriodMs: 600_000 } },
    });
    await router.replaceRoutes(routes({ r: `FROM /messages/* INTO BrokeredEndpoint("${B_IN}")` }));
    for (let i = 0; i < 3; i++) await router.route(moduleMessage('a', 'o', i, clock.now()));
    const b = ep<RevivableEndpoint>(B_IN);
    await until(() => state(B_IN) === ExecutorState.Failing && clock.pending() === 1, 'failing');
    clock.advance(100);
    await until(() => state(B_IN) === ExecutorState.Dead && clock.pending() === 1, 'dead (the module stayed offline)');
    // The module connects and subscribes (the edge hub's sessionChanged calls the endpoint's hooks).
    b.down = false;
    hooks.get(B_IN)?.available();
    await until(() => b.received.length === 3, 'delivered without the revive period');
    expect(bodies(b)).toEqual(['0', '1', '2']);
    await until(() => state(B_IN) === ExecutorState.Idle, 'idle');
  });

  it('delivers every message exactly once through an endpoint that accepts part of each batch', async () => {
    const { router, ep, clock } = setup((id) => new PartialFailureEndpoint(id, 2), { executor: { batchSize: 5, retry: { initialDelayMs: 10 } } });
    await router.replaceRoutes(routes({ r: 'FROM /messages/* INTO $upstream' }));
    for (let i = 0; i < 12; i++) await router.route(moduleMessage('a', 'o', i, clock.now()));
    const up = ep<PartialFailureEndpoint>('$upstream');
    for (let i = 0; i < 20 && up.received.length < 12; i++) {
      clock.advance(1000);
      await settle();
    }
    expect(bodies(up)).toEqual(Array.from({ length: 12 }, (_, i) => String(i)));
  });

  it('checkpoints invalid messages once, counts them and never retries them', async () => {
    const { router, ep, clock, queue } = setup((id) => new PartialFailureEndpoint(id, 100, new Set(['"bad"'])));
    await router.replaceRoutes(routes({ r: 'FROM /messages/* INTO $upstream' }));
    for (const b of ['ok1', 'bad', 'ok2']) await router.route(moduleMessage('a', 'o', b, clock.now()));
    const up = ep<PartialFailureEndpoint>('$upstream');
    await until(() => queue('$upstream')?.length === 0, 'all handled');
    expect(bodies(up)).toEqual(['"ok1"', '"ok2"']);
    expect(up.batches.flat().filter((m) => text(m.message.body) === '"bad"')).toHaveLength(1);
    expect(queue('$upstream')).toMatchObject({ delivered: 2, dropped: { invalid: 1, expired: 0 } });
  });

  it('drops and counts messages whose TTL passed while the endpoint was down', async () => {
    const told: string[] = [];
    const { router, ep, clock, queue, state } = setup((id) => new RevivableEndpoint(id, true), {
      executor: { retry: { initialDelayMs: 1000, maxDelayMs: 1000 }, onExpired: (id, priority, ms) => told.push(...ms.map((m) => `${id}@${priority}:${text(m.message.body)}`)) },
    });
    await router.replaceRoutes(routes({ short: { route: 'FROM /messages/* INTO $upstream', timeToLiveSecs: 10 } }));
    await router.route(moduleMessage('a', 'o', 'old', clock.now()));
    const up = ep<RevivableEndpoint>('$upstream');
    const failingArmed = () => state('$upstream') === ExecutorState.Failing && clock.pending() === 1;
    await until(failingArmed, 'first attempt failed');
    clock.advance(5_000);
    await router.route(moduleMessage('a', 'o', 'new', clock.now()));
    await until(() => up.attempts === 2 && failingArmed(), 'second attempt failed');
    clock.advance(6_000);
    await until(() => up.attempts === 3 && failingArmed(), 'third attempt failed, the first message now expired');
    up.down = false;
    clock.advance(1_000);
    await until(() => up.received.length === 1, 'the live one delivered');
    expect(bodies(up)).toEqual(['"new"']);
    await until(() => queue('$upstream')?.length === 0, 'checkpointed');
    expect(queue('$upstream')).toMatchObject({ delivered: 1, dropped: { expired: 1 } });
    // The caller is told which message expired, on which endpoint queue.
    expect(told).toEqual(['$upstream@2000000000:"old"']);
  });

  it('times out an endpoint that never settles and retries the batch', async () => {
    const { router, ep, clock, state } = setup((id) => new StalledEndpoint(id), { executor: { sendTimeoutMs: 5000, retry: { initialDelayMs: 100 } } });
    await router.replaceRoutes(routes({ r: 'FROM /messages/* INTO $upstream' }));
    await router.route(moduleMessage('a', 'o', 1, clock.now()));
    const st = ep<StalledEndpoint>('$upstream');
    await until(() => st.calls === 1, 'sent');
    clock.advance(5000);
    await until(() => state('$upstream') === ExecutorState.Failing, 'failing after the timeout');
    expect(router.status().endpoints[0]?.lastFailure?.kind).toBe(FailureKind.Timeout);
    clock.advance(100);
    await until(() => st.calls === 2, 'retried');
  });

  it('applies new routes live; a removed endpoint drains its queue, then closes and its queue is removed', async () => {
    const { router, ep, hooks, store, clock } = setup((id) => (id === B_IN ? new RevivableEndpoint(id, true) : new RecordingEndpoint(id)));
    await router.replaceRoutes(routes({ toB: `FROM /messages/* INTO BrokeredEndpoint("${B_IN}")` }));
    for (let i = 0; i < 3; i++) await router.route(moduleMessage('a', 'o', i, clock.now()));
    const b = ep<RevivableEndpoint>(B_IN);
    await until(() => b.attempts === 1, 'b failing');
    await router.replaceRoutes(routes({ toUp: 'FROM /messages/* INTO $upstream' }));
    const out = await router.route(moduleMessage('a', 'o', 99, clock.now()));
    expect(out.deliveries.map((d) => d.endpoint)).toEqual(['$upstream']);
    expect(router.status().endpoints.find((e) => e.id === B_IN)).toMatchObject({ retiring: true });
    expect(store.queues()).toContain(queueName(B_IN, 2_000_000_000));
    b.down = false;
    hooks.get(B_IN)?.available();
    await until(() => b.closed, 'b closed after draining');
    expect(bodies(b)).toEqual(['0', '1', '2']);
    expect(store.queues()).not.toContain(queueName(B_IN, 2_000_000_000));
    expect(router.status().endpoints.map((e) => e.id)).toEqual(['$upstream']);
    await until(() => ep<RecordingEndpoint>('$upstream').received.length === 1, 'upstream delivery');
  });

  it('keeps routing while replaceRoutes is in progress (no lock on the routing path)', async () => {
    const { router, store, clock } = setup();
    await router.replaceRoutes(routes({ r: 'FROM /messages/* INTO $upstream' }));
    // A replaceRoutes stuck on the store (addQueue never resolves) must not block route().
    const addQueue = store.addQueue.bind(store);
    let release: (() => void) | undefined;
    store.addQueue = (q) => new Promise<void>((resolve) => (release = () => void addQueue(q).then(resolve)));
    const pending = router.replaceRoutes(routes({ r: 'FROM /messages/* INTO $upstream', s: `FROM /messages/* INTO BrokeredEndpoint("${B_IN}")` }));
    await settle();
    const out = await router.route(moduleMessage('a', 'o', 1, clock.now()));
    expect(out.deliveries.map((d) => d.endpoint)).toEqual(['$upstream']);
    release?.();
    await pending;
    const after = await router.route(moduleMessage('a', 'o', 2, clock.now()));
    expect(after.deliveries.map((d) => d.endpoint).sort()).toEqual([B_IN, '$upstream'].sort());
  });

  it('delivers queues recovered from the store (a previous run) and retires those no route uses', async () => {
    const clock = new FakeClock();
    const store = new MemoryMessageStore();
    const q = queueName(B_IN, 3);
    await store.addQueue(q);
    await store.add(q, testMessage('left-over'), 3600);
    const made: RecordingEndpoint[] = [];
    const router = new Router({ store, clock, endpoints: (sink) => (made[made.push(new RecordingEndpoint(sinkKey(sink))) - 1] as RecordingEndpoint) });
    routers.push(router);
    await router.replaceRoutes([]);
    await until(() => made[0]?.closed === true, 'drained and closed');
    expect(made.map((e) => e.id)).toEqual([B_IN]);
    expect(made[0]?.received.map((m) => text(m.message.body))).toEqual(['left-over']);
    expect(store.queues()).toEqual([]);
  });

  it('keeps messages stored while an endpoint fails, and reports the queue length', async () => {
    const { router, clock, queue } = setup((id) => new FailingEndpoint(id, FailureKind.Throttled));
    await router.replaceRoutes(routes({ r: 'FROM /messages/* INTO $upstream' }));
    for (let i = 0; i < 4; i++) await router.route(moduleMessage('a', 'o', i, clock.now()));
    await settle();
    expect(queue('$upstream')?.length).toBe(4);
    expect(router.status().endpoints[0]?.lastFailure?.kind).toBe(FailureKind.Throttled);
  });

  it('rejects route() after close and closes its endpoints', async () => {
    const { router, ep, clock } = setup();
    await router.replaceRoutes(routes({ r: 'FROM /messages/* INTO $upstream' }));
    await router.route(moduleMessage('a', 'o', 1, clock.now()));
    await router.close();
    expect(ep<RecordingEndpoint>('$upstream').closed).toBe(true);
    await expect(router.route(moduleMessage('a', 'o', 2, clock.now()))).rejects.toMatchObject({ code: 'EDGE_ERR_ROUTER_CLOSED' });
  });
});

/** Holds each batch until `release()` (or passes it straight through once `open`), then accepts it. */
class GateEndpoint extends RecordingEndpoint {
  open = false;
  #waiting: (() => void)[] = [];
  override process(batch: readonly StoredMessage[], signal?: AbortSignal, context?: BatchContext): Promise<SinkResult> {
    if (this.open) return super.process(batch, signal, context);
    this.batches.push(batch);
    this.priorities.push(context?.priority);
    return new Promise((resolve) => {
      this.#waiting.push(() => {
        this.received.push(...batch);
        resolve({ succeeded: batch, failed: [], invalid: [] });
      });
    });
  }
  release(): void {
    for (const w of this.#waiting.splice(0)) w();
  }
}
