/**
 * The on-disk record (ADR 0008): what goes in comes out, every malformed or foreign record is refused by
 * `readHead`, and meta written by something else (odd pairs, non-strings, a missing source) decodes to safe values.
 */
import { crc32 } from 'node:zlib';
import { testMessage, type EdgeMessage, type StoredMessage } from '@kedge/routing';
import { describe, expect, it } from 'vitest';
import { crcOk, decodeRecord, encodeRecord, readHead, RECORD_HEADER } from './record.js';

/** kind + queue id + offset + expiresAt + enqueuedAt + meta length, per the format table. */
const FIXED = 33;
const MAX = 1 << 20;
const stored = (message: EdgeMessage, offset = 7n, expiresAt = 1_800_000_000_000.5): StoredMessage => ({ offset, message, expiresAt });
const roundTrip = (s: StoredMessage, queueId = 3): StoredMessage => {
  const buf = encodeRecord(queueId, s);
  const head = readHead(buf, 0, buf.length, true, MAX);
  if (!head) throw new Error('record not read back');
  return decodeRecord(buf, 0, head);
};

/** A record written by hand from the format table, with any meta text and kind (what another writer could leave). */
function rawRecord(meta: string, opts: { kind?: number; body?: Uint8Array } = {}): Buffer {
  const metaBytes = Buffer.from(meta, 'utf8');
  const body = opts.body ?? new Uint8Array([1, 2]);
  const n = FIXED + metaBytes.length + body.length;
  const b = Buffer.alloc(RECORD_HEADER + n);
  b.writeUInt32LE(n, 0);
  b.writeUInt8(opts.kind ?? 1, 8);
  b.writeUInt32LE(9, 9);
  b.writeBigUInt64LE(5n, 13);
  b.writeDoubleLE(100, 21);
  b.writeDoubleLE(50, 29);
  b.writeUInt32LE(metaBytes.length, 37);
  metaBytes.copy(b, 41);
  b.set(body, 41 + metaBytes.length);
  b.writeUInt32LE(crc32(b.subarray(RECORD_HEADER)), 4);
  return b;
}

