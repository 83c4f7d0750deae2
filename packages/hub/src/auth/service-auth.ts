import type { Logger } from '../log.js';
import { hubError } from '../errors.js';
import type { Store } from '../storage/store.js';
import type { AccessPolicy, Right } from './policies.js';
import { grants } from './policies.js';
import { parseSasToken, verifySasToken } from '@kedge/protocol';
import type { SasToken } from '@kedge/protocol';

/** Who made a service API call. */
export type Principal =
  | { readonly kind: 'policy'; readonly name: string; readonly rights: readonly Right[] }
  | { readonly kind: 'device'; readonly deviceId: string }
  | { readonly kind: 'module'; readonly deviceId: string; readonly moduleId: string };

/**
 * Authenticates service API calls. Policy tokens (`sr={host}`, `skn={policy}`) are checked against the hub's
 * shared access policies; device tokens (`sr={host}/devices/{id}`, no `skn`) are accepted only where a route allows
 * device scope (an edge device managing its own modules) and only for that device.
 */
export class ServiceAuth {
  readonly #store: Store;
  readonly #hosts: readonly string[];
  readonly #log: Logger;
  readonly #now: () => number;
  #policies: Map<string, AccessPolicy> = new Map();

  constructor(deps: { store: Store; hostNames: readonly string[]; log: Logger; nowSeconds?: () => number }) {
    this.#store = deps.store;
    this.#hosts = deps.hostNames;
    this.#log = deps.log;
    this.#now = deps.nowSeconds ?? (() => Math.floor(Date.now() / 1000));
  }

  async load(): Promise<void> {
    this.#policies = new Map((await this.#store.listPolicies()).map((p) => [p.name, p]));
  }

  policy(name: string): AccessPolicy | undefined {
    return this.#policies.get(name);
  }

  /**
   * Returns the principal or throws `CLOUD_ERR_UNAUTHORIZED`. `need` is the policy right the route requires;
   * `deviceScope` names the device whose own token is also accepted.
   */
  async authorize(header: string | undefined, need: Right, deviceScope?: string): Promise<Principal> {
    const token = this.#parse(header);
    if (token.skn !== undefined) return this.#policy(token, need);
    if (deviceScope === undefined) throw hubError('CLOUD_ERR_UNAUTHORIZED', 'A shared access policy token is required');
    const device = await this.#store.getDevice(deviceScope);
    if (!device?.iotEdge || device.status !== 'enabled') throw hubError('CLOUD_ERR_UNAUTHORIZED', 'Device-scoped access needs an enabled edge device');
    const v = verifySasToken(token, {
      audiences: this.#hosts.map((h) => `${h}/devices/${deviceScope}`),
      keys: [device.auth.primaryKey, device.auth.secondaryKey],
      nowSeconds: this.#now(),
    });
    if (!v.ok) {
      this.#log.info({ deviceId: deviceScope, reason: v.error }, 'Refused device-scoped token');
      throw hubError('CLOUD_ERR_UNAUTHORIZED', `Token refused: ${v.error}`);
    }
    return { kind: 'device', deviceId: deviceScope };
  }

  /**
   * Like {@link authorize}, but the identity token accepted instead of a policy token is that of module
   * `moduleId` of edge device `deviceId` (the `$edgeHub` module reading its device scope).
   */
  async authorizeModule(header: string | undefined, need: Right, deviceId: string, moduleId: string): Promise<Principal> {
    const token = this.#parse(header);
    if (token.skn !== undefined) return this.#policy(token, need);
    const device = await this.#store.getDevice(deviceId);
    const module = device?.iotEdge && device.status === 'enabled' ? await this.#store.getModule(deviceId, moduleId) : undefined;
    if (!module) throw hubError('CLOUD_ERR_UNAUTHORIZED', 'Module-scoped access needs a module of an enabled edge device');
    const v = verifySasToken(token, {
      audiences: this.#hosts.map((h) => `${h}/devices/${deviceId}/modules/${moduleId}`),
      keys: [module.auth.primaryKey, module.auth.secondaryKey],
      nowSeconds: this.#now(),
    });
    if (!v.ok) {
      this.#log.info({ deviceId, moduleId, reason: v.error }, 'Refused module-scoped token');
      throw hubError('CLOUD_ERR_UNAUTHORIZED', `Token refused: ${v.error}`);
    }
    return { kind: 'module', deviceId, moduleId };
  }

  #parse(header: string | undefined): SasToken {
    if (header === undefined || header === '') throw hubError('CLOUD_ERR_UNAUTHORIZED', 'Missing Authorization header');
    const parsed = parseSasToken(header);
    if (!parsed.ok) throw hubError('CLOUD_ERR_UNAUTHORIZED', 'Malformed SharedAccessSignature');
    return parsed.value;
  }

  #policy(token: SasToken, need: Right): Principal {
    const p = this.#policies.get(token.skn ?? '');
    if (!p) throw hubError('CLOUD_ERR_UNAUTHORIZED', 'Unknown shared access policy');
    const v = verifySasToken(token, { audiences: this.#hosts, keys: [p.primaryKey, p.secondaryKey], nowSeconds: this.#now() });
    if (!v.ok) {
      this.#log.info({ policy: p.name, reason: v.error }, 'Refused service token');
      throw hubError('CLOUD_ERR_UNAUTHORIZED', `Token refused: ${v.error}`);
    }
    if (!grants(p.rights, need)) throw hubError('CLOUD_ERR_FORBIDDEN', `Policy ${p.name} lacks the ${need} right`);
    return { kind: 'policy', name: p.name, rights: p.rights };
  }
}
