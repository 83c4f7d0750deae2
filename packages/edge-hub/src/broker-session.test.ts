import { connect as tlsConnect } from 'node:tls';
import type { TLSSocket } from 'node:tls';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Feature, createSasToken, generateKey, issueCa, issueServerCertificate } from '@kedge/protocol';
import type { Identity } from '@kedge/protocol';
import { eventually } from '@kedge/testing';
import { EdgeBroker } from './broker.js';
import type { BrokerHandler } from './broker.js';
import type { ScopeIdentity } from './hub-client.js';
import { IdentityCache } from './identities.js';
import { EdgeHubMetrics } from './metrics.js';

const EDGE = 'edge1';
const HUB = 'hub.example';
const log = pino({ level: process.env['KEDGE_TEST_LOG'] ?? 'silent' });

// MQTT 3.1.1 packets written by hand, so the test decides when each one goes on the wire (MQTT.js holds a SUBSCRIBE
// until its CONNACK; a client need not [MQTT-3.1.4-5], and a fast one sends it as soon as the CONNACK is in).
const str = (s: string): Buffer => {
  const b = Buffer.from(s, 'utf8');
  return Buffer.concat([Buffer.from([b.length >> 8, b.length & 0xff]), b]);
};
const packet = (first: number, body: Buffer): Buffer => {
  const len: number[] = [];
  let n = body.length;
  do {
    len.push((n % 128) | (n >= 128 ? 0x80 : 0));
    n = Math.floor(n / 128);
  } while (n > 0);
  return Buffer.concat([Buffer.from([first, ...len]), body]);
};
const connectPacket = (clientId: string, username: string, password: string): Buffer =>
  // protocol "MQTT" level 4, flags: user name, password, clean session; keep-alive 60 s.
  packet(0x10, Buffer.concat([str('MQTT'), Buffer.from([4, 0xc2, 0, 60]), str(clientId), str(username), str(password)]));
const subscribePacket = (id: number, topic: string): Buffer => packet(0x82, Buffer.concat([Buffer.from([id >> 8, id & 0xff]), str(topic), Buffer.from([1])]));

/** A raw MQTT connection: records what the broker sends and acknowledges every QoS 1 PUBLISH. */
class RawClient {
  readonly published: Array<{ topic: string; payload: string }> = [];
  readonly types: number[] = [];
  #buf = Buffer.alloc(0);

