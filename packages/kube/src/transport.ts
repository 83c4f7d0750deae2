import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import { isAbsolute, join } from 'node:path';
import type { ClusterConfig } from './config.js';
import { KubeApiError, KubeErrorCode, StatusReason } from './errors.js';

/** What discovery says about a kind. */
export interface ResourceInfo {
  readonly plural: string;
  readonly namespaced: boolean;
}

export type Query = Readonly<Record<string, string | undefined>>;

export interface RequestOptions {
  readonly query?: Query;
  /** Sent as `JSON.stringify(body)`. */
  readonly body?: unknown;
  /** @default application/json */
  readonly contentType?: string;
  /** @default application/json */
  readonly accept?: string;
  readonly timeoutMs: number;
  readonly signal?: AbortSignal;
  /** `text` returns the body as a string (e.g. `pods/log`), not parsed JSON. @default json */
  readonly responseType?: 'json' | 'text';
}

/** Receives each watch event. A throw ends the watch: {@link WatchLike.watch} rejects with it. */
export type WatchEventHandler = (type: string, object: unknown) => void;

/** A streaming watch: what an informer needs of the transport. Tests wrap it to rewind or break watches. */
export interface WatchLike {
  /**
   * `GET path?watch=true&…`, calling `onEvent` for every event line. Resolves when the apiserver ends the stream
   * (its `timeoutSeconds`), rejects on an HTTP error status, a broken connection, an idle connection, a malformed
   * event, a throwing handler, or when `signal` aborts.
   */
  watch(path: string, query: Query, onEvent: WatchEventHandler, signal: AbortSignal): Promise<void>;
}

/**
 * A non-2xx answer. Not a {@link KubeApiError} yet: callers convert it with `toKubeApiError(e, context)`, which adds
 * what the request was about.
 */
export class HttpStatusError extends Error {
  constructor(
    readonly statusCode: number,
    readonly body: string,
    readonly headers: Readonly<Record<string, string | string[] | undefined>>,
  ) {
    super(`HTTP ${statusCode}`);
    this.name = 'HttpStatusError';
  }
}

interface Credential {
  readonly token?: string;
  readonly cert?: string;
  readonly key?: string;
  /** Epoch ms after which it must be fetched again. */
  readonly expiresAt: number;
}

const TOKEN_FILE_REFRESH_MS = 60_000;
const EXEC_TIMEOUT_MS = 60_000;

const transports = new WeakMap<ClusterConfig, KubeTransport>();

/**
 * HTTP(S) to one apiserver with Node's own `http`/`https` (keep-alive agent, TLS from the {@link ClusterConfig}),
 * bearer tokens from a string, a rotating file or an exec plugin (retried once on 401 with a fresh one), JSON in
 * and out, streaming watches and a discovery cache. Plain JSON throughout: no model classes, so every field the
 * apiserver knows reaches it (server-side apply must never silently drop a field) and timestamps stay strings.
 */
export class KubeTransport implements WatchLike {
  readonly config: ClusterConfig;
  readonly #base: URL;
  readonly #module: typeof http | typeof https;
  readonly #discovery = new Map<string, Promise<ReadonlyMap<string, ResourceInfo>>>();
  #agent: http.Agent;
  #agentCert: string | undefined;
  #credential: Credential | undefined;
  #pendingCredential: Promise<Credential> | undefined;

  constructor(config: ClusterConfig) {
    this.config = config;
    this.#base = new URL(config.server);
    this.#module = this.#base.protocol === 'http:' ? http : https;
    this.#agentCert = config.cert;
    this.#agent = this.#makeAgent(config.cert, config.key);
  }

  /** The transport shared by every client and informer made from `config`. */
  static for(config: ClusterConfig): KubeTransport {
    let t = transports.get(config);
    if (!t) {
      t = new KubeTransport(config);
      transports.set(config, t);
    }
    return t;
  }

  /** Closes idle and open connections (open watches fail). */
  close(): void {
    this.#agent.destroy();
  }

