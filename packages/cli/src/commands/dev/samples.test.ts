/**
 * The sample modules (samples/*, plain JS on azure-iot-device) as real child processes against a real edge hub and
 * a real hub: sensor → filter → $upstream by the $edgeHub's routes, and module twin changes taking effect.
 */
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { HubClient, startHub } from '@kedge/hub';
import type { RunningHub, TelemetryMessage } from '@kedge/hub';
import { startEdgeHub } from '@kedge/edge-hub';
import type { RunningEdgeHub } from '@kedge/edge-hub';
import { eventually } from '@kedge/testing';

const SAMPLES = fileURLToPath(new URL('../../../../../samples/', import.meta.url));
const EDGE = 'samples-edge';
const ROUTES = {
  sensorToFilter: 'FROM /messages/modules/sensor/outputs/temperatureOutput INTO BrokeredEndpoint("/modules/filter/inputs/input1")',
  filterToCloud: 'FROM /messages/modules/filter/outputs/* INTO $upstream',
};
const keyOf = (r: unknown): string => (r as { authentication: { symmetricKey: { primaryKey: string } } }).authentication.symmetricKey.primaryKey;
type Reading = { temperature: number; sequence: number };

describe('sample modules (simulated temperature sensor, filter) on a real edge hub and hub', () => {
  const dir = mkdtempSync(join(tmpdir(), 'kedge-samples-'));
  let hub: RunningHub;
  let edgeHub: RunningEdgeHub;
  let service: HubClient;
  const children: ChildProcess[] = [];
  const logs: Record<string, string> = {};
  const received: TelemetryMessage[] = [];
  const ac = new AbortController();

  beforeAll(async () => {
    hub = await startHub({ dataDir: join(dir, 'hub'), hostName: '127.0.0.1', service: { host: '127.0.0.1', port: 0 }, mqtt: { host: '127.0.0.1', port: 0 }, deployments: { resyncSeconds: 3600 }, logLevel: 'silent' });
    const servicePort = Number(new URL(hub.urls.service).port);
    service = new HubClient({ connectionString: hub.connectionString(), ca: hub.ca, port: servicePort });
    await service.createDevice(EDGE, { edge: true });
    const keys = { sensor: keyOf(await service.createModule(EDGE, 'sensor')), filter: keyOf(await service.createModule(EDGE, 'filter')) };
    const image = (m: string) => ({ version: '1.0', type: 'docker', status: 'running', restartPolicy: 'always', settings: { image: `localhost/kedge-sample-${m}:1.0`, createOptions: '{}' } });
    await service.applyContent(EDGE, {
      modulesContent: {
        $edgeAgent: {
          'properties.desired': {
            schemaVersion: '1.1',
            runtime: { type: 'docker', settings: {} },
            systemModules: { edgeAgent: { type: 'docker', settings: { image: 'a:1', createOptions: '{}' } }, edgeHub: { type: 'docker', status: 'running', restartPolicy: 'always', settings: { image: 'h:1', createOptions: '{}' } } },
            modules: { sensor: image('simulated-temperature-sensor'), filter: image('filter') },
          },
        },
        $edgeHub: { 'properties.desired': { schemaVersion: '1.1', routes: ROUTES, storeAndForwardConfiguration: { timeToLiveSecs: 7200 } } },
        sensor: { 'properties.desired': { sendIntervalSeconds: 0.1, temperatureMin: 20, temperatureMax: 30, steps: 11 } },
        filter: { 'properties.desired': { temperatureThreshold: 27 } },
      },
    });
    edgeHub = await startEdgeHub({
      connectionString: `HostName=127.0.0.1;DeviceId=${EDGE};ModuleId=$edgeHub;SharedAccessKey=${keyOf(await service.getModule(EDGE, '$edgeHub'))}`,
      hub: { ca: hub.ca, mqttPort: Number(new URL(hub.urls.mqtt).port), httpsPort: servicePort },
      hostName: '127.0.0.1',
      dataDir: join(dir, 'edge-hub'),
      mqtt: { host: '127.0.0.1', port: 0 },
      websocket: null,
      logLevel: 'silent',
    });
    await eventually(() => edgeHub.router.routes.length === 2, { timeoutMs: 20_000 });
    const gateway = `127.0.0.1:${new URL(edgeHub.urls.mqtt).port}`;
    for (const [moduleId, sample] of [['filter', 'filter'], ['sensor', 'simulated-temperature-sensor']] as const) {
      const child = spawn(process.execPath, [join(SAMPLES, sample, 'index.mjs')], {
        env: { PATH: process.env['PATH'] ?? '', EdgeHubConnectionString: `HostName=127.0.0.1;GatewayHostName=${gateway};DeviceId=${EDGE};ModuleId=${moduleId};SharedAccessKey=${keys[moduleId]}`, EdgeModuleCACertificateFile: edgeHub.caFile },
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      logs[moduleId] = '';
      child.stdout?.on('data', (d: Buffer) => (logs[moduleId] += d.toString()));
      child.stderr?.on('data', (d: Buffer) => (logs[moduleId] += d.toString()));
      children.push(child);
    }
    void (async () => {
      for await (const m of service.monitor({ deviceId: EDGE, signal: ac.signal })) received.push(m);
    })().catch(() => undefined);
  }, 120_000);

  afterAll(async () => {
    ac.abort();
    for (const c of children) if (c.exitCode === null) c.kill('SIGTERM');
    await Promise.all(children.filter((c) => c.exitCode === null).map((c) => new Promise((r) => c.once('exit', r))));
    await edgeHub?.close();
    await hub?.close();
  });

  /** `eventually`, with the modules' output in the failure (what a sample logged says why it did not happen). */
  const withLogs = (fn: () => boolean, opts: { timeoutMs: number }): Promise<unknown> =>
    eventually(fn, opts).catch((e: unknown) => {
      throw new Error(`${(e as Error).message}\nmodule output: ${JSON.stringify(logs)}`);
    });
  const readings = (): Array<TelemetryMessage & { body: Reading }> => received.filter((m) => m.moduleId === 'filter' && m.properties['MessageType'] !== 'Alert') as Array<TelemetryMessage & { body: Reading }>;
  const alerts = (): TelemetryMessage[] => received.filter((m) => m.moduleId === 'filter' && m.properties['MessageType'] === 'Alert');

  it('forwards only readings above the threshold to the cloud, and raises an alert when it is crossed', async () => {
    await withLogs(() => readings().length >= 6 && alerts().length >= 2, { timeoutMs: 30_000 });
    expect(readings().every((m) => m.body.temperature > 27)).toBe(true);
    // The sensor sweeps 20..30: the sequence numbers show readings at or below 27 were dropped by the filter.
    const seqs = readings().map((m) => m.body.sequence);
    expect(seqs.some((s, i) => i > 0 && s - (seqs[i - 1] ?? 0) > 1)).toBe(true);
    expect(alerts()[0]?.body).toMatchObject({ alert: 'temperature above threshold', threshold: 27 });
  });

  it('applies module twin changes: a new threshold and a new temperature range take effect and are reported', async () => {
    await service.updateTwin(EDGE, 'filter', { properties: { desired: { temperatureThreshold: 35 } } });
    await service.updateTwin(EDGE, 'sensor', { properties: { desired: { temperatureMax: 45 } } });
    const reported = async (m: string): Promise<Record<string, unknown>> => ((await service.getTwin(EDGE, m)) as { properties: { reported: Record<string, unknown> } }).properties.reported;
    await eventually(async () => (await reported('filter'))['temperatureThreshold'] === 35, { timeoutMs: 20_000 });
    await eventually(async () => ((await reported('sensor'))['applied'] as { temperatureMax?: number } | undefined)?.temperatureMax === 45, { timeoutMs: 20_000 });
    const before = readings().length;
    // Above 35 only exists with the new range (max 45): both changes took effect.
    const sinceFirstHot = (): Reading[] => {
      const after = readings().slice(before).map((m) => m.body);
      const first = after.findIndex((r) => r.temperature > 35);
      return first < 0 ? [] : after.slice(first);
    };
    await withLogs(() => sinceFirstHot().length >= 6, { timeoutMs: 30_000 });
    // Readings the old threshold let through may still be on their way before the first hot one; none after it.
    expect(sinceFirstHot().map((r) => r.temperature).filter((t) => t <= 35)).toEqual([]);
  });

  it('refuses a twin value it cannot use, reports why and keeps the old one', async () => {
    await service.updateTwin(EDGE, 'sensor', { properties: { desired: { sendIntervalSeconds: 'fast' } } });
    await eventually(async () => {
      const r = ((await service.getTwin(EDGE, 'sensor')) as { properties: { reported: { rejected?: Record<string, string>; applied?: { sendIntervalSeconds?: number } } } }).properties.reported;
      return r.rejected?.['sendIntervalSeconds'] !== undefined && r.applied?.sendIntervalSeconds === 0.1;
    }, { timeoutMs: 20_000 });
  });
});
