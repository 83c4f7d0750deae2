import type { IncomingMessage } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { Server as HttpsServer } from 'node:https';
import { Readable } from 'node:stream';
import type { Duplex } from 'node:stream';
import { createServer as createTlsServer } from 'node:tls';
import type { Server as TlsServer, TLSSocket } from 'node:tls';
import { Aedes } from 'aedes';
import type { Client, PublishPacket, Subscription } from 'aedes';
import memoryPersistenceModule from 'aedes-persistence';
import type { AedesMemoryPersistence } from 'aedes-persistence';
import { createWebSocketStream, WebSocketServer } from 'ws';
import type { Feature, Identity, Inbound, SasToken } from '@kedge/protocol';
import {
  Feature as F,
  SYSTEM_PROPERTY_NAMES,
  isOutboundFor,
  parseClientId,
  parseInbound,
  parseSasToken,
  parseUsername,
  splitBag,
  subscriptionFeature,
  verifySasToken,
} from '@kedge/protocol';
import { FrameGuard } from '@kedge/protocol';
import type { FrameLimits } from '@kedge/protocol';
import { EDGE_HUB_MODULE } from './hub-client.js';
import type { ScopeIdentity } from './hub-client.js';
import { identityKey } from './identities.js';
import type { Logger } from './log.js';
import type { EdgeHubMetrics } from './metrics.js';

/** MQTT 3.1.1 CONNACK return codes: 4 bad user name or password, 5 not authorized. */
const BAD_CREDENTIALS = 4;
const NOT_AUTHORIZED = 5;

const authError = (message: string, returnCode: number): Error & { returnCode: number } => Object.assign(new Error(message), { returnCode });

/** A message a client sent, as the broker hands it on (property bags are null-prototype records). */
export interface InboundTelemetry {
  readonly body: Buffer;
  readonly properties: Record<string, string>;
  readonly systemProperties: Record<string, string>;
  readonly receivedAt: number;
}

/** A reply to a twin request: an MQTT status and a body. */
export interface TwinReply {
  readonly status: number;
  readonly body: string;
  /** For reported patches: the new reported `$version`. */
  readonly version?: number;
}

/** What the broker asks of the rest of the edge hub. Implementations must not throw synchronously. */
export interface BrokerHandler {
  /** Routes a message; resolves once it is durable (then the broker PUBACKs), rejects to refuse it. */
  telemetry(id: Identity, message: InboundTelemetry): Promise<void>;
  twinGet(id: Identity): Promise<TwinReply>;
  twinReported(id: Identity, patch: string): Promise<TwinReply>;
  methodResponse(id: Identity, rid: string, status: number, payload: Buffer): void;
  /**
   * A client connected, disconnected or changed its subscriptions: the upstream link follows it. The returned
   * promise (if any) settles when the change is in effect upstream; the broker sends the SUBACK after it.
   */
  sessionChanged(id: Identity, connected: boolean, features: ReadonlySet<Feature>): Promise<void> | void;
}

/** Settings of the broker. */
export interface BrokerOptions {
  readonly edgeDeviceId: string;
  /** Host names a SAS audience may name: the hub's and the edge hub's own. */
  readonly hostNames: readonly string[];
  readonly tls: { readonly key: string; readonly cert: string };
  readonly maxMessageBytes: number;
  readonly connectTimeoutMs: number;
  readonly frames: FrameLimits;
  readonly now?: () => number;
}

/** Dependencies of the broker. */
export interface BrokerDeps {
  readonly identities: { lookup(deviceId: string, moduleId: string): Promise<ScopeIdentity | undefined>; get(deviceId: string, moduleId: string): ScopeIdentity | undefined };
  readonly handler: BrokerHandler;
  readonly log: Logger;
  readonly metrics: EdgeHubMetrics;
}

/** A module input delivery could not be made: the module is not connected or not subscribed to its inputs. */
export class NotConnectedError extends Error {
  readonly code = 'EDGE_ERR_NOT_CONNECTED';
  constructor(what: string) {
    super(`${what} is not connected or not subscribed`);
    this.name = 'NotConnectedError';
  }
}

interface Session {
  readonly features: Set<Feature>;
}

interface Connection {
  readonly client: Client;
  readonly id: Identity;
  readonly token: SasToken;
  expiry: NodeJS.Timeout | undefined;
}

interface ParsedBag {
  /** The telemetry topic it came on, and that topic parsed: the next PUBLISH on the same topic skips both parses. */
  readonly topic: string;
  readonly inbound: Inbound;
  readonly text: string;
  readonly properties: Readonly<Record<string, string>>;
  readonly systemProperties: Readonly<Record<string, string>>;
}

/** A telemetry PUBLISH waiting for its PUBACK (`messageId` -1: QoS 0, nothing to acknowledge). */
interface UnackedPublish {
  readonly messageId: number;
  readonly bytes: number;
  stored: boolean;
}

