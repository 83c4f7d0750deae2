import { join } from 'node:path';
import { z } from 'zod';
import { C2dConfigSchema } from './c2d/c2d.js';
import { EventHubsConfigSchema } from './eventhubs/config.js';
import { DeviceLimitsSchema } from './mqtt/admission.js';

const listener = (port: number): z.ZodDefault<z.ZodObject<{ host: z.ZodDefault<z.ZodString>; port: z.ZodDefault<z.ZodNumber> }>> =>
  z.object({ host: z.string().default('0.0.0.0'), port: z.number().int().min(0).max(65535).default(port) }).default({ host: '0.0.0.0', port });

/**
 * The hub's configuration. `kedge hub` builds it from flags; `startHub` validates it once (no module-level env
 * reads anywhere in the hub).
 */
export const HubConfigSchema = z.object({
  /** Where the SQLite database, TLS material and generated keys live. */
  dataDir: z.string().default('./kedge-hub-data'),
  /** `sqlite:<path>` (default `sqlite:<dataDir>/hub.db`), `sqlite::memory:` or `postgres://…`. */
  db: z.string().optional(),
  /**
   * The hub's public name: the `HostName` of connection strings, the SAS audience and a TLS SAN. Clients connect to
   * it, so with azure-iothub it must resolve to the service listener on port 443.
   */
  hostName: z.string().min(1).default('localhost'),
  /** Extra TLS SANs (DNS names or IPs) besides `hostName`. */
  altNames: z.array(z.string()).default([]),
  /** HTTPS service API + MQTT over WebSockets (`/$iothub/websocket`). azure-iothub always uses 443. */
  service: listener(443),
  /** MQTT over TLS. */
  mqtt: listener(8883),
  /**
   * AMQP 1.0 over TLS (IoT Hub's 5671; azure-iothub's `Client` always uses 5671). When absent: port 5671 on the MQTT
   * listener's host, and a port already taken only disables it (with a warning). AMQP over WebSockets is on `service`.
   */
  amqp: z.object({ host: z.string(), port: z.number().int().min(0).max(65535) }).optional(),
  /** Cloud-to-device messages: TTL, queue depth, delivery count, lock timeout (IoT Hub's defaults). */
  c2d: C2dConfigSchema,
  /** Optional plain-HTTP listener for `/health/*` and `/metrics` (Prometheus scraping without TLS). */
  ops: z.object({ host: z.string().default('127.0.0.1'), port: z.number().int().min(0).max(65535) }).optional(),
  /** Given TLS material (PEM text); generated under `<dataDir>/tls` when absent. */
  tls: z.object({ cert: z.string(), key: z.string(), ca: z.string() }).optional(),
  telemetry: z
    .object({
      retentionHours: z.number().positive().default(24 * 7),
      maxMessages: z.number().int().positive().default(1_000_000),
      maxMessageBytes: z.number().int().positive().default(256 * 1024),
      batchMaxMessages: z.number().int().positive().default(1000),
      batchMaxDelayMs: z.number().int().min(0).default(2),
      purgeIntervalSeconds: z.number().positive().default(60),
    })
    .default({ retentionHours: 24 * 7, maxMessages: 1_000_000, maxMessageBytes: 256 * 1024, batchMaxMessages: 1000, batchMaxDelayMs: 2, purgeIntervalSeconds: 60 }),
  /** The Event Hubs-compatible endpoint (on the AMQP listener): name, partitions, consumer groups. */
  eventHubs: EventHubsConfigSchema,
  /** Device endpoint limits before authentication (see docs/hub.md "Security model"). */
  deviceLimits: DeviceLimitsSchema,
  deployments: z.object({ resyncSeconds: z.number().positive().default(60) }).default({ resyncSeconds: 60 }),
  /** Identifies this replica in presence records (PostgreSQL scale-out); random when absent. */
  replicaId: z.string().optional(),
  logLevel: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  sqliteSynchronous: z.enum(['NORMAL', 'FULL']).default('NORMAL'),
  /** Seconds to wait for in-flight work on shutdown. */
  shutdownGraceSeconds: z.number().positive().default(10),
});
export type HubConfigInput = z.input<typeof HubConfigSchema>;
export type HubConfig = z.output<typeof HubConfigSchema>;

/** Validates a config; throws a readable error listing every bad field. */
export function parseHubConfig(input: HubConfigInput): HubConfig {
  const r = HubConfigSchema.safeParse(input);
  if (!r.success) throw new Error(`Invalid hub configuration: ${r.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')}`);
  return r.data;
}

/** The database URL the config resolves to. */
export const databaseUrl = (c: HubConfig): string => c.db ?? `sqlite:${join(c.dataDir, 'hub.db')}`;
