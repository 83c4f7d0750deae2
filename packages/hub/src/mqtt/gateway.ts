import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import { createServer as createTlsServer } from 'node:tls';
import type { Server as TlsServer } from 'node:tls';
import { Aedes } from 'aedes';
import type { Client, PublishPacket, Subscription } from 'aedes';
import { createWebSocketStream, WebSocketServer } from 'ws';
import { parseJsonBytes, parseSasToken, verifySasToken } from '@kedge/protocol';
import type { Bus, BusEvent } from '../cluster/bus.js';
import { isHubError } from '../errors.js';
import type { Logger } from '../log.js';
import type { HubMetrics } from '../metrics.js';
import type { Methods, MethodTransport } from '../methods/methods.js';
import type { Store } from '../storage/store.js';
import type { Telemetry } from '../telemetry/telemetry.js';
import { SYSTEM_PROPERTY_NAMES } from '@kedge/protocol';
import type { TlsMaterial } from '../tls/certs.js';
import type { Twins } from '../twins/twins.js';
import { userProperties } from '@kedge/protocol';
import type { Feature, Identity } from '@kedge/protocol';
import { Feature as F, isOutboundFor, parseInbound, parseUsername, splitBag, subscriptionFeature } from '@kedge/protocol';

/** MQTT CONNACK return codes (3.1.1): 4 bad user name or password, 5 not authorized. */
const BAD_CREDENTIALS = 4;
const NOT_AUTHORIZED = 5;

const authError = (message: string, returnCode: number): Error & { returnCode: number } => Object.assign(new Error(message), { returnCode });

const keyOf = (id: Identity): string => `${id.deviceId}\u0000${id.moduleId}`;

/** Dependencies of the device endpoint. */
export interface GatewayDeps {
  readonly store: Store;
  readonly twins: Twins;
  readonly methods: Methods;
  readonly telemetry: Telemetry;
  readonly bus: Bus;
  readonly log: Logger;
  readonly metrics: HubMetrics;
  readonly tls: TlsMaterial;
  readonly hostNames: readonly string[];
  readonly replicaId: string;
  readonly maxMessageBytes: number;
  readonly nowSeconds?: () => number;
}

/**
 * The device endpoint: an aedes broker speaking IoT Hub's MQTT dialect over TLS and over WebSockets.
 *
 * Authorization is by topic: a client may publish only to its own telemetry topics and the `$iothub` request
 * topics, may subscribe only to the fixed IoT Hub filters of its own namespace, and is sent only what the hub
 * addresses to it. Everything else disconnects the client (publish) or is refused (subscribe, SUBACK 0x80).
 *
 * Replies (twin responses, desired patches, method requests) go straight to the connection with
 * `client.publish`, never through topic routing, so devices sharing the `$iothub/...` filter names can never see
 * each other's traffic. Which features a client subscribed to is kept per client id for persistent sessions
 * (`clean=false`): the Node SDK reconnects on token renewal without re-subscribing.
 */
export class DeviceGateway implements MethodTransport {
  readonly #d: GatewayDeps;
  readonly #identities = new WeakMap<Client, Identity>();
  readonly #connections = new Map<string, Client>();
  readonly #sessions = new Map<string, Set<Feature>>();
  #broker: Aedes | undefined;
  #tlsServer: TlsServer | undefined;
  readonly #wss = new WebSocketServer({ noServer: true, maxPayload: 1024 * 1024 });
  #unsubscribe: (() => void) | undefined;

  constructor(deps: GatewayDeps) {
    this.#d = deps;
  }

  get connectionCount(): number {
    return this.#connections.size;
  }