describe('record encoding', () => {
  it('keeps every field: id, body, both bags (hostile keys as own data), source, times, offset, queue id', () => {
    const m = testMessage('hello', { enqueuedAt: 1_700_000_000_123, source: { kind: 'telemetry', deviceId: 'd', moduleId: 'm', output: 'out1' } });
    const s = stored(m, 2n ** 63n + 5n);
    const buf = encodeRecord(0xfffffffe, s);
    const head = readHead(buf, 0, buf.length, true, MAX);
    expect(head).toEqual({ queueId: 0xfffffffe, offset: 2n ** 63n + 5n, expiresAt: 1_800_000_000_000.5, size: buf.length });
    const back = decodeRecord(buf, 0, head as NonNullable<typeof head>);
    expect(back.offset).toBe(2n ** 63n + 5n);
    expect(back.expiresAt).toBe(1_800_000_000_000.5);
    expect(back.message.id).toBe('id-hello');
    expect(new TextDecoder().decode(back.message.body)).toBe('hello');
    expect(back.message.enqueuedAt).toBe(1_700_000_000_123);
    expect(back.message.source).toEqual({ kind: 'telemetry', deviceId: 'd', moduleId: 'm', output: 'out1' });
    expect({ ...back.message.properties }).toEqual({ ...m.properties });
    expect(Object.keys(back.message.properties)).toEqual(Object.keys(m.properties));
    expect(Object.getPrototypeOf(back.message.properties)).toBeNull();
    expect(Object.hasOwn(back.message.properties, '__proto__')).toBe(true);
    expect({ ...back.message.systemProperties }).toEqual({ ...m.systemProperties });
    expect(Object.getPrototypeOf(back.message.systemProperties)).toBeNull();
  });

  it("encodes a shared frozen bag and source once and reuses the text, a mutable bag's current contents every time", () => {
    const shared = testMessage('a', { source: Object.freeze({ deviceId: 'd', moduleId: 'm', output: 'o' }) });
    const frozen = { ...shared, properties: Object.freeze({ ...shared.properties }), systemProperties: Object.freeze({ ...shared.systemProperties }) };
    const one = roundTrip(stored({ ...frozen, id: 'one' }));
    const two = roundTrip(stored({ ...frozen, id: 'two' }));
    expect(two.message.id).toBe('two');
    expect({ ...two.message.properties }).toEqual({ ...one.message.properties });
    expect(two.message.source).toEqual({ deviceId: 'd', moduleId: 'm', output: 'o' });
    // A bag that is not frozen may change between messages: its text is not kept.
    const props = Object.assign(Object.create(null) as Record<string, string>, { k: '1' });
    const source = { deviceId: 'd', moduleId: 'm', output: 'first' };
    const m = testMessage('b', { properties: props, source });
    expect(roundTrip(stored(m)).message.properties['k']).toBe('1');
    props['k'] = '2';
    source.output = 'second';
    const again = roundTrip(stored(m));
    expect(again.message.properties['k']).toBe('2');
    expect(again.message.source).toEqual({ deviceId: 'd', moduleId: 'm', output: 'second' });
  });

  it('an infinite expiry, an empty body, empty bags and a leaf device source', () => {
    const m: EdgeMessage = { id: 'x', body: new Uint8Array(0), properties: {}, systemProperties: {}, source: { deviceId: 'leaf' }, enqueuedAt: 0 };
    const back = roundTrip(stored(m, 0n, Infinity));
    expect(back.expiresAt).toBe(Infinity);
    expect(back.message.body.byteLength).toBe(0);
    expect(back.message.source).toEqual({ deviceId: 'leaf' });
    expect({ ...back.message.properties }).toEqual({});
  });

  it('twin-change notifications keep their kind, with and without a module', () => {
    const base = testMessage('t');
    expect(roundTrip(stored({ ...base, source: { kind: 'twinChangeNotification', deviceId: 'd', moduleId: 'm' } })).message.source).toEqual({ kind: 'twinChangeNotification', deviceId: 'd', moduleId: 'm' });
    expect(roundTrip(stored({ ...base, source: { kind: 'twinChangeNotification', deviceId: 'd' } })).message.source).toEqual({ kind: 'twinChangeNotification', deviceId: 'd' });
    expect(roundTrip(stored({ ...base, source: { deviceId: 'd', output: 'o' } })).message.source).toEqual({ deviceId: 'd', output: 'o' });
  });

  it('the body is a copy: changing the buffer afterwards does not change the message', () => {
    const buf = encodeRecord(1, stored(testMessage('abc')));
    const head = readHead(buf, 0, buf.length, true, MAX);
    const back = decodeRecord(buf, 0, head as NonNullable<typeof head>);
    buf.fill(0);
    expect(new TextDecoder().decode(back.message.body)).toBe('abc');
  });

  it('reads a record in the middle of a buffer', () => {
    const a = encodeRecord(1, stored(testMessage('first'), 0n));
    const b = encodeRecord(2, stored(testMessage('second'), 1n));
    const all = Buffer.concat([a, b]);
    const head = readHead(all, a.length, all.length, true, MAX);
    expect(head).toMatchObject({ queueId: 2, offset: 1n, size: b.length });
    expect(new TextDecoder().decode(decodeRecord(all, a.length, head as NonNullable<typeof head>).message.body)).toBe('second');
    expect(crcOk(all, a.length, b.length)).toBe(true);
  });
});

