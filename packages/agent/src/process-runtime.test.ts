import { spawn } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { FakeClock } from '@kedge/contracts';
import { EdgeDeploymentSpecSchema, type ModuleSpec } from '@kedge/manifest';
import { eventually } from '@kedge/testing';
import { AgentMethods } from './methods.js';
import { describeModuleRuntime, type ModuleBehaviour } from './module-runtime.contract.js';
import { isAlive, processStartTime } from './process-state.js';
import { ProcessRuntime, type ProcessRuntimeOptions } from './process-runtime.js';
import { BACKOFF_MAX_MS, HEALTHY_RESET_MS, MAX_RESTART_COUNT } from './restart-policy.js';

const log = pino({ level: 'silent' });

/** A module whose process form runs `node -e script` (real child processes). */
function nodeModule(script: string, overrides: Partial<ModuleSpec> = {}): ModuleSpec {
  return {
    type: 'docker',
    status: 'running',
    restartPolicy: 'always',
    imagePullPolicy: 'on-create',
    env: {},
    settings: { image: 'kedge/test:1', createOptions: {} },
    process: { command: process.execPath, args: ['-e', script], env: {} },
    ...overrides,
  };
}

const behave = (b: ModuleBehaviour): string =>
  b.kind === 'exit'
    ? `process.exit(${b.exitCode})`
    : `${JSON.stringify(b.lines ?? [])}.forEach((l) => console.log(l)); setInterval(() => {}, 1 << 30);`;

async function newRuntime(extra: Partial<ProcessRuntimeOptions> = {}): Promise<{ runtime: ProcessRuntime; dir: string }> {
  const dir = extra.stateDir ?? (await mkdtemp(join(tmpdir(), 'kedge-proc-')));
  const runtime = new ProcessRuntime({ stateDir: dir, deviceId: 'dev1', log, stopGraceMs: 2000, ...extra });
  await runtime.start();
  return { runtime, dir };
}

describeModuleRuntime(
  'process',
  async () => {
    const { runtime, dir } = await newRuntime();
    return {
      runtime,
      module: (b, overrides) => nodeModule(behave(b), overrides),
      cleanup: async () => {
        await runtime.stop();
        await rm(dir, { recursive: true, force: true });
      },
    };
  },
  { describe, it },
);

const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});
async function harness(extra: Partial<ProcessRuntimeOptions> = {}) {
  const r = await newRuntime(extra);
  cleanups.push(async () => {
    await r.runtime.stop();
    await rm(r.dir, { recursive: true, force: true });
  });
  return r;
}
const deploy = (modules: Record<string, ModuleSpec>) => EdgeDeploymentSpecSchema.parse({ deviceId: 'dev1', modules });

