import { request } from 'node:https';
import type { IncomingMessage } from 'node:http';
import { KedgeError } from '@kedge/contracts';
import { createSasToken, parseConnectionString } from '@kedge/protocol';

/** Options of {@link HubClient}. The connection string is a secret: it is never included in errors. */
export interface HubClientOptions {
  /** `HostName=…;SharedAccessKeyName=…;SharedAccessKey=…` */
  readonly connectionString: string;
  /** Extra CA (PEM) to trust, e.g. the hub's generated `ca.pem`. */
  readonly ca?: string;
  /** Service port. @default 443 */
  readonly port?: number;
  /** Address to connect to when `HostName` does not resolve to the hub (SNI and certificate checks still use `HostName`). */
  readonly address?: string;
  /** Per-request timeout. @default 60000 */
  readonly timeoutMs?: number;
}

/** A failed service call: `code` is the hub's `CLOUD_ERR_*` code (or `CLOUD_ERR_TRANSPORT`), `status` the HTTP status. */
export class HubClientError extends KedgeError {
  readonly status: number;
  constructor(code: string, message: string, status: number, options?: ErrorOptions) {
    super(code, message, options);
    this.name = 'HubClientError';
    this.status = status;
  }
}

/** One telemetry message as the hub serves it. */
export interface TelemetryMessage {
  readonly offset: number;
  readonly deviceId: string;
  readonly moduleId?: string;
  readonly enqueuedTime: string;
  readonly properties: Record<string, string>;
  readonly systemProperties: Record<string, string>;
  readonly body: unknown;
}

/** One page of query results: twins (`itemType` `twin`) or built objects (`raw`). */
export interface QueryPage {
  readonly items: unknown[];
  readonly itemType: string;
  /** Present when another page follows. */
  readonly continuation?: string;
}

type Json = unknown;
const API = 'api-version=2021-04-12';
const enc = encodeURIComponent;

/**
 * A small typed client of the hub's service API (what the `kedge` CLI uses). Each request is signed with a fresh
 * SAS token valid for one hour, as azure-iothub does.
 */
export class HubClient {
  readonly #host: string;
  readonly #keyName: string;
  readonly #key: string;
  readonly #opts: HubClientOptions;

  constructor(opts: HubClientOptions) {
    const cs = parseConnectionString(opts.connectionString);
    const host = cs.get('HostName');
    const keyName = cs.get('SharedAccessKeyName');
    const key = cs.get('SharedAccessKey');
    if (!host || !keyName || !key) throw new HubClientError('CLOUD_ERR_BAD_REQUEST', 'The connection string needs HostName, SharedAccessKeyName and SharedAccessKey', 0);
    this.#host = host;
    this.#keyName = keyName;
    this.#key = key;
    this.#opts = opts;
  }

  get hostName(): string {
    return this.#host;
  }

