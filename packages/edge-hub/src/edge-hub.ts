import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { createServer } from 'node:http';
import type { Server } from 'node:http';
import { join } from 'node:path';
import type { Feature, Identity } from '@kedge/protocol';
import { Feature as F, certificateCovers, checkPatch, issueCa, issueServerCertificate } from '@kedge/protocol';
import type { EdgeMessage, Endpoint, EndpointHooks, MessageStore, RouteSink } from '@kedge/routing';
import { DEFAULT_TIME_TO_LIVE_SECS, Router, parseEdgeHubDesired, queueName, sinkKey } from '@kedge/routing';
import { openMessageStore } from '@kedge/edge-store';
import { EdgeBroker } from './broker.js';
import type { BrokerHandler, InboundTelemetry, TwinReply } from './broker.js';
import type { EdgeHubConfig, EdgeHubConfigInput } from './config.js';
import { parseEdgeHubConfig } from './config.js';
import { writeFileDurably } from './durable-file.js';
import { ModuleInputEndpoint, UpstreamEndpoint, outputOf, sender } from './endpoints.js';
import { isEdgeHubError } from './errors.js';
import { EDGE_HUB_MODULE, HubRestClient } from './hub-client.js';
import { IdentityCache, identityKey } from './identities.js';
import { createLogger } from './log.js';
import type { Logger } from './log.js';
import { startHttpsServer } from './http.js';
import type { RunningHttpsServer } from './http.js';
import { EdgeHubMetrics } from './metrics.js';
import { LocalMethods } from './methods.js';
import { EdgeHubReporter } from './reported.js';
import { TwinCache, parseSafe } from './twins.js';
import type { SafeObject } from './twins.js';
import { Need, UpstreamLink } from './upstream.js';
import type { ReconnectStatus, UpstreamConnection } from './upstream.js';

/** A running edge hub. */
export interface RunningEdgeHub {
  /**
   * Where it listens: `mqtt` (mqtts), `websocket` (wss, when enabled), `https` (direct methods, when enabled),
   * `metrics` (http, when enabled).
   */
  readonly urls: { readonly mqtt: string; readonly websocket?: string; readonly https?: string; readonly metrics?: string };
  /** PEM of the CA modules and leaf devices must trust (`EdgeModuleCACertificateFile`). */
  readonly ca: string;
  /** The file holding {@link ca}. */
  readonly caFile: string;
  readonly metrics: EdgeHubMetrics;
  /** The router (routes, endpoint states, queue lengths). */
  readonly router: Router;
  /** The upstream connections' reconnect backoff, the edge hub's own (the probe) first. */
  readonly upstream: { status(): ReconnectStatus[] };
  /** Graceful stop: no new connections, in-flight acknowledgements finish, the store is flushed and closed. */
  close(): Promise<void>;
}

/** Extra wiring for embedding (tests, bench); the config stays the single source of settings. */
export interface EdgeHubStartOptions {
  readonly logger?: Logger;
  /**
   * Opens the durable store. The default is `@kedge/edge-store`'s `openMessageStore(<dataDir>/store, config.store)`.
   */
  readonly openStore?: (dir: string, options: EdgeHubConfig['store'], log: Logger) => Promise<MessageStore>;
}

const urlHost = (h: string): string => (h.includes(':') ? `[${h}]` : h);

/** The TLS material: the given one, or a per-device CA and a server certificate under `<dataDir>/tls` (reused). */
function tlsMaterial(config: EdgeHubConfig, names: readonly string[]): { cert: string; key: string; ca: string; caFile: string } {
  const dir = join(config.dataDir, 'tls');
  const caFile = join(dir, 'ca.pem');
  if (config.tls) {
    writeFileDurably(caFile, config.tls.ca, 0o644);
    return { ...config.tls, caFile };
  }
  const files = { caKey: join(dir, 'ca.key'), cert: join(dir, 'server.pem'), key: join(dir, 'server.key') };
  mkdirSync(dir, { recursive: true });
  let ca = existsSync(caFile) && existsSync(files.caKey) ? { cert: readFileSync(caFile, 'utf8'), key: readFileSync(files.caKey, 'utf8') } : undefined;
  if (!ca) {
    ca = issueCa(`Kedge edge hub CA ${config.deviceId}`, { years: 5 });
    writeFileDurably(files.caKey, ca.key);
    writeFileDurably(caFile, ca.cert, 0o644);
  }
  if (existsSync(files.cert) && existsSync(files.key)) {
    const cert = readFileSync(files.cert, 'utf8');
    if (certificateCovers(cert, names)) return { cert, key: readFileSync(files.key, 'utf8'), ca: ca.cert, caFile };
  }
  const server = issueServerCertificate(ca, names, { years: 1 });
  writeFileDurably(files.key, server.key);
  writeFileDurably(files.cert, server.cert, 0o644);
  return { cert: server.cert, key: server.key, ca: ca.cert, caFile };
}

