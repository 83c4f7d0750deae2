import { randomUUID } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { createServer as createTlsServer } from 'node:tls';
import type { Server as TlsServer } from 'node:tls';
import rhea from 'rhea';
import type { AmqpError, Connection, Delivery, EventContext, Receiver, Sender } from 'rhea';
import { createWebSocketStream, WebSocketServer } from 'ws';
import { DEVICE_API_VERSION, parseSasToken } from '@kedge/protocol';
import type { Identity } from '@kedge/protocol';
import { Right } from '../auth/policies.js';
import type { ServiceAuth } from '../auth/service-auth.js';
import type { CloudToDevice } from '../c2d/c2d.js';
import { FEEDBACK_CONTENT_TYPE, feedbackBatchJson } from '../c2d/c2d.js';
import type { Bus, BusEvent } from '../cluster/bus.js';
import { isHubError } from '../errors.js';
import type { Logger } from '../log.js';
import type { HubMetrics } from '../metrics.js';
import type { Methods, MethodTransport } from '../methods/methods.js';
import type { Admission, DeviceLimits, Ticket } from '../mqtt/admission.js';
import type { ConnectGrant } from '../mqtt/credentials.js';
import { checkConnect, dependsOn, sameGeneration } from '../mqtt/credentials.js';
import type { Store } from '../storage/store.js';
import type { Telemetry } from '../telemetry/telemetry.js';
import type { TlsMaterial } from '../tls/certs.js';
import type { Twins } from '../twins/twins.js';
import { AmqpFrameGuard, AmqpFrameRefusedError } from './frame-guard.js';
import type { AmqpNodeHook } from './hook.js';
import { IdentityLinks } from './identity-links.js';
import { addressPath, c2dFromAmqp, telemetryFromAmqp } from './messages.js';
import type { IdentityNode } from './nodes.js';
import { decodeIdentity, identityName, identityNode } from './nodes.js';
import { creditOnSettlement } from './flow.js';
import { boundTransfers } from './transfer-limit.js';

/** The CBS node [AMQP CBS 1.0] and IoT Hub's service nodes. */
export const CBS_NODE = '$cbs';
export const C2D_SEND_NODE = '/messages/devicebound';
export const FEEDBACK_NODE = '/messages/serviceBound/feedback';
/** Token types IoT Hub accepts in put-token. */
const TOKEN_TYPES: readonly string[] = ['servicebus.windows.net:sastoken', 'azure-devices.net:sastoken'];
/** The WebSocket subprotocol of AMQP over WebSockets. */
export const AMQP_WS_PROTOCOL = 'AMQPWSB10';
/** IoT Hub's AMQP idle timeout: a silent connection is closed after it. */
const IDLE_TIMEOUT_MS = 240_000;
/** Links one connection may hold (CBS pair, sender, feedback, device links with room to spare). */
const MAX_LINKS = 32;
/** Feedback records per batch message. */
const FEEDBACK_BATCH = 64;
const MAX_TIMER_MS = 2 ** 31 - 1;
/** Unsettled messages a device or module may have on one of its sending links (credit given back on settlement). */
const IDENTITY_CREDIT = 64;
/** CBS replies held for a reply link without credit before the connection is dropped. */
const MAX_PENDING_CBS_REPLIES = 16;

/** Who a CBS token made the connection act for, on one audience. */
type Principal = { readonly kind: 'service'; readonly policy: string } | { readonly kind: 'identity'; readonly grant: ConnectGrant; readonly token: string };

/** An accepted put-token: the audience it covers, until when, and the links resting on it. */
interface TokenGrant {
  readonly audience: string;
  readonly principal: Principal;
  readonly expiresAtSeconds: number;
  timer: NodeJS.Timeout | undefined;
  readonly links: Set<Sender | Receiver>;
}

/** Per-connection state. */
interface ConnState {
  readonly connection: Connection;
  readonly guard: AmqpFrameGuard;
  readonly ticket: Ticket;
  readonly grants: Map<string, TokenGrant>;
  cbsReply: Sender | undefined;
  /** CBS replies waiting for credit on the reply link (bounded: one per put-token in flight). */
  readonly cbsPending: rhea.Message[];
  links: number;
  /** Serialises the messages of each receiving link (queue order is send order). */
  readonly chains: WeakMap<Receiver, Promise<void>>;
}

/** A device's cloud-to-device link: one message in flight at a time, as on MQTT. */
interface DeviceLink {
  readonly sender: Sender;
  inFlight: { readonly lockToken: string; readonly timer: NodeJS.Timeout } | undefined;
  locking: boolean;
  /** The queue changed while a lock query ran (which may have read it before): look again after it. */
  again: boolean;
}

/** Dependencies of the AMQP endpoint. */
export interface AmqpDeps {
  readonly store: Store;
  readonly auth: ServiceAuth;
  readonly c2d: CloudToDevice;
  /** Twin requests of devices and modules (`/devices/{id}[/modules/{mid}]/twin`) are served by the hub's twins. */
  readonly twins: Twins;
  /** Direct methods reach AMQP identities through the hub's methods service (`bindTransport`). */
  readonly methods: Methods;
  /** This replica (presence of AMQP identities, for direct methods). */
  readonly replicaId: string;
  /** Device telemetry over AMQP (`/devices/{id}/messages/events`) is stored here, as MQTT telemetry is. */
  readonly telemetry: Telemetry;
  /** Largest telemetry body. */
  readonly maxMessageBytes: number;
  readonly bus: Bus;
  readonly log: Logger;
  readonly metrics: HubMetrics;
  readonly tls: TlsMaterial;
  readonly hostNames: readonly string[];
  readonly limits: DeviceLimits;
  /** Shared with the MQTT endpoint: one cap on unauthenticated connections for the whole replica. */
  readonly admission: Admission;
  /** `max-frame-size` announced in `open` and enforced once a token is accepted. */
  readonly maxFrameBytes: number;
  readonly nowSeconds?: () => number;
  /** A service on the same listener (the Event Hubs-compatible endpoint): its audiences, addresses and links. */
  readonly hook?: AmqpNodeHook;
}

