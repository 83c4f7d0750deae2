import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FakeClock, parseEdgeHubDesired, RecordingEndpoint, RevivableEndpoint, Router, sinkKey, testMessage, type Endpoint, type EndpointHooks, type RouteSpec } from '@kedge/routing';
import { afterEach, describe, expect, it } from 'vitest';
import { openMessageStore } from './index.js';

const dirs: string[] = [];
afterEach(async () => {
  await Promise.all(dirs.splice(0).map((d) => rm(d, { recursive: true, force: true })));
});

function routes(r: Record<string, unknown>): RouteSpec[] {
  const res = parseEdgeHubDesired({ schemaVersion: '1.1', routes: r });
  if (!res.ok) throw new Error(JSON.stringify(res.error));
  return res.value;
}

async function until(cond: () => boolean, what: string): Promise<void> {
  const deadline = Date.now() + 10_000;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise<void>((resolve) => setImmediate(resolve));
  }
}

const text = (b: Uint8Array): string => new TextDecoder().decode(b);
const B_IN = '/modules/b/inputs/in';

describe('Router over FsMessageStore', () => {
  it('keeps what an offline endpoint did not take across a restart and delivers it, in order, once it is back', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'kedge-router-store-'));
    dirs.push(dir);
    const specs = routes({ toB: `FROM /messages/modules/a/* INTO BrokeredEndpoint("${B_IN}")`, up: { route: 'FROM /messages/* INTO $upstream', priority: 1 } });
    // 1. First run: b is offline, upstream takes everything.
    const clock = new FakeClock(Date.now());
    let store = await openMessageStore(dir);
    const up1 = new RecordingEndpoint('$upstream');
    const b1 = new RevivableEndpoint(B_IN, true);
    let router = new Router({ store, clock, endpoints: (sink) => (sinkKey(sink) === B_IN ? b1 : up1) });
    await router.replaceRoutes(specs);
    const n = 300;
    await Promise.all(Array.from({ length: n }, (_, i) => router.route(testMessage(`m${i}`, { source: { deviceId: 'd', moduleId: 'a', output: 'o' } }))));
    await until(() => up1.received.length === n, 'upstream delivered');
    await until(() => b1.attempts > 0, 'b tried');
    expect(router.status().endpoints.find((e) => e.id === B_IN)?.queues[0]?.length).toBe(n);
    await router.close();
    await store.close();
    // 2. Restart: the same routes; b is back.
    store = await openMessageStore(dir);
    const made = new Map<string, Endpoint & { received: unknown[] }>();
    const hooks = new Map<string, EndpointHooks>();
    router = new Router({
      store,
      clock,
      endpoints: (sink, h) => {
        const e = new RecordingEndpoint(sinkKey(sink));
        made.set(e.id, e);
        hooks.set(e.id, h);
        return e;
      },
    });
    await router.replaceRoutes(specs);
    const b2 = made.get(B_IN) as RecordingEndpoint;
    await until(() => b2.received.length === n, 'b delivered after the restart');
    expect(b2.received.map((m) => text(m.message.body))).toEqual(Array.from({ length: n }, (_, i) => `m${i}`));
    // Upstream had checkpointed everything before the restart: at most the last unflushed checkpoint is redelivered.
    expect((made.get('$upstream') as RecordingEndpoint).received.length).toBe(0);
    await router.close();
    await store.close();
  });

  it('reports the store’s evictions in the endpoint queue counters and keeps routing at the quota', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'kedge-router-store-'));
    dirs.push(dir);
    const store = await openMessageStore(dir, { maxBytes: 1024 * 1024, segmentBytes: 128 * 1024 });
    const router = new Router({ store, clock: new FakeClock(Date.now()), endpoints: (sink) => new RevivableEndpoint(sinkKey(sink), true) });
    await router.replaceRoutes(routes({ up: 'FROM /messages/* INTO $upstream' }));
    const n = 2000;
    for (let i = 0; i < n; i += 100) await Promise.all(Array.from({ length: 100 }, (_, k) => router.route(testMessage(`${i + k}:`.padEnd(1000, 'x')))));
    const q = router.status().endpoints[0]?.queues[0];
    expect(q?.dropped.evicted).toBeGreaterThan(0);
    expect((q?.dropped.evicted ?? 0) + (q?.length ?? 0)).toBe(n);
    expect(router.status().store.bytes).toBeLessThanOrEqual(1024 * 1024);
    await router.close();
    await store.close();
  });
});
