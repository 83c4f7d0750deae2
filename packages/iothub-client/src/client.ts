import { EventEmitter } from 'node:events';
import { randomBytes } from 'node:crypto';
import mqtt from 'mqtt';
import type { IClientOptions, MqttClient } from 'mqtt';
import {
  ClientSubscriptions,
  computeSignature,
  encodeUriComponentStrict,
  identityAudience,
  isObject,
  methodResponseTopic,
  mqttClientId,
  mqttUsername,
  parseConnectionString,
  parseOutbound,
  telemetryTopic,
  twinGetTopic,
  twinReportedTopic,
  type Identity,
  type JsonObject,
} from '@kedge/protocol';
import { backoffDelay, type BackoffOptions } from './backoff.js';
import { IotHubClientError, IotHubErrorCode } from './errors.js';

/**
 * Signs `data` (UTF-8) with the identity's key: returns base64(HMAC-SHA256(key, data)). What the IoT Edge workload
 * API's `sign` does; lets a client connect without holding the key itself.
 */
export type Signer = (data: string, signal: AbortSignal) => Promise<string>;

/** The log methods the client uses (pino's signature); silent when not given. */
export interface ClientLogger {
  debug(obj: object, msg: string): void;
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
}

/** How to reach the hub and who to be. Exactly one of `sharedAccessKey` and `signer`. */
export interface IotHubClientOptions {
  /** The IoT Hub host name: SAS audience and MQTT user name. */
  readonly hostName: string;
  readonly deviceId: string;
  /** Connect as this module of the device (`$edgeAgent`, `filter`, …). */
  readonly moduleId?: string;
  /** The identity's symmetric key (base64). */
  readonly sharedAccessKey?: string;
  /** Signs tokens instead of a key in memory. */
  readonly signer?: Signer;
  /** Where to connect when it is not `hostName` (an edge hub, a test address), `host` or `host:port`. */
  readonly gatewayHostName?: string;
  /** @default 8883 (or the port in `gatewayHostName`) */
  readonly port?: number;
  /** PEM of the CA(s) to trust; the system's when absent. */
  readonly ca?: string;
  /** Token lifetime. @default 3600 */
  readonly tokenValiditySeconds?: number;
  /** Renew (reconnect with a fresh token) this long before expiry. @default 900 */
  readonly tokenRenewalMarginSeconds?: number;
  /** Deadline of each twin request, telemetry PUBACK and subscription. @default 30_000 */
  readonly requestTimeoutMs?: number;
  /** Deadline of TCP+TLS+CONNACK. @default 30_000 */
  readonly connectTimeoutMs?: number;
  /** MQTT keep-alive; a silent connection is closed after 1.5× this. @default 60 */
  readonly keepAliveSeconds?: number;
  /** Between reconnect attempts. */
  readonly backoff?: BackoffOptions;
  /** Larger messages from the hub are dropped (method requests answered 413). @default 1 MiB */
  readonly maxIncomingBytes?: number;
  /** @default `kedge-iothub-client/0.1` */
  readonly userAgent?: string;
  readonly log?: ClientLogger;
  /** Test hook for jitter. */
  readonly random?: () => number;
}

/** Both sides of a twin as `GET` returns them; each with its `$version`. */
export interface TwinDocument {
  readonly desired: JsonObject;
  readonly reported: JsonObject;
}

/** A direct method call. `payload` is the parsed JSON body (`null` when empty). */
export interface MethodRequest {
  readonly name: string;
  readonly payload: unknown;
  readonly rid: string;
}

/** A direct method's answer: an HTTP-like status and a JSON payload. */
export interface MethodResponse {
  readonly status: number;
  readonly payload?: unknown;
}

export type MethodHandler = (request: MethodRequest) => Promise<MethodResponse> | MethodResponse;

/** Telemetry properties: application properties plus the IoT Hub system properties a device may set. */
export interface EventOptions {
  readonly properties?: Readonly<Record<string, string>>;
  readonly messageId?: string;
  readonly correlationId?: string;
  readonly contentType?: string;
  readonly contentEncoding?: string;
  /** Module output name (`$.on`), for modules talking to an edge hub. */
  readonly outputName?: string;
  readonly timeoutMs?: number;
}

