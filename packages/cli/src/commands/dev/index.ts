import { chmodSync, existsSync, mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { delimiter, join, relative, resolve } from 'node:path';
import { pathToFileURL, fileURLToPath } from 'node:url';
import type { Command } from 'commander';
import type { HubClient } from '@kedge/hub';
import { formatTable, Tone, useColor } from '../../output.js';
import type { Column } from '../../output.js';
import { UsageError, printJson, readDocument, run } from '../hub/common.js';
import { groupExists, isRunning, spawnDetached, stopGroup } from './processes.js';
import { STATE_FILE, defaultStateDir, readDevState } from './state.js';
import { ENDPOINTS_FILE } from '../hub/serve.js';
import type { DevProcess, DevState } from './state.js';

/** The Kedge checkout this CLI runs from (packages/cli/{src,dist}/commands/dev/ → the root). */
const ROOT = fileURLToPath(new URL('../../../../../', import.meta.url));
const CLI_MAIN = join(ROOT, 'packages', 'cli', 'dist', 'main.js');
const SAMPLES = join(ROOT, 'samples');
const DEFAULT_MANIFEST = join(ROOT, 'examples', 'dev-quickstart.json');
/** The edge hub's MQTT port: modules dial 8883 of their gateway host (the SDKs have no port for it). */
const EDGE_HUB_MQTT_PORT = 8883;
// Longer than the agent's own grace for its modules (10 s), so that it can stop them before it is killed.
const STOP_GRACE_MS = 15_000;

interface UpOptions {
  stateDir?: string;
  device: string;
  manifest?: string;
  hubPort: string;
  hubMqttPort: string;
  edgeHost: string;
  timeout: string;
  verbose?: boolean;
  json?: boolean;
}

const portArg = (v: string, flag: string): number => {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0 || n > 65535) throw new UsageError(`invalid ${flag} ${v}`);
  return n;
};

/** A step failed: what went wrong and what to do next (exit 1, one line per part, no stack trace). */
export class DevError extends Error {}

/** Prints a {@link DevError} as its lines (`kedge dev: …`), exit 1; everything else goes to `run`'s handling. */
function devAction<A extends unknown[]>(fn: (...args: A) => Promise<void>): (...args: A) => Promise<void> {
  return async (...args: A) => {
    try {
      await fn(...args);
    } catch (e) {
      if (!(e instanceof DevError)) throw e;
      process.stderr.write(`${e.message.split('\n').map((l) => `kedge dev: ${l}`).join('\n')}\n`);
      process.exitCode = 1;
    }
  };
}

/** Progress lines on stderr (stdout stays for `--json` and the summary). */
function progress(color: boolean): { ok(what: string, detail: string): void; wait(what: string): void; note(text: string): void } {
  const paint = (code: string, t: string): string => (color ? `\u001b[${code}m${t}\u001b[0m` : t);
  return {
    ok: (what, detail) => process.stderr.write(`  ${paint('32', '✓')} ${what.padEnd(12)} ${detail}\n`),
    wait: (what) => process.stderr.write(`  ${paint('2', '…')} ${what}\n`),
    note: (text) => process.stderr.write(`${text}\n`),
  };
}

/** True when `host:port` can be listened on now. */
function canListen(host: string, port: number): Promise<boolean> {
  return new Promise((done) => {
    const s = createServer();
    s.once('error', () => done(false));
    s.listen({ host, port, exclusive: true }, () => s.close(() => done(true)));
  });
}

/**
 * The last problems a process logged, readable: pino lines at warn or above as `msg: err`, other lines as they are
 * (`kedge: …` usage errors). For error messages that say why a step failed.
 */
export function logProblems(file: string, max = 3): string[] {
  let text = '';
  try {
    text = readFileSync(file, 'utf8');
  } catch {
    return [];
  }
  const out: string[] = [];
  for (const line of text.split('\n')) {
    const t = line.trim();
    if (t === '') continue;
    if (t.startsWith('{')) {
      try {
        const o = JSON.parse(t) as { level?: number; msg?: string; err?: unknown };
        if ((o.level ?? 0) < 40) continue;
        const err = typeof o.err === 'string' ? o.err : (o.err as { message?: string } | undefined)?.message;
        out.push(`${o.msg ?? ''}${err ? `: ${err}` : ''}`);
      } catch {
        out.push(t);
      }
    } else if (/^(error|kedge[\w -]*:|\w*Error\b)/i.test(t)) out.push(t);
  }
  return out.slice(-max);
}

