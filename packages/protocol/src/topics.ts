import { newObject } from './json.js';
import { systemPropertyName } from './system-properties.js';

/** An authenticated MQTT identity: a device (`moduleId` empty) or a module. */
export interface Identity {
  readonly deviceId: string;
  readonly moduleId: string;
}

/** What a device may publish ([IoT Hub MQTT topics], iotedge-protocols.md §3.3). */
export type Inbound =
  | { readonly kind: 'telemetry'; readonly bag: string }
  | { readonly kind: 'twin-get'; readonly rid: string }
  | { readonly kind: 'twin-reported'; readonly rid: string }
  | { readonly kind: 'method-response'; readonly rid: string; readonly status: number };

/** Subscription features the hub delivers on. */
export const Feature = { Twin: 'twin', Desired: 'desired', Methods: 'methods', C2D: 'c2d', Inputs: 'inputs' } as const;
export type Feature = (typeof Feature)[keyof typeof Feature];

const ns = (id: Identity): string => (id.moduleId ? `devices/${id.deviceId}/modules/${id.moduleId}` : `devices/${id.deviceId}`);

/** Parses `key=value&…` (URI-encoded) into a map; `undefined` on bad escapes. */
export function parseQuery(text: string): Map<string, string> | undefined {
  const out = new Map<string, string>();
  if (text === '') return out;
  try {
    for (const part of text.split('&')) {
      if (part === '') continue;
      const eq = part.indexOf('=');
      const k = decodeURIComponent(eq < 0 ? part : part.slice(0, eq));
      const v = eq < 0 ? '' : decodeURIComponent(part.slice(eq + 1));
      out.set(k, v);
    }
  } catch {
    return undefined;
  }
  return out;
}

function rid(query: string): string | undefined {
  if (!query.startsWith('?')) return undefined;
  const q = parseQuery(query.slice(1));
  const r = q?.get('$rid');
  return r !== undefined && r.length > 0 && r.length <= 128 ? r : undefined;
}

/**
 * Classifies a PUBLISH topic from `id`. Anything else (someone else's namespace, unknown `$iothub` topics,
 * wildcards) is `undefined`, and the endpoint disconnects the client, as IoT Hub does.
 */
export function parseInbound(topic: string, id: Identity): Inbound | undefined {
  const events = `${ns(id)}/messages/events`;
  if (topic === events) return { kind: 'telemetry', bag: '' };
  if (topic.startsWith(`${events}/`)) {
    const bag = topic.slice(events.length + 1).replace(/\/$/, '');
    return bag.includes('/') ? undefined : { kind: 'telemetry', bag };
  }
  if (topic.startsWith('$iothub/twin/GET/')) {
    const r = rid(topic.slice('$iothub/twin/GET/'.length));
    return r === undefined ? undefined : { kind: 'twin-get', rid: r };
  }
  if (topic.startsWith('$iothub/twin/PATCH/properties/reported/')) {
    const r = rid(topic.slice('$iothub/twin/PATCH/properties/reported/'.length));
    return r === undefined ? undefined : { kind: 'twin-reported', rid: r };
  }
  const m = /^\$iothub\/methods\/res\/(\d{1,3})\/(\?.*)$/.exec(topic);
  if (m) {
    const r = rid(m[2] ?? '');
    return r === undefined ? undefined : { kind: 'method-response', rid: r, status: Number(m[1]) };
  }
  return undefined;
}

/** The feature a SUBSCRIBE filter asks for, or `undefined` when `id` may not subscribe to it. */
export function subscriptionFeature(filter: string, id: Identity): Feature | undefined {
  switch (filter) {
    case '$iothub/twin/res/#':
      return Feature.Twin;
    case '$iothub/twin/PATCH/properties/desired/#':
      return Feature.Desired;
    case '$iothub/methods/POST/#':
      return Feature.Methods;
    default:
      break;
  }
  if (!id.moduleId && filter === `devices/${id.deviceId}/messages/devicebound/#`) return Feature.C2D;
  if (id.moduleId && (filter === `${ns(id)}/inputs/#` || filter === `${ns(id)}/#`)) return Feature.Inputs;
  return undefined;
}

