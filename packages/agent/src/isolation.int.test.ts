import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { request } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CoreV1Api } from '@kubernetes/client-node';
import type { Registry } from 'azure-iothub';
import { ModuleClient } from 'azure-iot-device';
import { Mqtt } from 'azure-iot-device-mqtt';
import { pino } from 'pino';
import { Registry as Metrics } from 'prom-client';
import { startHub, type RunningHub } from '@kedge/hub';
import { ClusterConfig, HttpStatusError, KubeTransport, createKubeClient, type KubeClient } from '@kedge/kube';
import { createSasToken } from '@kedge/protocol';
import { createTestNamespace, eventually, kubeConfigForTests, kubeconfigPathForTests, type TestNamespace } from '@kedge/testing';
import { workloadSecretOf } from './module-env.js';
import { agentRbac } from './rbac.js';
import { startAgent, type RunningAgent } from './start-agent.js';
import { deploymentContent, freeLoopback, manifestModule, serviceSdk } from './test-support/hub-sdk.js';

// Issue 12, "Done when" 4: two devices in two namespaces of the real control plane, each agent with nothing but the
// Role it ships (real ServiceAccount tokens from the TokenRequest API), both connected to one real hub. Nothing
// of device A reaches device B: not its namespace, not its module identities, not its modules' connections, and
// A's workload API signs only for A's deployed modules.

const log = pino({ level: process.env['KEDGE_TEST_LOG'] ?? 'silent' });

interface Device {
  readonly id: string;
  ns: TestNamespace;
  cluster: ClusterConfig;
  kube: KubeClient;
  key: string;
  agent: RunningAgent;
}

let host = '';
let hub: RunningHub;
let registry: Registry;
let hubDir = '';
const dirs: string[] = [];
const devices: Device[] = [];

/** The device agent's own credentials: its ServiceAccount's token, as a pod would mount it. */
async function serviceAccountCluster(namespace: string): Promise<ClusterConfig> {
  const admin = ClusterConfig.fromFiles([kubeconfigPathForTests()]);
  for (const o of agentRbac(namespace)) await createKubeClient(admin).apply(o);
  const core = kubeConfigForTests().makeApiClient(CoreV1Api);
  const token = await core.createNamespacedServiceAccountToken({ name: 'kedge-agent', namespace, body: { spec: { audiences: [], expirationSeconds: 3600 } } });
  const dir = mkdtempSync(join(tmpdir(), 'kedge-isolation-sa-'));
  dirs.push(dir);
  writeFileSync(join(dir, 'token'), token.status?.token ?? '');
  writeFileSync(join(dir, 'ca.crt'), admin.ca ?? '');
  writeFileSync(join(dir, 'namespace'), namespace);
  const url = new URL(admin.server);
  return ClusterConfig.inCluster({ dir, env: { KUBERNETES_SERVICE_HOST: url.hostname, KUBERNETES_SERVICE_PORT: url.port } });
}

/** The pod IP device A's agent advertises for its workload Service (never dialled here). */
const ADVERTISED = '10.0.0.7';

async function device(id: string, advertise = false): Promise<Device> {
  const ns = await createTestNamespace(kubeConfigForTests(), `iso-${id}`);
  const cluster = await serviceAccountCluster(ns.name);
  await registry.create({ deviceId: id, capabilities: { iotEdge: true } });
  const key = (await registry.get(id)).responseBody.authentication?.symmetricKey?.primaryKey ?? '';
  const agent = await startAgent(
    {
      namespace: ns.name,
      metrics: null,
      hub: { connectionString: `HostName=${host};DeviceId=${id};SharedAccessKey=${key}`, ca: hub.ca, reportCoalesceMs: 100, maxBackoffMs: 1000 },
      workload: { host: '127.0.0.1', port: 0, ...(advertise ? { advertise: { service: 'kedge-workload', address: ADVERTISED } } : {}) },
      statusCoalesceMs: 50,
      workers: 1,
    },
    { cluster, log, registry: new Metrics() },
  );
  const d = { id, ns, cluster, kube: createKubeClient(cluster), key, agent };
  devices.push(d);
  return d;
}

/** The status of a Kubernetes request made with a device agent's credentials. */
async function kubeStatus(cluster: ClusterConfig, method: string, path: string, body?: unknown): Promise<number> {
  try {
    await KubeTransport.for(cluster).request(method, path, { timeoutMs: 10_000, ...(body !== undefined ? { body } : {}) });
    return 200;
  } catch (e) {
    if (e instanceof HttpStatusError) return e.statusCode;
    throw e;
  }
}

/** A request to the hub's device-scoped module API with a token of `tokenDevice`, signed with `key`. */
function hubModuleRequest(method: string, path: string, tokenDevice: string, key: string, body?: unknown): Promise<number> {
  const token = createSasToken({ audience: `${host}/devices/${tokenDevice}`, key, expirySeconds: Math.floor(Date.now() / 1000) + 3600 });
  const text = body === undefined ? undefined : JSON.stringify(body);
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host,
        port: 443,
        method,
        path: `${path}?api-version=2021-04-12`,
        ca: hub.ca,
        headers: { Authorization: token, ...(text !== undefined ? { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(text) } : {}) },
      },
      (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      },
    );
    req.on('error', reject);
    req.end(text);
  });
}