interface UnackedPublishes {
  queue: UnackedPublish[];
  head: number;
  bytes: number;
  /** A message of this connection could not be stored: nothing after it is acknowledged. */
  failed: boolean;
}

/**
 * How much telemetry a connection may have waiting for the store before the broker stops reading from it (aedes then
 * reads again once the message over the bound is stored).
 */
const MAX_UNACKED = 1024;
const MAX_UNACKED_BYTES = 4 * 1024 * 1024;

/** How a {@link EdgeBroker.deliverBatch} ended: the first `acknowledged` messages were; `error` why the next was not. */
export interface DeliveryOutcome {
  readonly acknowledged: number;
  readonly error?: unknown;
}

interface OutgoingBatch {
  readonly ids: number[];
  readonly acked: Uint8Array;
  /** Messages acknowledged from the start of the batch without a gap. */
  prefix: number;
  settled: boolean;
  resolve(): void;
  fail(e: unknown): void;
}

interface OutgoingDeliveries {
  /** The next packet identifier to try (1–65535). */
  next: number;
  readonly inflight: Map<number, { readonly batch: OutgoingBatch; readonly index: number }>;
}

/** The next packet identifier not in flight on this connection [MQTT-2.3.1-2]. */
function nextPacketId(out: OutgoingDeliveries): number {
  for (let tries = 0; tries < 65535; tries++) {
    const n = out.next;
    out.next = n === 65535 ? 1 : n + 1;
    if (!out.inflight.has(n)) return n;
  }
  throw new Error('no free MQTT packet identifier on this connection');
}

/** An MQTT 3.1.1 PUBLISH, QoS 1, not retained, not a duplicate [MQTT-3.3]. Topics over 65,535 bytes throw RangeError. */
export function encodePublishQos1(topic: string, packetId: number, body: Uint8Array): Buffer {
  const topicBytes = Buffer.byteLength(topic, 'utf8');
  if (topicBytes > 0xffff) throw new RangeError(`an MQTT topic is at most 65535 bytes, this one has ${topicBytes}`);
  const remaining = 2 + topicBytes + 2 + body.byteLength;
  let lengthBytes = 1;
  for (let r = remaining; r > 127; r = Math.floor(r / 128)) lengthBytes++;
  const buf = Buffer.allocUnsafe(1 + lengthBytes + remaining);
  buf[0] = 0x32;
  let o = 1;
  let r = remaining;
  do {
    let byte = r % 128;
    r = Math.floor(r / 128);
    if (r > 0) byte |= 0x80;
    buf[o++] = byte;
  } while (r > 0);
  buf.writeUInt16BE(topicBytes, o);
  o += 2;
  o += buf.write(topic, o, topicBytes, 'utf8');
  buf.writeUInt16BE(packetId, o);
  o += 2;
  buf.set(body, o);
  return buf;
}


// aedes-persistence is CommonJS (`module.exports = factory`) typed as an ES module: at run time the default import
// is the factory itself.
const memoryPersistence = memoryPersistenceModule as unknown as () => AedesMemoryPersistence;

/** The broker id on the QoS 0 packets the broker sends through aedes (replies, patches, method requests); aedes dedupes by `brokerCounter`. */
const OWN_BROKER_ID = 'kedge-edge-hub-out';

/**
 * The edge hub's MQTT broker: aedes speaking IoT Hub's MQTT dialect (MQTT 3.1.1 over TLS and over WebSockets) to
 * the edge device's modules and leaf devices, with the cloud hub's rules (`@kedge/protocol`).
 *
 * - CONNECT: client id `{d}` or `{d}/{m}`, a matching user name, and a SAS token for that identity, checked against
 *   the cached device scope (so clients connect while the hub is unreachable). Modules must belong to this edge
 *   device. The session ends when the token's `se` passes or the identity leaves the scope or is re-keyed.
 * - Authorization is by topic: a client publishes only its own telemetry and the `$iothub` request topics and
 *   subscribes only to the fixed filters of its own namespace; anything else disconnects it (publish) or is refused
 *   (SUBACK 0x80). Nothing is ever forwarded between clients: every packet a client receives is sent by the edge
 *   hub to that connection.
 * - Sessions: subscriptions survive reconnects with `clean=false` (the Node SDK reconnects for token renewal
 *   without re-subscribing). aedes' offline queue is disabled ({@link sessionPersistence}): the durable store holds
 *   undelivered messages, and in-flight ones are retried by the router after a reconnect.
 * - Hostile input: packets are bounded before and after CONNECT ({@link FrameGuard}), CONNECT must arrive within
 *   `connectTimeoutMs`, property bags are null-prototype records.
 */
