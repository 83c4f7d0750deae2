import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { HubClient, startHub, type RunningHub } from '@kedge/hub';
import { eventually } from '@kedge/testing';
import { startProcessAgent, type RunningProcessAgent } from './start-process-agent.js';

// A module process started by the process runtime connects with Microsoft's device SDK, from nothing but the
// environment the runtime gave it (ModuleClient.fromEnvironment: EdgeHubConnectionString + EdgeModuleCACertificateFile).
// The cloud hub stands in for the edge hub as its gateway (`GatewayHostName` host:port), which needs no edge hub here.

const log = pino({ level: process.env['KEDGE_TEST_LOG'] ?? 'silent' });
const DEVICE = 'sdk-edge-1';
const repoRoot = fileURLToPath(new URL('../../../', import.meta.url));

let dir: string;
let hub: RunningHub;
let client: HubClient;
let agent: RunningProcessAgent | undefined;

const sdkModule = `
const { ModuleClient, Message } = require('azure-iot-device');
const { Mqtt } = require('azure-iot-device-mqtt');
ModuleClient.fromEnvironment(Mqtt, (err, c) => {
  if (err) { console.log('ERR ' + err.message); process.exit(1); }
  c.open()
    .then(() => c.sendEvent(new Message(JSON.stringify({ from: process.env.IOTEDGE_MODULEID }))))
    .then(() => console.log('sent'), (e) => { console.log('ERR ' + e.message); process.exit(1); });
});
setInterval(() => {}, 1 << 30);`;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'kedge-process-sdk-'));
  hub = await startHub({ dataDir: join(dir, 'hub'), hostName: '127.0.0.1', service: { host: '127.0.0.1', port: 0 }, mqtt: { host: '127.0.0.1', port: 0 }, deployments: { resyncSeconds: 3600 }, logLevel: 'silent' });
  const servicePort = Number(new URL(hub.urls.service).port);
  const mqttPort = Number(new URL(hub.urls.mqtt).port);
  client = new HubClient({ connectionString: hub.connectionString(), ca: hub.ca, port: servicePort });
  await client.createDevice(DEVICE, { edge: true });
  const key = ((await client.getDevice(DEVICE)) as { authentication: { symmetricKey: { primaryKey: string } } }).authentication.symmetricKey.primaryKey;
  await writeFile(join(dir, 'ca.pem'), hub.ca);
  agent = await startProcessAgent(
    {
      stateDir: join(dir, 'agent'),
      hub: { connectionString: `HostName=127.0.0.1;DeviceId=${DEVICE};SharedAccessKey=${key}`, ca: hub.ca, servicePort, mqttPort, reportCoalesceMs: 50 },
      gatewayHostName: `127.0.0.1:${mqttPort}`,
      moduleCaFile: join(dir, 'ca.pem'),
      metrics: null,
      stopGraceMs: 2000,
    },
    { log },
  );
});

afterAll(async () => {
  await agent?.stop();
  await hub?.close();
  await rm(dir, { recursive: true, force: true });
});

describe('a module process with azure-iot-device', () => {
  it('connects with ModuleClient.fromEnvironment from the runtime-given environment and sends telemetry', async () => {
    await client.applyContent(DEVICE, {
      modulesContent: {
        $edgeAgent: {
          'properties.desired': {
            schemaVersion: '1.1',
            runtime: { type: 'docker', settings: {} },
            // The edge hub has no process form here (the cloud hub is the gateway): it is reported failed, and that is all.
            systemModules: {
              edgeAgent: { type: 'docker', settings: { image: 'kedge/agent:0.1', createOptions: '{}' } },
              edgeHub: { type: 'docker', status: 'running', restartPolicy: 'always', settings: { image: 'kedge/edge-hub:0.1', createOptions: '{}' } },
            },
            modules: {
              sdk: {
                version: '1.0',
                type: 'docker',
                status: 'running',
                restartPolicy: 'always',
                settings: { image: 'kedge/sdk:1', createOptions: '{}', processOptions: JSON.stringify({ command: process.execPath, args: ['-e', sdkModule], workingDir: repoRoot }) },
              },
            },
          },
        },
        $edgeHub: { 'properties.desired': { schemaVersion: '1.1', routes: {}, storeAndForwardConfiguration: { timeToLiveSecs: 7200 } } },
      },
    });
    const running = agent?.runtime;
    await eventually(async () => (await running?.logs('sdk', {}))?.some((l) => l.text === 'sent') ?? false, {
      timeoutMs: 30_000,
      message: 'module sent its message',
    }).catch(async (e: unknown) => {
      throw new Error(`${(e as Error).message}; module output: ${JSON.stringify(await running?.logs('sdk', {}))}`);
    });
    const t = await eventually(async () => {
      const r = await client.readTelemetry({ deviceId: DEVICE });
      return r.messages.find((m) => m.moduleId === 'sdk') ?? false;
    }, { timeoutMs: 30_000 });
    expect(t.body).toBe('{"from":"sdk"}');
  });
});
