/**
 * `kedge hub` as a user runs it (the built CLI, as a child process): `--amqp-port` puts AMQP over TLS where asked,
 * on the listen address, and the listening line and `endpoints.json` say where.
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, statSync } from 'node:fs';
import { createServer, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect } from 'node:tls';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { eventually } from '@kedge/testing';

const CLI = fileURLToPath(new URL('../../../dist/main.js', import.meta.url));

/** A port nothing listens on right now (the kernel's pick, released). */
const freePort = (): Promise<number> =>
  new Promise((done, fail) => {
    const s = createServer();
    s.once('error', fail);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as AddressInfo;
      s.close(() => done(port));
    });
  });

describe('kedge hub', () => {
  it('--amqp-port: AMQP over TLS on that port of the listen address, named in the listening line and endpoints.json', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'kedge-serve-'));
    const amqpPort = await freePort();
    const child = spawn(process.execPath, [CLI, 'hub', '--data-dir', dataDir, '--port', '0', '--mqtt-port', '0', '--amqp-port', String(amqpPort), '--log-level', 'silent', '--eventhub-name', 'line', '--eventhub-partitions', '2', '--eventhub-consumer-group', 'analytics', '--eventhub-consumer-group', 'archive'], { stdio: ['ignore', 'ignore', 'pipe'] });
    let err = '';
    child.stderr.on('data', (b: Buffer) => (err += b.toString('utf8')));
    const exited = new Promise<number | null>((done) => child.once('exit', (code) => done(code)));
    try {
      await eventually(() => existsSync(join(dataDir, 'endpoints.json')) && err.includes('listening'), { timeoutMs: 60_000, message: 'the hub listening' });
      expect(err).toContain(`amqps://127.0.0.1:${amqpPort} (AMQP)`);
      const endpoints = JSON.parse(readFileSync(join(dataDir, 'endpoints.json'), 'utf8')) as { amqp?: string; eventHubs?: unknown };
      expect(endpoints.amqp).toBe(`amqps://127.0.0.1:${amqpPort}`);
      // The Event Hubs-compatible endpoint as configured; its connection string (a secret) only in a 0600 file.
      expect(endpoints.eventHubs).toEqual({ name: 'line', partitionCount: 2, consumerGroups: ['$Default', 'analytics', 'archive'] });
      const ehFile = join(dataDir, 'eventhubs.connection-string');
      expect(statSync(ehFile).mode & 0o777).toBe(0o600);
      expect(readFileSync(ehFile, 'utf8')).toMatch(new RegExp(`^Endpoint=sb://127\\.0\\.0\\.1:${amqpPort}/;SharedAccessKeyName=service;SharedAccessKey=[A-Za-z0-9+/=]+;EntityPath=line\n$`));
      expect(err).toContain(`Event Hubs-compatible endpoint 'line' (2 partitions): ${ehFile}`);
      // A TLS handshake with the hub's own CA succeeds on that port: it is the hub's AMQP listener.
      const ca = readFileSync(join(dataDir, 'tls', 'ca.pem'));
      await new Promise<void>((done, fail) => {
        const s = connect({ host: '127.0.0.1', port: amqpPort, ca }, () => {
          s.destroy();
          done();
        });
        s.once('error', fail);
      });
    } finally {
      child.kill('SIGTERM');
      expect(await exited).toBe(0);
    }
  }, 120_000);
});
