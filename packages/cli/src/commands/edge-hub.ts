import { readFileSync } from 'node:fs';
import { isIP } from 'node:net';
import type { Command } from 'commander';
import { UsageError, run } from './hub/common.js';
import { untilStopSignal } from '../io.js';

interface RunOptions {
  connectionString?: string;
  hubAddress?: string;
  hubCa?: string;
  hubMqttPort?: string;
  hubHttpsPort?: string;
  hubEndpoints?: string;
  hostName?: string;
  host?: string;
  mqttPort: string;
  wsPort: string;
  httpsPort?: string;
  metricsPort?: string;
  metricsHost: string;
  dataDir: string;
  fsync: string;
  maxStoreBytes?: string;
  logLevel: string;
}

const port = (v: string, flag: string): number => {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0 || n > 65535) throw new UsageError(`invalid ${flag} ${v}`);
  return n;
};

const readFile = (path: string, flag: string): string => {
  try {
    return readFileSync(path, 'utf8');
  } catch (e) {
    throw new UsageError(`cannot read ${flag} ${path}: ${(e as NodeJS.ErrnoException).code ?? 'error'}`);
  }
};

/** The hub's ports from a `kedge hub` `endpoints.json` (`--hub-endpoints`): how `kedge dev` points the edge hub at its hub. */
function hubEndpointPorts(file: string): { mqttPort: number; httpsPort: number } {
  let doc: { mqtt?: unknown; service?: unknown };
  try {
    doc = JSON.parse(readFile(file, '--hub-endpoints')) as { mqtt?: unknown; service?: unknown };
  } catch (e) {
    if (e instanceof UsageError) throw e;
    throw new UsageError(`--hub-endpoints ${file} is not JSON`);
  }
  const portOf = (url: unknown): number => {
    // WHATWG URLs leave the scheme's default port out (https://h is 443).
    const u = typeof url === 'string' && URL.canParse(url) ? new URL(url) : undefined;
    const n = u === undefined ? NaN : u.port !== '' ? Number(u.port) : u.protocol === 'https:' ? 443 : NaN;
    if (!Number.isInteger(n) || n <= 0) throw new UsageError(`--hub-endpoints ${file}: no usable mqtt/service URL`);
    return n;
  };
  return { mqttPort: portOf(doc.mqtt), httpsPort: portOf(doc.service) };
}

/**
 * `kedge edge-hub run`: runs an edge hub until SIGINT/SIGTERM. The `$edgeHub` connection string comes from
 * `--connection-string`, `KEDGE_EDGEHUB_CONNECTION_STRING` or `EdgeHubConnectionString` (what the agent gives its
 * edge hub module), read when the command runs, never logged. Started by the agent, the edge hub takes its host name
 * from `EdgeDeviceHostName` (the name the agent gives modules as their gateway), and listens on it when it is an
 * address. Run by the agent in workload mode (`IOTEDGE_WORKLOADURI`, `IOTEDGE_MODULEGENERATIONID` set), it gets its
 * server certificate for the name modules dial from the workload API, as IoT Edge's edgeHub does, so it chains to the
 * trust bundle modules fetch.
 */
