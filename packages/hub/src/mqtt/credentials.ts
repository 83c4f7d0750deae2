import type { Identity } from '@kedge/protocol';
import { parseQuery, parseSasToken, parseUsername, verifySasToken } from '@kedge/protocol';
import { isChildOf } from '../scope/device-scope.js';
import type { Store } from '../storage/store.js';

/** MQTT 3.1.1 CONNACK return codes: 4 bad user name or password, 5 not authorized [MQTT-3.2.2.3]. */
export const ConnackCode = { BadCredentials: 4, NotAuthorized: 5 } as const;
export type ConnackCode = (typeof ConnackCode)[keyof typeof ConnackCode];

/** The module whose SAS token authenticates an edge device's on-behalf-of connections. */
export const EDGE_HUB_MODULE = '$edgeHub';

/** An identity record a grant was issued against, with its `generationId` at the time. */
export interface GrantDependency {
  readonly deviceId: string;
  readonly moduleId: string;
  readonly generationId: string;
}

/**
 * What an accepted CONNECT was granted: the identity the connection acts as, the edge device it came through
 * (on-behalf-of), the identity records the grant rests on (deleting, disabling or re-keying any of them ends it)
 * and when its token expires.
 */
export interface ConnectGrant {
  readonly identity: Identity;
  readonly via?: string;
  readonly dependencies: readonly GrantDependency[];
  readonly expiresAtSeconds: number;
}

/** Why a CONNECT is refused (logged, never sent to the client beyond the CONNACK code). */
export interface ConnectRefusal {
  readonly reason: string;
  readonly code: ConnackCode;
}

/** The three CONNECT fields that carry credentials. */
export interface ConnectCredentials {
  readonly clientId: string;
  readonly username: string;
  readonly password: string;
}

type Outcome = { ok: true; grant: ConnectGrant } | { ok: false; refusal: ConnectRefusal };

const refuse = (reason: string, code: ConnackCode = ConnackCode.BadCredentials): Outcome => ({ ok: false, refusal: { reason, code } });

/** `auth-chain` from the user name's property segment (`…/?api-version=…&auth-chain=a;b`), if present. */
function authChain(username: string): string[] | undefined | null {
  const last = username.slice(username.lastIndexOf('/') + 1);
  const props = parseQuery(last.startsWith('?') ? last.slice(1) : last);
  if (!props) return null;
  const chain = props.get('auth-chain');
  return chain === undefined ? undefined : chain.split(';');
}

/**
 * Checks a CONNECT's credentials against the registry as it is now. Used at CONNECT and again whenever an identity
 * the grant rests on changes: the same token must still verify against the current keys, every record must still be
 * enabled and of the same generation.
 *
 * Two forms are accepted:
 * - **Own token**: client id `{d}` or `{d}/{m}`, user name `{host}/{d}[/{m}]/?api-version=…`, password a SAS token
 *   for `{host}/devices/{d}[/modules/{m}]` signed with that identity's key.
 * - **On behalf of** (an edge hub serving its children): the same client id and user name plus
 *   `&auth-chain={d}[/{m}];{edge}`, password a SAS token for `{host}/devices/{edge}/modules/$edgeHub` signed with
 *   the `$edgeHub` module's key. Accepted iff `{edge}` is an enabled edge device and the identity is the edge device
 *   itself, one of its modules, or an enabled device whose `parentScopes` holds the edge's `deviceScope`.
 */
