import { parseConnectionString } from '@kedge/protocol';
import { z } from 'zod';
import { EdgeErrorCode, EdgeHubError } from './errors.js';
import { EDGE_HUB_MODULE } from './hub-client.js';

const port = z.number().int().min(0).max(65535);
const listener = (p: number): z.ZodDefault<z.ZodObject<{ host: z.ZodDefault<z.ZodString>; port: z.ZodDefault<typeof port> }>> =>
  z.object({ host: z.string().min(1).default('127.0.0.1'), port: port.default(p) }).default({ host: '127.0.0.1', port: p });

/**
 * The edge hub's configuration. `kedge edge-hub run` builds it from flags and environment; {@link parseEdgeHubConfig}
 * validates it once. Credentials are the `$edgeHub` module's: either `connectionString`
 * (`HostName=…;DeviceId=…;ModuleId=$edgeHub;SharedAccessKey=…`) or `deviceId` + `hub.hostName` + `edgeHubKey`.
 */
export const EdgeHubConfigSchema = z.object({
  /** The edge device's id (from the connection string when absent). */
  deviceId: z.string().min(1).optional(),
  /** `$edgeHub`'s connection string; gives `deviceId`, `hub.hostName` and the key. */
  connectionString: z.string().min(1).optional(),
  /** `$edgeHub`'s symmetric key (base64). */
  edgeHubKey: z.string().min(1).optional(),
  hub: z
    .object({
      /** The hub's host name: SAS audiences, user names, TLS name (from the connection string when absent). */
      hostName: z.string().min(1).optional(),
      /** Where to connect when not `hostName` (an IP address, a service name). */
      address: z.string().min(1).optional(),
      mqttPort: port.default(8883),
      httpsPort: port.default(443),
      /** PEM text of the CA the hub's certificate chains to; the system store when absent. */
      ca: z.string().optional(),
    })
    .default({ mqttPort: 8883, httpsPort: 443 }),
  /** The name modules and leaf devices dial (`GatewayHostName`): a TLS SAN and an accepted SAS audience host. */
  hostName: z.string().min(1).default('localhost'),
  /** Extra TLS SANs. */
  altNames: z.array(z.string().min(1)).default([]),
  /** Store, identity cache, twin cache and generated TLS material live here. */
  dataDir: z.string().min(1).default('./kedge-edge-hub-data'),
  /** MQTT over TLS (IoT Hub's 8883). */
  mqtt: listener(8883),
  /** MQTT over WebSockets (`/$iothub/websocket`); the Node SDK always dials 443, so unprivileged 8443 by default. */
  websocket: listener(8443).nullable(),
  /**
   * HTTPS (IoT Edge's 443): module direct method calls (`POST /twins/{d}[/modules/{m}]/methods`, which the Node and
   * Python SDKs send to port 443 of `GatewayHostName`). Absent: the `websocket` listener serves it too, as
   * edgeHub's 443 serves both (so off when `websocket` is null). Given with the same host and port as `websocket`:
   * one listener for both. Null: off.
   */
  https: z.object({ host: z.string().min(1).default('127.0.0.1'), port: port.default(8443) }).nullable().optional(),
  /** Plain-HTTP `/metrics` (Prometheus) and `/health`; IoT Edge serves them on 9600. Off when null. */
  metrics: z.object({ host: z.string().min(1).default('127.0.0.1'), port: port.default(9600) }).nullable().default(null),
  /** Given TLS material (PEM); generated under `<dataDir>/tls` from a per-device CA when absent. */
  tls: z.object({ cert: z.string(), key: z.string(), ca: z.string() }).optional(),
  limits: z
    .object({
      /** Largest message body (IoT Hub's 256 KiB). */
      maxMessageBytes: z.number().int().positive().default(256 * 1024),
      /** Largest CONNECT packet. */
      maxConnectBytes: z.number().int().positive().default(8 * 1024),
      /** Time to complete the TLS handshake and send CONNECT. */
      connectTimeoutMs: z.number().int().positive().default(10_000),
    })
    .default({ maxMessageBytes: 256 * 1024, maxConnectBytes: 8 * 1024, connectTimeoutMs: 10_000 }),
  identities: z
    .object({ refreshSeconds: z.number().positive().default(300), unknownRefreshSeconds: z.number().min(0).default(10) })
    .default({ refreshSeconds: 300, unknownRefreshSeconds: 10 }),
  upstream: z
    .object({
      /** Backoff of the edge hub's own connection (the probe): first delay, cap. */
      reconnectMinMs: z.number().int().positive().default(100),
      reconnectMaxMs: z.number().int().positive().default(500),
      /** Backoff cap of the connections on behalf of modules and leaf devices (woken when the probe connects). */
      childReconnectMaxMs: z.number().int().positive().default(30_000),
      keepaliveSeconds: z.number().int().positive().default(60),
      tokenTtlSeconds: z.number().int().min(600).default(3600),
      requestTimeoutMs: z.number().int().positive().default(10_000),
      /** How long a `$upstream` batch waits for the link before it fails and backs off. */
      waitMs: z.number().int().min(0).default(5_000),
      idleMs: z.number().int().positive().default(60_000),
    })
    .default({ reconnectMinMs: 100, reconnectMaxMs: 500, childReconnectMaxMs: 30_000, keepaliveSeconds: 60, tokenTtlSeconds: 3600, requestTimeoutMs: 10_000, waitMs: 5_000, idleMs: 60_000 }),
  /** The durable store (`@kedge/edge-store`, under `<dataDir>/store`). */
  store: z
    .object({
      /** `group` (default: group commit, one fdatasync per batch, acknowledged after it), `always`, `interval:<ms>`. */
      fsync: z.string().regex(/^(group|always|interval:\d{1,5})$/).default('group'),
      /** Disk quota in bytes; unlimited when absent. */
      maxBytes: z.number().int().positive().optional(),
      /** At the quota: drop the oldest messages (counted) or refuse new ones (not acknowledged). */
      onFull: z.enum(['evictOldest', 'rejectNew']).default('evictOldest'),
    })
    .default({ fsync: 'group', onFull: 'evictOldest' }),
  /** Endpoint executor settings (`@kedge/routing` `ExecutorOptions`; `batchSize` 500 when absent). */
  executor: z
    .object({ batchSize: z.number().int().positive().optional(), sendTimeoutMs: z.number().int().positive().optional() })
    .default({}),
  logLevel: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
});
export type EdgeHubConfigInput = z.input<typeof EdgeHubConfigSchema>;