/** True for topics the hub itself sends to `id` (the only packets forwarded to a client). */
export function isOutboundFor(topic: string, id: Identity): boolean {
  return (
    topic.startsWith('$iothub/twin/res/') ||
    topic.startsWith('$iothub/twin/PATCH/properties/desired/') ||
    topic.startsWith('$iothub/methods/POST/') ||
    (!id.moduleId && topic.startsWith(`${ns(id)}/messages/devicebound`)) ||
    (id.moduleId !== '' && topic.startsWith(`${ns(id)}/inputs/`))
  );
}

/**
 * Splits a telemetry property bag into application and system properties (system ones renamed). Both results are
 * null-prototype objects and system names are looked up as own properties only, so a bag key such as
 * `constructor`, `toString`, `hasOwnProperty` or `__proto__` is an ordinary application property. Unknown `$.` keys
 * are dropped (a client cannot forge `$.cdid`/`$.cmid`).
 */
export function splitBag(
  bag: string,
  systemNames: Readonly<Record<string, string>>,
): { properties: Record<string, string>; systemProperties: Record<string, string> } | undefined {
  const q = parseQuery(bag);
  if (!q) return undefined;
  const properties = newObject<string>();
  const systemProperties = newObject<string>();
  for (const [k, v] of q) {
    const sys = systemPropertyName(k, systemNames);
    if (sys !== undefined) systemProperties[sys] = v;
    else if (!k.startsWith('$.')) properties[k] = v;
  }
  return { properties, systemProperties };
}

/** Parses `<host>/<deviceId>[/<moduleId>]/?api-version=…` usernames (edgeHub's accepted forms). */
export function parseUsername(username: string): { host: string; deviceId: string; moduleId: string } | undefined {
  const parts = username.split('/');
  const last = parts[parts.length - 1] ?? '';
  if (!last.includes('api-version=')) return undefined;
  const ids = parts.slice(1, -1).filter((p, i, all) => !(i === all.length - 1 && p === ''));
  const host = parts[0] ?? '';
  if (ids.length === 1) return { host, deviceId: ids[0] ?? '', moduleId: '' };
  if (ids.length === 2) return { host, deviceId: ids[0] ?? '', moduleId: ids[1] ?? '' };
  return undefined;
}

/** Splits an MQTT client id into the identity it claims: `{deviceId}` or `{deviceId}/{moduleId}`; `undefined` otherwise. */
export function parseClientId(clientId: string): Identity | undefined {
  const parts = clientId.split('/');
  if (parts.length > 2 || parts.some((p) => p === '')) return undefined;
  return { deviceId: parts[0] ?? '', moduleId: parts[1] ?? '' };
}

/**
 * Encodes a property bag (`k=v&…`, URI-escaped) from application properties and stored system properties; the
 * system ones are written under their wire names from `wireNames` (stored name → wire name), others are skipped.
 */
export function formatBag(
  properties: Readonly<Record<string, string>>,
  systemProperties: Readonly<Record<string, string>>,
  wireNames: Readonly<Record<string, string>>,
): string {
  const parts: string[] = [];
  for (const [k, v] of Object.entries(systemProperties)) {
    const wire = Object.prototype.hasOwnProperty.call(wireNames, k) ? wireNames[k] : undefined;
    if (wire !== undefined) parts.push(`${encodeURIComponent(wire)}=${encodeURIComponent(v)}`);
  }
  for (const [k, v] of Object.entries(properties)) parts.push(`${encodeURIComponent(k)}=${encodeURIComponent(v)}`);
  return parts.join('&');
}

/**
 * The topic a module input message is delivered on: `devices/{d}/modules/{m}/inputs/{input}/{bag}`. The `/` after
 * the input name is always there: the Node SDK's dispatch regex needs it (iotedge-protocols.md §9.1).
 */
export const moduleInputTopic = (deviceId: string, moduleId: string, input: string, bag: string): string =>
  `devices/${deviceId}/modules/${moduleId}/inputs/${input}/${bag}`;

/** The telemetry topic of `id` with an encoded property bag (`devices/{d}[/modules/{m}]/messages/events/{bag}`). */
export const telemetryTopic = (id: Identity, bag: string): string => `${ns(id)}/messages/events/${bag}`;