describe('ProcessRuntime: IoT Edge restart policy and back-off (fake clock, real processes)', () => {
  it('restarts a crash-looping module after min(10·2ⁿ, 300) s, counting restarts and exit times, and gives up after 20', async () => {
    const clock = new FakeClock(Date.parse('2026-01-01T00:00:00Z'));
    const { runtime } = await harness({ clock });
    await runtime.apply(deploy({ crasher: nodeModule('process.exit(2)') }));
    const st = () => runtime.snapshot().status?.modules?.['crasher'];
    const delays: number[] = [];
    for (let n = 0; n < MAX_RESTART_COUNT; n++) {
      await eventually(() => st()?.runtimeStatus === 'backoff' && st()?.restartCount === n, { message: `back-off ${n}` });
      expect(st()).toMatchObject({ exitCode: 2, lastExitTimeUtc: new Date(clock.now()).toISOString() });
      const due = clock.nextDue();
      expect(due).toBeDefined();
      delays.push((due ?? 0) - clock.now());
      clock.advance((due ?? 0) - clock.now() - 1);
      expect(st()?.runtimeStatus).toBe('backoff');
      clock.advance(1);
    }
    expect(delays.slice(0, 7)).toEqual([10_000, 20_000, 40_000, 80_000, 160_000, 300_000, 300_000]);
    expect(Math.max(...delays)).toBe(BACKOFF_MAX_MS);
    await eventually(() => st()?.runtimeStatus === 'failed', { message: 'gave up' });
    expect(st()).toMatchObject({ restartCount: MAX_RESTART_COUNT, exitCode: 2 });
    expect(st()?.description).toMatch(/^Failed: restarted 20 times/);
  });

  it('clears the restart count after 10 healthy minutes', async () => {
    const clock = new FakeClock(Date.parse('2026-01-01T00:00:00Z'));
    const { runtime, dir } = await harness({ clock });
    const marker = join(dir, 'healthy');
    await runtime.apply(deploy({ flaky: nodeModule(`if (!require('fs').existsSync(${JSON.stringify(marker)})) process.exit(1); setInterval(() => {}, 1 << 30);`) }));
    const st = () => runtime.snapshot().status?.modules?.['flaky'];
    await eventually(() => st()?.runtimeStatus === 'backoff');
    clock.advance(10_000);
    await eventually(() => st()?.runtimeStatus === 'backoff' && st()?.restartCount === 1);
    await writeFile(marker, '');
    clock.advance(20_000);
    await eventually(() => st()?.runtimeStatus === 'running' && st()?.restartCount === 2);
    clock.advance(HEALTHY_RESET_MS - 1);
    expect(st()?.restartCount).toBe(2);
    clock.advance(1);
    expect(st()).toMatchObject({ runtimeStatus: 'running', restartCount: 0 });
  });

  it('does not restart a clean exit under on-failure (stopped), but does restart a failure', async () => {
    const { runtime } = await harness();
    await runtime.apply(deploy({ clean: nodeModule('process.exit(0)', { restartPolicy: 'on-failure' }), dirty: nodeModule('process.exit(5)', { restartPolicy: 'on-failure' }) }));
    await eventually(() => runtime.snapshot().status?.modules?.['clean']?.runtimeStatus === 'stopped' && runtime.snapshot().status?.modules?.['dirty']?.runtimeStatus === 'backoff');
    expect(runtime.snapshot().status?.modules?.['clean']).toMatchObject({ exitCode: 0, description: 'Exited with code 0; not restarted (restartPolicy: on-failure) until the module changes' });
  });

  it('reports a command that cannot be started as a failure in back-off', async () => {
    const { runtime } = await harness();
    await runtime.apply(deploy({ missing: { ...nodeModule(''), process: { command: join(tmpdir(), 'no-such-command-kedge'), args: [], env: {} } } }));
    await eventually(() => runtime.snapshot().status?.modules?.['missing']?.runtimeStatus === 'backoff');
    expect(runtime.snapshot().status?.modules?.['missing']).toMatchObject({ exitCode: 127, description: expect.stringMatching(/Could not start .*ENOENT/) as unknown });
  });

  it('reports a module without a process form as failed and runs the others', async () => {
    const { runtime } = await harness();
    const { process: _p, ...imageOnly } = nodeModule('');
    await runtime.apply(deploy({ image: imageOnly, up: nodeModule(behave({ kind: 'stay-up' })) }));
    await eventually(() => runtime.snapshot().status?.modules?.['up']?.runtimeStatus === 'running');
    expect(runtime.snapshot().status?.modules?.['image']).toMatchObject({ runtimeStatus: 'failed', description: 'No process form: the process runtime needs settings.processOptions' });
  });
});

