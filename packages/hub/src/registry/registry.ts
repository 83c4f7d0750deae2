import { randomUUID } from 'node:crypto';
import { generateKey, isValidKey } from '@kedge/protocol';
import { hubError } from '../errors.js';
import type { DeviceRecord, IdentityAuth, ModuleRecord, PresenceRecord, Store, TwinRecord } from '../storage/store.js';
import { emptyProperties, isObject } from '@kedge/protocol';
import type { JsonObject } from '@kedge/protocol';
import { assertDeviceId, assertModuleId, etagOf, SYSTEM_MODULES } from './ids.js';

/** Device as served on the IoT Hub REST API (shape of azure-iothub's `Device`). */
export type DeviceJson = JsonObject;

const str = (v: unknown): string => (typeof v === 'string' ? v : '');

function authFrom(body: JsonObject, existing?: IdentityAuth): IdentityAuth {
  const a = isObject(body['authentication']) ? body['authentication'] : {};
  const type = str(a['type']) || existing?.type || 'sas';
  if (type !== 'sas' && type !== 'selfSigned' && type !== 'certificateAuthority' && type !== 'none') {
    throw hubError('CLOUD_ERR_BAD_REQUEST', `Unknown authentication type '${type}'`);
  }
  const sk = isObject(a['symmetricKey']) ? a['symmetricKey'] : {};
  const tp = isObject(a['x509Thumbprint']) ? a['x509Thumbprint'] : {};
  let primaryKey = str(sk['primaryKey']);
  let secondaryKey = str(sk['secondaryKey']);
  if (type === 'sas') {
    // azure-iothub sends empty keys when the caller gave none: IoT Hub then generates them.
    primaryKey ||= existing?.primaryKey || generateKey();
    secondaryKey ||= existing?.secondaryKey || generateKey();
    if (!isValidKey(primaryKey) || !isValidKey(secondaryKey)) {
      throw hubError('CLOUD_ERR_BAD_REQUEST', 'Symmetric keys must be base64 and 16 to 64 bytes long');
    }
  }
  return {
    type,
    primaryKey,
    secondaryKey,
    primaryThumbprint: str(tp['primaryThumbprint']),
    secondaryThumbprint: str(tp['secondaryThumbprint']),
  };
}

function authJson(a: IdentityAuth): JsonObject {
  return {
    symmetricKey: { primaryKey: a.primaryKey || null, secondaryKey: a.secondaryKey || null },
    x509Thumbprint: { primaryThumbprint: a.primaryThumbprint || null, secondaryThumbprint: a.secondaryThumbprint || null },
    type: a.type,
  };
}

/** A new twin record for an identity. */
export function newTwin(deviceId: string, moduleId: string, nowIso: string): TwinRecord {
  return { deviceId, moduleId, version: 1, tags: {}, desired: emptyProperties(nowIso), reported: emptyProperties(nowIso), configurations: {} };
}

const connectionJson = (p: PresenceRecord | undefined): JsonObject => ({
  connectionState: p ? 'Connected' : 'Disconnected',
  connectionStateUpdatedTime: p ? new Date(p.connectedAt).toISOString() : '0001-01-01T00:00:00Z',
  lastActivityTime: p ? new Date(p.connectedAt).toISOString() : '0001-01-01T00:00:00Z',
});

/**
 * Device and module identities: validation, key generation, IoT Hub JSON shapes. Creating an edge device also
 * creates its `$edgeAgent` and `$edgeHub` module identities, as IoT Hub does.
 */
export class Registry {
  readonly #store: Store;
  readonly #now: () => Date;

  constructor(deps: { store: Store; now?: () => Date }) {
    this.#store = deps.store;
    this.#now = deps.now ?? (() => new Date());
  }

  deviceJson(d: DeviceRecord, presence: PresenceRecord | undefined): DeviceJson {
    return {
      deviceId: d.deviceId,
      generationId: d.generationId,
      etag: etagOf(d.etagVersion),
      ...connectionJson(presence),
      status: d.status,
      statusReason: d.statusReason || null,
      statusUpdatedTime: d.statusUpdatedTime,
      cloudToDeviceMessageCount: 0,
      authentication: authJson(d.auth),
      capabilities: { iotEdge: d.iotEdge },
      deviceScope: d.deviceScope,
      parentScopes: [...d.parentScopes],
    };
  }

  moduleJson(m: ModuleRecord, presence: PresenceRecord | undefined): JsonObject {
    return {
      moduleId: m.moduleId,
      deviceId: m.deviceId,
      generationId: m.generationId,
      etag: etagOf(m.etagVersion),
      ...connectionJson(presence),
      cloudToDeviceMessageCount: 0,
      authentication: authJson(m.auth),
      managedBy: m.managedBy || null,
    };
  }

