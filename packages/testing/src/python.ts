import { spawn, spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { repoRoot } from './binaries.js';

let cached: string | undefined;

/**
 * The python of a virtualenv holding Microsoft's Python IoT SDKs (`azure-iot-device`, `azure-iot-hub`, pinned in
 * `testenv/python-requirements.txt`), created once by `testenv/python.sh` and cached outside the repo. Throws with
 * the script's output when it cannot be made: the Python SDKs are acceptance oracles, never a reason to skip.
 */
export function pythonSdk(): string {
  if (cached) return cached;
  const r = spawnSync('bash', [join(repoRoot(), 'testenv', 'python.sh')], { encoding: 'utf8', timeout: 600_000 });
  const path = r.stdout.trim().split('\n').pop() ?? '';
  if (r.status !== 0 || path === '') throw new Error(`testenv/python.sh failed (exit ${String(r.status)}):\n${r.stderr}`);
  cached = path;
  return path;
}

/** What a Python script printed and how it ended. */
export interface PythonRun {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

/**
 * Runs `script` (Python source, passed on stdin) with the SDK virtualenv's python. The child is killed (by its pid)
 * after `timeoutMs`; `env` is added to the test process's environment.
 */
export function runPython(script: string, opts: { env?: Record<string, string>; timeoutMs?: number } = {}): Promise<PythonRun> {
  const python = pythonSdk();
  return new Promise((resolve, reject) => {
    const child = spawn(python, ['-'], { env: { ...process.env, ...opts.env }, stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs ?? 60_000);
    child.once('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    child.once('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
    child.stdin.end(script);
  });
}