export function registerEdgeHubCommands(program: Command): void {
  const edgeHub = program.command('edge-hub').description("Kedge's edge hub: the device's IoT Hub-compatible MQTT broker, routes and store-and-forward");
  edgeHub
    .command('run')
    .description('Run the edge hub of one edge device')
    .option('--connection-string <cs>', "the $edgeHub module's connection string (default: $KEDGE_EDGEHUB_CONNECTION_STRING)")
    .option('--hub-address <address>', "where to reach the hub when its HostName does not resolve to it")
    .option('--hub-ca <file>', "PEM of the CA the hub's certificate chains to (default: the system store)")
    .option('--hub-mqtt-port <port>', "the hub's MQTT over TLS port (default 8883)")
    .option('--hub-https-port <port>', "the hub's HTTPS port, device scope (default 443)")
    .option('--hub-endpoints <file>', "the hub's ports from its endpoints.json (a `kedge hub` data dir), unless the port flags are given")
    .option('--host-name <name>', 'the name modules dial (GatewayHostName): TLS name and SAS audience (default: $EdgeDeviceHostName, else --host, or localhost)')
    .option('--host <address>', 'listen address (default: $EdgeDeviceHostName when it is an address, else 127.0.0.1)')
    .option('--mqtt-port <port>', 'MQTT over TLS port', '8883')
    .option('--ws-port <port>', "MQTT over WebSockets port, or 'off'", '8443')
    .option('--https-port <port>', "HTTPS port for module direct methods (the SDKs dial 443), or 'off' (default: served on the --ws-port listener)")
    .option('--metrics-host <address>', 'plain-HTTP /metrics listen address', '127.0.0.1')
    .option('--metrics-port <port>', 'plain-HTTP /metrics port (disabled when absent; IoT Edge uses 9600)')
    .option('--data-dir <dir>', 'store, identity and twin caches, TLS material', './kedge-edge-hub-data')
    .option('--fsync <policy>', 'group | always | interval:<ms>', 'group')
    .option('--max-store-bytes <n>', 'disk quota of the store (oldest messages are evicted and counted)')
    .option('--log-level <level>', 'fatal|error|warn|info|debug|trace|silent', 'info')
    .action(
      run(async (opts: RunOptions) => {
        const connectionString = opts.connectionString ?? process.env['KEDGE_EDGEHUB_CONNECTION_STRING'] ?? process.env['EdgeHubConnectionString'];
        if (!connectionString) throw new UsageError('the $edgeHub connection string is required (--connection-string or KEDGE_EDGEHUB_CONNECTION_STRING)');
        const deviceHost = process.env['EdgeDeviceHostName'] || undefined;
        const host = opts.host ?? (deviceHost !== undefined && isIP(deviceHost) !== 0 ? deviceHost : '127.0.0.1');
        const hostName = opts.hostName ?? deviceHost ?? (host === '0.0.0.0' || host === '::' ? 'localhost' : host);
        const fromFile = opts.hubEndpoints ? hubEndpointPorts(opts.hubEndpoints) : undefined;
        const tls = await workloadTls(hostName);
        const maxBytes = opts.maxStoreBytes === undefined ? undefined : Number(opts.maxStoreBytes);
        if (maxBytes !== undefined && (!Number.isInteger(maxBytes) || maxBytes <= 0)) throw new UsageError(`invalid --max-store-bytes ${opts.maxStoreBytes ?? ''}`);
        const { startEdgeHub, isEdgeHubError } = await import('@kedge/edge-hub');
        let edge;
        try {
          edge = await startEdgeHub({
            connectionString,
            hub: {
              ...(opts.hubAddress ? { address: opts.hubAddress } : {}),
              ...(opts.hubCa ? { ca: readFile(opts.hubCa, '--hub-ca') } : {}),
              mqttPort: opts.hubMqttPort ? port(opts.hubMqttPort, '--hub-mqtt-port') : (fromFile?.mqttPort ?? 8883),
              httpsPort: opts.hubHttpsPort ? port(opts.hubHttpsPort, '--hub-https-port') : (fromFile?.httpsPort ?? 443),
            },
            hostName,
            dataDir: opts.dataDir,
            mqtt: { host, port: port(opts.mqttPort, '--mqtt-port') },
            websocket: opts.wsPort === 'off' ? null : { host, port: port(opts.wsPort, '--ws-port') },
            ...(opts.httpsPort === undefined ? {} : { https: opts.httpsPort === 'off' ? null : { host, port: port(opts.httpsPort, '--https-port') } }),
            metrics: opts.metricsPort ? { host: opts.metricsHost, port: port(opts.metricsPort, '--metrics-port') } : null,
            store: { fsync: opts.fsync, ...(maxBytes === undefined ? {} : { maxBytes }) },
            ...(tls ? { tls } : {}),
            logLevel: opts.logLevel as 'info',
          });
        } catch (e) {
          if (isEdgeHubError(e, 'EDGE_ERR_CONFIG')) throw new UsageError(e.message);
          throw e;
        }
        process.stderr.write(
          `kedge edge-hub listening: ${edge.urls.mqtt} (MQTT)${edge.urls.websocket ? `, ${edge.urls.websocket}` : ''}${edge.urls.https ? `, ${edge.urls.https} (direct methods)` : ''}${edge.urls.metrics ? `, ${edge.urls.metrics}` : ''}\n` +
            `  CA for modules (EdgeModuleCACertificateFile): ${edge.caFile}\n`,
        );
        await untilStopSignal();
        await edge.close();
      }),
    );
}

/** The server certificate from the workload API when the process runs in workload mode; else undefined (self-made). */
async function workloadTls(hostName: string): Promise<{ cert: string; key: string; ca: string } | undefined> {
  const { workloadIdentityFromEnv, requestServerCertificate } = await import('@kedge/agent');
  const identity = workloadIdentityFromEnv(process.env);
  if (!identity) return undefined;
  const c = await requestServerCertificate(identity, hostName);
  return { cert: c.cert, key: c.key, ca: c.trustBundle };
}
