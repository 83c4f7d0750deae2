import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AppsV1Api, CoreV1Api, CustomObjectsApi, type KubeConfig } from '@kubernetes/client-node';
import type { Client as ServiceClient, Registry } from 'azure-iothub';
import { pino } from 'pino';
import { Registry as Metrics } from 'prom-client';
import { startHub, type RunningHub } from '@kedge/hub';
import { ClusterConfig, createKubeClient } from '@kedge/kube';
import { createTestNamespace, eventually, kubeConfigForTests, kubeconfigPathForTests, setFakePodLogs, type TestNamespace } from '@kedge/testing';
import { agentRbac } from './rbac.js';
import { deploymentContent, freeLoopback, manifestModule, serviceSdk } from './test-support/hub-sdk.js';
import { startAgent, type RunningAgent } from './start-agent.js';

// End to end: Microsoft's service SDK drives a real Kedge hub; the agent under test runs against the real control
// plane (kwok nodes run the pods) and connects to that hub as the device's $edgeAgent.

const log = pino({ level: process.env['KEDGE_TEST_LOG'] ?? 'silent' });

const mod = manifestModule;
const content = (modules: Record<string, unknown>) => deploymentContent(modules);
const sdk = serviceSdk;

type Reported = {
  lastDesiredVersion?: number;
  lastDesiredStatus?: { code: number; description: string };
  modules?: Record<string, { runtimeStatus: string; version?: string; restartCount: number; settings: { image: string } }>;
  systemModules?: Record<string, { runtimeStatus: string }>;
};

let kc: KubeConfig;
let cluster: ClusterConfig;
let apps: AppsV1Api;
let core: CoreV1Api;
let ns: TestNamespace;
let host: string;
let dataDir: string;
let hub: RunningHub;
let registry: Registry;
let service: ServiceClient;
let deviceCs: string;
let agent: RunningAgent | undefined;
let saDir = '';
const DEVICE = 'factory-edge-1';

async function startTheHub(): Promise<void> {
  hub = await startHub(
    { dataDir, hostName: host, service: { host, port: 443 }, mqtt: { host, port: 8883 }, deployments: { resyncSeconds: 1 } },
    { logger: log },
  );
  ({ registry, service } = sdk(hub.connectionString(), hub.ca));
}

async function startTheAgent(): Promise<RunningAgent> {
  agent = await startAgent(
    {
      namespace: ns.name,
      metrics: { port: 0, host: '127.0.0.1' },
      hub: { connectionString: deviceCs, ca: hub.ca, reportCoalesceMs: 100, maxBackoffMs: 1000 },
      statusCoalesceMs: 50,
      workers: 2,
      workload: { host: '127.0.0.1', port: 0 },
    },
    { cluster, log, registry: new Metrics() },
  );
  return agent;
}

async function reported(): Promise<Reported & { desiredVersion: number }> {
  const t = (await registry.getModuleTwin(DEVICE, '$edgeAgent')).responseBody as unknown as { properties: { reported: Reported; desired: { $version: number } } };
  return { ...t.properties.reported, desiredVersion: t.properties.desired.$version };
}

const deploymentsOf = async () => (await apps.listNamespacedDeployment({ namespace: ns.name })).items;
const image = async (name: string) => (await apps.readNamespacedDeployment({ name, namespace: ns.name })).spec?.template.spec?.containers[0]?.image;

beforeAll(async () => {
  kc = kubeConfigForTests();
  apps = kc.makeApiClient(AppsV1Api);
  core = kc.makeApiClient(CoreV1Api);
  ns = await createTestNamespace(kc, 'agent-link');
  // The agent runs with nothing but the namespaced Role it ships, authenticated as its ServiceAccount.
  const admin = ClusterConfig.fromFiles([kubeconfigPathForTests()]);
  for (const o of agentRbac(ns.name)) await createKubeClient(admin).apply(o);
  const token = await core.createNamespacedServiceAccountToken({ name: 'kedge-agent', namespace: ns.name, body: { spec: { audiences: [], expirationSeconds: 3600 } } });
  saDir = mkdtempSync(join(tmpdir(), 'kedge-agent-link-sa-'));
  writeFileSync(join(saDir, 'token'), token.status?.token ?? '');
  writeFileSync(join(saDir, 'ca.crt'), admin.ca ?? '');
  writeFileSync(join(saDir, 'namespace'), ns.name);
  const url = new URL(admin.server);
  cluster = ClusterConfig.inCluster({ dir: saDir, env: { KUBERNETES_SERVICE_HOST: url.hostname, KUBERNETES_SERVICE_PORT: url.port } });
  host = await freeLoopback();
  dataDir = mkdtempSync(join(tmpdir(), 'kedge-agent-link-hub-'));
  await startTheHub();
  await registry.create({ deviceId: DEVICE, capabilities: { iotEdge: true } });
  const key = (await registry.get(DEVICE)).responseBody.authentication?.symmetricKey?.primaryKey ?? '';
  deviceCs = `HostName=${host};DeviceId=${DEVICE};SharedAccessKey=${key}`;
  await startTheAgent();
});

