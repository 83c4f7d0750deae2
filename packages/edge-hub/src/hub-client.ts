import { request } from 'node:https';
import { createSasToken } from '@kedge/protocol';
import { z } from 'zod';
import { EdgeErrorCode, EdgeHubError } from './errors.js';

/** One identity of the edge device's scope: the edge device, its modules, or a child (leaf) device. */
export interface ScopeIdentity {
  readonly deviceId: string;
  /** Empty for devices. */
  readonly moduleId: string;
  readonly primaryKey: string;
  readonly secondaryKey: string;
  readonly enabled: boolean;
}

/** How the edge hub reaches the hub's REST API and signs as its `$edgeHub` module. */
export interface HubRestOptions {
  /** The hub's host name: the SAS audience host and the TLS name checked. */
  readonly hostName: string;
  /** Where to connect, when not `hostName` (an IP, in tests). */
  readonly address?: string;
  readonly port: number;
  /** PEM of the CA the hub's certificate chains to; the system store when absent. */
  readonly ca?: string;
  readonly deviceId: string;
  /** The `$edgeHub` module's key (base64). */
  readonly key: string;
  readonly timeoutMs: number;
}

/** The `$edgeHub` module's identity name. */
export const EDGE_HUB_MODULE = '$edgeHub';

const Auth = z.object({ symmetricKey: z.object({ primaryKey: z.string().nullish(), secondaryKey: z.string().nullish() }).nullish() }).nullish();
const ScopeReply = z.object({
  devices: z.array(z.object({ deviceId: z.string().min(1), status: z.string().nullish(), authentication: Auth })).nullish(),
  modules: z.array(z.object({ deviceId: z.string().min(1), moduleId: z.string().min(1), authentication: Auth })).nullish(),
  continuationLink: z.string().nullish(),
});

const MAX_REPLY_BYTES = 16 * 1024 * 1024;
const MAX_PAGES = 1000;

/**
 * The edge hub's client of the hub's REST API, authenticated as the `$edgeHub` module (SAS audience
 * `{host}/devices/{edge}/modules/$edgeHub`). Only the calls the edge hub needs: the device scope.
 */
export class HubRestClient {
  readonly #o: HubRestOptions;

  constructor(options: HubRestOptions) {
    this.#o = options;
  }

  /** A SAS token of the `$edgeHub` module, valid for `ttlSeconds`. */
  token(ttlSeconds = 3600): string {
    return createSasToken({
      audience: `${this.#o.hostName}/devices/${this.#o.deviceId}/modules/${EDGE_HUB_MODULE}`,
      key: this.#o.key,
      expirySeconds: Math.floor(Date.now() / 1000) + ttlSeconds,
    });
  }

  /**
   * The identities of the edge device's scope with their keys (`GET /devices/{edge}/modules/$edgeHub/
   * devicesAndModulesInDeviceScope`, following `continuationLink`s; iotedge-protocols.md §8.4).
   * @throws EdgeHubError `EDGE_ERR_OFFLINE` when the hub cannot be reached, `EDGE_ERR_UPSTREAM` when it refuses.
   */
  async deviceScope(): Promise<ScopeIdentity[]> {
    const edge = encodeURIComponent(this.#o.deviceId);
    let path: string | undefined = `/devices/${edge}/modules/${encodeURIComponent(EDGE_HUB_MODULE)}/devicesAndModulesInDeviceScope?deviceCount=100&api-version=2018-08-30-preview`;
    const out: ScopeIdentity[] = [];
    for (let page = 0; path !== undefined && page < MAX_PAGES; page++) {
      const reply = ScopeReply.safeParse(await this.#get(path));
      if (!reply.success) throw new EdgeHubError(EdgeErrorCode.Upstream, `device scope reply is malformed: ${reply.error.issues[0]?.message ?? ''}`);
      for (const d of reply.data.devices ?? []) {
        out.push({
          deviceId: d.deviceId,
          moduleId: '',
          primaryKey: d.authentication?.symmetricKey?.primaryKey ?? '',
          secondaryKey: d.authentication?.symmetricKey?.secondaryKey ?? '',
          enabled: (d.status ?? 'enabled') === 'enabled',
        });
      }
      for (const m of reply.data.modules ?? []) {
        out.push({
          deviceId: m.deviceId,
          moduleId: m.moduleId,
          primaryKey: m.authentication?.symmetricKey?.primaryKey ?? '',
          secondaryKey: m.authentication?.symmetricKey?.secondaryKey ?? '',
          enabled: true,
        });
      }
      const next = reply.data.continuationLink;
      path = next ? (next.startsWith('/') ? next : `/${next.replace(/^https?:\/\/[^/]+\//, '')}`) : undefined;
    }
    return out;
  }

  #get(path: string): Promise<unknown> {
    const o = this.#o;
    return new Promise((resolve, reject) => {
      const req = request(
        {
          host: o.address ?? o.hostName,
          servername: /^[\d.]+$|:/.test(o.hostName) ? undefined : o.hostName,
          port: o.port,
          path,
          method: 'GET',
          ...(o.ca ? { ca: o.ca } : {}),
          headers: { authorization: this.token(), accept: 'application/json', host: o.hostName },
          timeout: o.timeoutMs,
        },
        (res) => {
          const chunks: Buffer[] = [];
          let size = 0;
          res.on('data', (c: Buffer) => {
            size += c.length;
            if (size > MAX_REPLY_BYTES) req.destroy(new EdgeHubError(EdgeErrorCode.Upstream, 'device scope reply is too large'));
            else chunks.push(c);
          });
          res.on('end', () => {
            const text = Buffer.concat(chunks).toString('utf8');
            const status = res.statusCode ?? 0;
            if (status < 200 || status > 299) {
              reject(new EdgeHubError(EdgeErrorCode.Upstream, `hub answered ${status} to GET ${path.split('?')[0] ?? ''}`, { status }));
              return;
            }
            try {
              resolve(JSON.parse(text) as unknown);
            } catch (e) {
              reject(new EdgeHubError(EdgeErrorCode.Upstream, 'hub reply is not JSON', { cause: e }));
            }
          });
          res.on('error', reject);
        },
      );
      req.on('timeout', () => req.destroy(new EdgeHubError(EdgeErrorCode.Timeout, 'hub request timed out')));
      req.on('error', (e) => reject(e instanceof EdgeHubError ? e : new EdgeHubError(EdgeErrorCode.Offline, `hub unreachable: ${e.message}`, { cause: e })));
      req.end();
    });
  }
}
