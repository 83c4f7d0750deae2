import type { V1ConfigMap } from '@kubernetes/client-node';
import type { ClusterConfig } from './config.js';
import { Registry } from 'prom-client';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createKubeClient } from './client.js';
import type { KubeClient } from './client.js';
import { Controller } from './controller.js';
import type { ReconcileContext, ReconcileResult, Reconciler } from './controller.js';
import { Informer } from './informer.js';
import type { InformerOptions } from './informer.js';
import type { ObjectKey } from './keys.js';
import { KubeMetrics } from './metrics.js';
import { TcpProxy, createNamespace, eventually, testClusterConfig, testLogger } from './test-helpers.js';

/**
 * The toy controller: every ConfigMap labelled `role=source` gets a child ConfigMap `<name>-copy` (label
 * `role=copy`) with the same data and a controller ownerReference to it. Level-triggered: it reads the source from
 * the cache and applies the whole desired child every time.
 */
class CopyReconciler implements Reconciler {
  readonly #deps: { sources: Informer<V1ConfigMap>; kube: KubeClient };
  reconciles = 0;
  constructor(deps: { sources: Informer<V1ConfigMap>; kube: KubeClient }) {
    this.#deps = deps;
  }
  async reconcile(ctx: ReconcileContext, key: ObjectKey): Promise<ReconcileResult> {
    this.reconciles++;
    const src = this.#deps.sources.get(key.name, key.namespace);
    if (!src?.metadata?.uid) return {}; // gone: the ownerReference lets the garbage collector remove the copy
    await this.#deps.kube.apply<V1ConfigMap>({
      apiVersion: 'v1',
      kind: 'ConfigMap',
      metadata: {
        name: `${key.name}-copy`,
        namespace: key.namespace,
        labels: { role: 'copy' },
        ownerReferences: [{ apiVersion: 'v1', kind: 'ConfigMap', name: key.name, uid: src.metadata.uid, controller: true, blockOwnerDeletion: true }],
      },
      data: src.data ?? {},
    });
    ctx.log.debug('Applied ConfigMap copy');
    return {};
  }
}

let kube: KubeClient;
const cleanups: (() => Promise<void>)[] = [];
beforeAll(() => {
  kube = createKubeClient(testClusterConfig());
});
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

function startCopyController(ns: string, opts: { config?: ClusterConfig; owns?: boolean; coalesceMs?: number; informer?: Partial<InformerOptions> } = {}) {
  const config = opts.config ?? testClusterConfig();
  const registry = new Registry();
  const metrics = KubeMetrics.forRegistry(registry);
  const log = testLogger();
  const base = { apiVersion: 'v1', kind: 'ConfigMap', namespace: ns, backoff: { initialMs: 50, maxMs: 200 }, ...opts.informer };
  const sources = new Informer<V1ConfigMap>({ ...base, labelSelector: 'role=source' }, { config, log, metrics });
  const copies = new Informer<V1ConfigMap>({ ...base, labelSelector: 'role=copy' }, { config, log, metrics });
  const reconciler = new CopyReconciler({ sources, kube });
  const controller = new Controller({ name: 'copy', reconciler, workers: 2, log, metrics });
  controller.for(sources, opts.coalesceMs !== undefined ? { coalesceMs: opts.coalesceMs } : {});
  if (opts.owns ?? true) controller.owns(copies, 'ConfigMap', '');
  const ac = new AbortController();
  cleanups.push(async () => {
    ac.abort();
    await controller.stop();
  });
  return { controller, reconciler, start: () => controller.start(ac.signal), registry };
}

const source = (ns: string, name: string, data: Record<string, string>): V1ConfigMap => ({
  apiVersion: 'v1',
  kind: 'ConfigMap',
  metadata: { name, namespace: ns, labels: { role: 'source' } },
  data,
});

