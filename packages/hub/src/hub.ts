import { randomUUID } from 'node:crypto';
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import { AmqpEndpoint } from './amqp/endpoint.js';
import { build } from './app.js';
import { defaultPolicies } from './auth/policies.js';
import { ServiceAuth } from './auth/service-auth.js';
import type { Bus } from './cluster/bus.js';
import { LocalBus, PgBus } from './cluster/bus.js';
import { CloudToDevice } from './c2d/c2d.js';
import { announcingIdentityChanges } from './cluster/identity-events.js';
import type { HubConfig, HubConfigInput } from './config.js';
import { databaseUrl, parseHubConfig } from './config.js';
import { Deployments } from './deployments/deployments.js';
import { eventHubName } from './eventhubs/config.js';
import { DEFAULT_CONSUMER_GROUP, EventHubsEndpoint } from './eventhubs/endpoint.js';
import type { Logger } from './log.js';
import { createLogger } from './log.js';
import { HubMetrics } from './metrics.js';
import { Methods } from './methods/methods.js';
import { Admission, PACKET_OVERHEAD_BYTES } from './mqtt/admission.js';
import { DeviceGateway } from './mqtt/gateway.js';
import { Registry } from './registry/registry.js';
import type { HubServices } from './services.js';
import type { KyselyStore } from './storage/kysely-store.js';
import { openPostgresStore } from './storage/postgres.js';
import { ensurePrivateDir } from './storage/files.js';
import { openSqliteStore } from './storage/sqlite.js';
import type { Store } from './storage/store.js';
import { Telemetry } from './telemetry/telemetry.js';
import type { Server as TlsServer } from 'node:tls';
import type { TlsMaterial } from './tls/certs.js';
import { ensureCertificates } from './tls/certs.js';
import { Twins } from './twins/twins.js';

