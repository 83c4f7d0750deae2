/**
 * End to end, as a user runs it: `kedge dev up` (the built CLI, as a child process) in a temp state dir brings up a
 * hub, an edge device whose agent runs the edge hub and the samples as processes; filtered telemetry reaches the
 * hub; a twin change of the filter changes what arrives; status shows the modules with versions; a killed module is
 * restarted with back-off and reported; with the hub stopped the edge keeps working and buffers, and after the hub
 * is back everything buffered arrives; `kedge dev down` leaves no process, port or file.
 */
import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { HubClient } from '@kedge/hub';
import type { TelemetryMessage } from '@kedge/hub';
import { eventually } from '@kedge/testing';
import { readDevState } from './state.js';
import type { DevState } from './state.js';

const ROOT = fileURLToPath(new URL('../../../../../', import.meta.url));
const CLI = join(ROOT, 'packages', 'cli', 'dist', 'main.js');
const DEVICE = 'e2e-device';

function canListen(host: string, port: number): Promise<boolean> {
  return new Promise((done) => {
    const s = createServer();
    s.once('error', () => done(false));
    s.listen({ host, port, exclusive: true }, () => s.close(() => done(true)));
  });
}

/** A loopback address whose 8883 is free: the edge hub listens there (modules dial 8883 of their gateway). */
async function freeEdgeHost(): Promise<string> {
  const start = Math.floor(Math.random() * 200);
  for (let i = 0; i < 200; i++) {
    const host = `127.0.60.${((start + i) % 200) + 2}`;
    if (await canListen(host, 8883)) return host;
  }
  throw new Error('no free loopback address for the edge hub');
}

interface Run {
  code: number;
  out: string;
  err: string;
}

const isAlive = (pid: number): boolean => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

type Reading = { temperature: number; sequence: number; timeCreated: string };
type Reported = { runtimeStatus?: string; version?: string; restartCount?: number; lastStartTimeUtc?: string; lastExitTimeUtc?: string };

