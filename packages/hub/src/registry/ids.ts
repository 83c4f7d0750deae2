import { hubError } from '../errors.js';

/** IoT Hub's longest device or module id. */
export const MAX_ID_LENGTH = 128;

/**
 * Device and module ids: IoT Hub's alphabet (ASCII letters, digits and `- . % _ * ? ! ( ) , : = @ $ '`), up to 128
 * characters. Deliberately narrower than IoT Hub: `#`, `+` and `/` are refused because they are MQTT wildcards or
 * level separators, and an id containing them could address someone else's topics.
 */
const ID_ALPHABET = /^[A-Za-z0-9\-.%_*?!(),:=@$']+$/;

/** System module ids an edge device owns. */
export const SYSTEM_MODULES = ['$edgeAgent', '$edgeHub'] as const;

/** Why `id` is not a valid device (`module: false`) or module id, or `undefined` when it is. */
export function idProblem(id: string, opts: { module: boolean }): string | undefined {
  if (id.length === 0) return 'ids cannot be empty';
  if (id.length > MAX_ID_LENGTH) return `ids are at most ${MAX_ID_LENGTH} characters (got ${id.length})`;
  if (!ID_ALPHABET.test(id)) return "ids use ASCII letters, digits and - . % _ * ? ! ( ) , : = @ $ ' only";
  // `.` and `..` are path segments to every URL library, so an id of dots only could never be addressed.
  if (/^\.+$/.test(id)) return 'ids cannot consist of dots only';
  if (id.startsWith('$') && !(opts.module && (SYSTEM_MODULES as readonly string[]).includes(id))) return 'ids starting with "$" are reserved';
  return undefined;
}

const invalid = (kind: string, id: string, why: string): Error => hubError('CLOUD_ERR_INVALID_ID', `Invalid ${kind} id '${id.slice(0, 140)}': ${why}`);

/** Throws `CLOUD_ERR_INVALID_ID` unless `id` is a valid device id. */
export function assertDeviceId(id: string): void {
  const why = idProblem(id, { module: false });
  if (why !== undefined) throw invalid('device', id, why);
}

/** Throws `CLOUD_ERR_INVALID_ID` unless `id` is a valid module id (`$edgeAgent`/`$edgeHub` included). */
export function assertModuleId(id: string): void {
  const why = idProblem(id, { module: true });
  if (why !== undefined) throw invalid('module', id, why);
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