/** A running hub. */
export interface RunningHub {
  /**
   * Where it listens: `service` (https), `websocket` (wss: MQTT and AMQP by subprotocol), `mqtt` (mqtts), `amqp`
   * (amqps, absent when only WebSockets carry AMQP), `ops` (http, when enabled).
   */
  readonly urls: { readonly service: string; readonly mqtt: string; readonly websocket: string; readonly amqp?: string; readonly ops?: string };
  /** PEM of the CA clients must trust. */
  readonly ca: string;
  readonly hostName: string;
  readonly replicaId: string;
  /** `HostName=…;SharedAccessKeyName=<policy>;SharedAccessKey=…` for a shared access policy (default `iothubowner`). */
  connectionString(policy?: string): string;
  /** The Event Hubs-compatible endpoint: its name (`EntityPath`), partitions and consumer groups. */
  readonly eventHubs: { readonly name: string; readonly partitionCount: number; readonly consumerGroups: readonly string[] };
  /**
   * `Endpoint=sb://{host}/;SharedAccessKeyName=<policy>;SharedAccessKey=…;EntityPath={name}` for a policy with
   * ServiceConnect (default `service`), what `EventHubConsumerClient` takes.
   */
  eventHubsConnectionString(policy?: string): string;
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

/**
 * Starts the AMQP/TLS listener: where configured (a failure is fatal), else on 5671 of the MQTT host, where a port
 * already in use (another hub on the machine) only leaves AMQP to the WebSocket endpoint.
 */
async function startAmqp(amqp: AmqpEndpoint, config: HubConfig, log: Logger): Promise<{ port: number } | undefined> {
  if (config.amqp) return amqp.start(config.amqp);
  try {
    return await amqp.start({ host: config.mqtt.host, port: 5671 });
  } catch (e) {
    if ((e as { code?: unknown }).code !== 'EADDRINUSE') throw e;
    log.warn({ host: config.mqtt.host, port: 5671 }, 'AMQP port in use: AMQP only over WebSockets (set amqp.port to choose one)');
    return undefined;
  }
}

/** Creates the Event Hubs partitions on first start; the stored count wins over a changed config (warned). */
async function startEventHubs(store: Store, config: HubConfig, log: Logger): Promise<{ name: string; partitionCount: number; createdAt: number }> {
  const partitionCount = await store.initPartitions(config.eventHubs.partitionCount, Date.now());
  if (partitionCount !== config.eventHubs.partitionCount) {
    log.warn({ configured: config.eventHubs.partitionCount, stored: partitionCount }, 'Event Hubs partition count is fixed once created: using the stored one');
  }
  const info = await store.getPartition(0);
  return { name: eventHubName(config.eventHubs.name, config.hostName), partitionCount, createdAt: info?.createdAt ?? Date.now() };
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
    const eventHubs = await startEventHubs(store, config, log);
    const telemetry = new Telemetry({ store, bus, log: log.child({ component: 'telemetry' }), metrics, options: config.telemetry, partitionCount: eventHubs.partitionCount });
    const deployments = new Deployments({ store, twins, bus, log: log.child({ component: 'deployments' }), metrics, resyncSeconds: config.deployments.resyncSeconds });
    const c2d = new CloudToDevice({ store, bus, log: log.child({ component: 'c2d' }), metrics, config: config.c2d });
    // One admission for every device endpoint: the caps on unauthenticated connections are the replica's.
    const admission = new Admission(config.deviceLimits, (reason) => log.debug({ reason }, 'Dropped an unauthenticated connection'));
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
      admission,
      c2d,
    });
    const eventHubsEndpoint = new EventHubsEndpoint({
      store,
      auth,
      telemetry,
      log: log.child({ component: 'eventhubs' }),
      metrics,
      hostNames,
      name: eventHubs.name,
      partitionCount: eventHubs.partitionCount,
      consumerGroups: config.eventHubs.consumerGroups,
      createdAt: eventHubs.createdAt,
    });
    cleanups.push(() => Promise.resolve(eventHubsEndpoint.close()));
    const amqp = new AmqpEndpoint({
      store,
      auth,
      c2d,
      twins,
      methods,
      replicaId,
      telemetry,
      maxMessageBytes: config.telemetry.maxMessageBytes,
      bus,
      log: log.child({ component: 'amqp' }),
      metrics,
      tls,
      hostNames,
      limits: config.deviceLimits,
      admission,
      maxFrameBytes: config.telemetry.maxMessageBytes + PACKET_OVERHEAD_BYTES,
      hook: eventHubsEndpoint,
    });
    // A method call reaches the identity over whichever transport holds it here: MQTT first, then AMQP.
    methods.bindTransport({ sendMethodRequest: (...call) => gateway.sendMethodRequest(...call) || amqp.sendMethodRequest(...call) });
    let ready = true;
    // Assigned once the AMQP/TLS listener is up (undefined: AMQP over WebSockets only); read per request.
    const listening: { amqp?: { port: number } } = {};
    const eventHubsConnectionString = (policy: string): string | undefined => {
      const p = auth.policy(policy);
      if (!p?.rights.includes('ServiceConnect')) return undefined;
      return EventHubsEndpoint.connectionString({ host: config.hostName, amqpPort: listening.amqp?.port, name: eventHubs.name, policy: p.name, key: p.primaryKey });
    };
    const consumerGroups = [DEFAULT_CONSUMER_GROUP, ...config.eventHubs.consumerGroups];
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
      c2d,
      amqp,
      eventHubs: {
        info: () => ({
          name: eventHubs.name,
          endpoint: `sb://${urlHost(config.hostName)}${listening.amqp === undefined || listening.amqp.port === 5671 ? '' : `:${listening.amqp.port}`}/`,
          partitionCount: eventHubs.partitionCount,
          partitionIds: Array.from({ length: eventHubs.partitionCount }, (_, i) => String(i)),
          consumerGroups,
        }),
        connectionString: eventHubsConnectionString,
      },
      isReady: () => ready,
    };
    await store.clearReplicaPresence(replicaId);
    const mqtt = await gateway.start(config.mqtt);
    cleanups.push(() => gateway.close());
    cleanups.push(() => amqp.close());
    const amqpListener = await startAmqp(amqp, config, log);
    if (amqpListener) listening.amqp = amqpListener;
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
    c2d.start();
    log.info({ replicaId, hostName: config.hostName, servicePort, mqttPort: mqtt.port, amqpPort: amqpListener?.port, db: store.dialect }, 'Started hub');

    const host = config.hostName;
    return {
      urls: {
        service: `https://${urlHost(host)}:${servicePort}`,
        mqtt: `mqtts://${urlHost(host)}:${mqtt.port}`,
        ...(amqpListener ? { amqp: `amqps://${urlHost(host)}:${amqpListener.port}` } : {}),
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
      eventHubs: { name: eventHubs.name, partitionCount: eventHubs.partitionCount, consumerGroups },
      eventHubsConnectionString(policy = 'service') {
        const cs = eventHubsConnectionString(policy);
        if (cs === undefined) throw new Error(`No shared access policy ${policy} with the ServiceConnect right (the Event Hubs endpoint needs it)`);
        return cs;
      },
      async close() {
        ready = false;
        log.info({ replicaId }, 'Stopping hub');
        // 1. Stop taking work: the MQTT endpoint closes (aedes lets in-flight publishes reach the store first)
        //    and the HTTP listener drains its requests.
        methods.close();
        c2d.close();
        eventHubsEndpoint.close();
        await Promise.allSettled([gateway.close(), amqp.close(), app.close(), ops?.close()]);
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
