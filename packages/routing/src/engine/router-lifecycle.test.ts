import { afterEach, describe, expect, it } from 'vitest';
import { sinkKey, type RouteSink } from '../route.js';
import { FakeClock } from './clock.js';
import { RecordingEndpoint, RevivableEndpoint } from './fake-endpoints.js';
import { MemoryMessageStore } from './memory-store.js';
import { testMessage } from './message-store.contract.js';
import { queueName } from './queue-name.js';
import { Router } from './router.js';
import { moduleMessage, routes, text, until } from './test-support.js';
import { EngineErrorCode, ExecutorState, type Endpoint, type EndpointHooks, type EngineLogger } from './types.js';

const B_IN = '/modules/b/inputs/in';

const warnings: string[] = [];
const log: EngineLogger = { debug: () => undefined, info: () => undefined, warn: (_o, msg) => warnings.push(msg), error: () => undefined };

const routers: Router[] = [];
afterEach(async () => {
  await Promise.all(routers.splice(0).map((r) => r.close()));
  warnings.length = 0;
});

function setup(make: (id: string) => Endpoint = (id) => new RecordingEndpoint(id), store = new MemoryMessageStore()) {
  const clock = new FakeClock();
  const made: { id: string; endpoint: Endpoint; hooks: EndpointHooks }[] = [];
  const router = new Router({
    store,
    clock,
    log,
    random: () => 0,
    executor: { retry: { initialDelayMs: 10, jitter: 0 } },
    endpoints: (sink: RouteSink, hooks) => {
      const endpoint = make(sinkKey(sink));
      made.push({ id: sinkKey(sink), endpoint, hooks });
      return endpoint;
    },
  });
  routers.push(router);
  return { clock, store, router, made };
}

describe('Router lifecycle', () => {
  it('routes nothing before any routes are applied', async () => {
    const { router } = setup();
    expect(router.routes).toEqual([]);
    expect((await router.route(moduleMessage('a', 'o', 1, 0))).deliveries).toEqual([]);
    expect(router.status()).toMatchObject({ routed: 0, unrouted: 1, endpoints: [] });
  });

  it('refuses route() and replaceRoutes() once closed', async () => {
    const { router } = setup();
    await router.close();
    await router.close();
    await expect(router.route(moduleMessage('a', 'o', 1, 0))).rejects.toMatchObject({ code: EngineErrorCode.RouterClosed, message: 'Router is closed' });
    await expect(router.replaceRoutes([])).rejects.toMatchObject({ code: EngineErrorCode.RouterClosed, message: 'Router is closed' });
  });

  it('keeps one endpoint per sink across route replacements', async () => {
    const { router, made } = setup();
    const r = routes({ r1: `FROM /messages/* INTO BrokeredEndpoint("${B_IN}")` });
    await router.replaceRoutes(r);
    await router.replaceRoutes(r);
    await router.replaceRoutes(routes({ r1: `FROM /messages/* INTO BrokeredEndpoint("${B_IN}")`, r2: 'FROM /messages/* INTO $upstream' }));
    expect(made.map((x) => x.id)).toEqual([B_IN, '$upstream']);
    expect(router.routes.map((x) => x.name).sort()).toEqual(['r1', 'r2']);
  });

  it('delivers recovered queues, leaves queues with unknown names alone, and scans the store only once', async () => {
    const store = new MemoryMessageStore();
    await store.addQueue('not a queue name');
    await store.addQueue(queueName('$upstream', 0));
    await store.add(queueName('$upstream', 0), testMessage('old', { id: 'old' }), -1);
    const { router, made } = setup((id) => new RecordingEndpoint(id), store);
    await router.replaceRoutes([]);
    expect(warnings).toContain('Store queue with an unknown name left alone');
    const up = made.find((x) => x.id === '$upstream')?.endpoint as RecordingEndpoint;
    await until(() => up.received.length === 1 && store.queues().length === 1, 'recovered queue delivered and retired');
    expect(text((up.received[0] as { message: { body: Uint8Array } }).message.body)).toBe('old');
    expect(store.queues()).toEqual(['not a queue name']);
    await until(() => up.closed, 'retired endpoint closed');
    // Later replacements do not scan the store again (the unknown queue is reported once).
    await router.replaceRoutes([]);
    expect(warnings.filter((w) => w === 'Store queue with an unknown name left alone')).toHaveLength(1);
    // Its hooks stay safe to call after its executor is gone.
    expect(() => made[0]?.hooks.available()).not.toThrow();
  });

  it('lets a retired priority drain and go even when the routes are applied again', async () => {
    const { router, made, clock, store } = setup((id) => new RevivableEndpoint(id, true));
    await router.replaceRoutes(
      routes({
        hi: { route: `FROM /messages/modules/hi/* INTO BrokeredEndpoint("${B_IN}")`, priority: 1 },
        lo: { route: `FROM /messages/modules/lo/* INTO BrokeredEndpoint("${B_IN}")`, priority: 2 },
      }),
    );
    await router.route(moduleMessage('lo', 'o', 1, clock.now()));
    const b = made[0]?.endpoint as RevivableEndpoint;
    await until(() => b.attempts >= 1, 'failing');
    const only = routes({ hi: { route: `FROM /messages/modules/hi/* INTO BrokeredEndpoint("${B_IN}")`, priority: 1 } });
    await router.replaceRoutes(only);
    await router.replaceRoutes(only);
    b.down = false;
    made[0]?.hooks.available();
    await until(() => b.received.length === 1 && store.queues().length === 1, 'low queue drained and removed');
    expect(store.queues()).toEqual([queueName(B_IN, 1)]);
    expect(router.status().endpoints.map((e) => [e.id, e.state, e.retiring, e.queues.map((q) => q.priority)])).toEqual([[B_IN, ExecutorState.Idle, false, [1]]]);
  });
});