describe('readHead refuses what is not one whole valid record', () => {
  const buf = encodeRecord(4, stored(testMessage('payload')));
  const n = buf.length - RECORD_HEADER;

  it('fewer bytes than a header, or than the record announces (torn write)', () => {
    expect(readHead(buf, 0, RECORD_HEADER - 1, true, MAX)).toBeUndefined();
    expect(readHead(buf, 0, buf.length - 1, true, MAX)).toBeUndefined();
    expect(readHead(buf, 0, buf.length, true, MAX)).toBeDefined();
    expect(readHead(buf, 1, buf.length, true, MAX)).toBeUndefined();
  });

  it('a length over the largest record, or under the fixed fields', () => {
    expect(readHead(buf, 0, buf.length, true, n)).toBeDefined();
    expect(readHead(buf, 0, buf.length, true, n - 1)).toBeUndefined();
    const short = Buffer.from(buf);
    short.writeUInt32LE(FIXED - 1, 0);
    expect(readHead(short, 0, short.length, false, MAX)).toBeUndefined();
    // The smallest valid record: fixed fields, empty meta length… and exactly FIXED bytes.
    const smallest = Buffer.alloc(RECORD_HEADER + FIXED);
    smallest.writeUInt32LE(FIXED, 0);
    smallest.writeUInt8(1, 8);
    smallest.writeUInt32LE(crc32(smallest.subarray(RECORD_HEADER)), 4);
    expect(readHead(smallest, 0, smallest.length, true, MAX)).toMatchObject({ size: RECORD_HEADER + FIXED });
  });

  it('a CRC mismatch when verifying (and only then)', () => {
    const bad = Buffer.from(buf);
    bad[bad.length - 1] = (bad[bad.length - 1] ?? 0) ^ 0xff;
    expect(readHead(bad, 0, bad.length, true, MAX)).toBeUndefined();
    expect(readHead(bad, 0, bad.length, false, MAX)).toBeDefined();
    expect(crcOk(bad, 0, bad.length)).toBe(false);
    expect(crcOk(buf, 0, buf.length)).toBe(true);
  });

  it('a record of another kind', () => {
    const other = rawRecord('{}', { kind: 2 });
    expect(readHead(other, 0, other.length, true, MAX)).toBeUndefined();
    expect(readHead(rawRecord('{}'), 0, other.length, true, MAX)).toBeDefined();
  });
});

describe('decodeRecord: meta from another writer', () => {
  const decode = (meta: string): EdgeMessage => {
    const b = rawRecord(meta);
    const head = readHead(b, 0, b.length, true, MAX);
    if (!head) throw new Error('not read');
    return decodeRecord(b, 0, head).message;
  };

  it('reads the fixed fields at their offsets', () => {
    const b = rawRecord('{}');
    const head = readHead(b, 0, b.length, true, MAX);
    expect(head).toEqual({ queueId: 9, offset: 5n, expiresAt: 100, size: b.length });
    const s = decodeRecord(b, 0, head as NonNullable<typeof head>);
    expect(s.message.enqueuedAt).toBe(50);
    expect([...s.message.body]).toEqual([1, 2]);
  });

  it('no id, bags or source: empty id, empty null-prototype bags, a source with an empty device id', () => {
    const m = decode('{}');
    expect(m.id).toBe('');
    expect(Object.getPrototypeOf(m.properties)).toBeNull();
    expect(Object.keys(m.properties)).toEqual([]);
    expect(Object.getPrototypeOf(m.systemProperties)).toBeNull();
    expect(m.source).toEqual({ deviceId: '' });
    expect(decode('{"src":null}').source).toEqual({ deviceId: '' });
    expect(decode('{"src":"d"}').source).toEqual({ deviceId: '' });
  });

  it('bags: pairs of strings only; a dangling key and non-string pairs are dropped; a non-array is empty', () => {
    const m = decode('{"i":1,"p":["a","1",2,"x","b",null,"c","3","dangling"],"s":{"a":"b"}}');
    expect(m.id).toBe('');
    expect({ ...m.properties }).toEqual({ a: '1', c: '3' });
    expect(Object.keys(m.systemProperties)).toEqual([]);
    expect({ ...decode('{"p":["__proto__","v"]}').properties }).toEqual(Object.fromEntries([['__proto__', 'v']]));
    expect(Object.getPrototypeOf(decode('{"p":["__proto__","v"]}').properties)).toBeNull();
  });

  it('source: only string fields count, only the two known kinds, inherited keys ignored', () => {
    expect(decode('{"src":{"deviceId":5,"moduleId":false,"output":[]}}').source).toEqual({ deviceId: '' });
    expect(decode('{"src":{"kind":"other","deviceId":"d","output":"o"}}').source).toEqual({ deviceId: 'd', output: 'o' });
    expect(decode('{"src":{"kind":"telemetry","deviceId":"d"}}').source).toEqual({ kind: 'telemetry', deviceId: 'd' });
    expect(decode('{"src":{"kind":"twinChangeNotification","deviceId":"d","output":"o"}}').source).toEqual({ kind: 'twinChangeNotification', deviceId: 'd' });
    expect(decode('{"src":{"__proto__":{"deviceId":"x"}}}').source).toEqual({ deviceId: '' });
    expect(decode('{"src":{"deviceId":"d","moduleId":""}}').source).toEqual({ deviceId: 'd', moduleId: '' });
  });
});
