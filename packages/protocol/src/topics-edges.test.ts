import { describe, expect, it } from 'vitest';
import { Feature, formatBag, isOutboundFor, moduleInputTopic, parseClientId, parseInbound, parseQuery, parseUsername, splitBag, subscriptionFeature, telemetryTopic } from './topics.js';
import { OUTBOUND_WIRE_NAMES, SYSTEM_PROPERTY_NAMES } from './system-properties.js';

const dev = { deviceId: 'd1', moduleId: '' };
const mod = { deviceId: 'd1', moduleId: 'm1' };

describe('parseQuery', () => {
  it('decodes keys and values, keeps a key without =, skips empty parts, refuses bad escapes', () => {
    expect(parseQuery('')).toEqual(new Map());
    expect([...parseQuery('a%20b=c%3Dd&&flag&e=')!]).toEqual([
      ['a b', 'c=d'],
      ['flag', ''],
      ['e', ''],
    ]);
    expect(parseQuery('a=%E0%A4%A')).toBeUndefined();
    expect(parseQuery('%E0%A4%A')).toBeUndefined();
  });
});

describe('parseInbound', () => {
  it('classifies telemetry of the identity only, with a bag of one segment (trailing / allowed)', () => {
    expect(parseInbound('devices/d1/messages/events', dev)).toEqual({ kind: 'telemetry', bag: '' });
    expect(parseInbound('devices/d1/messages/events/', dev)).toEqual({ kind: 'telemetry', bag: '' });
    expect(parseInbound('devices/d1/messages/events/a=1/', dev)).toEqual({ kind: 'telemetry', bag: 'a=1' });
    expect(parseInbound('devices/d1/modules/m1/messages/events/a=1', mod)).toEqual({ kind: 'telemetry', bag: 'a=1' });
    for (const t of ['devices/d1/messages/events/a/b', 'devices/d2/messages/events', 'devices/d1/messages/eventsX', 'devices/d1/modules/m1/messages/events']) {
      expect(parseInbound(t, dev), t).toBeUndefined();
    }
    expect(parseInbound('devices/d1/messages/events', mod)).toBeUndefined();
  });

  it('needs a $rid of 1 to 128 characters on twin and method topics', () => {
    expect(parseInbound('$iothub/twin/GET/?$rid=1', dev)).toEqual({ kind: 'twin-get', rid: '1' });
    expect(parseInbound(`$iothub/twin/GET/?$rid=${'r'.repeat(128)}`, dev)).toEqual({ kind: 'twin-get', rid: 'r'.repeat(128) });
    expect(parseInbound('$iothub/twin/PATCH/properties/reported/?$rid=7&$version=2', dev)).toEqual({ kind: 'twin-reported', rid: '7' });
    expect(parseInbound('$iothub/methods/res/200/?$rid=9', dev)).toEqual({ kind: 'method-response', rid: '9', status: 200 });
    expect(parseInbound('$iothub/methods/res/5/?$rid=9', dev)).toEqual({ kind: 'method-response', rid: '9', status: 5 });
    for (const t of [
      `$iothub/twin/GET/?$rid=${'r'.repeat(129)}`,
      '$iothub/twin/GET/?$rid=',
      '$iothub/twin/GET/$rid=1',
      '$iothub/twin/GET/?rid=1',
      '$iothub/twin/GET/?$rid=%E0%A4%A',
      '$iothub/twin/PATCH/properties/reported/?x=1',
      '$iothub/methods/res/2000/?$rid=9',
      '$iothub/methods/res//?$rid=9',
      '$iothub/methods/res/abc/?$rid=9',
      '$iothub/methods/res/200/?$rid=',
      'x$iothub/methods/res/200/?$rid=9',
      '$iothub/unknown',
    ]) {
      expect(parseInbound(t, dev), t).toBeUndefined();
    }
  });
});

