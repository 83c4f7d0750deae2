import type { IncomingMessage, ServerResponse } from 'node:http';
import { createServer } from 'node:https';
import type { Server } from 'node:https';
import type { Duplex } from 'node:stream';
import type { Identity } from '@kedge/protocol';
import { parseSasToken, verifySasToken } from '@kedge/protocol';
import type { ScopeIdentity } from './hub-client.js';
import { identityKey } from './identities.js';
import type { Logger } from './log.js';
import type { LocalMethods } from './methods.js';
import { parseSafe } from './twins.js';
import type { SafeObject } from './twins.js';

/** The request header naming the calling module, `{deviceId}/{moduleId}` (edgeHub's `ServiceApiIdHeaderKey`). */
export const EDGE_MODULE_ID_HEADER = 'x-ms-edge-moduleid';

/** edgeHub's `MethodRequestValidator` bounds. */
export const METHOD_LIMITS = {
  maxNameLength: 100,
  maxPayloadBytes: 128 * 1024,
  minResponseTimeoutSeconds: 5,
  maxResponseTimeoutSeconds: 300,
  maxConnectTimeoutSeconds: 300,
  defaultResponseTimeoutSeconds: 30,
} as const;

/** The largest request body read: the payload bound plus room for the envelope. Checked before authentication. */
export const MAX_METHOD_BODY_BYTES = METHOD_LIMITS.maxPayloadBytes + 8 * 1024;

/** Settings of {@link startHttpsServer}. */
export interface HttpsServerOptions {
  readonly edgeDeviceId: string;
  /** Host names a SAS audience may name: the hub's and the edge hub's own. */
  readonly hostNames: readonly string[];
  readonly tls: { readonly key: string; readonly cert: string };
  /** Time to send the whole request (headers and body); a silent socket is closed after it. */
  readonly requestTimeoutMs: number;
  readonly now?: () => number;
}

/** Dependencies of {@link startHttpsServer}. */
export interface HttpsServerDeps {
  readonly identities: { get(deviceId: string, moduleId: string): ScopeIdentity | undefined };
  readonly methods: LocalMethods;
  readonly log: Logger;
  /** Takes over `Upgrade` requests (MQTT over WebSockets on the same listener); refused when absent. */
  readonly upgrade?: (req: IncomingMessage, socket: Duplex, head: Buffer) => void;
}

/** A running HTTPS listener. */
export interface RunningHttpsServer {
  readonly port: number;
  close(): Promise<void>;
}

class HttpFailure extends Error {
  readonly status: number;
  constructor(status: number, message: string) {
    super(message);
    this.name = 'HttpFailure';
    this.status = status;
  }
}

const JSON_TYPE = 'application/json; charset=utf-8';

function send(res: ServerResponse, status: number, body: string): void {
  if (res.headersSent) return;
  res.writeHead(status, { 'content-type': JSON_TYPE, 'content-length': Buffer.byteLength(body) }).end(body);
}

const fail = (res: ServerResponse, status: number, message: string): void => send(res, status, JSON.stringify({ message }));

/** `WebUtility.UrlDecode` as edgeHub applies it to route values: `+` is a space, then percent-decoding. */
function urlDecode(part: string): string {
  try {
    return decodeURIComponent(part.replace(/\+/g, ' '));
  } catch {
    throw new HttpFailure(400, 'Malformed percent-encoding in the path');
  }
}

/** The target of `POST /twins/{d}/methods` or `POST /twins/{d}/modules/{m}/methods`; undefined for other paths. */
export function parseMethodPath(url: string): Identity | undefined {
  const path = url.split('?')[0] ?? '';
  const parts = path.split('/');
  // ['', 'twins', d, 'methods'] or ['', 'twins', d, 'modules', m, 'methods']
  if (parts[0] !== '' || parts[1] !== 'twins' || parts[parts.length - 1] !== 'methods') return undefined;
  if (parts.length === 4 && parts[2]) return { deviceId: urlDecode(parts[2]), moduleId: '' };
  if (parts.length === 6 && parts[2] && parts[3] === 'modules' && parts[4]) return { deviceId: urlDecode(parts[2]), moduleId: urlDecode(parts[4]) };
  return undefined;
}

/** A validated method request body (edgeHub's `MethodRequest` + `MethodRequestValidator`). */
export interface MethodRequestBody {
  readonly methodName: string;
  /** The payload as JSON text, `''` when absent or null. */
  readonly payload: string;
  readonly responseTimeoutSeconds: number;
  readonly connectTimeoutSeconds: number;
}

const seconds = (v: unknown, name: string, dflt: number, min: number, max: number): number => {
  if (v === undefined || v === null) return dflt;
  if (typeof v !== 'number' || !Number.isFinite(v) || v < min || v > max) throw new HttpFailure(400, `${name} must be a number of seconds from ${min} to ${max}`);
  return v;
};

/**
 * Parses and checks a method request body. The JSON is parsed into null-prototype objects (`__proto__` is data)
 * and only known fields are read.
 * @throws HttpFailure 400 with the reason.
 */
