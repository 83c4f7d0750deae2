import type { V1ConfigMap } from '@kubernetes/client-node';
import type { KubernetesObject } from './types.js';
import { Registry } from 'prom-client';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createKubeClient } from './client.js';
import type { KubeClient } from './client.js';
import { Informer } from './informer.js';
import type { InformerEvent, InformerOptions } from './informer.js';
import { KubeTransport } from './transport.js';
import type { WatchLike } from './transport.js';
import type { ClusterConfig } from './config.js';
import { KubeMetrics } from './metrics.js';
import { TcpProxy, WIDGET, createNamespace, ensureWidgetCrd, eventually, testClusterConfig, testLogger } from './test-helpers.js';

let client: KubeClient;
const cleanups: (() => Promise<void>)[] = [];

beforeAll(async () => {
  client = createKubeClient(testClusterConfig());
  await ensureWidgetCrd(client);
});

afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

const cm = (ns: string, name: string, data: Record<string, string> = {}, labels?: Record<string, string>): V1ConfigMap => ({
  apiVersion: 'v1',
  kind: 'ConfigMap',
  metadata: { name, namespace: ns, ...(labels ? { labels } : {}) },
  data,
});

/** Starts an informer that records every event; stopped after the test. */
function startInformer<T extends KubernetesObject = KubernetesObject>(
  opts: Partial<InformerOptions> & Pick<InformerOptions, 'namespace'>,
  deps: { config?: ClusterConfig; watch?: WatchLike } = {},
) {
  const registry = new Registry();
  const metrics = KubeMetrics.forRegistry(registry);
  const inf = new Informer<T>(
    { apiVersion: 'v1', kind: 'ConfigMap', ...opts },
    { config: deps.config ?? testClusterConfig(), log: testLogger(), metrics, ...(deps.watch ? { watch: deps.watch } : {}) },
  );
  const events: [InformerEvent, string][] = [];
  for (const ev of ['add', 'update', 'delete'] as const) inf.on(ev, (o) => events.push([ev, o.metadata?.name ?? '']));
  inf.start();
  cleanups.push(() => inf.stop());
  const counter = async (name: string): Promise<number> =>
    (await registry.getSingleMetric(name)?.get())?.values.reduce((s, v) => s + v.value, 0) ?? 0;
  return { inf, events, counter };
}

/** Proves the informer's watch streams (through the proxy): a change made now reaches the cache. */
async function watchIsLive(inf: Informer, ns: string): Promise<void> {
  const probe = `probe-${Date.now()}`;
  await client.apply(cm(ns, probe));
  await eventually(() => expect(inf.get(probe, ns)).toBeDefined());
  await client.delete('v1', 'ConfigMap', ns, probe);
  await eventually(() => expect(inf.get(probe, ns)).toBeUndefined());
}

const names = (objs: readonly KubernetesObject[]): string[] => objs.map((o) => o.metadata?.name ?? '').sort();

