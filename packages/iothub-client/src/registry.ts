import { request } from 'node:https';
import { computeSignature, encodeUriComponentStrict, isObject } from '@kedge/protocol';
import type { Signer } from './client.js';
import { IotHubClientError, IotHubErrorCode } from './errors.js';

/** A module identity as the hub returns it, keys included. */
export interface ModuleIdentity {
  readonly deviceId: string;
  readonly moduleId: string;
  readonly generationId: string;
  readonly etag: string;
  /** Who manages it (`IotEdge` for identities an edge agent creates); empty when nobody claims it. */
  readonly managedBy: string;
  readonly primaryKey: string;
  readonly secondaryKey: string;
}

/** How to reach the hub's service API as an edge device. Exactly one of `sharedAccessKey` and `signer`. */
export interface DeviceRegistryOptions {
  readonly hostName: string;
  /** @default 443 */
  readonly port?: number;
  /** Connect to this address instead of resolving `hostName` (TLS still checks `hostName`). */
  readonly address?: string;
  readonly deviceId: string;
  /** The edge device's own key (base64). */
  readonly sharedAccessKey?: string;
  readonly signer?: Signer;
  readonly ca?: string;
  /** Deadline of each request. @default 30_000 */
  readonly timeoutMs?: number;
  /** @default 2021-04-12 */
  readonly apiVersion?: string;
}

const MAX_BODY = 1024 * 1024;
const TOKEN_SECONDS = 3600;

/**
 * What an edge device may do in the hub's registry with its own credentials (IoT Hub's "device scope"): list, read,
 * create and delete the module identities of that device — what edgeAgent does for the modules it runs. HTTPS only,
 * one deadline per request, bodies bounded.
 */
export class DeviceRegistryClient {
  readonly #o: DeviceRegistryOptions;

  constructor(options: DeviceRegistryOptions) {
    if ((options.sharedAccessKey === undefined) === (options.signer === undefined)) {
      throw new TypeError('DeviceRegistryClient needs exactly one of sharedAccessKey and signer');
    }
    this.#o = options;
  }

  /** Every module identity of the device. */
  async listModules(): Promise<ModuleIdentity[]> {
    const r = await this.#call('GET', `/devices/${this.#dev()}/modules`);
    if (!Array.isArray(r.body)) throw new IotHubClientError(IotHubErrorCode.BadResponse, 'Expected a list of modules');
    return r.body.map((m) => toIdentity(m));
  }