/**
 * Messages per endpoint batch. A batch is what an endpoint has in flight (all its PUBLISHes pipelined, the next batch
 * read when every one is acknowledged), so it bounds delivery to a module at batch / round trip: 100 (the routing
 * engine's default) caps it at a few thousand msg/s once the round trip is tens of milliseconds.
 */
const EXECUTOR_BATCH_SIZE = 500;

const defaultStore = (dir: string, options: EdgeHubConfig['store'], log: Logger): Promise<MessageStore> =>
  openMessageStore(dir, { ...options, log: log.child({ component: 'store' }) });

/**
 * A unique, time-ordered message id: the time, this process's random prefix and a counter (a random draw per
 * message cost more than the rest of the id on the publish path).
 */
const ID_PREFIX = randomBytes(6).toString('hex');
let idCounter = 0;
/** The time part of the last id and the millisecond it is for (many messages share one). */
let idTime = { ms: -1, text: '' };
const messageId = (): string => {
  const ms = Date.now();
  if (ms !== idTime.ms) idTime = { ms, text: `${ms.toString(36).padStart(9, '0')}-${ID_PREFIX}` };
  return `${idTime.text}${(idCounter++ % 0x100000000).toString(16).padStart(8, '0')}`;
};

/**
 * The `source` of a sender's telemetry: one frozen object per identity and output, shared by its messages (it is
 * the same for all of them; the store encodes it once per object).
 */
const sources = new Map<string, EdgeMessage['source']>();
const sourceOf = (id: Identity, output: string | undefined): EdgeMessage['source'] => {
  const key = `${id.deviceId}/${id.moduleId}/${output ?? ''}`;
  let s = sources.get(key);
  if (s === undefined) {
    s = Object.freeze({ deviceId: id.deviceId, ...(id.moduleId ? { moduleId: id.moduleId } : {}), ...(output ? { output } : {}) });
    // Bounded: identities and outputs are few; a flood of outputs only costs re-creating objects.
    if (sources.size >= 4096) sources.clear();
    sources.set(key, s);
  }
  return s;
};

const userPart = (doc: SafeObject): SafeObject => {
  const out = Object.create(null) as SafeObject;
  for (const k of Object.keys(doc)) if (k !== '$metadata' && k !== '$version') out[k] = doc[k];
  return out;
};

/**
 * Starts an edge hub: loads the cached device scope and twins, opens the durable store, starts the broker and the
 * upstream link, and applies the routes of the `$edgeHub` twin (live, on every desired change; from the cached twin
 * while the hub is unreachable). Reports `$edgeHub` reported properties (schemaVersion, lastDesiredVersion,
 * lastDesiredStatus, clients).
 * @throws EdgeHubError `EDGE_ERR_CONFIG` for an invalid configuration; listener errors (port in use) as they are.
 */
