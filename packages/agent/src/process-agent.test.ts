import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FakeClock } from '@kedge/contracts';
import { HubClient, startHub, type RunningHub } from '@kedge/hub';
import { eventually } from '@kedge/testing';
import { startProcessAgent, type RunningProcessAgent } from './start-process-agent.js';

// End to end on one machine: a real Kedge hub, the agent on the process runtime connected to it as $edgeAgent,
// a deployment applied through the hub's service API, modules running as real `node` child processes.

const log = pino({ level: process.env['KEDGE_TEST_LOG'] ?? 'silent' });
const DEVICE = 'laptop-edge-1';

let dir: string;
let hub: RunningHub;
let client: HubClient;
let agent: RunningProcessAgent | undefined;
const clock = new FakeClock(Date.parse('2026-06-01T12:00:00Z'));

/** A module running `node -e script` through its process form (a twin-safe JSON string). */
const processModule = (version: string, script: string) => ({
  version,
  type: 'docker',
  status: 'running',
  restartPolicy: 'always',
  settings: { image: `kedge/${version}`, createOptions: '{}', processOptions: JSON.stringify({ command: process.execPath, args: ['-e', script] }) },
});
/** Prints who it is (and its pid) and stays up. */
const talker = `console.log(JSON.stringify({ module: process.env.IOTEDGE_MODULEID, device: process.env.IOTEDGE_DEVICEID, hasConnectionString: (process.env.EdgeHubConnectionString ?? '').includes('ModuleId=' + process.env.IOTEDGE_MODULEID), pid: process.pid })); setInterval(() => {}, 1 << 30);`;
const manifest = (modules: Record<string, unknown>) => ({
  modulesContent: {
    $edgeAgent: {
      'properties.desired': {
        schemaVersion: '1.1',
        runtime: { type: 'docker', settings: { minDockerVersion: 'v1.25' } },
        systemModules: {
          edgeAgent: { type: 'docker', settings: { image: 'kedge/agent:0.1', createOptions: '{}' } },
          edgeHub: { type: 'docker', status: 'running', restartPolicy: 'always', settings: { image: 'kedge/edge-hub:0.1', createOptions: '{}', processOptions: JSON.stringify({ command: process.execPath, args: ['-e', 'setInterval(() => {}, 1 << 30)'] }) } },
        },
        modules,
      },
    },
    $edgeHub: { 'properties.desired': { schemaVersion: '1.1', routes: { up: 'FROM /messages/* INTO $upstream' }, storeAndForwardConfiguration: { timeToLiveSecs: 7200 } } },
  },
});

type Reported = {
  lastDesiredVersion?: number;
  lastDesiredStatus?: { code: number };
  modules?: Record<string, { runtimeStatus: string; version?: string; restartCount: number; exitCode: number; lastStartTimeUtc?: string; lastExitTimeUtc?: string; statusDescription: string }>;
  systemModules?: Record<string, { runtimeStatus: string }>;
};
const reported = async (): Promise<Reported & { desiredVersion: number }> => {
  const t = (await client.getTwin(DEVICE, '$edgeAgent')) as { properties: { reported: Reported; desired: { $version: number } } };
  return { ...t.properties.reported, desiredVersion: t.properties.desired.$version };
};
const logsOf = async (module: string): Promise<string> => {
  const r = await client.invoke(DEVICE, '$edgeAgent', 'GetModuleLogs', { schemaVersion: '1.0', items: [{ id: `^${module}$` }], encoding: 'none', contentType: 'text' });
  expect(r.status).toBe(200);
  return (r.payload as Array<{ payload: string }>)[0]?.payload ?? '';
};

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'kedge-process-agent-'));
  hub = await startHub({ dataDir: join(dir, 'hub'), hostName: '127.0.0.1', service: { host: '127.0.0.1', port: 0 }, mqtt: { host: '127.0.0.1', port: 0 }, deployments: { resyncSeconds: 3600 }, logLevel: 'silent' });
  client = new HubClient({ connectionString: hub.connectionString(), ca: hub.ca, port: Number(new URL(hub.urls.service).port) });
  await client.createDevice(DEVICE, { edge: true });
  const key = ((await client.getDevice(DEVICE)) as { authentication: { symmetricKey: { primaryKey: string } } }).authentication.symmetricKey.primaryKey;
  agent = await startProcessAgent(
    {
      stateDir: join(dir, 'agent'),
      hub: {
        connectionString: `HostName=127.0.0.1;DeviceId=${DEVICE};SharedAccessKey=${key}`,
        ca: hub.ca,
        servicePort: Number(new URL(hub.urls.service).port),
        mqttPort: Number(new URL(hub.urls.mqtt).port),
        reportCoalesceMs: 50,
        maxBackoffMs: 1000,
      },
      metrics: null,
      stopGraceMs: 2000,
    },
    { log, clock },
  );
});

