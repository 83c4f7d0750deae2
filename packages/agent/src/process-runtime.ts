import { spawn, type ChildProcess } from 'node:child_process';
import { mkdir } from 'node:fs/promises';
import { constants as osConstants } from 'node:os';
import type { Logger } from 'pino';
import { wallClock, type Clock, type TimerHandle } from '@kedge/contracts';
import { parseEdgeDeploymentSpec, type EdgeDeploymentSpec, type EdgeDeploymentStatus, type ModuleStatusReport } from '@kedge/manifest';
import { isObject } from '@kedge/protocol';
import { moduleEntries, startupWaits, type ModuleEntry } from './modules.js';
import { UnknownModuleError, type LogLine, type LogQuery, type ModuleRuntime, type RuntimeSnapshot } from './module-runtime.js';
import { DEPLOYMENT_FILE, PIDS_FILE, isAlive, parsePidRecords, processStartTime, readJsonFile, writeFileAtomic, type PidRecord } from './process-state.js';
import { RuntimeEnv } from './render.js';
import { HEALTHY_RESET_MS, MAX_RESTART_COUNT, decideAfterExit } from './restart-policy.js';
import { computeStatus, type ObservedModule } from './status.js';

/** Options of {@link ProcessRuntime}. */
export interface ProcessRuntimeOptions {
  /** Where `deployment.json` and `pids.json` live; created when missing. */
  readonly stateDir: string;
  readonly deviceId: string;
  readonly log: Logger;
  /** Wall clock for times and back-off timers. @default wallClock */
  readonly clock?: Clock;
  /** `IOTEDGE_IOTHUBHOSTNAME` for modules. */
  readonly hubHostName?: string;
  /** `IOTEDGE_GATEWAYHOSTNAME` of user modules: where the edge hub listens for them. @default 'localhost' */
  readonly gatewayHostName?: string;
  /**
   * More environment of a module (its identity: `IOTEDGE_MODULEGENERATIONID`, `IOTEDGE_WORKLOADURI`, or a
   * connection string), over the runtime's variables and the module's manifest `env`.
   */
  readonly moduleEnv?: (entry: ModuleEntry) => Promise<Readonly<Record<string, string>>>;
  /** Time between SIGTERM and SIGKILL when stopping a module. @default 10_000 */
  readonly stopGraceMs?: number;
  /**
   * How long a module must have been running to count as available, for `startupOrder` and `modulesReady` (a
   * Deployment's `minReadySeconds`): a module that crashes right after starting never releases the ones after it.
   * @default 1000
   */
  readonly availableAfterMs?: number;
  /** Log bytes kept per module (oldest lines dropped first). @default 1 MiB */
  readonly logBytesPerModule?: number;
  /** The agent's environment, of which modules inherit only `PATH`, `HOME`, `LANG`, temp dirs and the like. @default process.env */
  readonly baseEnv?: NodeJS.ProcessEnv;
}

/** Variables a module inherits from the agent: what finding executables and temp space needs, nothing secret. */
const INHERITED_ENV = ['PATH', 'HOME', 'USER', 'LOGNAME', 'LANG', 'LC_ALL', 'TZ', 'TMPDIR', 'TMP', 'TEMP', 'SystemRoot', 'ComSpec', 'PATHEXT', 'WINDIR'];
/** The longest line kept whole; longer output is split (a module that never writes a newline stays bounded). */
const MAX_LINE_CHARS = 16_384;

