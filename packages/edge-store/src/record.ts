/**
 * The on-disk record of one stored message (ADR 0008), little-endian:
 *
 * | bytes | field |
 * |---|---|
 * | 4 | payload length `n` |
 * | 4 | CRC-32 of the payload |
 * | n | payload: kind (u8 = 1), queue id (u32), offset (u64), expiresAt (f64 ms), enqueuedAt (f64 ms), meta length (u32), meta (UTF-8 JSON), body |
 *
 * `meta` is `{"i": id, "p": [k, v, …], "s": [k, v, …], "src": source}`: property bags as flat pairs, so hostile keys
 * come back as own keys of null-prototype records.
 */
import { crc32 } from 'node:zlib';
import type { EdgeMessage, StoredMessage } from '@kedge/routing';

export const RECORD_HEADER = 8;
const KIND_MESSAGE = 1;
/** kind + queue id + offset + expiresAt + enqueuedAt + meta length. */
const FIXED = 1 + 4 + 8 + 8 + 8 + 4;

/** What a scan needs without decoding the message. */
export interface RecordHead {
  readonly queueId: number;
  readonly offset: bigint;
  readonly expiresAt: number;
  /** Total record size, header included. */
  readonly size: number;
}

function pairs(bag: Readonly<Record<string, string>>): string[] {
  const out: string[] = [];
  for (const k of Object.keys(bag)) out.push(k, bag[k] as string);
  return out;
}

/**
 * The JSON of `make()` for `o`, kept for frozen objects (immutable, so the text stays right): a sender's messages share
 * their frozen property bags and source.
 */
const jsonCache = new WeakMap<object, string>();
function frozenJson(o: object, make: () => unknown): string {
  const cached = jsonCache.get(o);
  if (cached !== undefined) return cached;
  const text = JSON.stringify(make());
  if (Object.isFrozen(o)) jsonCache.set(o, text);
  return text;
}

function bag(p: unknown): Record<string, string> {
  const out = Object.create(null) as Record<string, string>;
  if (!Array.isArray(p)) return out;
  for (let i = 0; i + 1 < p.length; i += 2) {
    const k: unknown = p[i];
    const v: unknown = p[i + 1];
    if (typeof k === 'string' && typeof v === 'string') out[k] = v;
  }
  return out;
}

/** Encodes one record. */
export function encodeRecord(queueId: number, stored: StoredMessage): Buffer {
  const m = stored.message;
  // The meta text is written straight into the record (no intermediate buffer: this runs for every message). It is
  // the JSON of `{ i, p, s, src }`, built from parts: a frozen property bag is shared by many messages of a sender.
  const metaText = `{"i":${JSON.stringify(m.id)},"p":${frozenJson(m.properties, () => pairs(m.properties))},"s":${frozenJson(m.systemProperties, () => pairs(m.systemProperties))},"src":${frozenJson(m.source, () => m.source)}}`;
  const metaLength = Buffer.byteLength(metaText, 'utf8');
  const n = FIXED + metaLength + m.body.byteLength;
  const buf = Buffer.allocUnsafe(RECORD_HEADER + n);
  let o = RECORD_HEADER;
  buf.writeUInt8(KIND_MESSAGE, o);
  o += 1;
  buf.writeUInt32LE(queueId, o);
  o += 4;
  buf.writeBigUInt64LE(stored.offset, o);
  o += 8;
  buf.writeDoubleLE(stored.expiresAt, o);
  o += 8;
  buf.writeDoubleLE(m.enqueuedAt, o);
  o += 8;
  buf.writeUInt32LE(metaLength, o);
  o += 4;
  buf.write(metaText, o, metaLength, 'utf8');
  o += metaLength;
  buf.set(m.body, o);
  buf.writeUInt32LE(n, 0);
  buf.writeUInt32LE(crc32(buf.subarray(RECORD_HEADER)), 4);
  return buf;
}

/**
 * The head of the record at `pos`, or `undefined` when the bytes there are not a whole valid record (torn write,
 * corruption, end of data). `verify` checks the CRC.
 */
export function readHead(buf: Buffer, pos: number, end: number, verify: boolean, maxRecord: number): RecordHead | undefined {
  if (pos + RECORD_HEADER > end) return undefined;
  const n = buf.readUInt32LE(pos);
  if (n < FIXED || n > maxRecord || pos + RECORD_HEADER + n > end) return undefined;
  const p = pos + RECORD_HEADER;
  if (verify && crc32(buf.subarray(p, p + n)) !== buf.readUInt32LE(pos + 4)) return undefined;
  if (buf.readUInt8(p) !== KIND_MESSAGE) return undefined;
  return { queueId: buf.readUInt32LE(p + 1), offset: buf.readBigUInt64LE(p + 5), expiresAt: buf.readDoubleLE(p + 13), size: RECORD_HEADER + n };
}

/** True when the record's CRC matches. */
export function crcOk(buf: Buffer, pos: number, size: number): boolean {
  return crc32(buf.subarray(pos + RECORD_HEADER, pos + size)) === buf.readUInt32LE(pos + 4);
}

/** Decodes the message of a record whose head was read at `pos`. Copies the body out of `buf`. */
export function decodeRecord(buf: Buffer, pos: number, head: RecordHead): StoredMessage {
  const p = pos + RECORD_HEADER;
  const enqueuedAt = buf.readDoubleLE(p + 21);
  const metaLen = buf.readUInt32LE(p + 29);
  const metaStart = p + FIXED;
  const meta = JSON.parse(buf.toString('utf8', metaStart, metaStart + metaLen)) as { i?: unknown; p?: unknown; s?: unknown; src?: unknown };
  const body = new Uint8Array(buf.subarray(metaStart + metaLen, pos + head.size));
  const message: EdgeMessage = {
    id: typeof meta.i === 'string' ? meta.i : '',
    body,
    properties: bag(meta.p),
    systemProperties: bag(meta.s),
    source: source(meta.src),
    enqueuedAt,
  };
  return { offset: head.offset, message, expiresAt: head.expiresAt };
}

function str(o: Record<string, unknown>, k: string): string | undefined {
  const v = Object.hasOwn(o, k) ? o[k] : undefined;
  return typeof v === 'string' ? v : undefined;
}

function source(v: unknown): EdgeMessage['source'] {
  const o = (v !== null && typeof v === 'object' ? v : {}) as Record<string, unknown>;
  const deviceId = str(o, 'deviceId') ?? '';
  const moduleId = str(o, 'moduleId');
  if (str(o, 'kind') === 'twinChangeNotification') return { kind: 'twinChangeNotification', deviceId, ...(moduleId !== undefined ? { moduleId } : {}) };
  const output = str(o, 'output');
  const kind = str(o, 'kind') === 'telemetry' ? { kind: 'telemetry' as const } : {};
  return { ...kind, deviceId, ...(moduleId !== undefined ? { moduleId } : {}), ...(output !== undefined ? { output } : {}) };
}
