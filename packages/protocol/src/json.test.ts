import { describe, expect, it } from 'vitest';
import { cloneJson, hasOwn, isObject, newObject, objectFromEntries, ownValue, parseJson, parseJsonBytes } from './json.js';
import type { Json } from './json.js';
import { INBOUND_WIRE_NAMES, OUTBOUND_WIRE_NAMES, SYSTEM_PROPERTY_NAMES, systemPropertyName } from './system-properties.js';

describe('untrusted JSON', () => {
  it('isObject is true for objects only', () => {
    expect([{}, newObject(), [], null, 'x', 1, true, undefined].map(isObject)).toEqual([true, true, false, false, false, false, false, false]);
  });

  it('parseJson gives null-prototype objects at every depth and keeps __proto__ as data', () => {
    const v = parseJson('{"__proto__":{"polluted":1},"a":[{"constructor":2}],"n":null}') as Record<string, Json>;
    expect(Object.getPrototypeOf(v)).toBeNull();
    expect(Object.getPrototypeOf(v['__proto__'])).toBeNull();
    expect(hasOwn(v, '__proto__')).toBe(true);
    const inner = (v['a'] as Json[])[0] as Record<string, Json>;
    expect(Object.getPrototypeOf(inner)).toBeNull();
    expect(inner['constructor']).toBe(2);
    expect(Array.isArray(v['a'])).toBe(true);
    expect(({} as Record<string, unknown>)['polluted']).toBeUndefined();
    expect(() => parseJson('{')).toThrow(SyntaxError);
  });

  it('parseJsonBytes refuses invalid UTF-8 instead of replacing it', () => {
    expect(parseJsonBytes(new TextEncoder().encode('{"é":1}'))).toEqual(objectFromEntries([['é', 1]]));
    expect(() => parseJsonBytes(Uint8Array.from([0x22, 0xff, 0x22]))).toThrow(TypeError);
  });

  it('ownValue and hasOwn never see inherited members', () => {
    const plain: Record<string, number> = { a: 1 };
    expect(ownValue(plain, 'a')).toBe(1);
    expect(ownValue(plain, 'constructor')).toBeUndefined();
    expect(ownValue(plain, 'toString')).toBeUndefined();
    expect(hasOwn(plain, 'a')).toBe(true);
    expect(hasOwn(plain, 'hasOwnProperty')).toBe(false);
  });

  it('cloneJson deep-copies into null-prototype objects, arrays stay arrays', () => {
    const src: Json = { a: { b: [1, { c: 'x' }] }, d: null };
    const copy = cloneJson(src) as Record<string, Json>;
    expect(copy).toEqual(src);
    expect(copy).not.toBe(src);
    expect(Object.getPrototypeOf(copy)).toBeNull();
    const a = copy['a'] as Record<string, Json>;
    expect(a).not.toBe((src as Record<string, Json>)['a']);
    expect(Object.getPrototypeOf(a)).toBeNull();
    expect(Array.isArray(a['b'])).toBe(true);
    expect(Object.getPrototypeOf((a['b'] as Json[])[1])).toBeNull();
    expect(cloneJson('s')).toBe('s');
  });

  it('objectFromEntries stores __proto__ as an own key', () => {
    const o = objectFromEntries([['__proto__', 1], ['b', 2]]);
    expect(Object.getPrototypeOf(o)).toBeNull();
    expect(Object.keys(o)).toEqual(['__proto__', 'b']);
    expect(o['__proto__']).toBe(1);
  });
});

describe('system property names', () => {
  it('are exactly the IoT Hub wire names (iotedge-protocols.md §3.3, §3.4)', () => {
    expect({ ...SYSTEM_PROPERTY_NAMES }).toEqual({
      '$.mid': 'messageId', '$.cid': 'correlationId', '$.uid': 'userId', '$.to': 'to', '$.exp': 'expiryTimeUtc',
      '$.ct': 'contentType', '$.ce': 'contentEncoding', '$.schema': 'messageSchema', '$.ctime': 'creationTimeUtc',
      '$.on': 'outputName', '$.ifid': 'interfaceId', '$.sub': 'componentName', 'iothub-operation': 'operation', ack: 'ack',
    });
    expect({ ...OUTBOUND_WIRE_NAMES }).toEqual({
      messageId: '$.mid', correlationId: '$.cid', userId: '$.uid', to: '$.to', expiryTimeUtc: '$.exp', contentType: '$.ct',
      contentEncoding: '$.ce', messageSchema: '$.schema', creationTimeUtc: '$.ctime', componentName: '$.sub',
      operation: 'iothub-operation', ack: 'ack', connectionDeviceId: '$.cdid', connectionModuleId: '$.cmid',
    });
    expect(INBOUND_WIRE_NAMES['outputName']).toBe('$.on');
    for (const t of [SYSTEM_PROPERTY_NAMES, OUTBOUND_WIRE_NAMES, INBOUND_WIRE_NAMES]) {
      expect(Object.getPrototypeOf(t)).toBeNull();
      expect(Object.isFrozen(t)).toBe(true);
    }
  });

  it('systemPropertyName looks up own names only', () => {
    expect(systemPropertyName('$.mid')).toBe('messageId');
    expect(systemPropertyName('constructor')).toBeUndefined();
    expect(systemPropertyName('__proto__')).toBeUndefined();
    expect(systemPropertyName('toString', { a: 'b' })).toBeUndefined();
    expect(systemPropertyName('a', { a: 'b' })).toBe('b');
  });
});