/**
 * Waits for `fn` to return a value (not undefined) within `ms`; rejects with `why()` after it. Errors of `fn` count
 * as "not yet" (a file not written yet, a hub not answering yet), except a {@link DevError}, which ends the wait.
 */
async function until<T>(fn: () => Promise<T | undefined> | T | undefined, ms: number, why: () => string): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await (async () => fn())().catch((e: unknown) => {
      if (e instanceof DevError) throw new DevError(`${e.message}: ${why()}`);
      return undefined;
    });
    if (v !== undefined) return v;
    if (Date.now() >= end) throw new DevError(why());
    await new Promise((r) => setTimeout(r, 200));
  }
}

type Reported = { runtimeStatus?: string; version?: string; restartCount?: number; lastStartTimeUtc?: string; exitCode?: number; statusDescription?: string; description?: string };
type AgentReported = { systemModules?: Record<string, Reported>; modules?: Record<string, Reported>; version?: unknown };

/** The `$edgeAgent` reported properties of the device (module status as the agent reports it). */
async function agentReported(client: HubClient, deviceId: string): Promise<AgentReported> {
  const t = (await client.getTwin(deviceId, '$edgeAgent')) as { properties?: { reported?: AgentReported } };
  return t.properties?.reported ?? {};
}

/** Module rows of the agent's report: system modules first, then modules by name. */
function moduleRows(r: AgentReported): Array<{ name: string } & Reported> {
  const rows: Array<{ name: string } & Reported> = [];
  for (const [name, m] of Object.entries(r.systemModules ?? {})) if (name !== 'edgeAgent') rows.push({ name, ...m });
  for (const [name, m] of Object.entries(r.modules ?? {}).sort(([a], [b]) => a.localeCompare(b))) rows.push({ name, ...m });
  return rows;
}

/**
 * The last lines a module wrote, through the agent's `GetModuleLogs` direct method (the agent keeps module output;
 * nothing is in a file): why a module is not running. Empty when the agent does not answer.
 */
async function moduleLogTail(client: HubClient, deviceId: string, module: string, tail = 5): Promise<string[]> {
  try {
    const r = await client.invoke(deviceId, '$edgeAgent', 'GetModuleLogs', { schemaVersion: '1.0', items: [{ id: `^${module}$`, filter: { tail } }], encoding: 'none', contentType: 'text' }, 10);
    const items = Array.isArray(r.payload) ? (r.payload as Array<{ id?: unknown; payload?: unknown }>) : [];
    const text = items.map((i) => (typeof i.payload === 'string' ? i.payload : '')).join('\n');
    return text.split('\n').map((l) => l.trim()).filter((l) => l !== '' && !/^at /.test(l)).slice(-tail);
  } catch {
    return [];
  }
}

/** Opens the state dir's hub as a service client. */
async function devClient(state: DevState): Promise<HubClient> {
  if (!state.hub) throw new DevError('this dev environment has no hub yet');
  const { HubClient } = await import('@kedge/hub');
  return new HubClient({ connectionString: readFileSync(state.hub.connectionStringFile, 'utf8').trim(), ca: readFileSync(state.hub.caFile, 'utf8'), port: state.hub.servicePort });
}

/** The environment of processes `kedge dev` starts: ours, with the checkout's `kedge` first on PATH (modules run `kedge …`). */
function childEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, PATH: `${join(ROOT, 'node_modules', '.bin')}${delimiter}${process.env['PATH'] ?? ''}` };
  // The dev hub's owner credentials are for the CLI, not for the processes it starts.
  delete env['KEDGE_HUB_CONNECTION_STRING'];
  delete env['NODE_OPTIONS'];
  return env;
}

/**
 * The seam to the agent's process runtime: how `kedge dev up` starts the device's edge agent. The agent runs in the
 * state dir (modules' relative paths in examples/dev-quickstart.json are relative to it) with the device's
 * connection string from a 0600 file, and the hub's CA and ports.
 */