/**
 * Answers an attach with the peer's own source and target addresses (uamqp refuses an attach reply missing
 * either) and returns them.
 */
function mirrorTermini(link: Sender | Receiver): { source: unknown; target: unknown } {
  const remote = (link as unknown as { remote: { attach?: { source?: { address?: unknown }; target?: { address?: unknown } } } }).remote.attach;
  const source = remote?.source?.address;
  const target = remote?.target?.address;
  link.set_source({ address: typeof source === 'string' ? source : '' });
  link.set_target({ address: typeof target === 'string' ? target : '' });
  return { source, target };
}

const unauthorized = (description: string): AmqpError => ({ condition: 'amqp:unauthorized-access', description });

/** The AMQP condition IoT Hub uses for a refused cloud-to-device message. */
function conditionOf(e: unknown): AmqpError {
  if (!isHubError(e)) return { condition: 'amqp:internal-error', description: 'Internal error' };
  switch (e.code) {
    case 'CLOUD_ERR_QUEUE_FULL':
      return { condition: 'amqp:resource-limit-exceeded', description: e.message };
    case 'CLOUD_ERR_DEVICE_NOT_FOUND':
      return { condition: 'amqp:not-found', description: e.message };
    case 'CLOUD_ERR_PAYLOAD_TOO_LARGE':
      return { condition: 'amqp:link:message-size-exceeded', description: e.message };
    case 'CLOUD_ERR_SHUTTING_DOWN':
      return { condition: 'amqp:internal-error', description: e.message };
    default:
      return { condition: 'amqp:invalid-field', description: e.message };
  }
}

/**
 * The hub's AMQP 1.0 endpoint (rhea): TLS on its own port and WebSockets (`/$iothub/websocket`, subprotocol
 * `AMQPWSB10`) on the service port. Speaks IoT Hub's service side: claims-based security on `$cbs` (put-token for
 * a service policy or a device/module identity), the cloud-to-device sender node `/messages/devicebound` and the
 * feedback node `/messages/serviceBound/feedback`, both for policies with ServiceConnect only.
 *
 * Before a token is accepted a connection is held to the MQTT endpoint's pre-authentication limits (the shared
 * {@link Admission}: caps and the accept→authorized-link deadline; frames of at most `maxConnectBytes`). A link
 * rests on the token of its audience: it is detached when that token reaches `se`, and tokens of identities are
 * re-checked when the identity changes (deleted, disabled, re-keyed).
 */
export class AmqpEndpoint implements MethodTransport {
  readonly #d: AmqpDeps;
  readonly #identity: IdentityLinks;
  readonly #container = rhea.create_container({ id: 'kedge-hub' });
  readonly #conns = new Map<Connection, ConnState>();
  readonly #wss: WebSocketServer;
  readonly #feedbackLinks = new Set<Sender>();
  /** Devices' cloud-to-device receive links (`/devices/{id}/messages/devicebound`) on this replica, by device id. */
  readonly #deviceLinks = new Map<string, DeviceLink>();
  /** Deliveries of cloud-to-device messages awaiting the device's disposition. */
  readonly #c2dDeliveries = new WeakMap<Delivery, { readonly deviceId: string; readonly lockToken: string }>();
  readonly #feedbackPending = new WeakMap<Delivery, readonly number[]>();
  /** Credit of the links devices and modules send on: given back as the hub settles their messages. */
  readonly #credit = new WeakMap<Receiver, ReturnType<typeof creditOnSettlement>>();
  #feedbackBusy = false;
  #feedbackAgain = false;
  #feedbackTimer: NodeJS.Timeout | undefined;
  #recheckTimer: NodeJS.Timeout | undefined;
  #server: TlsServer | undefined;
  #unsubscribe: (() => void) | undefined;
  #closing = false;

