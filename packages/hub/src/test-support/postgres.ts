import { spawn, spawnSync } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { chownSync, existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/**
 * Where the PostgreSQL server binaries live: `$KEDGE_PG_BIN`, else the newest Debian `/usr/lib/postgresql/<major>/bin`
 * that has `initdb` (15 on the development machine; `.ci/run` accepts whatever major Debian's apt installs).
 */
export const PG_BIN = process.env['KEDGE_PG_BIN'] ?? newestDebianPostgresBin() ?? '/usr/lib/postgresql/15/bin';

function newestDebianPostgresBin(): string | undefined {
  const root = '/usr/lib/postgresql';
  if (!existsSync(root)) return undefined;
  return readdirSync(root)
    .filter((v) => /^\d+$/.test(v) && existsSync(join(root, v, 'bin', 'initdb')))
    .sort((a, b) => Number(b) - Number(a))
    .map((v) => join(root, v, 'bin'))[0];
}

/** A throwaway PostgreSQL server for one test file. */
export interface TestPostgres {
  readonly url: string;
  stop(): Promise<void>;
}

/** Whether the binaries are present; tests skip loudly without them unless `KEDGE_REQUIRE_POSTGRES=1`. */
export const postgresAvailable = (): boolean => existsSync(join(PG_BIN, 'initdb')) && existsSync(join(PG_BIN, 'postgres'));

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const a = s.address();
      const port = typeof a === 'object' && a ? a.port : 0;
      s.close(() => resolve(port));
    });
  });
}

/**
 * Runs `initdb` and `postgres` in a fresh temp dir on a free 127.0.0.1 port, trust auth, fsync off (tests only).
 * `initdb` refuses to run as root, so as root both run as `nobody` (via `setpriv`) with the temp dir chowned to it.
 * `stop()` signals the server by its pid (fast shutdown) and removes the directory.
 */
export async function startTestPostgres(): Promise<TestPostgres> {
  const dir = mkdtempSync(join(tmpdir(), 'kedge-pg-'));
  const data = join(dir, 'data');
  const isRoot = process.getuid?.() === 0;
  let uid = -1;
  let gid = -1;
  if (isRoot) {
    const id = spawnSync('id', ['-u', 'nobody'], { encoding: 'utf8' });
    const gidOut = spawnSync('id', ['-g', 'nobody'], { encoding: 'utf8' });
    uid = Number(id.stdout.trim());
    gid = Number(gidOut.stdout.trim());
    chownSync(dir, uid, gid);
  }
  const asUser = (cmd: string, args: string[]): [string, string[]] =>
    isRoot ? ['setpriv', [`--reuid=${uid}`, `--regid=${gid}`, '--clear-groups', cmd, ...args]] : [cmd, args];
  const [c1, a1] = asUser(join(PG_BIN, 'initdb'), ['-D', data, '-U', 'kedge', '--auth=trust', '--no-sync', '-E', 'UTF8', '--locale=C']);
  const init = spawnSync(c1, a1, { encoding: 'utf8', cwd: dir });
  if (init.status !== 0) throw new Error(`initdb failed: ${init.stderr || init.stdout}`);
  writeFileSync(join(data, 'postgresql.auto.conf'), 'fsync = off\nsynchronous_commit = off\nfull_page_writes = off\nmax_connections = 200\n');
  const port = await freePort();
  const [c2, a2] = asUser(join(PG_BIN, 'postgres'), ['-D', data, '-p', String(port), '-h', '127.0.0.1', '-k', dir]);
  const child: ChildProcess = spawn(c2, a2, { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'] });
  let log = '';
  child.stderr?.on('data', (d: Buffer) => {
    log += d.toString('utf8');
  });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const deadline = Date.now() + 30_000;
  for (;;) {
    if (log.includes('ready to accept connections')) break;
    if (child.exitCode !== null || Date.now() > deadline) {
      child.kill('SIGKILL');
      rmSync(dir, { recursive: true, force: true });
      throw new Error(`postgres did not start: ${log}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  return {
    url: `postgres://kedge@127.0.0.1:${port}/postgres`,
    async stop() {
      if (child.pid !== undefined && child.exitCode === null) {
        // SIGINT = "fast shutdown". setpriv execs postgres, so the pid is the postmaster's.
        process.kill(child.pid, 'SIGINT');
        await exited;
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** Starts PostgreSQL, or returns `undefined` (with a loud warning) when absent and not required. */
export async function maybeStartTestPostgres(): Promise<TestPostgres | undefined> {
  if (!postgresAvailable()) {
    if (process.env['KEDGE_REQUIRE_POSTGRES'] === '1') throw new Error(`KEDGE_REQUIRE_POSTGRES=1 but PostgreSQL binaries are missing in ${PG_BIN}`);
    console.warn(`\n*** SKIPPING PostgreSQL tests: no PostgreSQL server binaries in ${PG_BIN} (apt install postgresql, or set KEDGE_PG_BIN) ***\n`);
    return undefined;
  }
  return startTestPostgres();
}
