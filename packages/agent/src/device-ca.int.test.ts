import { X509Certificate } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ClusterConfig, createKubeClient, type KubeClient } from '@kedge/kube';
import { issueCa } from '@kedge/protocol';
import { createTestNamespace, kubeConfigForTests, kubeconfigPathForTests, type TestNamespace } from '@kedge/testing';
import { loadOrCreateDeviceCa } from './device-ca.js';

let config: ClusterConfig;
let kube: KubeClient;
const namespaces: TestNamespace[] = [];
beforeAll(() => {
  config = ClusterConfig.fromFiles([kubeconfigPathForTests()]);
  kube = createKubeClient(config);
});
afterAll(async () => {
  for (const n of namespaces) await n.cleanup();
});
const namespace = async () => {
  const n = await createTestNamespace(kubeConfigForTests(), 'ca');
  namespaces.push(n);
  return n.name;
};

describe('loadOrCreateDeviceCa', () => {
  it('two replicas starting together agree on one self-signed device CA, kept across restarts', async () => {
    const ns = await namespace();
    const [a, b] = await Promise.all([loadOrCreateDeviceCa(config, kube, ns), loadOrCreateDeviceCa(config, kube, ns)]);
    expect(a.ca.cert).toBe(b.ca.cert);
    expect(new X509Certificate(a.ca.cert).ca).toBe(true);
    expect(a.trustBundle).toBe(a.ca.cert);
    expect((await loadOrCreateDeviceCa(config, kube, ns)).ca.cert).toBe(a.ca.cert);
  });

  it('issues an intermediate under a fleet CA; the trust bundle holds both', async () => {
    const ns = await namespace();
    const fleet = issueCa('fleet', { years: 2 });
    const d = await loadOrCreateDeviceCa(config, kube, ns, { parent: fleet });
    expect(new X509Certificate(d.ca.cert).checkIssued(new X509Certificate(fleet.cert))).toBe(true);
    expect(d.trustBundle).toContain(fleet.cert.trim());
  });
});
