import { randomUUID } from 'node:crypto';
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import { build } from './app.js';
import { defaultPolicies } from './auth/policies.js';
import { ServiceAuth } from './auth/service-auth.js';
import type { Bus } from './cluster/bus.js';
import { LocalBus, PgBus } from './cluster/bus.js';
import { announcingIdentityChanges } from './cluster/identity-events.js';
import type { HubConfigInput } from './config.js';
import { databaseUrl, parseHubConfig } from './config.js';
import { Deployments } from './deployments/deployments.js';
import type { Logger } from './log.js';
import { createLogger } from './log.js';
import { HubMetrics } from './metrics.js';
import { Methods } from './methods/methods.js';
import { DeviceGateway } from './mqtt/gateway.js';
import { Registry } from './registry/registry.js';
import type { HubServices } from './services.js';
import type { KyselyStore } from './storage/kysely-store.js';
import { openPostgresStore } from './storage/postgres.js';
import { ensurePrivateDir } from './storage/files.js';
import { openSqliteStore } from './storage/sqlite.js';
import { Telemetry } from './telemetry/telemetry.js';
import type { Server as TlsServer } from 'node:tls';
import type { TlsMaterial } from './tls/certs.js';
import { ensureCertificates } from './tls/certs.js';
import { Twins } from './twins/twins.js';

/** A running hub. */
export interface RunningHub {
  /** Where it listens: `service` (https), `websocket` (wss MQTT), `mqtt` (mqtts), `ops` (http, when enabled). */
  readonly urls: { readonly service: string; readonly mqtt: string; readonly websocket: string; readonly ops?: string };
  /** PEM of the CA clients must trust. */
  readonly ca: string;
  readonly hostName: string;
  readonly replicaId: string;
  /** `HostName=…;SharedAccessKeyName=<policy>;SharedAccessKey=…` for a shared access policy (default `iothubowner`). */
  connectionString(policy?: string): string;
  /** Graceful stop: refuse new work, finish and commit in-flight messages, close connections and the database. */
  close(): Promise<void>;
}

/** Extra wiring for embedding (tests, bench); the config stays the single source of settings. */
export interface StartOptions {
  /** Log destination; default stdout. */
  readonly logger?: Logger;
}

async function openStore(url: string, sync: 'NORMAL' | 'FULL', log: Logger): Promise<{ store: KyselyStore; bus: Bus }> {
  if (url.startsWith('postgres://') || url.startsWith('postgresql://')) {
    const { store, pool } = await openPostgresStore({ url, onIdleError: (e) => log.warn({ err: e.message }, 'Dropped an idle database connection') });
    const bus = new PgBus({ pool, log: log.child({ component: 'bus' }) });
    await bus.start();
    return { store, bus };
  }
  if (url.startsWith('sqlite:')) {
    return { store: await openSqliteStore({ path: url.slice('sqlite:'.length), synchronous: sync }), bus: new LocalBus() };
  }
  throw new Error(`Unsupported database URL '${url.replace(/\/\/[^@]*@/, '//***@')}': use sqlite:<path> or postgres://…`);
}

async function listen(app: FastifyInstance, host: string, port: number): Promise<number> {
  await app.listen({ host, port });
  const addr = app.server.address();
  return typeof addr === 'object' && addr ? addr.port : port;
}

const urlHost = (h: string): string => (h.includes(':') ? `[${h}]` : h);

/**
 * Starts a hub: opens (and migrates) the database, seeds the shared access policies on first start, generates
 * TLS material under `<dataDir>/tls` unless given, and listens for the service API (HTTPS + MQTT over
 * WebSockets), MQTT over TLS and, optionally, plain-HTTP health/metrics.
 */