export class EdgeBroker {
  readonly #o: BrokerOptions;
  readonly #d: BrokerDeps;
  readonly #auth = new WeakMap<Client, { id: Identity; token: SasToken }>();
  readonly #connections = new Map<string, Connection>();
  readonly #sessions = new Map<string, Session>();
  /** Per connection: module input deliveries waiting for their PUBACK. */
  readonly #out = new WeakMap<Client, OutgoingDeliveries>();
  /** Per connection: the property bag of its last telemetry message. */
  readonly #lastBag = new WeakMap<Client, ParsedBag>();
  /** Per connection: telemetry received and not yet acknowledged, in arrival order. */
  readonly #acks = new WeakMap<Client, UnackedPublishes>();
  /** Client PUBLISHes this broker has taken over (telemetry, twin and method requests): aedes does not publish them. */
  readonly #taken = new WeakSet<PublishPacket>();
  #counter = 0;
  #broker: Aedes | undefined;
  #tls: TlsServer | undefined;
  #https: HttpsServer | undefined;
  readonly #wss = new WebSocketServer({ noServer: true, maxPayload: 512 * 1024 });

  constructor(options: BrokerOptions, deps: BrokerDeps) {
    this.#o = options;
    this.#d = deps;
  }

  /** Number of connected clients. */
  get connectionCount(): number {
    return this.#connections.size;
  }

