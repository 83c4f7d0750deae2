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
 * `constructor`, `toString`, `hasOwnProperty` or `__proto__` is an ordinary application property.
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
