import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { pino } from 'pino';
import { ClusterConfig, Controller, createKubeClient, type KubernetesObject } from '@kedge/kube';
import { defaultPolicy } from './policy.js';
import { EdgeDeploymentReconciler, type ClusterView, type EdgeDeploymentObject } from './reconciler.js';

/**
 * A loopback "apiserver" that answers discovery and leaves every other request hanging: the hung apply a real
 * apiserver cannot be made to produce on purpose.
 */
let server: http.Server;
const hung: string[] = [];
let config: ClusterConfig;
beforeAll(async () => {
  const discovery: Record<string, { name: string; kind: string; namespaced: boolean }[]> = {
    '/api/v1': ['Secret', 'ServiceAccount', 'Service', 'PersistentVolumeClaim', 'Event'].map((kind) => ({ name: `${kind.toLowerCase()}s`, kind, namespaced: true })),
    '/apis/apps/v1': [{ name: 'deployments', kind: 'Deployment', namespaced: true }],
  };
  server = http.createServer((req, res) => {
    const path = new URL(req.url ?? '/', 'http://x').pathname;
    const resources = discovery[path];
    if (req.method === 'GET' && resources) {
      res.setHeader('Content-Type', 'application/json');
      res.end(JSON.stringify({ kind: 'APIResourceList', resources }));
      return;
    }
    hung.push(`${req.method ?? ''} ${path}`);
    req.resume();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  config = new ClusterConfig({ server: `http://127.0.0.1:${(server.address() as AddressInfo).port}` });
});
afterAll(async () => {
  server.closeAllConnections();
  await new Promise<void>((resolve) => server.close(() => resolve()));
});

const ed: EdgeDeploymentObject = {
  apiVersion: 'kedge.io/v1alpha1',
  kind: 'EdgeDeployment',
  metadata: { name: 'default', namespace: 'dev1', uid: '3f0c2a4e-0000-4000-8000-000000000001', generation: 1 },
  spec: { modules: { sensor: { type: 'docker', settings: { image: 'example.org/sensor:1.0' } } } },
};
// The EdgeDeployment comes from an in-memory view (the controller's is an informer cache); writes go to the server.
const view: ClusterView = {
  getEdgeDeployment: () => Promise.resolve(ed),
  list: () => Promise.resolve([] as KubernetesObject[]),
  existing: () => Promise.resolve([] as KubernetesObject[]),
};

describe('EdgeDeploymentReconciler and the reconcile timeout', () => {
  it('passes the reconcile signal to its applies: a hung apply ends with the timeout and the key is retried', async () => {
    const reconciler = new EdgeDeploymentReconciler({ kube: createKubeClient(config, { requestTimeoutMs: 600_000 }), view, policy: defaultPolicy() });
    let attempts = 0;
    const controller = new Controller({
      name: 'edgedeployment',
      log: pino({ level: 'silent' }),
      reconcileTimeoutMs: 300,
      backoff: { baseDelayMs: 5, maxDelayMs: 50 },
      reconciler: {
        reconcile: (ctx, key) => {
          attempts++;
          return reconciler.reconcile(ctx, key);
        },
      },
    });
    const stop = new AbortController();
    expect(await controller.start(stop.signal)).toBe(true);
    controller.enqueue({ namespace: 'dev1', name: 'default' });
    // Each attempt sends its first wave of applies, which hang until the reconcile's timeout aborts them.
    await expect.poll(() => attempts, { timeout: 10_000 }).toBeGreaterThanOrEqual(3);
    expect(hung.filter((h) => h.startsWith('PATCH ')).length).toBeGreaterThanOrEqual(3);
    stop.abort();
    await controller.stop();
  });
});