  async start(listen: { host: string; port: number }): Promise<{ port: number }> {
    const broker = await Aedes.createBroker({
      id: `kedge-${this.#d.replicaId}`,
      concurrency: 1000,
      heartbeatInterval: 60_000,
      connectTimeout: 30_000,
      authenticate: (client, username, password, done) => {
        this.#authenticate(client, username, password).then(
          () => done(null, true),
          (e: Error & { returnCode?: number }) => done(authError(e.message, e.returnCode ?? NOT_AUTHORIZED), false),
        );
      },
      authorizePublish: (client, packet, done) => this.#authorizePublish(client, packet, done),
      authorizeSubscribe: (client, sub, done) => done(null, this.#authorizeSubscribe(client, sub)),
      authorizeForward: (client, packet) => {
        const id = this.#identities.get(client);
        return id && isOutboundFor(packet.topic, id) ? packet : undefined;
      },
    });
    this.#broker = broker;
    broker.on('clientReady', (client) => this.#onReady(client));
    broker.on('clientDisconnect', (client) => this.#onGone(client));
    broker.on('clientError', (client, err) => this.#d.log.debug({ clientId: client.id, err: err.message }, 'MQTT client error'));
    broker.on('unsubscribe', (topics, client) => {
      const id = this.#identities.get(client);
      const session = this.#sessions.get(client.id);
      if (!id || !session) return;
      for (const t of topics) {
        const f = subscriptionFeature(t, id);
        if (f) session.delete(f);
      }
    });
    this.#unsubscribe = this.#d.bus.subscribe((e) => this.#onBus(e));

    const server = createTlsServer({ key: this.#d.tls.key, cert: this.#d.tls.cert, minVersion: 'TLSv1.2' }, (socket) => {
      socket.setNoDelay(true);
      broker.handle(socket);
    });
    server.on('tlsClientError', (e) => this.#d.log.debug({ err: e.message }, 'TLS handshake failed'));
    this.#tlsServer = server;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(listen.port, listen.host, () => {
        server.off('error', reject);
        resolve();
      });
    });
    const addr = server.address();
    return { port: typeof addr === 'object' && addr ? addr.port : listen.port };
  }

