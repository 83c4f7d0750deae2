import { describe, expect, it } from 'vitest';
import {
  ClientSubscriptions,
  DEVICE_API_VERSION,
  encodeBag,
  identityAudience,
  methodResponseTopic,
  mqttClientId,
  mqttUsername,
  parseOutbound,
  twinGetTopic,
  twinReportedTopic,
} from './client-topics.js';

const device = { deviceId: 'd1', moduleId: '' };
const mod = { deviceId: 'd1', moduleId: 'm1' };

describe('client topics: exact text', () => {
  it('subscriptions, API version, client id, user name and audience are what the Azure SDKs send', () => {
    expect(ClientSubscriptions).toEqual({
      twinResponses: '$iothub/twin/res/#',
      desiredPatches: '$iothub/twin/PATCH/properties/desired/#',
      methods: '$iothub/methods/POST/#',
    });
    expect(DEVICE_API_VERSION).toBe('2021-04-12');
    expect(mqttClientId(device)).toBe('d1');
    expect(mqttClientId(mod)).toBe('d1/m1');
    expect(mqttUsername('h.example', device, 'kedge/1 (x; y)')).toBe('h.example/d1/?api-version=2021-04-12&DeviceClientType=kedge%2F1%20(x%3B%20y)');
    expect(mqttUsername('h.example', mod, 'a')).toBe('h.example/d1/m1/?api-version=2021-04-12&DeviceClientType=a');
    expect(identityAudience('h.example', device)).toBe('h.example/devices/d1');
    expect(identityAudience('h.example', mod)).toBe('h.example/devices/d1/modules/m1');
  });

  it('publish topics escape the request id', () => {
    expect(twinGetTopic('a&b c')).toBe('$iothub/twin/GET/?$rid=a%26b%20c');
    expect(twinReportedTopic('a=b')).toBe('$iothub/twin/PATCH/properties/reported/?$rid=a%3Db');
    expect(methodResponseTopic(200, 'r/1')).toBe('$iothub/methods/res/200/?$rid=r%2F1');
  });

  it('a property bag: escaped keys and values joined by &; empty for no properties', () => {
    expect(encodeBag({ a: '1', 'b&c': 'd=e' })).toBe('a=1&b%26c=d%3De');
    expect(encodeBag({})).toBe('');
  });
});

describe('parseOutbound: edges', () => {
  it('twin responses: a three-digit status, a non-empty $rid, a version of 1–15 digits', () => {
    expect(parseOutbound('$iothub/twin/res/429/?$rid=x')).toEqual({ kind: 'twin-response', status: 429, rid: 'x' });
    expect(parseOutbound('$iothub/twin/res/20/?$rid=x')).toBeUndefined();
    expect(parseOutbound('$iothub/twin/res/2000/?$rid=x')).toBeUndefined();
    expect(parseOutbound('$iothub/twin/res/200/?$rid=')).toBeUndefined();
    expect(parseOutbound('$iothub/twin/res/200/?$version=3')).toBeUndefined();
    expect(parseOutbound('$iothub/twin/res/200/$rid=1')).toBeUndefined();
    expect(parseOutbound('$iothub/twin/res/200/?$rid=%E0%A4%A')).toBeUndefined();
    expect(parseOutbound('x$iothub/twin/res/200/?$rid=1')).toBeUndefined();
    expect(parseOutbound('$iothub/twin/res/200/?$rid=r%201&$version=123456789012345')).toEqual({ kind: 'twin-response', status: 200, rid: 'r 1', version: 123456789012345 });
    // A version that is not 1–15 digits is left out, the response itself stands.
    for (const v of ['', '1234567890123456', '-1', '1.5', '1e3', ' 1'])
      expect(parseOutbound(`$iothub/twin/res/200/?$rid=1&$version=${encodeURIComponent(v)}`)).toStrictEqual({ kind: 'twin-response', status: 200, rid: '1' });
    // No `version` key at all (not one holding undefined).
    expect(parseOutbound('$iothub/twin/res/200/?$rid=x')).toStrictEqual({ kind: 'twin-response', status: 200, rid: 'x' });
  });

  it('desired patches: with or without a query; a bad query or one without "?" is refused', () => {
    expect(parseOutbound('$iothub/twin/PATCH/properties/desired/')).toEqual({ kind: 'desired-patch' });
    expect(parseOutbound('$iothub/twin/PATCH/properties/desired/?')).toEqual({ kind: 'desired-patch' });
    expect(parseOutbound('$iothub/twin/PATCH/properties/desired/?$version=1')).toEqual({ kind: 'desired-patch', version: 1 });
    expect(parseOutbound('$iothub/twin/PATCH/properties/desired/?$version=x')).toStrictEqual({ kind: 'desired-patch' });
    expect(parseOutbound('$iothub/twin/PATCH/properties/desired/')).toStrictEqual({ kind: 'desired-patch' });
    expect(parseOutbound('$iothub/twin/PATCH/properties/desired/$version=1')).toBeUndefined();
    expect(parseOutbound('$iothub/twin/PATCH/properties/desired/?$version=%E0%A4%A')).toBeUndefined();
    expect(parseOutbound('$iothub/twin/PATCH/properties/desired')).toBeUndefined();
    expect(parseOutbound('$iothub/twin/PATCH/properties/reported/?$version=1')).toBeUndefined();
  });

  it('method requests: a name of 1–128 characters without / # +, escaped; a non-empty $rid', () => {
    expect(parseOutbound(`$iothub/methods/POST/${'n'.repeat(128)}/?$rid=1`)).toEqual({ kind: 'method-request', name: 'n'.repeat(128), rid: '1' });
    expect(parseOutbound(`$iothub/methods/POST/${'n'.repeat(129)}/?$rid=1`)).toBeUndefined();
    expect(parseOutbound('$iothub/methods/POST//?$rid=1')).toBeUndefined();
    expect(parseOutbound('$iothub/methods/POST/a%20b/?$rid=1')).toEqual({ kind: 'method-request', name: 'a b', rid: '1' });
    expect(parseOutbound('$iothub/methods/POST/a%E0%A4%A/?$rid=1')).toBeUndefined();
    expect(parseOutbound('$iothub/methods/POST/a#/?$rid=1')).toBeUndefined();
    expect(parseOutbound('$iothub/methods/POST/a+/?$rid=1')).toBeUndefined();
    expect(parseOutbound('$iothub/methods/POST/a/?$rid=')).toBeUndefined();
    expect(parseOutbound('$iothub/methods/POST/a/?x=1')).toBeUndefined();
    expect(parseOutbound('$iothub/methods/POST/a/$rid=1')).toBeUndefined();
    expect(parseOutbound('x$iothub/methods/POST/a/?$rid=1')).toBeUndefined();
  });
});
