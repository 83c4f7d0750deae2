/**
 * `kedge cluster start | status | stop` as a user runs it (the built CLI, as a child process): a real control plane
 * (etcd, kube-apiserver, kwok) under a name of its own, detached, answering on its kubeconfig; stopped, nothing of it
 * runs and its directory is gone.
 */
import { execFile } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';

const ROOT = fileURLToPath(new URL('../../../../', import.meta.url));
const CLI = join(ROOT, 'packages', 'cli', 'dist', 'main.js');
const NAME = `cli-${process.pid}`;

interface Run {
  code: number;
  out: string;
  err: string;
}
const kedge = (...args: string[]): Promise<Run> =>
  new Promise((done) => {
    execFile(process.execPath, [CLI, ...args], { timeout: 240_000 }, (error, stdout, stderr) => {
      done({ code: error ? (typeof error.code === 'number' ? error.code : 1) : 0, out: stdout, err: stderr });
    });
  });
/** Running, not a zombie: the launcher's detached children are re-parented, and not every init reaps them at once. */
const isAlive = (pid: number): boolean => {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    return false;
  }
};

describe('kedge cluster', () => {
  afterAll(async () => {
    await kedge('cluster', 'stop', '--name', NAME);
  });

  it('start runs a detached control plane, status shows it, stop stops exactly its processes and removes its files', async () => {
    expect((await kedge('cluster', 'status', '--name', NAME)).code).toBe(1);

    const up = await kedge('cluster', 'start', '--name', NAME);
    expect(up.code, up.err).toBe(0);
    const kubeconfig = /^KUBECONFIG=(.+)$/m.exec(up.out)?.[1];
    expect(kubeconfig, up.out).toBeDefined();
    const dir = dirname(kubeconfig as string);
    const state = JSON.parse(readFileSync(join(dir, 'cluster.json'), 'utf8')) as { processes: Array<{ name: string; pid: number }> };
    expect(state.processes.map((p) => p.name)).toEqual(expect.arrayContaining(['etcd', 'kube-apiserver', 'kwok']));
    for (const p of state.processes) expect(isAlive(p.pid), p.name).toBe(true);

    const status = await kedge('cluster', 'status', '--name', NAME);
    expect(status.code).toBe(0);
    expect(status.out).toMatch(/kube-apiserver pid \d+: running/);
    expect(status.out).toContain(`KUBECONFIG=${kubeconfig as string}`);

    const down = await kedge('cluster', 'stop', '--name', NAME);
    expect(down.code, down.err).toBe(0);
    for (const p of state.processes) expect(isAlive(p.pid), `${p.name} after stop`).toBe(false);
    expect(existsSync(dir)).toBe(false);
    expect((await kedge('cluster', 'status', '--name', NAME)).code).toBe(1);
  }, 300_000);

  it('refuses a name that is no DNS label (exit 2)', async () => {
    const r = await kedge('cluster', 'start', '--name', 'Not A Label');
    expect(r.code).toBe(2);
    expect(r.err).toMatch(/^kedge cluster: --name must be a short DNS label/m);
  });
});
