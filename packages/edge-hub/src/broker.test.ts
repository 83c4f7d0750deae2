import { connect as tlsConnect } from 'node:tls';
import type { TLSSocket } from 'node:tls';
import { connectAsync } from 'mqtt';
import type { MqttClient } from 'mqtt';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createSasToken, generateKey, issueCa, issueServerCertificate } from '@kedge/protocol';
import type { Identity } from '@kedge/protocol';
import { eventually } from '@kedge/testing';
import { EdgeBroker, NotConnectedError, sessionPersistence } from './broker.js';
import type { BrokerHandler, InboundTelemetry } from './broker.js';
import type { ScopeIdentity } from './hub-client.js';
import { IdentityCache } from './identities.js';
import { EdgeHubMetrics } from './metrics.js';

const EDGE = 'edge1';
const HUB = 'hub.example';
const log = pino({ level: process.env['KEDGE_TEST_LOG'] ?? 'silent' });

// The device scope as the hub would return it. The broker tests exercise the broker alone, so the scope comes from a
// static list instead of the hub (the end-to-end tests fetch it from the real hub).
const scope: ScopeIdentity[] = [
  { deviceId: EDGE, moduleId: 'modA', primaryKey: generateKey(), secondaryKey: generateKey(), enabled: true },
  { deviceId: EDGE, moduleId: 'modB', primaryKey: generateKey(), secondaryKey: generateKey(), enabled: true },
  { deviceId: 'leaf1', moduleId: '', primaryKey: generateKey(), secondaryKey: generateKey(), enabled: true },
  { deviceId: EDGE, moduleId: 'off', primaryKey: generateKey(), secondaryKey: generateKey(), enabled: false },
];

const keyOf = (d: string, m: string): string => scope.find((s) => s.deviceId === d && s.moduleId === m)?.primaryKey ?? generateKey();
const token = (d: string, m: string, opts: { key?: string; ttl?: number; host?: string } = {}): string =>
  createSasToken({
    audience: `${opts.host ?? HUB}/devices/${d}${m ? `/modules/${m}` : ''}`,
    key: opts.key ?? keyOf(d, m),
    expirySeconds: Math.floor(Date.now() / 1000) + (opts.ttl ?? 3600),
  });