export function agentArgs(a: { stateDir: string; deviceCsFile: string; caFile: string; hubMqttPort: number; hubServicePort: number; edgeHost: string }): string[] {
  return [
    CLI_MAIN,
    'agent',
    'run',
    '--runtime',
    'process',
    '--state-dir',
    join(a.stateDir, 'agent'),
    '--hub-connection-string-file',
    a.deviceCsFile,
    '--hub-ca',
    a.caFile,
    '--hub-mqtt-port',
    String(a.hubMqttPort),
    '--hub-https-port',
    String(a.hubServicePort),
    '--gateway-host',
    a.edgeHost,
    // The edge hub makes its CA when it first starts (it starts first: startupOrder 0); modules trust it.
    '--module-ca',
    join(a.stateDir, 'edge-hub', 'tls', 'ca.pem'),
    '--metrics-port',
    '0',
  ];
}

/** The port of a URL, also when it is the scheme's default (`https://h` has port '' in WHATWG URLs). */
const urlPort = (url: string): number => {
  const u = new URL(url);
  return u.port !== '' ? Number(u.port) : u.protocol === 'https:' || u.protocol === 'wss:' ? 443 : u.protocol === 'http:' ? 80 : 8883;
};

/** The hub's command line: loopback, the state dir's data dir. */
function hubArgs(hubDir: string, port: number, mqttPort: number): string[] {
  rmSync(join(hubDir, ENDPOINTS_FILE), { force: true });
  return [CLI_MAIN, 'hub', '--data-dir', hubDir, '--host', '127.0.0.1', '--port', String(port), '--mqtt-port', String(mqttPort)];
}

/** Waits until the hub `p` listens (its endpoints.json names its pid); a clear error when it exits or times out. */
function hubListening(hubDir: string, p: DevProcess, timeoutMs: number, rel: (p: string) => string): Promise<{ pid: number; hostName: string; service: string; mqtt: string }> {
  return until(
    () => {
      if (!isRunning(p)) throw new DevError('the hub exited');
      const e = JSON.parse(readFileSync(join(hubDir, ENDPOINTS_FILE), 'utf8')) as { pid: number; hostName: string; service: string; mqtt: string };
      return e.pid === p.pid ? e : undefined;
    },
    timeoutMs,
    () => `the hub did not start: ${logProblems(p.log).join('; ') || 'no output'} (log: ${rel(p.log)})`,
  );
}

/**
 * `kedge dev stop hub` / `kedge dev start hub`: takes the hub away and brings it back on the same ports and data,
 * to watch the edge keep working offline and deliver what it buffered.
 */
async function stopStart(action: 'stop' | 'start', component: string, opts: { stateDir?: string; timeout: string }): Promise<void> {
  if (component !== 'hub') throw new UsageError(`only the hub can be stopped and started on its own (got ${component}); \`kedge dev down\` stops everything`);
  const dir = resolve(opts.stateDir ?? defaultStateDir());
  const state = readDevState(dir);
  if (!state?.hub) throw new UsageError(`nothing runs in ${dir}: start with \`npx kedge dev up\``);
  const say = progress(useColor(process.stderr));
  const current = state.processes.find((p) => p.name === 'hub');
  const others = state.processes.filter((p) => p.name !== 'hub');
  const save = (processes: DevProcess[]): void => writeFileSync(join(dir, STATE_FILE), `${JSON.stringify({ ...state, processes }, null, 2)}\n`, { mode: 0o600 });
  if (action === 'stop') {
    if (!current || !isRunning(current)) return say.note('kedge dev: the hub is not running');
    await stopGroup(current, STOP_GRACE_MS);
    save(others);
    say.ok('hub', `stopped (pid ${current.pid}); the edge keeps running and buffers: \`kedge dev start hub\` brings it back`);
    return;
  }
  if (current && isRunning(current)) return say.note(`kedge dev: the hub already runs (pid ${current.pid})`);
  const hubDir = join(dir, 'hub');
  const log = join(dir, 'logs', 'hub.log');
  const t = spawnDetached(process.execPath, hubArgs(hubDir, state.hub.servicePort, state.hub.mqttPort), { cwd: dir, env: childEnv(), logFile: log });
  const p: DevProcess = { name: 'hub', pid: t.pid, log, ...(t.startTime === undefined ? {} : { startTime: t.startTime }) };
  save([p, ...others]);
  const rel = (f: string): string => relative(process.cwd(), f) || '.';
  const e = await hubListening(hubDir, p, Number(opts.timeout) * 1000, rel);
  say.ok('hub', `${e.service}, pid ${p.pid}`);
}

