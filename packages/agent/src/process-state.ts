import { readFile } from 'node:fs/promises';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { writeFileDurably } from '@kedge/edge-store';
import { isObject } from '@kedge/protocol';

/**
 * The process runtime's state directory: `deployment.json` (the deployment it runs and its generation: the process
 * runtime's EdgeDeployment) and `pids.json` (the children it started, so that an agent restarted after a crash
 * stops the ones it left behind). Files are replaced atomically (temp file, fsync, rename, fsync the directory).
 */

export const DEPLOYMENT_FILE = 'deployment.json';
export const PIDS_FILE = 'pids.json';

/** One child the runtime started: its pid (also its process group) and the kernel's start time of that pid. */
export interface PidRecord {
  readonly module: string;
  readonly pid: number;
  /** `/proc/<pid>/stat` start time (clock ticks since boot), so that a reused pid is never taken for our child. */
  readonly startTime?: string;
}

/** Writes `name` in `dir` atomically and durably (edge-store's {@link writeFileDurably}; mode 0600). */
export function writeFileAtomic(dir: string, name: string, text: string): Promise<void> {
  return writeFileDurably(join(dir, name), text);
}

/** Reads a JSON file of the state directory; undefined when it does not exist or is not JSON (a torn or foreign file). */
export async function readJsonFile(dir: string, name: string): Promise<unknown> {
  let text: string;
  try {
    text = await readFile(join(dir, name), 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw e;
  }
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return undefined;
  }
}

/** The pid records of `pids.json`; malformed entries are skipped. */
export function parsePidRecords(v: unknown): PidRecord[] {
  if (!isObject(v) || !Array.isArray(v['children'])) return [];
  const out: PidRecord[] = [];
  for (const c of v['children'] as unknown[]) {
    if (!isObject(c) || typeof c['module'] !== 'string' || typeof c['pid'] !== 'number' || !Number.isInteger(c['pid']) || c['pid'] <= 1) continue;
    out.push({ module: c['module'], pid: c['pid'], ...(typeof c['startTime'] === 'string' ? { startTime: c['startTime'] } : {}) });
  }
  return out;
}

/**
 * The kernel's start time of `pid` (field 22 of `/proc/<pid>/stat`), or undefined where there is no `/proc` or no
 * such process. Together with the pid it names one process for the lifetime of the machine.
 */
export function processStartTime(pid: number): string | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The command name (field 2) is in parentheses and may hold spaces: count fields after its closing parenthesis.
    const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return rest[19];
  } catch {
    return undefined;
  }
}

/** True when a process with this pid exists (signal 0 checks without signalling). */
export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}
