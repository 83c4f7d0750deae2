import type { Identity } from './topics.js';
import { parseQuery } from './topics.js';

/**
 * The device side of IoT Hub's MQTT dialect (iotedge-protocols.md §3.1, §3.3): what a device or module client
 * subscribes to, the topics it publishes and how it reads what the hub sends. The hub side is in `topics.ts`.
 */

/** The IoT Hub API version devices announce in their MQTT user name. */
export const DEVICE_API_VERSION = '2021-04-12';

/** The fixed subscription filters of a device or module client. */
export const ClientSubscriptions = {
  twinResponses: '$iothub/twin/res/#',
  desiredPatches: '$iothub/twin/PATCH/properties/desired/#',
  methods: '$iothub/methods/POST/#',
} as const;

/** MQTT client id: `{deviceId}` or `{deviceId}/{moduleId}`. */
export const mqttClientId = (id: Identity): string => (id.moduleId ? `${id.deviceId}/${id.moduleId}` : id.deviceId);

/** MQTT user name `{host}/{deviceId}[/{moduleId}]/?api-version=…&DeviceClientType=…` (as the Azure SDKs build it). */
export function mqttUsername(hostName: string, id: Identity, userAgent: string): string {
  return `${hostName}/${mqttClientId(id)}/?api-version=${DEVICE_API_VERSION}&DeviceClientType=${encodeURIComponent(userAgent)}`;
}

/** The SAS audience (resource URI) of an identity: `{host}/devices/{d}[/modules/{m}]`. */
export const identityAudience = (hostName: string, id: Identity): string =>
  id.moduleId ? `${hostName}/devices/${id.deviceId}/modules/${id.moduleId}` : `${hostName}/devices/${id.deviceId}`;

export const twinGetTopic = (rid: string): string => `$iothub/twin/GET/?$rid=${encodeURIComponent(rid)}`;
export const twinReportedTopic = (rid: string): string => `$iothub/twin/PATCH/properties/reported/?$rid=${encodeURIComponent(rid)}`;
export const methodResponseTopic = (status: number, rid: string): string => `$iothub/methods/res/${status}/?$rid=${encodeURIComponent(rid)}`;

/** Encodes a property bag `k=v&…` (URI-encoded keys and values). */
export function encodeBag(props: Readonly<Record<string, string>>): string {
  return Object.entries(props)
    .map(([k, v]) => `${encodeURIComponent(k)}=${encodeURIComponent(v)}`)
    .join('&');
}

/** Telemetry (device) or module output topic, with the property bag appended when there is one. */
export function telemetryTopic(id: Identity, bag: Readonly<Record<string, string>> = {}): string {
  const base = id.moduleId ? `devices/${id.deviceId}/modules/${id.moduleId}/messages/events/` : `devices/${id.deviceId}/messages/events/`;
  return base + encodeBag(bag);
}

/** What the hub sends a device or module client. */
export type Outbound =
  | { readonly kind: 'twin-response'; readonly status: number; readonly rid: string; readonly version?: number }
  | { readonly kind: 'desired-patch'; readonly version?: number }
  | { readonly kind: 'method-request'; readonly name: string; readonly rid: string };

/**
 * Classifies a topic the hub published to a client (`$iothub/twin/res/{status}/?$rid=…[&$version=…]`,
 * `$iothub/twin/PATCH/properties/desired/?$version=…`, `$iothub/methods/POST/{name}/?$rid=…`); `undefined` for
 * anything else or malformed parts (a missing `$rid`, a non-numeric status, bad escapes).
 */
export function parseOutbound(topic: string): Outbound | undefined {
  const q = (s: string | undefined) => (s !== undefined && s.startsWith('?') ? parseQuery(s.slice(1)) : undefined);
  const num = (s: string | undefined) => (s !== undefined && /^\d{1,15}$/.test(s) ? Number(s) : undefined);
  let m = /^\$iothub\/twin\/res\/(\d{3})\/(\?.*)$/.exec(topic);
  if (m) {
    const query = q(m[2]);
    const rid = query?.get('$rid');
    if (!query || !rid) return undefined;
    const version = num(query.get('$version'));
    return { kind: 'twin-response', status: Number(m[1]), rid, ...(version !== undefined ? { version } : {}) };
  }
  if (topic.startsWith('$iothub/twin/PATCH/properties/desired/')) {
    const rest = topic.slice('$iothub/twin/PATCH/properties/desired/'.length);
    const query = rest === '' ? new Map<string, string>() : q(rest);
    if (!query) return undefined;
    const version = num(query.get('$version'));
    return { kind: 'desired-patch', ...(version !== undefined ? { version } : {}) };
  }
  m = /^\$iothub\/methods\/POST\/([^/#+]{1,128})\/(\?.*)$/.exec(topic);
  if (m) {
    const rid = q(m[2])?.get('$rid');
    let name: string;
    try {
      name = decodeURIComponent(m[1] ?? '');
    } catch {
      return undefined;
    }
    return rid ? { kind: 'method-request', name, rid } : undefined;
  }
  return undefined;
}
