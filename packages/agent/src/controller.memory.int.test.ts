import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { pino } from 'pino';
import { Registry } from 'prom-client';
import { ClusterConfig, createKubeClient, type KubeClient, type KubernetesObject } from '@kedge/kube';
import type { EdgeDeploymentStatus } from '@kedge/manifest';
import { createTestNamespace, eventually, kubeConfigForTests, kubeconfigPathForTests, type TestNamespace } from '@kedge/testing';
import { startEdgeDeploymentController, type RunningController } from './controller.js';
import { EdgeHubReportStore } from './edgehub-report.js';
import { defaultPolicy } from './policy.js';

const log = pino({ level: process.env.KEDGE_TEST_LOG ?? 'silent' });
let config: ClusterConfig;
let kube: KubeClient;
let ns: TestNamespace;
let running: RunningController;
const reports = new EdgeHubReportStore();

beforeAll(async () => {
  config = ClusterConfig.fromFiles([kubeconfigPathForTests()]);
  kube = createKubeClient(config);
  ns = await createTestNamespace(kubeConfigForTests(), 'memory');
  running = await startEdgeDeploymentController({ config, namespace: ns.name, policy: defaultPolicy(), log, registry: new Registry(), workers: 2, edgeHubReports: reports });
});
afterAll(async () => {
  await running?.stop();
  await ns?.cleanup();
});

const routes = { up: { route: 'FROM /messages/* INTO $upstream' } };
const edgeDeployment = (name: string) => ({
  apiVersion: 'kedge.io/v1alpha1',
  kind: 'EdgeDeployment',
  metadata: { name, namespace: ns.name },
  // One device namespace, several EdgeDeployments: module names must differ, or they collide.
  spec: { modules: { [`sensor-${name}`]: { type: 'docker', settings: { image: 'example.org/sensor:1' } } }, routes },
});
const statusOf = async (name: string) => (await kube.get<KubernetesObject & { status?: EdgeDeploymentStatus }>('kedge.io/v1alpha1', 'EdgeDeployment', ns.name, name))?.status;
const routesApplied = async (name: string) => (await statusOf(name))?.conditions?.find((c) => c.type === 'RoutesApplied');

describe('the controller forgets deleted EdgeDeployments', () => {
  it('per-object state (applied, parked, coalescing generations) grows with objects and shrinks back to zero when they go', async () => {
    const names = ['ed-a', 'ed-b', 'ed-c', 'ed-d'];
    for (let round = 0; round < 2; round++) {
      for (const n of names) await kube.apply(edgeDeployment(n));
      await eventually(async () => {
        for (const n of names) expect((await statusOf(n))?.observedGeneration).toBe(1);
      });
      expect(running.reconciler.memory().edgeDeployments).toBe(names.length);
      // A Deployment and a ServiceAccount per EdgeDeployment were applied and are remembered.
      expect(running.reconciler.memory().applied).toBe(2 * names.length);
      expect(running.trackedGenerations()).toBe(names.length);
      for (const n of names) await kube.delete('kedge.io/v1alpha1', 'EdgeDeployment', ns.name, n);
      await eventually(() => {
        expect(running.reconciler.memory()).toEqual({ edgeDeployments: 0, parked: 0, applied: 0 });
        expect(running.trackedGenerations()).toBe(0);
      });
      // The garbage collector removes the children (owner references); the next round must not meet them.
      await eventually(async () => expect(await kube.list('apps/v1', 'Deployment', ns.name)).toEqual([]), { timeoutMs: 60_000 });
    }
  });
});

describe('RoutesApplied', () => {
  it('is Unknown until the edge hub reports, then follows what the edge hub says it loaded', async () => {
    await kube.apply(edgeDeployment('routes'));
    await eventually(async () => expect(await routesApplied('routes')).toMatchObject({ status: 'Unknown', reason: 'EdgeHubNotReported' }));
    reports.set(ns.name, { routes, reportedAt: new Date().toISOString() });
    await eventually(async () => expect(await routesApplied('routes')).toMatchObject({ status: 'True', reason: 'RoutesLoaded' }));
    reports.set(ns.name, { routes: {}, error: 'up: bad endpoint', reportedAt: new Date().toISOString() });
    await eventually(async () => expect(await routesApplied('routes')).toMatchObject({ status: 'False', reason: 'RoutesRejected' }));
  });
});
