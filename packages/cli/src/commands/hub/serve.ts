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
  amqpPort?: string;
  opsHost: string;
  opsPort?: string;
  logLevel: string;
  replicaId?: string;
  eventhubName?: string;
  eventhubPartitions?: string;
  eventhubConsumerGroup: string[];
}

const partitions = (v: string): number => {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1 || n > 128) throw new UsageError(`invalid --eventhub-partitions ${v}: 1-128`);
  return n;
};

const port = (v: string, flag: string): number => {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0 || n > 65535) throw new UsageError(`invalid ${flag} ${v}`);
  return n;
};

/** The file in the data dir naming the hub's listening URLs (`{ pid, hostName, service, mqtt, websocket, ops? }`). */
export const ENDPOINTS_FILE = 'endpoints.json';

/**
 * A failure to listen, as a usage error that says what to do: a privileged port (below 1024) needs privileges a
 * normal user lacks, and azure-iothub always dials 443, so say how to get 443 without running the hub as root.
 * Anything else passes through unchanged. Classified by the errno code, never by the message.
 */
export function listenError(e: unknown, opts: { host: string; port: string; mqttPort: string }): unknown {
  const err = e as (NodeJS.ErrnoException & { port?: number }) | undefined;
  const code = err?.code;
  if (err?.syscall !== 'listen' && err?.syscall !== 'bind') {
    if (code === 'EACCES' && err?.path) return new UsageError(`cannot write ${err.path} (permission denied): pick a --data-dir you own`);
    return e;
  }
  const where = `${opts.host}:${err.port ?? `${opts.port}/${opts.mqttPort}`}`;
  if (code === 'EACCES') {
    return new UsageError(
      `cannot listen on ${where}: ports below 1024 need privileges. Use the defaults (--port 8443 --mqtt-port 8883), or, for azure-iothub ` +
        `(which always dials https://<HostName>:443), redirect 443 to 8443 (e.g. \`sudo iptables -t nat -A OUTPUT -o lo -p tcp --dport 443 -j REDIRECT --to-port 8443\`), ` +
        `grant node the capability once (\`sudo setcap cap_net_bind_service=+ep "$(command -v node)"\`) or run the hub in a container; see docs/hub.md`,
    );
  }
  if (code === 'EADDRINUSE') return new UsageError(`cannot listen on ${where}: the address is in use (another hub, or \`kedge dev up\`?); pick other ports with --port/--mqtt-port/--amqp-port`);
  if (code === 'EADDRNOTAVAIL') return new UsageError(`cannot listen on ${opts.host}: no such local address; use 127.0.0.1 or an address of this machine`);
  return e;
}

/** `kedge hub`: runs the hub until SIGINT/SIGTERM, then shuts down gracefully. */
export function registerServe(program: Command): void {
  program
    .command('hub')
    .description('Run the Kedge hub (IoT Hub-compatible service API, MQTT device endpoint)')
    .option('--data-dir <dir>', 'data directory (SQLite database, TLS material)', './kedge-hub-data')
    .option('--db <url>', 'sqlite:<path> (default <data-dir>/hub.db) or postgres://user@host/db')
    .option('--host-name <name>', 'public host name: connection strings, SAS audience, TLS name (default: --host, or localhost)')
    // Loopback and unprivileged ports by default: a normal user can run it, and nothing is exposed unless asked.
    .option('--host <address>', 'listen address (0.0.0.0: every interface)', '127.0.0.1')
    .option('--port <port>', 'HTTPS service API + MQTT over WebSockets port (azure-iothub needs 443: see docs/hub.md)', '8443')
    .option('--mqtt-port <port>', 'MQTT over TLS port', '8883')
    .option('--amqp-port <port>', "AMQP over TLS port (azure-iothub's Client dials 5671; default 5671, or AMQP only over WebSockets when 5671 is taken)")
    .option('--ops-host <address>', 'plain-HTTP health/metrics listen address', '127.0.0.1')
    .option('--ops-port <port>', 'plain-HTTP health/metrics port (disabled when absent)')
    .option('--replica-id <id>', 'replica id (PostgreSQL scale-out; random by default)')
    .option('--log-level <level>', 'fatal|error|warn|info|debug|trace|silent', 'info')
    .option('--eventhub-name <name>', "Event Hubs-compatible endpoint's name (EntityPath; default: the host name's first label, or kedge)")
    .option('--eventhub-partitions <n>', 'Event Hubs-compatible partitions, fixed when the database is created (default 4)')
    .option('--eventhub-consumer-group <name>', 'a consumer group besides $Default (repeatable)', (v: string, all: string[]) => [...all, v], [] as string[])
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
          ...(opts.amqpPort !== undefined ? { amqp: { host: opts.host, port: port(opts.amqpPort, '--amqp-port') } } : {}),
          ...(opts.opsPort ? { ops: { host: opts.opsHost, port: port(opts.opsPort, '--ops-port') } } : {}),
          ...(opts.replicaId ? { replicaId: opts.replicaId } : {}),
          eventHubs: {
            ...(opts.eventhubName ? { name: opts.eventhubName } : {}),
            ...(opts.eventhubPartitions !== undefined ? { partitionCount: partitions(opts.eventhubPartitions) } : {}),
            consumerGroups: opts.eventhubConsumerGroup,
          },
          logLevel: opts.logLevel as 'info',
        }).catch((e: unknown) => {
          throw listenError(e, opts);
        });
        // The owner connection string is a secret: it goes to a 0600 file, never to stdout or the logs.
        const csFile = join(opts.dataDir, 'iothubowner.connection-string');
        writeFileSync(csFile, `${hub.connectionString()}\n`, { mode: 0o600 });
        chmodSync(csFile, 0o600); // `mode` applies only when the file is created
        // The Event Hubs-compatible endpoint's connection string (the `service` policy's key): a secret as well.
        const ehFile = join(opts.dataDir, 'eventhubs.connection-string');
        writeFileSync(ehFile, `${hub.eventHubsConnectionString()}\n`, { mode: 0o600 });
        chmodSync(ehFile, 0o600);
        const caFile = join(opts.dataDir, 'tls', 'ca.pem');
        // Where it listens, for tools that start it with port 0 (`kedge dev up`): no secret in it.
        writeFileSync(join(opts.dataDir, ENDPOINTS_FILE), `${JSON.stringify({ pid: process.pid, hostName, ...hub.urls, eventHubs: hub.eventHubs })}\n`);
        process.stderr.write(
          `kedge hub ${hub.replicaId} listening: ${hub.urls.service} (service), ${hub.urls.mqtt} (MQTT), ` +
            `${hub.urls.amqp ? `${hub.urls.amqp} (AMQP), ` : ''}${hub.urls.websocket}` +
            `${hub.urls.ops ? `, ${hub.urls.ops} (health/metrics)` : ''}\n` +
            `  CA for clients: ${caFile}\n  owner connection string: ${csFile}\n` +
            `  Event Hubs-compatible endpoint '${hub.eventHubs.name}' (${hub.eventHubs.partitionCount} partitions): ${ehFile}\n` +
            `  export KEDGE_HUB_CONNECTION_STRING="$(cat ${csFile})" KEDGE_HUB_CA=${caFile}\n`,
        );
        await untilStopSignal();
        await hub.close();
      }),
    );
}
