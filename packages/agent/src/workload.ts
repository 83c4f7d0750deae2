import { createHash, createHmac, timingSafeEqual } from 'node:crypto';
import { chmod, rm } from 'node:fs/promises';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Logger } from 'pino';
import { issueServerCertificate, type CertificateAuthority } from '@kedge/protocol';
import type { EdgeHubReportStore } from './edgehub-report.js';
import type { RouteSpec } from '@kedge/manifest';

/**
 * What the workload API knows of one module. `secret` is what the agent puts in the module's
 * `IOTEDGE_MODULEGENERATIONID` (from the module's own Secret): every SDK sends it in the path of each workload call
 * (`/modules/{id}/genid/{secret}/sign`), so it authenticates the caller without any change to the SDKs.
 */
export interface WorkloadModule {
  /** The module identity's symmetric key (base64), which signs its SAS tokens. Never leaves the agent. */
  readonly key: string;
  /** The module's workload credential: ≥ 128 random bits, unique per module, unknown to every other module. */
  readonly secret: string;
  /** DNS names / IPs the module may get a server certificate for (the edge hub: the names modules dial). @default none */
  readonly serverNames?: readonly string[];
}

/** Where the workload API looks modules up (the agent's module identities). Ids as in IoT Edge: `$edgeHub`, `filter`. */
export interface WorkloadModules {
  get(moduleId: string): WorkloadModule | undefined | Promise<WorkloadModule | undefined>;
}

/** Where the API listens: loopback/cluster TCP, or a unix socket (the socket file is made owner-only). */
export type WorkloadListen = { readonly host: string; readonly port: number } | { readonly path: string };

export interface WorkloadApiOptions {
  readonly modules: WorkloadModules;
  /** The device CA that issues server certificates (an intermediate under a fleet CA, or self-signed per device). */
  readonly ca: CertificateAuthority;
  /** PEM certificates modules must trust: the device CA and, for an intermediate, its issuers. */
  readonly trustBundle: string;
  /** The device's namespace: where route reports are filed. */
  readonly namespace: string;
  /** Receives what the edge hub says it loaded (`PUT /modules/$edgeHub/genid/{g}/routes`). @default reports refused */
  readonly edgeHubReports?: EdgeHubReportStore;
  readonly log: Logger;
  /** @default Date.now */
  readonly now?: () => number;
}

/** A workload request refused: HTTP status and the `{"message"}` body. */
class WorkloadError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
    this.name = 'WorkloadError';
  }
}

/** Largest accepted request body; a route report is the largest legitimate one. */
const MAX_BODY = 256 * 1024;
/** Largest `data` a module may have signed (a SAS string-to-sign is a few hundred bytes). */
const MAX_SIGN_BYTES = 4096;
const MAX_SERVER_CERT_MS = 90 * 24 * 3600 * 1000;
const MIN_SERVER_CERT_MS = 3600 * 1000;
const YEAR_MS = 365 * 24 * 3600 * 1000;
const API_VERSION = /^\d{4}-\d{2}-\d{2}$/;
const EDGE_HUB = '$edgeHub';

const json = (value: unknown): Record<string, unknown> => {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new WorkloadError(400, 'The request body must be a JSON object');
  return value as Record<string, unknown>;
};

function sameSecret(a: string, b: string): boolean {
  // Digests of equal length: the comparison time says nothing about either secret.
  return timingSafeEqual(createHash('sha256').update(a).digest(), createHash('sha256').update(b).digest());
}

/**
 * IoT Edge's workload API (iotedge-protocols §4.2), served by the agent for its device's modules, so that
 * `ModuleClient.fromEnvironment` of the Azure SDKs works unchanged: `GET /trust-bundle`, `POST
 * /modules/{m}/genid/{g}/sign`, `POST /modules/{m}/genid/{g}/certificate/server`; plus Kedge's
 * `PUT /modules/$edgeHub/genid/{g}/routes`, where the edge hub reports the routes it loaded (`RoutesApplied`).
 *
 * A module can act only as itself: `{g}` must be that module's workload secret ({@link WorkloadModule.secret}).
 * Every byte is hostile: bodies are bounded before parsing, slow requests time out, nothing from a request is
 * merged into an ordinary object, and a refused request changes nothing.
 */
export class WorkloadApi {
  readonly #opts: WorkloadApiOptions;
  readonly #server: http.Server;
  #uri = '';
  #socketPath: string | undefined;