  /** Sends one request; returns the parsed JSON body (`undefined` when empty) or throws (see {@link HttpStatusError}). */
  async request(method: string, path: string, opts: RequestOptions): Promise<unknown> {
    const signal = opts.signal ? AbortSignal.any([opts.signal, AbortSignal.timeout(opts.timeoutMs)]) : AbortSignal.timeout(opts.timeoutMs);
    for (let attempt = 0; ; attempt++) {
      const cred = await this.#currentCredential();
      const body = opts.body === undefined ? undefined : JSON.stringify(opts.body);
      const res = await new Promise<{ status: number; text: string; headers: http.IncomingHttpHeaders }>((resolve, reject) => {
        const req = this.#module.request(this.#url(path, opts.query), {
          method,
          agent: this.#agent,
          headers: {
            ...this.#headers(cred),
            ...(opts.accept ? { Accept: opts.accept } : {}),
            ...(body !== undefined ? { 'Content-Type': opts.contentType ?? 'application/json', 'Content-Length': Buffer.byteLength(body) } : {}),
          },
          signal,
        });
        req.on('error', reject);
        req.on('response', (r) => {
          readText(r).then((text) => resolve({ status: r.statusCode ?? 0, text, headers: r.headers }), reject);
        });
        req.end(body);
      });
      if (res.status === 401 && attempt === 0 && this.#refreshable()) {
        this.#credential = undefined;
        continue;
      }
      if (res.status < 200 || res.status > 299) throw new HttpStatusError(res.status, res.text, res.headers);
      if (opts.responseType === 'text') return res.text;
      if (res.text === '') return undefined;
      try {
        return JSON.parse(res.text) as unknown;
      } catch {
        throw new KubeApiError({
          code: KubeErrorCode.Unknown,
          status: res.status,
          reason: StatusReason.Unknown,
          message: `${method} ${path}: the response is not JSON: ${res.text.slice(0, 200)}`,
        });
      }
    }
  }

  async watch(path: string, query: Query, onEvent: WatchEventHandler, signal: AbortSignal): Promise<void> {
    const cred = await this.#currentCredential();
    // No event, bookmark or byte for this long: the apiserver should have ended the watch at `timeoutSeconds`.
    const timeoutSeconds = Number(query['timeoutSeconds'] ?? 0);
    const idleMs = timeoutSeconds > 0 ? (timeoutSeconds + 60) * 1000 : 0;
    await new Promise<void>((resolve, reject) => {
      let settled = false;
      const settle = (err?: Error): void => {
        if (settled) return;
        settled = true;
        if (err === undefined) resolve();
        else {
          req.destroy();
          reject(err);
        }
      };
      const req = this.#module.request(this.#url(path, { ...query, watch: 'true' }), { method: 'GET', agent: this.#agent, headers: this.#headers(cred), signal });
      if (idleMs > 0) req.setTimeout(idleMs, () => settle(Object.assign(new Error(`watch idle for ${idleMs} ms`), { code: 'ETIMEDOUT' })));
      req.on('error', (e) => settle(e));
      req.on('response', (res) => {
        if (res.statusCode !== 200) {
          readText(res).then((text) => {
            if (res.statusCode === 401 && this.#refreshable()) this.#credential = undefined;
            settle(new HttpStatusError(res.statusCode ?? 0, text, res.headers));
          }, settle);
          return;
        }
        res.setEncoding('utf8');
        let buffered = '';
        res.on('data', (chunk: string) => {
          buffered += chunk;
          for (let nl = buffered.indexOf('\n'); nl >= 0 && !settled; nl = buffered.indexOf('\n')) {
            const line = buffered.slice(0, nl);
            buffered = buffered.slice(nl + 1);
            if (line.trim() === '') continue;
            let ev: { type?: unknown; object?: unknown };
            try {
              ev = JSON.parse(line) as { type?: unknown; object?: unknown };
            } catch {
              settle(new Error(`malformed watch event: ${line.slice(0, 200)}`));
              return;
            }
            if (typeof ev.type !== 'string') {
              settle(new Error(`watch event without a type: ${line.slice(0, 200)}`));
              return;
            }
            try {
              onEvent(ev.type, ev.object);
            } catch (e) {
              settle(e instanceof Error ? e : new Error(`watch event handler threw ${JSON.stringify(e)}`));
              return;
            }
          }
        });
        res.on('error', (e) => settle(e));
        // A reset connection ends the response incomplete; only a complete one is the server ending the watch.
        res.on('close', () =>
          settle(res.complete ? undefined : Object.assign(new Error('watch connection closed mid-stream'), { code: 'ECONNRESET' })),
        );
      });
      req.end();
    });
  }

  /** Discovery lookup, cached per apiVersion. A kind the server does not serve is `NoKindMatch`. */
  async resourceInfo(apiVersion: string, kind: string): Promise<ResourceInfo> {
    const cached = this.#discovery.get(apiVersion);
    if (cached) {
      const hit = (await cached.catch(() => undefined))?.get(kind);
      if (hit) return hit;
    }
    // Not known yet, or a kind that appeared since (a CRD installed later): ask again.
    const fresh = this.#discover(apiVersion);
    this.#discovery.set(apiVersion, fresh);
    fresh.catch(() => {
      if (this.#discovery.get(apiVersion) === fresh) this.#discovery.delete(apiVersion);
    });
    const hit = (await fresh).get(kind);
    if (hit) return hit;
    throw noKindMatch(apiVersion, kind);
  }

  /**
   * `/api[s]/<gv>/[namespaces/<ns>/]<plural>[/<name>[/<sub>]]`. A namespaced kind without a namespace gives the
   * all-namespaces collection; a namespace on a cluster-scoped kind is ignored.
   */
  async path(apiVersion: string, kind: string, namespace?: string, name?: string, subresource?: string, signal?: AbortSignal): Promise<string> {
    // Discovery is shared by every caller: one caller's abort stops its own wait, never the shared lookup.
    const info = await abortable(this.resourceInfo(apiVersion, kind), signal);
    const parts = [apiVersion.includes('/') ? '/apis' : '/api', apiVersion];
    if (info.namespaced && namespace) parts.push('namespaces', encodeURIComponent(namespace));
    else if (info.namespaced && name !== undefined) {
      throw new TypeError(`${kind} ${name} is namespaced but no namespace was given`);
    }
    parts.push(info.plural);
    if (name !== undefined) parts.push(encodeURIComponent(name));
    if (subresource !== undefined) parts.push(subresource);
    return parts.join('/');
  }

  async #discover(apiVersion: string): Promise<ReadonlyMap<string, ResourceInfo>> {
    let list: { resources?: { name: string; kind: string; namespaced: boolean }[] };
    try {
      list = (await this.request('GET', `${apiVersion.includes('/') ? '/apis' : '/api'}/${apiVersion}`, { timeoutMs: 30_000 })) as typeof list;
    } catch (e) {
      // A 404 here means the group/version is not served at all: the CRD is missing, not an object.
      if (e instanceof HttpStatusError && e.statusCode === 404) return new Map();
      throw e;
    }
    const out = new Map<string, ResourceInfo>();
    for (const r of list.resources ?? []) {
      if (!r.name.includes('/')) out.set(r.kind, { plural: r.name, namespaced: r.namespaced });
    }
    return out;
  }

  #url(path: string, query: Query | undefined): URL {
    const url = new URL(this.#base.href);
    url.pathname = `${url.pathname.replace(/\/+$/, '')}${path}`;
    for (const [k, v] of Object.entries(query ?? {})) if (v !== undefined) url.searchParams.set(k, v);
    return url;
  }

  #headers(cred: Credential): Record<string, string | string[]> {
    const h: Record<string, string | string[]> = { Accept: 'application/json', 'User-Agent': 'kedge' };
    if (cred.token) h['Authorization'] = `Bearer ${cred.token}`;
    const imp = this.config.impersonate;
    if (imp) {
      h['Impersonate-User'] = imp.user;
      if (imp.groups?.length) h['Impersonate-Group'] = [...imp.groups];
    }
    return h;
  }

  #makeAgent(cert: string | undefined, key: string | undefined): http.Agent {
    const c = this.config;
    if (this.#module === http) return new http.Agent({ keepAlive: true });
    return new https.Agent({
      keepAlive: true,
      ...(c.ca !== undefined ? { ca: c.ca } : {}),
      ...(cert !== undefined && key !== undefined ? { cert, key } : {}),
      rejectUnauthorized: !c.insecureSkipTlsVerify,
      ...(c.tlsServerName ? { servername: c.tlsServerName } : {}),
    });
  }

  #refreshable(): boolean {
    return this.config.exec !== undefined || this.config.tokenFile !== undefined;
  }

  async #currentCredential(): Promise<Credential> {
    const now = Date.now();
    if (this.#credential && this.#credential.expiresAt > now) return this.#credential;
    this.#pendingCredential ??= this.#fetchCredential().finally(() => {
      this.#pendingCredential = undefined;
    });
    const cred = await this.#pendingCredential;
    this.#credential = cred;
    if (cred.cert !== undefined && cred.key !== undefined && cred.cert !== this.#agentCert) {
      // An exec plugin issued a new client certificate: new connections must present it.
      const old = this.#agent;
      this.#agent = this.#makeAgent(cred.cert, cred.key);
      this.#agentCert = cred.cert;
      old.destroy();
    }
    return cred;
  }

  async #fetchCredential(): Promise<Credential> {
    const c = this.config;
    if (c.exec) return runExecPlugin(c);
    if (c.tokenFile) {
      let token: string;
      try {
        token = readFileSync(c.tokenFile, 'utf8').trim();
      } catch (e) {
        throw new Error(`${c.source}: cannot read token file ${c.tokenFile} (${(e as Error).message})`);
      }
      return { token, expiresAt: Date.now() + TOKEN_FILE_REFRESH_MS };
    }
    return { ...(c.token ? { token: c.token } : {}), expiresAt: Number.POSITIVE_INFINITY };
  }
}

