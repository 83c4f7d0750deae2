import { mkdtempSync } from 'node:fs';
import { request } from 'node:https';
import { connect as netConnect } from 'node:net';
import type { Duplex } from 'node:stream';
import { connect as tlsConnect } from 'node:tls';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Client as DeviceClient, ModuleClient } from 'azure-iot-device';
import { Mqtt } from 'azure-iot-device-mqtt';
import { connectAsync } from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createSasToken } from '@kedge/protocol';
import { eventually, runPython } from '@kedge/testing';
import { startEdgeHub } from './edge-hub.js';
import type { RunningEdgeHub } from './edge-hub.js';
import { freeLoopbackAddress, provisionEdge, startTestHub, testLog } from './test-support/hub.js';
import type { TestEdge, TestHub } from './test-support/hub.js';

const EDGE = 'edge-methods';
const MODULES = ['caller', 'target', 'silent', 'offline', 'pycaller', 'pytarget', 'raw1', 'raw2'];

interface Reply {
  readonly status: number;
  readonly body: Record<string, unknown>;
}

describe('module direct methods over the edge hub HTTPS listener', () => {
  let t: TestHub;
  let edge: TestEdge;
  let edgeHub: RunningEdgeHub;
  let edgeHost = '';
  const closables: Array<{ close(): Promise<unknown> }> = [];
  const targetCalls: Array<{ name: string; payload: unknown }> = [];
  let nodeCaller: ModuleClient | undefined;

  const moduleCs = (m: string): string => `HostName=${t.host};GatewayHostName=${edgeHost};DeviceId=${EDGE};ModuleId=${m};SharedAccessKey=${edge.moduleKeys[m] ?? ''}`;
  const open = async (m: string): Promise<ModuleClient> => {
    const c = ModuleClient.fromConnectionString(moduleCs(m), Mqtt);
    await c.setOptions({ ca: edgeHub.ca });
    await c.open();
    closables.push(c);
    return c;
  };
  const sas = (m: string, opts: { key?: string; device?: string } = {}): string =>
    createSasToken({ audience: `${t.host}/devices/${opts.device ?? EDGE}/modules/${m}`, key: opts.key ?? edge.moduleKeys[m] ?? '', expirySeconds: Math.floor(Date.now() / 1000) + 600 });

  /** A raw HTTPS call to the edge hub, as the SDKs make it, with every part under the test's control. */
  const post = (path: string, body: string | Buffer, headers: Record<string, string>): Promise<Reply> =>
    new Promise((resolve, reject) => {
      const req = request({ host: edgeHost, port: 443, method: 'POST', path, ca: edgeHub.ca, headers: { 'content-type': 'application/json', ...headers } }, (res) => {
        let text = '';
        res.setEncoding('utf8').on('data', (d: string) => (text += d));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text ? (JSON.parse(text) as Record<string, unknown>) : {} }));
      });
      req.on('error', reject);
      req.end(body);
    });
  const asCaller = (m = 'caller'): Record<string, string> => ({ authorization: sas(m), 'x-ms-edge-moduleId': `${EDGE}/${m}` });
  const call = (methodName: string, extra: Record<string, unknown> = {}): string => JSON.stringify({ methodName, payload: { n: 1 }, responseTimeoutInSeconds: 10, connectTimeoutInSeconds: 0, ...extra });
  const methodsTotal = async (from: string, to: string): Promise<number> => {
    const m = (await edgeHub.metrics.methods.get()).values.find((v) => v.labels['from'] === from && v.labels['to'] === to);
    return m?.value ?? 0;
  };

  beforeAll(async () => {
    t = await startTestHub();
    edge = await provisionEdge(t, EDGE, MODULES, ['leaf-m']);
    // The Node SDK (and Python's) send invokeMethod to port 443 of GatewayHostName, MQTT to 8883.
    edgeHost = await freeLoopbackAddress([8883, 443]);
    edgeHub = await startEdgeHub(
      {
        connectionString: edge.edgeHubConnectionString,
        hub: { ca: t.hub.ca },
        hostName: edgeHost,
        dataDir: mkdtempSync(join(tmpdir(), 'kedge-edge-methods-')),
        mqtt: { host: edgeHost, port: 8883 },
        websocket: null,
        https: { host: edgeHost, port: 443 },
        logLevel: 'silent',
      },
      { logger: testLog() },
    );
    const target = await open('target');
    target.onMethod('echo', (req, res) => {
      targetCalls.push({ name: req?.methodName ?? '', payload: req?.payload as unknown });
      res?.send(201, { echoed: req?.payload as unknown, via: 'target' }, () => undefined);
    });
    const silent = await open('silent');
    silent.onMethod('hang', () => undefined);
  }, 120_000);

  afterAll(async () => {
    for (const c of closables.reverse()) await c.close().catch(() => undefined);
    await edgeHub?.close();
    await t?.stop();
  });

  it('delivers a Node ModuleClient.invokeMethod to another module over MQTT and returns its status and payload', async () => {
    const caller = await open('caller');
    nodeCaller = caller;
    const before = await methodsTotal(`${EDGE}/caller`, `${EDGE}/target`);
    const result = (await caller.invokeMethod(EDGE, 'target', { methodName: 'echo', payload: { hello: 'edge' }, responseTimeoutInSeconds: 10, connectTimeoutInSeconds: 0 })) as unknown;
    expect(result).toEqual({ status: 201, payload: { echoed: { hello: 'edge' }, via: 'target' } });
    expect(targetCalls.at(-1)).toEqual({ name: 'echo', payload: { hello: 'edge' } });
    expect(await methodsTotal(`${EDGE}/caller`, `${EDGE}/target`)).toBe(before + 1);
  });

  it('delivers a Python IoTHubModuleClient.invoke_method (EdgeHubConnectionString + EdgeModuleCACertificateFile)', async () => {
    const script = `
import json, sys
from azure.iot.device import IoTHubModuleClient
client = IoTHubModuleClient.create_from_edge_environment()
r = client.invoke_method({"methodName": "echo", "payload": {"from": "python"}, "responseTimeoutInSeconds": 10, "connectTimeoutInSeconds": 0}, "${EDGE}", "target")
print("RESULT " + json.dumps(r), flush=True)
try:
    client.invoke_method({"methodName": "echo", "payload": None, "responseTimeoutInSeconds": 10}, "${EDGE}", "offline")
    print("NOERROR", flush=True)
except Exception as e:
    print("ERROR " + type(e).__name__, flush=True)
client.shutdown()
`;
    const r = await runPython(script, { env: { EdgeHubConnectionString: moduleCs('pycaller'), EdgeModuleCACertificateFile: edgeHub.caFile }, timeoutMs: 60_000 });
    expect(r.code, r.stderr).toBe(0);
    const line = r.stdout.split('\n').find((l) => l.startsWith('RESULT ')) ?? '';
    expect(JSON.parse(line.slice('RESULT '.length))).toEqual({ status: 201, payload: { echoed: { from: 'python' }, via: 'target' } });
    // A target that is not connected is an HTTP 404, which the Python SDK raises.
    expect(r.stdout).toMatch(/^ERROR \w+/m);
    expect(await methodsTotal(`${EDGE}/pycaller`, `${EDGE}/target`)).toBe(1);
  }, 90_000);

  it('calls a Python IoTHubModuleClient method handler from a Node module, waiting for it to connect (connectTimeoutInSeconds)', async () => {
    const script = `
import sys, threading
from azure.iot.device import IoTHubModuleClient, MethodResponse
client = IoTHubModuleClient.create_from_edge_environment()
done = threading.Event()
def on_method(req):
    client.send_method_response(MethodResponse.create_from_method_request(req, 200, {"py": req.payload, "name": req.name}))
    done.set()
client.on_method_request_received = on_method
client.connect()
ok = done.wait(40)
client.shutdown()
sys.exit(0 if ok else 3)
`;
    const run = runPython(script, { env: { EdgeHubConnectionString: moduleCs('pytarget'), EdgeModuleCACertificateFile: edgeHub.caFile }, timeoutMs: 60_000 });
    const result = (await (nodeCaller as ModuleClient).invokeMethod(EDGE, 'pytarget', { methodName: 'hello', payload: { x: 1 }, responseTimeoutInSeconds: 10, connectTimeoutInSeconds: 40 })) as unknown;
    expect(result).toEqual({ status: 200, payload: { py: { x: 1 }, name: 'hello' } });
    const r = await run;
    expect(r.code, r.stderr).toBe(0);
  }, 90_000);

  it('reaches a leaf device of the edge device (POST /twins/{leaf}/methods)', async () => {
    const leaf = DeviceClient.fromConnectionString(`HostName=${t.host};DeviceId=leaf-m;SharedAccessKey=${edge.leafKeys['leaf-m'] ?? ''};GatewayHostName=${edgeHost}`, Mqtt);
    await leaf.setOptions({ ca: edgeHub.ca });
    await leaf.open();
    closables.push(leaf);
    leaf.onDeviceMethod('reboot', (req, res) => res.send(200, { rebooting: req.payload as unknown }, () => undefined));
    const r = await post('/twins/leaf-m/methods?api-version=2019-10-01', call('reboot', { payload: { in: 5 } }), asCaller());
    expect(r).toEqual({ status: 200, body: { status: 200, payload: { rebooting: { in: 5 } } } });
  });

  it('answers 404 for a target that is not connected, and waits connectTimeoutInSeconds for it', async () => {
    expect(await post(`/twins/${EDGE}/modules/offline/methods`, call('echo'), asCaller())).toMatchObject({ status: 404, body: { message: expect.stringContaining('not connected') as unknown } });
    // With a connect timeout the call waits for the target to connect and subscribe.
    const pending = post(`/twins/${EDGE}/modules/offline/methods`, call('late', { connectTimeoutInSeconds: 20 }), asCaller());
    const late = await open('offline');
    late.onMethod('late', (_req, res) => res?.send(200, 'finally', () => undefined));
    expect(await pending).toEqual({ status: 200, body: { status: 200, payload: 'finally' } });
  });

  it('answers 504 when the target does not respond within responseTimeoutInSeconds', async () => {
    const started = Date.now();
    const r = await post(`/twins/${EDGE}/modules/silent/methods`, call('hang', { responseTimeoutInSeconds: 5 }), asCaller());
    expect(r.status).toBe(504);
    expect(Date.now() - started).toBeGreaterThanOrEqual(4_900);
  }, 20_000);

  it('refuses a target outside the device scope clearly, without forwarding it to the hub', async () => {
    await t.client.createDevice('elsewhere', {});
    const r = await post('/twins/elsewhere/methods', call('echo'), asCaller());
    expect(r.status).toBe(404);
    expect(r.body['message']).toMatch(/not a module or child device of edge-methods.*does not forward/);
  });

  it('authenticates the caller: header, device, token, key', async () => {
    const path = `/twins/${EDGE}/modules/target/methods`;
    const calls = targetCalls.length;
    expect((await post(path, call('echo'), { authorization: sas('caller') })).status).toBe(400);
    expect((await post(path, call('echo'), { authorization: sas('caller'), 'x-ms-edge-moduleId': 'caller' })).status).toBe(400);
    expect(await post(path, call('echo'), { authorization: sas('caller', { device: 'other' }), 'x-ms-edge-moduleId': 'other/caller' })).toEqual({
      status: 401,
      body: { message: 'Only modules on the same device can invoke DirectMethods' },
    });
    // A token of another module, a token signed with a wrong key, no token, an unknown module.
    expect((await post(path, call('echo'), { authorization: sas('target'), 'x-ms-edge-moduleId': `${EDGE}/caller` })).status).toBe(401);
    expect((await post(path, call('echo'), { authorization: sas('caller', { key: Buffer.alloc(32, 7).toString('base64') }), 'x-ms-edge-moduleId': `${EDGE}/caller` })).status).toBe(401);
    expect((await post(path, call('echo'), { 'x-ms-edge-moduleId': `${EDGE}/caller` })).status).toBe(401);
    expect((await post(path, call('echo'), { authorization: sas('ghost'), 'x-ms-edge-moduleId': `${EDGE}/ghost` })).status).toBe(401);
    expect(targetCalls.length).toBe(calls);
  });

  it('bounds the body before authentication and refuses bad requests without calling the target', async () => {
    const path = `/twins/${EDGE}/modules/target/methods`;
    const calls = targetCalls.length;
    // Oversize: refused on its content-length, before the (absent) credentials are looked at.
    expect((await post(path, Buffer.alloc(200 * 1024, 0x20), { 'x-ms-edge-moduleId': `${EDGE}/caller` })).status).toBe(413);
    expect((await post(path, '{not json', asCaller())).status).toBe(400);
    expect((await post(path, '[1,2]', asCaller())).status).toBe(400);
    expect((await post(path, JSON.stringify({ payload: 1 }), asCaller())).status).toBe(400);
    expect((await post(path, call('x'.repeat(101)), asCaller())).status).toBe(400);
    expect((await post(path, call('a/b'), asCaller())).status).toBe(400);
    expect((await post(path, call('echo', { responseTimeoutInSeconds: 1 }), asCaller())).status).toBe(400);
    expect((await post(path, call('echo', { payload: 'x'.repeat(129 * 1024) }), asCaller())).status).toBe(400);
    expect((await post('/twins/a/b/c/methods', call('echo'), asCaller())).status).toBe(404);
    expect(targetCalls.length).toBe(calls);
    // Hostile keys are data: they reach the target as sent and change nothing of ours.
    const hostile = '{"methodName":"echo","payload":{"__proto__":{"polluted":true},"constructor":{"prototype":{"x":1}}},"responseTimeoutInSeconds":10,"__proto__":{"methodName":"evil"}}';
    const r = await post(path, hostile, asCaller());
    expect(r.status).toBe(200);
    expect(JSON.stringify(r.body)).toBe(JSON.stringify({ status: 201, payload: { echoed: JSON.parse('{"__proto__":{"polluted":true},"constructor":{"prototype":{"x":1}}}') as unknown, via: 'target' } }));
    expect(({} as Record<string, unknown>)['polluted']).toBeUndefined();
    // The edge hub keeps serving.
    expect((await post(path, call('echo'), asCaller())).status).toBe(200);
  });

  it('serves methods and MQTT over WebSockets on one listener when https is not configured (edgeHub 443)', async () => {
    const other = await provisionEdge(t, 'edge-shared', ['m1', 'm2']);
    const shared = await startEdgeHub(
      {
        connectionString: other.edgeHubConnectionString,
        hub: { ca: t.hub.ca },
        hostName: '127.0.0.1',
        dataDir: mkdtempSync(join(tmpdir(), 'kedge-edge-shared-')),
        mqtt: { host: '127.0.0.1', port: 0 },
        websocket: { host: '127.0.0.1', port: 0 },
        logLevel: 'silent',
      },
      { logger: testLog() },
    );
    try {
      const wsUrl = new URL(shared.urls.websocket ?? '');
      expect(shared.urls.https).toBe(`https://127.0.0.1:${wsUrl.port}`);
      const token = (m: string): string =>
        createSasToken({ audience: `${t.host}/devices/edge-shared/modules/${m}`, key: other.moduleKeys[m] ?? '', expirySeconds: Math.floor(Date.now() / 1000) + 600 });
      // m1 speaks MQTT over WebSockets on that port and answers its methods.
      const m1 = await connectAsync(wsUrl.toString(), {
        clientId: 'edge-shared/m1',
        username: `${t.host}/edge-shared/m1/?api-version=2021-04-12`,
        password: token('m1'),
        protocolVersion: 4,
        clean: false,
        reconnectPeriod: 0,
        ca: shared.ca,
      });
      try {
        m1.on('message', (topic, payload) => {
          const rid = /\?\$rid=([^&]+)/.exec(topic)?.[1] ?? '';
          m1.publish(`$iothub/methods/res/202/?$rid=${rid}`, JSON.stringify({ got: JSON.parse(payload.toString()) as unknown, topic: topic.split('/')[3] }));
        });
        await m1.subscribeAsync('$iothub/methods/POST/#', { qos: 0 });
        // m2 calls it over HTTPS on the same port.
        const r = await new Promise<Reply>((resolve, reject) => {
          const req = request(
            { host: '127.0.0.1', port: Number(wsUrl.port), method: 'POST', path: '/twins/edge-shared/modules/m1/methods', ca: shared.ca, headers: { authorization: token('m2'), 'x-ms-edge-moduleId': 'edge-shared/m2', 'content-type': 'application/json' } },
            (res) => {
              let text = '';
              res.setEncoding('utf8').on('data', (d: string) => (text += d));
              res.on('end', () => resolve({ status: res.statusCode ?? 0, body: JSON.parse(text) as Record<string, unknown> }));
            },
          );
          req.on('error', reject);
          req.end(JSON.stringify({ methodName: 'poke', payload: [1, 2], responseTimeoutInSeconds: 10 }));
        });
        expect(r).toEqual({ status: 200, body: { status: 202, payload: { got: [1, 2], topic: 'poke' } } });
      } finally {
        await m1.endAsync(true);
      }
    } finally {
      await shared.close();
    }
  });

  it('settles a call only with the response of its target: another module knowing the request id cannot answer it', async () => {
    const mqttModule = (m: string): ReturnType<typeof connectAsync> =>
      connectAsync(`mqtts://${edgeHost}:8883`, { clientId: `${EDGE}/${m}`, username: `${t.host}/${EDGE}/${m}/?api-version=2021-04-12`, password: sas(m), protocolVersion: 4, reconnectPeriod: 0, ca: edgeHub.ca });
    const target = await mqttModule('raw1');
    const impostor = await mqttModule('raw2');
    try {
      target.on('message', (topic) => {
        const rid = /\?\$rid=([^&]+)/.exec(topic)?.[1] ?? '';
        // The impostor answers first with the leaked request id; the edge hub must ignore it (it goes upstream as
        // an unknown request of raw2's), then the target answers.
        impostor.publish(`$iothub/methods/res/200/?$rid=${rid}`, JSON.stringify('forged'), () => target.publish(`$iothub/methods/res/203/?$rid=${rid}`, JSON.stringify('genuine')));
      });
      await target.subscribeAsync('$iothub/methods/POST/#', { qos: 0 });
      const r = await post(`/twins/${EDGE}/modules/raw1/methods`, call('who'), asCaller());
      expect(r).toEqual({ status: 200, body: { status: 203, payload: 'genuine' } });
      // Both connections are still up: the forged response broke nothing.
      expect(impostor.connected && target.connected).toBe(true);
    } finally {
      await target.endAsync(true);
      await impostor.endAsync(true);
    }
  });

  it('closes silent and slow HTTPS clients after limits.connectTimeoutMs', async () => {
    const slow = await provisionEdge(t, 'edge-slow', ['m1']);
    const hub2 = await startEdgeHub(
      {
        connectionString: slow.edgeHubConnectionString,
        hub: { ca: t.hub.ca },
        hostName: '127.0.0.1',
        dataDir: mkdtempSync(join(tmpdir(), 'kedge-edge-slow-')),
        mqtt: { host: '127.0.0.1', port: 0 },
        websocket: null,
        https: { host: '127.0.0.1', port: 0 },
        limits: { connectTimeoutMs: 1000 },
        logLevel: 'silent',
      },
      { logger: testLog() },
    );
    try {
      const port = Number(new URL(hub2.urls.https ?? '').port);
      const closedWithin = async (open: () => Duplex): Promise<number> => {
        const started = Date.now();
        const socket = open();
        socket.on('error', () => undefined);
        await new Promise<void>((resolve) => socket.once('close', () => resolve()));
        return Date.now() - started;
      };
      // A TCP connection that never starts TLS.
      expect(await closedWithin(() => netConnect(port, '127.0.0.1'))).toBeLessThan(4_000);
      // A TLS client that sends half a request and stops.
      // A TLS client that sends half the headers and stops.
      const partial = (text: string, got: string[]): Duplex => {
        const s = tlsConnect({ host: '127.0.0.1', port, ca: hub2.ca }, () => s.write(text));
        s.setEncoding('utf8').on('data', (d: string) => got.push(d));
        return s;
      };
      const headersOnly: string[] = [];
      expect(await closedWithin(() => partial('POST /twins/x/methods HTTP/1.1\r\nHost: x\r\ncontent-le', headersOnly))).toBeLessThan(4_000);
      // A refused request (no credentials) whose body never comes: answered, then closed instead of kept waiting.
      const refused: string[] = [];
      expect(await closedWithin(() => partial(`POST /twins/x/methods HTTP/1.1\r\nHost: x\r\nx-ms-edge-moduleId: edge-slow/m1\r\ncontent-length: 100\r\n\r\n{"meth`, refused))).toBeLessThan(4_000);
      expect(refused.join('')).toMatch(/^HTTP\/1\.1 401 /);
    } finally {
      await hub2.close();
    }
  });

  it('still relays a method from the hub to a module (responses with unknown request ids go upstream)', async () => {
    // The module's method subscription reaches the hub in the background: retry until the hub sees it.
    const result = await eventually(() => t.client.invoke(EDGE, 'target', 'echo', { cloud: true }, 10), { timeoutMs: 20_000 });
    expect(result).toEqual({ status: 201, payload: { echoed: { cloud: true }, via: 'target' } });
  });
});