describe('subscriptions and outbound topics', () => {
  it('maps each filter to its feature for the right identity kind only', () => {
    expect(subscriptionFeature('$iothub/twin/res/#', dev)).toBe(Feature.Twin);
    expect(subscriptionFeature('$iothub/twin/PATCH/properties/desired/#', mod)).toBe(Feature.Desired);
    expect(subscriptionFeature('$iothub/methods/POST/#', dev)).toBe(Feature.Methods);
    expect(subscriptionFeature('devices/d1/messages/devicebound/#', dev)).toBe(Feature.C2D);
    expect(subscriptionFeature('devices/d1/messages/devicebound/#', mod)).toBeUndefined();
    expect(subscriptionFeature('devices/d2/messages/devicebound/#', dev)).toBeUndefined();
    expect(subscriptionFeature('devices/d1/modules/m1/inputs/#', mod)).toBe(Feature.Inputs);
    expect(subscriptionFeature('devices/d1/modules/m1/#', mod)).toBe(Feature.Inputs);
    expect(subscriptionFeature('devices/d1/modules/m2/#', mod)).toBeUndefined();
    expect(subscriptionFeature('devices/d1/#', dev)).toBeUndefined();
    expect(subscriptionFeature('#', dev)).toBeUndefined();
    expect(Feature).toEqual({ Twin: 'twin', Desired: 'desired', Methods: 'methods', C2D: 'c2d', Inputs: 'inputs' });
  });

  it('forwards only the hub topics of the identity', () => {
    for (const t of ['$iothub/twin/res/200/?$rid=1', '$iothub/twin/PATCH/properties/desired/?$version=2', '$iothub/methods/POST/m/?$rid=1']) {
      expect(isOutboundFor(t, dev)).toBe(true);
      expect(isOutboundFor(t, mod)).toBe(true);
    }
    expect(isOutboundFor('devices/d1/messages/devicebound/a=1', dev)).toBe(true);
    expect(isOutboundFor('devices/d1/messages/devicebound/a=1', mod)).toBe(false);
    expect(isOutboundFor('devices/d1/modules/m1/messages/devicebound/x', mod)).toBe(false);
    expect(isOutboundFor('devices/d1/modules/m1/inputs/in1/', mod)).toBe(true);
    expect(isOutboundFor('devices/d1/modules/m2/inputs/in1/', mod)).toBe(false);
    expect(isOutboundFor('devices/d2/messages/devicebound/', dev)).toBe(false);
    expect(isOutboundFor('$iothub/twin/GET/?$rid=1', dev)).toBe(false);
  });
});

describe('bags, usernames, client ids', () => {
  it('splits a bag into application and renamed system properties, dropping unknown $. keys', () => {
    const r = splitBag('$.mid=m1&$.cdid=forged&constructor=c&a=%20&$.ct=application%2Fjson', SYSTEM_PROPERTY_NAMES)!;
    expect({ ...r.properties }).toEqual({ constructor: 'c', a: ' ' });
    expect({ ...r.systemProperties }).toEqual({ messageId: 'm1', contentType: 'application/json' });
    expect(Object.getPrototypeOf(r.properties)).toBeNull();
    expect(Object.getPrototypeOf(r.systemProperties)).toBeNull();
    expect(splitBag('a=%E0%A4%A', SYSTEM_PROPERTY_NAMES)).toBeUndefined();
  });

  it('formats a bag with system properties first under their wire names, unknown ones skipped', () => {
    expect(formatBag({ 'a b': 'c&d' }, { messageId: 'm 1', bogus: 'x', toString: 'y' }, OUTBOUND_WIRE_NAMES)).toBe('%24.mid=m%201&a%20b=c%26d');
    expect(formatBag({}, {}, OUTBOUND_WIRE_NAMES)).toBe('');
  });

  it('parses the accepted username forms only', () => {
    expect(parseUsername('hub/d1/?api-version=2021-04-12')).toEqual({ host: 'hub', deviceId: 'd1', moduleId: '' });
    expect(parseUsername('hub/d1/api-version=2021-04-12')).toEqual({ host: 'hub', deviceId: 'd1', moduleId: '' });
    expect(parseUsername('hub/d1/m1/?api-version=1')).toEqual({ host: 'hub', deviceId: 'd1', moduleId: 'm1' });
    for (const u of ['hub/d1/?x=1', 'hub/?api-version=1', 'hub/a/b/c/?api-version=1', '', 'hub/d1']) expect(parseUsername(u), u).toBeUndefined();
  });

  it('parses client ids of one or two non-empty segments', () => {
    expect(parseClientId('d1')).toEqual(dev);
    expect(parseClientId('d1/m1')).toEqual(mod);
    for (const c of ['', 'd1/', '/m1', 'a/b/c']) expect(parseClientId(c), c).toBeUndefined();
  });

  it('builds input and telemetry topics', () => {
    expect(moduleInputTopic('d1', 'm1', 'in1', '')).toBe('devices/d1/modules/m1/inputs/in1/');
    expect(telemetryTopic(dev, 'a=1')).toBe('devices/d1/messages/events/a=1');
    expect(telemetryTopic(mod, '')).toBe('devices/d1/modules/m1/messages/events/');
  });
});
