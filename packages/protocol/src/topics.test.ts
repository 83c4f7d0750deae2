import { describe, expect, it } from 'vitest';
import { INBOUND_WIRE_NAMES, OUTBOUND_WIRE_NAMES, SYSTEM_PROPERTY_NAMES } from './system-properties.js';
import { formatBag, isOutboundFor, moduleInputTopic, parseClientId, parseInbound, parseUsername, splitBag, subscriptionFeature, telemetryTopic } from './topics.js';

const dev = { deviceId: 'd1', moduleId: '' };
const mod = { deviceId: 'd1', moduleId: 'm1' };

describe('IoT Hub MQTT topics', () => {
  it('classifies what a device may publish, and nothing else', () => {
    expect(parseInbound('devices/d1/messages/events/', dev)).toEqual({ kind: 'telemetry', bag: '' });
    expect(parseInbound('devices/d1/messages/events/a=1&%24.mid=x', dev)).toEqual({ kind: 'telemetry', bag: 'a=1&%24.mid=x' });
    expect(parseInbound('devices/d1/modules/m1/messages/events/%24.on=out/', mod)).toEqual({ kind: 'telemetry', bag: '%24.on=out' });
    expect(parseInbound('$iothub/twin/GET/?$rid=7', dev)).toEqual({ kind: 'twin-get', rid: '7' });
    expect(parseInbound('$iothub/twin/PATCH/properties/reported/?$rid=8', dev)).toEqual({ kind: 'twin-reported', rid: '8' });
    expect(parseInbound('$iothub/methods/res/200/?$rid=a1', dev)).toEqual({ kind: 'method-response', rid: 'a1', status: 200 });
    // Someone else's namespace, modules posing as their device, injection through the bag, unknown $iothub topics.
    expect(parseInbound('devices/d2/messages/events/', dev)).toBeUndefined();
    expect(parseInbound('devices/d1/messages/events/', mod)).toBeUndefined();
    expect(parseInbound('devices/d1/messages/events/a=1/../../d2', dev)).toBeUndefined();
    expect(parseInbound('$iothub/twin/PATCH/properties/desired/?$rid=1', dev)).toBeUndefined();
    expect(parseInbound('$iothub/twin/GET/', dev)).toBeUndefined();
    expect(parseInbound('devices/d1/messages/devicebound/x', dev)).toBeUndefined();
  });

  it('allows only the fixed subscriptions of the own namespace and forwards only hub traffic', () => {
    expect(subscriptionFeature('$iothub/methods/POST/#', dev)).toBe('methods');
    expect(subscriptionFeature('devices/d1/messages/devicebound/#', dev)).toBe('c2d');
    expect(subscriptionFeature('devices/d2/messages/devicebound/#', dev)).toBeUndefined();
    expect(subscriptionFeature('devices/d1/modules/m1/inputs/#', mod)).toBe('inputs');
    expect(subscriptionFeature('#', dev)).toBeUndefined();
    expect(subscriptionFeature('devices/+/messages/events/#', dev)).toBeUndefined();
    expect(isOutboundFor('$iothub/twin/res/200/?$rid=1', dev)).toBe(true);
    expect(isOutboundFor('devices/d1/modules/m1/messages/events/', mod)).toBe(false);
  });

  it('splits property bags and parses user names', () => {
    expect(splitBag('alert=high%20%26%20hot&%24.mid=m-1&%24.ct=application%2Fjson&%24.cdid=forged', SYSTEM_PROPERTY_NAMES)).toEqual({
      properties: { alert: 'high & hot' },
      systemProperties: { messageId: 'm-1', contentType: 'application/json' },
    });
    expect(splitBag('a=%E0%A4%A', SYSTEM_PROPERTY_NAMES)).toBeUndefined();
    // Object.prototype member names are application properties, stored as sent.
    const hostile = splitBag('constructor=c&toString=t&__proto__=p&hasOwnProperty=h&valueOf=v', SYSTEM_PROPERTY_NAMES);
    expect(JSON.stringify(hostile?.properties)).toBe('{"constructor":"c","toString":"t","__proto__":"p","hasOwnProperty":"h","valueOf":"v"}');
    expect(JSON.stringify(hostile?.systemProperties)).toBe('{}');
    expect(parseUsername('hub/d1/?api-version=2021-04-12&DeviceClientType=x')).toEqual({ host: 'hub', deviceId: 'd1', moduleId: '' });
    expect(parseUsername('hub/d1/m1/?api-version=2021-04-12')).toEqual({ host: 'hub', deviceId: 'd1', moduleId: 'm1' });
    expect(parseUsername('hub/d1/m1/api-version=2021-04-12')).toEqual({ host: 'hub', deviceId: 'd1', moduleId: 'm1' });
    expect(parseUsername('hub/d1')).toBeUndefined();
  });
});

describe('hostile bags and outbound topics', () => {
  it('keeps prototype keys as data', () => {
    const bag = splitBag('__proto__=x&constructor=y&toString=z', SYSTEM_PROPERTY_NAMES);
    expect(bag).toBeDefined();
    expect(Object.getPrototypeOf(bag?.properties)).toBeNull();
    expect(Object.keys(bag?.properties ?? {})).toEqual(['__proto__', 'constructor', 'toString']);
    expect(bag?.properties['__proto__']).toBe('x');
    expect(Object.keys(bag?.systemProperties ?? {})).toEqual([]);
  });

  it('encodes bags with wire names and builds input topics with the trailing slash', () => {
    const bag = formatBag({ 'a b': 'c&d' }, { connectionDeviceId: 'e1', connectionModuleId: 'm1', contentType: 'application/json', outputName: 'o' }, OUTBOUND_WIRE_NAMES);
    expect(bag).toBe('%24.cdid=e1&%24.cmid=m1&%24.ct=application%2Fjson&a%20b=c%26d');
    expect(splitBag(formatBag({ k: 'v' }, { messageId: 'x', outputName: 'o' }, INBOUND_WIRE_NAMES), SYSTEM_PROPERTY_NAMES)).toEqual({
      properties: { k: 'v' },
      systemProperties: { messageId: 'x', outputName: 'o' },
    });
    expect(moduleInputTopic('e1', 'm2', 'in', '')).toBe('devices/e1/modules/m2/inputs/in/');
    expect(telemetryTopic({ deviceId: 'leaf', moduleId: '' }, 'a=1')).toBe('devices/leaf/messages/events/a=1');
    expect(parseClientId('e1/m1')).toEqual({ deviceId: 'e1', moduleId: 'm1' });
    expect(parseClientId('e1')).toEqual({ deviceId: 'e1', moduleId: '' });
    expect(parseClientId('e1/m1/x')).toBeUndefined();
    expect(parseClientId('/m1')).toBeUndefined();
  });
});
