import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { pino } from 'pino';
import { Registry as Metrics } from 'prom-client';
import { agentRbac, requestServerCertificate, startAgent, workloadIdentityFromEnv, WORKLOAD_PORT, type RunningAgent } from '@kedge/agent';
import { startEdgeHub, type RunningEdgeHub } from '@kedge/edge-hub';
import { HubClient, startHub, type RunningHub } from '@kedge/hub';
import { ClusterConfig, createKubeClient, type KubeClient, type KubernetesObject } from '@kedge/kube';
import { createTestNamespace, eventually, freeLoopbackAddress, kubeConfigForTests, kubeconfigPathForTests, runPython, type TestNamespace } from '@kedge/testing';

// Workload mode end to end: the agent renders a module's Deployment on the real control plane; the test takes
// exactly the env that Deployment's container carries (secretKeyRefs resolved from the real apiserver, as the
// kubelet would) and runs Microsoft's SDKs on the host with it — Node `ModuleClient.fromEnvironment` and Python
// `IoTHubModuleClient.create_from_edge_environment()` — against the agent's real workload API, through a real edge
// hub (its server certificate issued by that workload API, asked for as `kedge edge-hub run` does) to a real Kedge hub.
//
// The one substitution: the Service names in the env (`edgehub`, `kedge-workload`) have no cluster DNS on the host,
// so the SDK processes resolve them to the loopback addresses where the edge hub and the workload API listen (a
// dns.lookup / socket.getaddrinfo hook in the child process; TLS still checks the name `edgehub`).

const log = pino({ level: process.env['KEDGE_TEST_LOG'] ?? 'silent' });
const DEVICE = 'wl-edge-1';
const requireHere = createRequire(import.meta.url);

let hub: RunningHub;
let hubClient: HubClient;
let ns: TestNamespace;
let kube: KubeClient;
let agent: RunningAgent;
let edgeHub: RunningEdgeHub;
let hubHost = '';
let edgeHost = '';
let workloadHost = '';
const dirs: string[] = [];
const tmp = (prefix: string): string => {
  const d = mkdtempSync(join(tmpdir(), prefix));
  dirs.push(d);
  return d;
};

/** A loopback address of 127.0.49.x–127.0.50.x with every port of `ports` free (the SDKs dial fixed ports). */
function freeLoopback(ports: readonly number[], avoid: readonly string[] = []): Promise<string> {
  return freeLoopbackAddress(ports, { firstOctet: 49, blocks: 2, avoid });
}

type EnvVar = { name: string; value?: string; valueFrom?: { secretKeyRef?: { name: string; key: string } } };
type DeploymentObject = KubernetesObject & { spec: { template: { spec: { containers: Array<{ env?: EnvVar[] }> } } } };

/** The container env of a module's Deployment, resolved as the kubelet does (secretKeyRef from the apiserver). */
async function podEnv(deployment: string): Promise<{ env: Record<string, string>; raw: EnvVar[] }> {
  const d = await kube.get<DeploymentObject>('apps/v1', 'Deployment', ns.name, deployment);
  if (!d) throw new Error(`no Deployment ${deployment} yet`);
  const raw = d.spec.template.spec.containers[0]?.env ?? [];
  const env: Record<string, string> = {};
  for (const v of raw) {
    const ref = v.valueFrom?.secretKeyRef;
    if (ref) {
      const s = await kube.get<KubernetesObject & { data?: Record<string, string> }>('v1', 'Secret', ns.name, ref.name);
      const data = s?.data?.[ref.key];
      if (data === undefined) throw new Error(`Secret ${ref.name} has no ${ref.key} yet`);
      env[v.name] = Buffer.from(data, 'base64').toString('utf8');
    } else env[v.name] = v.value ?? '';
  }
  return { env, raw };
}

const hostMap = (): string => `edgehub=${edgeHost},kedge-workload=${workloadHost}`;

