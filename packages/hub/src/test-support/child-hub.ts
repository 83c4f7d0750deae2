import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { readdirSync, readFileSync, readlinkSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { HubConfigInput } from '../config.js';

const repoRoot = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..', '..');

/** A hub running in a child process. */
export interface ChildHub {
  readonly pid: number;
  readonly urls: { readonly service: string; readonly mqtt: string; readonly websocket: string };
  readonly ca: string;
  readonly connectionString: string;
  /** Resident set size of the hub process, bytes (`VmRSS`). */
  rss(): number;
  /** Open sockets of the hub process (file descriptors that are sockets). */
  sockets(): number;
  stop(): Promise<void>;
}

/** Starts `hub-process.ts` under vite-node with `config`; resolves once it listens. */
export async function startHubProcess(config: HubConfigInput, timeoutMs = 60_000): Promise<ChildHub> {
  const viteNode = join(dirname(createRequire(import.meta.url).resolve('vite-node/package.json')), 'vite-node.mjs');
  const child: ChildProcess = spawn(process.execPath, [viteNode, '--config', join(repoRoot, 'vitest.config.ts'), join(repoRoot, 'packages/hub/src/test-support/hub-process.ts')], {
    cwd: repoRoot,
    env: { ...process.env, KEDGE_HUB_CONFIG: JSON.stringify(config) },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stderr = '';
  child.stderr?.on('data', (d: Buffer) => {
    stderr = (stderr + d.toString()).slice(-4000);
  });
  const ready = await new Promise<{ urls: ChildHub['urls']; ca: string; connectionString: string }>((resolve, reject) => {
    let out = '';
    const timer = setTimeout(() => reject(new Error(`hub process did not start: ${stderr}`)), timeoutMs);
    child.stdout?.on('data', (d: Buffer) => {
      out += d.toString();
      const line = out.split('\n').find((l) => l.startsWith('READY '));
      if (line) {
        clearTimeout(timer);
        resolve(JSON.parse(line.slice('READY '.length)) as { urls: ChildHub['urls']; ca: string; connectionString: string });
      }
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`hub process exited (${code ?? 'signal'}): ${stderr}`));
    });
  });
  const pid = child.pid ?? 0;
  return {
    pid,
    ...ready,
    rss: () => {
      const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
      return Number(m?.[1] ?? 0) * 1024;
    },
    sockets: () =>
      readdirSync(`/proc/${pid}/fd`).filter((fd) => {
        try {
          return readlinkSync(`/proc/${pid}/fd/${fd}`).startsWith('socket:');
        } catch {
          return false;
        }
      }).length,
    stop: () =>
      new Promise<void>((resolve) => {
        if (child.exitCode !== null) {
          resolve();
          return;
        }
        const kill = setTimeout(() => child.kill('SIGKILL'), 15_000);
        child.once('exit', () => {
          clearTimeout(kill);
          resolve();
        });
        child.kill('SIGTERM');
      }),
  };
}