  /** Starts the broker and its listeners; resolves with the bound ports. */
  async start(listen: { mqtt: { host: string; port: number }; websocket?: { host: string; port: number } }): Promise<{ mqttPort: number; websocketPort?: number }> {
    const broker = await Aedes.createBroker({
      id: `kedge-edge-hub-${this.#o.edgeDeviceId}`,
      persistence: sessionPersistence(),
      concurrency: 1000,
      heartbeatInterval: 60_000,
      connectTimeout: this.#o.connectTimeoutMs,
      maxClientsIdLength: 256,
      authenticate: (client, username, password, done) => {
        this.#authenticate(client, username, password).then(
          () => {
            // The CONNECT is accepted: lift the guard's limit to the one for authenticated clients.
            (client.conn as unknown as Partial<FrameGuard>).authenticated?.();
            done(null, true);
          },
          (e: Error & { returnCode?: number }) => done(authError(e.message, e.returnCode ?? NOT_AUTHORIZED), false),
        );
      },
      authorizePublish: (client, packet, done) => this.#authorizePublish(client, packet, done),
      authorizeSubscribe: (client, sub, done) => {
        this.#authorizeSubscribe(client, sub).then(
          (granted) => done(null, granted),
          () => done(null, null),
        );
      },
      // Only what the edge hub itself sends to a connection reaches it (client.publish still passes through here).
      authorizeForward: (client, packet) => {
        const a = this.#auth.get(client);
        return a && packet.brokerId === OWN_BROKER_ID && isOutboundFor(packet.topic, a.id) ? packet : undefined;
      },
    });
    this.#broker = broker;
    // A client's PUBLISH is handled here (routed, stored, answered) and never forwarded, so aedes' own publish of it
    // (a Packet, a topic match over every subscription, a retained-message store) is skipped: that work is wasted at
    // every message, and a retained flag would otherwise keep the message in memory.
    type Publish = (packet: PublishPacket, ...rest: unknown[]) => void;
    const publish = broker.publish.bind(broker) as Publish;
    (broker as unknown as { publish: Publish }).publish = (packet, ...rest) => {
      if (!this.#taken.delete(packet)) return publish(packet, ...rest);
      const done = rest[rest.length - 1]; // publish(packet, [client,] done)
      if (typeof done === 'function') (done as () => void)();
    };
    broker.on('clientReady', (client) => this.#onReady(client));
    broker.on('clientDisconnect', (client) => this.#onGone(client));
    broker.on('clientError', (client, err) => this.#d.log.debug({ clientId: client.id, err: err.message }, 'MQTT client error'));
    broker.on('connectionError', (client, err) => this.#d.log.debug({ clientId: client.id, err: err.message }, 'MQTT connection error'));
    broker.on('ack', (packet, client) => this.#onAck(packet, client));
    broker.on('unsubscribe', (topics, client) => {
      const a = this.#auth.get(client);
      const session = this.#sessions.get(client.id);
      if (!a || !session) return;
      for (const t of topics) {
        const f = subscriptionFeature(t, a.id);
        if (f) session.features.delete(f);
      }
      void this.#d.handler.sessionChanged(a.id, true, session.features);
    });

    const handle = (stream: Duplex, req?: unknown): void => this.#handle(broker, stream, req);
    const tls = createTlsServer({ key: this.#o.tls.key, cert: this.#o.tls.cert, minVersion: 'TLSv1.2', handshakeTimeout: this.#o.connectTimeoutMs }, (socket: TLSSocket) => {
      socket.setNoDelay(true);
      handle(socket);
    });
    tls.on('tlsClientError', (e) => this.#d.log.debug({ err: e.message }, 'TLS handshake failed'));
    this.#tls = tls;
    const mqttPort = await listenOn(tls, listen.mqtt);
    let websocketPort: number | undefined;
    if (listen.websocket) {
      const https = createHttpsServer({ key: this.#o.tls.key, cert: this.#o.tls.cert, minVersion: 'TLSv1.2', requestTimeout: this.#o.connectTimeoutMs }, (_req, res) => {
        res.writeHead(404).end();
      });
      https.on('upgrade', (req, socket: Duplex, head: Buffer) => this.handleUpgrade(req, socket, head));
      this.#https = https;
      websocketPort = await listenOn(https, listen.websocket);
    }
    return { mqttPort, ...(websocketPort === undefined ? {} : { websocketPort }) };
  }

  #handle(broker: Aedes, stream: Duplex, req?: unknown): void {
    const guarded = new FrameGuard(stream, this.#o.frames);
    guarded.on('error', (e: Error) => this.#d.log.debug({ err: e.message }, 'Closed an MQTT connection'));
    broker.handle(guarded, req as never);
  }

  /**
   * Takes an HTTP `Upgrade` request from another HTTPS listener (the edge hub's, which serves REST on the same
   * port): `/$iothub/websocket` becomes an MQTT-over-WebSockets connection, anything else is closed.
   */
  handleUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    const broker = this.#broker;
    if (!broker || (req.url ?? '').split('?')[0] !== '/$iothub/websocket') {
      socket.destroy();
      return;
    }
    this.#wss.handleUpgrade(req, socket, head, (ws) => this.#handle(broker, createWebSocketStream(ws), req));
  }

  async #authenticate(client: Client, username: Readonly<string> | undefined, password: Readonly<Buffer> | undefined): Promise<void> {
    const fail = (why: string, code = BAD_CREDENTIALS): never => {
      this.#d.metrics.connectFailed.inc({ id: client.id.slice(0, 256), reason: code === BAD_CREDENTIALS ? 'bad_credentials' : 'not_authorized' });
      this.#d.log.info({ clientId: client.id.slice(0, 256), reason: why }, 'Refused MQTT connection');
      throw authError(why, code);
    };
    const id = parseClientId(client.id);
    if (!id) return fail('client id must be {deviceId} or {deviceId}/{moduleId}', NOT_AUTHORIZED);
    // Modules are this edge device's; `$edgeHub` is the edge hub itself and never connects to itself.
    if (id.moduleId && (id.deviceId !== this.#o.edgeDeviceId || id.moduleId === EDGE_HUB_MODULE)) return fail('not a module of this edge device', NOT_AUTHORIZED);
    const user = parseUsername(username ?? '');
    if (!user || user.deviceId !== id.deviceId || user.moduleId !== id.moduleId) return fail('user name does not match the client id');
    if (!password) return fail('a SAS token password is required');
    const token = parseSasToken(password.toString('utf8'));
    if (!token.ok) return fail('malformed SAS token');
    const now = this.#nowSeconds();
    if (token.value.se <= now) return fail('token expired');
    const identity = await this.#d.identities.lookup(id.deviceId, id.moduleId);
    if (!identity || !identity.enabled) return fail('identity is not in this edge device scope', NOT_AUTHORIZED);
    const problem = this.#verify(id, token.value, identity);
    if (problem) return fail(`token ${problem}`);
    this.#auth.set(client, { id, token: token.value });
    this.#d.metrics.connectSuccess.inc({ id: identityKey(id.deviceId, id.moduleId) });
  }

  #verify(id: Identity, token: SasToken, identity: ScopeIdentity): string | undefined {
    const resource = id.moduleId ? `devices/${id.deviceId}/modules/${id.moduleId}` : `devices/${id.deviceId}`;
    const v = verifySasToken(token, {
      audiences: this.#o.hostNames.map((h) => `${h}/${resource}`),
      keys: [identity.primaryKey, identity.secondaryKey],
      nowSeconds: this.#nowSeconds(),
    });
    return v.ok ? undefined : v.error;
  }

  #nowSeconds(): number {
    return Math.floor((this.#o.now ?? Date.now)() / 1000);
  }

  #onReady(client: Client): void {
    const a = this.#auth.get(client);
    if (!a) return;
    const key = identityKey(a.id.deviceId, a.id.moduleId);
    const previous = this.#connections.get(key);
    // One connection per identity, as IoT Hub: the newer one wins.
    if (previous && previous.client !== client) this.#drop(previous, 'replaced by a new connection');
    // A session ends with its token [IoT Hub]; the Node SDK renews it before that by reconnecting.
    const ms = Math.max(0, a.token.se * 1000 - (this.#o.now ?? Date.now)());
    const conn: Connection = { client, id: a.id, token: a.token, expiry: undefined };
    conn.expiry = setTimeout(() => this.#drop(conn, 'token expired'), Math.min(ms, 2 ** 31 - 1));
    conn.expiry.unref();
    this.#connections.set(key, conn);
    // The CONNACK is on the wire before aedes reports the client ready: a scope refresh in between saw no connection
    // to re-check, so check this one against the scope as it is now.
    const identity = this.#d.identities.get(a.id.deviceId, a.id.moduleId);
    if (!identity || !identity.enabled || this.#verify(a.id, a.token, identity) !== undefined) {
      this.#sessions.delete(client.id);
      this.#drop(conn, 'identity left the device scope or was re-keyed');
      return;
    }
    // A clean session forgets what the previous connection subscribed to [MQTT-3.1.2-6].
    if (client.clean || !this.#sessions.has(client.id)) this.#sessions.set(client.id, { features: new Set() });
    this.#d.metrics.connectedClients.set(this.#connections.size);
    this.#d.log.info({ clientId: key }, 'Client connected');
    void this.#d.handler.sessionChanged(a.id, true, this.#sessions.get(client.id)?.features ?? new Set());
  }

  #onGone(client: Client): void {
    const a = this.#auth.get(client);
    if (!a) return;
    const key = identityKey(a.id.deviceId, a.id.moduleId);
    const out = this.#out.get(client);
    if (out !== undefined) {
      this.#out.delete(client);
      const batches = new Set<OutgoingBatch>();
      for (const d of out.inflight.values()) batches.add(d.batch);
      out.inflight.clear();
      for (const b of batches) b.fail(new NotConnectedError(key));
    }
    const conn = this.#connections.get(key);
    if (conn?.client !== client) return;
    if (conn.expiry) clearTimeout(conn.expiry);
    this.#connections.delete(key);
    if (client.clean) this.#sessions.delete(client.id);
    this.#d.metrics.connectedClients.set(this.#connections.size);
    this.#d.metrics.disconnects.inc({ id: key });
    this.#d.log.info({ clientId: key }, 'Client disconnected');
    void this.#d.handler.sessionChanged(a.id, false, new Set());
  }

  #drop(conn: Connection, why: string): void {
    this.#d.log.info({ clientId: identityKey(conn.id.deviceId, conn.id.moduleId), reason: why }, 'Closing MQTT session');
    conn.client.close();
  }

  /**
   * Re-checks the sessions of identities that were removed, disabled or re-keyed: a session whose token no longer
   * verifies against the current scope is closed.
   */
  recheck(keys: ReadonlySet<string>): void {
    for (const key of keys) {
      const conn = this.#connections.get(key);
      if (!conn) continue;
      const identity = this.#d.identities.get(conn.id.deviceId, conn.id.moduleId);
      if (!identity || !identity.enabled || this.#verify(conn.id, conn.token, identity) !== undefined) {
        this.#sessions.delete(conn.client.id);
        this.#drop(conn, 'identity left the device scope or was re-keyed');
      }
    }
  }

  async #authorizeSubscribe(client: Client, sub: Subscription): Promise<Subscription | null> {
    const a = this.#auth.get(client);
    const feature = a && subscriptionFeature(sub.topic, a.id);
    // A leaf device has no cloud-to-device path through the edge hub yet: refused rather than silently dead.
    if (!a || !feature || feature === F.C2D) {
      this.#d.log.info({ clientId: client.id.slice(0, 256), topic: sub.topic.slice(0, 200) }, 'Refused subscription');
      return null;
    }
    // aedes handles a SUBSCRIBE that arrived while the CONNECT was being accepted (or right after the CONNACK) before
    // it reports the client ready, and #onReady starts a clean session afresh: a subscription recorded before that
    // would be erased, the client holding its SUBACK and never getting a message. It takes effect once ready. (Not
    // for persistent sessions: #onReady keeps theirs, and aedes restores their subscriptions before it is ready.)
    if (client.clean && !(await whenReady(client))) return null;
    const session = this.#sessions.get(client.id) ?? { features: new Set<Feature>() };
    this.#sessions.set(client.id, session);
    session.features.add(feature);
    // SUBACK once the upstream subscription is in place (desired patches, method requests).
    await this.#d.handler.sessionChanged(a.id, true, session.features);
    // QoS 2 is not supported by IoT Hub: grant at most 1.
    return { ...sub, qos: sub.qos > 1 ? 1 : sub.qos };
  }

  #authorizePublish(client: Client | null, packet: PublishPacket, done: (err?: Error | null) => void): void {
    const a = client ? this.#auth.get(client) : undefined;
    const last = client ? this.#lastBag.get(client) : undefined;
    const inbound = a ? (last !== undefined && last.topic === packet.topic ? last.inbound : parseInbound(packet.topic, a.id)) : undefined;
    if (!client || !a || !inbound || packet.qos > 1) {
      this.#d.log.info({ clientId: client?.id.slice(0, 256), topic: packet.topic.slice(0, 200) }, 'Refused publish');
      done(new Error('publish to this topic is not allowed'));
      return;
    }
    const id = a.id;
    this.#taken.add(packet);
    const payload = Buffer.isBuffer(packet.payload) ? packet.payload : Buffer.from(packet.payload);
    switch (inbound.kind) {
      case 'telemetry': {
        if (payload.length > this.#o.maxMessageBytes) {
          this.#d.metrics.unacked.inc({ reason: 'message_too_large', from: identityKey(id.deviceId, id.moduleId), from_route_output: '' });
          done(new Error('message too large'));
          return;
        }
        const bag = last !== undefined && last.inbound === inbound ? last : this.#bag(client, packet.topic, inbound, id);
        if (!bag) {
          done(new Error('malformed property bag'));
          return;
        }
        const receivedAt = (this.#o.now ?? Date.now)();
        this.#telemetry(client, packet, id, { body: payload, properties: bag.properties, systemProperties: bag.systemProperties, receivedAt }, done);
        return;
      }
      case 'twin-get':
        done(null);
        this.#reply(client, inbound.rid, this.#d.handler.twinGet(id));
        return;
      case 'twin-reported':
        done(null);
        this.#reply(client, inbound.rid, this.#d.handler.twinReported(id, payload.toString('utf8')));
        return;
      case 'method-response':
        done(null);
        this.#d.handler.methodResponse(id, inbound.rid, inbound.status, payload);
        return;
    }
  }

  /**
   * The properties of a telemetry property bag, with the sender's identity from its connection (never from the bag),
   * frozen. A connection's messages usually carry the same bag (output, content type): the last one parsed is
   * reused when the text is the same, so those messages share one pair of immutable objects.
   */
  #bag(client: Client, topic: string, inbound: Inbound & { kind: 'telemetry' }, id: Identity): ParsedBag | undefined {
    const text = inbound.bag;
    const last = this.#lastBag.get(client);
    if (last !== undefined && last.text === text) return last;
    const bag = splitBag(text, SYSTEM_PROPERTY_NAMES);
    if (!bag) return undefined;
    const sys = bag.systemProperties;
    sys['connectionDeviceId'] = id.deviceId;
    if (id.moduleId) sys['connectionModuleId'] = id.moduleId;
    else delete sys['outputName'];
    const parsed: ParsedBag = { topic, inbound, text, properties: Object.freeze(bag.properties), systemProperties: Object.freeze(sys) };
    this.#lastBag.set(client, parsed);
    return parsed;
  }

  /**
   * Hands a telemetry message to the handler and acknowledges it once it is stored. The broker writes the PUBACK
   * itself rather than through aedes, so a connection's next packets are read while earlier ones wait for their
   * group commit (aedes would hold the next read until every packet of the read batch is acknowledged, so a batch
   * waits for its fsync before the next one can join one):
   * - PUBACKs go out in the order the PUBLISHes arrived [MQTT-4.6.0-2], each only after its message is durable;
   *   those ready together are one write (one TLS record).
   * - Bounded: past {@link MAX_UNACKED} messages or {@link MAX_UNACKED_BYTES} bytes waiting on a connection, aedes'
   *   read waits for this message (its `done`), as before.
   * - A message that cannot be stored is never acknowledged: the connection is closed (MQTT 3.1.1 has no negative
   *   PUBACK), and so are the PUBACKs of messages after it (the client resends them: at least once).
   * aedes sees the PUBLISH as QoS 0 (so it writes no PUBACK of its own and keeps no offline queue for it); nothing is
   * forwarded to other clients either way ({@link authorizeForward}).
   */
  #telemetry(client: Client, packet: PublishPacket, id: Identity, message: InboundTelemetry, done: (err?: Error | null) => void): void {
    const acks = this.#unacked(client);
    const slot: UnackedPublish = { messageId: packet.qos === 1 ? (packet.messageId ?? 0) : -1, bytes: message.body.length, stored: false };
    packet.qos = 0;
    acks.queue.push(slot);
    acks.bytes += slot.bytes;
    const hold = acks.queue.length - acks.head > MAX_UNACKED || acks.bytes > MAX_UNACKED_BYTES;
    if (!hold) done(null);
    this.#d.handler.telemetry(id, message).then(
      () => {
        slot.stored = true;
        this.#flushAcks(client, acks);
        if (hold) done(null);
      },
      (e: unknown) => {
        const err = e instanceof Error ? e : new Error(String(e));
        acks.failed = true;
        // Not acknowledged: the connection ends (aedes does it for a `done` error).
        if (hold) done(err);
        else {
          this.#d.log.debug({ clientId: client.id, err: err.message }, 'Closing a connection whose message could not be stored');
          client.close();
        }
      },
    );
  }

  #unacked(client: Client): UnackedPublishes {
    let acks = this.#acks.get(client);
    if (acks === undefined) this.#acks.set(client, (acks = { queue: [], head: 0, bytes: 0, failed: false }));
    return acks;
  }

  /** Writes the PUBACKs of the stored messages at the head of the connection's queue, in order, in one write. */
  #flushAcks(client: Client, acks: UnackedPublishes): void {
    let n = 0;
    let i = acks.head;
    for (; i < acks.queue.length && (acks.queue[i] as UnackedPublish).stored; i++) {
      const slot = acks.queue[i] as UnackedPublish;
      acks.bytes -= slot.bytes;
      if (slot.messageId >= 0) n++;
    }
    if (i === acks.head) return;
    const ready = acks.queue.slice(acks.head, i);
    if (i === acks.queue.length) {
      acks.queue = [];
      acks.head = 0;
    } else if (i > 1024) {
      acks.queue = acks.queue.slice(i);
      acks.head = 0;
    } else acks.head = i;
    if (n === 0 || acks.failed || client.closed || client.conn.destroyed) return;
    const buf = Buffer.allocUnsafe(4 * n);
    let o = 0;
    for (const slot of ready) {
      if (slot.messageId < 0) continue;
      buf[o] = 0x40; // PUBACK, remaining length 2, packet identifier [MQTT-3.4]
      buf[o + 1] = 2;
      buf.writeUInt16BE(slot.messageId, o + 2);
      o += 4;
    }
    client.conn.write(buf);
  }

  #reply(client: Client, rid: string, reply: Promise<TwinReply>): void {
    const r = encodeURIComponent(rid);
    reply.then(
      (t) => this.#send(client, `$iothub/twin/res/${t.status}/?$rid=${r}${t.version === undefined ? '' : `&$version=${t.version}`}`, t.body),
      (e: unknown) => {
        this.#d.log.warn({ clientId: client.id, err: e instanceof Error ? e.message : String(e) }, 'Twin request failed');
        this.#send(client, `$iothub/twin/res/500/?$rid=${r}`, JSON.stringify({ errorCode: 500000, message: 'Internal error' }));
      },
    );
  }

  #send(client: Client, topic: string, body: Buffer | string): void {
    client.publish({ cmd: 'publish', topic, payload: body, qos: 0, retain: false, dup: false, brokerId: OWN_BROKER_ID, brokerCounter: ++this.#counter } as PublishPacket, (err) => {
      if (err) this.#d.log.debug({ clientId: client.id, err: err.message }, 'Failed to send to client');
    });
  }

  #featureOf(id: Identity, feature: Feature): Client | undefined {
    const conn = this.#connections.get(identityKey(id.deviceId, id.moduleId));
    return conn && this.#sessions.get(conn.client.id)?.features.has(feature) ? conn.client : undefined;
  }

  /** True when `id` is connected and subscribed to `feature`. */
  hasFeature(id: Identity, feature: Feature): boolean {
    return this.#featureOf(id, feature) !== undefined;
  }

  /**
   * Publishes a module input message with QoS 1; resolves on the module's PUBACK.
   * @throws NotConnectedError when the module is not connected and subscribed, or disconnects before acknowledging.
   */
  async deliver(id: Identity, topic: string, body: Uint8Array, signal?: AbortSignal): Promise<void> {
    const r = await this.deliverBatch(id, [{ topic, body }], signal);
    if (r.acknowledged < 1) throw r.error;
  }

  /**
   * Publishes module input messages with QoS 1, in order, on the module's connection: all of them in one write (one
   * TLS record per 16 KiB rather than one per message), each matched to its PUBACK by packet identifier. Resolves
   * once every message is acknowledged, or at the first that cannot be (the connection ends, `signal` aborts) with
   * how many were acknowledged before it: a client acknowledges in the order it received [MQTT-4.6.0-2], so those
   * are a prefix. `error` is a {@link NotConnectedError} when the module is not connected and subscribed or
   * disconnects, else the abort reason.
   */
  deliverBatch(id: Identity, messages: readonly { readonly topic: string; readonly body: Uint8Array }[], signal?: AbortSignal): Promise<DeliveryOutcome> {
    const client = this.#featureOf(id, F.Inputs);
    const key = identityKey(id.deviceId, id.moduleId);
    if (!client || client.closed || client.conn.destroyed) return Promise.resolve({ acknowledged: 0, error: new NotConnectedError(key) });
    if (messages.length === 0) return Promise.resolve({ acknowledged: 0 });
    const out = this.#outgoing(client);
    return new Promise<DeliveryOutcome>((resolve) => {
      const batch: OutgoingBatch = { ids: new Array<number>(messages.length), acked: new Uint8Array(messages.length), prefix: 0, settled: false, resolve: () => undefined, fail: () => undefined };
      const onAbort = (): void => batch.fail(signal?.reason instanceof Error ? signal.reason : new Error('aborted'));
      const finish = (error?: unknown): void => {
        if (batch.settled) return;
        batch.settled = true;
        signal?.removeEventListener('abort', onAbort);
        for (const n of batch.ids) if (out.inflight.get(n)?.batch === batch) out.inflight.delete(n);
        resolve(error === undefined ? { acknowledged: batch.prefix } : { acknowledged: batch.prefix, error });
      };
      batch.resolve = () => finish();
      batch.fail = (e: unknown) => finish(e);
      let bytes = 0;
      const encoded: Buffer[] = [];
      for (let i = 0; i < messages.length; i++) {
        const m = messages[i] as { topic: string; body: Uint8Array };
        const n = nextPacketId(out);
        batch.ids[i] = n;
        out.inflight.set(n, { batch, index: i });
        const pkt = encodePublishQos1(m.topic, n, m.body);
        encoded.push(pkt);
        bytes += pkt.length;
      }
      if (signal?.aborted) {
        onAbort();
        return;
      }
      signal?.addEventListener('abort', onAbort, { once: true });
      client.conn.write(encoded.length === 1 ? (encoded[0] as Buffer) : Buffer.concat(encoded, bytes));
    });
  }

  #outgoing(client: Client): OutgoingDeliveries {
    let out = this.#out.get(client);
    if (out === undefined) this.#out.set(client, (out = { next: 1, inflight: new Map() }));
    return out;
  }

  #onAck(packet: unknown, client: Client): void {
    // Every QoS 1 PUBLISH to a client is a module input delivery ({@link deliverBatch}): matched by packet identifier.
    const messageId = (packet as { messageId?: number } | undefined)?.messageId;
    const out = this.#out.get(client);
    const d = messageId === undefined ? undefined : out?.inflight.get(messageId);
    if (d === undefined || out === undefined || messageId === undefined) return;
    out.inflight.delete(messageId);
    const b = d.batch;
    b.acked[d.index] = 1;
    while (b.prefix < b.acked.length && b.acked[b.prefix] === 1) b.prefix++;
    if (b.prefix === b.acked.length) b.resolve();
  }

  /** Sends a desired-properties patch (the hub's body, `$version` inside) if `id` subscribed to them. */
  sendDesired(id: Identity, version: number, body: string): boolean {
    const client = this.#featureOf(id, F.Desired);
    if (!client) return false;
    this.#send(client, `$iothub/twin/PATCH/properties/desired/?$version=${version}`, body);
    return true;
  }

  /** Sends a direct method request if `id` subscribed to methods. */
  sendMethodRequest(id: Identity, methodName: string, rid: string, payload: Buffer): boolean {
    const client = this.#featureOf(id, F.Methods);
    if (!client) return false;
    this.#send(client, `$iothub/methods/POST/${methodName}/?$rid=${encodeURIComponent(rid)}`, payload);
    return true;
  }

  /** The identities connected now, with the time they connected. */
  connected(): Identity[] {
    return [...this.#connections.values()].map((c) => c.id);
  }

  /** Stops accepting connections and closes every session. */
  async close(): Promise<void> {
    const closing = [this.#tls, this.#https].map((s) => (s ? new Promise<void>((resolve) => s.close(() => resolve())) : Promise.resolve()));
    for (const c of this.#connections.values()) if (c.expiry) clearTimeout(c.expiry);
    const broker = this.#broker;
    if (broker) await new Promise<void>((resolve) => broker.close(() => resolve()));
    for (const ws of this.#wss.clients) ws.terminate();
    this.#wss.close();
    this.#https?.closeAllConnections();
    await Promise.all(closing);
    this.#connections.clear();
  }
}

/** Resolves true once aedes reported `client` ready (after the broker's `clientReady` listeners), false if it closed first. */
function whenReady(client: Client): Promise<boolean> {
  if (client.connected || client.closed) return Promise.resolve(client.connected && !client.closed);
  return new Promise((resolve) => {
    const ready = (): void => {
      client.conn.removeListener('close', gone);
      resolve(!client.closed);
    };
    const gone = (): void => {
      client.removeListener('connected', ready);
      resolve(false);
    };
    client.once('connected', ready);
    client.conn.once('close', gone);
  });
}

function listenOn(server: TlsServer | HttpsServer, at: { host: string; port: number }): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(at.port, at.host, () => {
      server.off('error', reject);
      const addr = server.address();
      resolve(typeof addr === 'object' && addr ? addr.port : at.port);
    });
  });
}

