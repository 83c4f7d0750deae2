#!/usr/bin/env node
/**
 * `npm run cluster:up [-- --name N --nodes K]` / `npm run cluster:down [-- --name N]`.
 *
 * `up` starts a detached control plane (its processes outlive this CLI) in
 * `${XDG_RUNTIME_DIR:-os.tmpdir()}/kedge-cluster-<name>/`, records their pids in `cluster.json` there, and prints
 * `KUBECONFIG=<absolute path>` as its last line. `down` stops exactly those pids and deletes the directory.
 * `gc` cleans up control planes of test runs that were killed before their teardown.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { MissingBinariesError } from './binaries.js';
import { STATE_FILE, startControlPlane, stopRecordedCluster, type ClusterState } from './control-plane.js';
import { isAlive } from './process.js';

/** Directory of the named cluster started by `cluster:up`. */
export function clusterDir(name: string): string {
  return join(process.env.XDG_RUNTIME_DIR ?? tmpdir(), `kedge-cluster-${name}`);
}

function readState(dir: string): ClusterState | undefined {
  try {
    return JSON.parse(readFileSync(join(dir, STATE_FILE), 'utf8')) as ClusterState;
  } catch {
    return undefined;
  }
}

const usage = 'usage: cluster-cli.js up|down|status|gc [--name <name>] [--nodes <n>]';

/**
 * Control planes started by test runs (`kedge-cp-*` in the temp dir) whose owning Node process is gone, e.g. a
 * vitest run killed with SIGKILL: stops their recorded processes and removes their directories.
 */
async function gc(): Promise<number> {
  let n = 0;
  for (const base of new Set([tmpdir(), process.env.XDG_RUNTIME_DIR ?? tmpdir()])) {
    for (const d of readdirSync(base).filter((x) => x.startsWith('kedge-cp-'))) {
      const dir = join(base, d);
      const st = readState(dir);
      if (!st || isAlive({ pid: st.ownerPid, startTicks: null })) continue;
      const stopped = await stopRecordedCluster(dir);
      console.log(`gc: ${dir} (owner pid ${st.ownerPid} gone): stopped ${stopped.join(', ') || 'nothing'}`);
      n++;
    }
  }
  console.log(`gc: ${n} orphaned control plane(s) cleaned up`);
  return 0;
}

async function main(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: { name: { type: 'string', default: 'default' }, nodes: { type: 'string', default: '1' }, help: { type: 'boolean' } },
  });
  const cmd = positionals[0];
  if (values.help || !cmd) {
    console.log(usage);
    return cmd ? 0 : 2;
  }
  const name = values.name;
  if (!/^[a-z0-9]([a-z0-9-]{0,40}[a-z0-9])?$/.test(name)) {
    console.error(`cluster-cli: --name must be a short DNS label, got ${JSON.stringify(name)}`);
    return 2;
  }
  const dir = clusterDir(name);
  const st = readState(dir);
  const alive = st ? st.processes.filter((p) => isAlive(p)) : [];

  switch (cmd) {
    case 'up': {
      if (st && alive.length === st.processes.length && alive.length > 0) {
        console.log(`cluster "${name}" is already running (${alive.map((p) => `${p.name}:${p.pid}`).join(' ')})`);
        console.log(`KUBECONFIG=${st.kubeconfigPath}`);
        return 0;
      }
      if (alive.length > 0) {
        console.error(`cluster "${name}" is half running (${alive.map((p) => p.name).join(', ')}); run \`npm run cluster:down -- --name ${name}\` first`);
        return 1;
      }
      if (existsSync(dir)) await rm(dir, { recursive: true, force: true }); // stale: nothing of it runs any more
      const nodes = Number(values.nodes);
      if (!Number.isInteger(nodes) || nodes < 1) {
        console.error('cluster-cli: --nodes must be a positive integer');
        return 2;
      }
      const cp = await startControlPlane({ dir, nodes, detached: true, onProgress: (m) => console.log(`cluster:up: ${m}`) });
      console.log(`cluster:up: "${name}" running: ${cp.processes.map((p) => `${p.name}:${p.pid}`).join(' ')}`);
      console.log(`cluster:up: logs in ${join(dir, 'logs')}; stop with \`npm run cluster:down${name === 'default' ? '' : ` -- --name ${name}`}\``);
      console.log(`KUBECONFIG=${cp.kubeconfigPath}`);
      return 0;
    }
    case 'down': {
      if (!st) {
        if (existsSync(dir)) await rm(dir, { recursive: true, force: true });
        console.log(`cluster "${name}" is not running`);
        return 0;
      }
      const stopped = await stopRecordedCluster(dir);
      console.log(`cluster "${name}" stopped (${stopped.length > 0 ? stopped.join(', ') : 'nothing was running'}); removed ${dir}`);
      return 0;
    }
    case 'status': {
      if (!st) {
        console.log(`cluster "${name}" is not running`);
        return 1;
      }
      for (const p of st.processes) console.log(`${p.name} pid ${p.pid}: ${isAlive(p) ? 'running' : 'gone'}`);
      console.log(`KUBECONFIG=${st.kubeconfigPath}`);
      return alive.length === st.processes.length ? 0 : 1;
    }
    case 'gc':
      return gc();
    default:
      console.error(usage);
      return 2;
  }
}

main(process.argv.slice(2)).then(
  // Exit explicitly: keep-alive sockets of the API client must not hold the CLI open (the cluster is detached).
  (code) => process.exit(code),
  (err: unknown) => {
    console.error(err instanceof MissingBinariesError ? `cluster-cli: ${err.message}` : err);
    process.exit(1);
  },
);