describe('edge hub broker', () => {
  let broker: EdgeBroker;
  let port = 0;
  let ca = '';
  let identities: IdentityCache;
  const received: Array<{ id: Identity; m: InboundTelemetry }> = [];
  const sessions: string[] = [];
  let holdTelemetry: Promise<void> = Promise.resolve();
  /** Bodies the handler was given (before it is done), and per-body holds. */
  const entered: string[] = [];
  const holdFor = new Map<string, Promise<void>>();
  const clients: MqttClient[] = [];
  let current = scope;

  const handler: BrokerHandler = {
    async telemetry(id, m) {
      entered.push(m.body.toString());
      await (holdFor.get(m.body.toString()) ?? holdTelemetry);
      received.push({ id, m });
    },
    twinGet: () => Promise.resolve({ status: 200, body: JSON.stringify({ desired: { $version: 3, a: 1 }, reported: { $version: 1 } }) }),
    twinReported: () => Promise.resolve({ status: 204, body: '', version: 2 }),
    methodResponse: () => undefined,
    sessionChanged: (id, connected) => {
      sessions.push(`${id.deviceId}/${id.moduleId}:${String(connected)}`);
    },
  };

  beforeAll(async () => {
    const authority = issueCa('test edge CA', { years: 1 });
    const server = issueServerCertificate(authority, ['localhost', '127.0.0.1'], { years: 1 });
    ca = authority.cert;
    identities = new IdentityCache({
      file: `/tmp/kedge-broker-test-${process.pid}/identities.json`,
      source: { deviceScope: () => Promise.resolve(current) },
      log,
      refreshSeconds: 3600,
      unknownRefreshSeconds: 0,
    });
    await identities.refresh();
    broker = new EdgeBroker(
      {
        edgeDeviceId: EDGE,
        hostNames: [HUB, 'localhost'],
        tls: server,
        maxMessageBytes: 1024,
        connectTimeoutMs: 800,
        frames: { maxConnectBytes: 2048, maxPacketBytes: 4096 },
      },
      { identities, handler, log, metrics: new EdgeHubMetrics({ iothub: HUB, edgeDevice: EDGE }) },
    );
    port = (await broker.start({ mqtt: { host: '127.0.0.1', port: 0 } })).mqttPort;
  });

  afterAll(async () => {
    for (const c of clients) c.end(true);
    await broker.close();
    identities.close();
  });

  const client = async (d: string, m: string, opts: { password?: string; clean?: boolean; clientId?: string } = {}): Promise<MqttClient> => {
    const id = m ? `${d}/${m}` : d;
    const c = await connectAsync(`mqtts://127.0.0.1:${port}`, {
      ca,
      servername: 'localhost',
      clientId: opts.clientId ?? id,
      username: `${HUB}/${id}/?api-version=2021-04-12`,
      password: opts.password ?? token(d, m),
      protocolVersion: 4,
      clean: opts.clean ?? false,
      reconnectPeriod: 0,
    });
    clients.push(c);
    return c;
  };

  const closed = (c: MqttClient): Promise<void> => new Promise((resolve) => (c.connected ? c.once('close', () => resolve()) : resolve()));

  const raw = (): Promise<TLSSocket> =>
    new Promise((resolve, reject) => {
      const s = tlsConnect({ host: '127.0.0.1', port, ca, servername: 'localhost' }, () => resolve(s));
      s.once('error', reject);
    });
  const ends = (s: TLSSocket): Promise<void> => new Promise((resolve) => (s.destroyed ? resolve() : s.once('close', () => resolve())));

  it('takes a module output with its identity from the connection, and acknowledges it only once stored', async () => {
    const a = await client(EDGE, 'modA');
    let release = (): void => undefined;
    holdTelemetry = new Promise((r) => (release = r));
    let acked = false;
    const pub = a.publishAsync(`devices/${EDGE}/modules/modA/messages/events/%24.on=out1&%24.ct=application%2Fjson&%24.cdid=forged&__proto__=x&temp=21/`, '{"t":21}', { qos: 1 }).then(() => (acked = true));
    await eventually(() => sessions.includes(`${EDGE}/modA:true`));
    expect(acked).toBe(false);
    release();
    await pub;
    const got = received.at(-1);
    expect(got?.id).toEqual({ deviceId: EDGE, moduleId: 'modA' });
    expect(got?.m.body.toString()).toBe('{"t":21}');
    expect({ ...got?.m.systemProperties }).toEqual({ outputName: 'out1', contentType: 'application/json', connectionDeviceId: EDGE, connectionModuleId: 'modA' });
    // Hostile keys are data: an own property, and the bag has no prototype to pollute.
    expect(Object.getPrototypeOf(got?.m.properties)).toBeNull();
    expect(got?.m.properties['__proto__']).toBe('x');
    expect(got?.m.properties['temp']).toBe('21');
  });

  it('reads on while earlier messages wait for the store, and acknowledges in arrival order once each is stored', async () => {
    const a = await client(EDGE, 'modA');
    const gates = new Map<string, () => void>();
    for (const k of ['first', 'second']) holdFor.set(k, new Promise<void>((r) => gates.set(k, r)));
    const acks: string[] = [];
    const topic = `devices/${EDGE}/modules/modA/messages/events/`;
    const p1 = a.publishAsync(topic, 'first', { qos: 1 }).then(() => acks.push('first'));
    await eventually(() => entered.includes('first'));
    // aedes alone would not read the next PUBLISH of this connection before the first one is acknowledged.
    const p2 = a.publishAsync(topic, 'second', { qos: 1 }).then(() => acks.push('second'));
    await eventually(() => entered.includes('second'));
    // The second is stored first: its PUBACK waits for the first's [MQTT-4.6.0-2].
    gates.get('second')?.();
    await eventually(() => received.some((r) => r.m.body.toString() === 'second'));
    expect(acks).toEqual([]);
    gates.get('first')?.();
    await Promise.all([p1, p2]);
    expect(acks).toEqual(['first', 'second']);
  });

  it("gives each message its own bag's properties when a connection alternates bags, as frozen objects", async () => {
    const a = await client(EDGE, 'modA');
    const base = `devices/${EDGE}/modules/modA/messages/events/`;
    const bags = ['%24.on=o1&k=1', '%24.on=o1&k=1', '%24.on=o2&k=2', '%24.on=o1&k=1'];
    const from = received.length;
    for (const [i, b] of bags.entries()) await a.publishAsync(`${base}${b}`, `bag${i}`, { qos: 1 });
    const got = received.slice(from).filter((r) => r.m.body.toString().startsWith('bag'));
    expect(got.map((r) => [r.m.systemProperties['outputName'], r.m.properties['k']])).toEqual([['o1', '1'], ['o1', '1'], ['o2', '2'], ['o1', '1']]);
    expect(got.every((r) => Object.isFrozen(r.m.properties) && Object.isFrozen(r.m.systemProperties))).toBe(true);
    expect(got.every((r) => r.m.systemProperties['connectionModuleId'] === 'modA')).toBe(true);
  });

  it('takes a leaf device telemetry and answers twin requests on the requesting connection', async () => {
    const leaf = await client('leaf1', '');
    await leaf.publishAsync('devices/leaf1/messages/events/', 'hello', { qos: 1 });
    expect(received.at(-1)?.id).toEqual({ deviceId: 'leaf1', moduleId: '' });
    await leaf.subscribeAsync('$iothub/twin/res/#', { qos: 0 });
    const reply = new Promise<string>((resolve) => leaf.once('message', (t, p) => resolve(`${t} ${p.toString()}`)));
    await leaf.publishAsync('$iothub/twin/GET/?$rid=7', ' ');
    expect(await reply).toBe('$iothub/twin/res/200/?$rid=7 {"desired":{"$version":3,"a":1},"reported":{"$version":1}}');
  });

  it('refuses bad tokens, foreign identities, disabled identities and modules of other devices', async () => {
    const refused = async (p: Promise<unknown>): Promise<number | undefined> => {
      try {
        await p;
        return undefined;
      } catch (e) {
        return (e as { code?: number }).code;
      }
    };
    expect(await refused(client(EDGE, 'modA', { password: token(EDGE, 'modA', { key: generateKey() }) }))).toBe(4);
    expect(await refused(client(EDGE, 'modA', { password: token(EDGE, 'modB') }))).toBe(4);
    expect(await refused(client(EDGE, 'modA', { password: token(EDGE, 'modA', { host: 'evil.example' }) }))).toBe(4);
    expect(await refused(client(EDGE, 'modA', { password: 'SharedAccessSignature garbage' }))).toBe(4);
    expect(await refused(client(EDGE, 'modA', { password: token(EDGE, 'modA', { ttl: -10 }) }))).toBe(4);
    expect(await refused(client(EDGE, 'off'))).toBe(5);
    expect(await refused(client(EDGE, 'ghost'))).toBe(5);
    expect(await refused(client('otherEdge', 'modA'))).toBe(5);
    expect(await refused(client(EDGE, '$edgeHub'))).toBe(5);
    expect(await refused(client(EDGE, 'modA', { clientId: `${EDGE}/modB` }))).toBe(4);
  });

  it('disconnects a module publishing as another module or through topic tricks, and keeps serving the others', async () => {
    // Each publish comes from modB: somebody else's namespace, path tricks, server-to-client topics.
    for (const topic of [
      `devices/${EDGE}/modules/modA/messages/events/`,
      `devices/${EDGE}/modules/modB/messages/events/a=1/../../../modA/messages/events/`,
      `devices/${EDGE}/modules/modB/inputs/in/`,
      '$iothub/twin/PATCH/properties/desired/?$rid=1',
      `devices/${EDGE}/modules/modB/messages/events/%24.on=x/extra/`,
      `devices/${EDGE}/modules/modB//messages/events/`,
    ]) {
      const c = await client(EDGE, 'modB', { clean: true });
      const gone = closed(c);
      c.publish(topic, 'x', { qos: 1 });
      await gone;
    }
    const b = await client(EDGE, 'modB');
    const before = received.length;
    await b.publishAsync(`devices/${EDGE}/modules/modB/messages/events/`, 'still here', { qos: 1 });
    expect(received.length).toBe(before + 1);
    // Subscriptions outside the own namespace are refused (SUBACK 0x80).
    // MQTT.js reports a refused subscription (SUBACK 0x80) as an error.
    const suback = (topic: string): Promise<number> =>
      new Promise((resolve) => b.subscribe(topic, { qos: 1 }, (e, granted) => resolve(e ? 128 : (granted?.[0]?.qos ?? -1))));
    expect(await suback(`devices/${EDGE}/modules/modA/inputs/#`)).toBe(128);
    expect(await suback('#')).toBe(128);
    expect(await suback(`devices/+/modules/modB/inputs/#`)).toBe(128);
    expect(await suback(`devices/${EDGE}/modules/modB/inputs/#`)).toBe(1);
  });

  it('cuts oversize packets before and after CONNECT, malformed packets and silent sockets, and keeps serving', async () => {
    // 1. Before CONNECT: a header announcing 1 MB.
    const s1 = await raw();
    s1.write(Buffer.from([0x10, 0x80, 0x80, 0x40]));
    await ends(s1);
    // 2. Garbage.
    const s2 = await raw();
    s2.write(Buffer.from('GET / HTTP/1.1\r\n\r\n'));
    await ends(s2);
    // 3. A remaining length longer than 4 bytes.
    const s3 = await raw();
    s3.write(Buffer.from([0x10, 0xff, 0xff, 0xff, 0xff, 0x01]));
    await ends(s3);
    // 4. Silent: no CONNECT within the connect timeout.
    const s4 = await raw();
    const t0 = Date.now();
    await ends(s4);
    expect(Date.now() - t0).toBeLessThan(5000);
    // 5. After CONNECT: a publish over the frame limit, and a body over the message limit.
    const big = await client(EDGE, 'modA', { clean: true });
    const gone = closed(big);
    big.publish(`devices/${EDGE}/modules/modA/messages/events/`, Buffer.alloc(8000), { qos: 1 });
    await gone;
    const large = await client(EDGE, 'modA', { clean: true });
    const gone2 = closed(large);
    large.publish(`devices/${EDGE}/modules/modA/messages/events/`, Buffer.alloc(2000), { qos: 1 });
    await gone2;
    const ok = await client(EDGE, 'modB', { clean: true });
    await ok.publishAsync(`devices/${EDGE}/modules/modB/messages/events/`, Buffer.alloc(1000), { qos: 1 });
  });

  it('delivers module inputs on the input topic with the trailing slash, acknowledged by PUBACK, and refuses when not subscribed', async () => {
    const target = { deviceId: EDGE, moduleId: 'modB' };
    const b = await client(EDGE, 'modB', { clean: false, clientId: `${EDGE}/modB` });
    await expect(broker.deliver(target, `devices/${EDGE}/modules/modB/inputs/in1/`, Buffer.from('x'))).rejects.toBeInstanceOf(NotConnectedError);
    await b.subscribeAsync(`devices/${EDGE}/modules/modB/inputs/#`, { qos: 1 });
    const got = new Promise<string>((resolve) => b.once('message', (t, p) => resolve(`${t} ${p.toString()}`)));
    await broker.deliver(target, `devices/${EDGE}/modules/modB/inputs/in1/%24.cdid=${EDGE}&%24.cmid=modA`, Buffer.from('payload'));
    expect(await got).toBe(`devices/${EDGE}/modules/modB/inputs/in1/%24.cdid=${EDGE}&%24.cmid=modA payload`);
    // A persistent session keeps its subscription across a reconnect without re-subscribing (token renewal).
    b.end(true);
    await eventually(() => !broker.hasFeature(target, 'inputs'));
    const again = await client(EDGE, 'modB', { clean: false });
    await eventually(() => broker.hasFeature(target, 'inputs'));
    const got2 = new Promise<string>((resolve) => again.once('message', (t) => resolve(t)));
    await broker.deliver(target, `devices/${EDGE}/modules/modB/inputs/in2/`, Buffer.from('y'));
    expect(await got2).toBe(`devices/${EDGE}/modules/modB/inputs/in2/`);
  });

  it('delivers a batch in order in one go and reports how many were acknowledged before the module went away', async () => {
    const target = { deviceId: EDGE, moduleId: 'modB' };
    const b = await client(EDGE, 'modB', { clean: true, clientId: `${EDGE}/modB` });
    await b.subscribeAsync(`devices/${EDGE}/modules/modB/inputs/#`, { qos: 1 });
    await eventually(() => broker.hasFeature(target, 'inputs'));
    const topic = (i: number): string => `devices/${EDGE}/modules/modB/inputs/in/seq=${i}`;
    const got: string[] = [];
    // MQTT.js acknowledges a message when its handler calls back: the fourth one is never acknowledged.
    const handle = b.handleMessage.bind(b);
    b.handleMessage = (packet, callback) => {
      if (packet.cmd === 'publish') got.push(String(packet.payload));
      if (packet.cmd === 'publish' && String(packet.payload) === 'm4') return;
      handle(packet, callback);
    };
    const ok = await broker.deliverBatch(target, [1, 2].map((i) => ({ topic: topic(i), body: Buffer.from(`m${i}`) })));
    expect(ok).toEqual({ acknowledged: 2 });
    const partial = broker.deliverBatch(target, [3, 4].map((i) => ({ topic: topic(i), body: Buffer.from(`m${i}`) })));
    await eventually(() => got.includes('m4'));
    b.end(true);
    const r = await partial;
    expect(r.acknowledged).toBe(1);
    expect(r.error).toBeInstanceOf(NotConnectedError);
    expect(got.slice(0, 4)).toEqual(['m1', 'm2', 'm3', 'm4']);
    await expect(broker.deliverBatch(target, [{ topic: topic(5), body: Buffer.from('m5') }])).resolves.toMatchObject({ acknowledged: 0 });
  });

  it('ends a session when its token expires and when the identity leaves the scope', async () => {
    const a = await client(EDGE, 'modA', { password: token(EDGE, 'modA', { ttl: 2 }), clean: true });
    const t0 = Date.now();
    await closed(a);
    expect(Date.now() - t0).toBeLessThan(4000);
    const leaf = await client('leaf1', '', { clean: true });
    const gone = closed(leaf);
    current = scope.filter((s) => s.deviceId !== 'leaf1');
    identities.onChange((changed) => broker.recheck(changed));
    await identities.refresh();
    await gone;
  });
});

describe('edge hub broker: session persistence', () => {
  it('keeps no retained message, so a retained PUBLISH cannot hold memory', async () => {
    // aedes-persistence's runtime API is the promise one (its callback typings are the older API).
    const p = sessionPersistence() as unknown as { storeRetained(packet: unknown): Promise<void>; createRetainedStream(pattern: string): AsyncIterable<unknown> };
    for (let i = 0; i < 3; i++) {
      await p.storeRetained({ cmd: 'publish', topic: `devices/${EDGE}/modules/modA/messages/events/k=${i}`, payload: Buffer.alloc(1024), qos: 1, retain: true, dup: false, messageId: i + 1 });
    }
    const kept: unknown[] = [];
    for await (const r of p.createRetainedStream('#')) kept.push(r);
    expect(kept).toEqual([]);
  });
});