/** `kedge dev up`. */
async function up(opts: UpOptions): Promise<void> {
  const color = useColor(process.stderr);
  const say = progress(color);
  const dir = resolve(opts.stateDir ?? defaultStateDir());
  const timeoutMs = Number(opts.timeout) * 1000;
  if (!Number.isFinite(timeoutMs) || timeoutMs <= 0) throw new UsageError(`invalid --timeout ${opts.timeout}`);
  const hubPort = portArg(opts.hubPort, '--hub-port');
  const hubMqttPort = portArg(opts.hubMqttPort, '--hub-mqtt-port');
  if (!/^[A-Za-z0-9._:-]{1,128}$/.test(opts.device)) throw new UsageError(`invalid --device ${opts.device}: letters, digits and . _ : - only`);
  if (!existsSync(CLI_MAIN)) throw new UsageError(`${CLI_MAIN} is missing: build first (npm run build)`);

  const previous = readDevState(dir);
  // `down` removes the state dir: never adopt a directory that holds something else.
  if (!previous && existsSync(dir) && readdirSync(dir).length > 0) throw new UsageError(`${dir} is not empty and not a kedge dev state dir: pick another --state-dir`);
  if (previous && previous.processes.some((p) => isRunning(p))) {
    throw new UsageError(`a dev environment already runs in ${dir}: see \`kedge dev status\`, or stop it with \`kedge dev down\``);
  }
  const manifestFile = resolve(opts.manifest ?? DEFAULT_MANIFEST);
  const manifest = await readDocument(manifestFile);
  if (!(await canListen(opts.edgeHost, EDGE_HUB_MQTT_PORT))) {
    throw new UsageError(`${opts.edgeHost}:${EDGE_HUB_MQTT_PORT} is taken: the edge hub listens there (modules dial 8883 of their gateway). Stop what uses it, or pick another loopback address with --edge-host 127.0.0.2`);
  }
  if (hubPort !== 0 && !(await canListen('127.0.0.1', hubPort))) throw new UsageError(`127.0.0.1:${hubPort} is taken: pick another port for the hub with --hub-port`);

  mkdirSync(join(dir, 'logs'), { recursive: true, mode: 0o700 });
  chmodSync(dir, 0o700);
  const rel = (p: string): string => (relative(process.cwd(), p).startsWith('..') ? p : relative(process.cwd(), p) || '.');
  say.note(`kedge dev: starting in ${rel(dir)}`);
  let state: DevState = { version: 1, deviceId: opts.device, processes: [], edgeHub: { mqttPort: EDGE_HUB_MQTT_PORT } };
  const save = (): void => writeFileSync(join(dir, STATE_FILE), `${JSON.stringify(state, null, 2)}\n`, { mode: 0o600 });
  const env = childEnv();
  const started: DevProcess[] = [];
  const startProcess = (name: string, args: string[]): DevProcess => {
    const log = join(dir, 'logs', `${name}.log`);
    if (opts.verbose === true) say.note(`    ${process.execPath} ${args.join(' ')} (log: ${rel(log)})`);
    const t = spawnDetached(process.execPath, args, { cwd: dir, env, logFile: log });
    const p: DevProcess = { name, pid: t.pid, log, ...(t.startTime === undefined ? {} : { startTime: t.startTime }) };
    started.push(p);
    state = { ...state, processes: [...started] };
    save();
    return p;
  };

  try {
    // 1. The hub (SQLite in the state dir), on loopback.
    const hubDir = join(dir, 'hub');
    const hubProc = startProcess('hub', hubArgs(hubDir, hubPort, hubMqttPort));
    const endpoints = await hubListening(hubDir, hubProc, timeoutMs, rel);
    state = {
      ...state,
      hub: {
        hostName: endpoints.hostName,
        servicePort: urlPort(endpoints.service),
        mqttPort: urlPort(endpoints.mqtt),
        caFile: join(hubDir, 'tls', 'ca.pem'),
        connectionStringFile: join(hubDir, 'iothubowner.connection-string'),
      },
    };
    save();
    const hub = state.hub;
    if (!hub) throw new DevError('internal: no hub state');
    say.ok('hub', `${endpoints.service} (SQLite in ${rel(hubDir)}), pid ${hubProc.pid}`);

    // 2. The edge device (kept across `dev up` runs when the state dir is kept).
    const client = await devClient(state);
    const { HubClientError } = await import('@kedge/hub');
    let device = (await client.getDevice(opts.device).catch((e: unknown) => {
      if (e instanceof HubClientError && e.code === 'CLOUD_ERR_DEVICE_NOT_FOUND') return undefined;
      throw e;
    })) as { authentication?: { symmetricKey?: { primaryKey?: string } } } | undefined;
    device ??= (await client.createDevice(opts.device, { edge: true })) as { authentication?: { symmetricKey?: { primaryKey?: string } } };
    const deviceCsFile = join(dir, 'device.connection-string');
    writeFileSync(deviceCsFile, `HostName=${hub.hostName};DeviceId=${opts.device};SharedAccessKey=${device.authentication?.symmetricKey?.primaryKey ?? ''}\n`, { mode: 0o600 });
    chmodSync(deviceCsFile, 0o600);
    say.ok('device', `${opts.device} (IoT Edge)`);

    // 3. The deployment, from the hub: the agent reads it from its twin as on any device.
    await client.applyContent(opts.device, manifest);
    say.ok('deployment', `${rel(manifestFile)} → ${opts.device}`);

    // 4. The edge agent on the process runtime: it starts the edge hub and the modules.
    const agentProc = startProcess('agent', agentArgs({ stateDir: dir, deviceCsFile, caFile: hub.caFile, hubMqttPort: hub.mqttPort, hubServicePort: hub.servicePort, edgeHost: opts.edgeHost }));
    say.ok('agent', `process runtime, pid ${agentProc.pid} (log: ${rel(agentProc.log)})`);

    // 5. Modules running, as the agent reports them to the hub.
    const want = ((): string[] => {
      const d = (manifest as { modulesContent?: { $edgeAgent?: { 'properties.desired'?: { modules?: Record<string, unknown> } } } }).modulesContent?.$edgeAgent?.['properties.desired'];
      return ['edgeHub', ...Object.keys(d?.modules ?? {})];
    })();
    say.wait(`waiting for ${want.join(', ')} (up to ${opts.timeout} s)`);
    const shown = new Set<string>();
    let last: AgentReported = {};
    const notRunningLogs = async (): Promise<string> => {
      const parts: string[] = [];
      for (const m of moduleRows(last).filter((r) => !shown.has(r.name) && r.runtimeStatus !== 'pending')) {
        const lines = await moduleLogTail(client, opts.device, m.name);
        if (lines.length > 0) parts.push(`${m.name} wrote: ${lines.join(' | ')}`);
      }
      return parts.join('\n');
    };
    await until(
      async () => {
        if (!isRunning(agentProc)) throw new DevError('the agent exited');
        last = await agentReported(client, opts.device);
        for (const m of moduleRows(last)) {
          if (m.runtimeStatus === 'running' && !shown.has(m.name)) {
            shown.add(m.name);
            say.ok(m.name, `running${m.version ? ` (version ${m.version})` : ''}`);
          }
        }
        return want.every((w) => shown.has(w)) ? true : undefined;
      },
      timeoutMs,
      () => {
        const waiting = moduleRows(last).filter((m) => !shown.has(m.name)).map((m) => `${m.name} ${m.runtimeStatus ?? 'unknown'}${m.statusDescription ?? m.description ? ` (${m.statusDescription ?? m.description})` : ''}`);
        const agentLog = isRunning(agentProc) ? '' : ` agent: ${logProblems(agentProc.log).join('; ')}`;
        return `modules not running after ${opts.timeout} s: ${waiting.join(', ') || want.filter((w) => !shown.has(w)).join(', ') + ' not reported yet'}.${agentLog} (logs: ${rel(join(dir, 'logs'))})`;
      },
    ).catch(async (e: unknown) => {
      const logs = e instanceof DevError ? await notRunningLogs() : '';
      throw logs === '' ? e : new DevError(`${(e as Error).message}\n${logs}`);
    });

    // 6. Telemetry reaching the hub through the routes.
    const t0 = Date.now();
    const ac = new AbortController();
    const first = await Promise.race([
      (async () => {
        for await (const m of client.monitor({ deviceId: opts.device, signal: ac.signal })) return m;
        return undefined;
      })(),
      new Promise<undefined>((r) => setTimeout(() => r(undefined), timeoutMs).unref()),
    ]).finally(() => ac.abort());
    if (!first) throw new DevError(`no telemetry from ${opts.device} reached the hub within ${opts.timeout} s (logs: ${rel(join(dir, 'logs'))})`);
    say.ok('telemetry', `arriving from ${first.moduleId ? `${opts.device}/${first.moduleId}` : opts.device} (${((Date.now() - t0) / 1000).toFixed(1)} s)`);
  } catch (e) {
    // Leave nothing running after a failed start; the logs and the state dir stay for a look.
    for (const p of [...started].reverse()) await stopGroup(p, STOP_GRACE_MS);
    await stopModulesLeftBehind(dir);
    state = { ...state, processes: [] };
    save();
    if (e instanceof DevError) {
      throw new DevError(`${e.message}\nkedge dev up stopped what it started; fix the cause and run \`kedge dev up\` again (\`kedge dev down\` removes ${rel(dir)})`);
    }
    throw e;
  }
  if (opts.json === true) {
    printJson(await statusOf(dir));
    return;
  }
  process.stdout.write(`\n${nextSteps(state.deviceId, dir)}`);
}

