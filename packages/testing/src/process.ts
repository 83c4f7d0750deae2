import { spawn } from 'node:child_process';
import { closeSync, openSync, readFileSync } from 'node:fs';
import { setTimeout as delay } from 'node:timers/promises';

/**
 * A process the harness started, identified well enough to never signal a stranger: it runs in its own process
 * group (pgid === pid) and `startTicks` (field 22 of /proc/<pid>/stat) guards against PID reuse.
 */
export interface ProcessRecord {
  readonly name: string;
  readonly pid: number;
  /** Process start time in clock ticks since boot; `null` where /proc is unavailable. */
  readonly startTicks: number | null;
  readonly logFile: string;
}

/** A process started by this Node process. `exited` settles when it has exited (and was reaped). */
export interface SpawnedProcess extends ProcessRecord {
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  readonly hasExited: () => boolean;
}

function readStat(pid: number): { state: string; startTicks: number } | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The command name (field 2) may contain spaces and parentheses: parse after the last ')'.
    const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return { state: rest[0] ?? '?', startTicks: Number(rest[19]) };
  } catch {
    return undefined;
  }
}

/** Whether the exact process in `rec` (same pid and start time) is still alive (zombies count as gone). */
export function isAlive(rec: Pick<ProcessRecord, 'pid' | 'startTicks'>): boolean {
  const st = readStat(rec.pid);
  if (st) return st.state !== 'Z' && (rec.startTicks === null || st.startTicks === rec.startTicks);
  try {
    process.kill(rec.pid, 0);
    return rec.startTicks === null;
  } catch {
    return false;
  }
}

/**
 * Starts `bin args` in a new process group (detached), stdout and stderr appended to `logFile`. The child does not
 * keep the Node event loop alive, so a CLI can exit and leave it running; `stop()` ends it by pid.
 */
export function spawnLogged(name: string, bin: string, args: readonly string[], logFile: string): SpawnedProcess {
  const fd = openSync(logFile, 'a');
  let exitedFlag = false;
  try {
    const child = spawn(bin, args, { detached: true, stdio: ['ignore', fd, fd], env: childEnv() });
    const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
      child.once('exit', (code, signal) => { exitedFlag = true; resolve({ code, signal }); });
      child.once('error', () => { exitedFlag = true; resolve({ code: null, signal: null }); });
    });
    child.unref();
    const pid = child.pid;
    if (pid === undefined) throw new Error(`could not start ${name} (${bin})`);
    return { name, pid, startTicks: readStat(pid)?.startTicks ?? null, logFile, exited, hasExited: () => exitedFlag };
  } finally {
    closeSync(fd);
  }
}

/** The environment for control-plane processes: no proxies (everything is loopback) and no stray kubeconfig. */
function childEnv(): NodeJS.ProcessEnv {
  const env = { ...process.env };
  for (const k of ['http_proxy', 'https_proxy', 'HTTP_PROXY', 'HTTPS_PROXY', 'KUBECONFIG']) delete env[k];
  env.NO_PROXY = '127.0.0.1,localhost';
  env.no_proxy = env.NO_PROXY;
  return env;
}

function signalGroup(rec: ProcessRecord, signal: NodeJS.Signals): void {
  if (!isAlive(rec)) return;
  try {
    // Negative pid: the process group the harness created with `detached: true` (pgid === pid).
    process.kill(-rec.pid, signal);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ESRCH') throw err;
  }
}

/**
 * Stops one recorded process: SIGTERM to its process group, then SIGKILL after `graceMs`, and waits until it is
 * gone. A pid whose start time no longer matches belongs to someone else and is left alone.
 */
export async function stopProcess(rec: ProcessRecord | SpawnedProcess, graceMs = 10_000): Promise<void> {
  signalGroup(rec, 'SIGTERM');
  const gone = async (deadlineMs: number): Promise<boolean> => {
    const end = Date.now() + deadlineMs;
    if ('exited' in rec) {
      const ac = new AbortController();
      const timer = delay(deadlineMs, 'timeout' as const, { signal: ac.signal }).catch(() => 'timeout' as const);
      const outcome = await Promise.race([rec.exited.then(() => 'exited' as const), timer]);
      ac.abort(); // a pending timer would keep the event loop (and a CLI) alive for the whole grace period
      return outcome === 'exited';
    }
    // Not our child (e.g. `cluster:down` from another shell): poll /proc until the deadline.
    while (Date.now() < end) {
      if (!isAlive(rec)) return true;
      await delay(50);
    }
    return !isAlive(rec);
  };
  if (await gone(graceMs)) return;
  signalGroup(rec, 'SIGKILL');
  if (!(await gone(5_000))) throw new Error(`${rec.name} (pid ${rec.pid}) did not exit after SIGKILL`);
}

/** Synchronous last-resort kill for `process.on('exit')`: the event loop is gone, so no waiting. */
export function killNow(rec: ProcessRecord): void {
  try {
    signalGroup(rec, 'SIGKILL');
  } catch {
    // The process is already gone or not ours; nothing else can be done while the runtime exits.
  }
}