export async function checkConnect(
  store: Store,
  hostNames: readonly string[],
  creds: ConnectCredentials,
  nowSeconds: number,
): Promise<Outcome> {
  const { clientId, password } = creds;
  // The property segment may carry a raw `/` (`auth-chain=edge/module;edge`): escape it so that the segment stays
  // the last one of the user name; query decoding turns it back.
  const q = creds.username.indexOf('?');
  const username = q < 0 ? creds.username : `${creds.username.slice(0, q + 1)}${creds.username.slice(q + 1).replaceAll('/', '%2F')}`;
  const slash = clientId.indexOf('/');
  const id: Identity = slash < 0 ? { deviceId: clientId, moduleId: '' } : { deviceId: clientId.slice(0, slash), moduleId: clientId.slice(slash + 1) };
  if (!id.deviceId || id.moduleId.includes('/')) return refuse('client id must be {deviceId} or {deviceId}/{moduleId}', ConnackCode.NotAuthorized);
  const user = parseUsername(username);
  if (!user || user.deviceId !== id.deviceId || user.moduleId !== id.moduleId) return refuse('user name does not match the client id');
  if (password === '') return refuse('a SAS token password is required');
  const token = parseSasToken(password);
  if (!token.ok) return refuse('malformed SAS token');
  // A session lives until its token expires: a token already past `se` cannot open one (the 5-minute skew of
  // verifySasToken would otherwise admit a session that the expiry timer closes at once).
  if (token.value.se <= nowSeconds) return refuse('token expired');
  const chain = authChain(username);
  if (chain === null) return refuse('malformed user name properties');

  const dependencies: GrantDependency[] = [];
  const device = await store.getDevice(id.deviceId);
  if (!device || device.status !== 'enabled') return refuse('unknown or disabled device', ConnackCode.NotAuthorized);
  dependencies.push({ deviceId: device.deviceId, moduleId: '', generationId: device.generationId });
  let keys = [device.auth.primaryKey, device.auth.secondaryKey];
  if (id.moduleId) {
    const m = await store.getModule(id.deviceId, id.moduleId);
    if (!m) return refuse('unknown module', ConnackCode.NotAuthorized);
    dependencies.push({ deviceId: m.deviceId, moduleId: m.moduleId, generationId: m.generationId });
    keys = [m.auth.primaryKey, m.auth.secondaryKey];
  }
  let resource = id.moduleId ? `devices/${id.deviceId}/modules/${id.moduleId}` : `devices/${id.deviceId}`;
  let via: string | undefined;

  if (chain !== undefined) {
    const [target, edgeId, ...rest] = chain;
    if (target !== clientId || edgeId === undefined || edgeId === '' || rest.length > 0) {
      return refuse('auth-chain must be {deviceId}[/{moduleId}];{edgeDeviceId}', ConnackCode.NotAuthorized);
    }
    const edge = edgeId === device.deviceId ? device : await store.getDevice(edgeId);
    if (!edge?.iotEdge || edge.status !== 'enabled') return refuse('auth-chain names no enabled edge device', ConnackCode.NotAuthorized);
    const edgeHub = await store.getModule(edgeId, EDGE_HUB_MODULE);
    if (!edgeHub) return refuse('the edge device has no $edgeHub identity', ConnackCode.NotAuthorized);
    if (id.deviceId !== edgeId) {
      if (id.moduleId !== '' || !isChildOf(device, edge)) {
        return refuse('identity is not in the edge device scope', ConnackCode.NotAuthorized);
      }
      dependencies.push({ deviceId: edge.deviceId, moduleId: '', generationId: edge.generationId });
    }
    dependencies.push({ deviceId: edgeHub.deviceId, moduleId: edgeHub.moduleId, generationId: edgeHub.generationId });
    keys = [edgeHub.auth.primaryKey, edgeHub.auth.secondaryKey];
    resource = `devices/${edgeId}/modules/${EDGE_HUB_MODULE}`;
    via = edgeId;
  }

  const v = verifySasToken(token.value, { audiences: hostNames.map((h) => `${h}/${resource}`), keys, nowSeconds });
  if (!v.ok) return refuse(`token ${v.error}`);
  return { ok: true, grant: { identity: id, ...(via === undefined ? {} : { via }), dependencies, expiresAtSeconds: token.value.se } };
}

/** True when two grants rest on the same records (same identities, same generations). */
export function sameGeneration(a: ConnectGrant, b: ConnectGrant): boolean {
  const key = (g: ConnectGrant): string =>
    g.dependencies
      .map((d) => `${d.deviceId}/${d.moduleId}=${d.generationId}`)
      .sort()
      .join('\u0000');
  return key(a) === key(b);
}

/** Whether a change to identity `deviceId[/moduleId]` (moduleId `''`: the device and all its modules) touches `grant`. */
export function dependsOn(grant: ConnectGrant, deviceId: string, moduleId: string): boolean {
  return grant.dependencies.some((d) => d.deviceId === deviceId && (moduleId === '' || d.moduleId === moduleId));
}
