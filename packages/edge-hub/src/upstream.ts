import { connect } from 'mqtt';
import type { IClientOptions, MqttClient } from 'mqtt';
import type { Identity } from '@kedge/protocol';
import { createSasToken } from '@kedge/protocol';
import { EdgeErrorCode, EdgeHubError } from './errors.js';
import { EDGE_HUB_MODULE } from './hub-client.js';
import { identityKey } from './identities.js';
import type { Logger } from './log.js';
import type { EdgeHubMetrics } from './metrics.js';

/** Where and how the upstream link reaches the hub's MQTT endpoint. */
export interface UpstreamOptions {
  /** The hub's host name (user names, SAS audience, TLS name). */
  readonly hostName: string;
  /** Where to connect when not `hostName`. */
  readonly address?: string;
  readonly port: number;
  readonly ca?: string;
  readonly edgeDeviceId: string;
  /** The `$edgeHub` module's key (base64): every upstream connection signs with it. */
  readonly edgeHubKey: string;
  /**
   * Reconnect backoff of the edge hub's own connection, the probe: first delay and cap (jittered, see
   * {@link reconnectDelay}). A low cap is what makes draining resume within a second of the hub coming back.
   */
  readonly reconnectMinMs: number;
  readonly reconnectMaxMs: number;
  /**
   * Cap of the backoff of every other connection (modules and leaf devices on whose behalf the edge hub connects).
   * They do not need to probe fast: when the probe connects, every connection waiting out its backoff retries at
   * once, so one device does not hammer a hub that is down with one connection attempt per identity per second.
   */
  readonly childReconnectMaxMs: number;
  readonly keepaliveSeconds: number;
  readonly tokenTtlSeconds: number;
  /** Twin and method request timeout. */
  readonly requestTimeoutMs: number;
  /** A connection nobody needs any more is closed after this. */
  readonly idleMs: number;
}

/** What the upstream link tells the edge hub about traffic from the hub. */
export interface UpstreamEvents {
  /** A desired-properties patch for `id` (raw body, `$version` inside). */
  desired(id: Identity, version: number, body: string): void;
  /** A direct method request for `id`. */
  method(id: Identity, name: string, rid: string, payload: Buffer): void;
  /** A connection came up: deliveries for that identity can resume. */
  online(id: Identity): void;
}

/** Why a connection is kept open. */
export const Need = { Session: 'session', Telemetry: 'telemetry', Self: 'self' } as const;
export type Need = (typeof Need)[keyof typeof Need];

/** A reply to a twin request from the hub. */
export interface HubTwinReply {
  readonly status: number;
  readonly body: string;
  readonly version?: number;
}

const API_VERSION = '2021-04-12';

/**
 * The wait before reconnect attempt `attempt` (0 for the first after a loss): exponential from `minMs`, capped at
 * `maxMs`, drawn uniformly from [cap/2, cap] so that many edge hubs losing the same hub do not retry in step.
 * Never more than `maxMs`: that bound is the resume-time guarantee.
 */
export function reconnectDelay(attempt: number, minMs: number, maxMs: number, random: () => number = Math.random): number {
  const cap = Math.min(maxMs, minMs * 2 ** Math.min(Math.max(0, attempt), 30));
  return cap / 2 + random() * (cap / 2);
}

/** The reconnect backoff of one upstream connection, as planned by {@link reconnectDelay} (status, tests). */
export interface ReconnectStatus {
  /** `deviceId` or `deviceId/moduleId`. */
  readonly id: string;
  readonly connected: boolean;
  /** Failed attempts since it was last connected, and the longest wait planned between them (ms). */
  readonly outage: { readonly attempts: number; readonly maxDelayMs: number };
  /** The last outage that ended in a connection; absent before the first. */
  readonly lastOutage?: { readonly attempts: number; readonly maxDelayMs: number };
  /**
   * What opened the attempt that connected last: a need (`acquire`), the end of its backoff (`timer`), or the probe
   * connecting (`wake`); `probeWasUp` when the edge hub's own connection was up as it started. A connection that
   * waited out its backoff while the probe was up (`timer` and `probeWasUp`) missed the wake-up.
   */
  readonly lastOpen?: { readonly cause: 'need' | 'timer' | 'wake'; readonly probeWasUp: boolean };
}

interface PendingRequest {
  resolve(r: HubTwinReply): void;
  reject(e: Error): void;
  timer: NodeJS.Timeout;
}