/** POST /modules/{m}/genid/{g}/sign to a device's workload API. */
async function sign(d: Device, moduleId: string, secret: string): Promise<{ status: number; body: { digest?: string; message?: string } }> {
  const res = await fetch(new URL(`modules/${encodeURIComponent(moduleId)}/genid/${encodeURIComponent(secret)}/sign?api-version=2022-08-03`, d.agent.workload?.uri), {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ keyId: 'primary', algo: 'HMACSHA256', data: Buffer.from('sr\n1').toString('base64') }),
  });
  return { status: res.status, body: (await res.json()) as { digest?: string; message?: string } };
}

const moduleKey = async (deviceId: string, moduleId: string): Promise<string> =>
  ((await registry.getModule(deviceId, moduleId)).responseBody as unknown as { authentication: { symmetricKey: { primaryKey: string } } }).authentication.symmetricKey.primaryKey;

let a: Device;
let b: Device;

beforeAll(async () => {
  host = await freeLoopback();
  hubDir = mkdtempSync(join(tmpdir(), 'kedge-isolation-hub-'));
  hub = await startHub({ dataDir: hubDir, hostName: host, service: { host, port: 443 }, mqtt: { host, port: 8883 }, deployments: { resyncSeconds: 1 } }, { logger: log });
  ({ registry } = serviceSdk(hub.connectionString(), hub.ca));
  a = await device('iso-dev-a', true);
  b = await device('iso-dev-b');
  await registry.applyConfigurationContentOnDevice(a.id, deploymentContent({ sensor: manifestModule('registry.invalid/sensor:1', '1.0'), gone: manifestModule('registry.invalid/gone:1', '1.0') }));
  await registry.applyConfigurationContentOnDevice(b.id, deploymentContent({ sensor: manifestModule('registry.invalid/sensor:1', '1.0'), bonly: manifestModule('registry.invalid/bonly:1', '1.0') }));
  for (const [d, m] of [[a, 'gone'], [b, 'bonly']] as const) {
    await eventually(async () => expect((await sign(d, m, workloadSecretOf(m, await moduleKey(d.id, m)))).status).toBe(200), { timeoutMs: 60_000 });
  }
}, 180_000);

afterAll(async () => {
  for (const d of devices) await d.agent.stop();
  await hub?.close();
  for (const d of devices) await d.ns.cleanup();
  for (const dir of [...dirs, hubDir]) if (dir) rmSync(dir, { recursive: true, force: true });
});