  constructor(readonly socket: TLSSocket) {
    socket.on('data', (d: Buffer) => this.#onData(d));
  }

  /** Writes `data`; resolves once it is handed to the kernel (on loopback: readable by the broker). */
  write(data: Buffer): Promise<void> {
    return new Promise((resolve, reject) => this.socket.write(data, (e) => (e ? reject(e) : resolve())));
  }

  #onData(d: Buffer): void {
    this.#buf = Buffer.concat([this.#buf, d]);
    for (;;) {
      let len = 0;
      let mul = 1;
      let i = 1;
      for (; i < this.#buf.length; i++) {
        const b = this.#buf[i] as number;
        len += (b & 0x7f) * mul;
        mul *= 128;
        if ((b & 0x80) === 0) break;
      }
      if (i >= this.#buf.length || this.#buf.length < i + 1 + len) return;
      const first = this.#buf[0] as number;
      const body = this.#buf.subarray(i + 1, i + 1 + len);
      this.#buf = this.#buf.subarray(i + 1 + len);
      this.types.push(first >> 4);
      if (first >> 4 === 3) {
        const tlen = body.readUInt16BE(0);
        const topic = body.subarray(2, 2 + tlen).toString('utf8');
        const qos = (first >> 1) & 3;
        const id = qos > 0 ? body.readUInt16BE(2 + tlen) : 0;
        this.published.push({ topic, payload: body.subarray(2 + tlen + (qos > 0 ? 2 : 0)).toString('utf8') });
        if (qos === 1) this.socket.write(Buffer.from([0x40, 2, id >> 8, id & 0xff]));
      }
    }
  }
}

// A module that subscribes to its inputs while its CONNECT is still being accepted. aedes reads what arrived during
// the CONNECT's authentication (and anything after the CONNACK) before it reports the client ready: the broker must
// not let the ready connection's clean-session reset erase that subscription. It did: the module got its SUBACK and
// then never a message (the offline test's sink, connecting to an edge hub busy draining its backlog upstream).
describe('edge hub broker: a subscription made while the CONNECT is being accepted', () => {
  const late: ScopeIdentity = { deviceId: EDGE, moduleId: 'late', primaryKey: generateKey(), secondaryKey: generateKey(), enabled: true };
  let broker: EdgeBroker;
  let identities: IdentityCache;
  let port = 0;
  let ca = '';
  /** The device scope answers (the hub's), held by the test while `hold` is set. */
  let hold: Promise<void> | undefined;
  let asked = 0;
  const sessions: Array<{ id: Identity; features: Feature[] }> = [];
  const sockets: TLSSocket[] = [];

  beforeAll(async () => {
    const authority = issueCa('test edge CA', { years: 1 });
    ca = authority.cert;
    identities = new IdentityCache({
      file: `/tmp/kedge-broker-session-test-${process.pid}/identities.json`,
      // The scope as the hub would return it; `late` is not in the cache yet, so its CONNECT waits for this answer.
      source: {
        deviceScope: async () => {
          asked++;
          await hold;
          return [late];
        },
      },
      log,
      refreshSeconds: 3600,
      unknownRefreshSeconds: 0,
    });
    const handler: BrokerHandler = {
      telemetry: () => Promise.resolve(),
      twinGet: () => Promise.resolve({ status: 404, body: '' }),
      twinReported: () => Promise.resolve({ status: 404, body: '' }),
      methodResponse: () => undefined,
      sessionChanged: (id, connected, features) => {
        if (connected) sessions.push({ id, features: [...features] });
      },
    };
    broker = new EdgeBroker(
      {
        edgeDeviceId: EDGE,
        hostNames: [HUB, 'localhost'],
        tls: issueServerCertificate(authority, ['localhost'], { years: 1 }),
        maxMessageBytes: 1024,
        connectTimeoutMs: 10_000,
        frames: { maxConnectBytes: 2048, maxPacketBytes: 4096 },
      },
      { identities, handler, log, metrics: new EdgeHubMetrics({ iothub: HUB, edgeDevice: EDGE }) },
    );
    port = (await broker.start({ mqtt: { host: '127.0.0.1', port: 0 } })).mqttPort;
  });

  afterAll(async () => {
    for (const s of sockets) s.destroy();
    await broker.close();
    identities.close();
  });

  it('keeps the subscription, and the module gets the messages delivered to it', async () => {
    let release = (): void => undefined;
    hold = new Promise((r) => (release = r));
    const socket = await new Promise<TLSSocket>((resolve, reject) => {
      const s = tlsConnect({ host: '127.0.0.1', port, ca, servername: 'localhost' }, () => resolve(s));
      s.once('error', reject);
    });
    sockets.push(socket);
    const c = new RawClient(socket);
    const id = `${EDGE}/late`;
    const password = createSasToken({ audience: `${HUB}/devices/${EDGE}/modules/late`, key: late.primaryKey, expirySeconds: Math.floor(Date.now() / 1000) + 3600 });

    // 1. CONNECT: the broker reads it and asks the hub for the unknown identity (held).
    await c.write(connectPacket(id, `${HUB}/${id}/?api-version=2021-04-12`, password));
    await eventually(() => asked > 0, { timeoutMs: 10_000, message: 'the CONNECT reached the identity lookup' });
    // 2. SUBSCRIBE to the inputs, in a packet of its own, while the CONNECT is being accepted.
    await c.write(subscribePacket(1, `devices/${EDGE}/modules/late/inputs/#`));
    // 3. The identity arrives: CONNACK, then the SUBACK.
    release();
    await eventually(() => c.types.includes(9), { timeoutMs: 10_000, message: 'SUBACK' });
    expect(c.types[0]).toBe(2);
    // Once the broker holds the connection as ready, the subscription is in effect.
    await eventually(() => broker.connected().some((i) => i.moduleId === 'late'), { timeoutMs: 10_000, message: 'ready' });
    const target = { deviceId: EDGE, moduleId: 'late' };
    expect(broker.hasFeature(target, Feature.Inputs)).toBe(true);
    // The edge hub was told (its module endpoint retries now) with the subscription in the session.
    expect(sessions.at(-1)?.features).toContain(Feature.Inputs);
    await broker.deliver(target, `devices/${EDGE}/modules/late/inputs/in/`, Buffer.from('{"n":1}'));
    expect(c.published).toEqual([{ topic: `devices/${EDGE}/modules/late/inputs/in/`, payload: '{"n":1}' }]);
  });
});
