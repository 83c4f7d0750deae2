import type { IncomingMessage } from 'node:http';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { createServer as createTlsServer } from 'node:tls';
import type { Server as TlsServer, TLSSocket } from 'node:tls';
import { Aedes } from 'aedes';
import type { Client, PublishPacket, Subscription } from 'aedes';
import { createWebSocketStream, WebSocketServer } from 'ws';
import { encodeBag, Feature as F, FrameGuard, isOutboundFor, OUTBOUND_WIRE_NAMES, parseInbound, parseJsonBytes, splitBag, subscriptionFeature, SYSTEM_PROPERTY_NAMES, userProperties } from '@kedge/protocol';
import type { Feature, Identity } from '@kedge/protocol';
import type { CloudToDevice } from '../c2d/c2d.js';
import type { Bus, BusEvent } from '../cluster/bus.js';
import { isHubError } from '../errors.js';
import type { Logger } from '../log.js';
import type { HubMetrics } from '../metrics.js';
import type { Methods, MethodTransport } from '../methods/methods.js';
import type { C2dMessageRecord, Store } from '../storage/store.js';
import type { Telemetry } from '../telemetry/telemetry.js';
import type { TlsMaterial } from '../tls/certs.js';
import type { Twins } from '../twins/twins.js';
import type { DeviceLimits, Ticket } from './admission.js';
import { Admission, PACKET_OVERHEAD_BYTES } from './admission.js';
import type { ConnectGrant } from './credentials.js';
import { checkConnect, ConnackCode, dependsOn, sameGeneration } from './credentials.js';

/** Longest delay `setTimeout` takes (2^31-1 ms, about 24.8 days); longer expiries re-arm. */
const MAX_TIMER_MS = 2 ** 31 - 1;

/** A live (authenticated) connection: what it was granted, with which credentials, and its expiry timer. */
interface Live {
  readonly grant: ConnectGrant;
  readonly username: string;
  readonly password: string;
  timer: NodeJS.Timeout | undefined;
  revoked: boolean;
}

/** Per-client-id session state kept across connections with `clean=false`. */
interface Session {
  readonly grant: ConnectGrant;
  readonly features: Set<Feature>;
}

const authError = (message: string, returnCode: number): Error & { returnCode: number } => Object.assign(new Error(message), { returnCode });

const keyOf = (id: Identity): string => `${id.deviceId}\u0000${id.moduleId}`;

/** The cloud-to-device message a device connection is holding (one at a time per device, so PUBACKs are unambiguous). */
interface C2dInFlight {
  readonly client: Client;
  readonly lockToken: string;
  readonly timer: NodeJS.Timeout;
}

/**
 * IoT Hub's MQTT topic for a cloud-to-device message: `devices/{id}/messages/devicebound/{property bag}`, system
 * properties by their wire names (`$.mid`, `$.to`, `$.ct`, …, `iothub-ack`), then the application properties.
 */
