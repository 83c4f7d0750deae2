import type { Identity } from '@kedge/protocol';

/**
 * The nodes a device or module addresses, as `azure-iot-device-amqp` names them (azure-iot-common `endpoint.ts`):
 *
 * | path | device sends (hub receiver) | device receives (hub sender) |
 * |---|---|---|
 * | `/devices/{d}/messages/events` | telemetry | — |
 * | `/devices/{d}/messages/devicebound` | — | cloud-to-device messages |
 * | `/devices/{d}/modules/{m}/messages/events` | module telemetry | module input messages (`x-opt-input-name`) |
 * | `/devices/{d}[/modules/{m}]/twin` | twin requests | twin responses, desired patches |
 * | `/devices/{d}[/modules/{m}]/methods/devicebound` | method responses | method requests |
 */
export type NodeKind = 'events' | 'devicebound' | 'twin' | 'methods';

/** An identity node: which identity it belongs to and what it carries. */
export interface IdentityNode {
  readonly identity: Identity;
  readonly kind: NodeKind;
}

const NODE = /^\/devices\/([^/]+)(?:\/modules\/([^/]+))?\/(messages\/events|messages\/devicebound|twin|methods\/devicebound)\/?$/;

const KINDS: Readonly<Record<string, NodeKind>> = {
  'messages/events': 'events',
  'messages/devicebound': 'devicebound',
  twin: 'twin',
  'methods/devicebound': 'methods',
};

/**
 * The identity node of an address path, or `undefined` when it is none (or malformed: a bad percent escape, an
 * empty id). Ids are percent-decoded (the SDKs address `/devices/{id}` with the id as registered; a `%`-encoded
 * form names the same node). `/devices/{d}/modules/{m}/messages/devicebound` is no node: IoT Hub sends no
 * cloud-to-device messages to modules.
 */
export function identityNode(path: string): IdentityNode | undefined {
  const m = NODE.exec(path);
  if (!m) return undefined;
  const kind = KINDS[m[3] ?? ''];
  if (kind === undefined) return undefined;
  const identity = decodeIdentity(m[1] ?? '', m[2]);
  if (!identity || (identity.moduleId !== '' && kind === 'devicebound')) return undefined;
  return { identity, kind };
}

/**
 * The identity of percent-encoded `/devices/{device}[/modules/{module}]` segments, or `undefined` for a bad escape
 * or an empty id. `module` is `undefined` when the path has no module part.
 */
export function decodeIdentity(device: string, module: string | undefined): Identity | undefined {
  try {
    const deviceId = decodeURIComponent(device);
    const moduleId = module === undefined ? '' : decodeURIComponent(module);
    if (deviceId === '' || (module !== undefined && moduleId === '')) return undefined;
    return { deviceId, moduleId };
  } catch {
    return undefined;
  }
}

/** `deviceId` or `deviceId/moduleId`, for logs and descriptions. */
export const identityName = (id: Identity): string => (id.moduleId ? `${id.deviceId}/${id.moduleId}` : id.deviceId);

/** A map key for an identity. */
export const identityKey = (id: Identity): string => `${id.deviceId}\u0000${id.moduleId}`;