/** A Node process with exactly `env` (plus the host map), running an ES module script. */
function runNode(script: string, env: Record<string, string>, timeoutMs = 60_000): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const dir = tmp('kedge-wl-node-');
  const hook = join(dir, 'hosts.mjs');
  writeFileSync(
    hook,
    `import dns from 'node:dns';
const map = new Map(process.env.KEDGE_TEST_HOSTS.split(',').map((kv) => kv.split('=')));
const lookup = dns.lookup;
dns.lookup = function (host, opts, cb) {
  const to = map.get(host);
  if (to === undefined) return lookup.apply(this, arguments);
  const callback = typeof opts === 'function' ? opts : cb;
  const all = typeof opts === 'object' && opts !== null && opts.all;
  process.nextTick(() => (all ? callback(null, [{ address: to, family: 4 }]) : callback(null, to, 4)));
};
`,
  );
  const main = join(dir, 'main.mjs');
  writeFileSync(main, script);
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', pathToFileURL(hook).href, main], { env: { ...env, KEDGE_TEST_HOSTS: hostMap() }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.once('error', reject);
    child.once('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

const modules = {
  nodemod: { version: '1.0', type: 'docker', status: 'running', restartPolicy: 'always', settings: { image: 'example/nodemod:1.0', createOptions: '{}' } },
  pymod: { version: '1.0', type: 'docker', status: 'running', restartPolicy: 'always', settings: { image: 'example/pymod:1.0', createOptions: '{}' } },
};

beforeAll(async () => {
  hubHost = await freeLoopback([443, 8883]);
  edgeHost = await freeLoopback([8883], [hubHost]);
  workloadHost = await freeLoopback([WORKLOAD_PORT], [hubHost, edgeHost]);
  hub = await startHub(
    { dataDir: tmp('kedge-wl-hub-'), hostName: hubHost, service: { host: hubHost, port: 443 }, mqtt: { host: hubHost, port: 8883 }, deployments: { resyncSeconds: 1 } },
    { logger: log },
  );
  hubClient = new HubClient({ connectionString: hub.connectionString(), ca: hub.ca });
  await hubClient.createDevice(DEVICE, { edge: true });
  const device = (await hubClient.getDevice(DEVICE)) as { authentication?: { symmetricKey?: { primaryKey?: string } } };
  const deviceKey = device.authentication?.symmetricKey?.primaryKey ?? '';

  ns = await createTestNamespace(kubeConfigForTests(), 'workload-mode');
  const admin = ClusterConfig.fromFiles([kubeconfigPathForTests()]);
  kube = createKubeClient(admin);
  for (const o of agentRbac(ns.name)) await kube.apply(o);
  agent = await startAgent(
    {
      namespace: ns.name,
      metrics: null,
      hub: { connectionString: `HostName=${hubHost};DeviceId=${DEVICE};SharedAccessKey=${deviceKey}`, ca: hub.ca, reportCoalesceMs: 100, maxBackoffMs: 1000 },
      // The port the rendered IOTEDGE_WORKLOADURI names (http://kedge-workload:15580), on a loopback address of its own.
      workload: { host: workloadHost, port: WORKLOAD_PORT },
      statusCoalesceMs: 50,
      workers: 2,
    },
    { cluster: admin, log, registry: new Metrics() },
  );
  await hubClient.applyContent(DEVICE, {
    modulesContent: {
      $edgeAgent: {
        'properties.desired': {
          schemaVersion: '1.1',
          runtime: { type: 'docker', settings: { minDockerVersion: 'v1.25' } },
          systemModules: {
            edgeAgent: { type: 'docker', settings: { image: 'ghcr.io/kedge-io/edge-agent:0.1', createOptions: '{}' } },
            edgeHub: { type: 'docker', status: 'running', restartPolicy: 'always', settings: { image: 'ghcr.io/kedge-io/edge-hub:0.1', createOptions: '{}' } },
          },
          modules,
        },
      },
      $edgeHub: { 'properties.desired': { schemaVersion: '1.1', routes: { up: 'FROM /messages/* INTO $upstream' }, storeAndForwardConfiguration: { timeToLiveSecs: 7200 } } },
    },
  });

  // The edge hub, run with its own Deployment's env: its upstream connection string, and its server certificate
  // for `edgehub` from the workload API, asked for with its workload secret (as IoT Edge's edgeHub does).
  const hubEnv = await eventually(() => podEnv('edgehub'), { timeoutMs: 60_000 });
  const identity = workloadIdentityFromEnv(hubEnv.env);
  if (!identity) throw new Error('the edge hub Deployment is not in workload mode');
  expect(identity.workloadUri).toBe('http://kedge-workload:15580');
  // The host map again, here in the test process: kedge-workload is the workload API's loopback address.
  const cert = await requestServerCertificate({ ...identity, workloadUri: `http://${workloadHost}:${WORKLOAD_PORT}/` }, hubEnv.env['EdgeDeviceHostName'] ?? '');
  expect(cert.cert).toContain('BEGIN CERTIFICATE');
  const w = hubEnv.env;
  edgeHub = await startEdgeHub(
    {
      connectionString: w['EdgeHubConnectionString'] ?? '',
      hub: { ca: hub.ca },
      hostName: 'edgehub',
      dataDir: tmp('kedge-wl-edgehub-'),
      mqtt: { host: edgeHost, port: 8883 },
      websocket: null,
      tls: { cert: cert.cert, key: cert.key, ca: cert.trustBundle },
      logLevel: 'silent',
    },
    { logger: log },
  );
  await eventually(() => edgeHub.router.routes.length === 1, { timeoutMs: 30_000 });
}, 240_000);

afterAll(async () => {
  await edgeHub?.close();
  await agent?.stop();
  await hub?.close();
  await ns?.cleanup();
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

/** Telemetry the hub received from `moduleId` with property `lang`. */
const upstream = (moduleId: string, lang: string) =>
  eventually(async () => (await hubClient.readTelemetry({ deviceId: DEVICE })).messages.find((m) => m.moduleId === moduleId && m.properties['lang'] === lang) ?? false, { timeoutMs: 30_000 });

describe('modules in workload mode (the default)', () => {
  it('the rendered Deployment carries the IOTEDGE_* variables and only references to its identity Secret', async () => {
    const { env, raw } = await eventually(() => podEnv('nodemod'), { timeoutMs: 30_000 });
    expect(env).toMatchObject({
      IOTEDGE_WORKLOADURI: 'http://kedge-workload:15580',
      IOTEDGE_APIVERSION: '2022-08-03',
      IOTEDGE_DEVICEID: DEVICE,
      IOTEDGE_MODULEID: 'nodemod',
      IOTEDGE_IOTHUBHOSTNAME: hubHost,
      IOTEDGE_GATEWAYHOSTNAME: 'edgehub',
      IOTEDGE_AUTHSCHEME: 'sasToken',
    });
    expect(raw.find((v) => v.name === 'IOTEDGE_MODULEGENERATIONID')).toEqual({ name: 'IOTEDGE_MODULEGENERATIONID', valueFrom: { secretKeyRef: { name: 'kedge-identity-nodemod', key: 'workloadSecret' } } });
    expect(Object.keys(env)).not.toContain('EdgeHubConnectionString');
    // The module's key is nowhere in its env: it signs through the workload API.
    const key = ((await hubClient.getModule(DEVICE, 'nodemod')) as { authentication: { symmetricKey: { primaryKey: string } } }).authentication.symmetricKey.primaryKey;
    expect(JSON.stringify(env)).not.toContain(key);
  });

  it('Node ModuleClient.fromEnvironment with exactly that env sends a message through the edge hub to the hub', async () => {
    const { env } = await podEnv('nodemod');
    const sdk = pathToFileURL(requireHere.resolve('azure-iot-device')).href;
    const mqtt = pathToFileURL(requireHere.resolve('azure-iot-device-mqtt')).href;
    const r = await runNode(
      `import sdk from ${JSON.stringify(sdk)};
import mqtt from ${JSON.stringify(mqtt)};
const client = await new Promise((resolve, reject) => sdk.ModuleClient.fromEnvironment(mqtt.Mqtt, (err, c) => (err ? reject(err) : resolve(c))));
await client.open();
const msg = new sdk.Message(JSON.stringify({ from: 'node' }));
msg.contentType = 'application/json';
msg.contentEncoding = 'utf-8';
msg.properties.add('lang', 'node');
await client.sendOutputEvent('out', msg);
await client.close();
console.log('SENT');
`,
      env,
    );
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain('SENT');
    const msg = await upstream('nodemod', 'node');
    expect(msg.body).toEqual({ from: 'node' });
    expect(msg.systemProperties['connectionModuleId']).toBe('nodemod');
  });

  it('Python IoTHubModuleClient.create_from_edge_environment() with exactly that env does the same', async () => {
    const { env } = await eventually(() => podEnv('pymod'), { timeoutMs: 30_000 });
    const r = await runPython(
      `
import os, socket
_hosts = dict(kv.split("=") for kv in os.environ["KEDGE_TEST_HOSTS"].split(","))
_getaddrinfo = socket.getaddrinfo
socket.getaddrinfo = lambda host, *a, **k: _getaddrinfo(_hosts.get(host, host), *a, **k)
import json
from azure.iot.device import IoTHubModuleClient, Message
client = IoTHubModuleClient.create_from_edge_environment()
client.connect()
m = Message(json.dumps({"from": "python"}), content_encoding="utf-8", content_type="application/json")
m.custom_properties["lang"] = "py"
client.send_message_to_output(m, "out")
client.shutdown()
print("SENT", flush=True)
`,
      { env: { ...env, KEDGE_TEST_HOSTS: hostMap() }, timeoutMs: 60_000 },
    );
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain('SENT');
    const msg = await upstream('pymod', 'py');
    expect(msg.body).toEqual({ from: 'python' });
  }, 90_000);
});
