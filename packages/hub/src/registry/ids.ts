import { hubError } from '../errors.js';

/**
 * Device and module ids: IoT Hub's alphabet (ASCII letters, digits and `- . % _ * ? ! ( ) , : = @ $ '`), up to 128
 * characters. Deliberately narrower than IoT Hub: `#`, `+` and `/` are refused because they are MQTT wildcards or
 * level separators, and an id containing them could address someone else's topics.
 */
const ID = /^[A-Za-z0-9\-.%_*?!(),:=@$']{1,128}$/;

/** System module ids an edge device owns. */
export const SYSTEM_MODULES = ['$edgeAgent', '$edgeHub'] as const;

export function assertDeviceId(id: string): void {
  if (!ID.test(id) || id.startsWith('$')) throw hubError('CLOUD_ERR_INVALID_ID', `Invalid device id '${id.slice(0, 140)}'`);
}

export function assertModuleId(id: string): void {
  const system = (SYSTEM_MODULES as readonly string[]).includes(id);
  if (!ID.test(id) || (id.startsWith('$') && !system)) throw hubError('CLOUD_ERR_INVALID_ID', `Invalid module id '${id.slice(0, 140)}'`);
}

/** IoT Hub-style ETag for an integer version (opaque to clients; quoted on the wire). */
export const etagOf = (version: number): string => Buffer.from(String(version)).toString('base64');

/** Parses an `If-Match` header: `undefined` for none or `*`, the version for an ETag, `-1` for an unknown ETag. */
export function parseIfMatch(header: string | undefined): number | undefined {
  if (header === undefined) return undefined;
  const v = header.trim().replace(/^W\//, '').replace(/^"|"$/g, '');
  if (v === '*' || v === '') return undefined;
  const n = Number(Buffer.from(v, 'base64').toString('utf8'));
  return Number.isInteger(n) && n >= 0 ? n : -1;
}
