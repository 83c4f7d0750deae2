import { EventEmitter } from 'node:events';
import type { Bus } from '../cluster/bus.js';
import { hubError } from '../errors.js';
import { etagOf } from '../registry/ids.js';
import type { DeviceRecord, PresenceRecord, Store, TwinRecord } from '../storage/store.js';
import type { JsonObject } from '@kedge/protocol';
import { applyPatch, checkPatch, cloneJson, isObject, jsonEqual, mergeTags, replaceProperties, TwinLimits, userBytes, userProperties } from '@kedge/protocol';

/** What changed in a twin write; deployments re-evaluate targeting on tag and reported changes. */
export interface TwinChange {
  readonly deviceId: string;
  readonly moduleId: string;
  readonly tags: boolean;
  readonly desired: boolean;
  readonly reported: boolean;
}

function sizeCheck(t: TwinRecord): void {
  const tags = Buffer.byteLength(JSON.stringify(t.tags));
  if (tags > TwinLimits.tagsBytes) throw hubError('CLOUD_ERR_TWIN_TOO_LARGE', `Twin tags are ${tags} bytes; the limit is ${TwinLimits.tagsBytes}`);
  const d = userBytes(t.desired);
  if (d > TwinLimits.desiredBytes) throw hubError('CLOUD_ERR_TWIN_TOO_LARGE', `Desired properties are ${d} bytes; the limit is ${TwinLimits.desiredBytes}`);
  const r = userBytes(t.reported);
  if (r > TwinLimits.reportedBytes) throw hubError('CLOUD_ERR_TWIN_TOO_LARGE', `Reported properties are ${r} bytes; the limit is ${TwinLimits.reportedBytes}`);
}

function patchOrThrow(value: unknown, where: string): JsonObject {
  const r = checkPatch(value, where);
  if (!r.ok) throw hubError('CLOUD_ERR_BAD_REQUEST', `${r.error.path}: ${r.error.message}`);
  return r.value;
}

/**
 * Device and module twins: reads, service-side PATCH/PUT (tags + desired), device-side reported patches, whole
 * desired replacement (deployments). Every accepted desired change is published on the bus for the replica that
 * holds the device's connection; every write emits a {@link TwinChange}.
 */
export class Twins {
  readonly #store: Store;
  readonly #bus: Bus;
  readonly #now: () => Date;
  readonly #changes = new EventEmitter().setMaxListeners(0);

  constructor(deps: { store: Store; bus: Bus; now?: () => Date }) {
    this.#store = deps.store;
    this.#bus = deps.bus;
    this.#now = deps.now ?? (() => new Date());
  }

  onChange(listener: (c: TwinChange) => void): () => void {
    this.#changes.on('change', listener);
    return () => this.#changes.off('change', listener);
  }

  /** The twin in IoT Hub's JSON shape. */
  toJson(t: TwinRecord, device: DeviceRecord | undefined, presence: PresenceRecord | undefined): JsonObject {
    const out: JsonObject = {
      deviceId: t.deviceId,
      ...(t.moduleId ? { moduleId: t.moduleId } : {}),
      etag: etagOf(t.version),
      deviceEtag: etagOf(device?.etagVersion ?? 0),
      status: device?.status ?? 'enabled',
      statusUpdateTime: device?.statusUpdatedTime ?? '0001-01-01T00:00:00Z',
      connectionState: presence ? 'Connected' : 'Disconnected',
      lastActivityTime: presence ? new Date(presence.connectedAt).toISOString() : '0001-01-01T00:00:00Z',
      cloudToDeviceMessageCount: 0,
      authenticationType: 'sas',
      x509Thumbprint: { primaryThumbprint: null, secondaryThumbprint: null },
      modelId: '',
      version: t.version,
      tags: t.tags,
      properties: { desired: t.desired, reported: t.reported },
    };
    if (!t.moduleId) out['capabilities'] = { iotEdge: device?.iotEdge ?? false };
    if (Object.keys(t.configurations).length > 0) out['configurations'] = t.configurations;
    return out;
  }

  async get(deviceId: string, moduleId: string): Promise<TwinRecord> {
    const t = await this.#store.getTwin(deviceId, moduleId);
    if (!t) throw this.#notFound(deviceId, moduleId);
    return t;
  }