/** `p`, or a rejection with the signal's reason as soon as `signal` aborts (`p` itself runs on). */
function abortable<T>(p: Promise<T>, signal: AbortSignal | undefined): Promise<T> {
  if (!signal) return p;
  // `p` runs on after an abort; its outcome must never become an unhandled rejection.
  p.catch(() => undefined);
  if (signal.aborted) return Promise.reject(abortReason(signal));
  return new Promise<T>((resolve, reject) => {
    const onAbort = (): void => reject(abortReason(signal));
    signal.addEventListener('abort', onAbort, { once: true });
    p.then(
      (v) => {
        signal.removeEventListener('abort', onAbort);
        resolve(v);
      },
      (e: unknown) => {
        signal.removeEventListener('abort', onAbort);
        reject(e instanceof Error ? e : new Error(String(e)));
      },
    );
  });
}

function abortReason(signal: AbortSignal): Error {
  const r: unknown = signal.reason;
  return r instanceof Error ? r : new DOMException('The operation was aborted', 'AbortError');
}

/** The whole body of a response, as text. */
function readText(res: http.IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    res.on('data', (c: Buffer) => chunks.push(c));
    res.on('error', reject);
    res.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
  });
}

function noKindMatch(apiVersion: string, kind: string): KubeApiError {
  return new KubeApiError({
    code: KubeErrorCode.NoKindMatch,
    status: 404,
    reason: StatusReason.NoKindMatch,
    message: `The server does not serve kind ${kind} in ${apiVersion}`,
    verb: 'discover',
    apiVersion,
    kind,
  });
}