async function expectCopy(ns: string, name: string, data: Record<string, string>): Promise<V1ConfigMap> {
  return eventually(async () => {
    const copy = await kube.get<V1ConfigMap>('v1', 'ConfigMap', ns, `${name}-copy`);
    expect(copy?.data).toEqual(data);
    return copy as V1ConfigMap;
  });
}

describe('Controller end to end (toy copy controller)', () => {
  it('creates the owned copy, follows updates and recreates a deleted copy', async () => {
    const ns = await createNamespace(kube, 'ctl');
    const existing = await kube.apply(source(ns, 'early', { a: '1' })); // present before start: found by the initial list
    const { start } = startCopyController(ns);
    expect(await start()).toBe(true);

    const copy = await expectCopy(ns, 'early', { a: '1' });
    expect(copy.metadata?.ownerReferences).toEqual([
      expect.objectContaining({ kind: 'ConfigMap', name: 'early', uid: existing.metadata?.uid, controller: true }),
    ]);

    await kube.apply(source(ns, 'late', { b: '1' }));
    await expectCopy(ns, 'late', { b: '1' });
    await kube.apply(source(ns, 'early', { a: '2' }));
    await expectCopy(ns, 'early', { a: '2' });

    // The copy's delete event maps to its owner through the ownerReference, and the owner is reconciled.
    await kube.delete('v1', 'ConfigMap', ns, 'late-copy');
    await expectCopy(ns, 'late', { b: '1' });
  });

  it('coalesces a burst of events into one reconcile when asked to', async () => {
    const ns = await createNamespace(kube, 'burst');
    const { start, registry } = startCopyController(ns, { owns: false, coalesceMs: 1500 });
    expect(await start()).toBe(true);
    // Five changes in quick succession. Without coalescing the first event is reconciled at once and the later
    // ones again: at least two reconciles. With it, the key is reconciled once, after the burst, with the last data.
    for (let i = 1; i <= 5; i++) await kube.apply(source(ns, 's', { n: String(i) }));
    await expectCopy(ns, 's', { n: '5' });
    const reconciles = async () => (await registry.getSingleMetric('kedge_controller_reconcile_total')?.get())?.values.reduce((a, v) => a + v.value, 0);
    expect(await reconciles()).toBe(1);
  });

  it('keeps working after its watch connections are reset', async () => {
    const ns = await createNamespace(kube, 'ctlbreak');
    const kc = testClusterConfig();
    const proxy = await TcpProxy.start(kc.server);
    cleanups.push(() => proxy.close());
    const { start, registry } = startCopyController(ns, { config: kc.with({ server: proxy.url }) });
    await start();
    await kube.apply(source(ns, 's', { v: '1' }));
    await expectCopy(ns, 's', { v: '1' }); // the watches stream through the proxy

    proxy.breakAll();
    await kube.apply(source(ns, 's', { v: '2' }));
    await expectCopy(ns, 's', { v: '2' });
    proxy.breakAll();
    await kube.delete('v1', 'ConfigMap', ns, 's-copy');
    await expectCopy(ns, 's', { v: '2' });
    const restarts = (await registry.getSingleMetric('kedge_informer_restarts_total')?.get())?.values ?? [];
    expect(restarts.reduce((s, v) => s + v.value, 0)).toBeGreaterThanOrEqual(1);
  });

  it('heals a manually deleted copy through the periodic resync even without watching copies', async () => {
    const ns = await createNamespace(kube, 'ctlresync');
    const { start, reconciler } = startCopyController(ns, { owns: false, informer: { resyncPeriodMs: 300 } });
    await start();
    await kube.apply(source(ns, 's', { v: '1' }));
    await expectCopy(ns, 's', { v: '1' });
    const before = reconciler.reconciles;

    // Nothing watches copies, so no event follows this delete: only the resync re-emits the source.
    await kube.delete('v1', 'ConfigMap', ns, 's-copy');
    await expectCopy(ns, 's', { v: '1' });
    expect(reconciler.reconciles).toBeGreaterThan(before);
  });
});