describe('ProcessRuntime: processes', () => {
  it("gives a module a container's environment (IOTEDGE_*), its env and process env, and nothing else of the agent's", async () => {
    const { runtime } = await harness({ hubHostName: 'hub.example', gatewayHostName: '127.0.0.1', baseEnv: { PATH: process.env['PATH'] ?? '', SECRET_OF_AGENT: 'x' }, moduleEnv: () => Promise.resolve({ EdgeHubConnectionString: 'HostName=h;DeviceId=dev1;ModuleId=envy;SharedAccessKey=k' }) });
    const names = ['IOTEDGE_DEVICEID', 'IOTEDGE_MODULEID', 'IOTEDGE_IOTHUBHOSTNAME', 'IOTEDGE_GATEWAYHOSTNAME', 'IOTEDGE_AUTHSCHEME', 'EdgeHubConnectionString', 'FROM_MANIFEST', 'FROM_PROCESS', 'SECRET_OF_AGENT'];
    const script = `console.log(JSON.stringify(Object.fromEntries(${JSON.stringify(names)}.map((n) => [n, process.env[n] ?? null])))); setInterval(() => {}, 1 << 30);`;
    await runtime.apply(deploy({ envy: { ...nodeModule(script), env: { FROM_MANIFEST: { value: 'm' } }, process: { command: process.execPath, args: ['-e', script], env: { FROM_PROCESS: 'p' } } } }));
    const lines = await eventually(async () => {
      const l = await runtime.logs('envy', {});
      return l.length > 0 && l;
    });
    expect(JSON.parse(lines[0]?.text ?? '')).toEqual({
      IOTEDGE_DEVICEID: 'dev1', IOTEDGE_MODULEID: 'envy', IOTEDGE_IOTHUBHOSTNAME: 'hub.example', IOTEDGE_GATEWAYHOSTNAME: '127.0.0.1', IOTEDGE_AUTHSCHEME: 'sasToken',
      EdgeHubConnectionString: 'HostName=h;DeviceId=dev1;ModuleId=envy;SharedAccessKey=k', FROM_MANIFEST: 'm', FROM_PROCESS: 'p', SECRET_OF_AGENT: null,
    });
  });

  it('stops a module that ignores SIGTERM with SIGKILL after the grace period, and what it started with it', async () => {
    const clock = new FakeClock(Date.parse('2026-01-01T00:00:00Z'));
    const { runtime } = await harness({ clock, stopGraceMs: 5000 });
    // The module ignores SIGTERM and starts a grandchild in its process group; it prints both pids.
    const script = `process.on('SIGTERM', () => console.log('term')); const c = require('child_process').spawn(process.execPath, ['-e', 'setInterval(() => {}, 1 << 30)'], { stdio: 'ignore' }); console.log(process.pid + ' ' + c.pid); setInterval(() => {}, 1 << 30);`;
    await runtime.apply(deploy({ stubborn: nodeModule(script) }));
    const pids = await eventually(async () => {
      const l = (await runtime.logs('stubborn', {}))[0]?.text;
      return l !== undefined && l.split(' ').map(Number);
    });
    expect(pids.every(isAlive)).toBe(true);
    clock.advance(1000); // available: its timer is not the one looked for below
    const stopped = runtime.apply(deploy({}));
    // SIGTERM sent: the only timer due soon is the SIGKILL one, 5 s out.
    await eventually(() => clock.nextDue() === clock.now() + 5000, { message: 'SIGKILL scheduled' });
    expect(isAlive(pids[0] ?? 0)).toBe(true);
    clock.advance(5000);
    await stopped;
    await eventually(() => pids.every((p) => !isAlive(p)), { message: 'module and grandchild killed' });
  });

  it('RestartModule and GetModuleLogs work on processes through the agent methods', async () => {
    const { runtime } = await harness();
    const methods = new AgentMethods({ runtime, log });
    await runtime.apply(deploy({ sensor: nodeModule(behave({ kind: 'stay-up', lines: ['<6> starting sensor', '<4> temperature high', '<6> temperature 21.5'] }), { version: '1.0' }) }));
    await eventually(async () => (await runtime.logs('sensor', {})).length === 3);
    const text = await methods.handle({ name: 'GetModuleLogs', payload: { schemaVersion: '1.0', items: [{ id: '^sensor$', filter: { tail: 2 } }], encoding: 'none', contentType: 'text' }, rid: '1' });
    expect(text).toEqual({ status: 200, payload: [{ id: 'sensor', payload: '<4> temperature high\n<6> temperature 21.5\n' }] });
    const warn = await methods.handle({ name: 'GetModuleLogs', payload: { schemaVersion: '1.0', items: [{ id: 'sens', filter: { loglevel: 4 } }], contentType: 'json' }, rid: '2' });
    expect(warn).toMatchObject({ status: 200, payload: [{ id: 'sensor', payload: [{ moduleId: 'sensor', logLevel: 4, text: '<4> temperature high', timeStamp: expect.any(String) as unknown }] }] });
    const first = runtime.snapshot().status?.modules?.['sensor']?.lastStartTimeUtc;
    const pidLine = async () => (await runtime.logs('sensor', {})).length;
    expect(await pidLine()).toBe(3);
    expect(await methods.handle({ name: 'restartModule', payload: { schemaVersion: '1.0', id: 'sensor' }, rid: '3' })).toEqual({ status: 200, payload: null });
    // The new process prints its lines again after the old ones.
    await eventually(async () => (await pidLine()) === 6 && runtime.snapshot().status?.modules?.['sensor']?.runtimeStatus === 'running');
    expect(runtime.snapshot().status?.modules?.['sensor']?.restartCount).toBe(0);
    expect(Date.parse(runtime.snapshot().status?.modules?.['sensor']?.lastStartTimeUtc ?? '')).toBeGreaterThanOrEqual(Date.parse(first ?? ''));
    expect(await methods.handle({ name: 'RestartModule', payload: { schemaVersion: '1.0', id: 'nope' }, rid: '4' })).toEqual({ status: 400, payload: { message: "Module 'nope' is not part of the current deployment" } });
  });

  it('keeps logs bounded per module', async () => {
    const { runtime } = await harness({ logBytesPerModule: 10_000 });
    await runtime.apply(deploy({ chatty: nodeModule(`for (let i = 0; i < 5000; i++) console.log('line ' + i); setInterval(() => {}, 1 << 30);`) }));
    await eventually(async () => (await runtime.logs('chatty', { tail: 1 }))[0]?.text === 'line 4999');
    const all = await runtime.logs('chatty', {});
    expect(all.length).toBeLessThan(1000);
    expect(all.reduce((n, l) => n + l.text.length, 0)).toBeLessThanOrEqual(10_000);
  });

  it('runs the last deployment again from the state directory after a restart', async () => {
    const { runtime, dir } = await harness();
    await runtime.apply(deploy({ sensor: nodeModule(behave({ kind: 'stay-up' }), { version: '7' }) }));
    await eventually(() => runtime.snapshot().status?.modules?.['sensor']?.runtimeStatus === 'running');
    await runtime.stop();
    const again = new ProcessRuntime({ stateDir: dir, deviceId: 'dev1', log });
    cleanups.push(() => again.stop());
    await again.start();
    expect(again.snapshot().generation).toBe(1);
    await eventually(() => again.snapshot().status?.modules?.['sensor']?.runtimeStatus === 'running');
    expect(again.snapshot().status?.modules?.['sensor']?.version).toBe('7');
  });

  it('on start, stops the children a crashed agent recorded, and leaves a reused pid alone', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'kedge-proc-'));
    cleanups.push(() => rm(dir, { recursive: true, force: true }));
    // What a crashed agent leaves: a module process in its own group, recorded in pids.json.
    const orphan = spawn(process.execPath, ['-e', 'setInterval(() => {}, 1 << 30)'], { detached: true, stdio: 'ignore' });
    const other = spawn(process.execPath, ['-e', 'setInterval(() => {}, 1 << 30)'], { detached: true, stdio: 'ignore' });
    cleanups.push(async () => {
      other.kill('SIGKILL');
      orphan.kill('SIGKILL');
      await Promise.resolve();
    });
    await eventually(() => processStartTime(orphan.pid ?? 0) !== undefined && processStartTime(other.pid ?? 0) !== undefined);
    await writeFile(join(dir, 'pids.json'), JSON.stringify({ children: [
      { module: 'sensor', pid: orphan.pid, startTime: processStartTime(orphan.pid ?? 0) },
      // Same pid as a live process, but another start time: not ours.
      { module: 'filter', pid: other.pid, startTime: '1' },
    ] }));
    const exited = new Promise((resolve) => orphan.once('exit', resolve));
    const { runtime } = await newRuntime({ stateDir: dir });
    cleanups.push(() => runtime.stop());
    await exited;
    expect(isAlive(other.pid ?? 0)).toBe(true);
  });
});