/** Typed events of {@link IotHubClient}. */
export interface IotHubClientEvents {
  /** A connection is up and subscribed (after every reconnect). */
  connected: [info: { readonly sessionPresent: boolean }];
  /** The connection is gone; the client reconnects by itself unless closed. */
  disconnected: [info: { readonly error?: IotHubClientError; readonly renewal: boolean }];
  /** A desired-properties patch (JSON merge patch, `null` deletes) and its `$version`. */
  desired: [patch: JsonObject, version: number | undefined];
}

interface Pending {
  readonly resolve: (v: { status: number; version?: number; body: Buffer }) => void;
  readonly reject: (e: IotHubClientError) => void;
  readonly timer: NodeJS.Timeout;
}

const MQTT_CONNACK_UNAUTHORIZED = new Set([4, 5]);

/**
 * A device or module client for IoT Hub's MQTT dialect (MQTT 3.1.1 over TLS, iotedge-protocols.md §3): persistent
 * session (`clean=false`), SAS tokens renewed before they expire (a fresh connection, as the Azure SDKs do),
 * reconnection with jittered exponential backoff for as long as the client is open, twin GET, reported patches
 * correlated by `$rid`, desired-patch notifications, direct methods and telemetry. Every request has a deadline;
 * requests made while disconnected fail at once with `IOTHUB_ERR_NOT_CONNECTED` (nothing is queued: callers decide
 * what to retry after `connected`).
 */
export class IotHubClient extends EventEmitter<IotHubClientEvents> {
  readonly #o: IotHubClientOptions;
  readonly #id: Identity;
  readonly #pending = new Map<string, Pending>();
  readonly #abort = new AbortController();
  #mqtt: MqttClient | undefined;
  #connected = false;
  #loop: Promise<void> | undefined;
  #handler: MethodHandler | undefined;
  #ridPrefix = randomBytes(4).toString('hex');
  #rid = 0;
  #wake: (() => void) | undefined;

  constructor(options: IotHubClientOptions) {
    super();
    if ((options.sharedAccessKey === undefined) === (options.signer === undefined)) {
      throw new TypeError('IotHubClient needs exactly one of sharedAccessKey and signer');
    }
    this.#o = options;
    this.#id = { deviceId: options.deviceId, moduleId: options.moduleId ?? '' };
  }

  /**
   * A client from `HostName=…;DeviceId=…[;ModuleId=…];SharedAccessKey=…[;GatewayHostName=…]`; `options` adds or
   * overrides the rest.
   */
  static fromConnectionString(connectionString: string, options: Partial<IotHubClientOptions> = {}): IotHubClient {
    const cs = parseConnectionString(connectionString);
    const hostName = cs.get('HostName');
    const deviceId = cs.get('DeviceId');
    const key = cs.get('SharedAccessKey');
    if (!hostName || !deviceId || !key) throw new TypeError('The connection string needs HostName, DeviceId and SharedAccessKey');
    const moduleId = cs.get('ModuleId');
    const gateway = cs.get('GatewayHostName');
    return new IotHubClient({
      hostName,
      deviceId,
      sharedAccessKey: key,
      ...(moduleId ? { moduleId } : {}),
      ...(gateway ? { gatewayHostName: gateway } : {}),
      ...options,
    });
  }

  /** True while a connection is up. */
  get connected(): boolean {
    return this.#connected;
  }

  /** The identity this client is. */
  get identity(): Identity {
    return this.#id;
  }

