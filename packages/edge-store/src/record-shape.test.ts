/**
 * A decoded record's source has exactly the keys the encoded one had: no `moduleId` or `output` key (not even one
 * holding `undefined`) when the message had none, for telemetry, module outputs and twin change notifications.
 */
import { testMessage } from '@kedge/routing';
import { describe, expect, it } from 'vitest';
import { decodeRecord, encodeRecord, readHead } from './record.js';

const roundTrip = (source: Parameters<typeof testMessage>[1] extends infer O ? (O extends { source?: infer S } ? S : never) : never) => {
  const buf = encodeRecord(1, { offset: 0n, message: testMessage('x', { source }), expiresAt: 0 });
  const head = readHead(buf, 0, buf.length, true, 1 << 20);
  if (head === undefined) throw new Error('no head');
  return decodeRecord(buf, 0, head).message.source;
};

describe('record source shape', () => {
  it('keeps only the keys that were there', () => {
    expect(Object.keys(roundTrip({ kind: 'telemetry', deviceId: 'd' }))).toEqual(['kind', 'deviceId']);
    expect(Object.keys(roundTrip({ deviceId: 'd', output: 'o' }))).toEqual(['deviceId', 'output']);
    expect(Object.keys(roundTrip({ deviceId: 'd', moduleId: 'm' }))).toEqual(['deviceId', 'moduleId']);
    expect(Object.keys(roundTrip({ kind: 'twinChangeNotification', deviceId: 'd' }))).toEqual(['kind', 'deviceId']);
    expect(Object.keys(roundTrip({ kind: 'twinChangeNotification', deviceId: 'd', moduleId: 'm' }))).toEqual(['kind', 'deviceId', 'moduleId']);
  });
});