export async function startEdgeHub(input: EdgeHubConfigInput, options: EdgeHubStartOptions = {}): Promise<RunningEdgeHub> {
  const config = parseEdgeHubConfig(input);
  const log = options.logger ?? createLogger({ level: config.logLevel });
  const edge = config.deviceId;
  const self: Identity = { deviceId: edge, moduleId: EDGE_HUB_MODULE };
  const metrics = new EdgeHubMetrics({ iothub: config.hub.hostName, edgeDevice: edge });
  const names = [...new Set([config.hostName, ...config.altNames, ...(config.mqtt.host === '0.0.0.0' || config.mqtt.host === '::' ? [] : [config.mqtt.host])])];
  const tls = tlsMaterial(config, names);
  mkdirSync(config.dataDir, { recursive: true });

  const rest = new HubRestClient({
    hostName: config.hub.hostName,
    ...(config.hub.address ? { address: config.hub.address } : {}),
    port: config.hub.httpsPort,
    ...(config.hub.ca ? { ca: config.hub.ca } : {}),
    deviceId: edge,
    key: config.edgeHubKey,
    timeoutMs: config.upstream.requestTimeoutMs,
  });
  const identities = new IdentityCache({
    file: join(config.dataDir, 'identities.json'),
    source: rest,
    log: log.child({ component: 'identities' }),
    refreshSeconds: config.identities.refreshSeconds,
    unknownRefreshSeconds: config.identities.unknownRefreshSeconds,
  });
  identities.load();
  const twins = new TwinCache(join(config.dataDir, 'twins'), log.child({ component: 'twins' }));
  const store = await (options.openStore ?? defaultStore)(join(config.dataDir, 'store'), config.store, log);

  const moduleHooks = new Map<string, EndpointHooks>();
  let upstreamHooks: EndpointHooks | undefined;
  // The factory and the handlers below refer to `broker` and `link`, declared further down: they run only once
  // routes are applied and clients connect, after both exist.

  const endpoints = (sink: RouteSink, hooks: EndpointHooks): Endpoint => {
    const id = sinkKey(sink);
    if (sink.kind === 'upstream') {
      upstreamHooks = hooks;
      return new UpstreamEndpoint({ id, link, metrics, waitMs: config.upstream.waitMs, hooks });
    }
    moduleHooks.set(sink.module, hooks);
    return new ModuleInputEndpoint({ id, edgeDeviceId: edge, module: sink.module, input: sink.input, broker, metrics });
  };
  const expiredByExecutor = new Map<string, number>();
  const router = new Router({
    store,
    endpoints,
    log: log.child({ component: 'router' }),
    executor: {
      batchSize: config.executor.batchSize ?? EXECUTOR_BATCH_SIZE,
      ...(config.executor.sendTimeoutMs ? { sendTimeoutMs: config.executor.sendTimeoutMs } : {}),
      // TTL drops the executors see are counted with their sender; serveMetrics counts the store's own.
      onExpired: (endpointId, priority, messages) => {
        const queue = queueName(endpointId, priority);
        expiredByExecutor.set(queue, (expiredByExecutor.get(queue) ?? 0) + messages.length);
        for (const m of messages) {
          const from = sender(m);
          metrics.dropped.inc({ reason: 'ttl_expiry', from: identityKey(from.deviceId, from.moduleId), from_route_output: outputOf(m) });
        }
      },
    },
  });

  const reporter = new EdgeHubReporter({ log: log.child({ component: 'reported' }), send: (patch) => sendSelfReported(patch) });

  // ---- $edgeHub desired properties → routes ----
  let lastDesiredVersion = -1;
  const applyDesired = async (desired: SafeObject): Promise<void> => {
    const version = typeof desired['$version'] === 'number' ? desired['$version'] : 0;
    const parsed = parseEdgeHubDesired(JSON.parse(JSON.stringify(userPart(desired))) as unknown);
    if (!parsed.ok) {
      const description = `Error while parsing desired properties - ${parsed.error.map((i) => `${i.path}: ${i.message}`).join('; ')}`;
      log.error({ version, description }, 'Refused $edgeHub desired properties; the previous routes stay');
      reporter.desired(version, 400, description);
      lastDesiredVersion = version;
      return;
    }
    const saf = desired['storeAndForwardConfiguration'];
    const ttl = typeof saf === 'object' && saf !== null && typeof (saf as SafeObject)['timeToLiveSecs'] === 'number' ? ((saf as SafeObject)['timeToLiveSecs'] as number) : DEFAULT_TIME_TO_LIVE_SECS;
    await router.replaceRoutes(parsed.value, { timeToLiveSecs: ttl });
    lastDesiredVersion = version;
    log.info({ version, routes: parsed.value.length }, 'Applied $edgeHub routes');
    reporter.desired(version, 200, '');
  };
  const refreshConfig = async (): Promise<void> => {
    const conn = link.self();
    if (!conn?.connected) return;
    try {
      const r = await conn.twinRequest('get', '');
      if (r.status !== 200 || !twins.put(self, r.body)) {
        log.warn({ status: r.status }, 'Could not read the $edgeHub twin');
        return;
      }
      const desired = twins.desired(self);
      if (desired) await applyDesired(desired);
    } catch (e) {
      log.warn({ err: e instanceof Error ? e.message : String(e) }, 'Could not read the $edgeHub twin; keeping the current routes');
    }
  };
  let configChain: Promise<void> = Promise.resolve();
  const serially = (fn: () => Promise<void>): void => {
    configChain = configChain.then(fn).catch((e: unknown) => log.error({ err: e }, 'Applying $edgeHub desired properties failed'));
  };
  const sendSelfReported = async (patch: SafeObject): Promise<boolean> => {
    const conn = link.self();
    if (!conn?.connected) return false;
    try {
      const r = await conn.twinRequest('reported', JSON.stringify(patch));
      return r.status >= 200 && r.status < 300;
    } catch {
      return false;
    }
  };

  // ---- twins of clients ----
  const flushPending = async (id: Identity): Promise<void> => {
    const conn = link.connection(id);
    while (conn?.connected && twins.pending(id).length > 0) {
      const patch = twins.pending(id)[0] as SafeObject;
      const r = await conn.twinRequest('reported', JSON.stringify(patch));
      if (r.status >= 200 && r.status < 300) twins.shiftPending(id, r.version);
      else if (r.status >= 400 && r.status < 500) {
        log.warn({ id: identityKey(id.deviceId, id.moduleId), status: r.status }, 'The hub refused a reported patch accepted offline; dropped');
        twins.shiftPending(id, undefined);
      } else return;
    }
  };
  /** The connection of `id`, once up: waits for it while the hub is reachable (a client's first request races its upstream connect). */
  const upstreamOf = async (id: Identity): Promise<UpstreamConnection | undefined> => {
    const conn = link.connection(id);
    if (conn.connected) return conn;
    if (!link.online) return undefined;
    conn.acquire(Need.Session);
    try {
      await conn.waitConnected(config.upstream.requestTimeoutMs);
      return conn;
    } catch {
      return undefined;
    }
  };
  const twinError = (status: number, message: string): TwinReply => ({ status, body: JSON.stringify({ errorCode: status * 1000, message }) });

  /**
   * What a sender's messages share, made once per property bag: a connection's repeated bag is one frozen
   * `systemProperties` object (the broker's), which also carries the sender's identity.
   */
  const senders = new WeakMap<object, { source: EdgeMessage['source']; from: string; output: string | undefined; received: { inc(): void }; size: { observe(v: number): void } }>();
  const senderOf = (id: Identity, sys: InboundTelemetry['systemProperties']) => {
    let s = senders.get(sys);
    if (s === undefined) {
      const output = id.moduleId ? sys['outputName'] : undefined;
      const from = identityKey(id.deviceId, id.moduleId);
      s = { source: sourceOf(id, output), from, output, received: metrics.received.child({ route_output: output ?? '', id: from }), size: metrics.messageSize.child({ id: from }) };
      senders.set(sys, s);
    }
    return s;
  };

  const handler: BrokerHandler = {
    async telemetry(id: Identity, m: InboundTelemetry): Promise<void> {
      const s = senderOf(id, m.systemProperties);
      const message: EdgeMessage = {
        id: messageId(),
        body: m.body,
        properties: m.properties,
        systemProperties: m.systemProperties,
        source: s.source,
        enqueuedAt: m.receivedAt,
      };
      const { from, output } = s;
      s.received.inc();
      s.size.observe(m.body.length);
      try {
        const outcome = await router.route(message);
        if (outcome.deliveries.length === 0) metrics.dropped.inc({ reason: 'no_route', from, from_route_output: output ?? '' });
      } catch (e) {
        metrics.unacked.inc({ reason: 'storage_failure', from, from_route_output: output ?? '' });
        log.warn({ from, err: e instanceof Error ? e.message : String(e) }, 'Could not store a message; not acknowledged');
        throw e;
      }
    },
    async twinGet(id: Identity): Promise<TwinReply> {
      metrics.getTwin.inc({ source: identityKey(id.deviceId, id.moduleId), id: 'edgeHub' });
      const conn = await upstreamOf(id);
      if (conn) {
        try {
          await flushPending(id);
          const r = await conn.twinRequest('get', '');
          if (r.status === 200 && twins.put(id, r.body)) return { status: 200, body: twins.get(id) ?? r.body };
          if (r.status !== 200) return { status: r.status, body: r.body };
        } catch (e) {
          if (!isEdgeHubError(e)) throw e;
        }
      }
      const cached = twins.get(id);
      return cached === undefined ? twinError(503, 'the hub is unreachable and the twin is not cached') : { status: 200, body: cached };
    },
    async twinReported(id: Identity, text: string): Promise<TwinReply> {
      const patch = parseSafe(text);
      const checked = checkPatch(patch, 'reported');
      if (!checked.ok) return twinError(400, `${checked.error.path}: ${checked.error.message}`);
      const safe = patch as SafeObject;
      metrics.reported.inc({ target: 'upstream', id: identityKey(id.deviceId, id.moduleId) });
      const conn = await upstreamOf(id);
      let reply: TwinReply | undefined;
      if (conn && twins.pending(id).length === 0) {
        try {
          const r = await conn.twinRequest('reported', JSON.stringify(safe));
          if (r.status >= 200 && r.status < 300) twins.applyReported(id, safe, r.version);
          reply = { status: r.status, body: r.body, ...(r.version === undefined ? {} : { version: r.version }) };
        } catch (e) {
          if (!isEdgeHubError(e)) throw e;
        }
      }
      // Offline: accepted locally and sent when the hub is back (iotedge-protocols.md §3.5).
      reply ??= { status: 204, body: '', version: twins.addPending(id, safe) };
      if (reply.status >= 200 && reply.status < 300) {
        void router
          .route({
            id: messageId(),
            body: Buffer.from(JSON.stringify(safe)),
            properties: Object.create(null) as Record<string, string>,
            systemProperties: Object.assign(Object.create(null) as Record<string, string>, {
              messageType: 'twinChangeNotification',
              messageSchema: 'twinChangeNotification',
              contentType: 'application/json',
              contentEncoding: 'utf-8',
              connectionDeviceId: id.deviceId,
              ...(id.moduleId ? { connectionModuleId: id.moduleId } : {}),
            }),
            source: { kind: 'twinChangeNotification', deviceId: id.deviceId, ...(id.moduleId ? { moduleId: id.moduleId } : {}) },
            enqueuedAt: Date.now(),
          })
          .catch((e: unknown) => log.warn({ err: e instanceof Error ? e.message : String(e) }, 'Could not route a twin change notification'));
      }
      return reply;
    },
    methodResponse(id: Identity, rid: string, status: number, payload: Buffer): void {
      // A call from another client of this edge hub (HTTPS) is answered locally; the rest are the hub's.
      if (methods.response(id, rid, status, payload)) return;
      link.connection(id).publishQos0(`$iothub/methods/res/${status}/?$rid=${encodeURIComponent(rid)}`, payload);
    },
    sessionChanged(id: Identity, connected: boolean, features: ReadonlySet<Feature>): Promise<void> {
      const conn = link.connection(id);
      reporter.client(identityKey(id.deviceId, id.moduleId), connected, id.moduleId !== '');
      if (!connected) {
        conn.release(Need.Session);
        return conn.follow({ desired: false, methods: false });
      }
      conn.acquire(Need.Session);
      if (features.has(F.Inputs)) moduleHooks.get(id.moduleId)?.available();
      if (features.has(F.Methods)) methods.available(id);
      return conn.follow({ desired: features.has(F.Desired), methods: features.has(F.Methods) });
    },
  };

  // IoT Edge's twin operation durations, around the handlers above.
  const twinGet = handler.twinGet.bind(handler);
  const twinReported = handler.twinReported.bind(handler);
  handler.twinGet = (id) => {
    const end = metrics.getTwinDuration.startTimer({ source: identityKey(id.deviceId, id.moduleId), id: 'edgeHub' });
    return twinGet(id).finally(() => end());
  };
  handler.twinReported = (id, text) => {
    const end = metrics.reportedDuration.startTimer({ target: 'upstream', id: identityKey(id.deviceId, id.moduleId) });
    return twinReported(id, text).finally(() => end());
  };

  const broker = new EdgeBroker(
    {
      edgeDeviceId: edge,
      hostNames: [config.hub.hostName, ...names],
      tls,
      maxMessageBytes: config.limits.maxMessageBytes,
      connectTimeoutMs: config.limits.connectTimeoutMs,
      // A PUBLISH carries its topic (property bag) besides the body: 64 KiB of headroom.
      frames: { maxConnectBytes: config.limits.maxConnectBytes, maxPacketBytes: config.limits.maxMessageBytes + 64 * 1024 },
    },
    { identities, handler, log: log.child({ component: 'broker' }), metrics },
  );
  const brokerRef = broker;
  const methods = new LocalMethods({ sender: broker, log: log.child({ component: 'methods' }), metrics });
  const link: UpstreamLink = new UpstreamLink(
    {
      hostName: config.hub.hostName,
      ...(config.hub.address ? { address: config.hub.address } : {}),
      port: config.hub.mqttPort,
      ...(config.hub.ca ? { ca: config.hub.ca } : {}),
      edgeDeviceId: edge,
      edgeHubKey: config.edgeHubKey,
      ...config.upstream,
    },
    {
      desired(id, version, body) {
        const patch = parseSafe(body);
        if (id.deviceId === self.deviceId && id.moduleId === self.moduleId) {
          // A gap in versions means a patch was missed: re-read the whole twin (edgeAgent/edgeHub do the same).
          if (version !== lastDesiredVersion + 1) serially(refreshConfig);
          else
            serially(async () => {
              twins.applyDesired(self, patch);
              const desired = twins.desired(self);
              if (desired) await applyDesired(desired);
            });
          return;
        }
        twins.applyDesired(id, patch);
        brokerRef.sendDesired(id, version, body);
      },
      method(id, name, rid, payload) {
        metrics.methods.inc({ from: 'upstream', to: identityKey(id.deviceId, id.moduleId) });
        if (!brokerRef.sendMethodRequest(id, name, rid, payload)) {
          link.connection(id).publishQos0(`$iothub/methods/res/404/?$rid=${encodeURIComponent(rid)}`, JSON.stringify({ message: `${identityKey(id.deviceId, id.moduleId)} is not connected` }));
        }
      },
      online(id) {
        upstreamHooks?.available();
        if (id.deviceId === self.deviceId && id.moduleId === self.moduleId) {
          serially(refreshConfig);
          reporter.online();
          void identities.refresh();
        } else {
          void flushPending(id).catch(() => undefined);
        }
      },
    },
    log.child({ component: 'upstream' }),
    metrics,
  );
  identities.onChange((changed) => brokerRef.recheck(changed));

  let metricsServer: Server | undefined;
  let httpsServer: RunningHttpsServer | undefined;
  try {
    // Offline start: the routes of the cached $edgeHub twin apply until the hub answers.
    const cachedDesired = twins.desired(self);
    if (cachedDesired) await applyDesired(cachedDesired);
    // Absent `https`: the WebSocket listener serves the REST API too (edgeHub's 443).
    const httpsAt = config.https === undefined ? config.websocket : config.https;
    const shared = httpsAt !== null && config.websocket !== null && httpsAt.host === config.websocket.host && httpsAt.port === config.websocket.port;
    const ports = await broker.start({ mqtt: config.mqtt, ...(config.websocket && !shared ? { websocket: config.websocket } : {}) });
    if (httpsAt) {
      httpsServer = await startHttpsServer(
        httpsAt,
        { edgeDeviceId: edge, hostNames: [config.hub.hostName, ...names], tls, requestTimeoutMs: config.limits.connectTimeoutMs },
        { identities, methods, log: log.child({ component: 'https' }), ...(shared ? { upgrade: (req, socket, head) => broker.handleUpgrade(req, socket, head) } : {}) },
      );
    }
    const websocketPort = shared ? httpsServer?.port : ports.websocketPort;
    identities.start();
    link.self().acquire(Need.Self);
    void link.self().follow({ desired: true, methods: false });
    if (config.metrics) metricsServer = await serveMetrics(metrics, router, expiredByExecutor, config.metrics);
    const maddr = metricsServer?.address();
    const host = urlHost(config.hostName);
    log.info({ deviceId: edge, mqttPort: ports.mqttPort, websocketPort, httpsPort: httpsServer?.port, identities: identities.size }, 'Started edge hub');
    return {
      urls: {
        mqtt: `mqtts://${host}:${ports.mqttPort}`,
        ...(websocketPort === undefined ? {} : { websocket: `wss://${host}:${websocketPort}/$iothub/websocket` }),
        ...(httpsServer ? { https: `https://${host}:${httpsServer.port}` } : {}),
        ...(typeof maddr === 'object' && maddr ? { metrics: `http://${urlHost(config.metrics?.host ?? '127.0.0.1')}:${maddr.port}/metrics` } : {}),
      },
      ca: tls.ca,
      caFile: tls.caFile,
      metrics,
      router,
      upstream: { status: () => link.status() },
      async close() {
        log.info({ deviceId: edge }, 'Stopping edge hub');
        reporter.close();
        identities.close();
        // 1. No new messages: the broker closes (publishes being stored finish and are acknowledged first); method
        // calls in flight end (503).
        methods.close();
        await httpsServer?.close();
        await brokerRef.close();
        metricsServer?.closeAllConnections();
        await new Promise<void>((resolve) => (metricsServer ? metricsServer.close(() => resolve()) : resolve()));
        // 2. The executors stop, then the store flushes and closes; last the upstream link.
        await router.close();
        await store.close();
        link.close();
        log.info({ deviceId: edge }, 'Stopped edge hub');
      },
    };
  } catch (e) {
    reporter.close();
    identities.close();
    methods.close();
    await httpsServer?.close().catch(() => undefined);
    await brokerRef.close().catch(() => undefined);
    await router.close().catch(() => undefined);
    await store.close().catch(() => undefined);
    link.close();
    throw e;
  }
}