  /**
   * Starts connecting (and reconnecting, until {@link close}) without waiting. Idempotent. Use {@link open} to also
   * wait for the first connection.
   */
  start(): void {
    if (this.#abort.signal.aborted) throw new IotHubClientError(IotHubErrorCode.Closed, 'The client is closed');
    this.#loop ??= this.#run();
  }

  /** {@link start}, then waits up to `timeoutMs` for a connection; the client keeps trying after a timeout. */
  async open(timeoutMs = this.#o.connectTimeoutMs ?? 30_000): Promise<void> {
    this.start();
    await this.waitForConnection(timeoutMs);
  }

  /** Resolves once connected; rejects with `IOTHUB_ERR_TIMEOUT` after `timeoutMs` or `IOTHUB_ERR_CLOSED`. */
  waitForConnection(timeoutMs: number): Promise<void> {
    if (this.#connected) return Promise.resolve();
    return new Promise<void>((resolve, reject) => {
      const done = () => {
        clearTimeout(timer);
        this.off('connected', onConnected);
        this.#abort.signal.removeEventListener('abort', onClose);
      };
      const onConnected = () => {
        done();
        resolve();
      };
      const onClose = () => {
        done();
        reject(new IotHubClientError(IotHubErrorCode.Closed, 'The client was closed'));
      };
      const timer = setTimeout(() => {
        done();
        reject(new IotHubClientError(IotHubErrorCode.Timeout, `Not connected to ${this.#o.hostName} within ${timeoutMs} ms`));
      }, timeoutMs);
      this.on('connected', onConnected);
      this.#abort.signal.addEventListener('abort', onClose);
    });
  }

  /** Stops reconnecting and closes the connection; pending requests fail with `IOTHUB_ERR_CLOSED`. */
  async close(): Promise<void> {
    this.#abort.abort();
    this.#wake?.();
    const m = this.#mqtt;
    if (m) await m.endAsync(true).catch(() => undefined);
    this.#failPending(new IotHubClientError(IotHubErrorCode.Closed, 'The client was closed'));
    await this.#loop;
  }

  /** Sets the one handler of every direct method (replacing any previous one). Without one, calls get 501. */
  onMethod(handler: MethodHandler | undefined): void {
    this.#handler = handler;
  }

  /** The whole twin (`$iothub/twin/GET`). */
  async getTwin(opts: { timeoutMs?: number } = {}): Promise<TwinDocument> {
    const r = await this.#request((rid) => twinGetTopic(rid), Buffer.from(' '), opts.timeoutMs);
    let body: unknown;
    try {
      body = JSON.parse(r.body.toString('utf8'));
    } catch (e) {
      throw new IotHubClientError(IotHubErrorCode.BadResponse, 'The twin is not JSON', { cause: e });
    }
    if (!isObject(body) || !isObject(body['desired']) || !isObject(body['reported'])) {
      throw new IotHubClientError(IotHubErrorCode.BadResponse, 'The twin has no desired and reported properties');
    }
    return { desired: body['desired'], reported: body['reported'] };
  }

  /** Sends a reported-properties patch (JSON merge patch, `null` deletes); resolves with the new reported `$version`. */
  async updateReported(patch: JsonObject, opts: { timeoutMs?: number } = {}): Promise<number | undefined> {
    const r = await this.#request((rid) => twinReportedTopic(rid), Buffer.from(JSON.stringify(patch)), opts.timeoutMs);
    return r.version;
  }

  /** Sends one telemetry message (QoS 1); resolves on PUBACK. */
  async sendEvent(body: Buffer | string, opts: EventOptions = {}): Promise<void> {
    const bag: Record<string, string> = {};
    if (opts.messageId !== undefined) bag['$.mid'] = opts.messageId;
    if (opts.correlationId !== undefined) bag['$.cid'] = opts.correlationId;
    if (opts.contentType !== undefined) bag['$.ct'] = opts.contentType;
    if (opts.contentEncoding !== undefined) bag['$.ce'] = opts.contentEncoding;
    if (opts.outputName !== undefined) bag['$.on'] = opts.outputName;
    for (const [k, v] of Object.entries(opts.properties ?? {})) if (!k.startsWith('$.')) bag[k] = v;
    const m = this.#requireConnection();
    await this.#deadline(m.publishAsync(telemetryTopic(this.#id, bag), typeof body === 'string' ? Buffer.from(body) : body, { qos: 1 }), opts.timeoutMs, 'PUBACK');
  }

  #requireConnection(): MqttClient {
    if (this.#abort.signal.aborted) throw new IotHubClientError(IotHubErrorCode.Closed, 'The client is closed');
    const m = this.#mqtt;
    if (!m || !this.#connected) throw new IotHubClientError(IotHubErrorCode.NotConnected, `Not connected to ${this.#o.hostName}`);
    return m;
  }

  async #deadline<T>(p: Promise<T>, timeoutMs: number | undefined, what: string): Promise<T> {
    const ms = timeoutMs ?? this.#o.requestTimeoutMs ?? 30_000;
    let timer: NodeJS.Timeout | undefined;
    try {
      return await Promise.race([
        p.catch((e: unknown) => {
          throw e instanceof IotHubClientError ? e : new IotHubClientError(IotHubErrorCode.Disconnected, `${what} failed: ${(e as Error).message}`, { cause: e });
        }),
        new Promise<never>((_, reject) => {
          timer = setTimeout(() => reject(new IotHubClientError(IotHubErrorCode.Timeout, `No ${what} within ${ms} ms`)), ms);
        }),
      ]);
    } finally {
      clearTimeout(timer);
    }
  }

  #request(topic: (rid: string) => string, body: Buffer, timeoutMs: number | undefined): Promise<{ status: number; version?: number; body: Buffer }> {
    const m = this.#requireConnection();
    const rid = `${this.#ridPrefix}${(this.#rid++).toString(36)}`;
    const ms = timeoutMs ?? this.#o.requestTimeoutMs ?? 30_000;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#pending.delete(rid);
        reject(new IotHubClientError(IotHubErrorCode.Timeout, `No twin response within ${ms} ms`));
      }, ms);
      this.#pending.set(rid, { resolve, reject, timer });
      m.publish(topic(rid), body, { qos: 0 }, (err) => {
        if (!err) return;
        const p = this.#pending.get(rid);
        if (!p) return;
        clearTimeout(p.timer);
        this.#pending.delete(rid);
        p.reject(new IotHubClientError(IotHubErrorCode.Disconnected, `Twin request not sent: ${err.message}`, { cause: err }));
      });
    });
  }

  #failPending(e: IotHubClientError): void {
    for (const [rid, p] of this.#pending) {
      clearTimeout(p.timer);
      this.#pending.delete(rid);
      p.reject(e);
    }
  }

  async #token(): Promise<{ token: string; expiresAt: number }> {
    const validity = this.#o.tokenValiditySeconds ?? 3600;
    const se = Math.floor(Date.now() / 1000) + validity;
    const sr = encodeUriComponentStrict(identityAudience(this.#o.hostName, this.#id));
    const sig = this.#o.sharedAccessKey !== undefined
      ? computeSignature(this.#o.sharedAccessKey, sr, se)
      : await (this.#o.signer as Signer)(`${sr}\n${se}`, AbortSignal.any([this.#abort.signal, AbortSignal.timeout(this.#o.requestTimeoutMs ?? 30_000)]));
    return { token: `SharedAccessSignature sr=${sr}&sig=${encodeURIComponent(sig)}&se=${se}`, expiresAt: se * 1000 };
  }

  #endpoint(): { host: string; port: number } {
    const gw = this.#o.gatewayHostName ?? this.#o.hostName;
    const m = /^(\[[^\]]+\]|[^:]+)(?::(\d+))?$/.exec(gw);
    const host = (m?.[1] ?? gw).replace(/^\[|\]$/g, '');
    return { host, port: this.#o.port ?? (m?.[2] !== undefined ? Number(m[2]) : 8883) };
  }

  async #sleep(ms: number): Promise<void> {
    if (this.#abort.signal.aborted) return;
    await new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, ms);
      this.#wake = () => {
        clearTimeout(timer);
        resolve();
      };
    });
    this.#wake = undefined;
  }

  async #run(): Promise<void> {
    const log = this.#o.log;
    let attempt = 0;
    while (!this.#abort.signal.aborted) {
      let renewal = false;
      let error: IotHubClientError | undefined;
      try {
        const { token, expiresAt } = await this.#unlessClosed(this.#token());
        const { m, sessionPresent, closed } = await this.#connectOnce(token);
        this.#mqtt = m;
        await this.#deadline(
          m.subscribeAsync([ClientSubscriptions.twinResponses, ClientSubscriptions.desiredPatches, ClientSubscriptions.methods], { qos: 0 }),
          undefined,
          'SUBACK',
        );
        attempt = 0;
        this.#connected = true;
        log?.info({ hostName: this.#o.hostName, clientId: mqttClientId(this.#id), sessionPresent }, 'Connected to IoT Hub');
        this.emit('connected', { sessionPresent });
        const renewAt = expiresAt - (this.#o.tokenRenewalMarginSeconds ?? 900) * 1000;
        const renewTimer = setTimeout(() => {
          renewal = true;
          log?.debug({ clientId: mqttClientId(this.#id) }, 'Renewing SAS token');
          void m.endAsync().catch(() => undefined);
        }, Math.max(renewAt - Date.now(), 1000));
        error = await closed;
        clearTimeout(renewTimer);
      } catch (e) {
        error = e instanceof IotHubClientError ? e : new IotHubClientError(IotHubErrorCode.Network, (e as Error).message, { cause: e });
      }
      const wasConnected = this.#connected;
      this.#connected = false;
      const m = this.#mqtt;
      this.#mqtt = undefined;
      if (m) void m.endAsync(true).catch(() => undefined);
      this.#failPending(new IotHubClientError(IotHubErrorCode.Disconnected, 'The connection to IoT Hub dropped'));
      if (this.#abort.signal.aborted) break;
      if (wasConnected || error) this.emit('disconnected', { ...(error && !renewal ? { error } : {}), renewal });
      if (renewal) continue;
      attempt++;
      const delay = backoffDelay(attempt, this.#o.backoff, this.#o.random);
      log?.warn({ hostName: this.#o.hostName, clientId: mqttClientId(this.#id), attempt, delayMs: delay, err: error?.message, code: error?.code }, 'IoT Hub connection lost; reconnecting');
      await this.#sleep(delay);
    }
    this.#connected = false;
  }

  /** `p`, or a rejection as soon as the client is closed (a slow signer or connection attempt must not hold up close()). */
  #unlessClosed<T>(p: Promise<T>): Promise<T> {
    const signal = this.#abort.signal;
    if (signal.aborted) return Promise.reject(new IotHubClientError(IotHubErrorCode.Closed, 'The client was closed'));
    return new Promise<T>((resolve, reject) => {
      const onAbort = () => reject(new IotHubClientError(IotHubErrorCode.Closed, 'The client was closed'));
      signal.addEventListener('abort', onAbort, { once: true });
      p.then(resolve, reject).finally(() => signal.removeEventListener('abort', onAbort));
    });
  }

  /** One connection attempt: resolves at CONNACK with a promise that settles when that connection closes. */
  #connectOnce(token: string): Promise<{ m: MqttClient; sessionPresent: boolean; closed: Promise<IotHubClientError | undefined> }> {
    const { host, port } = this.#endpoint();
    const connectTimeout = this.#o.connectTimeoutMs ?? 30_000;
    const options: IClientOptions = {
      protocol: 'mqtts',
      host,
      port,
      servername: /^[\d.]+$|:/.test(host) ? undefined : host,
      ...(this.#o.ca !== undefined ? { ca: this.#o.ca } : {}),
      rejectUnauthorized: true,
      protocolVersion: 4,
      clientId: mqttClientId(this.#id),
      username: mqttUsername(this.#o.hostName, this.#id, this.#o.userAgent ?? 'kedge-iothub-client/0.1'),
      password: token,
      // [MQTT-3.1.2-4] a persistent session: the hub keeps our subscriptions across token renewals.
      clean: false,
      keepalive: this.#o.keepAliveSeconds ?? 60,
      reconnectPeriod: 0,
      connectTimeout,
      resubscribe: false,
    };
    return new Promise((resolve, reject) => {
      const m = mqtt.connect(options);
      let settled = false;
      let lastError: IotHubClientError | undefined;
      let onClosed: (e: IotHubClientError | undefined) => void = () => undefined;
      const closed = new Promise<IotHubClientError | undefined>((r) => {
        onClosed = r;
      });
      const timer = setTimeout(() => {
        fail(new IotHubClientError(IotHubErrorCode.Timeout, `No CONNACK from ${host}:${port} within ${connectTimeout} ms`));
      }, connectTimeout + 1000);
      const fail = (e: IotHubClientError) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        m.end(true);
        reject(e);
      };
      const onAbort = () => (settled ? m.end(true) : fail(new IotHubClientError(IotHubErrorCode.Closed, 'The client was closed')));
      this.#abort.signal.addEventListener('abort', onAbort, { once: true });
      void closed.finally(() => this.#abort.signal.removeEventListener('abort', onAbort));
      m.on('connect', (connack) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        resolve({ m, sessionPresent: connack.sessionPresent, closed });
      });
      m.on('error', (e: Error & { code?: string | number }) => {
        const rc = typeof e.code === 'number' ? e.code : undefined;
        lastError = rc !== undefined && MQTT_CONNACK_UNAUTHORIZED.has(rc)
          ? new IotHubClientError(IotHubErrorCode.Unauthorized, `IoT Hub refused the credentials of ${mqttClientId(this.#id)} (CONNACK ${rc})`, { cause: e })
          : new IotHubClientError(IotHubErrorCode.Network, e.message, { cause: e });
        if (!settled) fail(lastError);
      });
      m.on('close', () => {
        if (!settled) fail(lastError ?? new IotHubClientError(IotHubErrorCode.Network, `Connection to ${host}:${port} closed before CONNACK`));
        onClosed(lastError);
      });
      m.on('message', (topic, payload) => this.#onMessage(m, topic, payload));
    });
  }

  #onMessage(m: MqttClient, topic: string, payload: Buffer): void {
    const max = this.#o.maxIncomingBytes ?? 1024 * 1024;
    const what = parseOutbound(topic);
    if (!what) {
      this.#o.log?.debug({ topic: topic.slice(0, 200) }, 'Ignored message on an unexpected topic');
      return;
    }
    if (what.kind === 'twin-response') {
      const p = this.#pending.get(what.rid);
      if (!p) return;
      clearTimeout(p.timer);
      this.#pending.delete(what.rid);
      if (what.status >= 200 && what.status < 300) {
        if (payload.length > max) p.reject(new IotHubClientError(IotHubErrorCode.BadResponse, `Twin response of ${payload.length} bytes exceeds ${max}`));
        else p.resolve({ status: what.status, ...(what.version !== undefined ? { version: what.version } : {}), body: payload });
        return;
      }
      let message = `IoT Hub answered ${what.status}`;
      try {
        const b: unknown = JSON.parse(payload.subarray(0, 4096).toString('utf8'));
        if (isObject(b) && typeof b['message'] === 'string') message = `${message}: ${b['message']}`;
      } catch {
        // a status without a JSON body
      }
      p.reject(new IotHubClientError(IotHubErrorCode.Rejected, message, { status: what.status }));
      return;
    }
    if (what.kind === 'desired-patch') {
      if (payload.length > max) {
        this.#o.log?.warn({ bytes: payload.length }, 'Dropped an oversized desired-properties patch');
        return;
      }
      let patch: unknown;
      try {
        patch = JSON.parse(payload.toString('utf8'));
      } catch {
        this.#o.log?.warn({}, 'Dropped a desired-properties patch that is not JSON');
        return;
      }
      if (!isObject(patch)) return;
      const v = typeof patch['$version'] === 'number' ? patch['$version'] : what.version;
      this.emit('desired', patch, v);
      return;
    }
    void this.#onMethod(m, what.name, what.rid, payload, max);
  }

  async #onMethod(m: MqttClient, name: string, rid: string, payload: Buffer, max: number): Promise<void> {
    const respond = (status: number, body: unknown) => {
      m.publish(methodResponseTopic(status, rid), Buffer.from(JSON.stringify(body ?? null)), { qos: 0 }, (err) => {
        if (err) this.#o.log?.warn({ method: name, err: err.message }, 'Could not send a direct method response');
      });
    };
    if (payload.length > max) return respond(413, { message: `Payload of ${payload.length} bytes exceeds ${max}` });
    let parsed: unknown = null;
    const text = payload.toString('utf8').trim();
    if (text !== '') {
      try {
        parsed = JSON.parse(text);
      } catch {
        return respond(400, { message: 'The payload is not JSON' });
      }
    }
    const handler = this.#handler;
    if (!handler) return respond(501, { message: `Method '${name}' is not implemented` });
    try {
      const r = await handler({ name, payload: parsed, rid });
      respond(r.status, r.payload ?? null);
    } catch (e) {
      this.#o.log?.warn({ method: name, err: (e as Error).message }, 'Direct method handler failed');
      respond(500, { message: (e as Error).message });
    }
  }
}
