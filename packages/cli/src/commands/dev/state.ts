import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';

/**
 * The state directory of `kedge dev`: everything `dev up` starts and writes lives under it, so `dev down --purge`
 * can remove it whole. Layout:
 *
 * | path | what |
 * |---|---|
 * | `state.json` | {@link DevState}: ports, pids, device id (no secrets) |
 * | `hub/` | the hub's data dir (SQLite, TLS, `iothubowner.connection-string` 0600) |
 * | `device.connection-string` | the edge device's connection string (0600) |
 * | `agent/` | the agent's state dir (module logs, pids) |
 * | `logs/<process>.log` | stdout/stderr of every process `dev up` started |
 */
export const STATE_FILE = 'state.json';

/** The default state dir: `./.kedge-dev` (beside the project, like `.git`; `$KEDGE_DEV_STATE_DIR` overrides it). */
export function defaultStateDir(): string {
  return resolve(process.env['KEDGE_DEV_STATE_DIR'] ?? '.kedge-dev');
}

/** One process `dev up` started: its pid is also its process group id (spawned detached). */
export interface DevProcess {
  readonly name: string;
  readonly pid: number;
  readonly log: string;
}

/** What `dev up` recorded. Written after every step, so `down` can clean up after a `dev up` that failed halfway. */
export interface DevState {
  readonly version: 1;
  readonly deviceId: string;
  readonly hub?: {
    readonly hostName: string;
    readonly servicePort: number;
    readonly mqttPort: number;
    readonly caFile: string;
    readonly connectionStringFile: string;
  };
  readonly edgeHub?: { readonly mqttPort: number };
  readonly processes: readonly DevProcess[];
}

/** Reads `state.json` of a state dir; undefined when there is none (or it is unreadable). */
export function readDevState(dir: string): DevState | undefined {
  try {
    const v = JSON.parse(readFileSync(join(dir, STATE_FILE), 'utf8')) as unknown;
    if (v === null || typeof v !== 'object' || (v as { version?: unknown }).version !== 1) return undefined;
    return v as DevState;
  } catch {
    return undefined;
  }
}
