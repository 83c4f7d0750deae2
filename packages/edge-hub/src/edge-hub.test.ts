import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Client as DeviceClient, Message, ModuleClient } from 'azure-iot-device';
import type { Twin } from 'azure-iot-device';
import { Mqtt } from 'azure-iot-device-mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { eventually, runPython } from '@kedge/testing';
import { startEdgeHub } from './edge-hub.js';
import type { RunningEdgeHub } from './edge-hub.js';
import { freeLoopbackAddress, manifest, provisionEdge, startTestHub, testLog } from './test-support/hub.js';
import type { TestEdge, TestHub } from './test-support/hub.js';

const EDGE = 'edge-e2e';
const MODULES = ['modA', 'modB', 'modP'];
const ROUTES = {
  hot: 'FROM /messages/modules/modA/outputs/temps WHERE $body.temp > 30 INTO BrokeredEndpoint("/modules/modB/inputs/hot")',
  toPython: 'FROM /messages/modules/modA/outputs/forPython INTO BrokeredEndpoint("/modules/modP/inputs/in1")',
  fromPython: 'FROM /messages/modules/modP/outputs/out1 INTO BrokeredEndpoint("/modules/modB/inputs/py")',
  up: 'FROM /messages/modules/modA/outputs/up INTO $upstream',
  leaves: 'FROM /messages WHERE NOT IS_DEFINED($connectionModuleId) INTO $upstream',
};

