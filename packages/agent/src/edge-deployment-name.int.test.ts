import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { pino } from 'pino';
import { ClusterConfig, createKubeClient, type KubeClient, type KubernetesObject } from '@kedge/kube';
import { EdgeDeploymentResource } from '@kedge/manifest';
import { createTestNamespace, kubeConfigForTests, kubeconfigPathForTests, type TestNamespace } from '@kedge/testing';
import { toDnsLabel } from './names.js';
import { DEFAULT_EDGE_DEPLOYMENT, resolveEdgeDeploymentName } from './start-agent.js';

// Chart/agent alignment and its upgrade story, against the real apiserver: an agent without --edge-deployment
// uses `default` (the chart's), but keeps the device-id-named EdgeDeployment an earlier agent wrote when that is the
// only one (renaming it would recreate every module).

const log = pino({ level: 'silent' });
const DEVICE = 'Line-7';
let kube: KubeClient;
const namespaces: TestNamespace[] = [];

const edgeDeployment = (namespace: string, name: string): KubernetesObject =>
  ({ apiVersion: EdgeDeploymentResource.apiVersion, kind: EdgeDeploymentResource.kind, metadata: { name, namespace }, spec: { deviceId: DEVICE } }) as KubernetesObject;

async function namespaceWith(...names: string[]): Promise<string> {
  const ns = await createTestNamespace(kubeConfigForTests(), 'ed-name');
  namespaces.push(ns);
  for (const n of names) await kube.apply(edgeDeployment(ns.name, n), { fieldManager: 'test' });
  return ns.name;
}

beforeAll(() => {
  kube = createKubeClient(ClusterConfig.fromFiles([kubeconfigPathForTests()]));
});
afterAll(async () => {
  for (const ns of namespaces) await ns.cleanup();
});

describe('the EdgeDeployment an agent uses by default', () => {
  const legacy = toDnsLabel(DEVICE);

  it('is `default` in a new namespace and in the chart\'s', async () => {
    expect(legacy).not.toBe(DEFAULT_EDGE_DEPLOYMENT);
    expect(await resolveEdgeDeploymentName(kube, await namespaceWith(), DEVICE, log)).toBe('default');
    expect(await resolveEdgeDeploymentName(kube, await namespaceWith('default'), DEVICE, log)).toBe('default');
  });

  it("is an earlier agent's device-id-named one when that is the only one, and `default` when both exist", async () => {
    expect(await resolveEdgeDeploymentName(kube, await namespaceWith(legacy), DEVICE, log)).toBe(legacy);
    expect(await resolveEdgeDeploymentName(kube, await namespaceWith(legacy, 'default'), DEVICE, log)).toBe('default');
  });
});