export function c2dTopic(m: C2dMessageRecord): string {
  const bag = Object.create(null) as Record<string, string>;
  for (const [name, value] of Object.entries(m.systemProperties)) {
    const wire = Object.hasOwn(OUTBOUND_WIRE_NAMES, name) ? OUTBOUND_WIRE_NAMES[name] : undefined;
    if (wire !== undefined) bag[wire] = value;
  }
  bag['iothub-ack'] = m.ack;
  for (const [k, v] of Object.entries(m.properties)) if (!Object.hasOwn(bag, k)) bag[k] = v;
  return `devices/${m.deviceId}/messages/devicebound/${encodeBag(bag)}`;
}

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
  readonly limits: DeviceLimits;
  /** Admission shared with the other device endpoints (AMQP); one of its own when absent. */
  readonly admission?: Admission;
  /** Cloud-to-device queue: messages are delivered to subscribed devices with QoS 1 (PUBACK completes). */
  readonly c2d?: CloudToDevice;
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
  readonly #sessions = new Map<string, Session>();
  readonly #live = new Map<Client, Live>();
  /** Per stream handed to aedes: its size guard and its admission ticket (released once authenticated). */
  readonly #guards = new WeakMap<Duplex, { guard: FrameGuard; ticket: Ticket }>();
  readonly #admission: Admission;
  readonly #maxPacketBytes: number;
  #broker: Aedes | undefined;
  #tlsServer: TlsServer | undefined;
  readonly #wss: WebSocketServer;
  #unsubscribe: (() => void) | undefined;
  readonly #c2dInFlight = new Map<string, C2dInFlight>();
  readonly #c2dLocking = new Set<string>();
  /** Devices whose C2D queue changed while a lock query ran (a wake-up that query may have missed). */
  readonly #c2dAgain = new Set<string>();
  #recheckTimer: NodeJS.Timeout | undefined;

  constructor(deps: GatewayDeps) {
    this.#d = deps;
    this.#maxPacketBytes = deps.maxMessageBytes + PACKET_OVERHEAD_BYTES;
    this.#admission = deps.admission ?? new Admission(deps.limits, (reason) => this.#d.log.debug({ reason }, 'Dropped an unauthenticated connection'));
    // A WebSocket frame is buffered whole before MQTT sees it: no frame may exceed the largest MQTT packet.
    this.#wss = new WebSocketServer({ noServer: true, maxPayload: this.#maxPacketBytes });
  }

  /** Connections not yet authenticated (TLS handshake or CONNECT pending). */
  get pendingConnections(): number {
    return this.#admission.pending;
  }

  /**
   * Applies the pre-authentication caps and deadline to another TLS listener (the service port, which carries
   * MQTT over WebSockets): its sockets must finish the TLS handshake within `connectTimeoutMs`.
   */
  guardTlsListener(server: TlsServer): void {
    server.on('connection', (raw: Socket) => this.#admission.admitRaw(raw));
    server.on('secureConnection', (s: TLSSocket) => this.#admission.claim(s)?.release());
  }

  get connectionCount(): number {
    return this.#connections.size;
  }

  async start(listen: { host: string; port: number }): Promise<{ port: number }> {
    const broker = await Aedes.createBroker({
      id: `kedge-${this.#d.replicaId}`,
      concurrency: 1000,
      heartbeatInterval: 60_000,
      connectTimeout: this.#d.limits.connectTimeoutMs,
      authenticate: (client, username, password, done) => {
        this.#authenticate(client, username, password).then(
          () => done(null, true),
          (e: Error & { returnCode?: number }) => done(authError(e.message, e.returnCode ?? ConnackCode.NotAuthorized), false),
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
    // The hub publishes with QoS 1 only cloud-to-device messages, one at a time per device: a PUBACK completes it.
    broker.on('ack', (_packet, client) => this.#onC2dAck(client));
    broker.on('clientError', (client, err) => this.#d.log.debug({ clientId: client.id, err: err.message }, 'MQTT client error'));
    broker.on('connectionError', (_client, err) => this.#d.log.debug({ err: err.message }, 'MQTT connection refused before CONNECT'));
    broker.on('unsubscribe', (topics, client) => {
      const id = this.#identities.get(client);
      const session = this.#sessions.get(client.id);
      if (!id || !session) return;
      for (const t of topics) {
        const f = subscriptionFeature(t, id);
        if (f) session.features.delete(f);
      }
    });
    this.#unsubscribe = this.#d.bus.subscribe((e) => this.#onBus(e));
    this.#recheckTimer = setInterval(() => {
      this.#recheckAll().catch((err: unknown) => this.#d.log.warn({ err }, 'Failed to re-check MQTT sessions'));
    }, this.#d.limits.recheckSeconds * 1000);
    this.#recheckTimer.unref();

    const server = createTlsServer(
      { key: this.#d.tls.key, cert: this.#d.tls.cert, minVersion: 'TLSv1.2', handshakeTimeout: this.#d.limits.connectTimeoutMs },
      (socket) => {
        socket.setNoDelay(true);
        const ticket = this.#admission.claim(socket);
        if (!ticket) {
          // Not admitted (cap reached): the raw socket is already being destroyed.
          socket.destroy();
          return;
        }
        this.#handle(socket, ticket);
      },
    );
    server.on('connection', (raw: Socket) => this.#admission.admitRaw(raw));
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
    const ticket = this.#admission.admit(socket as Socket);
    if (!ticket) return;
    this.#wss.handleUpgrade(req, socket, head, (ws) => {
      this.#handle(createWebSocketStream(ws), ticket, req);
    });
  }

  /** Hands a stream to aedes behind a {@link FrameGuard}; `ticket` is released when the client authenticates. */
  #handle(stream: Duplex, ticket: Ticket, req?: IncomingMessage): void {
    const broker = this.#broker;
    if (!broker) {
      stream.destroy();
      return;
    }
    const guard = new FrameGuard(stream, { maxConnectBytes: this.#d.limits.maxConnectBytes, maxPacketBytes: this.#maxPacketBytes });
    guard.once('close', () => ticket.release());
    this.#guards.set(guard, { guard, ticket });
    broker.handle(guard, req);
  }

  async #authenticate(client: Client, username: Readonly<string> | undefined, password: Readonly<Buffer> | undefined): Promise<void> {
    const creds = { clientId: client.id, username: username ?? '', password: password?.toString('utf8') ?? '' };
    const r = await checkConnect(this.#d.store, this.#d.hostNames, creds, this.#now());
    if (!r.ok) {
      this.#d.metrics.connects.inc({ result: 'refused' });
      this.#d.log.info({ clientId: client.id, reason: r.refusal.reason }, 'Refused MQTT connection');
      throw authError(r.refusal.reason, r.refusal.code);
    }
    const grant = r.grant;
    const previous = this.#sessions.get(client.id);
    if (previous && !sameGeneration(previous.grant, grant)) {
      // The identity was deleted and re-created since that session: nothing of it may reach the new one.
      this.#sessions.delete(client.id);
      await this.#forgetSubscriptions(client);
    }
    const conn = client.conn as unknown as Duplex;
    const guarded = this.#guards.get(conn);
    guarded?.guard.authenticated();
    guarded?.ticket.release();
    const live: Live = { grant, username: creds.username, password: creds.password, timer: undefined, revoked: false };
    this.#live.set(client, live);
    conn.once('close', () => {
      if (live.timer) clearTimeout(live.timer);
      if (this.#live.get(client) === live) this.#live.delete(client);
    });
    this.#armExpiry(client, live);
    this.#identities.set(client, grant.identity);
    this.#d.metrics.connects.inc({ result: 'accepted' });
  }

  /** Drops what aedes persisted for the client id (restored on `clean=false`). */
  async #forgetSubscriptions(client: Client): Promise<void> {
    // aedes' typings declare `persistence` only as a constructor option; the instance carries it as `broker.persistence`.
    const persistence = (this.#broker as unknown as { persistence?: { cleanSubscriptions(c: Client): Promise<void> } } | undefined)?.persistence;
    await persistence?.cleanSubscriptions(client).catch(() => undefined);
  }

  #now(): number {
    return this.#d.nowSeconds?.() ?? Math.floor(Date.now() / 1000);
  }

  /** Closes the connection when its SAS token expires, as IoT Hub does. */
  #armExpiry(client: Client, live: Live): void {
    const ms = live.grant.expiresAtSeconds * 1000 - Date.now();
    live.timer = setTimeout(
      () => {
        if (live.grant.expiresAtSeconds * 1000 > Date.now()) this.#armExpiry(client, live);
        else this.#revoke(client, live, 'token expired', false);
      },
      Math.max(0, Math.min(ms, MAX_TIMER_MS)),
    );
    live.timer.unref();
  }

  /**
   * Ends a connection whose credentials no longer hold. Nothing it sends afterwards is accepted (its will
   * included); `forgetSession` also drops its persistent session (identity gone or replaced).
   */
  #revoke(client: Client, live: Live, reason: string, forgetSession: boolean): void {
    if (live.revoked) return;
    live.revoked = true;
    if (live.timer) clearTimeout(live.timer);
    const id = live.grant.identity;
    this.#d.log.info({ deviceId: id.deviceId, moduleId: id.moduleId, via: live.grant.via, reason }, 'Closed MQTT session');
    if (forgetSession) {
      this.#sessions.delete(client.id);
      void this.#forgetSubscriptions(client);
    }
    client.close();
  }

  /** Re-checks every live connection resting on identity `deviceId[/moduleId]` against the registry. */
  async #recheck(deviceId: string, moduleId: string): Promise<void> {
    await this.#recheckClients([...this.#live].filter(([, l]) => dependsOn(l.grant, deviceId, moduleId)));
  }

  #recheckAll(): Promise<void> {
    return this.#recheckClients([...this.#live]);
  }

  async #recheckClients(affected: ReadonlyArray<readonly [Client, Live]>): Promise<void> {
    for (const [client, live] of affected) {
      if (live.revoked) continue;
      const r = await checkConnect(this.#d.store, this.#d.hostNames, { clientId: client.id, username: live.username, password: live.password }, this.#now());
      if (!r.ok) this.#revoke(client, live, r.refusal.reason, true);
      else if (!sameGeneration(live.grant, r.grant)) this.#revoke(client, live, 'identity re-created', true);
    }
  }

  #onReady(client: Client): void {
    const id = this.#identities.get(client);
    if (!id) return;
    const key = keyOf(id);
    this.#connections.set(key, client);
    // A clean session forgets what the previous connection subscribed to [MQTT-3.1.2-6].
    const grant = this.#live.get(client)?.grant;
    if (grant && (client.clean || !this.#sessions.has(client.id))) this.#sessions.set(client.id, { grant, features: new Set() });
    if (!id.moduleId && this.#sessions.get(client.id)?.features.has(F.C2D)) this.#pumpC2d(id.deviceId);
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
    this.#dropC2d(id.deviceId, client);
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
    this.#sessions.get(client.id)?.features.add(feature);
    if (feature === F.C2D) setImmediate(() => this.#pumpC2d(id.deviceId));
    // QoS 2 is not supported by IoT Hub: grant at most 1.
    return { ...sub, qos: sub.qos > 1 ? 1 : sub.qos };
  }

  #authorizePublish(client: Client | null, packet: PublishPacket, done: (err?: Error | null) => void): void {
    const live = client ? this.#live.get(client) : undefined;
    const id = client && live && !live.revoked ? this.#identities.get(client) : undefined;
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
    return client && this.#sessions.get(client.id)?.features.has(feature) ? client : undefined;
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
    } else if (e.type === 'c2d') {
      this.#pumpC2d(e.deviceId);
    } else if (e.type === 'resync') {
      // C2D wake-ups may have been missed while the bus was down: every device subscribed here looks again.
      for (const client of this.#connections.values()) {
        const id = this.#sessions.get(client.id)?.grant.identity;
        if (id && !id.moduleId) this.#pumpC2d(id.deviceId);
      }
    } else if (e.type === 'identity') {
      this.#recheck(e.deviceId, e.moduleId).catch((err: unknown) => this.#d.log.warn({ err, deviceId: e.deviceId }, 'Failed to re-check MQTT sessions'));
    }
  }

  /** Delivers the next cloud-to-device message of `deviceId` if it is connected here, subscribed and holds none. */
  #pumpC2d(deviceId: string): void {
    const c2d = this.#d.c2d;
    const client = this.#featureOf({ deviceId, moduleId: '' }, F.C2D);
    if (!c2d || !client || this.#c2dInFlight.has(deviceId)) return;
    if (this.#c2dLocking.has(deviceId)) {
      // A lock query is running; it may have read the queue before this message was committed: look again after it.
      this.#c2dAgain.add(deviceId);
      return;
    }
    this.#c2dLocking.add(deviceId);
    c2d.lock(deviceId).then(
      (m) => {
        this.#c2dLocking.delete(deviceId);
        const again = this.#c2dAgain.delete(deviceId);
        if (!m) {
          if (again) this.#pumpC2d(deviceId);
          return;
        }
        if (this.#featureOf({ deviceId, moduleId: '' }, F.C2D) !== client || this.#live.get(client)?.revoked !== false) {
          void c2d.settle(deviceId, m.lockToken, 'abandon').catch(() => undefined);
          return;
        }
        // The lock lapses after lockTimeoutSeconds without a PUBACK: the message is delivered again.
        const timer = setTimeout(() => {
          if (this.#c2dInFlight.get(deviceId)?.lockToken !== m.lockToken) return;
          this.#c2dInFlight.delete(deviceId);
          this.#pumpC2d(deviceId);
        }, c2d.config.lockTimeoutSeconds * 1000);
        timer.unref();
        this.#c2dInFlight.set(deviceId, { client, lockToken: m.lockToken, timer });
        this.#d.metrics.c2dMessages.inc({ event: 'delivered' });
        client.publish({ cmd: 'publish', topic: c2dTopic(m), payload: m.body, qos: 1, retain: false, dup: false }, (err) => {
          if (err) this.#d.log.debug({ deviceId, err: err.message }, 'Failed to send a cloud-to-device message');
        });
      },
      (err: unknown) => {
        this.#c2dLocking.delete(deviceId);
        this.#c2dAgain.delete(deviceId);
        this.#d.log.warn({ err, deviceId }, 'Failed to lock a cloud-to-device message');
      },
    );
  }

  #onC2dAck(client: Client): void {
    const id = this.#identities.get(client);
    const c2d = this.#d.c2d;
    if (!id || id.moduleId || !c2d) return;
    const f = this.#c2dInFlight.get(id.deviceId);
    if (f?.client !== client) return;
    clearTimeout(f.timer);
    this.#c2dInFlight.delete(id.deviceId);
    c2d.settle(id.deviceId, f.lockToken, 'complete').then(
      () => this.#pumpC2d(id.deviceId),
      (err: unknown) => this.#d.log.warn({ err, deviceId: id.deviceId }, 'Failed to complete a cloud-to-device message'),
    );
  }

  /** The connection went: its message goes back to the queue at once (its delivery count stays). */
  #dropC2d(deviceId: string, client: Client): void {
    const f = this.#c2dInFlight.get(deviceId);
    if (f?.client !== client) return;
    clearTimeout(f.timer);
    this.#c2dInFlight.delete(deviceId);
    this.#d.c2d?.settle(deviceId, f.lockToken, 'abandon').catch((err: unknown) => this.#d.log.warn({ err, deviceId }, 'Failed to abandon a cloud-to-device message'));
  }

  /** Stops accepting connections and closes the broker (in-flight publishes finish first). */
  async close(): Promise<void> {
    this.#unsubscribe?.();
    if (this.#recheckTimer) clearInterval(this.#recheckTimer);
    const server = this.#tlsServer;
    const closed = server ? new Promise<void>((resolve) => server.close(() => resolve())) : Promise.resolve();
    const broker = this.#broker;
    if (broker) await new Promise<void>((resolve) => broker.close(() => resolve()));
    this.#wss.close();
    await closed;
    await this.#d.store.clearReplicaPresence(this.#d.replicaId).catch(() => undefined);
    for (const live of this.#live.values()) if (live.timer) clearTimeout(live.timer);
    for (const f of this.#c2dInFlight.values()) clearTimeout(f.timer);
    this.#c2dInFlight.clear();
    this.#live.clear();
    this.#connections.clear();
  }
}
