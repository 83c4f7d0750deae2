import { spawn } from 'node:child_process';
import { closeSync, openSync, readFileSync } from 'node:fs';
import { setTimeout as delay } from 'node:timers/promises';

/**
 * The kernel's start time of a pid (`/proc/<pid>/stat` field 22, clock ticks since boot), so that a pid the system
 * reused for another program is never taken for one `kedge dev` started; undefined where there is no `/proc`.
 */
export function processStartTime(pid: number): string | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The command name (field 2) is in parentheses and may hold spaces: count the fields after its closing one.
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19];
  } catch {
    return undefined;
  }
}

/** A process `kedge dev` started (or found recorded): pid = process group id, and its start time when known. */
export interface Tracked {
  readonly pid: number;
  readonly startTime?: string;
}

/** True when the recorded process still runs (and is the same process: same start time, where the OS tells it). */
export function isRunning(p: Tracked): boolean {
  try {
    process.kill(p.pid, 0);
  } catch {
    // ESRCH: gone; EPERM: a process of another user has the pid now, so it is not the one we started.
    return false;
  }
  if (p.startTime === undefined) return true;
  const now = processStartTime(p.pid);
  return now === undefined || now === p.startTime;
}

/** True while any process of the group `pgid` exists (the leader may be gone while its children still run). */
export function groupExists(pgid: number): boolean {
  try {
    process.kill(-pgid, 0);
    return true;
  } catch {
    return false;
  }
}

/**
 * Starts `command` detached, in a process group of its own (so that stopping it reaches every process it starts),
 * with stdin closed and stdout/stderr appended to `logFile`: the terminal stays readable and the process outlives
 * this command.
 */
export function spawnDetached(command: string, args: readonly string[], opts: { cwd: string; env: NodeJS.ProcessEnv; logFile: string }): Tracked {
  const fd = openSync(opts.logFile, 'a', 0o600);
  try {
    const child = spawn(command, [...args], { cwd: opts.cwd, env: opts.env, detached: true, stdio: ['ignore', fd, fd] });
    if (child.pid === undefined) throw new Error(`cannot start ${command}`);
    child.unref();
    const startTime = processStartTime(child.pid);
    return { pid: child.pid, ...(startTime === undefined ? {} : { startTime }) };
  } finally {
    closeSync(fd);
  }
}

/**
 * Stops the process group of a process `kedge dev` started: SIGTERM, then SIGKILL after `graceMs` if any member is
 * left. Only the recorded group is signalled, and only while its leader is still the recorded process (or already
 * gone, leaving members of its group). Resolves once no process of the group exists.
 */
export async function stopGroup(p: Tracked, graceMs: number): Promise<'stopped' | 'killed' | 'gone'> {
  // The pid was reused by another program (it runs, with another start time): not ours to signal. A leader that is
  // gone may leave members of its group; a group id is not reused while the group exists, so signalling it is safe.
  if (!isRunning(p) && processStartTime(p.pid) !== undefined) return 'gone';
  if (!groupExists(p.pid)) return 'gone';
  try {
    process.kill(-p.pid, 'SIGTERM');
  } catch {
    return 'gone';
  }
  const deadline = Date.now() + graceMs;
  while (Date.now() < deadline) {
    if (!groupExists(p.pid)) return 'stopped';
    await delay(50);
  }
  try {
    process.kill(-p.pid, 'SIGKILL');
  } catch {
    return 'stopped';
  }
  const killDeadline = Date.now() + 5_000;
  while (groupExists(p.pid) && Date.now() < killDeadline) await delay(20);
  return 'killed';
}
