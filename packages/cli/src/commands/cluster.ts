import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import type { Command } from 'commander';

/** Exit code for a command line that cannot run: bad options, or no control plane launcher in this install. */
const EXIT_USAGE = 2;

/**
 * The local Kubernetes control plane's launcher (`@kedge/testing`'s `cluster-cli.js`: etcd, kube-apiserver,
 * controller-manager, scheduler and kwok, built from Go modules by `testenv/build.sh`). It ships with a checkout of
 * Kedge, not with a packaged `kedge`: found by path, not imported, because `@kedge/testing` is test-only code.
 */
function launcher(): string | undefined {
  try {
    const entry = createRequire(import.meta.url).resolve('@kedge/testing');
    const cli = join(dirname(entry), 'cluster-cli.js');
    return existsSync(cli) ? cli : undefined;
  } catch {
    return undefined;
  }
}

/** Runs the launcher with `args`, passing its output through; resolves to its exit code. */
function runLauncher(cli: string, args: readonly string[]): Promise<number> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [cli, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    child.stdout.on('data', (b: Buffer) => process.stdout.write(b.toString('utf8').replaceAll('cluster:up: ', '').replaceAll('cluster-cli: ', 'kedge cluster: ')));
    child.stderr.on('data', (b: Buffer) => process.stderr.write(b.toString('utf8').replaceAll('cluster-cli: ', 'kedge cluster: ')));
    child.once('error', (e) => {
      process.stderr.write(`kedge cluster: ${e.message}\n`);
      resolve(1);
    });
    child.once('close', (code) => resolve(code ?? 1));
  });
}

/**
 * `kedge cluster start | stop | status [--name N] [--nodes K]`: the local Kubernetes control plane (kwok's simulated
 * nodes; pods are scheduled and reported Running but no container runs) for trying the Kubernetes runtime on a
 * laptop, detached, its pids and kubeconfig in `${XDG_RUNTIME_DIR:-/tmp}/kedge-cluster-<name>/`. The same launcher as
 * `npm run cluster:up` / `cluster:down` (docs/testcluster.md); `stop` stops only the processes `start` recorded.
 */
export function registerLocalClusterCommands(program: Command): void {
  const cluster = program.command('cluster').description('The local Kubernetes control plane (kwok: simulated nodes and pods) for trying the Kubernetes runtime: start, stop, status');
  const forward = (verb: string, opts: { name: string; nodes?: string }): Promise<void> =>
    (async () => {
      const cli = launcher();
      if (!cli) {
        process.stderr.write('kedge cluster: the control plane launcher is not here; it comes with a checkout of Kedge: run `npm ci && npm run build` in it (binaries: `bash testenv/build.sh`)\n');
        process.exitCode = EXIT_USAGE;
        return;
      }
      process.exitCode = await runLauncher(cli, [verb, '--name', opts.name, ...(opts.nodes !== undefined ? ['--nodes', opts.nodes] : [])]);
    })();
  cluster
    .command('start')
    .description('Start a detached control plane (first run: `bash testenv/build.sh` builds the binaries); prints KUBECONFIG=… last')
    .option('--name <name>', 'which control plane (several can run side by side)', 'default')
    .option('--nodes <n>', 'simulated nodes', '1')
    .action((opts: { name: string; nodes: string }) => forward('up', opts));
  cluster
    .command('stop')
    .description('Stop the processes `start` recorded and remove its directory')
    .option('--name <name>', 'which control plane', 'default')
    .action((opts: { name: string }) => forward('down', opts));
  cluster
    .command('status')
    .description('Show its processes and KUBECONFIG (exit 1: not running)')
    .option('--name <name>', 'which control plane', 'default')
    .action((opts: { name: string }) => forward('status', opts));
}