/** A validated configuration with the credentials resolved. */
export type EdgeHubConfig = Omit<z.output<typeof EdgeHubConfigSchema>, 'deviceId' | 'edgeHubKey' | 'hub' | 'connectionString'> & {
  readonly deviceId: string;
  readonly edgeHubKey: string;
  readonly hub: z.output<typeof EdgeHubConfigSchema>['hub'] & { readonly hostName: string };
};

/**
 * Validates a configuration and resolves the `$edgeHub` credentials.
 * @throws EdgeHubError `EDGE_ERR_CONFIG` listing every problem.
 */
export function parseEdgeHubConfig(input: EdgeHubConfigInput): EdgeHubConfig {
  const r = EdgeHubConfigSchema.safeParse(input);
  if (!r.success) throw new EdgeHubError(EdgeErrorCode.Config, `Invalid edge hub configuration: ${r.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')}`);
  const c = r.data;
  const cs = c.connectionString ? parseConnectionString(c.connectionString) : new Map<string, string>();
  const problems: string[] = [];
  if (c.connectionString) {
    const m = cs.get('ModuleId');
    if (m !== undefined && m !== EDGE_HUB_MODULE) problems.push(`connectionString: must be the ${EDGE_HUB_MODULE} module's (ModuleId=${m})`);
  }
  const deviceId = c.deviceId ?? cs.get('DeviceId');
  const hostName = c.hub.hostName ?? cs.get('HostName');
  const key = c.edgeHubKey ?? cs.get('SharedAccessKey');
  if (!deviceId) problems.push('deviceId: required (or a connection string with DeviceId)');
  if (!hostName) problems.push('hub.hostName: required (or a connection string with HostName)');
  if (!key) problems.push('edgeHubKey: required (or a connection string with SharedAccessKey)');
  else if (!/^[A-Za-z0-9+/]+={0,2}$/.test(key)) problems.push('edgeHubKey: must be base64');
  if (problems.length > 0 || !deviceId || !hostName || !key) throw new EdgeHubError(EdgeErrorCode.Config, `Invalid edge hub configuration: ${problems.join('; ')}`);
  const { connectionString: _cs, ...rest } = c;
  return { ...rest, deviceId, edgeHubKey: key, hub: { ...c.hub, hostName } };
}
