import type { Message } from 'rhea';
import rhea from 'rhea';
import { hubError } from '../errors.js';
import { assertDeviceId } from '../registry/ids.js';
import type { C2dAck, NewTelemetry } from '../storage/store.js';
import type { C2dSend } from '../c2d/c2d.js';

/** AMQP data section type code [AMQP 1.0 3.2.6]. */
const DATA_SECTION = 0x75;
/** IoT Hub's longest message and correlation id. */
const MAX_ID_CHARS = 128;
/** Application properties of one message: at most this many, keys and values this long. */
const MAX_PROPERTIES = 64;
const MAX_PROPERTY_CHARS = 1024;
const ACKS: readonly string[] = ['none', 'positive', 'negative', 'full'];

/** The path of an AMQP address: `amqps://host/messages/devicebound` and `/messages/devicebound` are one node. */
export function addressPath(address: unknown): string {
  if (typeof address !== 'string') return '';
  return address.replace(/^amqps?:\/\/[^/]*/i, '').replace(/^wss?:\/\/[^/]*/i, '');
}

/** A message id, correlation id or user id as IoT Hub carries it: a string (uuids and binary ids in canonical form). */
export function idText(v: unknown, what: string): string | undefined {
  if (v === undefined || v === null) return undefined;
  let s: string;
  if (typeof v === 'string') s = v;
  else if (typeof v === 'number' || typeof v === 'bigint') s = String(v);
  else if (Buffer.isBuffer(v)) s = v.length === 16 ? rhea.uuid_to_string(v) : v.toString('hex');
  else throw hubError('CLOUD_ERR_BAD_REQUEST', `Unsupported ${what} type`);
  if (s.length > MAX_ID_CHARS) throw hubError('CLOUD_ERR_BAD_REQUEST', `${what} longer than ${MAX_ID_CHARS} characters`);
  return s;
}

/** The body bytes of a message: one or more data sections, a binary or string value. */
export function bodyBytes(body: unknown): Buffer {
  if (body === undefined || body === null) return Buffer.alloc(0);
  if (Buffer.isBuffer(body)) return body;
  if (typeof body === 'string') return Buffer.from(body, 'utf8');
  const section = body as { typecode?: unknown; content?: unknown; multiple?: unknown };
  if (section.typecode === DATA_SECTION) {
    if (Buffer.isBuffer(section.content)) return section.content;
    if (Array.isArray(section.content) && section.content.every((c) => Buffer.isBuffer(c))) return Buffer.concat(section.content);
  }
  throw hubError('CLOUD_ERR_BAD_REQUEST', 'The message body must be binary data or a string');
}

/**
 * Reads a service's cloud-to-device message (sent to `/messages/devicebound`, `to` = `/devices/{id}/messages/devicebound`)
 * into a {@link C2dSend}. Hostile input: ids and properties are bounded and type-checked, property keys land in a
 * null-prototype object. Throws `CLOUD_ERR_BAD_REQUEST` / `CLOUD_ERR_INVALID_ID`.
 */
