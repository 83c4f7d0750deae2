import { describe, expect, it } from 'vitest';
import { identityAudience, methodResponseTopic, mqttUsername, parseOutbound, telemetryTopic, twinGetTopic, twinReportedTopic } from './client-topics.js';
import { parseInbound, parseUsername } from './topics.js';

const mod = { deviceId: 'd1', moduleId: '$edgeAgent' };

describe('client-side IoT Hub MQTT topics', () => {
  it('builds what the hub side parses', () => {
    expect(parseInbound(twinGetTopic('r 1'), mod)).toEqual({ kind: 'twin-get', rid: 'r 1' });
    expect(parseInbound(twinReportedTopic('7'), mod)).toEqual({ kind: 'twin-reported', rid: '7' });
    expect(parseInbound(methodResponseTopic(404, 'a&b'), mod)).toEqual({ kind: 'method-response', rid: 'a&b', status: 404 });
    expect(parseInbound(telemetryTopic(mod, { '$.ct': 'application/json', 'a b': 'c&d' }), mod)).toEqual({ kind: 'telemetry', bag: '%24.ct=application%2Fjson&a%20b=c%26d' });
    expect(parseUsername(mqttUsername('hub.example', mod, 'kedge/0.1 (linux)'))).toEqual({ host: 'hub.example', deviceId: 'd1', moduleId: '$edgeAgent' });
    expect(identityAudience('hub.example', mod)).toBe('hub.example/devices/d1/modules/$edgeAgent');
    expect(identityAudience('hub.example', { deviceId: 'd1', moduleId: '' })).toBe('hub.example/devices/d1');
  });

  it('reads what the hub sends and refuses malformed topics', () => {
    expect(parseOutbound('$iothub/twin/res/204/?$rid=3&$version=12')).toEqual({ kind: 'twin-response', status: 204, rid: '3', version: 12 });
    expect(parseOutbound('$iothub/twin/res/200/?$rid=3')).toEqual({ kind: 'twin-response', status: 200, rid: '3' });
    expect(parseOutbound('$iothub/twin/PATCH/properties/desired/?$version=5')).toEqual({ kind: 'desired-patch', version: 5 });
    expect(parseOutbound('$iothub/methods/POST/GetModuleLogs/?$rid=9')).toEqual({ kind: 'method-request', name: 'GetModuleLogs', rid: '9' });
    expect(parseOutbound('$iothub/twin/res/200/')).toBeUndefined();
    expect(parseOutbound('$iothub/twin/res/abc/?$rid=1')).toBeUndefined();
    expect(parseOutbound('$iothub/methods/POST/x/?$rid=%E0%A4%A')).toBeUndefined();
    expect(parseOutbound('$iothub/methods/POST/a/b/?$rid=1')).toBeUndefined();
    expect(parseOutbound('devices/d1/messages/devicebound/x')).toBeUndefined();
  });
});