/** Runs a client.authentication.k8s.io exec plugin and reads its ExecCredential. */
async function runExecPlugin(c: ClusterConfig): Promise<Credential> {
  const exec = c.exec;
  if (!exec) throw new Error('no exec plugin configured');
  // kubectl: a command with a path separator is relative to the kubeconfig; a bare name is looked up on PATH.
  const command = exec.command.includes('/') && !isAbsolute(exec.command) ? join(exec.baseDir, exec.command) : exec.command;
  const info = {
    apiVersion: exec.apiVersion,
    kind: 'ExecCredential',
    spec: {
      interactive: false,
      ...(exec.provideClusterInfo
        ? {
            cluster: {
              server: c.server,
              ...(c.ca !== undefined ? { 'certificate-authority-data': Buffer.from(c.ca).toString('base64') } : {}),
              ...(c.insecureSkipTlsVerify ? { 'insecure-skip-tls-verify': true } : {}),
              ...(c.tlsServerName ? { 'tls-server-name': c.tlsServerName } : {}),
            },
          }
        : {}),
    },
  };
  const env = { ...process.env, ...Object.fromEntries(exec.env.map((e) => [e.name, e.value])), KUBERNETES_EXEC_INFO: JSON.stringify(info) };
  const stdout = await new Promise<string>((resolve, reject) => {
    execFile(command, [...exec.args], { env, timeout: EXEC_TIMEOUT_MS, maxBuffer: 1 << 20 }, (err, out, errOut) => {
      if (err) {
        const why = err.killed ? `timed out after ${EXEC_TIMEOUT_MS / 1000} s` : typeof err.code === 'number' ? `exited with code ${err.code}` : err.message;
        reject(new Error(`${c.source}: exec credential plugin ${exec.command} failed (${why})${errOut.trim() ? `: ${errOut.trim().slice(0, 500)}` : ''}`));
      }
      else resolve(out);
    });
  });
  let parsed: { kind?: unknown; status?: { token?: unknown; clientCertificateData?: unknown; clientKeyData?: unknown; expirationTimestamp?: unknown } };
  try {
    parsed = JSON.parse(stdout) as typeof parsed;
  } catch {
    throw new Error(`${c.source}: exec credential plugin ${exec.command} printed no JSON ExecCredential`);
  }
  const s = parsed.status;
  const str = (v: unknown): string | undefined => (typeof v === 'string' && v !== '' ? v : undefined);
  const token = str(s?.token);
  const cert = str(s?.clientCertificateData);
  const key = str(s?.clientKeyData);
  if (parsed.kind !== 'ExecCredential' || (!token && !(cert && key))) {
    throw new Error(`${c.source}: exec credential plugin ${exec.command} returned no status.token and no client certificate/key pair`);
  }
  const exp = str(s?.expirationTimestamp);
  // Refresh a little early so a request never goes out with a credential about to expire.
  const expiresAt = exp ? Date.parse(exp) - 10_000 : Number.POSITIVE_INFINITY;
  return { ...(token ? { token } : {}), ...(cert && key ? { cert, key } : {}), expiresAt: Number.isNaN(expiresAt) ? Number.POSITIVE_INFINITY : expiresAt };
}