export async function startHub(input: HubConfigInput, options: StartOptions = {}): Promise<RunningHub> {
  const config = parseHubConfig(input);
  const log = options.logger ?? createLogger({ level: config.logLevel });
  const replicaId = config.replicaId ?? randomUUID().slice(0, 8);
  const hostNames = [config.hostName, ...config.altNames];
  // The data dir holds the default database and the generated keys: 0700 whenever the hub uses it.
  if (!config.tls || config.db === undefined) ensurePrivateDir(config.dataDir);
  const tls: TlsMaterial = config.tls ?? ensureCertificates(join(config.dataDir, 'tls'), hostNames);
  const metrics = new HubMetrics();
  const opened = await openStore(databaseUrl(config), config.sqliteSynchronous, log);
  const { bus } = opened;
  // Every identity write is announced on the bus: MQTT sessions on every replica follow their credentials.
  const store = announcingIdentityChanges(opened.store, bus, log.child({ component: 'registry' }));
  const cleanups: Array<() => Promise<void>> = [];
  try {
    await store.seedPolicies(defaultPolicies());
    const auth = new ServiceAuth({ store, hostNames, log: log.child({ component: 'auth' }) });
    await auth.load();
    const twins = new Twins({ store, bus });
    const methods = new Methods({ store, bus, replicaId, log: log.child({ component: 'methods' }), metrics });
    const telemetry = new Telemetry({ store, bus, log: log.child({ component: 'telemetry' }), metrics, options: config.telemetry });
    const deployments = new Deployments({ store, twins, bus, log: log.child({ component: 'deployments' }), metrics, resyncSeconds: config.deployments.resyncSeconds });
    const gateway = new DeviceGateway({
      store,
      twins,
      methods,
      telemetry,
      bus,
      log: log.child({ component: 'mqtt' }),
      metrics,
      tls,
      hostNames,
      replicaId,
      maxMessageBytes: config.telemetry.maxMessageBytes,
      limits: config.deviceLimits,
    });
    methods.bindTransport(gateway);
    let ready = true;
    const services: HubServices = {
      store,
      auth,
      registry: new Registry({ store }),
      twins,
      methods,
      telemetry,
      deployments,
      bus,
      metrics,
      log,
      gateway,
      isReady: () => ready,
    };
    await store.clearReplicaPresence(replicaId);
    const mqtt = await gateway.start(config.mqtt);
    cleanups.push(() => gateway.close());
    const app = build({ services, https: { key: tls.key, cert: tls.cert } });
    // The service port carries MQTT over WebSockets: the same pre-authentication caps and TLS deadline apply.
    gateway.guardTlsListener(app.server as unknown as TlsServer);
    const servicePort = await listen(app, config.service.host, config.service.port);
    cleanups.push(() => app.close());
    let opsUrl: string | undefined;
    let ops: FastifyInstance | undefined;
    if (config.ops) {
      ops = build({ services, opsOnly: true });
      opsUrl = `http://${urlHost(config.ops.host)}:${await listen(ops, config.ops.host, config.ops.port)}`;
    }
    telemetry.start();
    deployments.start();
    log.info({ replicaId, hostName: config.hostName, servicePort, mqttPort: mqtt.port, db: store.dialect }, 'Started hub');

    const host = config.hostName;
    return {
      urls: {
        service: `https://${urlHost(host)}:${servicePort}`,
        mqtt: `mqtts://${urlHost(host)}:${mqtt.port}`,
        websocket: `wss://${urlHost(host)}:${servicePort}/$iothub/websocket`,
        ...(opsUrl ? { ops: opsUrl } : {}),
      },
      ca: tls.ca,
      hostName: host,
      replicaId,
      connectionString(policy = 'iothubowner') {
        const p = auth.policy(policy);
        if (!p) throw new Error(`Unknown shared access policy ${policy}`);
        return `HostName=${host};SharedAccessKeyName=${p.name};SharedAccessKey=${p.primaryKey}`;
      },
      async close() {
        ready = false;
        log.info({ replicaId }, 'Stopping hub');
        // 1. Stop taking work: the MQTT endpoint closes (aedes lets in-flight publishes reach the store first)
        //    and the HTTP listener drains its requests.
        methods.close();
        await Promise.allSettled([gateway.close(), app.close(), ops?.close()]);
        // 2. Commit every message that was accepted, then stop the background loops and the database.
        await telemetry.close();
        await deployments.close();
        await bus.close();
        await store.close();
        log.info({ replicaId }, 'Stopped hub');
      },
    };
  } catch (e) {
    for (const c of cleanups.reverse()) await c().catch(() => undefined);
    await bus.close().catch(() => undefined);
    await store.close().catch(() => undefined);
    throw e;
  }
}