/** What to try next, for `up` and `status`. */
function nextSteps(deviceId: string, dir: string): string {
  const sd = resolve(dir) === defaultStateDir() ? '' : ` --state-dir ${dir}`;
  const env = sd === '' ? '' : `KEDGE_DEV_STATE_DIR=${dir} `;
  const lines: Array<[string, string]> = [
    [`${env}npx kedge monitor ${deviceId}`, 'live telemetry (Ctrl-C to stop)'],
    [`${env}npx kedge twin update ${deviceId} --module filter --desired '{"temperatureThreshold":35}'`, 'a new threshold'],
    [`npx kedge dev status${sd}`, 'hub, device and modules'],
    [`npx kedge dev stop hub${sd}`, 'the edge buffers; `dev start hub` delivers'],
    [`npx kedge dev down${sd}`, 'stop everything, remove the state dir'],
  ];
  const w = Math.max(...lines.map(([c]) => c.length));
  return ['Next:', ...lines.map(([c, what]) => `  ${c.padEnd(Math.min(w, 44))}   # ${what}`), ''].join('\n');
}

/** Children the agent's process runtime recorded (`agent/pids.json`) and left running, stopped by recorded pid. */
async function stopModulesLeftBehind(dir: string): Promise<number> {
  let records: Array<{ pid?: unknown; startTime?: unknown }> = [];
  try {
    const v = JSON.parse(readFileSync(join(dir, 'agent', 'pids.json'), 'utf8')) as { children?: unknown };
    if (Array.isArray(v.children)) records = v.children as Array<{ pid?: unknown; startTime?: unknown }>;
  } catch {
    return 0;
  }
  let n = 0;
  for (const r of records) {
    if (typeof r.pid !== 'number' || !Number.isInteger(r.pid) || r.pid <= 1) continue;
    const t = { pid: r.pid, ...(typeof r.startTime === 'string' ? { startTime: r.startTime } : {}) };
    if (isRunning(t) || groupExists(t.pid)) {
      await stopGroup(t, STOP_GRACE_MS);
      n++;
    }
  }
  return n;
}