  #notFound(deviceId: string, moduleId: string): Error {
    return moduleId
      ? hubError('CLOUD_ERR_MODULE_NOT_FOUND', `Module twin ${deviceId}/${moduleId} not found`)
      : hubError('CLOUD_ERR_DEVICE_NOT_FOUND', `Device ${deviceId} not found`);
  }

  async #write(deviceId: string, moduleId: string, expectedEtag: number | undefined, fn: (t: TwinRecord) => TwinRecord | undefined): Promise<TwinRecord> {
    const r = await this.#store.mutateTwin(deviceId, moduleId, (t) => {
      if (expectedEtag !== undefined && t.version !== expectedEtag) {
        throw hubError('CLOUD_ERR_PRECONDITION_FAILED', `Twin ${deviceId}${moduleId ? `/${moduleId}` : ''} ETag does not match`);
      }
      const next = fn(t);
      if (next) sizeCheck(next);
      return next;
    });
    if (!r) throw this.#notFound(deviceId, moduleId);
    const { before, after } = r;
    if (after !== before) {
      const change: TwinChange = {
        deviceId,
        moduleId,
        tags: !jsonEqual(before.tags, after.tags),
        desired: before.desired.$version !== after.desired.$version,
        reported: before.reported.$version !== after.reported.$version,
      };
      if (change.desired) await this.#publishDesired(before, after);
      this.#changes.emit('change', change);
    }
    return after;
  }

  async #publishDesired(before: TwinRecord, after: TwinRecord): Promise<void> {
    const patch: JsonObject = replaceProperties(before.desired, userProperties(after.desired), '', { desired: true }).patch;
    await this.#bus.publish({ type: 'desired', deviceId: after.deviceId, moduleId: after.moduleId, patch: { ...patch, $version: after.desired.$version } });
  }

  /**
   * Service PATCH (`{tags, properties: {desired}}`, merge semantics, `null` deletes). Reported properties are
   * read-only for the service, as in IoT Hub.
   */
  async patch(deviceId: string, moduleId: string, body: unknown, expectedEtag: number | undefined): Promise<TwinRecord> {
    if (!isObject(body)) throw hubError('CLOUD_ERR_BAD_REQUEST', 'Twin patch must be a JSON object');
    const props = body['properties'];
    if (props !== undefined && props !== null && !isObject(props)) throw hubError('CLOUD_ERR_BAD_REQUEST', 'properties must be an object');
    if (isObject(props) && props['reported'] !== undefined) throw hubError('CLOUD_ERR_BAD_REQUEST', 'Reported properties are read-only for the service');
    const tags = body['tags'] === undefined || body['tags'] === null ? undefined : patchOrThrow(body['tags'], 'tags');
    const desired = isObject(props) && props['desired'] !== undefined ? patchOrThrow(props['desired'], 'properties.desired') : undefined;
    const now = this.#now().toISOString();
    return this.#write(deviceId, moduleId, expectedEtag, (t) => {
      let next = t;
      if (tags) next = { ...next, tags: mergeTags(next.tags, tags) };
      if (desired && Object.keys(userProperties(desired)).length > 0) next = { ...next, desired: applyPatch(next.desired, desired, now, { desired: true }) };
      return next === t ? undefined : next;
    });
  }

  /** Service PUT: replaces tags and desired properties. */
  async replace(deviceId: string, moduleId: string, body: unknown, expectedEtag: number | undefined): Promise<TwinRecord> {
    if (!isObject(body)) throw hubError('CLOUD_ERR_BAD_REQUEST', 'Twin must be a JSON object');
    const tags = patchOrThrow(body['tags'] ?? {}, 'tags');
    const props = isObject(body['properties']) ? body['properties'] : {};
    const desired = patchOrThrow(props['desired'] ?? {}, 'properties.desired');
    const now = this.#now().toISOString();
    return this.#write(deviceId, moduleId, expectedEtag, (t) => ({
      ...t,
      tags: cloneJson(tags),
      desired: replaceProperties(t.desired, userProperties(desired), now, { desired: true }).doc,
    }));
  }

  /** Device-side reported patch (MQTT). Returns the new reported `$version`. */
  async patchReported(deviceId: string, moduleId: string, body: unknown): Promise<number> {
    const patch = patchOrThrow(body, 'properties.reported');
    const now = this.#now().toISOString();
    const t = await this.#write(deviceId, moduleId, undefined, (t0) => ({ ...t0, reported: applyPatch(t0.reported, patch, now, { desired: false }) }));
    return t.reported.$version;
  }

  /** Replaces a twin's desired properties (deployments); no write (and no notification) when nothing changes. */
  async replaceDesired(deviceId: string, moduleId: string, desired: JsonObject): Promise<TwinRecord> {
    const clean = patchOrThrow(desired, `${moduleId || deviceId}.properties.desired`);
    const now = this.#now().toISOString();
    return this.#write(deviceId, moduleId, undefined, (t) => {
      if (jsonEqual(userProperties(t.desired), userProperties(clean))) return undefined;
      return { ...t, desired: replaceProperties(t.desired, userProperties(clean), now, { desired: true }).doc };
    });
  }

  /** Sets the twin's `configurations` map (deployment status); no write when unchanged. */
  async setConfigurations(deviceId: string, moduleId: string, configurations: JsonObject): Promise<void> {
    await this.#write(deviceId, moduleId, undefined, (t) => (jsonEqual(t.configurations, configurations) ? undefined : { ...t, configurations }));
  }
}
