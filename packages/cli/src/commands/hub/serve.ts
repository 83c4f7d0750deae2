import { chmodSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Command } from 'commander';
import { UsageError, run } from './common.js';
import { untilStopSignal } from '../../io.js';

interface ServeOptions {
  dataDir: string;
  db?: string;
  hostName?: string;
  host: string;
  port: string;
  mqttPort: string;
  opsHost: string;
  opsPort?: string;
  logLevel: string;
  replicaId?: string;
}

const port = (v: string, flag: string): number => {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0 || n > 65535) throw new UsageError(`invalid ${flag} ${v}`);
  return n;
};

/** `kedge hub`: runs the hub until SIGINT/SIGTERM, then shuts down gracefully. */
export function registerServe(program: Command): void {
  program
    .command('hub')
    .description('Run the Kedge hub (IoT Hub-compatible service API, MQTT device endpoint)')
    .option('--data-dir <dir>', 'data directory (SQLite database, TLS material)', './kedge-hub-data')
    .option('--db <url>', 'sqlite:<path> (default <data-dir>/hub.db) or postgres://user@host/db')
    .option('--host-name <name>', 'public host name: connection strings, SAS audience, TLS name (default: --host, or localhost)')
    .option('--host <address>', 'listen address', '0.0.0.0')
    .option('--port <port>', 'HTTPS service API + MQTT over WebSockets port', '443')
    .option('--mqtt-port <port>', 'MQTT over TLS port', '8883')
    .option('--ops-host <address>', 'plain-HTTP health/metrics listen address', '127.0.0.1')
    .option('--ops-port <port>', 'plain-HTTP health/metrics port (disabled when absent)')
    .option('--replica-id <id>', 'replica id (PostgreSQL scale-out; random by default)')
    .option('--log-level <level>', 'fatal|error|warn|info|debug|trace|silent', 'info')
    .action(
      run(async (opts: ServeOptions) => {
        const hostName = opts.hostName ?? (opts.host === '0.0.0.0' || opts.host === '::' ? 'localhost' : opts.host);
        const { startHub } = await import('@kedge/hub');
        const hub = await startHub({
          dataDir: opts.dataDir,
          ...(opts.db ? { db: opts.db } : {}),
          hostName,
          service: { host: opts.host, port: port(opts.port, '--port') },
          mqtt: { host: opts.host, port: port(opts.mqttPort, '--mqtt-port') },
          ...(opts.opsPort ? { ops: { host: opts.opsHost, port: port(opts.opsPort, '--ops-port') } } : {}),
          ...(opts.replicaId ? { replicaId: opts.replicaId } : {}),
          logLevel: opts.logLevel as 'info',
        });
        // The owner connection string is a secret: it goes to a 0600 file, never to stdout or the logs.
        const csFile = join(opts.dataDir, 'iothubowner.connection-string');
        writeFileSync(csFile, `${hub.connectionString()}\n`, { mode: 0o600 });
        chmodSync(csFile, 0o600); // `mode` applies only when the file is created
        const caFile = join(opts.dataDir, 'tls', 'ca.pem');
        process.stderr.write(
          `kedge hub ${hub.replicaId} listening: ${hub.urls.service} (service), ${hub.urls.mqtt} (MQTT), ${hub.urls.websocket}` +
            `${hub.urls.ops ? `, ${hub.urls.ops} (health/metrics)` : ''}\n` +
            `  CA for clients: ${caFile}\n  owner connection string: ${csFile}\n` +
            `  export KEDGE_HUB_CONNECTION_STRING="$(cat ${csFile})" KEDGE_HUB_CA=${caFile}\n`,
        );
        await untilStopSignal();
        await hub.close();
      }),
    );
}