  constructor(deps: AmqpDeps) {
    this.#d = deps;
    this.#identity = new IdentityLinks({ twins: deps.twins, methods: deps.methods, store: deps.store, bus: deps.bus, log: deps.log, metrics: deps.metrics, replicaId: deps.replicaId });
    // rhea writes every pending frame in one WebSocket message: room for a few full frames.
    this.#wss = new WebSocketServer({
      noServer: true,
      maxPayload: 4 * deps.maxFrameBytes,
      handleProtocols: (protocols) => (protocols.has(AMQP_WS_PROTOCOL) ? AMQP_WS_PROTOCOL : false),
    });
    const c = this.#container;
    // SASL as IoT Hub offers it: ANONYMOUS (rhea's clients, the Node SDKs send no SASL at all, which is accepted
    // too) and MSSBCBS (uamqp's CBS clients: authentication follows on $cbs). Both authenticate nothing by
    // themselves; every link still needs a CBS token.
    const mechanisms = c.sasl_server_mechanisms as { enable_anonymous(): void } & Record<string, unknown>;
    mechanisms.enable_anonymous();
    mechanisms['MSSBCBS'] = () => new DeferredToCbs();
    c.on('receiver_open', (ctx: EventContext) => this.#onReceiverOpen(ctx));
    c.on('sender_open', (ctx: EventContext) => this.#onSenderOpen(ctx));
    c.on('message', (ctx: EventContext) => this.#onMessage(ctx));
    c.on('accepted', (ctx: EventContext) => {
      this.#onFeedbackSettled(ctx, true);
      if (ctx.delivery) this.#onDeviceSettled(ctx.delivery, 'complete');
    });
    c.on('rejected', (ctx: EventContext) => {
      this.#onFeedbackSettled(ctx, false);
      if (ctx.delivery) this.#onDeviceSettled(ctx.delivery, 'reject');
    });
    for (const ev of ['released', 'modified']) {
      c.on(ev, (ctx: EventContext) => {
        this.#onFeedbackSettled(ctx, false);
        if (ctx.delivery) this.#onDeviceSettled(ctx.delivery, 'abandon');
      });
    }
    c.on('sendable', (ctx: EventContext) => {
      if (ctx.sender && this.#feedbackLinks.has(ctx.sender)) this.#pumpFeedback();
      if (ctx.sender) this.#identity.onSendable(ctx.sender);
      for (const [deviceId, dl] of this.#deviceLinks) if (dl.sender === ctx.sender) this.#pumpDevice(deviceId);
      const state = this.#conns.get(ctx.connection);
      if (state && ctx.sender === state.cbsReply) this.#flushCbs(state);
      if (ctx.sender) this.#d.hook?.sendable(ctx.sender);
    });
    for (const ev of ['sender_close', 'receiver_close']) c.on(ev, (ctx: EventContext) => this.#onLinkClosed(ctx));
    c.on('connection_open', () => undefined);
    c.on('disconnected', (ctx: EventContext) => this.#onDisconnected(ctx.connection));
    // rhea raises these on the container when nobody else listens; they are the peer's problem, not ours.
    for (const ev of ['error', 'connection_error', 'session_error', 'sender_error', 'receiver_error', 'protocol_error']) {
      c.on(ev, (ctx: EventContext) => this.#d.log.debug({ err: ctx.error instanceof Error ? ctx.error.message : ctx.error, event: ev }, 'AMQP peer error'));
    }
  }

  /** Open AMQP connections on this replica. */
  get connectionCount(): number {
    return this.#conns.size;
  }

  /** Listens for AMQP over TLS. */
  async start(listen: { host: string; port: number }): Promise<{ port: number }> {
    this.#unsubscribe = this.#d.bus.subscribe((e) => this.#onBus(e));
    const server = createTlsServer(
      { key: this.#d.tls.key, cert: this.#d.tls.cert, minVersion: 'TLSv1.2', handshakeTimeout: this.#d.limits.connectTimeoutMs },
      (socket) => {
        const ticket = this.#d.admission.claim(socket);
        if (!ticket) {
          socket.destroy();
          return;
        }
        socket.setNoDelay(true);
        this.#accept(socket, ticket);
      },
    );
    server.on('connection', (raw: Socket) => this.#d.admission.admitRaw(raw));
    server.on('tlsClientError', (e) => this.#d.log.debug({ err: e.message }, 'AMQP TLS handshake failed'));
    this.#server = server;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(listen.port, listen.host, () => {
        server.off('error', reject);
        resolve();
      });
    });
    this.#feedbackTimer = setInterval(() => this.#pumpFeedback(), this.#d.c2d.config.sweepIntervalSeconds * 1000);
    this.#feedbackTimer.unref();
    // The backstop for a lost identity announcement, as for MQTT sessions: every identity token is re-checked.
    this.#recheckTimer = setInterval(() => {
      this.#recheck(() => true).catch((err: unknown) => this.#d.log.warn({ err }, 'Failed to re-check AMQP tokens'));
    }, this.#d.limits.recheckSeconds * 1000);
    this.#recheckTimer.unref();
    const addr = server.address();
    return { port: typeof addr === 'object' && addr ? addr.port : listen.port };
  }

  /** True when an upgrade request asks for AMQP over WebSockets. */
  static wantsAmqp(req: IncomingMessage): boolean {
    const p = req.headers['sec-websocket-protocol'];
    return typeof p === 'string' && p.split(',').some((s) => s.trim() === AMQP_WS_PROTOCOL);
  }

  /** Handles an HTTP upgrade on `/$iothub/websocket` with subprotocol `AMQPWSB10`. */
  handleUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    if (this.#closing) {
      socket.destroy();
      return;
    }
    const ticket = this.#d.admission.admit(socket as Socket);
    if (!ticket) return;
    this.#wss.handleUpgrade(req, socket, head, (ws) => {
      const stream = createWebSocketStream(ws);
      ticket.attach(stream);
      this.#accept(stream, ticket);
    });
  }

  #now(): number {
    return this.#d.nowSeconds?.() ?? Math.floor(Date.now() / 1000);
  }

  #accept(stream: Duplex, ticket: Ticket): void {
    const guard = new AmqpFrameGuard(stream, { maxFrameBytesBeforeAuth: this.#d.limits.maxConnectBytes, maxFrameBytes: this.#d.maxFrameBytes });
    ticket.attach(guard);
    guard.on('error', (e: Error) => this.#d.log.debug({ err: e.message }, 'AMQP connection refused'));
    const options = {
      container_id: 'kedge-hub',
      max_frame_size: this.#d.maxFrameBytes,
      idle_time_out: IDLE_TIMEOUT_MS,
      channel_max: 7,
      // Settlement is the hub's decision (a message is accepted only once it is stored).
      autoaccept: false,
      credit_window: 16,
      // Announced in every attach of a link the peer sends on [AMQP 1.0 2.7.3]; enforced by boundTransfers.
      receiver_options: { max_message_size: this.#d.maxFrameBytes },
    };
    const conn = this.#container.create_connection(options);
    const state: ConnState = { connection: conn, guard, ticket, grants: new Map(), cbsReply: undefined, cbsPending: [], links: 0, chains: new WeakMap() };
    // A message is bounded as its frames are: by the frame guard's limit in force (8 KiB before a token is accepted).
    boundTransfers(
      conn,
      () => guard.frameLimit,
      (link, bytes) => this.#refuseOversize(state, link, bytes),
      () => guard.destroy(new AmqpFrameRefusedError('a transfer frame over the message limit')),
    );
    this.#conns.set(conn, state);
    this.#d.metrics.amqpConnections.set(this.#conns.size);
    guard.once('close', () => this.#onDisconnected(conn));
    // `accept` is rhea's server-side entry for a socket it did not create (container.listen uses it).
    (conn as unknown as { accept(socket: Duplex): void }).accept(guard);
  }

  /** Detaches a link whose message outgrew the limit; nothing of the message reached the hub. */
  #refuseOversize(state: ConnState, link: Receiver, bytes: number): void {
    this.#d.log.info({ bytes, limit: state.guard.frameLimit }, 'Refused an oversize AMQP message');
    this.#forgetLink(state, link);
    link.close({ condition: 'amqp:link:message-size-exceeded', description: `A message is at most ${state.guard.frameLimit} bytes` });
  }

  #onDisconnected(conn: Connection): void {
    const state = this.#conns.get(conn);
    if (!state) return;
    this.#conns.delete(conn);
    this.#d.metrics.amqpConnections.set(this.#conns.size);
    state.ticket.release();
    for (const g of state.grants.values()) {
      if (g.timer) clearTimeout(g.timer);
      for (const l of [...g.links]) this.#forgetLink(state, l);
    }
    state.grants.clear();
    state.guard.destroy();
    this.#d.hook?.disconnected(conn);
  }

  #linkAdmitted(state: ConnState, link: Sender | Receiver): boolean {
    state.links++;
    if (state.links <= MAX_LINKS) return true;
    link.close({ condition: 'amqp:resource-limit-exceeded', description: `At most ${MAX_LINKS} links per connection` });
    return false;
  }

  /** The grant authorizing the service nodes on this connection, if any (a policy with ServiceConnect). */
  #serviceGrant(state: ConnState): TokenGrant | undefined {
    for (const g of state.grants.values()) if (g.principal.kind === 'service' && g.expiresAtSeconds > this.#now()) return g;
    return undefined;
  }

  #onReceiverOpen(ctx: EventContext): void {
    const link = ctx.receiver;
    const state = this.#conns.get(ctx.connection);
    if (!link || !state || !this.#linkAdmitted(state, link)) return;
    const path = addressPath(mirrorTermini(link).target);
    if (path === CBS_NODE) return;
    if (path === C2D_SEND_NODE) {
      const g = this.#serviceGrant(state);
      if (!g) {
        link.close(unauthorized('Sending cloud-to-device messages needs a service policy token with ServiceConnect (put-token on $cbs first)'));
        return;
      }
      this.#authorized(state, g, link);
      return;
    }
    const node = identityNode(path);
    if (node) {
      this.#identityReceiver(state, link, node);
      return;
    }
    if (this.#d.hook?.attach(ctx.connection, link, path, () => state.ticket.release())) return;
    link.close({ condition: 'amqp:not-found', description: `No node ${path.slice(0, 200)}` });
  }

  /** A device or module attached a link to send on one of its nodes: telemetry, twin requests, method responses. */
  #identityReceiver(state: ConnState, link: Receiver, node: IdentityNode): void {
    if (node.kind === 'devicebound') {
      link.close({ condition: 'amqp:not-found', description: 'Cloud-to-device messages are received, not sent, on this node' });
      return;
    }
    if (this.#openIdentityLink(state, link, node, false)) this.#credit.set(link, creditOnSettlement(link, IDENTITY_CREDIT));
  }

  /**
   * Authorizes a link on an identity node: only the CBS grant of exactly that identity opens it (a device token
   * opens none of its modules' nodes, a module token nothing but its own module's).
   */
  #openIdentityLink(state: ConnState, link: Sender | Receiver, node: IdentityNode, hubSends: boolean): TokenGrant | undefined {
    const g = this.#identityGrant(state, node.identity);
    if (!g) {
      link.close(unauthorized(`This node needs the token of ${identityName(node.identity).slice(0, 300)} (put-token on $cbs first)`));
      return undefined;
    }
    const refused = this.#identity.attached(state.connection, link, node, hubSends);
    if (refused !== undefined) {
      link.close({ condition: 'amqp:resource-limit-exceeded', description: refused });
      return undefined;
    }
    this.#authorized(state, g, link);
    return g;
  }

  async #telemetry(state: ConnState, link: Receiver, id: Identity, message: rhea.Message, delivery: Delivery): Promise<void> {
    const g = this.#identityGrant(state, id);
    if (!g?.links.has(link)) {
      delivery.reject(unauthorized('The token of this link expired'));
      return;
    }
    try {
      const t = telemetryFromAmqp(message, id.deviceId, this.#d.maxMessageBytes, id.moduleId);
      await this.#d.telemetry.ingest(t);
      delivery.accept();
    } catch (e) {
      if (!isHubError(e)) this.#d.log.error({ err: e }, 'Failed to store AMQP telemetry');
      delivery.reject(conditionOf(e));
    }
  }

  #onSenderOpen(ctx: EventContext): void {
    const link = ctx.sender;
    const state = this.#conns.get(ctx.connection);
    if (!link || !state || !this.#linkAdmitted(state, link)) return;
    const path = addressPath(mirrorTermini(link).source);
    if (path === CBS_NODE) {
      state.cbsReply = link;
      this.#flushCbs(state);
      return;
    }
    if (path.toLowerCase() === FEEDBACK_NODE.toLowerCase()) {
      const g = this.#serviceGrant(state);
      if (!g) {
        link.close(unauthorized('The feedback receiver needs a service policy token with ServiceConnect (put-token on $cbs first)'));
        return;
      }
      this.#authorized(state, g, link);
      this.#feedbackLinks.add(link);
      this.#pumpFeedback();
      return;
    }
    const node = identityNode(path);
    if (node) {
      this.#identitySender(state, link, node);
      return;
    }
    if (this.#d.hook?.attach(ctx.connection, link, path, () => state.ticket.release())) return;
    link.close({ condition: 'amqp:not-found', description: `No node ${path.slice(0, 200)}` });
  }

  /**
   * A device or module attached a link to receive from one of its nodes: cloud-to-device messages (devices), twin
   * replies and desired patches, method requests, module input messages (`…/modules/{m}/messages/events`, which the
   * cloud hub never sends: IoT Hub routes nothing to module inputs, an edge hub does).
   */
  #identitySender(state: ConnState, link: Sender, node: IdentityNode): void {
    if (node.kind === 'events' && node.identity.moduleId === '') {
      link.close({ condition: 'amqp:not-found', description: 'Telemetry is sent, not received, on this node' });
      return;
    }
    if (!this.#openIdentityLink(state, link, node, true) || node.kind !== 'devicebound') return;
    const deviceId = node.identity.deviceId;
    this.#closeDeviceLink(deviceId);
    this.#deviceLinks.set(deviceId, { sender: link, inFlight: undefined, locking: false, again: false });
    this.#pumpDevice(deviceId);
  }

  /** The live grant of exactly identity `want` (a device's does not cover its modules, nor a module's its device). */
  #identityGrant(state: ConnState, want: Identity): TokenGrant | undefined {
    for (const g of state.grants.values()) {
      if (g.principal.kind !== 'identity' || g.expiresAtSeconds <= this.#now()) continue;
      const id = g.principal.grant.identity;
      if (want.deviceId !== '' && id.deviceId === want.deviceId && id.moduleId === want.moduleId && g.principal.grant.via === undefined) return g;
    }
    return undefined;
  }

  /** {@link MethodTransport}: a method request to an identity whose method link is on this replica. */
  sendMethodRequest(deviceId: string, moduleId: string, methodName: string, rid: string, payload: Buffer): boolean {
    return this.#identity.sendMethodRequest(deviceId, moduleId, methodName, rid, payload);
  }

  /** Delivers the next cloud-to-device message on the device's link, if it has credit and holds none. */
  #pumpDevice(deviceId: string): void {
    const dl = this.#deviceLinks.get(deviceId);
    if (!dl || dl.inFlight || !dl.sender.sendable() || this.#closing) return;
    if (dl.locking) {
      dl.again = true;
      return;
    }
    dl.locking = true;
    dl.again = false;
    const c2d = this.#d.c2d;
    c2d.lock(deviceId).then(
      (m) => {
        dl.locking = false;
        if (!m) {
          if (dl.again) this.#pumpDevice(deviceId);
          return;
        }
        if (this.#deviceLinks.get(deviceId) !== dl || !dl.sender.is_open()) {
          void c2d.settle(deviceId, m.lockToken, 'abandon').catch(() => undefined);
          return;
        }
        const timer = setTimeout(() => {
          if (dl.inFlight?.lockToken !== m.lockToken) return;
          dl.inFlight = undefined;
          this.#pumpDevice(deviceId);
        }, c2d.config.lockTimeoutSeconds * 1000);
        timer.unref();
        dl.inFlight = { lockToken: m.lockToken, timer };
        this.#d.metrics.c2dMessages.inc({ event: 'delivered' });
        const sys = m.systemProperties;
        const delivery = dl.sender.send({
          ...(sys['messageId'] === undefined ? {} : { message_id: sys['messageId'] }),
          ...(sys['correlationId'] === undefined ? {} : { correlation_id: sys['correlationId'] }),
          ...(sys['contentType'] === undefined ? {} : { content_type: sys['contentType'] }),
          ...(sys['contentEncoding'] === undefined ? {} : { content_encoding: sys['contentEncoding'] }),
          ...(sys['userId'] === undefined ? {} : { user_id: sys['userId'] }),
          to: `/devices/${deviceId}/messages/devicebound`,
          absolute_expiry_time: m.expiresAt,
          delivery_count: m.deliveryCount - 1,
          application_properties: { ...m.properties, 'iothub-ack': m.ack },
          body: rhea.message.data_section(m.body) as unknown,
        });
        this.#c2dDeliveries.set(delivery, { deviceId, lockToken: m.lockToken });
      },
      (err: unknown) => {
        dl.locking = false;
        this.#d.log.warn({ err, deviceId }, 'Failed to lock a cloud-to-device message');
      },
    );
  }

  /** The device settled a delivery: accepted = complete, rejected = reject, released/modified = abandon. */
  #onDeviceSettled(delivery: Delivery, settlement: 'complete' | 'reject' | 'abandon'): void {
    const d = this.#c2dDeliveries.get(delivery);
    if (!d) return;
    this.#c2dDeliveries.delete(delivery);
    const dl = this.#deviceLinks.get(d.deviceId);
    if (dl?.inFlight?.lockToken === d.lockToken) {
      clearTimeout(dl.inFlight.timer);
      dl.inFlight = undefined;
    }
    this.#d.c2d.settle(d.deviceId, d.lockToken, settlement).then(
      () => this.#pumpDevice(d.deviceId),
      (err: unknown) => this.#d.log.warn({ err, deviceId: d.deviceId }, 'Failed to settle a cloud-to-device message'),
    );
  }

  /** Forgets a device's link; its message in flight goes back to the queue (its delivery count stays). */
  #closeDeviceLink(deviceId: string, only?: Sender): void {
    const dl = this.#deviceLinks.get(deviceId);
    if (!dl || (only && dl.sender !== only)) return;
    this.#deviceLinks.delete(deviceId);
    if (dl.inFlight) {
      clearTimeout(dl.inFlight.timer);
      void this.#d.c2d.settle(deviceId, dl.inFlight.lockToken, 'abandon').catch(() => undefined);
    }
  }

  /** A link opened on `grant`: the connection is now authorized (its pre-authentication deadline ends). */
  #authorized(state: ConnState, grant: TokenGrant, link: Sender | Receiver): void {
    grant.links.add(link);
    state.ticket.release();
  }

  #onLinkClosed(ctx: EventContext): void {
    const state = this.#conns.get(ctx.connection);
    const link = ctx.sender ?? ctx.receiver;
    if (!state || !link) return;
    this.#d.hook?.detached(link);
    this.#forgetLink(state, link);
  }

  /**
   * Forgets everything resting on `link`, which is closing or closed: its place in the grants, the feedback and
   * cloud-to-device pumps (a message in flight on it goes back to the queue) and the identity links.
   */
  #forgetLink(state: ConnState, link: Sender | Receiver): void {
    for (const g of state.grants.values()) g.links.delete(link);
    this.#identity.forget(link);
    if (this.#feedbackLinks.delete(link as Sender)) this.#feedbackBusy = false;
    for (const [deviceId, dl] of [...this.#deviceLinks]) if (dl.sender === link) this.#closeDeviceLink(deviceId, dl.sender);
  }

  #onMessage(ctx: EventContext): void {
    const link = ctx.receiver;
    const state = this.#conns.get(ctx.connection);
    const delivery = ctx.delivery;
    if (!link || !state || !delivery || !ctx.message) return;
    if (this.#d.hook?.message(ctx)) return;
    const message = ctx.message;
    const path = addressPath((link as unknown as { remote: { attach?: { target?: { address?: unknown } } } }).remote.attach?.target?.address);
    const node = identityNode(path);
    const credit = this.#credit.get(link);
    if (credit && !credit.received()) {
      // More messages than the credit given: rhea hands them over anyway; the link goes.
      this.#forgetLink(state, link);
      link.close({ condition: 'amqp:link:transfer-limit-exceeded', description: `At most ${IDENTITY_CREDIT} unsettled messages per link` });
      return;
    }
    if (node?.kind === 'events') {
      // Not chained: the telemetry queue takes each message in arrival order at once (its order is the stored
      // order) and commits them in groups; each is accepted once committed.
      this.#telemetry(state, link, node.identity, message, delivery)
        .finally(() => credit?.settled())
        .catch((err: unknown) => this.#d.log.warn({ err }, 'AMQP telemetry handling failed'));
      return;
    }
    const prev = state.chains.get(link) ?? Promise.resolve();
    const next = prev.then(async () => {
      if (path === CBS_NODE) await this.#putToken(state, message, delivery, ctx.connection);
      else if (path === C2D_SEND_NODE) await this.#c2dSend(state, link, message, delivery);
      else if (node) {
        try {
          IdentityLinks.settle(delivery, await this.#identity.onMessage(link, node, message));
        } finally {
          credit?.settled();
        }
      }
      else delivery.reject({ condition: 'amqp:not-allowed', description: 'No messages accepted on this link' });
    });
    state.chains.set(
      link,
      next.catch((err: unknown) => this.#d.log.warn({ err }, 'AMQP message handling failed')),
    );
  }

  async #c2dSend(state: ConnState, link: Receiver, message: rhea.Message, delivery: Delivery): Promise<void> {
    // The token may have expired since the link opened (the link is being detached).
    const g = this.#serviceGrant(state);
    if (!g?.links.has(link)) {
      delivery.reject(unauthorized('The token of this link expired'));
      return;
    }
    try {
      await this.#d.c2d.send(c2dFromAmqp(message));
      delivery.accept();
    } catch (e) {
      if (!isHubError(e)) this.#d.log.error({ err: e }, 'Failed to queue a cloud-to-device message');
      delivery.reject(conditionOf(e));
    }
  }

  /** CBS put-token [AMQP CBS 1.0 §4]: verifies the token for its audience and replies with a status code. */
  async #putToken(state: ConnState, m: rhea.Message, delivery: Delivery, conn: Connection): Promise<void> {
    if (state.cbsPending.length >= MAX_PENDING_CBS_REPLIES) {
      // put-tokens keep coming while the reply link gives no credit: not a client, a flood.
      delivery.reject({ condition: 'amqp:resource-limit-exceeded', description: 'Too many put-token requests without reply credit' });
      state.guard.destroy();
      return;
    }
    delivery.accept();
    const reply = (status: number, description: string): void => {
      // The client may send put-token before its reply link has given credit: replies wait for `sendable`.
      state.cbsPending.push({
        ...(typeof m.reply_to === 'string' ? { to: m.reply_to } : {}),
        ...(m.message_id === undefined ? {} : { correlation_id: m.message_id }),
        // uamqp reads the status as an AMQP int (rhea would pick the smallest type).
        application_properties: { 'status-code': rhea.types.wrap_int(status), 'status-description': description },
        body: undefined,
      });
      this.#flushCbs(state);
    };
    const props = (m.application_properties ?? {}) as Record<string, unknown>;
    const operation = props['operation'];
    const type = props['type'];
    const name = props['name'];
    const token = typeof m.body === 'string' ? m.body : Buffer.isBuffer(m.body) ? m.body.toString('utf8') : undefined;
    if (operation !== 'put-token') return reply(400, 'Only put-token is supported');
    if (typeof type !== 'string' || !TOKEN_TYPES.includes(type)) return reply(400, 'Unsupported token type');
    if (typeof name !== 'string' || name.length === 0 || name.length > 1024 || token === undefined || token.length > 4096) return reply(400, 'Malformed put-token');
    // The Node device SDK names the audience as its token's `sr`, URL-encoded (`host%2Fdevices%2Fd`).
    let decoded: string;
    try {
      decoded = name.includes('%') ? decodeURIComponent(name) : name;
    } catch {
      return reply(400, 'Malformed audience');
    }
    const hook = this.#d.hook;
    if (hook?.ownsAudience(decoded)) {
      const r = await hook.putToken(conn, decoded, token);
      if (r.status === 200) state.guard.authenticated();
      return reply(r.status, r.description);
    }
    const audience = decoded.replace(/^(amqps?|https?|wss?):\/\//i, '').replace(/\/+$/, '');
    const parsed = parseSasToken(token);
    if (!parsed.ok) return reply(401, 'Malformed SAS token');
    // As on MQTT: a token already past `se` cannot authorize anything (no skew in its favour).
    if (parsed.value.se <= this.#now()) return reply(401, 'Token expired');
    let principal: Principal;
    try {
      principal = await this.#verify(audience, token);
    } catch (e) {
      this.#d.log.info({ audience: audience.slice(0, 300), reason: e instanceof Error ? e.message : 'refused' }, 'Refused CBS token');
      return reply(isHubError(e, 'CLOUD_ERR_FORBIDDEN') ? 403 : 401, isHubError(e) ? e.message : 'Unauthorized');
    }
    const previous = state.grants.get(audience);
    if (previous?.timer) clearTimeout(previous.timer);
    const grant: TokenGrant = { audience, principal, expiresAtSeconds: parsed.value.se, timer: undefined, links: previous?.links ?? new Set() };
    state.grants.set(audience, grant);
    this.#armExpiry(state, grant);
    state.guard.authenticated();
    reply(200, 'OK');
  }

  #flushCbs(state: ConnState): void {
    const s = state.cbsReply;
    while (s?.sendable() && state.cbsPending.length > 0) {
      const next = state.cbsPending.shift();
      if (next) s.send(next);
    }
  }

  /** The principal `token` proves for `audience`: a service policy (`{host}`) or an identity (`{host}/devices/…`). */
  async #verify(audience: string, token: string): Promise<Principal> {
    const lower = audience.toLowerCase();
    const host = this.#d.hostNames.find((h) => lower === h.toLowerCase() || lower.startsWith(`${h.toLowerCase()}/`));
    if (host === undefined) throw new AudienceError('Unknown audience');
    const rest = audience.slice(host.length);
    if (rest === '') {
      const p = await this.#d.auth.authorize(token, Right.ServiceConnect);
      if (p.kind !== 'policy') throw new AudienceError('A shared access policy token is required');
      return { kind: 'service', policy: p.name };
    }
    const m = /^\/devices\/([^/]+)(?:\/modules\/([^/]+))?$/.exec(rest);
    if (!m) throw new AudienceError('Unknown audience');
    const identity = decodeIdentity(m[1] ?? '', m[2]);
    if (!identity) throw new AudienceError('Malformed audience');
    const { deviceId, moduleId } = identity;
    const clientId = moduleId ? `${deviceId}/${moduleId}` : deviceId;
    // The identity rules are the MQTT endpoint's: the same check, with the user name a CONNECT would carry.
    const r = await checkConnect(this.#d.store, this.#d.hostNames, { clientId, username: `${host}/${clientId}/?api-version=${DEVICE_API_VERSION}`, password: token }, this.#now());
    if (!r.ok) throw new AudienceError(r.refusal.reason);
    return { kind: 'identity', grant: r.grant, token };
  }

  /** Detaches the links resting on `grant` when its token reaches `se`. */
  #armExpiry(state: ConnState, grant: TokenGrant): void {
    const ms = grant.expiresAtSeconds * 1000 - Date.now();
    grant.timer = setTimeout(
      () => {
        if (grant.expiresAtSeconds * 1000 > Date.now()) this.#armExpiry(state, grant);
        else this.#revoke(state, grant, 'token expired');
      },
      Math.max(0, Math.min(ms, MAX_TIMER_MS)),
    );
    grant.timer.unref();
  }

  #revoke(state: ConnState, grant: TokenGrant, reason: string): void {
    if (state.grants.get(grant.audience) !== grant) return;
    state.grants.delete(grant.audience);
    if (grant.timer) clearTimeout(grant.timer);
    this.#d.log.info({ audience: grant.audience, reason }, 'Detached AMQP links');
    for (const link of [...grant.links]) {
      this.#forgetLink(state, link);
      link.close(unauthorized(reason));
    }
    grant.links.clear();
  }

  #onBus(e: BusEvent): void {
    if (e.type === 'c2d-feedback') this.#pumpFeedback();
    else if (e.type === 'c2d') this.#pumpDevice(e.deviceId);
    else if (e.type === 'resync') {
      // Wake-ups may have been missed while the bus was down: every link looks again.
      this.#pumpFeedback();
      for (const deviceId of this.#deviceLinks.keys()) this.#pumpDevice(deviceId);
    }
    else if (e.type === 'desired') this.#identity.onDesired(e, e.patch);
    else if (e.type === 'kick' && e.exceptReplica !== this.#d.replicaId) {
      // The identity connected to another replica: one connection per identity, as the MQTT endpoint keeps.
      for (const link of this.#identity.linksOf(e)) {
        const state = this.#conns.get(link.connection);
        if (state) this.#forgetLink(state, link);
        link.close({ condition: 'amqp:link:stolen', description: `${identityName(e).slice(0, 300)} connected elsewhere` });
      }
    }
    else if (e.type === 'identity') {
      this.#recheck((g) => dependsOn(g, e.deviceId, e.moduleId)).catch((err: unknown) => this.#d.log.warn({ err }, 'Failed to re-check AMQP tokens'));
    }
  }

  /** Re-checks the identity tokens whose grants `affected` selects, as the MQTT endpoint does for its sessions. */
  async #recheck(affected: (grant: ConnectGrant) => boolean): Promise<void> {
    for (const state of [...this.#conns.values()]) {
      for (const g of [...state.grants.values()]) {
        if (g.principal.kind !== 'identity' || !affected(g.principal.grant) || state.grants.get(g.audience) !== g) continue;
        const id = g.principal.grant.identity;
        const clientId = id.moduleId ? `${id.deviceId}/${id.moduleId}` : id.deviceId;
        const r = await checkConnect(this.#d.store, this.#d.hostNames, { clientId, username: `x/${clientId}/?api-version=${DEVICE_API_VERSION}`, password: g.principal.token }, this.#now());
        if (!r.ok) this.#revoke(state, g, r.refusal.reason);
        else if (!sameGeneration(g.principal.grant, r.grant)) this.#revoke(state, g, 'identity re-created');
      }
    }
  }

  /** Sends waiting feedback records as one batch message on a feedback link; the records go when it is accepted. */
  #pumpFeedback(): void {
    if (this.#closing) return;
    if (this.#feedbackBusy) {
      this.#feedbackAgain = true;
      return;
    }
    const link = [...this.#feedbackLinks].find((l) => l.sendable());
    if (!link) return;
    this.#feedbackBusy = true;
    this.#feedbackAgain = false;
    this.#d.c2d.readFeedback(FEEDBACK_BATCH).then(
      (records) => {
        if (records.length === 0 || !this.#feedbackLinks.has(link) || !link.sendable()) {
          this.#feedbackBusy = false;
          if (this.#feedbackAgain && records.length > 0) this.#pumpFeedback();
          return;
        }
        const delivery = link.send({
          message_id: randomUUID(),
          content_type: FEEDBACK_CONTENT_TYPE,
          body: rhea.message.data_section(Buffer.from(feedbackBatchJson(records), 'utf8')) as unknown,
        });
        this.#feedbackPending.set(
          delivery,
          records.map((r) => r.seq),
        );
      },
      (err: unknown) => {
        this.#feedbackBusy = false;
        this.#d.log.warn({ err }, 'Failed to read cloud-to-device feedback');
      },
    );
  }

  #onFeedbackSettled(ctx: EventContext, accepted: boolean): void {
    const seqs = ctx.delivery ? this.#feedbackPending.get(ctx.delivery) : undefined;
    if (!seqs) return;
    if (!accepted) {
      // Released, rejected or modified: the batch stays stored and goes again with the next pump.
      this.#feedbackBusy = false;
      return;
    }
    this.#d.c2d.deleteFeedback(seqs).then(
      () => {
        this.#feedbackBusy = false;
        this.#pumpFeedback();
      },
      (err: unknown) => {
        this.#feedbackBusy = false;
        this.#d.log.warn({ err }, 'Failed to delete delivered feedback');
      },
    );
  }

  /** Stops listening and closes every connection. */
  async close(): Promise<void> {
    this.#closing = true;
    this.#unsubscribe?.();
    if (this.#feedbackTimer) clearInterval(this.#feedbackTimer);
    if (this.#recheckTimer) clearInterval(this.#recheckTimer);
    const server = this.#server;
    const closed = server ? new Promise<void>((resolve) => server.close(() => resolve())) : Promise.resolve();
    for (const [conn, state] of [...this.#conns]) {
      try {
        conn.close({ condition: 'amqp:connection:forced', description: 'The hub is shutting down' });
      } catch {
        // Already closing.
      }
      state.guard.end();
      setTimeout(() => state.guard.destroy(), 1000).unref();
    }
    this.#wss.close();
    await closed;
  }
}

/** rhea's server mechanism shape: SASL MSSBCBS succeeds at once (the connection authenticates later, on `$cbs`). */
class DeferredToCbs {
  outcome: boolean | undefined = undefined;
  username: string | undefined = undefined;
  start(): void {
    this.outcome = true;
    this.username = 'cbs';
  }
}

/** A CBS token refused for its audience (the reason is logged, the peer gets 401). */
class AudienceError extends Error {
  readonly code = 'AMQP_AUDIENCE_REFUSED';
}