/** `kedge dev down`. */
async function down(opts: { stateDir?: string; purge?: boolean }): Promise<void> {
  const dir = resolve(opts.stateDir ?? defaultStateDir());
  const state = readDevState(dir);
  if (!state) {
    if (existsSync(dir)) throw new UsageError(`${dir} is not a kedge dev state dir (no ${STATE_FILE}): nothing stopped, nothing removed`);
    process.stderr.write(`kedge dev: nothing runs in ${dir}\n`);
    return;
  }
  const say = progress(useColor(process.stderr));
  // The agent first (it stops its modules), then the hub: the edge never sees its hub vanish before it stops.
  const order = [...state.processes].sort((a, b) => (a.name === 'agent' ? -1 : b.name === 'agent' ? 1 : 0));
  for (const p of order) {
    const how = await stopGroup(p, STOP_GRACE_MS);
    say.ok(p.name, how === 'gone' ? 'was not running' : how === 'killed' ? `killed (pid ${p.pid}) after ${STOP_GRACE_MS / 1000} s` : `stopped (pid ${p.pid})`);
  }
  const leftovers = await stopModulesLeftBehind(dir);
  if (leftovers > 0) say.ok('modules', `${leftovers} left behind by the agent, stopped`);
  if (opts.purge === false) {
    writeFileSync(join(dir, STATE_FILE), `${JSON.stringify({ ...state, processes: [] }, null, 2)}\n`, { mode: 0o600 });
    say.note(`kedge dev: stopped; kept ${dir} (hub data, device identity, logs): \`kedge dev up\` resumes with them`);
    return;
  }
  rmSync(dir, { recursive: true, force: true });
  say.note(`kedge dev: stopped; removed ${dir}`);
}

