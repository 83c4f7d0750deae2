import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { Command } from 'commander';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { HubClient, startHub, type RunningHub } from '@kedge/hub';
import { IotHubClient, type MethodRequest, type MethodResponse } from '@kedge/iothub-client';
import { captureOutput } from '../test-support/capture.js';
import { eventually } from '@kedge/testing';
import { EdgeExit, newLines, registerEdgeCommands } from './edge.js';

// `kedge edge …` against a real hub. The device side is a real MQTT client connected as the device's $edgeAgent:
// it reports what an agent reports and answers GetModuleLogs/RestartModule the way the agent does (the agent's own
// answers are covered by packages/agent's tests against the real control plane).

const dir = mkdtempSync(join(tmpdir(), 'kedge-edge-cli-'));
const DEVICE = 'edge-cli-1';
let hub: RunningHub;
let service: HubClient;
let agent: IotHubClient | undefined;
let servicePort = '';
const calls: MethodRequest[] = [];
const nowS = (): number => Math.floor(Date.now() / 1000);
const sensorLog = [
  { t: nowS(), text: '<6> one' },
  { t: nowS(), text: '<4> two' },
];
const captured = captureOutput();

const reported = {
  schemaVersion: '1.1',
  systemModules: {
    edgeAgent: { runtimeStatus: 'running', settings: { image: 'kedge/agent:0.1' }, lastStartTimeUtc: '2026-12-01T10:00:00Z' },
    edgeHub: { runtimeStatus: 'running', version: '1.0', restartCount: 0, settings: { image: 'kedge/edge-hub:0.1' }, lastStartTimeUtc: '2026-12-01T10:00:01Z' },
  },
  modules: {
    sensor: { runtimeStatus: 'backoff', version: '2.1', restartCount: 7, exitCode: 1, settings: { image: 'acme/sensor:2.1' }, lastStartTimeUtc: '2026-12-01T11:00:00Z', statusDescription: 'CrashLoopBackOff' },
  },
};

async function answer(req: MethodRequest): Promise<MethodResponse> {
  calls.push(req);
  const p = req.payload as { items?: Array<{ id: string }>; id?: string };
  if (req.name === 'GetModuleLogs') {
    const items = (p.items ?? []) as Array<{ id: string; filter?: { since?: string; tail?: number } }>;
    return Promise.resolve({
      status: 200,
      payload: items.filter((i) => new RegExp(i.id).test('sensor')).map((i) => {
        // Like the agent: `since` (unix seconds; other forms are not needed here) and `tail` narrow the module's lines.
        const since = /^\d+$/.test(i.filter?.since ?? '') ? Number(i.filter?.since) : 0;
        const lines = sensorLog.filter((l) => l.t >= since).map((l) => l.text);
        const text = (i.filter?.tail === undefined ? lines : lines.slice(-i.filter.tail)).map((l) => `${l}\n`).join('');
        return { id: 'sensor', payloadBytes: gzipSync(text).toString('base64') };
      }),
    });
  }
  if (req.name === 'RestartModule') {
    return Promise.resolve(p.id === 'sensor' ? { status: 200, payload: null } : { status: 400, payload: { message: `Module '${p.id ?? ''}' is not part of the current deployment` } });
  }
  return Promise.resolve({ status: 400, payload: { message: 'unknown' } });
}

async function connectAgent(): Promise<IotHubClient> {
  const m = (await service.getModule(DEVICE, '$edgeAgent')) as { authentication: { symmetricKey: { primaryKey: string } } };
  const c = new IotHubClient({ hostName: '127.0.0.1', deviceId: DEVICE, moduleId: '$edgeAgent', sharedAccessKey: m.authentication.symmetricKey.primaryKey, port: Number(new URL(hub.urls.mqtt).port), ca: hub.ca });
  c.onMethod(answer);
  await c.open();
  return c;
}

async function kedge(...args: string[]): Promise<number> {
  process.exitCode = undefined;
  const program = new Command('kedge').exitOverride();
  registerEdgeCommands(program);
  await program.parseAsync(['node', 'kedge', ...args, '--hub', hub.connectionString(), '--ca', join(dir, 'ca.pem'), '--port', servicePort]);
  return Number(process.exitCode ?? 0);
}

beforeAll(async () => {
  hub = await startHub({ dataDir: join(dir, 'data'), hostName: '127.0.0.1', service: { host: '127.0.0.1', port: 0 }, mqtt: { host: '127.0.0.1', port: 0 }, deployments: { resyncSeconds: 3600 }, logLevel: 'silent' });
  servicePort = new URL(hub.urls.service).port;
  writeFileSync(join(dir, 'ca.pem'), hub.ca);
  service = new HubClient({ connectionString: hub.connectionString(), ca: hub.ca, port: Number(servicePort) });
  await service.createDevice(DEVICE, { edge: true });
  await service.createDevice('silent-1', { edge: true });
  agent = await connectAgent();
  await agent.updateReported(reported);
});
afterAll(async () => {
  await agent?.close();
  await hub?.close();
});