  /** Creates a device (PUT without If-Match). */
  async createDevice(deviceId: string, body: JsonObject): Promise<DeviceRecord> {
    assertDeviceId(deviceId);
    if (body['deviceId'] !== undefined && body['deviceId'] !== deviceId) {
      throw hubError('CLOUD_ERR_BAD_REQUEST', `Body deviceId '${str(body['deviceId'])}' does not match the URL`);
    }
    const now = this.#now().toISOString();
    const generationId = String(Date.now() * 1000 + Math.floor(Math.random() * 1000));
    const caps = isObject(body['capabilities']) ? body['capabilities'] : {};
    const iotEdge = caps['iotEdge'] === true;
    const device: DeviceRecord = {
      deviceId,
      generationId,
      etagVersion: 1,
      status: body['status'] === 'disabled' ? 'disabled' : 'enabled',
      statusReason: str(body['statusReason']),
      statusUpdatedTime: now,
      auth: authFrom(body),
      iotEdge,
      deviceScope: iotEdge ? `ms-azure-iot-edge://${deviceId}-${generationId}` : str(body['deviceScope']),
      parentScopes: Array.isArray(body['parentScopes']) ? body['parentScopes'].filter((s): s is string => typeof s === 'string') : [],
      createdTime: now,
    };
    await this.#store.createDevice(device, newTwin(deviceId, '', now));
    if (iotEdge) {
      for (const moduleId of SYSTEM_MODULES) await this.createModule(deviceId, moduleId, {});
    }
    return device;
  }

  /** Updates a device (PUT with If-Match). Keys left empty are kept; the edge capability can be switched. */
  async updateDevice(deviceId: string, body: JsonObject, expectedEtag: number | undefined): Promise<DeviceRecord> {
    const cur = await this.#store.getDevice(deviceId);
    if (!cur) throw hubError('CLOUD_ERR_DEVICE_NOT_FOUND', `Device ${deviceId} not found`);
    const status = body['status'] === 'disabled' ? 'disabled' : 'enabled';
    const caps = isObject(body['capabilities']) ? body['capabilities'] : {};
    const iotEdge = typeof caps['iotEdge'] === 'boolean' ? caps['iotEdge'] : cur.iotEdge;
    const next: DeviceRecord = {
      ...cur,
      status,
      statusReason: str(body['statusReason']),
      statusUpdatedTime: status === cur.status ? cur.statusUpdatedTime : this.#now().toISOString(),
      auth: authFrom(body, cur.auth),
      iotEdge,
      deviceScope: iotEdge ? `ms-azure-iot-edge://${deviceId}-${cur.generationId}` : cur.deviceScope,
      // A child moves to another parent (or none) by updating its parentScopes; absent keeps them.
      parentScopes: Array.isArray(body['parentScopes']) ? body['parentScopes'].filter((s): s is string => typeof s === 'string') : cur.parentScopes,
    };
    const saved = await this.#store.updateDevice(next, expectedEtag);
    if (iotEdge && !cur.iotEdge) {
      for (const moduleId of SYSTEM_MODULES) {
        if (!(await this.#store.getModule(deviceId, moduleId))) await this.createModule(deviceId, moduleId, {});
      }
    }
    return saved;
  }

  async createModule(deviceId: string, moduleId: string, body: JsonObject): Promise<ModuleRecord> {
    assertDeviceId(deviceId);
    assertModuleId(moduleId);
    if (body['moduleId'] !== undefined && body['moduleId'] !== moduleId) {
      throw hubError('CLOUD_ERR_BAD_REQUEST', `Body moduleId '${str(body['moduleId'])}' does not match the URL`);
    }
    const now = this.#now().toISOString();
    const module: ModuleRecord = {
      deviceId,
      moduleId,
      generationId: String(Date.now() * 1000 + Math.floor(Math.random() * 1000)),
      etagVersion: 1,
      auth: authFrom(body),
      managedBy: str(body['managedBy']),
      createdTime: now,
    };
    await this.#store.createModule(module, newTwin(deviceId, moduleId, now));
    return module;
  }

  async updateModule(deviceId: string, moduleId: string, body: JsonObject, expectedEtag: number | undefined): Promise<ModuleRecord> {
    const cur = await this.#store.getModule(deviceId, moduleId);
    if (!cur) throw hubError('CLOUD_ERR_MODULE_NOT_FOUND', `Module ${moduleId} not found on device ${deviceId}`);
    return this.#store.updateModule({ ...cur, auth: authFrom(body, cur.auth), managedBy: str(body['managedBy']) || cur.managedBy }, expectedEtag);
  }

  /** The module's device must exist; used before device-scoped writes. */
  async requireDevice(deviceId: string): Promise<DeviceRecord> {
    const d = await this.#store.getDevice(deviceId);
    if (!d) throw hubError('CLOUD_ERR_DEVICE_NOT_FOUND', `Device ${deviceId} not found`);
    return d;
  }

  /** A fresh request id for error tracking. */
  static trackingId(): string {
    return randomUUID().replaceAll('-', '');
  }
}