/** Bounded log of one module: lines with the time the runtime read them, oldest dropped first. */
class LogRing {
  readonly #lines: LogLine[] = [];
  #bytes = 0;
  readonly #max: number;
  readonly #partial = new Map<string, string>();
  constructor(maxBytes: number) {
    this.#max = maxBytes;
  }
  write(stream: string, chunk: string, timeMs: number): void {
    let text = (this.#partial.get(stream) ?? '') + chunk;
    for (;;) {
      const nl = text.indexOf('\n');
      if (nl < 0) break;
      this.#push(text.slice(0, nl).replace(/\r$/, ''), timeMs);
      text = text.slice(nl + 1);
    }
    while (text.length > MAX_LINE_CHARS) {
      this.#push(text.slice(0, MAX_LINE_CHARS), timeMs);
      text = text.slice(MAX_LINE_CHARS);
    }
    this.#partial.set(stream, text);
  }
  flush(timeMs: number): void {
    for (const text of this.#partial.values()) if (text) this.#push(text, timeMs);
    this.#partial.clear();
  }
  #push(text: string, timeMs: number): void {
    this.#lines.push({ timeMs, text });
    this.#bytes += text.length + 16;
    while (this.#bytes > this.#max && this.#lines.length > 1) {
      const old = this.#lines.shift();
      this.#bytes -= (old?.text.length ?? 0) + 16;
    }
  }
  query(q: LogQuery): LogLine[] {
    let out = this.#lines.filter((l) => (q.sinceMs === undefined || (l.timeMs ?? 0) >= q.sinceMs) && (q.untilMs === undefined || (l.timeMs ?? 0) <= q.untilMs));
    if (q.tail !== undefined) out = out.slice(Math.max(0, out.length - q.tail));
    return out;
  }
}

/** The runtime's record of one module. */
interface Supervised {
  entry: ModuleEntry;
  child?: ChildProcess;
  /** The child has started (`spawn` event) and not exited. */
  running: boolean;
  /** Running for at least `availableAfterMs`. */
  available: boolean;
  availableTimer?: TimerHandle;
  /** Set while the runtime itself stops the child: its exit is not a failure. */
  stopping?: Promise<void>;
  restartCount: number;
  exitCode?: number;
  exitDescription?: string;
  lastStartMs?: number;
  lastExitMs?: number;
  /** A restart scheduled by the back-off, and when it fires. */
  restartTimer?: TimerHandle;
  restartAtMs?: number;
  healthyTimer?: TimerHandle;
  /** Kept down: by its restartPolicy, or because it failed MAX_RESTART_COUNT times. */
  parked?: { runtimeStatus: 'stopped' | 'failed'; reason: 'policy' | 'gave-up' };
  waitingFor?: readonly string[];
  /** What {@link ProcessRuntimeOptions.moduleEnv} gave for this spec (resolved before the first start). */
  identityEnv?: Readonly<Record<string, string>>;
  readonly logs: LogRing;
}

const iso = (ms: number | undefined) => (ms === undefined ? undefined : new Date(ms).toISOString());

/**
 * The process runtime: runs each module of the deployment as a supervised child process from its process form
 * (`modules.<m>.process`: command, args, env, workingDir) — in its own process group, with the environment a
 * container gets (`IOTEDGE_*`), IoT Edge's restart policies and back-off ({@link decideAfterExit}), `startupOrder`
 * ({@link startupWaits}) and bounded logs per module. Stop is SIGTERM to the process group, then SIGKILL after
 * the grace period. The deployment and the pids of its children are kept in the state directory, so that an agent
 * restarted after a crash stops the children it left behind and runs its last deployment again while offline.
 */
export class ProcessRuntime implements ModuleRuntime {
  readonly kind = 'process';
  readonly #o: ProcessRuntimeOptions;
  readonly #clock: Clock;
  readonly #modules = new Map<string, Supervised>();
  readonly #listeners = new Set<() => void>();
  #spec: EdgeDeploymentSpec | undefined;
  #entries: ModuleEntry[] = [];
  #generation = 0;
  #status: EdgeDeploymentStatus | undefined;
  #synced = false;
  #stopped = false;
  #chain: Promise<void> = Promise.resolve();
  #pidsWrite: Promise<void> = Promise.resolve();

  constructor(options: ProcessRuntimeOptions) {
    this.#o = options;
    this.#clock = options.clock ?? wallClock;
  }