describe('kedge edge', () => {
  it("list: the modules from $edgeAgent's reported properties, as a table or JSON", async () => {
    expect(await kedge('edge', 'list', DEVICE)).toBe(EdgeExit.Ok);
    expect(captured.out).toBe(
      [
        'NAME       STATUS   VERSION  RESTARTS  LAST START            IMAGE',
        'edgeAgent  running  -        -         2026-12-01T10:00:00Z  kedge/agent:0.1',
        'edgeHub    running  1.0      0         2026-12-01T10:00:01Z  kedge/edge-hub:0.1',
        'sensor     backoff  2.1      7         2026-12-01T11:00:00Z  acme/sensor:2.1',
        '',
      ].join('\n'),
    );
    expect(captured.err).toBe('');
    captured.reset();
    expect(await kedge('edge', 'list', DEVICE, '--json')).toBe(EdgeExit.Ok);
    expect(JSON.parse(captured.out)).toContainEqual({ name: 'sensor', status: 'backoff', version: '2.1', restartCount: 7, exitCode: 1, lastStartTimeUtc: '2026-12-01T11:00:00Z', description: 'CrashLoopBackOff', image: 'acme/sensor:2.1' });
  });

  it('list: a device that never reported fails (exit 1) and says what to check', async () => {
    expect(await kedge('edge', 'list', 'silent-1')).toBe(EdgeExit.Failed);
    expect(captured.err).toMatch(/^kedge: silent-1 has not reported any module yet: is its agent installed and connected\?/);
    captured.reset();
    expect(await kedge('edge', 'list', 'no-such-device')).toBe(EdgeExit.Failed);
    expect(captured.err).toBe('kedge: no-such-device is not an edge device of this hub (it has no $edgeAgent): see `kedge devices list`\n');
  });

  it("logs: GetModuleLogs with the module's exact name and the filter, gzip; prints the lines", async () => {
    calls.length = 0;
    expect(await kedge('edge', 'logs', DEVICE, 'sensor', '--tail', '2', '--since', '10m')).toBe(EdgeExit.Ok);
    expect(captured.out).toBe('<6> one\n<4> two\n');
    expect(calls).toHaveLength(1);
    expect(calls[0]).toMatchObject({ name: 'GetModuleLogs', payload: { schemaVersion: '1.0', items: [{ id: '^sensor$', filter: { tail: 2, since: '10m' } }], encoding: 'gzip', contentType: 'text' } });
    captured.reset();
    expect(await kedge('edge', 'logs', DEVICE, 'sens')).toBe(EdgeExit.Failed);
    expect(captured.err).toBe(`kedge: sens is not a module of ${DEVICE}'s deployment (see \`kedge edge list ${DEVICE}\`)\n`);
    captured.reset();
    expect(await kedge('edge', 'logs', DEVICE, 'sensor', '--tail', 'many')).toBe(EdgeExit.Usage);
    expect(await kedge('edge', 'logs', DEVICE, 'sensor', '--timeout', '1')).toBe(EdgeExit.Usage);
  });

  it("restart: RestartModule; the agent's refusal is exit 1 with its message", async () => {
    calls.length = 0;
    expect(await kedge('edge', 'restart', DEVICE, 'sensor')).toBe(EdgeExit.Ok);
    expect(captured.out).toBe(`restarted sensor on ${DEVICE}\n`);
    expect(calls[0]).toMatchObject({ name: 'RestartModule', payload: { schemaVersion: '1.0', id: 'sensor' } });
    captured.reset();
    expect(await kedge('edge', 'restart', DEVICE, 'nope')).toBe(EdgeExit.Failed);
    expect(captured.err).toBe("kedge: RestartModule failed (400): Module 'nope' is not part of the current deployment\n");
  });

  it('logs --follow: prints new lines as the agent has them, once each, until the device goes offline (exit 3)', async () => {
    const following = kedge('edge', 'logs', DEVICE, 'sensor', '--follow');
    await eventually(() => captured.out === '<6> one\n<4> two\n', { timeoutMs: 10_000 });
    sensorLog.push({ t: nowS(), text: '<6> three' });
    await eventually(() => captured.out === '<6> one\n<4> two\n<6> three\n', { timeoutMs: 10_000 });
    sensorLog.push({ t: nowS(), text: '<6> four' }, { t: nowS(), text: '<6> four' });
    await eventually(() => captured.out === '<6> one\n<4> two\n<6> three\n<6> four\n<6> four\n', { timeoutMs: 10_000 });
    await agent?.close();
    expect(await following).toBe(EdgeExit.Offline);
    expect(captured.err).toMatch(/^kedge: the agent of edge-cli-1 is not connected to the hub/);
    expect(await kedge('edge', 'logs', DEVICE, 'sensor', '--follow', '--until', '1h')).toBe(EdgeExit.Usage);
    agent = await connectAgent();
  });

  it('newLines drops the overlap of two polls, keeping repeated lines that are new', () => {
    expect(newLines(['a', 'b'], ['a', 'b', 'c'])).toEqual(['c']);
    expect(newLines(['a', 'b'], ['b', 'c'])).toEqual(['c']);
    expect(newLines(['a', 'b'], ['c', 'd'])).toEqual(['c', 'd']);
    expect(newLines(['a', 'b'], ['b'])).toEqual([]);
    expect(newLines(['x', 'a'], ['a', 'a'])).toEqual(['a']);
    expect(newLines([], ['a'])).toEqual(['a']);
  });

  it('an offline device: exit 3 with what to do; list still shows the last report, with a warning', async () => {
    await agent?.close();
    agent = undefined;
    expect(await kedge('edge', 'restart', DEVICE, 'sensor')).toBe(EdgeExit.Offline);
    expect(captured.err).toMatch(new RegExp(`^kedge: the agent of ${DEVICE} is not connected to the hub: check the device`));
    captured.reset();
    expect(await kedge('edge', 'logs', DEVICE, 'sensor')).toBe(EdgeExit.Offline);
    captured.reset();
    expect(await kedge('edge', 'list', DEVICE)).toBe(EdgeExit.Ok);
    expect(captured.out).toContain('sensor     backoff');
    expect(captured.err).toMatch(new RegExp(`^kedge: the agent of ${DEVICE} is not connected; this is what it reported`));
  });
});