  /** One module identity, or `undefined` when it does not exist. */
  async getModule(moduleId: string): Promise<ModuleIdentity | undefined> {
    try {
      return toIdentity((await this.#call('GET', `/devices/${this.#dev()}/modules/${encodeURIComponent(moduleId)}`)).body);
    } catch (e) {
      if (e instanceof IotHubClientError && e.status === 404) return undefined;
      throw e;
    }
  }

  /** Creates a module identity with hub-generated keys; an existing one is returned as it is. */
  async createModule(moduleId: string, opts: { managedBy?: string } = {}): Promise<ModuleIdentity> {
    try {
      const body = { moduleId, deviceId: this.#o.deviceId, managedBy: opts.managedBy ?? '', authentication: { type: 'sas', symmetricKey: { primaryKey: '', secondaryKey: '' } } };
      return toIdentity((await this.#call('PUT', `/devices/${this.#dev()}/modules/${encodeURIComponent(moduleId)}`, body)).body);
    } catch (e) {
      if (!(e instanceof IotHubClientError && e.status === 409)) throw e;
      const existing = await this.getModule(moduleId);
      if (!existing) throw e;
      return existing;
    }
  }

  /** Deletes a module identity; `false` when it did not exist. */
  async deleteModule(moduleId: string): Promise<boolean> {
    try {
      await this.#call('DELETE', `/devices/${this.#dev()}/modules/${encodeURIComponent(moduleId)}`, undefined, { 'If-Match': '"*"' });
      return true;
    } catch (e) {
      if (e instanceof IotHubClientError && e.status === 404) return false;
      throw e;
    }
  }

  #dev(): string {
    return encodeURIComponent(this.#o.deviceId);
  }

  async #authorization(signal: AbortSignal): Promise<string> {
    const se = Math.floor(Date.now() / 1000) + TOKEN_SECONDS;
    const sr = encodeUriComponentStrict(`${this.#o.hostName}/devices/${this.#o.deviceId}`);
    const sig = this.#o.sharedAccessKey !== undefined ? computeSignature(this.#o.sharedAccessKey, sr, se) : await (this.#o.signer as Signer)(`${sr}\n${se}`, signal);
    return `SharedAccessSignature sr=${sr}&sig=${encodeURIComponent(sig)}&se=${se}`;
  }

  async #call(method: string, path: string, body?: unknown, headers: Record<string, string> = {}): Promise<{ status: number; body: unknown }> {
    const timeoutMs = this.#o.timeoutMs ?? 30_000;
    const signal = AbortSignal.timeout(timeoutMs);
    const auth = await this.#authorization(signal);
    const text = body === undefined ? undefined : JSON.stringify(body);
    const url = `${path}?api-version=${this.#o.apiVersion ?? '2021-04-12'}`;
    const res = await new Promise<{ status: number; text: string }>((resolve, reject) => {
      const req = request(
        {
          host: this.#o.address ?? this.#o.hostName,
          servername: /^[\d.]+$|:/.test(this.#o.hostName) ? undefined : this.#o.hostName,
          port: this.#o.port ?? 443,
          method,
          path: url,
          ...(this.#o.ca !== undefined ? { ca: this.#o.ca } : {}),
          headers: {
            Authorization: auth,
            Accept: 'application/json',
            ...(text !== undefined ? { 'Content-Type': 'application/json; charset=utf-8', 'Content-Length': Buffer.byteLength(text) } : {}),
            ...headers,
          },
          signal,
        },
        (r) => {
          const chunks: Buffer[] = [];
          let size = 0;
          r.on('data', (c: Buffer) => {
            size += c.length;
            if (size > MAX_BODY) {
              r.destroy(new IotHubClientError(IotHubErrorCode.BadResponse, `Response over ${MAX_BODY} bytes`));
              return;
            }
            chunks.push(c);
          });
          r.on('error', reject);
          r.on('end', () => resolve({ status: r.statusCode ?? 0, text: Buffer.concat(chunks).toString('utf8') }));
        },
      );
      req.on('error', reject);
      req.end(text);
    }).catch((e: unknown) => {
      if (e instanceof IotHubClientError) throw e;
      if (signal.aborted) throw new IotHubClientError(IotHubErrorCode.Timeout, `${method} ${path}: no answer within ${timeoutMs} ms`, { cause: e });
      throw new IotHubClientError(IotHubErrorCode.Network, `${method} ${path}: ${(e as Error).message}`, { cause: e });
    });
    let parsed: unknown;
    if (res.text !== '') {
      try {
        parsed = JSON.parse(res.text);
      } catch (e) {
        if (res.status < 300) throw new IotHubClientError(IotHubErrorCode.BadResponse, `${method} ${path}: the answer is not JSON`, { cause: e });
      }
    }
    if (res.status >= 200 && res.status < 300) return { status: res.status, body: parsed };
    // IoT Hub's error body: {"Message":"ErrorCode:DeviceNotFound;…"}.
    const message = isObject(parsed) && typeof parsed['Message'] === 'string' ? parsed['Message'] : isObject(parsed) && typeof parsed['message'] === 'string' ? parsed['message'] : '';
    const iotHubCode = /ErrorCode:([A-Za-z]+)/.exec(message)?.[1];
    const code = res.status === 401 || res.status === 403 ? IotHubErrorCode.Unauthorized : IotHubErrorCode.Rejected;
    throw new IotHubClientError(code, `${method} ${path}: ${res.status}${message ? ` ${message}` : ''}`, { status: res.status, ...(iotHubCode ? { iotHubCode } : {}) });
  }
}

function toIdentity(v: unknown): ModuleIdentity {
  if (!isObject(v) || typeof v['moduleId'] !== 'string' || typeof v['deviceId'] !== 'string') {
    throw new IotHubClientError(IotHubErrorCode.BadResponse, 'Not a module identity');
  }
  const auth = isObject(v['authentication']) ? v['authentication'] : {};
  const keys = isObject(auth['symmetricKey']) ? auth['symmetricKey'] : {};
  const s = (x: unknown) => (typeof x === 'string' ? x : '');
  return {
    deviceId: v['deviceId'],
    moduleId: v['moduleId'],
    generationId: s(v['generationId']),
    etag: s(v['etag']),
    managedBy: s(v['managedBy']),
    primaryKey: s(keys['primaryKey']),
    secondaryKey: s(keys['secondaryKey']),
  };
}