describe('edge hub with the Azure IoT SDKs against a real Kedge hub', () => {
  let t: TestHub;
  let edge: TestEdge;
  let edgeHub: RunningEdgeHub;
  let edgeHost = '';
  const closables: Array<{ close(): Promise<unknown> }> = [];

  const moduleCs = (m: string): string => `HostName=${t.host};GatewayHostName=${edgeHost};DeviceId=${EDGE};ModuleId=${m};SharedAccessKey=${edge.moduleKeys[m] ?? ''}`;
  // One client per module for the whole file: IoT Hub keeps one connection per identity, so a second client of the
  // same module would take over the first one's connection.
  const modules = new Map<string, Promise<ModuleClient>>();
  const nodeModule = (m: string): Promise<ModuleClient> => {
    let p = modules.get(m);
    if (!p) {
      p = (async () => {
        const c = ModuleClient.fromConnectionString(moduleCs(m), Mqtt);
        await c.setOptions({ ca: edgeHub.ca });
        await c.open();
        closables.push(c);
        return c;
      })();
      modules.set(m, p);
    }
    return p;
  };
  const json = (body: unknown, props: Record<string, string> = {}): Message => {
    const msg = new Message(JSON.stringify(body));
    msg.contentType = 'application/json';
    msg.contentEncoding = 'utf-8';
    for (const [k, v] of Object.entries(props)) msg.properties.add(k, v);
    return msg;
  };
  type Input = { input: string; body: string; props: Record<string, string> };
  const received = new Map<ModuleClient, Input[]>();
  /** What `c` received on its inputs since this file started. */
  const inputs = (c: ModuleClient): Input[] => {
    const known = received.get(c);
    if (known) return known;
    const got: Input[] = [];
    received.set(c, got);
    c.on('inputMessage', (input: string, msg: Message) => {
      const props: Record<string, string> = {};
      for (let i = 0; i < msg.properties.count(); i++) {
        const p = msg.properties.getItem(i);
        props[p.key] = p.value;
      }
      got.push({ input, body: (msg.getBytes()).toString('utf8'), props });
      void c.complete(msg);
    });
    return got;
  };

  beforeAll(async () => {
    t = await startTestHub();
    edge = await provisionEdge(t, EDGE, MODULES, ['leaf-1']);
    await t.client.applyContent(EDGE, manifest(ROUTES, MODULES, { modA: { threshold: 1 } }));
    edgeHost = await freeLoopbackAddress([8883]);
    // No identity cache yet: the edge hub fetches its device scope from the hub.
    const dataDir = mkdtempSync(join(tmpdir(), 'kedge-edge-hub-'));
    edgeHub = await startEdgeHub(
      {
        connectionString: edge.edgeHubConnectionString,
        hub: { ca: t.hub.ca },
        hostName: edgeHost,
        dataDir,
        mqtt: { host: edgeHost, port: 8883 },
        websocket: null,
        logLevel: 'silent',
      },
      { logger: testLog() },
    );
    // The routes come from the $edgeHub twin.
    await eventually(() => edgeHub.router.routes.length === Object.keys(ROUTES).length, { timeoutMs: 20_000 });
  }, 120_000);

  afterAll(async () => {
    for (const c of closables.reverse()) await c.close().catch(() => undefined);
    await edgeHub?.close();
    await t?.stop();
  });

  it('routes module A output to module B input through a WHERE on $body (Node ModuleClient both ends)', async () => {
    const a = await nodeModule('modA');
    const b = await nodeModule('modB');
    const got = inputs(b);
    await a.sendOutputEvent('temps', json({ temp: 20 }, { seq: '1' }));
    await a.sendOutputEvent('temps', json({ temp: 35 }, { seq: '2' }));
    await eventually(() => got.length >= 1, { timeoutMs: 20_000 });
    expect(got.length).toBe(1);
    await a.sendOutputEvent('temps', json({ temp: 40 }, { seq: '3' }));
    await eventually(() => got.length >= 2, { timeoutMs: 20_000 });
    expect(got.map((g) => [g.input, JSON.parse(g.body) as unknown, g.props['seq']])).toEqual([
      ['hot', { temp: 35 }, '2'],
      ['hot', { temp: 40 }, '3'],
    ]);
    expect(got[0]?.props['$.cdid']).toBe(EDGE);
    expect(got[0]?.props['$.cmid']).toBe('modA');
  });

  it('carries messages both ways with the real Python IoTHubModuleClient (EdgeHubConnectionString + EdgeModuleCACertificateFile)', async () => {
    const a = await nodeModule('modA');
    const b = await nodeModule('modB');
    const got = inputs(b);
    const script = `
import json, sys, threading
from azure.iot.device import IoTHubModuleClient, Message
client = IoTHubModuleClient.create_from_edge_environment()
done = threading.Event()
def on_message(msg):
    if msg.input_name == "in1":
        print("INPUT " + json.dumps({"input": msg.input_name, "body": msg.data.decode(), "props": msg.custom_properties}), flush=True)
        done.set()
client.on_message_received = on_message
client.connect()
print("READY", flush=True)
m = Message(json.dumps({"from": "python"}), content_encoding="utf-8", content_type="application/json")
m.custom_properties["lang"] = "py"
client.send_message_to_output(m, "out1")
ok = done.wait(40)
client.shutdown()
sys.exit(0 if ok else 3)
`;
    const run = runPython(script, {
      env: { EdgeHubConnectionString: moduleCs('modP'), EdgeModuleCACertificateFile: edgeHub.caFile },
      timeoutMs: 60_000,
    });
    // The Python module subscribes when it connects; until then its messages wait in the store.
    await a.sendOutputEvent('forPython', json({ to: 'python' }, { k: 'v' }));
    const r = await run;
    expect(r.code, r.stderr).toBe(0);
    const line = r.stdout.split('\n').find((l) => l.startsWith('INPUT ')) ?? '';
    const input = JSON.parse(line.slice('INPUT '.length)) as { input: string; body: string; props: Record<string, string> };
    expect(input.input).toBe('in1');
    expect(JSON.parse(input.body)).toEqual({ to: 'python' });
    expect(input.props['k']).toBe('v');
    await eventually(() => got.some((g) => g.input === 'py'), { timeoutMs: 20_000 });
    const fromPy = got.find((g) => g.input === 'py');
    expect(JSON.parse(fromPy?.body ?? '{}')).toEqual({ from: 'python' });
    expect(fromPy?.props['lang']).toBe('py');
    expect(fromPy?.props['$.cmid']).toBe('modP');
  }, 90_000);

  it('sends $upstream messages to the hub with the module identity', async () => {
    const a = await nodeModule('modA');
    await a.sendOutputEvent('up', json({ reading: 7 }, { kind: 'up' }));
    const msg = await eventually(
      async () => (await t.client.readTelemetry({ deviceId: EDGE })).messages.find((m) => m.properties['kind'] === 'up') ?? false,
      { timeoutMs: 20_000 },
    );
    expect(msg.moduleId).toBe('modA');
    expect(msg.systemProperties['connectionDeviceId']).toBe(EDGE);
    expect(msg.systemProperties['connectionModuleId']).toBe('modA');
    expect(msg.body).toEqual({ reading: 7 });
  });

  it('passes twin get, reported and desired, and a direct method from the hub, through to a module', async () => {
    const a = await nodeModule('modA');
    const twin: Twin = await a.getTwin();
    expect(twin.properties.desired['threshold']).toBe(1);
    let latest = 0;
    twin.on('properties.desired', (d: Record<string, unknown>) => (latest = typeof d['threshold'] === 'number' ? d['threshold'] : latest));
    // The SDK subscribes to desired updates in the background once a listener is attached: write new values until
    // one arrives through the edge hub.
    let next = 1;
    await eventually(
      async () => {
        next++;
        await t.client.updateTwin(EDGE, 'modA', { properties: { desired: { threshold: next } } });
        return latest >= 2;
      },
      { timeoutMs: 20_000, intervalMs: 200 },
    );
    await new Promise<void>((resolve, reject) =>
      (twin.properties.reported as unknown as { update(p: unknown, cb: (e?: Error) => void): void }).update({ state: 'ok' }, (e) => (e ? reject(e) : resolve())),
    );
    await eventually(async () => ((await t.client.getTwin(EDGE, 'modA')) as { properties: { reported: Record<string, unknown> } }).properties.reported['state'] === 'ok', { timeoutMs: 20_000 });
    a.onMethod('ping', (req, res) => res?.send(200, { pong: req?.payload as unknown }, () => undefined));
    const result = await eventually(() => t.client.invoke(EDGE, 'modA', 'ping', { n: 1 }, 10), { timeoutMs: 20_000 });
    expect(result).toEqual({ status: 200, payload: { pong: { n: 1 } } });
  });

  it("passes a leaf device's telemetry and twin through", async () => {
    const leaf = DeviceClient.fromConnectionString(`HostName=${t.host};DeviceId=leaf-1;SharedAccessKey=${edge.leafKeys['leaf-1'] ?? ''};GatewayHostName=${edgeHost}`, Mqtt);
    await leaf.setOptions({ ca: edgeHub.ca });
    await leaf.open();
    closables.push(leaf);
    await leaf.sendEvent(json({ leaf: true }, { kind: 'leaf' }));
    const msg = await eventually(async () => (await t.client.readTelemetry({ deviceId: 'leaf-1' })).messages.find((m) => m.properties['kind'] === 'leaf') ?? false, { timeoutMs: 20_000 });
    expect(msg.moduleId ?? '').toBe('');
    expect(msg.body).toEqual({ leaf: true });
    const twin = await leaf.getTwin();
    await new Promise<void>((resolve, reject) =>
      (twin.properties.reported as unknown as { update(p: unknown, cb: (e?: Error) => void): void }).update({ battery: 90 }, (e) => (e ? reject(e) : resolve())),
    );
    await eventually(async () => ((await t.client.getTwin('leaf-1')) as { properties: { reported: Record<string, unknown> } }).properties.reported['battery'] === 90, { timeoutMs: 20_000 });
  });

  it('reports $edgeHub reported properties: the applied desired version and the connected clients', async () => {
    await nodeModule('modB');
    const reported = await eventually(
      async () => {
        const tw = (await t.client.getTwin(EDGE, '$edgeHub')) as { properties: { reported: Record<string, unknown>; desired: { $version: number } } };
        const r = tw.properties.reported;
        const clients = r['clients'] as Record<string, { status: string }> | undefined;
        return r['lastDesiredVersion'] === tw.properties.desired.$version && clients?.[`${EDGE}/modB`]?.status === 'Connected' ? r : false;
      },
      { timeoutMs: 20_000 },
    );
    expect(reported['schemaVersion']).toBe('1.0');
    expect(reported['lastDesiredStatus']).toEqual({ code: 200, description: '' });
  });
});