/**
 * Serves `/metrics` (Prometheus text) and `/health` over plain HTTP. Queue lengths and the drops the router only
 * counts (the store's TTL expiry of unread segments, quota evictions: no sender known) are read at scrape time;
 * `executorExpired` holds the TTL drops per queue already counted with their sender.
 */
async function serveMetrics(metrics: EdgeHubMetrics, router: Router, executorExpired: ReadonlyMap<string, number>, at: { host: string; port: number }): Promise<Server> {
  const seen = new Map<string, { expired: number; evicted: number }>();
  const server = createServer((req, res) => {
    if (req.url === '/health') {
      res.writeHead(200, { 'content-type': 'text/plain' }).end('ok');
      return;
    }
    if (req.url !== '/metrics') {
      res.writeHead(404).end();
      return;
    }
    const status = router.status();
    metrics.queueLength.reset();
    for (const ep of status.endpoints) {
      for (const q of ep.queues) {
        const priority = String(q.priority);
        metrics.queueLength.set({ endpoint: ep.id, priority }, q.length);
        const before = seen.get(q.queue) ?? { expired: 0, evicted: 0 };
        const storeExpired = q.dropped.expired - (executorExpired.get(q.queue) ?? 0);
        if (storeExpired > before.expired) metrics.dropped.inc({ reason: 'ttl_expiry', from: '', from_route_output: '' }, storeExpired - before.expired);
        if (q.dropped.evicted > before.evicted) metrics.dropped.inc({ reason: 'quota_eviction', from: '', from_route_output: '' }, q.dropped.evicted - before.evicted);
        seen.set(q.queue, { expired: Math.max(before.expired, storeExpired), evicted: Math.max(before.evicted, q.dropped.evicted) });
      }
    }
    metrics.registry.metrics().then(
      (text) => res.writeHead(200, { 'content-type': metrics.registry.contentType }).end(text),
      () => res.writeHead(500).end(),
    );
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(at.port, at.host, () => resolve());
  });
  return server;
}