interface StatusRow {
  component: string;
  status: string;
  version?: string;
  pid?: number;
  restarts?: number;
  details?: string;
}

/** What runs in a state dir: local processes, and the device's modules as its agent reports them to the hub. */
async function statusOf(dir: string): Promise<{ stateDir: string; deviceId?: string; hub?: DevState['hub'] & { reachable: boolean }; rows: StatusRow[] }> {
  const state = readDevState(dir);
  if (!state) return { stateDir: dir, rows: [] };
  const rows: StatusRow[] = [];
  const proc = (name: string): DevProcess | undefined => state.processes.find((p) => p.name === name);
  const hubProc = proc('hub');
  const hubUp = hubProc !== undefined && isRunning(hubProc);
  rows.push({ component: 'hub', status: hubUp ? 'running' : 'stopped', ...(hubUp && hubProc ? { pid: hubProc.pid } : {}), ...(state.hub ? { details: `https://${state.hub.hostName}:${state.hub.servicePort}` } : {}) });
  const agentProc = proc('agent');
  const agentUp = agentProc !== undefined && isRunning(agentProc);
  let reachable = false;
  let reported: AgentReported | undefined;
  let connection: string | undefined;
  if (hubUp && state.hub) {
    try {
      const client = await devClient(state);
      reported = await agentReported(client, state.deviceId);
      // The device connects through its $edgeAgent module (the edge hub and modules through their own identities).
      connection = ((await client.getModule(state.deviceId, '$edgeAgent')) as { connectionState?: string }).connectionState;
      reachable = true;
    } catch {
      reachable = false;
    }
  }
  rows.push({ component: `device ${state.deviceId}`, status: connection ?? (hubUp ? 'unknown' : 'hub down'), details: 'IoT Edge device ($edgeAgent connection)' });
  const agentVersion = (reported?.version as { version?: string } | undefined)?.version;
  rows.push({ component: 'edgeAgent', status: agentUp ? 'running' : 'stopped', ...(agentVersion ? { version: agentVersion } : {}), ...(agentUp && agentProc ? { pid: agentProc.pid } : {}), details: 'process runtime' });
  for (const m of moduleRows(reported ?? {})) {
    rows.push({
      component: m.name,
      status: agentUp ? (m.runtimeStatus ?? 'unknown') : 'stopped',
      ...(m.version ? { version: m.version } : {}),
      ...(m.restartCount !== undefined ? { restarts: m.restartCount } : {}),
      ...(m.statusDescription ?? m.description ? { details: m.statusDescription ?? m.description } : {}),
    });
  }
  return { stateDir: dir, deviceId: state.deviceId, ...(state.hub ? { hub: { ...state.hub, reachable } } : {}), rows };
}

const tone = (r: StatusRow): Tone | undefined => (r.status === 'running' || r.status === 'Connected' ? Tone.Good : ['stopped', 'failed', 'backoff', 'hub down', 'Disconnected'].includes(r.status) ? Tone.Bad : undefined);
const statusColumns: Column<StatusRow>[] = [
  { header: 'component', value: (r) => r.component },
  { header: 'status', value: (r) => r.status, tone },
  { header: 'version', value: (r) => r.version },
  { header: 'restarts', value: (r) => r.restarts },
  { header: 'pid', value: (r) => r.pid },
  { header: 'details', value: (r) => r.details },
];