describe('Informer', () => {
  it('lists, then sees add, update and delete; caches plain objects', async () => {
    const ns = await createNamespace(client, 'inf');
    await client.apply(cm(ns, 'before', { a: '1' }, { app: 'x' }));
    const { inf, events } = startInformer<V1ConfigMap>({ namespace: ns, labelSelector: 'app=x' });
    expect(await inf.waitForSync(AbortSignal.timeout(30_000))).toBe(true);
    expect(inf.hasSynced()).toBe(true);
    expect(names(inf.list())).toEqual(['before']);
    expect(inf.get('before', ns)).toMatchObject({ apiVersion: 'v1', kind: 'ConfigMap', data: { a: '1' } });
    expect(typeof inf.get('before', ns)?.metadata?.creationTimestamp).toBe('string');

    await client.apply(cm(ns, 'after', {}, { app: 'x' }));
    await client.apply(cm(ns, 'other', {}, { app: 'y' })); // filtered out by the label selector
    await client.apply(cm(ns, 'before', { a: '2' }, { app: 'x' }));
    await client.delete('v1', 'ConfigMap', ns, 'after');
    await eventually(() => {
      expect(inf.get('before', ns)?.data).toEqual({ a: '2' });
      expect(inf.get('after', ns)).toBeUndefined();
    });
    expect(events).toEqual([
      ['add', 'before'],
      ['add', 'after'],
      ['update', 'before'],
      ['delete', 'after'],
    ]);
  });

  it('re-emits every cached object as update on each resync', async () => {
    const ns = await createNamespace(client, 'resync');
    await client.apply(cm(ns, 'a'));
    const { inf, events } = startInformer({ namespace: ns, resyncPeriodMs: 100 });
    await inf.waitForSync();
    await eventually(() => expect(events.filter(([e, n]) => e === 'update' && n === 'a').length).toBeGreaterThanOrEqual(3));
  });

  it('restarts with backoff after its connection is reset and resumes without losing events', async () => {
    const ns = await createNamespace(client, 'break');
    await client.apply(cm(ns, 'a'));
    const kc = testClusterConfig();
    const proxy = await TcpProxy.start(kc.server);
    cleanups.push(() => proxy.close());
    const { inf, events, counter } = startInformer(
      { namespace: ns, backoff: { initialMs: 50, maxMs: 200 } },
      { config: kc.with({ server: proxy.url }) },
    );
    await inf.waitForSync();
    await watchIsLive(inf, ns);

    // 1. A real network failure: every TCP connection of the informer is reset (RST), mid-watch.
    proxy.breakAll();
    // 2. Changes while the watch is down (made directly, not through the proxy).
    await client.apply(cm(ns, 'b'));
    await client.delete('v1', 'ConfigMap', ns, 'a');
    // 3. The informer reconnects and catches up from its last resourceVersion.
    await eventually(() => expect(names(inf.list())).toEqual(['b', 'kube-root-ca.crt']));
    expect(events).toEqual(expect.arrayContaining([['add', 'b'], ['delete', 'a']]));
    // 4. Break it again: it keeps recovering, not just once.
    proxy.breakAll();
    await client.apply(cm(ns, 'c'));
    await eventually(() => expect(inf.get('c', ns)).toBeDefined());
    expect(await counter('kedge_informer_restarts_total')).toBeGreaterThanOrEqual(1);
  });

  it('forces a relist when the watch goes silent (half-open connection) and catches a missed delete', async () => {
    const ns = await createNamespace(client, 'stall');
    await client.apply(cm(ns, 'a'));
    const kc = testClusterConfig();
    const proxy = await TcpProxy.start(kc.server);
    cleanups.push(() => proxy.close());
    const { inf, events, counter } = startInformer(
      { namespace: ns, staleAfterMs: 1500 },
      { config: kc.with({ server: proxy.url }) },
    );
    await inf.waitForSync();
    await watchIsLive(inf, ns);

    // 1. The connection stays open but nothing arrives any more: no error, no close; a client without a health check waits forever.
    proxy.freeze();
    await client.delete('v1', 'ConfigMap', ns, 'a');
    await client.apply(cm(ns, 'b'));
    // 2. After staleAfterMs without a sign of life, the informer relists over a new connection; the diff against
    //    the cache emits the delete it never saw as a watch event.
    await eventually(() => expect(names(inf.list())).toEqual(['b', 'kube-root-ca.crt']), 20_000);
    expect(events).toEqual(expect.arrayContaining([['delete', 'a'], ['add', 'b']]));
    expect(await counter('kedge_informer_relists_total')).toBeGreaterThanOrEqual(1);
  });

  it('relists when the real apiserver answers 410 Gone to a watch from a too-old resourceVersion', async () => {
    const ns = await createNamespace(client, 'gone');
    const widget = (name: string) => ({ apiVersion: WIDGET.apiVersion, kind: WIDGET.kind, metadata: { name, namespace: ns }, spec: { size: 1 } });
    await client.apply(widget('w1'));

    // The first watch asks for resourceVersion 1. The Widget watch cache was initialised when the CRD was
    // established, long after revision 1, so the apiserver rejects it: "too old resource version" (410 Expired).
    const real = KubeTransport.for(testClusterConfig());
    const errorEvents: unknown[] = [];
    let calls = 0;
    const rewinding: WatchLike = {
      watch: (path, params, cb, signal) =>
        real.watch(
          path,
          calls++ === 0 ? { ...params, resourceVersion: '1' } : params,
          (type, obj) => {
            if (type === 'ERROR') errorEvents.push(obj);
            cb(type, obj);
          },
          signal,
        ),
    };
    const { inf, counter } = startInformer({ apiVersion: WIDGET.apiVersion, kind: WIDGET.kind, namespace: ns }, { watch: rewinding });
    await inf.waitForSync();
    await eventually(() => expect(errorEvents).toEqual([expect.objectContaining({ code: 410, reason: 'Expired' })]));
    await eventually(async () => expect(await counter('kedge_informer_relists_total')).toBe(1));
    expect(await counter('kedge_informer_restarts_total')).toBe(0); // a 410 is a relist, not an error

    await client.apply(widget('w2'));
    await eventually(() => expect(names(inf.list())).toEqual(['w1', 'w2']));
  });

  it('keeps retrying while the kind is not served; waitForSync gives up on abort and on stop', async () => {
    const { inf } = startInformer({ apiVersion: 'kubetest.kedge.io/v1', kind: 'NotYetThere', namespace: 'default', backoff: { initialMs: 20, maxMs: 50 } });
    expect(await inf.waitForSync(AbortSignal.timeout(300))).toBe(false);
    await inf.stop();
    expect(await inf.waitForSync()).toBe(false);
  });
});