describe('kedge dev up … down, end to end', () => {
  const stateDir = join(mkdtempSync(join(tmpdir(), 'kedge-dev-e2e-')), 'state');
  let edgeHost = '';
  let state: DevState;
  let client: HubClient;
  const received: TelemetryMessage[] = [];
  const ac = new AbortController();
  let sensorModule: { temperatureAt: (settings: { temperatureMin: number; temperatureMax: number; steps: number }, sequence: number) => number };

  const kedge = (...args: string[]): Promise<Run> =>
    new Promise((done) => {
      execFile(process.execPath, [CLI, ...args], { env: { ...process.env, KEDGE_DEV_STATE_DIR: stateDir, NO_COLOR: '1' }, timeout: 180_000 }, (error, stdout, stderr) => {
        done({ code: error ? (typeof error.code === 'number' ? error.code : 1) : 0, out: stdout, err: stderr });
      });
    });
  const expectReadable = (r: Run): void => {
    // The terminal stays readable: no pino JSON lines, no stack traces.
    expect(r.err).not.toMatch(/^\{"level"/m);
    expect(`${r.out}${r.err}`).not.toMatch(/^\s+at .+:\d+:\d+\)?$/m);
  };
  const readings = (): Array<TelemetryMessage & { body: Reading }> =>
    received.filter((m) => m.moduleId === 'filter' && m.properties['MessageType'] !== 'Alert') as Array<TelemetryMessage & { body: Reading }>;
  const reported = async (): Promise<{ systemModules?: Record<string, Reported>; modules?: Record<string, Reported> }> =>
    ((await client.getTwin(DEVICE, '$edgeAgent')) as { properties: { reported: { systemModules?: Record<string, Reported>; modules?: Record<string, Reported> } } }).properties.reported;
  const modulePids = (): Map<string, number> => {
    const v = JSON.parse(readFileSync(join(stateDir, 'agent', 'pids.json'), 'utf8')) as { children: Array<{ module: string; pid: number }> };
    return new Map(v.children.map((c) => [c.module, c.pid]));
  };

  beforeAll(async () => {
    // The test runs the built CLI, as a user does (`npm test` builds first).
    if (!existsSync(CLI)) throw new Error(`${CLI} is missing: run \`npx tsc -b\` first`);
    edgeHost = await freeEdgeHost();
    sensorModule = (await import(pathToFileURL(join(ROOT, 'samples', 'simulated-temperature-sensor', 'index.mjs')).href)) as typeof sensorModule;
  });

  afterAll(async () => {
    ac.abort();
    // A failed test must not leave processes behind either.
    if (readDevState(stateDir)) await kedge('dev', 'down', '--state-dir', stateDir);
  }, 60_000);

  it('brings everything up with one command, readable progress, and telemetry arriving', async () => {
    const r = await kedge('dev', 'up', '--state-dir', stateDir, '--device', DEVICE, '--hub-port', '0', '--edge-host', edgeHost, '--timeout', '90');
    expect(r.err, r.err).toContain('✓ telemetry');
    expect(r.code).toBe(0);
    expectReadable(r);
    expect(r.out).toContain(`kedge monitor ${DEVICE}`);
    const s = readDevState(stateDir);
    if (!s?.hub) throw new Error('no dev state');
    state = s;
    client = new HubClient({ connectionString: readFileSync(s.hub.connectionStringFile, 'utf8').trim(), ca: readFileSync(s.hub.caFile, 'utf8'), port: s.hub.servicePort });
    // A monitor that reconnects after the hub went away, resuming at the next offset.
    void (async () => {
      let next = 0;
      while (!ac.signal.aborted) {
        try {
          for await (const m of client.monitor({ deviceId: DEVICE, from: next, signal: ac.signal })) {
            received.push(m);
            next = m.offset + 1;
          }
        } catch {
          // the hub is away: try again
        }
        await new Promise((res) => setTimeout(res, 250));
      }
    })();
    await eventually(() => readings().length >= 3, { timeoutMs: 60_000 });
    expect(readings().every((m) => m.body.temperature > 30)).toBe(true);
  }, 240_000);

  it('a twin change of the filter (threshold 35) visibly changes what arrives; kedge commands find the dev hub by themselves', async () => {
    // Faster readings keep the rest of the test short; the sweep stays 20..40.
    expect((await kedge('twin', 'update', DEVICE, '--module', 'sensor', '--desired', '{"sendIntervalSeconds":0.2}')).code).toBe(0);
    const r = await kedge('twin', 'update', DEVICE, '--module', 'filter', '--desired', '{"temperatureThreshold":35}');
    expect(r.code, r.err).toBe(0);
    const before = readings().length;
    const sinceFirstHot = (): Reading[] => {
      const after = readings().slice(before).map((m) => m.body);
      const first = after.findIndex((x) => x.temperature > 35);
      return first < 0 ? [] : after.slice(first);
    };
    await eventually(() => sinceFirstHot().length >= 5, { timeoutMs: 60_000 });
    expect(sinceFirstHot().filter((x) => x.temperature <= 35)).toEqual([]);
    const m = await kedge('monitor', DEVICE, '--count', '1', '--from', 'end');
    expect(m.code, m.err).toBe(0);
    expect(m.out).toMatch(new RegExp(`^\\d\\d:\\d\\d:\\d\\d\\S*  ${DEVICE}/filter  \\{`));
  }, 120_000);

  it('status shows the hub, the device and the modules running with their versions', async () => {
    const r = await kedge('dev', 'status', '--state-dir', stateDir);
    expect(r.code, r.err).toBe(0);
    expect(r.out).toMatch(/^hub\s+running/m);
    expect(r.out).toMatch(/^filter\s+running\s+1\.0/m);
    expect(r.out).toMatch(/^sensor\s+running\s+1\.0/m);
    expect(r.out).toMatch(/^edgeHub\s+running/m);
    const j = JSON.parse((await kedge('dev', 'status', '--state-dir', stateDir, '--json')).out) as { rows: Array<{ component: string; status: string; version?: string }> };
    expect(j.rows.find((x) => x.component === 'sensor')).toMatchObject({ status: 'running', version: '1.0' });
  }, 60_000);

  it('restarts a killed module with back-off and reports it', async () => {
    const pid = modulePids().get('sensor');
    expect(pid).toBeDefined();
    const restarts = (await reported()).modules?.['sensor']?.restartCount ?? 0;
    const killedAt = Date.now();
    process.kill(pid ?? 0, 'SIGKILL');
    const sensor = await eventually(
      async () => {
        const s = (await reported()).modules?.['sensor'];
        const now = modulePids().get('sensor');
        return s?.runtimeStatus === 'running' && (s.restartCount ?? 0) > restarts && now !== undefined && now !== pid ? s : false;
      },
      { timeoutMs: 90_000 },
    );
    expect(Date.parse(sensor.lastExitTimeUtc ?? '')).toBeGreaterThanOrEqual(killedAt - 1000);
    // IoT Edge's back-off: the first restart waits min(10·2⁰, 300) = 10 s after the exit.
    expect(Date.parse(sensor.lastStartTimeUtc ?? '') - Date.parse(sensor.lastExitTimeUtc ?? '')).toBeGreaterThanOrEqual(9_000);
  }, 120_000);

  it('keeps working and buffers while the hub is stopped; everything buffered arrives once it is back', async () => {
    const sensorStart = Date.parse((await reported()).modules?.['sensor']?.lastStartTimeUtc ?? '');
    const stop = await kedge('dev', 'stop', 'hub', '--state-dir', stateDir);
    expect(stop.code, stop.err).toBe(0);
    expectReadable(stop);
    const stoppedAt = Date.now();
    // A 12 s outage (the scenario, not a synchronisation: nothing is awaited by it): at 5 readings a second the sensor
    // sweeps 20..40 more than once, so the filter forwards hot readings while the hub is away.
    await new Promise((r) => setTimeout(r, 12_000));
    for (const [, p] of modulePids()) expect(isAlive(p)).toBe(true);
    const start = await kedge('dev', 'start', 'hub', '--state-dir', stateDir);
    expect(start.code, start.err).toBe(0);
    const restartedAt = Date.now();
    // Fresh readings arrive (made after the restart) …
    await eventually(() => readings().some((m) => Date.parse(m.body.timeCreated) > restartedAt + 2_000), { timeoutMs: 90_000 });
    // … and so did every hot reading made while the hub was away: no sequence the filter forwards is missing.
    const since = readings().filter((m) => Date.parse(m.body.timeCreated) >= sensorStart);
    const seqs = new Set(since.map((m) => m.body.sequence));
    const lo = Math.min(...seqs);
    const hi = Math.max(...seqs);
    const settings = { temperatureMin: 20, temperatureMax: 40, steps: 20 };
    const expected: number[] = [];
    for (let s = lo; s <= hi; s++) if (sensorModule.temperatureAt(settings, s) > 35) expected.push(s);
    expect([...seqs].sort((a, b) => a - b)).toEqual(expected);
    expect(since.some((m) => Date.parse(m.body.timeCreated) > stoppedAt && Date.parse(m.body.timeCreated) < restartedAt)).toBe(true);
  }, 240_000);

  it('kedge dev down leaves no process, port or file behind', async () => {
    const pids = [...state.processes.map((p) => p.pid), ...(readDevState(stateDir)?.processes.map((p) => p.pid) ?? []), ...modulePids().values()];
    const r = await kedge('dev', 'down', '--state-dir', stateDir);
    expect(r.code, r.err).toBe(0);
    expectReadable(r);
    for (const pid of pids) expect(isAlive(pid), `pid ${pid}`).toBe(false);
    expect(await canListen('127.0.0.1', state.hub?.servicePort ?? 0)).toBe(true);
    expect(await canListen('127.0.0.1', state.hub?.mqttPort ?? 0)).toBe(true);
    expect(await canListen(edgeHost, 8883)).toBe(true);
    expect(existsSync(stateDir)).toBe(false);
  }, 120_000);
});