  constructor(opts: WorkloadApiOptions) {
    this.#opts = opts;
    this.#server = http.createServer({ requestTimeout: 30_000, headersTimeout: 10_000, keepAliveTimeout: 5_000, maxHeaderSize: 16 * 1024 }, (req, res) => {
      this.#handle(req, res).catch((e: unknown) => {
        const err = e instanceof WorkloadError ? e : new WorkloadError(500, 'Internal error');
        if (!(e instanceof WorkloadError)) opts.log.error({ err: e }, 'Workload API request failed');
        if (res.headersSent) res.destroy();
        else {
          // A refused request may have left its body unread: the connection cannot carry another request.
          res.setHeader('Connection', 'close');
          this.#send(res, err.status, { message: err.message });
        }
      });
    });
  }

  /** `IOTEDGE_WORKLOADURI` for modules: `http://host:port/` or `unix:///path`. Set once {@link listen} resolved. */
  get uri(): string {
    return this.#uri;
  }

  async listen(at: WorkloadListen): Promise<string> {
    if ('path' in at) {
      await rm(at.path, { force: true });
      await new Promise<void>((resolve, reject) => this.#server.once('error', reject).listen(at.path, resolve));
      await chmod(at.path, 0o600);
      this.#socketPath = at.path;
      this.#uri = `unix://${at.path}`;
    } else {
      await new Promise<void>((resolve, reject) => this.#server.once('error', reject).listen(at.port, at.host, resolve));
      const { port } = this.#server.address() as AddressInfo;
      this.#uri = `http://${at.host.includes(':') ? `[${at.host}]` : at.host}:${port}/`;
    }
    return this.#uri;
  }

  async close(): Promise<void> {
    this.#server.closeAllConnections();
    await new Promise<void>((resolve) => this.#server.close(() => resolve()));
    if (this.#socketPath) await rm(this.#socketPath, { force: true });
  }

  async #handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://workload');
    const apiVersion = url.searchParams.get('api-version');
    if (apiVersion === null || !API_VERSION.test(apiVersion)) throw new WorkloadError(400, 'The api-version query parameter is missing or malformed');
    const parts = url.pathname.split('/').filter((p) => p !== '');
    const method = req.method ?? '';
    if (method === 'GET' && parts.length === 1 && (parts[0] === 'trust-bundle' || parts[0] === 'manifest-trust-bundle')) {
      req.resume();
      this.#send(res, 200, { certificate: this.#opts.trustBundle });
      return;
    }
    // /modules/{name}/genid/{genid}/<action...>
    if (parts.length < 5 || parts[0] !== 'modules' || parts[2] !== 'genid') throw new WorkloadError(404, 'Not found');
    const action = parts.slice(4).join('/');
    const moduleId = decode(parts[1] ?? '');
    const secret = decode(parts[3] ?? '');
    const route =
      method === 'POST' && action === 'sign' ? 'sign' : method === 'POST' && action === 'certificate/server' ? 'server' : method === 'PUT' && action === 'routes' ? 'routes' : undefined;
    if (!route) throw new WorkloadError(404, 'Not found');
    const body = json(await readJson(req));
    const mod = await this.#opts.modules.get(moduleId);
    if (!mod) throw new WorkloadError(404, `Module not found`);
    if (!sameSecret(secret, mod.secret)) {
      this.#opts.log.warn({ module: moduleId, action: route }, 'Workload request with a wrong module credential refused');
      throw new WorkloadError(403, 'The caller is not authorized for this module');
    }
    if (route === 'sign') this.#send(res, 200, this.#sign(mod, body));
    else if (route === 'server') this.#send(res, 201, this.#serverCertificate(moduleId, mod, body));
    else {
      this.#routesReport(moduleId, body);
      res.writeHead(204).end();
    }
  }

  #sign(mod: WorkloadModule, body: Record<string, unknown>): { digest: string } {
    const data = body['data'];
    if (typeof data !== 'string' || !/^[A-Za-z0-9+/]*={0,2}$/.test(data)) throw new WorkloadError(400, 'data must be base64');
    const bytes = Buffer.from(data, 'base64');
    if (bytes.length > MAX_SIGN_BYTES) throw new WorkloadError(400, `data must be at most ${MAX_SIGN_BYTES} bytes`);
    // keyId and algo are ignored, as aziot-edged does: only primary/HMACSHA256 exists.
    return { digest: createHmac('sha256', Buffer.from(mod.key, 'base64')).update(bytes).digest('base64') };
  }

  #serverCertificate(moduleId: string, mod: WorkloadModule, body: Record<string, unknown>): object {
    const commonName = body['commonName'];
    const names = mod.serverNames ?? [];
    if (typeof commonName !== 'string' || !names.some((n) => n.toLowerCase() === commonName.toLowerCase())) {
      throw new WorkloadError(403, `Module ${moduleId} may not get a server certificate for ${typeof commonName === 'string' ? commonName.slice(0, 253) : 'that name'}`);
    }
    const now = (this.#opts.now ?? Date.now)();
    const requested = typeof body['expiration'] === 'string' ? Date.parse(body['expiration']) : NaN;
    const lifetime = Math.min(MAX_SERVER_CERT_MS, Math.max(MIN_SERVER_CERT_MS, Number.isNaN(requested) ? MAX_SERVER_CERT_MS : requested - now));
    // The requested name first (the subject's CN), then every other name the module may be dialled as.
    const all = [commonName, ...names.filter((n) => n.toLowerCase() !== commonName.toLowerCase())];
    const issued = issueServerCertificate(this.#opts.ca, all, { years: lifetime / YEAR_MS, now });
    this.#opts.log.info({ module: moduleId, names: all }, 'Issued a server certificate');
    return { privateKey: { type: 'key', bytes: issued.key }, certificate: `${issued.cert.trim()}\n${this.#opts.trustBundle.trim()}\n`, expiration: new Date(now + lifetime).toISOString() };
  }

  #routesReport(moduleId: string, body: Record<string, unknown>): void {
    const store = this.#opts.edgeHubReports;
    if (moduleId !== EDGE_HUB || !store) throw new WorkloadError(403, 'Only the edge hub reports routes');
    const routes = parseRoutes(body['routes']);
    const error = body['error'];
    if (error !== undefined && typeof error !== 'string') throw new WorkloadError(400, 'error must be a string');
    const reportedAt = new Date((this.#opts.now ?? Date.now)()).toISOString();
    store.set(this.#opts.namespace, { routes, ...(error !== undefined ? { error: error.slice(0, 1000) } : {}), reportedAt });
  }

  #send(res: http.ServerResponse, status: number, body: unknown): void {
    const text = JSON.stringify(body);
    res.writeHead(status, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(text) }).end(text);
  }
}

function decode(segment: string): string {
  try {
    return decodeURIComponent(segment);
  } catch {
    throw new WorkloadError(400, 'Malformed path');
  }
}

/** The body as JSON, refused past {@link MAX_BODY} bytes before anything is parsed. */
function readJson(req: http.IncomingMessage): Promise<unknown> {
  const declared = Number(req.headers['content-length'] ?? 0);
  // Refused unread; the response closes the connection (see #handle's catch), so the body is never consumed.
  if (declared > MAX_BODY) return Promise.reject(new WorkloadError(413, 'Request body too large'));
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size > MAX_BODY) {
        req.removeAllListeners('data');
        req.pause();
        reject(new WorkloadError(413, 'Request body too large'));
        return;
      }
      chunks.push(c);
    });
    req.on('error', reject);
    req.on('end', () => {
      try {
        resolve(JSON.parse(Buffer.concat(chunks).toString('utf8')) as unknown);
      } catch {
        reject(new WorkloadError(400, 'The request body is not JSON'));
      }
    });
  });
}