export function c2dFromAmqp(m: Message): C2dSend {
  const to = typeof m.to === 'string' ? m.to : '';
  const match = /^\/devices\/([^/]+)\/messages\/devicebound\/?$/.exec(to);
  if (!match) throw hubError('CLOUD_ERR_BAD_REQUEST', "The message 'to' must be /devices/{deviceId}/messages/devicebound");
  let deviceId: string;
  try {
    deviceId = decodeURIComponent(match[1] ?? '');
  } catch {
    throw hubError('CLOUD_ERR_INVALID_ID', 'Malformed device id');
  }
  assertDeviceId(deviceId);
  const properties = Object.create(null) as Record<string, string>;
  let ack: C2dAck = 'none';
  const app: unknown = m.application_properties;
  if (app !== undefined && app !== null) {
    if (typeof app !== 'object') throw hubError('CLOUD_ERR_BAD_REQUEST', 'Malformed application properties');
    const entries = Object.entries(app as Record<string, unknown>);
    if (entries.length > MAX_PROPERTIES) throw hubError('CLOUD_ERR_BAD_REQUEST', `More than ${MAX_PROPERTIES} application properties`);
    for (const [k, v] of entries) {
      if (k === 'iothub-ack') {
        if (typeof v !== 'string' || !ACKS.includes(v)) throw hubError('CLOUD_ERR_BAD_REQUEST', "iothub-ack must be none, positive, negative or full");
        ack = v as C2dAck;
        continue;
      }
      if (typeof v !== 'string' && typeof v !== 'number' && typeof v !== 'boolean') throw hubError('CLOUD_ERR_BAD_REQUEST', `Application property '${k.slice(0, 64)}' is not a string, number or boolean`);
      const value = String(v);
      if (k.length === 0 || k.length > MAX_PROPERTY_CHARS || value.length > MAX_PROPERTY_CHARS) throw hubError('CLOUD_ERR_BAD_REQUEST', 'Application property too long');
      properties[k] = value;
    }
  }
  const system = Object.create(null) as Record<string, string>;
  const cid = idText(m.correlation_id, 'correlation id');
  if (cid !== undefined) system['correlationId'] = cid;
  const uid = idText(m.user_id, 'user id');
  if (uid !== undefined) system['userId'] = Buffer.isBuffer(m.user_id) ? m.user_id.toString('utf8') : uid;
  if (typeof m.content_type === 'string') system['contentType'] = m.content_type.slice(0, MAX_PROPERTY_CHARS);
  if (typeof m.content_encoding === 'string') system['contentEncoding'] = m.content_encoding.slice(0, MAX_PROPERTY_CHARS);
  system['to'] = `/devices/${deviceId}/messages/devicebound`;
  const expiry: unknown = m.absolute_expiry_time;
  let expiresAt: number | undefined;
  if (expiry instanceof Date) expiresAt = expiry.getTime();
  else if (typeof expiry === 'number') expiresAt = expiry;
  if (expiresAt !== undefined && !Number.isFinite(expiresAt)) throw hubError('CLOUD_ERR_BAD_REQUEST', 'Malformed absolute-expiry-time');
  const messageId = idText(m.message_id, 'message id');
  return {
    deviceId,
    ...(messageId === undefined ? {} : { messageId }),
    ack,
    ...(expiresAt === undefined || expiresAt === 0 ? {} : { expiresAt }),
    properties,
    systemProperties: system,
    body: bodyBytes(m.body),
  };
}

/**
 * Reads a device's or module's telemetry message (sent to `/devices/{id}[/modules/{mid}]/messages/events`) into a
 * stored record, stamped with the authenticated identity. Application properties as on MQTT (strings; numbers and booleans as text), bounded.
 */
export function telemetryFromAmqp(m: Message, deviceId: string, maxBodyBytes: number, moduleId = ''): NewTelemetry {
  const body = bodyBytes(m.body);
  if (body.length > maxBodyBytes) throw hubError('CLOUD_ERR_PAYLOAD_TOO_LARGE', `Message body over ${maxBodyBytes} bytes`);
  const properties = Object.create(null) as Record<string, string>;
  const app: unknown = m.application_properties;
  if (app !== undefined && app !== null) {
    if (typeof app !== 'object') throw hubError('CLOUD_ERR_BAD_REQUEST', 'Malformed application properties');
    const entries = Object.entries(app as Record<string, unknown>);
    if (entries.length > MAX_PROPERTIES) throw hubError('CLOUD_ERR_BAD_REQUEST', `More than ${MAX_PROPERTIES} application properties`);
    for (const [k, v] of entries) {
      if (typeof v !== 'string' && typeof v !== 'number' && typeof v !== 'boolean') throw hubError('CLOUD_ERR_BAD_REQUEST', 'Application properties must be strings, numbers or booleans');
      const value = String(v);
      if (k.length === 0 || k.length > MAX_PROPERTY_CHARS || value.length > MAX_PROPERTY_CHARS) throw hubError('CLOUD_ERR_BAD_REQUEST', 'Application property too long');
      properties[k] = value;
    }
  }
  const enqueuedTime = Date.now();
  const system = Object.create(null) as Record<string, string>;
  const mid = idText(m.message_id, 'message id');
  if (mid !== undefined) system['messageId'] = mid;
  const cid = idText(m.correlation_id, 'correlation id');
  if (cid !== undefined) system['correlationId'] = cid;
  if (typeof m.content_type === 'string') system['contentType'] = m.content_type.slice(0, MAX_PROPERTY_CHARS);
  if (typeof m.content_encoding === 'string') system['contentEncoding'] = m.content_encoding.slice(0, MAX_PROPERTY_CHARS);
  system['connectionDeviceId'] = deviceId;
  if (moduleId) system['connectionModuleId'] = moduleId;
  system['enqueuedTime'] = new Date(enqueuedTime).toISOString();
  return { deviceId, moduleId, enqueuedTime, properties, systemProperties: system, body };
}
