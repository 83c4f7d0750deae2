import { describe, expect, it } from 'vitest';
import { messageFromJson } from './message-json.js';

const value = (input: unknown) => {
  const r = messageFromJson(input);
  if (!r.ok) throw new Error(`expected a message, got ${JSON.stringify(r.error)}`);
  return r.value;
};
const issues = (input: unknown) => {
  const r = messageFromJson(input);
  if (r.ok) throw new Error('expected issues');
  return r.error;
};

describe('messageFromJson field by field', () => {
  it('keeps string and null property values and reads numbers and booleans as their text', () => {
    const m = value({ source: { deviceId: 'd' }, properties: { s: 'x', z: null, n: 1.5, t: true, f: false }, systemProperties: { k: 7 } });
    expect({ ...m.properties }).toEqual({ s: 'x', z: null, n: '1.5', t: 'true', f: 'false' });
    expect({ ...m.systemProperties }).toEqual({ k: '7' });
  });

  it('refuses property bags that are not objects and values that are not strings', () => {
    expect(issues({ source: { deviceId: 'd' }, properties: null })).toEqual([{ path: '$.properties', message: 'must be an object of string values' }]);
    expect(issues({ source: { deviceId: 'd' }, systemProperties: ['a'] })).toEqual([{ path: '$.systemProperties', message: 'must be an object of string values' }]);
    expect(issues({ source: { deviceId: 'd' }, properties: 'a=1' })).toEqual([{ path: '$.properties', message: 'must be an object of string values' }]);
    expect(issues({ source: { deviceId: 'd' }, properties: { o: {}, a: [] } })).toEqual([
      { path: '$.properties.o', message: 'must be a string or null' },
      { path: '$.properties.a', message: 'must be a string or null' },
    ]);
  });

  it('reads the source: a missing device id is empty, optional parts appear only when given', () => {
    expect(value({}).source).toStrictEqual({ deviceId: '' });
    expect(value({ source: { deviceId: null } }).source).toStrictEqual({ deviceId: '' });
    expect(value({ source: { deviceId: 'd', moduleId: 'm' } }).source).toStrictEqual({ deviceId: 'd', moduleId: 'm' });
    expect(value({ source: { deviceId: 'd', output: 'o' } }).source).toStrictEqual({ deviceId: 'd', output: 'o' });
    expect(value({ source: { deviceId: 'd', moduleId: 'm', output: 'o' } }).source).toStrictEqual({ deviceId: 'd', moduleId: 'm', output: 'o' });
  });

  it('refuses source parts that are not strings, naming each', () => {
    expect(issues({ source: { deviceId: 1, moduleId: 2, output: 3 } })).toEqual([
      { path: '$.source.deviceId', message: 'must be a string' },
      { path: '$.source.moduleId', message: 'must be a string' },
      { path: '$.source.output', message: 'must be a string' },
    ]);
    expect(issues({ source: 'd' })).toEqual([{ path: '$.source', message: 'must be an object like {"deviceId": "d1", "moduleId": "m", "output": "o"}' }]);
  });

  it('makes twin-change notifications from source.kind or the messageType system property, without an output', () => {
    expect(value({ source: { deviceId: 'd', kind: 'twinChangeNotification' } }).source).toStrictEqual({ kind: 'twinChangeNotification', deviceId: 'd' });
    expect(value({ source: { deviceId: 'd', moduleId: 'm', output: 'o', kind: 'twinChangeNotification' } }).source).toStrictEqual({
      kind: 'twinChangeNotification',
      deviceId: 'd',
      moduleId: 'm',
    });
    expect(value({ source: { deviceId: 'd' }, systemProperties: { messageType: 'twinChangeNotification' } }).source).toStrictEqual({ kind: 'twinChangeNotification', deviceId: 'd' });
    expect(value({ source: { deviceId: 'd', kind: 'telemetry' }, systemProperties: { messageType: 'other' } }).source).toStrictEqual({ deviceId: 'd' });
  });

  it('takes content type and encoding from the fields, else from the system properties, else leaves them out', () => {
    const fromSys = value({ systemProperties: { contentType: 'application/json', contentEncoding: 'utf-8' } });
    expect([fromSys.contentType, fromSys.contentEncoding]).toEqual(['application/json', 'utf-8']);
    const both = value({ contentType: 'text/plain', contentEncoding: 'utf-16', systemProperties: { contentType: 'application/json', contentEncoding: 'utf-8' } });
    expect([both.contentType, both.contentEncoding]).toEqual(['text/plain', 'utf-16']);
    const none = value({});
    expect(Object.keys(none).sort()).toEqual(['body', 'properties', 'source', 'systemProperties']);
    expect(issues({ contentEncoding: 8 })).toEqual([{ path: '$.contentEncoding', message: 'must be a string' }]);
  });

  it('decodes bodyBase64 ignoring whitespace and refuses what is not base64', () => {
    expect(value({ bodyBase64: 'AAEC\n /w==' }).body).toEqual(new Uint8Array([0, 1, 2, 255]));
    expect(value({ bodyBase64: '' }).body).toEqual(new Uint8Array(0));
    expect(issues({ bodyBase64: 'AA*=' })).toEqual([{ path: '$.bodyBase64', message: 'must be base64' }]);
    expect(issues({ bodyBase64: 12 })).toEqual([{ path: '$.bodyBase64', message: 'must be a base64 string' }]);
    expect(issues({ bodyBase64: false, body: 'x' })).toEqual([{ path: '$.bodyBase64', message: 'must be a base64 string' }]);
    // A null bodyBase64 is absent: the body is used.
    expect(value({ bodyBase64: null, body: 'hi' }).body).toEqual(new TextEncoder().encode('hi'));
  });

  it('reads an absent or null body as no bytes, other JSON as the value itself', () => {
    expect(value({}).body).toEqual(new Uint8Array(0));
    expect(value({ body: null }).body).toEqual(new Uint8Array(0));
    expect(value({ body: 0 }).body).toBe(0);
    expect(value({ body: false }).body).toBe(false);
    expect(value({ body: [1, 'a'] }).body).toEqual([1, 'a']);
  });
});