  /** Reaps children a previous agent left behind, loads the last deployment and starts its modules. */
  async start(): Promise<void> {
    await mkdir(this.#o.stateDir, { recursive: true, mode: 0o700 });
    await this.#reap();
    const saved = await readJsonFile(this.#o.stateDir, DEPLOYMENT_FILE);
    if (isObject(saved) && typeof saved['generation'] === 'number') {
      const parsed = parseEdgeDeploymentSpec(saved['spec']);
      if (parsed.ok) {
        this.#spec = parsed.value.spec;
        this.#generation = saved['generation'];
        this.#entries = moduleEntries(parsed.value, { manageEdgeAgent: false });
        this.#o.log.info({ generation: this.#generation, modules: this.#entries.length }, 'Loaded the last deployment from the state directory');
      } else this.#o.log.warn({ errors: parsed.error.length }, 'Ignored an invalid deployment in the state directory');
    }
    this.#synced = true;
    await this.#enqueue(() => this.#sync());
  }

  hasSynced(): boolean {
    return this.#synced;
  }

  async apply(spec: EdgeDeploymentSpec): Promise<{ generation: number }> {
    const parsed = parseEdgeDeploymentSpec(spec);
    if (!parsed.ok) throw new Error(`Invalid deployment: ${parsed.error.map((i) => `${i.path}: ${i.message}`).join('; ')}`);
    let generation = this.#generation;
    await this.#enqueue(async () => {
      if (JSON.stringify(parsed.value.spec) === JSON.stringify(this.#spec)) return;
      this.#generation++;
      this.#spec = parsed.value.spec;
      this.#entries = moduleEntries(parsed.value, { manageEdgeAgent: false });
      await writeFileAtomic(this.#o.stateDir, DEPLOYMENT_FILE, JSON.stringify({ generation: this.#generation, spec: this.#spec }));
      this.#o.log.info({ generation: this.#generation }, 'Applying deployment');
      await this.#sync();
    });
    generation = this.#generation;
    return { generation };
  }

  snapshot(): RuntimeSnapshot {
    return {
      ...(this.#spec ? { spec: this.#spec } : {}),
      ...(this.#spec ? { generation: this.#generation } : {}),
      ...(this.#status ? { status: this.#status } : {}),
    };
  }

  onChange(listener: () => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  moduleNames(): Promise<string[]> {
    return Promise.resolve(this.#entries.map((e) => e.name));
  }

  async restart(name: string): Promise<void> {
    const m = this.#modules.get(name);
    if (!m || !this.#entries.some((e) => e.name === name)) throw new UnknownModuleError(name);
    await this.#enqueue(async () => {
      this.#clearRestart(m);
      delete m.parked;
      if (m.child) await this.#stopChild(m);
      await this.#resolveEnv(m);
      this.#o.log.info({ module: name }, 'Restarting module (RestartModule)');
      this.#spawn(m);
      this.#changed();
    });
  }

  logs(name: string, query: LogQuery): Promise<LogLine[]> {
    const m = this.#modules.get(name);
    if (!m || !this.#entries.some((e) => e.name === name)) return Promise.reject(new UnknownModuleError(name));
    return Promise.resolve(m.logs.query(query));
  }

  async stop(): Promise<void> {
    if (this.#stopped) return;
    this.#stopped = true;
    await this.#enqueue(async () => {
      await Promise.all([...this.#modules.values()].map((m) => this.#stopChild(m)));
      for (const m of this.#modules.values()) this.#clearTimers(m);
      await this.#savePids();
    });
  }

  /** Runs `fn` after every earlier step: deployment changes, restarts and exits never interleave. */
  #enqueue(fn: () => Promise<void>): Promise<void> {
    const next = this.#chain.then(fn);
    this.#chain = next.catch((e: unknown) => this.#o.log.error({ err: (e as Error).message }, 'Process runtime step failed'));
    return next;
  }

  /** Brings the children in line with the deployment: stop removed or changed modules, start what may start. */
  async #sync(): Promise<void> {
    const wanted = new Map(this.#entries.map((e) => [e.name, e]));
    for (const [name, m] of this.#modules) {
      const e = wanted.get(name);
      if (e && e.specDigest === m.entry.specDigest) continue;
      // Removed or updated: stop the old process; an update starts afresh (restart statistics cleared, as edgeAgent).
      await this.#stopChild(m);
      this.#clearTimers(m);
      this.#modules.delete(name);
      this.#o.log.info({ module: name }, e ? 'Module changed; restarting it' : 'Module removed; stopped it');
    }
    for (const e of this.#entries) {
      if (!this.#modules.has(e.name)) this.#modules.set(e.name, { entry: e, running: false, available: false, restartCount: 0, logs: new LogRing(this.#o.logBytesPerModule ?? 1024 * 1024) });
    }
    const available = new Set([...this.#modules.values()].filter((m) => m.available).map((m) => m.entry.name));
    const waits = startupWaits(this.#entries, available);
    for (const e of this.#entries) {
      const m = this.#modules.get(e.name);
      if (!m) continue;
      if (e.spec.status === 'stopped') {
        this.#clearRestart(m);
        if (m.child) await this.#stopChild(m);
        continue;
      }
      const w = waits.get(e.name);
      if (w) m.waitingFor = w;
      else delete m.waitingFor;
      if (m.child || m.parked || m.restartTimer || w || !e.spec.process) continue;
      await this.#resolveEnv(m);
      this.#spawn(m);
    }
    this.#changed();
  }

  /** Resolves the module's identity environment once per spec; a failure is logged and the module starts without it. */
  async #resolveEnv(m: Supervised): Promise<void> {
    if (m.identityEnv || !this.#o.moduleEnv) return;
    try {
      m.identityEnv = await this.#o.moduleEnv(m.entry);
    } catch (e) {
      this.#o.log.warn({ module: m.entry.name, err: (e as Error).message }, 'Could not get the module identity; starting it without one');
    }
  }

  #spawn(m: Supervised): void {
    const e = m.entry;
    const p = e.spec.process;
    if (!p || this.#stopped) return;
    let child: ChildProcess;
    try {
      child = spawn(p.command, p.args, {
        ...(p.workingDir !== undefined ? { cwd: p.workingDir } : {}),
        env: this.#env(e),
        // Its own process group: stopping the module reaches whatever it started, and the agent's terminal signals do not.
        detached: true,
        stdio: ['ignore', 'pipe', 'pipe'],
        windowsHide: true,
      });
    } catch (err) {
      this.#exited(m, undefined, 127, `Could not start ${p.command}: ${(err as Error).message}`);
      return;
    }
    m.child = child;
    m.lastStartMs = this.#clock.now();
    delete m.exitDescription;
    child.stdout?.setEncoding('utf8').on('data', (d: string) => m.logs.write('stdout', d, this.#clock.now()));
    child.stderr?.setEncoding('utf8').on('data', (d: string) => m.logs.write('stderr', d, this.#clock.now()));
    let done = false;
    child.once('spawn', () => {
      m.running = true;
      this.#o.log.info({ module: e.name, pid: child.pid, restartCount: m.restartCount }, 'Started module process');
      void this.#savePids();
      m.healthyTimer = this.#clock.setTimeout(() => {
        delete m.healthyTimer;
        if (m.child === child && m.running && m.restartCount > 0) {
          m.restartCount = 0;
          this.#changed();
        }
      }, HEALTHY_RESET_MS);
      m.availableTimer = this.#clock.setTimeout(() => {
        delete m.availableTimer;
        if (m.child !== child || !m.running) return;
        m.available = true;
        // An available module may release the ones startupOrder holds back.
        void this.#enqueue(() => this.#sync());
      }, this.#o.availableAfterMs ?? 1000);
      this.#changed();
    });
    child.once('error', (err: NodeJS.ErrnoException) => {
      // Spawning failed (no such command, not executable): no 'exit' follows.
      if (done || child.pid !== undefined) return;
      done = true;
      this.#exited(m, child, 127, `Could not start ${p.command}: ${err.code ?? err.message}`);
    });
    child.once('exit', (code, signal) => {
      if (done) return;
      done = true;
      const exitCode = code ?? 128 + (signal ? (osConstants.signals[signal] ?? 0) : 0);
      this.#exited(m, child, exitCode, signal ? `Killed by ${signal}` : `Exited with code ${exitCode}`);
    });
  }

  #exited(m: Supervised, child: ChildProcess | undefined, exitCode: number, description: string): void {
    if (child && m.child !== child) return;
    const now = this.#clock.now();
    // Whatever the module left in its process group goes with it, as with a container.
    if (child?.pid !== undefined) killGroup(child.pid, 'SIGKILL');
    m.logs.flush(now);
    delete m.child;
    m.running = false;
    m.available = false;
    if (m.availableTimer) this.#clock.clearTimeout(m.availableTimer);
    delete m.availableTimer;
    m.exitCode = exitCode;
    m.lastExitMs = now;
    m.exitDescription = description;
    if (m.healthyTimer) this.#clock.clearTimeout(m.healthyTimer);
    delete m.healthyTimer;
    void this.#savePids();
    if (m.stopping || this.#stopped) {
      this.#changed();
      return;
    }
    const d = decideAfterExit({ policy: m.entry.spec.restartPolicy, exitCode, restartCount: m.restartCount, exitedAtMs: now });
    if (d.action === 'park') {
      m.parked = { runtimeStatus: d.runtimeStatus, reason: d.reason };
      this.#o.log[d.reason === 'gave-up' ? 'error' : 'info']({ module: m.entry.name, exitCode, restartCount: m.restartCount, restartPolicy: m.entry.spec.restartPolicy }, d.reason === 'gave-up' ? 'Module keeps failing; gave up restarting it' : 'Module exited; its restartPolicy keeps it stopped');
    } else {
      this.#o.log.warn({ module: m.entry.name, exitCode, restartCount: m.restartCount, delayMs: d.delayMs }, 'Module exited; restarting after back-off');
      m.restartAtMs = d.atMs;
      m.restartTimer = this.#clock.setTimeout(() => {
        void this.#enqueue(() => {
          if (this.#modules.get(m.entry.name) !== m || m.child || this.#stopped) return Promise.resolve();
          delete m.restartTimer;
          delete m.restartAtMs;
          m.restartCount++;
          return this.#resolveEnv(m).then(() => {
            this.#spawn(m);
            this.#changed();
          });
        });
      }, d.delayMs);
    }
    this.#changed();
    // A module that went down holds back the ones ordered after it only at their next start, as edgeAgent does.
  }

  /** SIGTERM to the module's process group, SIGKILL after the grace period; resolves when it exited. */
  #stopChild(m: Supervised): Promise<void> {
    const child = m.child;
    if (!child || child.pid === undefined) return Promise.resolve();
    if (m.stopping) return m.stopping;
    const pid = child.pid;
    const exited = new Promise<void>((resolve) => {
      if (child.exitCode !== null || child.signalCode !== null) resolve();
      else child.once('exit', () => resolve());
    });
    killGroup(pid, 'SIGTERM');
    const kill = this.#clock.setTimeout(() => {
      this.#o.log.warn({ module: m.entry.name, pid }, 'Module did not stop in time; killing it');
      killGroup(pid, 'SIGKILL');
    }, this.#o.stopGraceMs ?? 10_000);
    m.stopping = exited.then(() => {
      this.#clock.clearTimeout(kill);
      delete m.stopping;
    });
    return m.stopping;
  }

  #clearRestart(m: Supervised): void {
    if (m.restartTimer) this.#clock.clearTimeout(m.restartTimer);
    delete m.restartTimer;
    delete m.restartAtMs;
  }

  #clearTimers(m: Supervised): void {
    this.#clearRestart(m);
    if (m.availableTimer) this.#clock.clearTimeout(m.availableTimer);
    delete m.availableTimer;
    if (m.healthyTimer) this.#clock.clearTimeout(m.healthyTimer);
    delete m.healthyTimer;
  }

  /** The environment of a module's process: what a container gets (iotedge-protocols.md §4), plus its process form's `env`. */
  #env(e: ModuleEntry): NodeJS.ProcessEnv {
    const base = this.#o.baseEnv ?? process.env;
    const env: NodeJS.ProcessEnv = {};
    for (const k of INHERITED_ENV) if (base[k] !== undefined) env[k] = base[k];
    for (const [k, v] of Object.entries(e.spec.env)) env[k] = v.value;
    env[RuntimeEnv.deviceId] = this.#o.deviceId;
    env[RuntimeEnv.moduleId] = e.name === 'edgeHub' ? '$edgeHub' : e.name;
    env[RuntimeEnv.authScheme] = 'sasToken';
    if (this.#o.hubHostName) env[RuntimeEnv.hubHostName] = this.#o.hubHostName;
    if (e.name !== 'edgeHub') env[RuntimeEnv.gatewayHostName] = this.#o.gatewayHostName ?? 'localhost';
    env[RuntimeEnv.edgeDeviceHostName] = this.#o.gatewayHostName ?? 'localhost';
    Object.assign(env, this.#modules.get(e.name)?.identityEnv ?? {});
    Object.assign(env, e.spec.process?.env ?? {});
    return env;
  }

  #moduleStatus(m: Supervised): ModuleStatusReport {
    const e = m.entry;
    const base = {
      desiredStatus: e.spec.status,
      image: e.spec.settings.image,
      ...(e.spec.version !== undefined ? { version: e.spec.version } : {}),
      deployment: e.objectName,
      restartCount: m.restartCount,
      ...(m.exitCode !== undefined ? { exitCode: m.exitCode } : {}),
      ...(m.lastStartMs !== undefined ? { lastStartTimeUtc: iso(m.lastStartMs) } : {}),
      ...(m.lastExitMs !== undefined ? { lastExitTimeUtc: iso(m.lastExitMs) } : {}),
    };
    if (e.spec.status === 'stopped') return { ...base, runtimeStatus: 'stopped', description: 'Stopped as desired' };
    if (!e.spec.process) return { ...base, runtimeStatus: 'failed', description: 'No process form: the process runtime needs settings.processOptions' };
    if (m.running) return { ...base, runtimeStatus: 'running', description: `Running since ${iso(m.lastStartMs) ?? 'unknown'}` };
    if (m.parked?.reason === 'gave-up') return { ...base, runtimeStatus: 'failed', description: `Failed: restarted ${m.restartCount} times (${m.exitDescription ?? 'exited'}); not restarted again until the module changes` };
    if (m.parked) return { ...base, runtimeStatus: m.parked.runtimeStatus, description: `${m.exitDescription ?? 'Exited'}; not restarted (restartPolicy: ${e.spec.restartPolicy}) until the module changes` };
    if (m.restartAtMs !== undefined) {
      const s = Math.max(0, Math.ceil((m.restartAtMs - (m.lastExitMs ?? 0)) / 1000));
      return { ...base, runtimeStatus: 'backoff', description: `Module in back-off: ${m.exitDescription ?? 'exited'}; restart ${m.restartCount + 1} of ${MAX_RESTART_COUNT} ${s} s after the exit` };
    }
    if (m.waitingFor?.length) return { ...base, runtimeStatus: 'pending', description: `Waiting for ${m.waitingFor.join(', ')} to be available (startupOrder)` };
    return { ...base, runtimeStatus: 'pending', description: m.exitDescription ?? 'Starting' };
  }

  #changed(): void {
    if (!this.#spec) return;
    const observed: ObservedModule[] = this.#entries.map((e) => {
      const m = this.#modules.get(e.name);
      const status: ModuleStatusReport = m ? this.#moduleStatus(m) : { runtimeStatus: 'pending', restartCount: 0, desiredStatus: e.spec.status };
      return { name: e.name, desiredStatus: e.spec.status, ...(m?.parked ? { parked: true } : {}), status, available: m?.available === true };
    });
    this.#status = computeStatus({
      generation: this.#generation,
      ...(this.#status ? { previous: this.#status } : {}),
      now: new Date(this.#clock.now()).toISOString(),
      observed,
      routes: Object.keys(this.#spec.routes).length,
    });
    for (const l of this.#listeners) l();
  }

  /** Records the pids of the running children; writes are serialized (one temp file), the last one wins. */
  #savePids(): Promise<void> {
    this.#pidsWrite = this.#pidsWrite.then(() => this.#writePids());
    return this.#pidsWrite;
  }

  async #writePids(): Promise<void> {
    const children: PidRecord[] = [];
    for (const m of this.#modules.values()) {
      const pid = m.child?.pid;
      if (pid === undefined) continue;
      const startTime = processStartTime(pid);
      children.push({ module: m.entry.name, pid, ...(startTime ? { startTime } : {}) });
    }
    try {
      await writeFileAtomic(this.#o.stateDir, PIDS_FILE, JSON.stringify({ children }));
    } catch (e) {
      this.#o.log.warn({ err: (e as Error).message }, 'Could not record module pids');
    }
  }

  /**
   * Stops the children a previous agent recorded and left running (it crashed or was killed): SIGTERM to each
   * process group, SIGKILL after the grace period. A pid is signalled only while its kernel start time is still
   * the recorded one, so a pid reused by another process is left alone; without `/proc` to tell, nothing is signalled.
   */
  async #reap(): Promise<void> {
    const records = parsePidRecords(await readJsonFile(this.#o.stateDir, PIDS_FILE));
    const ours = records.filter((r) => r.startTime !== undefined && isAlive(r.pid) && processStartTime(r.pid) === r.startTime);
    for (const r of records) if (!ours.includes(r) && isAlive(r.pid)) this.#o.log.warn({ module: r.module, pid: r.pid }, 'A recorded module pid is alive but cannot be proven ours; left alone');
    if (ours.length === 0) return;
    this.#o.log.warn({ children: ours.map((r) => ({ module: r.module, pid: r.pid })) }, 'Stopping module processes a previous agent left behind');
    for (const r of ours) killGroup(r.pid, 'SIGTERM');
    // Real time, not the injected clock: this waits for other processes, which only real time moves.
    const deadline = performance.now() + (this.#o.stopGraceMs ?? 10_000);
    const gone = (r: PidRecord) => !isAlive(r.pid) || processStartTime(r.pid) !== r.startTime;
    while (!ours.every(gone) && performance.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 50));
    for (const r of ours) if (!gone(r)) killGroup(r.pid, 'SIGKILL');
    await writeFileAtomic(this.#o.stateDir, PIDS_FILE, JSON.stringify({ children: [] }));
  }
}

/** Signals a process group by its leader's pid (never by name); already gone is fine. */
function killGroup(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(process.platform === 'win32' ? pid : -pid, signal);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ESRCH') throw e;
  }
}