export function parseMethodRequest(text: string): MethodRequestBody {
  const body = parseSafe(text);
  if (typeof body !== 'object' || body === null || Array.isArray(body)) throw new HttpFailure(400, 'The body must be a JSON object');
  const o = body as SafeObject;
  const name = Object.hasOwn(o, 'methodName') ? o['methodName'] : undefined;
  if (typeof name !== 'string' || name.trim() === '') throw new HttpFailure(400, 'methodName is required');
  if (name.length > METHOD_LIMITS.maxNameLength) throw new HttpFailure(400, `methodName cannot be longer than ${METHOD_LIMITS.maxNameLength}`);
  // The method name becomes an MQTT topic level: no level separators, wildcards [MQTT-4.7.1-1] or NUL [MQTT-4.7.3-2].
  if (/[/#+]/.test(name) || name.includes(String.fromCharCode(0))) throw new HttpFailure(400, 'methodName may not contain "/", "#", "+" or NUL');
  const payloadValue = Object.hasOwn(o, 'payload') ? o['payload'] : undefined;
  const payload = payloadValue === undefined || payloadValue === null ? '' : JSON.stringify(payloadValue);
  if (Buffer.byteLength(payload) > METHOD_LIMITS.maxPayloadBytes) throw new HttpFailure(400, `The payload exceeds ${METHOD_LIMITS.maxPayloadBytes} bytes`);
  return {
    methodName: name,
    payload,
    responseTimeoutSeconds: seconds(
      Object.hasOwn(o, 'responseTimeoutInSeconds') ? o['responseTimeoutInSeconds'] : undefined,
      'responseTimeoutInSeconds',
      METHOD_LIMITS.defaultResponseTimeoutSeconds,
      METHOD_LIMITS.minResponseTimeoutSeconds,
      METHOD_LIMITS.maxResponseTimeoutSeconds,
    ),
    connectTimeoutSeconds: seconds(Object.hasOwn(o, 'connectTimeoutInSeconds') ? o['connectTimeoutInSeconds'] : undefined, 'connectTimeoutInSeconds', 0, 0, METHOD_LIMITS.maxConnectTimeoutSeconds),
  };
}

/** Reads a request body of at most `max` bytes. @throws HttpFailure 413 beyond it. */
function readBody(req: IncomingMessage, max: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size > max) {
        req.removeAllListeners('data');
        req.pause();
        reject(new HttpFailure(413, `The body exceeds ${max} bytes`));
        return;
      }
      chunks.push(c);
    });
    req.once('end', () => resolve(Buffer.concat(chunks)));
    req.once('error', (e) => reject(e));
  });
}

/**
 * The response edgeHub's `TwinsController` sends for an answered call: `{"status": <target's status>, "payload":
 * <target's JSON or null>}`. The target's payload is embedded as it sent it when it is JSON, as a JSON string
 * otherwise (so the reply is always valid JSON).
 */
export function methodResultBody(status: number, payload: Buffer): string {
  const text = payload.toString('utf8');
  if (text.trim() === '') return `{"status":${status},"payload":null}`;
  return parseSafe(text) === undefined ? JSON.stringify({ status, payload: text }) : `{"status":${status},"payload":${text}}`;
}

/**
 * The edge hub's HTTPS listener (IoT Edge serves it on 443): `POST /twins/{d}[/modules/{m}]/methods`, the direct
 * method calls modules make with `ModuleClient.invokeMethod` (Node) / `invoke_method` (Python), and, when `upgrade`
 * is given, MQTT over WebSockets on the same port. Per request, in this order:
 *
 * 1. Route: other paths 404, other verbs 405.
 * 2. Size: a `content-length` over {@link MAX_METHOD_BODY_BYTES} is 413 before anything else; a body that grows
 *    past it while being read is 413 too.
 * 3. Caller: `x-ms-edge-moduleId` must be `{d}/{m}` (400) with `d` this edge device (401, "Only modules on the
 *    same device can invoke DirectMethods"), and `Authorization` a SAS token of that module, checked against the
 *    cached device scope (401).
 * 4. Body: JSON object, `methodName` (≤ 100), `payload` (≤ 128 KiB), `responseTimeoutInSeconds` (5–300, default
 *    30), `connectTimeoutInSeconds` (0–300, default 0); otherwise 400.
 * 5. Call: to a module or leaf device connected to this edge hub → 200 `{"status","payload"}`; not connected
 *    (within the connect timeout) → 404; no answer within the response timeout → 504. A target outside the
 *    device scope is refused with 404: the upstream link speaks the device side of the IoT Hub dialect, which
 *    cannot invoke methods, so nothing is forwarded to the hub.
 *
 * Errors are `{"message": "..."}`.
 */
