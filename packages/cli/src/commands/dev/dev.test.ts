import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { eventually } from '@kedge/testing';
import { logProblems, registerDevCommands } from './index.js';
import { groupExists, isRunning, spawnDetached, stopGroup } from './processes.js';
import { captureOutput, inProcessKedge } from '../../test-support/capture.js';

const dir = mkdtempSync(join(tmpdir(), 'kedge-dev-unit-'));
const captured = captureOutput();
const kedge = inProcessKedge(registerDevCommands);
const started: number[] = [];
afterAll(() => {
  for (const pid of started) {
    try {
      process.kill(-pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
});

describe('kedge dev processes', () => {
  it('stops a detached process and the children it started (its whole process group)', async () => {
    const log = join(dir, 'tree.log');
    // A parent that starts a grandchild and prints its pid: both must be gone after stopGroup.
    const script = "const c=require('child_process').spawn(process.execPath,['-e','setInterval(()=>{},1000)'],{stdio:'ignore'});console.log('child',c.pid);setInterval(()=>{},1000)";
    const p = spawnDetached(process.execPath, ['-e', script], { cwd: dir, env: { PATH: process.env['PATH'] ?? '' }, logFile: log });
    started.push(p.pid);
    const child = await eventually(() => Number(/child (\d+)/.exec(readFileSync(log, 'utf8'))?.[1] ?? 0) || false, { timeoutMs: 10_000 });
    expect(isRunning(p)).toBe(true);
    expect(await stopGroup(p, 5_000)).toBe('stopped');
    expect(groupExists(p.pid)).toBe(false);
    expect(isRunning({ pid: child })).toBe(false);
  });

  it('never signals a pid that now belongs to another process (start time differs)', async () => {
    const other = spawn(process.execPath, ['-e', 'setInterval(()=>{},1000)'], { detached: true, stdio: 'ignore' });
    const pid = other.pid ?? 0;
    started.push(pid);
    // As if `dev up` had recorded this pid for a process that started at another time.
    expect(await stopGroup({ pid, startTime: '1' }, 1_000)).toBe('gone');
    expect(isRunning({ pid })).toBe(true);
    process.kill(-pid, 'SIGKILL');
  });
});

describe('kedge dev commands', () => {
  it('down refuses a directory that is not a dev state dir and removes nothing', async () => {
    const foreign = join(dir, 'foreign');
    mkdirSync(foreign);
    writeFileSync(join(foreign, 'precious.txt'), 'keep me');
    expect(await kedge('dev', 'down', '--state-dir', foreign)).toBe(2);
    expect(captured.err).toContain('is not a kedge dev state dir');
    expect(existsSync(join(foreign, 'precious.txt'))).toBe(true);
  });

  it('up refuses a non-empty directory that is not a dev state dir (down would remove it)', async () => {
    const foreign = join(dir, 'foreign-up');
    mkdirSync(foreign);
    writeFileSync(join(foreign, 'precious.txt'), 'keep me');
    expect(await kedge('dev', 'up', '--state-dir', foreign)).toBe(2);
    expect(captured.err).toContain('is not empty and not a kedge dev state dir');
    expect(readFileSync(join(foreign, 'precious.txt'), 'utf8')).toBe('keep me');
  });

  it('up says what to do when the hub port is taken, before starting anything', async () => {
    const taken = createServer();
    await new Promise<void>((r) => taken.listen(0, '127.0.0.1', r));
    const port = (taken.address() as { port: number }).port;
    const stateDir = join(dir, 'taken');
    try {
      expect(await kedge('dev', 'up', '--state-dir', stateDir, '--hub-port', String(port), '--edge-host', '127.0.61.7')).toBe(2);
    } finally {
      taken.close();
    }
    expect(captured.err).toContain(`127.0.0.1:${port} is taken: pick another port for the hub with --hub-port`);
    expect(existsSync(stateDir)).toBe(false);
  });

  it('status says how to start when nothing runs', async () => {
    expect(await kedge('dev', 'status', '--state-dir', join(dir, 'none'))).toBe(1);
    expect(captured.out).toContain('start with `npx kedge dev up`');
  });

  it('picks the readable problems out of a log (pino warn/error lines, usage errors), never stack frames', () => {
    const log = join(dir, 'mixed.log');
    writeFileSync(
      log,
      [
        JSON.stringify({ level: 30, msg: 'Started' }),
        JSON.stringify({ level: 50, msg: 'Upstream failed', err: { message: 'ECONNREFUSED 127.0.0.1:8883' } }),
        'kedge: cannot listen on 127.0.0.1:8443: the address is in use',
        '    at Server.listen (node:net:1:1)',
        'some usage text',
      ].join('\n'),
    );
    expect(logProblems(log)).toEqual(['Upstream failed: ECONNREFUSED 127.0.0.1:8883', 'kedge: cannot listen on 127.0.0.1:8443: the address is in use']);
  });
});