describe('two devices on one cluster and one hub', () => {
  it("agent A's ServiceAccount is denied B's namespace: get, list, watch and create of EdgeDeployments, Secrets and Deployments", async () => {
    const kinds = [
      { base: `/apis/kedge.io/v1alpha1/namespaces/${b.ns.name}/edgedeployments`, name: 'default', body: { apiVersion: 'kedge.io/v1alpha1', kind: 'EdgeDeployment', metadata: { name: 'evil' }, spec: {} } },
      { base: `/api/v1/namespaces/${b.ns.name}/secrets`, name: 'kedge-identity-sensor', body: { apiVersion: 'v1', kind: 'Secret', metadata: { name: 'evil' } } },
      { base: `/apis/apps/v1/namespaces/${b.ns.name}/deployments`, name: 'sensor', body: { apiVersion: 'apps/v1', kind: 'Deployment', metadata: { name: 'evil' }, spec: {} } },
    ];
    for (const k of kinds) {
      // The same requests in A's own namespace are allowed: the denial is the namespace, not the request.
      expect(await kubeStatus(a.cluster, 'GET', k.base.replace(b.ns.name, a.ns.name))).toBe(200);
      expect(await kubeStatus(a.cluster, 'GET', `${k.base}/${k.name}`)).toBe(403);
      expect(await kubeStatus(a.cluster, 'GET', k.base)).toBe(403);
      expect(await kubeStatus(a.cluster, 'GET', `${k.base}?watch=true&timeoutSeconds=1`)).toBe(403);
      expect(await kubeStatus(a.cluster, 'POST', k.base, k.body)).toBe(403);
    }
    // B's objects exist: the 403s are not 404s in disguise.
    expect(await kubeStatus(b.cluster, 'GET', `/api/v1/namespaces/${b.ns.name}/secrets/kedge-identity-sensor`)).toBe(200);
  });

  it("device A's credentials can neither read nor create device B's module identities in the hub", async () => {
    // A's own token on B's resources, and a token claiming to be B's signed with A's key.
    expect(await hubModuleRequest('GET', `/devices/${a.id}/modules/sensor`, a.id, a.key)).toBe(200);
    for (const [tokenDevice, path] of [[a.id, `/devices/${b.id}/modules/sensor`], [b.id, `/devices/${b.id}/modules/sensor`], [a.id, `/devices/${b.id}/modules`]] as const) {
      expect([401, 403]).toContain(await hubModuleRequest('GET', path, tokenDevice, a.key));
    }
    expect([401, 403]).toContain(await hubModuleRequest('PUT', `/devices/${b.id}/modules/intruder`, a.id, a.key, { moduleId: 'intruder', deviceId: b.id }));
    expect([401, 403]).toContain(await hubModuleRequest('PUT', `/devices/${b.id}/modules/intruder`, b.id, a.key, { moduleId: 'intruder', deviceId: b.id }));
    await expect(registry.getModule(b.id, 'intruder')).rejects.toThrow();
  });

  it("device A's keys cannot connect as B's modules", async () => {
    for (const key of [a.key, await moduleKey(a.id, 'sensor')]) {
      const c = ModuleClient.fromConnectionString(`HostName=${host};DeviceId=${b.id};ModuleId=sensor;SharedAccessKey=${key}`, Mqtt);
      await c.setOptions({ ca: hub.ca });
      await expect(c.open()).rejects.toThrow();
      await c.close().catch(() => undefined);
    }
    // B's own module key does connect: the refusals above are the wrong key, not a broken setup.
    const ok = ModuleClient.fromConnectionString(`HostName=${host};DeviceId=${b.id};ModuleId=sensor;SharedAccessKey=${await moduleKey(b.id, 'sensor')}`, Mqtt);
    await ok.setOptions({ ca: hub.ca });
    await ok.open();
    await ok.close();
  });

  it("A's leading agent points its workload Service at itself (EndpointSlice) and publishes the trust bundle", async () => {
    type Slice = { endpoints: Array<{ addresses: string[] }>; ports: Array<{ name: string; port: number }>; metadata: { labels: Record<string, string> } };
    const slice = await a.kube.get<Slice & { apiVersion: string; kind: string }>('discovery.k8s.io/v1', 'EndpointSlice', a.ns.name, 'kedge-workload');
    expect(slice?.metadata.labels['kubernetes.io/service-name']).toBe('kedge-workload');
    expect(slice?.endpoints.map((e) => e.addresses)).toEqual([[ADVERTISED]]);
    expect(slice?.ports).toEqual([{ name: 'workload', port: Number(new URL(a.agent.workload?.uri ?? '').port), protocol: 'TCP' }]);
    const bundle = await a.kube.get<{ apiVersion: string; kind: string; data: Record<string, string> }>('v1', 'ConfigMap', a.ns.name, 'kedge-trust-bundle');
    expect(bundle?.data['ca.pem']).toBe(a.agent.deviceCa?.trustBundle);
    // Each device has its own CA: B's modules do not trust A's edge hub.
    expect(b.agent.deviceCa?.trustBundle).not.toBe(a.agent.deviceCa?.trustBundle);
  });

  it("A's workload API signs for A's modules only: not B's, not with B's secret, not for a removed module", async () => {
    const aSensor = await sign(a, 'sensor', workloadSecretOf('sensor', await moduleKey(a.id, 'sensor')));
    expect(aSensor.status).toBe(200);
    const { createHmac } = await import('node:crypto');
    expect(aSensor.body.digest).toBe(createHmac('sha256', Buffer.from(await moduleKey(a.id, 'sensor'), 'base64')).update('sr\n1').digest('base64'));
    // B's sensor has the same name: its workload secret does not open A's (and A's API never holds B's key).
    expect((await sign(a, 'sensor', workloadSecretOf('sensor', await moduleKey(b.id, 'sensor')))).status).toBe(403);
    // A module only B deploys is unknown to A's API, whatever secret is presented.
    expect((await sign(a, 'bonly', workloadSecretOf('bonly', await moduleKey(b.id, 'bonly')))).status).toBe(404);
    expect((await sign(b, 'bonly', workloadSecretOf('bonly', await moduleKey(b.id, 'bonly')))).status).toBe(200);
    // A's own module, removed from its deployment: refused from then on, with the secret it had.
    const goneSecret = workloadSecretOf('gone', await moduleKey(a.id, 'gone'));
    await registry.applyConfigurationContentOnDevice(a.id, deploymentContent({ sensor: manifestModule('registry.invalid/sensor:1', '1.0') }));
    await eventually(async () => expect((await sign(a, 'gone', goneSecret)).status).toBe(404), { timeoutMs: 30_000 });
    await eventually(async () => expect(await kubeStatus(a.cluster, 'GET', `/api/v1/namespaces/${a.ns.name}/secrets/kedge-identity-gone`)).toBe(404), { timeoutMs: 30_000 });
    // The agent itself is never served: $edgeAgent signs its own tokens in process.
    expect((await sign(a, '$edgeAgent', 'x')).status).toBe(404);
  });
});