export async function startHttpsServer(at: { host: string; port: number }, options: HttpsServerOptions, deps: HttpsServerDeps): Promise<RunningHttpsServer> {
  const nowSeconds = (): number => Math.floor((options.now ?? Date.now)() / 1000);

  const authenticate = (req: IncomingMessage): Identity => {
    const header = req.headers[EDGE_MODULE_ID_HEADER];
    const actor = typeof header === 'string' ? header.split('/') : [];
    if (actor.length !== 2 || !actor[0] || !actor[1]) throw new HttpFailure(400, 'Invalid header value for x-ms-edge-moduleId');
    const caller: Identity = { deviceId: actor[0], moduleId: actor[1] };
    if (caller.deviceId !== options.edgeDeviceId) throw new HttpFailure(401, 'Only modules on the same device can invoke DirectMethods');
    const token = parseSasToken(req.headers.authorization ?? '');
    if (!token.ok) throw new HttpFailure(401, 'A SAS token is required in the Authorization header');
    const identity = deps.identities.get(caller.deviceId, caller.moduleId);
    if (!identity || !identity.enabled) throw new HttpFailure(401, 'The caller is not a module of this edge device');
    const resource = `devices/${caller.deviceId}/modules/${caller.moduleId}`;
    const v = verifySasToken(token.value, { audiences: options.hostNames.map((h) => `${h}/${resource}`), keys: [identity.primaryKey, identity.secondaryKey], nowSeconds: nowSeconds() });
    if (!v.ok) throw new HttpFailure(401, `The SAS token was refused (${v.error})`);
    return caller;
  };

  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const target = parseMethodPath(req.url ?? '');
    if (!target) throw new HttpFailure(404, 'Not found');
    if (req.method !== 'POST') throw new HttpFailure(405, 'Only POST is supported');
    const declared = Number(req.headers['content-length'] ?? 0);
    if (!Number.isFinite(declared) || declared > MAX_METHOD_BODY_BYTES) throw new HttpFailure(413, `The body exceeds ${MAX_METHOD_BODY_BYTES} bytes`);
    const caller = authenticate(req);
    const request = parseMethodRequest((await readBody(req, MAX_METHOD_BODY_BYTES)).toString('utf8'));
    const to = identityKey(target.deviceId, target.moduleId);
    const known = deps.identities.get(target.deviceId, target.moduleId);
    const inScope = known !== undefined && (target.moduleId === '' || target.deviceId === options.edgeDeviceId);
    if (!inScope) {
      throw new HttpFailure(404, `${to} is not a module or child device of ${options.edgeDeviceId}: the edge hub calls methods only on its own clients and does not forward calls to the hub`);
    }
    const outcome = await deps.methods.invoke({
      caller,
      target,
      methodName: request.methodName,
      payload: Buffer.from(request.payload),
      responseTimeoutMs: request.responseTimeoutSeconds * 1000,
      connectTimeoutMs: request.connectTimeoutSeconds * 1000,
    });
    switch (outcome.kind) {
      case 'answered':
        send(res, 200, methodResultBody(outcome.status, outcome.payload));
        return;
      case 'not-connected':
        throw new HttpFailure(404, `${to} is not connected to the edge hub or not subscribed to methods`);
      case 'timeout':
        throw new HttpFailure(504, `${to} did not answer ${request.methodName} within ${request.responseTimeoutSeconds} s`);
      case 'closed':
        throw new HttpFailure(503, 'The edge hub is shutting down');
    }
  };

  const server: Server = createServer(
    {
      key: options.tls.key,
      cert: options.tls.cert,
      minVersion: 'TLSv1.2',
      // A silent or slow client is cut: TLS handshake, then headers and body, each within the request timeout
      // (checked every second rather than Node's default 30 s).
      handshakeTimeout: options.requestTimeoutMs,
      requestTimeout: options.requestTimeoutMs,
      headersTimeout: options.requestTimeoutMs,
      connectionsCheckingInterval: 1000,
      maxHeaderSize: 16 * 1024,
    },
    (req, res) => {
      handle(req, res).catch((e: unknown) => {
        if (e instanceof HttpFailure) {
          deps.log.info({ url: (req.url ?? '').slice(0, 200), caller: String(req.headers[EDGE_MODULE_ID_HEADER] ?? '').slice(0, 200), status: e.status, reason: e.message }, 'Refused an HTTPS request');
          // A refused request's body may not have been read: the connection closes after the reply rather than
          // waiting for the rest of it.
          res.setHeader('connection', 'close');
          fail(res, e.status, e.message);
        } else {
          deps.log.warn({ err: e instanceof Error ? e.message : String(e) }, 'HTTPS request failed');
          fail(res, 500, 'Internal error');
        }
      });
    },
  );
  server.on('tlsClientError', (e) => deps.log.debug({ err: e.message }, 'TLS handshake failed (HTTPS)'));
  server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    if (deps.upgrade) deps.upgrade(req, socket, head);
    else socket.destroy();
  });
  const port = await new Promise<number>((resolve, reject) => {
    server.once('error', reject);
    server.listen(at.port, at.host, () => {
      server.off('error', reject);
      const addr = server.address();
      resolve(typeof addr === 'object' && addr ? addr.port : at.port);
    });
  });
  return {
    port,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