/**
 * One MQTT connection to the hub on behalf of one identity: the edge hub's own (`{edge}/$edgeHub`, signed with its
 * key) or a child's (`{child}` or `{edge}/{module}`, user name with `auth-chain={child};{edge}` and a `$edgeHub`
 * token: the contract of the hub's MQTT endpoint). Each attempt is a fresh MQTT.js client with its reconnect turned
 * off, so nothing it had in flight is silently resent later: the router retries what was not acknowledged. Between
 * attempts it waits a jittered exponential backoff ({@link reconnectDelay}): capped at `reconnectMaxMs` (500 ms) for
 * the edge hub's own connection, the probe, and at `childReconnectMaxMs` for the others, which {@link UpstreamLink}
 * wakes with {@link retryNow} as soon as the probe is connected.
 */
export class UpstreamConnection {
  readonly id: Identity;
  readonly #o: UpstreamOptions;
  readonly #events: UpstreamEvents;
  readonly #log: Logger;
  readonly #metrics: EdgeHubMetrics;
  readonly #onUp: (c: UpstreamConnection) => void;
  readonly #needs = new Set<Need>();
  #client: MqttClient | undefined;
  #connected = false;
  #closed = false;
  #attempt = 0;
  #outage = { attempts: 0, maxDelayMs: 0 };
  #lastOutage: { attempts: number; maxDelayMs: number } | undefined;
  #opening: NonNullable<ReconnectStatus['lastOpen']> | undefined;
  #lastOpen: NonNullable<ReconnectStatus['lastOpen']> | undefined;
  readonly #probeUp: () => boolean;
  #retry: NodeJS.Timeout | undefined;
  #idle: NodeJS.Timeout | undefined;
  #rid = 0;
  readonly #requests = new Map<string, PendingRequest>();
  readonly #waiters = new Set<() => void>();
  #subscriptions = { desired: false, methods: false };

  /** `onUp` is told when the connection is up and subscribed, before `events.online`; `probeUp` tells whether the edge hub's own connection is (status only). */
  constructor(
    id: Identity,
    options: UpstreamOptions,
    events: UpstreamEvents,
    log: Logger,
    metrics: EdgeHubMetrics,
    onUp: (c: UpstreamConnection) => void = () => undefined,
    probeUp: () => boolean = () => false,
  ) {
    this.#probeUp = probeUp;
    this.id = id;
    this.#o = options;
    this.#events = events;
    this.#log = log.child({ upstream: identityKey(id.deviceId, id.moduleId) });
    this.#metrics = metrics;
    this.#onUp = onUp;
  }

  get connected(): boolean {
    return this.#connected;
  }