/** `kedge dev status`. */
async function status(opts: { stateDir?: string; json?: boolean }): Promise<void> {
  const dir = resolve(opts.stateDir ?? defaultStateDir());
  const s = await statusOf(dir);
  if (opts.json === true) return printJson(s);
  if (!s.deviceId) {
    process.stdout.write(`nothing runs in ${dir}: start with \`npx kedge dev up\`\n`);
    process.exitCode = 1;
    return;
  }
  process.stdout.write(formatTable(s.rows, statusColumns, { color: useColor() }));
  if (s.hub && !s.hub.reachable) process.stdout.write(`\nthe hub does not answer: see ${join(dir, 'logs', 'hub.log')}\n`);
  process.stdout.write(`\n${nextSteps(s.deviceId, dir)}`);
}

/** The sample modules `kedge dev sample` runs (samples/<name>/index.mjs). */
const SAMPLE_NAMES = ['simulated-temperature-sensor', 'filter'] as const;

/**
 * Registers `kedge dev up | down | status` (and `dev sample <name>`, how the process runtime runs the samples from
 * this checkout without the manifest naming a path).
 */
export function registerDevCommands(program: Command): void {
  const dev = program
    .command('dev')
    .description('The whole system on this machine: a hub, an edge device whose agent runs the edge hub and the sample modules as local processes');
  dev
    .command('up')
    .description('Start a hub (SQLite), an edge device with its agent (process runtime), the edge hub and the samples, in the background')
    .option('--state-dir <dir>', 'where everything lives: data, pids, logs (default: ./.kedge-dev, or $KEDGE_DEV_STATE_DIR)')
    .option('--device <id>', 'the edge device id', 'dev-device')
    .option('--manifest <file>', 'deployment manifest (default: examples/dev-quickstart.json)')
    .option('--hub-port <port>', "the hub's HTTPS port on 127.0.0.1 (0: any free port)", '8443')
    .option('--hub-mqtt-port <port>', "the hub's MQTT port on 127.0.0.1 (0: any free port; the edge hub takes 8883)", '0')
    .option('--edge-host <address>', 'loopback address of the edge hub (modules dial 8883 there)', '127.0.0.1')
    .option('--timeout <seconds>', 'how long each step may take', '60')
    .option('--verbose', 'show the commands started and where they log')
    .option('--json', 'print the status as JSON once up')
    .action(run(devAction(up)));
  dev
    .command('down')
    .description('Stop every process `dev up` started (by recorded pid and process group) and remove the state dir')
    .option('--state-dir <dir>', 'the state dir (default: ./.kedge-dev, or $KEDGE_DEV_STATE_DIR)')
    .option('--purge', 'remove the state dir (the default)')
    .option('--no-purge', 'keep the state dir (hub data, device identity, logs) for the next `dev up`')
    .action(run(devAction(down)));
  dev
    .command('status')
    .description('What runs: hub, device, agent and modules (status, version, restarts), and what to try next')
    .option('--state-dir <dir>', 'the state dir (default: ./.kedge-dev, or $KEDGE_DEV_STATE_DIR)')
    .option('--json', 'print JSON instead of a table')
    .action(run(devAction(status)));
  for (const action of ['stop', 'start'] as const) {
    dev
      .command(action)
      .description(action === 'stop' ? 'Stop the hub alone (the edge keeps working and buffers)' : 'Start the hub again, on the same ports and data')
      .argument('<component>', 'hub')
      .option('--state-dir <dir>', 'the state dir (default: ./.kedge-dev, or $KEDGE_DEV_STATE_DIR)')
      .option('--timeout <seconds>', 'how long starting may take', '60')
      .action(run(devAction((component: string, opts: { stateDir?: string; timeout: string }) => stopStart(action, component, opts))));
  }
  dev
    .command('sample', { hidden: true })
    .description(`Run a sample module of this checkout in this process (${SAMPLE_NAMES.join(', ')})`)
    .argument('<name>')
    .action(
      run(async (name: string) => {
        if (!(SAMPLE_NAMES as readonly string[]).includes(name)) throw new UsageError(`no sample ${name}: ${SAMPLE_NAMES.join(', ')}`);
        const sample = (await import(pathToFileURL(join(SAMPLES, name, 'index.mjs')).href)) as { main: () => Promise<void> };
        await sample.main();
      }),
    );
}