const ROUTE_NAME = /^[A-Za-z0-9_-]{1,128}$/;
/** Names that would reach an object's prototype machinery if ever copied into an ordinary object. */
const RESERVED: ReadonlySet<string> = new Set(['__proto__', 'constructor', 'prototype']);

/** `{name: {route, priority?, timeToLiveSecs?}}` into a null-prototype record; anything else is refused whole. */
function parseRoutes(value: unknown): Record<string, RouteSpec> {
  const input = json(value);
  const out = Object.create(null) as Record<string, RouteSpec>;
  const names = Object.keys(input);
  if (names.length > 1000) throw new WorkloadError(400, 'At most 1000 routes');
  for (const name of names) {
    if (!ROUTE_NAME.test(name) || RESERVED.has(name)) throw new WorkloadError(400, `Route name ${JSON.stringify(name.slice(0, 130))} is not allowed`);
    const r = json(input[name]);
    const route = r['route'];
    const priority = r['priority'];
    const ttl = r['timeToLiveSecs'];
    if (typeof route !== 'string' || route.length === 0 || route.length > 4096) throw new WorkloadError(400, `Route ${name}: route must be a non-empty string`);
    if (priority !== undefined && (!Number.isInteger(priority) || (priority as number) < 0 || (priority as number) > 9)) throw new WorkloadError(400, `Route ${name}: priority must be 0–9`);
    if (ttl !== undefined && (!Number.isInteger(ttl) || (ttl as number) < 0)) throw new WorkloadError(400, `Route ${name}: timeToLiveSecs must be a non-negative integer`);
    out[name] = { route, ...(priority !== undefined ? { priority: priority as number } : {}), ...(ttl !== undefined ? { timeToLiveSecs: ttl as number } : {}) };
  }
  return out;
}