  /** Its reconnect backoff: the current outage's and the last one's. */
  get reconnect(): ReconnectStatus {
    return {
      id: identityKey(this.id.deviceId, this.id.moduleId),
      connected: this.#connected,
      outage: { ...this.#outage },
      ...(this.#lastOutage ? { lastOutage: { ...this.#lastOutage } } : {}),
      ...(this.#lastOpen ? { lastOpen: { ...this.#lastOpen } } : {}),
    };
  }

  /** True for the edge hub's own connection (no auth-chain). */
  get isSelf(): boolean {
    return this.id.deviceId === this.#o.edgeDeviceId && this.id.moduleId === EDGE_HUB_MODULE;
  }

  /** Keeps the connection open for `need` (opens it when needed). */
  acquire(need: Need): void {
    if (this.#closed) return;
    this.#needs.add(need);
    if (this.#idle) clearTimeout(this.#idle);
    this.#idle = undefined;
    if (!this.#client && !this.#retry) this.#open('need');
  }

  /**
   * Ends the wait of a reconnect backoff and tries at once (nothing when connected or connecting): the hub answered
   * another connection, so this one is likely to succeed too. Not needed right now (its last batch released it), it
   * only forgets the backoff, so the next {@link acquire} connects at once instead of waiting it out (up to 30 s).
   */
  retryNow(): void {
    if (!this.#retry || this.#closed) return;
    clearTimeout(this.#retry);
    this.#retry = undefined;
    if (this.#needs.size > 0) this.#open('wake');
  }

  /** Drops `need`; the connection closes after `idleMs` once nothing needs it. */
  release(need: Need): void {
    this.#needs.delete(need);
    if (this.#needs.size > 0 || this.#idle) return;
    this.#idle = setTimeout(() => {
      this.#idle = undefined;
      if (this.#needs.size === 0) this.#shutdown();
    }, this.#o.idleMs);
    this.#idle.unref();
  }

  /**
   * Which hub feeds the connection subscribes to (applied at once when connected, and on every reconnect). Resolves
   * once the hub acknowledged the new subscriptions (at once when offline), so a client's SUBACK can wait for them:
   * a desired patch written right after the client subscribed is not missed.
   */
  follow(features: { desired: boolean; methods: boolean }): Promise<void> {
    const before = this.#subscriptions;
    this.#subscriptions = features;
    this.#log.debug({ features, connected: this.#connected }, 'Upstream subscriptions');
    const c = this.#client;
    if (!c || !this.#connected) return Promise.resolve();
    const add: string[] = [];
    if (features.desired && !before.desired) add.push('$iothub/twin/PATCH/properties/desired/#');
    if (features.methods && !before.methods) add.push('$iothub/methods/POST/#');
    const remove: string[] = [];
    if (!features.desired && before.desired) remove.push('$iothub/twin/PATCH/properties/desired/#');
    if (!features.methods && before.methods) remove.push('$iothub/methods/POST/#');
    if (remove.length > 0) c.unsubscribe(remove);
    if (add.length === 0) return Promise.resolve();
    return new Promise((resolve) => {
      const timer = setTimeout(resolve, this.#o.requestTimeoutMs);
      c.subscribe(add, { qos: 0 }, (err) => {
        clearTimeout(timer);
        if (err) this.#log.warn({ err: err.message }, 'Upstream subscription failed');
        resolve();
      });
    });
  }

  #username(): string {
    const { hostName, edgeDeviceId } = this.#o;
    const client = identityKey(this.id.deviceId, this.id.moduleId);
    const chain = this.isSelf ? '' : `&auth-chain=${encodeURIComponent(`${client};${edgeDeviceId}`)}`;
    return `${hostName}/${client}/?api-version=${API_VERSION}&DeviceClientType=${encodeURIComponent('kedge-edge-hub/0.1.0')}${chain}`;
  }

  #password(): string {
    return createSasToken({
      audience: `${this.#o.hostName}/devices/${this.#o.edgeDeviceId}/modules/${EDGE_HUB_MODULE}`,
      key: this.#o.edgeHubKey,
      expirySeconds: Math.floor(Date.now() / 1000) + this.#o.tokenTtlSeconds,
    });
  }

  #open(cause: 'need' | 'timer' | 'wake'): void {
    this.#opening = { cause, probeWasUp: !this.isSelf && this.#probeUp() };
    const o = this.#o;
    const options: IClientOptions = {
      protocol: 'mqtts',
      host: o.address ?? o.hostName,
      port: o.port,
      ...(o.address && o.address !== o.hostName && !/^[\d.]+$|:/.test(o.hostName) ? { servername: o.hostName } : {}),
      ...(o.ca ? { ca: o.ca } : {}),
      clientId: identityKey(this.id.deviceId, this.id.moduleId),
      username: this.#username(),
      password: this.#password(),
      protocolVersion: 4,
      clean: true,
      keepalive: o.keepaliveSeconds,
      reconnectPeriod: 0,
      connectTimeout: 10_000,
      resubscribe: false,
    };
    const client = connect(options);
    this.#client = client;
    // The token lives tokenTtlSeconds; the hub ends the session when it expires, so renew by reconnecting first.
    const renew = setTimeout(() => client.end(true), Math.max(60_000, (o.tokenTtlSeconds - 300) * 1000));
    renew.unref();
    client.on('connect', () => {
      this.#connected = true;
      this.#attempt = 0;
      if (this.#outage.attempts > 0) this.#lastOutage = this.#outage;
      this.#lastOpen = this.#opening;
      this.#outage = { attempts: 0, maxDelayMs: 0 };
      const subs = ['$iothub/twin/res/#'];
      if (this.#subscriptions.desired) subs.push('$iothub/twin/PATCH/properties/desired/#');
      if (this.#subscriptions.methods) subs.push('$iothub/methods/POST/#');
      client.subscribe(subs, { qos: 0 }, (err) => {
        if (err) {
          this.#log.warn({ err: err.message }, 'Upstream subscription failed');
          client.end(true);
          return;
        }
        this.#log.info({}, 'Upstream connected');
        this.#onUp(this);
        for (const w of this.#waiters) w();
        this.#waiters.clear();
        this.#events.online(this.id);
      });
    });
    client.on('message', (topic, payload) => this.#onMessage(topic, payload));
    client.on('error', (e) => this.#log.debug({ err: e.message }, 'Upstream connection error'));
    client.on('close', () => {
      clearTimeout(renew);
      if (this.#client !== client) return;
      const wasConnected = this.#connected;
      this.#connected = false;
      this.#client = undefined;
      client.removeAllListeners('message');
      client.end(true);
      for (const [rid, r] of this.#requests) {
        clearTimeout(r.timer);
        r.reject(new EdgeHubError(EdgeErrorCode.Offline, 'upstream connection closed'));
        this.#requests.delete(rid);
      }
      if (wasConnected) {
        this.#metrics.offlineCount.inc({ id: identityKey(this.id.deviceId, this.id.moduleId) });
        this.#log.warn({}, 'Upstream connection lost; reconnecting');
      }
      if (this.#closed || this.#needs.size === 0) return;
      this.#metrics.retries.inc({ id: identityKey(this.id.deviceId, this.id.moduleId), operation: 'connect' });
      const delay = reconnectDelay(this.#attempt++, o.reconnectMinMs, this.isSelf ? o.reconnectMaxMs : Math.max(o.reconnectMaxMs, o.childReconnectMaxMs));
      this.#outage = { attempts: this.#outage.attempts + 1, maxDelayMs: Math.max(this.#outage.maxDelayMs, delay) };
      this.#retry = setTimeout(() => {
        this.#retry = undefined;
        if (!this.#closed && this.#needs.size > 0) this.#open('timer');
      }, delay);
      this.#retry.unref();
    });
  }

  #onMessage(topic: string, payload: Buffer): void {
    this.#log.debug({ topic: topic.slice(0, 200) }, 'Upstream message');
    if (topic.startsWith('$iothub/twin/res/')) {
      const m = /^\$iothub\/twin\/res\/(\d{3})\/\?(.*)$/.exec(topic);
      if (!m) return;
      const q = new URLSearchParams(m[2] ?? '');
      const rid = q.get('$rid') ?? '';
      const r = this.#requests.get(rid);
      if (!r) return;
      this.#requests.delete(rid);
      clearTimeout(r.timer);
      const v = q.get('$version');
      r.resolve({ status: Number(m[1]), body: payload.toString('utf8'), ...(v !== null && /^\d+$/.test(v) ? { version: Number(v) } : {}) });
      return;
    }
    if (topic.startsWith('$iothub/twin/PATCH/properties/desired/')) {
      const v = new URLSearchParams(topic.slice(topic.indexOf('?') + 1)).get('$version');
      this.#events.desired(this.id, v !== null && /^\d+$/.test(v) ? Number(v) : 0, payload.toString('utf8'));
      return;
    }
    const m = /^\$iothub\/methods\/POST\/([^/]+)\/\?(.*)$/.exec(topic);
    if (m) {
      const rid = new URLSearchParams(m[2] ?? '').get('$rid');
      if (rid) this.#events.method(this.id, m[1] ?? '', rid, payload);
    }
  }

  /** Resolves when connected; rejects with `EDGE_ERR_OFFLINE` after `timeoutMs` or when `signal` aborts. */
  waitConnected(timeoutMs: number, signal?: AbortSignal): Promise<void> {
    if (this.#connected) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const done = (): void => {
        clearTimeout(timer);
        signal?.removeEventListener('abort', onAbort);
        this.#waiters.delete(done);
        resolve();
      };
      const fail = (): void => {
        this.#waiters.delete(done);
        signal?.removeEventListener('abort', onAbort);
        reject(new EdgeHubError(EdgeErrorCode.Offline, 'the hub is not reachable'));
      };
      const onAbort = (): void => {
        clearTimeout(timer);
        fail();
      };
      const timer = setTimeout(fail, timeoutMs);
      signal?.addEventListener('abort', onAbort, { once: true });
      this.#waiters.add(done);
    });
  }

  /** Publishes with QoS 1; resolves on the hub's PUBACK. Rejects `EDGE_ERR_OFFLINE` when not connected. */
  publish(topic: string, body: Uint8Array): Promise<void> {
    const c = this.#client;
    if (!c || !this.#connected) return Promise.reject(new EdgeHubError(EdgeErrorCode.Offline, 'the hub is not reachable'));
    return new Promise((resolve, reject) => {
      c.publish(topic, Buffer.from(body.buffer, body.byteOffset, body.byteLength), { qos: 1 }, (err) => (err ? reject(new EdgeHubError(EdgeErrorCode.Offline, err.message, { cause: err })) : resolve()));
    });
  }

  /** Publishes with QoS 0 (method responses). */
  publishQos0(topic: string, body: Buffer | string): void {
    if (this.#connected) this.#client?.publish(topic, body, { qos: 0 });
  }

  /** A twin request (`GET` or a reported `PATCH`); resolves with the hub's status and body. */
  twinRequest(kind: 'get' | 'reported', body: string): Promise<HubTwinReply> {
    const c = this.#client;
    if (!c || !this.#connected) return Promise.reject(new EdgeHubError(EdgeErrorCode.Offline, 'the hub is not reachable'));
    const rid = String(++this.#rid);
    const topic = kind === 'get' ? `$iothub/twin/GET/?$rid=${rid}` : `$iothub/twin/PATCH/properties/reported/?$rid=${rid}`;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#requests.delete(rid);
        reject(new EdgeHubError(EdgeErrorCode.Timeout, 'the hub did not answer the twin request'));
      }, this.#o.requestTimeoutMs);
      timer.unref();
      this.#requests.set(rid, { resolve, reject, timer });
      c.publish(topic, kind === 'get' ? ' ' : body, { qos: 0 });
    });
  }

  #shutdown(): void {
    if (this.#retry) clearTimeout(this.#retry);
    this.#retry = undefined;
    const c = this.#client;
    this.#client = undefined;
    this.#connected = false;
    c?.end(true);
  }

  /** Closes the connection for good. */
  close(): void {
    this.#closed = true;
    if (this.#idle) clearTimeout(this.#idle);
    for (const r of this.#requests.values()) {
      clearTimeout(r.timer);
      r.reject(new EdgeHubError(EdgeErrorCode.Closed, 'edge hub is closing'));
    }
    this.#requests.clear();
    this.#shutdown();
  }
}

/**
 * The edge hub's link to the hub: one {@link UpstreamConnection} per identity that needs one (the edge hub itself,
 * connected clients that use twins or methods, identities whose telemetry is being drained). The edge hub's own
 * connection is the probe: when it comes up, every other connection waiting out a backoff retries at once.
 */
export class UpstreamLink {
  readonly #o: UpstreamOptions;
  readonly #events: UpstreamEvents;
  readonly #log: Logger;
  readonly #metrics: EdgeHubMetrics;
  readonly #conns = new Map<string, UpstreamConnection>();
  #closed = false;

  constructor(options: UpstreamOptions, events: UpstreamEvents, log: Logger, metrics: EdgeHubMetrics) {
    this.#o = options;
    this.#events = events;
    this.#log = log;
    this.#metrics = metrics;
  }

  /** The connection of `id` (created, not opened, on first use). */
  connection(id: Identity): UpstreamConnection {
    const key = identityKey(id.deviceId, id.moduleId);
    let c = this.#conns.get(key);
    if (!c) {
      if (this.#closed) throw new EdgeHubError(EdgeErrorCode.Closed, 'edge hub is closing');
      c = new UpstreamConnection(id, this.#o, this.#events, this.#log, this.#metrics, (up) => this.#up(up), () => this.#conns.get(identityKey(this.#o.edgeDeviceId, EDGE_HUB_MODULE))?.connected ?? false);
      this.#conns.set(key, c);
    }
    return c;
  }

  #up(c: UpstreamConnection): void {
    if (!c.isSelf) return;
    for (const other of this.#conns.values()) if (other !== c) other.retryNow();
  }

  /** The edge hub's own connection (`{edge}/$edgeHub`). */
  self(): UpstreamConnection {
    return this.connection({ deviceId: this.#o.edgeDeviceId, moduleId: EDGE_HUB_MODULE });
  }

  /** The reconnect backoff of every connection, the edge hub's own first. */
  status(): ReconnectStatus[] {
    const self = this.self();
    return [self, ...[...this.#conns.values()].filter((c) => c !== self)].map((c) => c.reconnect);
  }

  /** True when the edge hub's own connection is up (the hub is reachable). */
  get online(): boolean {
    return this.self().connected;
  }

  close(): void {
    this.#closed = true;
    for (const c of this.#conns.values()) c.close();
    this.#conns.clear();
  }
}