afterAll(async () => {
  await agent?.stop();
  await hub?.close();
  await ns?.cleanup();
  if (saDir) rmSync(saDir, { recursive: true, force: true });
});

describe('the edge agent connected to a hub', () => {
  it('applies a deployment from azure-iothub, runs the modules and reports them running with their versions', async () => {
    await registry.applyConfigurationContentOnDevice(DEVICE, content({ sensor: mod('registry.invalid/sensor:1', '1.0'), filter: mod('registry.invalid/filter:1', '1.0') }));
    await eventually(async () => {
      const names = (await deploymentsOf()).map((d) => d.metadata?.name).sort();
      expect(names).toEqual(['edgehub', 'filter', 'sensor']);
    }, { timeoutMs: 30_000 });
    await eventually(async () => {
      const pods = (await core.listNamespacedPod({ namespace: ns.name })).items;
      expect(pods.filter((p) => p.status?.phase === 'Running').length).toBe(3);
    }, { timeoutMs: 60_000 });
    const r = await eventually(async () => {
      const rep = await reported();
      expect(rep.modules?.['sensor']?.runtimeStatus).toBe('running');
      expect(rep.modules?.['filter']?.runtimeStatus).toBe('running');
      expect(rep.systemModules?.['edgeHub']?.runtimeStatus).toBe('running');
      expect(rep.lastDesiredStatus?.code).toBe(200);
      expect(rep.lastDesiredVersion).toBe(rep.desiredVersion);
      return rep;
    }, { timeoutMs: 60_000 });
    expect(r.modules?.['sensor']?.version).toBe('1.0');
    expect(r.systemModules?.['edgeAgent']?.runtimeStatus).toBe('running');
    // Module identities, created with the device's own credentials, and their Secrets.
    const m = (await registry.getModule(DEVICE, 'sensor')).responseBody as unknown as { managedBy: string; authentication: { symmetricKey: { primaryKey: string } } };
    expect(m.managedBy).toBe('IotEdge');
    const secret = await core.readNamespacedSecret({ name: 'kedge-identity-sensor', namespace: ns.name });
    const connectionString = Buffer.from(secret.data?.['connectionString'] ?? '', 'base64').toString('utf8');
    expect(connectionString).toBe(`HostName=${host};GatewayHostName=edgehub;DeviceId=${DEVICE};ModuleId=sensor;SharedAccessKey=${m.authentication.symmetricKey.primaryKey}`);
    // Workload mode (the default): the module's workload secret by reference, no key material in the Deployment.
    const env = (await apps.readNamespacedDeployment({ name: 'sensor', namespace: ns.name })).spec?.template.spec?.containers[0]?.env ?? [];
    expect(env.find((e) => e.name === 'IOTEDGE_MODULEGENERATIONID')?.valueFrom?.secretKeyRef).toEqual({ name: 'kedge-identity-sensor', key: 'workloadSecret' });
    expect(env.find((e) => e.name === 'IOTEDGE_IOTHUBHOSTNAME')?.value).toBe(host);
    expect(env.some((e) => e.name === 'EdgeHubConnectionString')).toBe(false);
  });

  it('rolls out a changed deployment, prunes a removed module and its identity, and reports a crash loop as backoff', async () => {
    await registry.applyConfigurationContentOnDevice(DEVICE, content({
      sensor: mod('registry.invalid/sensor:2', '2.0'),
      // Twin keys may not contain ".": the simulation label travels in the (stringified) Docker create options,
      // whose Labels become pod annotations, which kwok's crash-loop stage also reads.
      crashy: mod('registry.invalid/crashy:1', '1.0', { settings: { image: 'registry.invalid/crashy:1', createOptions: JSON.stringify({ Labels: { 'kedge.io/simulate': 'crashloop' } }) } }),
    }));
    await eventually(async () => {
      expect(await image('sensor')).toBe('registry.invalid/sensor:2');
      expect((await deploymentsOf()).map((d) => d.metadata?.name).sort()).toEqual(['crashy', 'edgehub', 'sensor']);
    }, { timeoutMs: 30_000 });
    await eventually(async () => {
      await expect(registry.getModule(DEVICE, 'filter')).rejects.toThrow();
      await expect(core.readNamespacedSecret({ name: 'kedge-identity-filter', namespace: ns.name })).rejects.toThrow();
    }, { timeoutMs: 30_000 });
    const r = await eventually(async () => {
      const rep = await reported();
      expect(rep.modules?.['sensor']).toMatchObject({ runtimeStatus: 'running', version: '2.0', settings: { image: 'registry.invalid/sensor:2' } });
      expect(rep.modules?.['crashy']?.runtimeStatus).toBe('backoff');
      expect(rep.modules?.['crashy']?.restartCount).toBeGreaterThan(0);
      expect(rep.modules).not.toHaveProperty('filter');
      expect(rep.lastDesiredVersion).toBe(rep.desiredVersion);
      return rep;
    }, { timeoutMs: 90_000 });
    expect(r.lastDesiredStatus?.code).toBe(200);
  });

  it('reports an invalid deployment with its status code and changes nothing', async () => {
    const before = (await deploymentsOf()).map((d) => `${d.metadata?.name}@${d.metadata?.generation}`).sort();
    await registry.updateModuleTwin(DEVICE, '$edgeAgent', { properties: { desired: { schemaVersion: '9.0' } } }, '*');
    await eventually(async () => {
      const rep = await reported();
      expect(rep.lastDesiredStatus?.code).toBe(412);
      expect(rep.lastDesiredVersion).toBe(rep.desiredVersion);
    }, { timeoutMs: 30_000 });
    expect((await deploymentsOf()).map((d) => `${d.metadata?.name}@${d.metadata?.generation}`).sort()).toEqual(before);
  });

  it('GetModuleLogs through invokeDeviceMethod returns the module pod log lines; RestartModule replaces its pod; ping answers', async () => {
    const pod = (await core.listNamespacedPod({ namespace: ns.name, labelSelector: 'kedge.io/module=sensor' })).items.find((p) => !p.metadata?.deletionTimestamp);
    await setFakePodLogs(kc, { namespace: ns.name, pod: pod?.metadata?.name ?? '', lines: ['<6> starting sensor', '<4> temperature high', '<6> temperature 21.5'] });
    const r = await eventually(async () => {
      const res = await service.invokeDeviceMethod(DEVICE, '$edgeAgent', {
        methodName: 'GetModuleLogs',
        payload: { schemaVersion: '1.0', items: [{ id: '^sensor$', filter: { tail: 2 } }], encoding: 'none', contentType: 'text' },
        responseTimeoutInSeconds: 30,
      });
      const body = res.result as { status: number; payload: Array<{ id: string; payload: string }> };
      expect(body.payload[0]?.payload).toContain('temperature 21.5');
      return body;
    }, { timeoutMs: 30_000 });
    expect(r.status).toBe(200);
    expect(r.payload).toEqual([{ id: 'sensor', payload: '<4> temperature high\n<6> temperature 21.5\n' }]);
    const warn = await service.invokeDeviceMethod(DEVICE, '$edgeAgent', { methodName: 'GetModuleLogs', payload: { schemaVersion: '1.0', items: [{ id: 'sens', filter: { loglevel: 4 } }] }, responseTimeoutInSeconds: 30 });
    expect((warn.result as { payload: unknown }).payload).toEqual([{ id: 'sensor', payload: '<4> temperature high\n' }]);
    // RestartModule: the module's pod is replaced.
    const restart = await service.invokeDeviceMethod(DEVICE, '$edgeAgent', { methodName: 'RestartModule', payload: { schemaVersion: '1.0', id: 'sensor' }, responseTimeoutInSeconds: 30 });
    expect((restart.result as { status: number }).status).toBe(200);
    await eventually(async () => {
      const pods = (await core.listNamespacedPod({ namespace: ns.name, labelSelector: 'kedge.io/module=sensor' })).items;
      expect(pods.some((p) => p.metadata?.uid !== pod?.metadata?.uid && p.status?.phase === 'Running')).toBe(true);
    }, { timeoutMs: 30_000 });
    const missing = await service.invokeDeviceMethod(DEVICE, '$edgeAgent', { methodName: 'restartModule', payload: { schemaVersion: '1.0', id: 'nope' }, responseTimeoutInSeconds: 30 });
    expect((missing.result as { status: number }).status).toBe(400);
    const ping = await service.invokeDeviceMethod(DEVICE, '$edgeAgent', { methodName: 'ping', payload: null, responseTimeoutInSeconds: 10 });
    expect((ping.result as { status: number }).status).toBe(200);
    const unknown = await service.invokeDeviceMethod(DEVICE, '$edgeAgent', { methodName: 'Reboot', payload: null, responseTimeoutInSeconds: 10 });
    expect(unknown.result).toMatchObject({ status: 400, payload: { message: expect.stringMatching(/^Command 'Reboot' not found/) as unknown } });
  });

  it('keeps the cluster unchanged with the hub down, restarts offline without harm and resyncs when the hub returns', async () => {
    const snapshot = async () => (await deploymentsOf()).map((d) => `${d.metadata?.name}@${d.metadata?.resourceVersion}`).sort();
    const custom = kc.makeApiClient(CustomObjectsApi);
    const edGeneration = async () => ((await custom.getNamespacedCustomObject({ group: 'kedge.io', version: 'v1alpha1', namespace: ns.name, plural: 'edgedeployments', name: 'default' })) as { metadata: { generation: number } }).metadata.generation;
    const gen = await edGeneration();
    await hub.close();
    await eventually(() => agent?.client?.connected === false, { timeoutMs: 10_000 });
    const before = await snapshot();
    // A restart while offline: works from the EdgeDeployment and the cached twin.
    await agent?.stop();
    const restarted = await startTheAgent();
    await eventually(() => restarted.ready(), { timeoutMs: 30_000 });
    expect(restarted.twinSync?.lastDesired?.refused?.code).toBe(412);
    const res = await fetch(`${restarted.url ?? ''}/readyz`);
    expect(res.status).toBe(200);
    expect(await snapshot()).toEqual(before);
    expect(await edGeneration()).toBe(gen);

    await startTheHub();
    await restarted.client?.waitForConnection(30_000);
    await registry.applyConfigurationContentOnDevice(DEVICE, content({ sensor: mod('registry.invalid/sensor:3', '3.0') }));
    await eventually(async () => expect(await image('sensor')).toBe('registry.invalid/sensor:3'), { timeoutMs: 30_000 });
    await eventually(async () => {
      const rep = await reported();
      expect(rep.modules?.['sensor']).toMatchObject({ runtimeStatus: 'running', version: '3.0' });
      expect(rep.lastDesiredStatus?.code).toBe(200);
      expect(rep.lastDesiredVersion).toBe(rep.desiredVersion);
    }, { timeoutMs: 60_000 });
  });

  it('receives an automatic deployment targeted by tag, and the hub counts it applied and successful', async () => {
    const twin = (await registry.getTwin(DEVICE)).responseBody as unknown as { etag: string };
    await registry.updateTwin(DEVICE, { tags: { env: 'prod' } }, twin.etag);
    await registry.addConfiguration({
      id: 'prod-base',
      content: content({ sensor: mod('registry.invalid/sensor:4', '4.0') }),
      targetCondition: "tags.env='prod'",
      priority: 10,
    } as unknown as Parameters<Registry['addConfiguration']>[0]);
    await eventually(async () => expect(await image('sensor')).toBe('registry.invalid/sensor:4'), { timeoutMs: 60_000 });
    await eventually(async () => {
      const cfg = (await registry.getConfiguration('prod-base')).responseBody as unknown as { systemMetrics: { results: Record<string, number> } };
      expect(cfg.systemMetrics.results).toMatchObject({ appliedCount: 1, reportedSuccessfulCount: 1, reportedFailedCount: 0 });
    }, { timeoutMs: 60_000 });
  });
});