  /** Handles an HTTP upgrade on `/$iothub/websocket` (MQTT over WebSockets, subprotocol `mqtt`). */
  handleUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    const broker = this.#broker;
    if (!broker) {
      socket.destroy();
      return;
    }
    this.#wss.handleUpgrade(req, socket, head, (ws) => {
      broker.handle(createWebSocketStream(ws), req);
    });
  }

  async #authenticate(client: Client, username: Readonly<string> | undefined, password: Readonly<Buffer> | undefined): Promise<void> {
    const fail = (why: string, code = BAD_CREDENTIALS): never => {
      this.#d.metrics.connects.inc({ result: 'refused' });
      this.#d.log.info({ clientId: client.id, reason: why }, 'Refused MQTT connection');
      throw authError(why, code);
    };
    const slash = client.id.indexOf('/');
    const id: Identity = slash < 0 ? { deviceId: client.id, moduleId: '' } : { deviceId: client.id.slice(0, slash), moduleId: client.id.slice(slash + 1) };
    if (!id.deviceId || id.moduleId.includes('/')) fail('client id must be {deviceId} or {deviceId}/{moduleId}', NOT_AUTHORIZED);
    const user = parseUsername(username ?? '');
    if (!user || user.deviceId !== id.deviceId || user.moduleId !== id.moduleId) fail('user name does not match the client id');
    if (!password) fail('a SAS token password is required');
    const token = parseSasToken(password?.toString('utf8') ?? '');
    if (!token.ok) return fail('malformed SAS token');
    const device = await this.#d.store.getDevice(id.deviceId);
    if (!device || device.status !== 'enabled') return fail('unknown or disabled device', NOT_AUTHORIZED);
    let keys = [device.auth.primaryKey, device.auth.secondaryKey];
    if (id.moduleId) {
      const m = await this.#d.store.getModule(id.deviceId, id.moduleId);
      if (!m) return fail('unknown module', NOT_AUTHORIZED);
      keys = [m.auth.primaryKey, m.auth.secondaryKey];
    }
    const resource = id.moduleId ? `devices/${id.deviceId}/modules/${id.moduleId}` : `devices/${id.deviceId}`;
    const v = verifySasToken(token.value, {
      audiences: this.#d.hostNames.map((h) => `${h}/${resource}`),
      keys,
      nowSeconds: this.#d.nowSeconds?.() ?? Math.floor(Date.now() / 1000),
    });
    if (!v.ok) fail(`token ${v.error}`);
    this.#identities.set(client, id);
    this.#d.metrics.connects.inc({ result: 'accepted' });
  }

  #onReady(client: Client): void {
    const id = this.#identities.get(client);
    if (!id) return;
    const key = keyOf(id);
    this.#connections.set(key, client);
    // A clean session forgets what the previous connection subscribed to [MQTT-3.1.2-6].
    if (client.clean || !this.#sessions.has(client.id)) this.#sessions.set(client.id, new Set());
    this.#d.metrics.connections.set(this.#connections.size);
    void this.#d.store
      .setPresence({ deviceId: id.deviceId, moduleId: id.moduleId, replicaId: this.#d.replicaId, connectedAt: Date.now() })
      .then(() => this.#d.bus.publish({ type: 'kick', deviceId: id.deviceId, moduleId: id.moduleId, exceptReplica: this.#d.replicaId }))
      .catch((e: unknown) => this.#d.log.warn({ err: e, deviceId: id.deviceId }, 'Failed to record presence'));
    this.#d.log.debug({ deviceId: id.deviceId, moduleId: id.moduleId }, 'Connected device');
  }

  #onGone(client: Client): void {
    const id = this.#identities.get(client);
    if (!id) return;
    const key = keyOf(id);
    if (this.#connections.get(key) !== client) return;
    this.#connections.delete(key);
    if (client.clean) this.#sessions.delete(client.id);
    this.#d.metrics.connections.set(this.#connections.size);
    void this.#d.store
      .clearPresence(id.deviceId, id.moduleId, this.#d.replicaId)
      .catch((e: unknown) => this.#d.log.warn({ err: e, deviceId: id.deviceId }, 'Failed to clear presence'));
  }

  #authorizeSubscribe(client: Client, sub: Subscription): Subscription | null {
    const id = this.#identities.get(client);
    const feature = id && subscriptionFeature(sub.topic, id);
    if (!id || !feature) {
      this.#d.log.info({ clientId: client.id, topic: sub.topic }, 'Refused subscription');
      return null;
    }
    this.#sessions.get(client.id)?.add(feature);
    // QoS 2 is not supported by IoT Hub: grant at most 1.
    return { ...sub, qos: sub.qos > 1 ? 1 : sub.qos };
  }

  #authorizePublish(client: Client | null, packet: PublishPacket, done: (err?: Error | null) => void): void {
    const id = client && this.#identities.get(client);
    const inbound = id ? parseInbound(packet.topic, id) : undefined;
    if (!client || !id || !inbound) {
      this.#d.log.info({ clientId: client?.id, topic: packet.topic.slice(0, 200) }, 'Refused publish');
      done(new Error('publish to this topic is not allowed'));
      return;
    }
    const payload = Buffer.isBuffer(packet.payload) ? packet.payload : Buffer.from(packet.payload);
    switch (inbound.kind) {
      case 'telemetry': {
        if (payload.length > this.#d.maxMessageBytes) {
          done(new Error('message too large'));
          return;
        }
        const bag = splitBag(inbound.bag, SYSTEM_PROPERTY_NAMES);
        if (!bag) {
          done(new Error('malformed property bag'));
          return;
        }
        const enqueuedTime = Date.now();
        const systemProperties = {
          ...bag.systemProperties,
          connectionDeviceId: id.deviceId,
          ...(id.moduleId ? { connectionModuleId: id.moduleId } : {}),
          enqueuedTime: new Date(enqueuedTime).toISOString(),
        };
        // PUBACK is written by aedes only after this callback: the message is committed before it is acknowledged.
        this.#d.telemetry.ingest({ deviceId: id.deviceId, moduleId: id.moduleId, enqueuedTime, properties: bag.properties, systemProperties, body: payload }).then(
          () => done(null),
          (e: Error) => done(e),
        );
        return;
      }
      case 'twin-get':
        done(null);
        void this.#twinGet(client, id, inbound.rid);
        return;
      case 'twin-reported':
        done(null);
        void this.#twinReported(client, id, inbound.rid, payload);
        return;
      case 'method-response':
        done(null);
        this.#d.methods.handleResponse(id.deviceId, id.moduleId, inbound.rid, inbound.status, payload);
        return;
    }
  }

  #send(client: Client, topic: string, body: Buffer | string): void {
    const packet = { cmd: 'publish', topic, payload: body, qos: 0, retain: false, dup: false } as const satisfies Partial<PublishPacket>;
    client.publish(packet, (err) => {
      if (err) this.#d.log.debug({ clientId: client.id, err: err.message }, 'Failed to send to client');
    });
  }

  async #twinGet(client: Client, id: Identity, rid: string): Promise<void> {
    try {
      const t = await this.#d.twins.get(id.deviceId, id.moduleId);
      this.#send(client, `$iothub/twin/res/200/?$rid=${encodeURIComponent(rid)}`, JSON.stringify({ desired: t.desired, reported: t.reported }));
    } catch (e) {
      this.#replyError(client, rid, e);
    }
  }

  async #twinReported(client: Client, id: Identity, rid: string, body: Buffer): Promise<void> {
    let patch: unknown;
    try {
      patch = parseJsonBytes(body); // strict UTF-8, null-prototype objects
    } catch {
      this.#send(client, `$iothub/twin/res/400/?$rid=${encodeURIComponent(rid)}`, JSON.stringify({ errorCode: 400004, message: 'Malformed JSON' }));
      return;
    }
    try {
      const version = await this.#d.twins.patchReported(id.deviceId, id.moduleId, patch);
      this.#d.metrics.twinUpdates.inc({ side: 'reported' });
      this.#send(client, `$iothub/twin/res/204/?$rid=${encodeURIComponent(rid)}&$version=${version}`, '');
    } catch (e) {
      this.#replyError(client, rid, e);
    }
  }

  #replyError(client: Client, rid: string, e: unknown): void {
    const status = isHubError(e) ? (e.status === 413 ? 400 : e.status) : 500;
    if (!isHubError(e)) this.#d.log.error({ err: e }, 'Twin request failed');
    const message = isHubError(e) ? e.message : 'Internal error';
    this.#send(client, `$iothub/twin/res/${status}/?$rid=${encodeURIComponent(rid)}`, JSON.stringify({ errorCode: status * 1000, message }));
  }

  #featureOf(id: Identity, feature: Feature): Client | undefined {
    const client = this.#connections.get(keyOf(id));
    return client && this.#sessions.get(client.id)?.has(feature) ? client : undefined;
  }

  sendMethodRequest(deviceId: string, moduleId: string, methodName: string, rid: string, payload: Buffer): boolean {
    const client = this.#featureOf({ deviceId, moduleId }, F.Methods);
    if (!client) return false;
    this.#send(client, `$iothub/methods/POST/${methodName}/?$rid=${rid}`, payload);
    return true;
  }

  #onBus(e: BusEvent): void {
    if (e.type === 'desired') {
      const client = this.#featureOf(e, F.Desired);
      if (client) {
        const version = typeof e.patch['$version'] === 'number' ? e.patch['$version'] : 0;
        this.#send(client, `$iothub/twin/PATCH/properties/desired/?$version=${version}`, JSON.stringify({ ...userProperties(e.patch), $version: version }));
      }
    } else if (e.type === 'kick' && e.exceptReplica !== this.#d.replicaId) {
      // The identity connected to another replica: IoT Hub keeps one connection per identity.
      this.#connections.get(keyOf(e))?.close();
    }
  }

  /** Stops accepting connections and closes the broker (in-flight publishes finish first). */
  async close(): Promise<void> {
    this.#unsubscribe?.();
    const server = this.#tlsServer;
    const closed = server ? new Promise<void>((resolve) => server.close(() => resolve())) : Promise.resolve();
    const broker = this.#broker;
    if (broker) await new Promise<void>((resolve) => broker.close(() => resolve()));
    this.#wss.close();
    await closed;
    await this.#d.store.clearReplicaPresence(this.#d.replicaId).catch(() => undefined);
    this.#connections.clear();
  }
}