/**
 * aedes session persistence for the edge hub: aedes' in-memory persistence (subscriptions of persistent sessions),
 * with its outgoing queue replaced. The router's durable store is the queue: aedes keeps nothing for offline
 * clients and does not resend in-flight packets on reconnect (the router retries what was not acknowledged). The
 * broker writes every QoS 1 PUBLISH to a client itself ({@link EdgeBroker.deliverBatch}) and matches PUBACKs by
 * packet identifier, so aedes tracks no outgoing packet: an acknowledgement is handed back as its identifier.
 */
export function sessionPersistence(): AedesMemoryPersistence {
  const base = memoryPersistence();
  type Pkt = { messageId?: number };
  const overrides = {
    outgoingEnqueue: (): Promise<void> => Promise.resolve(),
    outgoingEnqueueCombi: (): Promise<void> => Promise.resolve(),
    outgoingUpdate: (): Promise<void> => Promise.resolve(),
    outgoingClearMessageId: (_client: { id: string }, packet: Pkt): Promise<unknown> => Promise.resolve({ messageId: packet.messageId }),
    // Called when a session (re)connects: nothing of the old connection is resent here; the router retries what
    // was in flight, as those deliveries failed.
    outgoingStream: (): Readable => Readable.from([]),
    // Nothing is retained: clients' PUBLISHes never reach aedes' publish (EdgeBroker.start), and a retained message
    // from anywhere else would only hold memory, as no client may receive it.
    storeRetained: (): Promise<void> => Promise.resolve(),
  };
  return Object.assign(base, overrides);
}