afterAll(async () => {
  await agent?.stop();
  await hub?.close();
  await rm(dir, { recursive: true, force: true });
});

describe('the agent on the process runtime, deployed through a real hub', () => {
  it('runs the deployed modules as processes and reports them running with their versions', async () => {
    await client.applyContent(DEVICE, manifest({ sensor: processModule('1.0', talker), filter: processModule('2.1', talker) }));
    const r = await eventually(async () => {
      const rep = await reported();
      expect(rep.modules?.['sensor']?.runtimeStatus).toBe('running');
      expect(rep.modules?.['filter']?.runtimeStatus).toBe('running');
      expect(rep.systemModules?.['edgeHub']?.runtimeStatus).toBe('running');
      expect(rep.lastDesiredStatus?.code).toBe(200);
      expect(rep.lastDesiredVersion).toBe(rep.desiredVersion);
      return rep;
    }, { timeoutMs: 30_000 });
    expect(r.modules?.['sensor']).toMatchObject({ version: '1.0', restartCount: 0, lastStartTimeUtc: new Date(clock.now()).toISOString() });
    expect(r.modules?.['filter']?.version).toBe('2.1');
    expect(r.systemModules?.['edgeAgent']?.runtimeStatus).toBe('running');
    // Each module got its identity from the hub (managedBy IotEdge) and a container's environment.
    const hello = JSON.parse((await eventually(async () => (await logsOf('sensor')) || false)).split('\n')[0] ?? '') as Record<string, unknown>;
    expect(hello).toMatchObject({ module: 'sensor', device: DEVICE, hasConnectionString: true });
    expect(((await client.getModule(DEVICE, 'sensor')) as { managedBy: string }).managedBy).toBe('IotEdge');
  });

  it('restarts a killed module after its back-off and reports the exit, the count and the times', async () => {
    const first = JSON.parse((await logsOf('sensor')).split('\n')[0] ?? '') as { pid: number };
    process.kill(first.pid, 'SIGKILL');
    const down = await eventually(async () => {
      const m = (await reported()).modules?.['sensor'];
      expect(m?.runtimeStatus).toBe('backoff');
      return m;
    }, { timeoutMs: 30_000 });
    expect(down).toMatchObject({ exitCode: 137, restartCount: 0, lastExitTimeUtc: new Date(clock.now()).toISOString() });
    clock.advance(10_000);
    const up = await eventually(async () => {
      const m = (await reported()).modules?.['sensor'];
      expect(m?.runtimeStatus).toBe('running');
      return m;
    }, { timeoutMs: 30_000 });
    expect(up).toMatchObject({ restartCount: 1, lastStartTimeUtc: new Date(clock.now()).toISOString() });
  });

  it('restarts a module with RestartModule through the hub, and a deployment change takes effect', async () => {
    expect(await client.invoke(DEVICE, '$edgeAgent', 'RestartModule', { schemaVersion: '1.0', id: 'filter' })).toEqual({ status: 200, payload: null });
    await eventually(async () => (await logsOf('filter')).trim().split('\n').length === 2);
    await client.applyContent(DEVICE, manifest({ sensor: processModule('1.1', talker) }));
    await eventually(async () => {
      const rep = await reported();
      expect(rep.modules?.['sensor']).toMatchObject({ runtimeStatus: 'running', version: '1.1' });
      expect(rep.modules?.['filter']).toBeUndefined();
      expect(rep.lastDesiredVersion).toBe(rep.desiredVersion);
    }, { timeoutMs: 30_000 });
  });
});