  #token(): string {
    return createSasToken({ audience: this.#host, key: this.#key, keyName: this.#keyName, expirySeconds: Math.floor(Date.now() / 1000) + 3600 });
  }

  #open(method: string, path: string, headers: Record<string, string>, body?: string): Promise<IncomingMessage> {
    return new Promise((resolve, reject) => {
      const req = request({
        host: this.#opts.address ?? this.#host,
        servername: /^[\d.]+$|:/.test(this.#host) ? undefined : this.#host,
        port: this.#opts.port ?? 443,
        method,
        path,
        headers: { authorization: this.#token(), 'user-agent': 'kedge-cli', ...(body === undefined ? {} : { 'content-type': 'application/json; charset=utf-8' }), ...headers },
        ...(this.#opts.ca ? { ca: this.#opts.ca } : {}),
        timeout: this.#opts.timeoutMs ?? 60_000,
      });
      req.on('response', resolve);
      req.on('timeout', () => req.destroy(new Error('request timed out')));
      req.on('error', (e) => reject(new HubClientError('CLOUD_ERR_TRANSPORT', `Cannot reach the hub at ${this.#host}: ${e.message}`, 0, { cause: e })));
      req.end(body);
    });
  }

  async #call(method: string, path: string, body?: Json, headers: Record<string, string> = {}): Promise<Json> {
    return (await this.#exchange(method, path, body, headers)).body;
  }

  async #exchange(method: string, path: string, body?: Json, headers: Record<string, string> = {}): Promise<{ body: Json; headers: IncomingMessage['headers'] }> {
    const sep = path.includes('?') ? '&' : '?';
    const res = await this.#open(method, `${path}${sep}${API}`, headers, body === undefined ? undefined : JSON.stringify(body));
    const chunks: Buffer[] = [];
    for await (const c of res) chunks.push(c as Buffer);
    const text = Buffer.concat(chunks).toString('utf8');
    const status = res.statusCode ?? 0;
    let parsed: Json = undefined;
    if (text !== '') {
      try {
        parsed = JSON.parse(text) as Json;
      } catch {
        parsed = text;
      }
    }
    if (status >= 400) {
      const b = (parsed ?? {}) as { code?: string; message?: string; Message?: string };
      throw new HubClientError(b.code ?? `HTTP_${status}`, b.message ?? b.Message ?? `HTTP ${status}`, status);
    }
    return { body: parsed, headers: res.headers };
  }

  /** Drops every cloud-to-device message queued for `deviceId` (`DELETE /devices/{id}/commands`); returns how many. */
  async purgeC2dQueue(deviceId: string): Promise<number> {
    const r = (await this.#call('DELETE', `/devices/${encodeURIComponent(deviceId)}/commands`)) as { totalMessagesPurged?: unknown } | undefined;
    return typeof r?.totalMessagesPurged === 'number' ? r.totalMessagesPurged : 0;
  }

  /** One page of an IoT Hub query (`POST /devices/query`); pass `continuation` from the previous page. */
  async queryPage(query: string, opts: { pageSize?: number; continuation?: string } = {}): Promise<QueryPage> {
    const h: Record<string, string> = {};
    if (opts.pageSize !== undefined) h['x-ms-max-item-count'] = String(opts.pageSize);
    if (opts.continuation !== undefined) h['x-ms-continuation'] = opts.continuation;
    const r = await this.#exchange('POST', '/devices/query', { query }, h);
    const cont = r.headers['x-ms-continuation'];
    const type = r.headers['x-ms-item-type'];
    return { items: Array.isArray(r.body) ? (r.body as Json[]) : [], itemType: typeof type === 'string' ? type : 'raw', ...(typeof cont === 'string' && cont !== '' ? { continuation: cont } : {}) };
  }
  /** Every page of a query, at most `maxItems` items (default 100,000). */
  async query(query: string, opts: { pageSize?: number; maxItems?: number } = {}): Promise<{ items: Json[]; itemType: string }> {
    const items: Json[] = [];
    let page = await this.queryPage(query, opts);
    const max = opts.maxItems ?? 100_000;
    items.push(...page.items);
    while (page.continuation !== undefined && items.length < max) {
      page = await this.queryPage(query, { ...opts, continuation: page.continuation });
      items.push(...page.items);
    }
    return { items: items.slice(0, max), itemType: page.itemType };
  }
  registryStatistics(): Promise<{ totalDeviceCount: number; enabledDeviceCount: number; disabledDeviceCount: number }> {
    return this.#call('GET', '/statistics/devices') as Promise<{ totalDeviceCount: number; enabledDeviceCount: number; disabledDeviceCount: number }>;
  }
  serviceStatistics(): Promise<{ connectedDeviceCount: number }> {
    return this.#call('GET', '/statistics/service') as Promise<{ connectedDeviceCount: number }>;
  }

  /** The Event Hubs-compatible endpoint (`GET /kedge/eventhubs`), with this policy's Event Hubs connection string. */
  eventHubs(): Promise<{ name: string; endpoint: string; partitionCount: number; partitionIds: string[]; consumerGroups: string[]; connectionString?: string }> {
    return this.#call('GET', '/kedge/eventhubs') as Promise<{ name: string; endpoint: string; partitionCount: number; partitionIds: string[]; consumerGroups: string[]; connectionString?: string }>;
  }

  listDevices(): Promise<Json[]> {
    return this.#call('GET', '/devices') as Promise<Json[]>;
  }
  getDevice(deviceId: string): Promise<Json> {
    return this.#call('GET', `/devices/${enc(deviceId)}`);
  }
  createDevice(deviceId: string, opts: { edge?: boolean } = {}): Promise<Json> {
    return this.#call('PUT', `/devices/${enc(deviceId)}`, { deviceId, capabilities: { iotEdge: opts.edge === true }, authentication: { type: 'sas' } });
  }
  deleteDevice(deviceId: string): Promise<Json> {
    return this.#call('DELETE', `/devices/${enc(deviceId)}`, undefined, { 'if-match': '*' });
  }
  listModules(deviceId: string): Promise<Json[]> {
    return this.#call('GET', `/devices/${enc(deviceId)}/modules`) as Promise<Json[]>;
  }
  getModule(deviceId: string, moduleId: string): Promise<Json> {
    return this.#call('GET', `/devices/${enc(deviceId)}/modules/${enc(moduleId)}`);
  }
  createModule(deviceId: string, moduleId: string): Promise<Json> {
    return this.#call('PUT', `/devices/${enc(deviceId)}/modules/${enc(moduleId)}`, { deviceId, moduleId, authentication: { type: 'sas' } });
  }
  deleteModule(deviceId: string, moduleId: string): Promise<Json> {
    return this.#call('DELETE', `/devices/${enc(deviceId)}/modules/${enc(moduleId)}`, undefined, { 'if-match': '*' });
  }
  getTwin(deviceId: string, moduleId?: string): Promise<Json> {
    return this.#call('GET', `/twins/${enc(deviceId)}${moduleId ? `/modules/${enc(moduleId)}` : ''}`);
  }
  /** PATCH `{tags, properties: {desired}}` (merge; `null` deletes). */
  updateTwin(deviceId: string, moduleId: string | undefined, patch: Json): Promise<Json> {
    return this.#call('PATCH', `/twins/${enc(deviceId)}${moduleId ? `/modules/${enc(moduleId)}` : ''}`, patch, { 'if-match': '*' });
  }
  applyContent(deviceId: string, manifest: Json): Promise<Json> {
    return this.#call('POST', `/devices/${enc(deviceId)}/applyConfigurationContent`, manifest);
  }
  listConfigurations(): Promise<Json[]> {
    return this.#call('GET', '/configurations') as Promise<Json[]>;
  }
  getConfiguration(id: string): Promise<Json> {
    return this.#call('GET', `/configurations/${enc(id)}`);
  }
  createConfiguration(id: string, configuration: Json): Promise<Json> {
    return this.#call('PUT', `/configurations/${enc(id)}`, configuration);
  }
  deleteConfiguration(id: string): Promise<Json> {
    return this.#call('DELETE', `/configurations/${enc(id)}`, undefined, { 'if-match': '*' });
  }
  invoke(deviceId: string, moduleId: string | undefined, methodName: string, payload: Json, responseTimeoutInSeconds = 30): Promise<{ status: number; payload: Json }> {
    return this.#call('POST', `/twins/${enc(deviceId)}${moduleId ? `/modules/${enc(moduleId)}` : ''}/methods`, {
      methodName,
      payload: payload ?? null,
      responseTimeoutInSeconds,
      connectTimeoutInSeconds: 0,
    }) as Promise<{ status: number; payload: Json }>;
  }
  readTelemetry(opts: { from?: number; limit?: number; deviceId?: string } = {}): Promise<{ messages: TelemetryMessage[]; next: number }> {
    const q = new URLSearchParams();
    if (opts.from !== undefined) q.set('from', String(opts.from));
    if (opts.limit !== undefined) q.set('limit', String(opts.limit));
    if (opts.deviceId !== undefined) q.set('deviceId', opts.deviceId);
    return this.#call('GET', `/kedge/telemetry?${q.toString()}`) as Promise<{ messages: TelemetryMessage[]; next: number }>;
  }

  /**
   * Streams telemetry (SSE) from `from` (or after `consumer`'s committed offset, or from the end with `'end'`).
   * Ends when `signal` aborts or the hub closes the stream.
   */
  async *monitor(opts: { from?: number | 'end'; deviceId?: string; consumer?: string; signal?: AbortSignal } = {}): AsyncGenerator<TelemetryMessage> {
    const q = new URLSearchParams();
    if (opts.from !== undefined) q.set('from', String(opts.from));
    if (opts.deviceId !== undefined) q.set('deviceId', opts.deviceId);
    if (opts.consumer !== undefined) q.set('consumer', opts.consumer);
    const res = await this.#open('GET', `/kedge/telemetry/stream?${q.toString()}&${API}`, { accept: 'text/event-stream' });
    if ((res.statusCode ?? 0) >= 400) {
      const chunks: Buffer[] = [];
      for await (const c of res) chunks.push(c as Buffer);
      const b = JSON.parse(Buffer.concat(chunks).toString('utf8') || '{}') as { code?: string; message?: string };
      throw new HubClientError(b.code ?? 'HTTP_ERROR', b.message ?? `HTTP ${res.statusCode ?? 0}`, res.statusCode ?? 0);
    }
    const abort = (): void => {
      res.destroy();
    };
    opts.signal?.addEventListener('abort', abort, { once: true });
    let buf = '';
    try {
      for await (const chunk of res) {
        buf += (chunk as Buffer).toString('utf8');
        let idx: number;
        while ((idx = buf.indexOf('\n\n')) >= 0) {
          const block = buf.slice(0, idx);
          buf = buf.slice(idx + 2);
          const data = block
            .split('\n')
            .filter((l) => l.startsWith('data: '))
            .map((l) => l.slice(6))
            .join('\n');
          if (data !== '') yield JSON.parse(data) as TelemetryMessage;
        }
      }
    } catch (e) {
      if (!opts.signal?.aborted) throw e;
    } finally {
      opts.signal?.removeEventListener('abort', abort);
      res.destroy();
    }
  }
}
