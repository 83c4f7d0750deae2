import { join } from 'node:path';
import { connect as tlsConnect } from 'node:tls';
import Database from 'better-sqlite3';
import rhea from 'rhea';
import type { AmqpError, Connection, EventContext } from 'rhea';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createSasToken, generateKey, parseConnectionString } from '@kedge/protocol';
import { HubClient } from '../client.js';
import { PACKET_OVERHEAD_BYTES } from '../mqtt/admission.js';
import { eventually } from '../test-support/eventually.js';
import type { RunningHub } from '../hub.js';
import { startTestHub } from '../test-support/fixtures.js';
import { rawRest } from '../test-support/raw-clients.js';
import { registryFor } from '../test-support/sdk.js';
import { amqpConnect, bodyText, collect, detachOf, identityConnection, putToken, receiveFrom, sendOn } from './test-clients.js';

type Hub = RunningHub & { host: string };
const CONNECT_TIMEOUT_MS = 1500;
const now = (): number => Math.floor(Date.now() / 1000);

const c2d = (deviceId: string, body: string): rhea.Message => ({ to: `/devices/${deviceId}/messages/devicebound`, body: rhea.message.data_section(Buffer.from(body)) as unknown, message_id: `m-${body}` });

/** Writes `bytes` on a fresh TLS connection to the AMQP port; resolves once the hub closed it. */
function rawSend(hub: Hub, bytes: Buffer): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    const s = tlsConnect({ host: hub.host, port: 5671, ca: hub.ca, servername: undefined }, () => s.write(bytes));
    s.on('error', () => undefined);
    s.once('close', () => resolve());
    setTimeout(() => reject(new Error('the hub kept the connection')), 5000).unref();
  });
}

describe('AMQP endpoint: CBS and hostile input', () => {
  let hub: Hub;
  let api: HubClient;
  let policyKey: string;
  let deviceKey: string;

  beforeAll(async () => {
    hub = await startTestHub({ deviceLimits: { connectTimeoutMs: CONNECT_TIMEOUT_MS } });
    api = new HubClient({ connectionString: hub.connectionString(), ca: hub.ca });
    policyKey = parseConnectionString(hub.connectionString('service')).get('SharedAccessKey') ?? '';
    const registry = registryFor(hub.connectionString(), hub.ca);
    await registry.create({ deviceId: 'amqp-dev' });
    deviceKey = (await registry.get('amqp-dev')).responseBody.authentication?.symmetricKey?.primaryKey ?? '';
  });
  afterAll(async () => {
    await hub?.close();
  });

  const serviceToken = (se = now() + 3600, key = policyKey): string => createSasToken({ audience: hub.host, key, keyName: 'service', expirySeconds: se });

  it('accepts a service policy token and queues a message; refuses wrong, expired and misdirected tokens', async () => {
    const conn = await amqpConnect(hub);
    try {
      expect(await putToken(conn, hub.host, serviceToken(now() + 3600, generateKey()))).toBe(401);
      expect(await putToken(conn, hub.host, serviceToken(now() - 10))).toBe(401);
      expect(await putToken(conn, 'elsewhere.example.com', serviceToken())).toBe(401);
      expect(await putToken(conn, hub.host, 'SharedAccessSignature garbage')).toBe(401);
      expect(await putToken(conn, hub.host, serviceToken(), 'jwt')).toBe(400);
      // Without an accepted token, the service nodes stay shut and nothing is queued.
      expect(await sendOn(conn, '/messages/devicebound', c2d('amqp-dev', 'x'))).toBe('closed:amqp:unauthorized-access');
      expect(await receiveFrom(conn, '/messages/serviceBound/feedback')).toBe('closed:amqp:unauthorized-access');
      expect(await api.purgeC2dQueue('amqp-dev')).toBe(0);
      // The https:// form of the audience (uamqp's) is the hub itself.
      expect(await putToken(conn, `https://${hub.host}`, serviceToken())).toBe(200);
      expect(await sendOn(conn, `amqps://${hub.host}/messages/devicebound`, c2d('amqp-dev', 'y'))).toBe('accepted');
      expect(await sendOn(conn, '/messages/devicebound', { ...c2d('amqp-dev', 'z'), to: '/devices/amqp-dev/messages/events' })).toBe('rejected:amqp:invalid-field');
      expect(await sendOn(conn, '/messages/devicebound', { ...c2d('amqp-dev', 'w'), application_properties: { 'iothub-ack': 'sometimes' } })).toBe('rejected:amqp:invalid-field');
      expect(await sendOn(conn, '/messages/devicebound', c2d('nobody', 'v'))).toBe('rejected:amqp:not-found');
      expect(await api.purgeC2dQueue('amqp-dev')).toBe(1);
      expect(await sendOn(conn, '/devices/amqp-dev/secret', c2d('amqp-dev', 'u'))).toBe('closed:amqp:not-found');
    } finally {
      conn.close();
    }
  });

  it('a device token opens nothing of the service: not the cloud-to-device sender, not the feedback', async () => {
    const conn = await amqpConnect(hub);
    try {
      const token = createSasToken({ audience: `${hub.host}/devices/amqp-dev`, key: deviceKey, expirySeconds: now() + 3600 });
      expect(await putToken(conn, `${hub.host}/devices/amqp-dev`, token)).toBe(200);
      // Its token does not stretch to another device or to the hub audience.
      expect(await putToken(conn, `${hub.host}/devices/other`, token)).toBe(401);
      expect(await putToken(conn, hub.host, token)).toBe(401);
      expect(await sendOn(conn, '/messages/devicebound', c2d('amqp-dev', 'dev'))).toBe('closed:amqp:unauthorized-access');
      expect(await receiveFrom(conn, '/messages/serviceBound/feedback')).toBe('closed:amqp:unauthorized-access');
      expect(await api.purgeC2dQueue('amqp-dev')).toBe(0);
    } finally {
      conn.close();
    }
  });

  it('detaches a live link when its token reaches se, and keeps an authorized connection past the pre-auth deadline', async () => {
    const conn = await amqpConnect(hub);
    try {
      expect(await putToken(conn, hub.host, serviceToken(now() + 3))).toBe(200);
      const closed = new Promise<string>((resolve) => {
        const sender = conn.open_sender({ target: { address: '/messages/devicebound' } });
        sender.on('sender_error', () => undefined);
        sender.once('sendable', () => sender.send(c2d('amqp-dev', 'live')));
        sender.once('sender_close', (ctx: EventContext) => resolve((ctx.sender?.error as AmqpError | undefined)?.condition ?? ''));
      });
      const started = Date.now();
      expect(await closed).toBe('amqp:unauthorized-access');
      // Closed at `se` (≤ 3 s), and the connection outlived the 1.5 s pre-authentication deadline meanwhile.
      expect(Date.now() - started).toBeGreaterThan(CONNECT_TIMEOUT_MS);
      expect(conn.is_open()).toBe(true);
      expect(await api.purgeC2dQueue('amqp-dev')).toBe(1);
    } finally {
      conn.close();
    }
  });

  it('closes a connection that opens no authorized link within the deadline', async () => {
    const started = Date.now();
    const conn = await amqpConnect(hub);
    // Opened (SASL-less AMQP open is fine) but never authorized: the socket goes at the deadline.
    await new Promise<void>((resolve) => conn.once('disconnected', () => resolve()));
    expect(Date.now() - started).toBeGreaterThanOrEqual(CONNECT_TIMEOUT_MS - 100);
  });

  it('bounds a message of small frames before authentication by the pre-authentication frame limit', async () => {
    const conn = await amqpConnect(hub);
    try {
      // rhea cuts messages into frames of the peer's announced max-frame-size; a hostile client may cut them smaller,
      // each frame within the 8 KiB allowed before a token is accepted.
      (conn as unknown as { remote: { open: { max_frame_size: number } } }).remote.open.max_frame_size = 4096;
      const big = { to: '$cbs', reply_to: 'cbs', message_id: 'big', application_properties: { operation: 'put-token', type: 'servicebus.windows.net:sastoken', name: hub.host }, body: 'x'.repeat(64 * 1024) };
      expect(await sendOn(conn, '$cbs', big)).toBe('closed:amqp:link:message-size-exceeded');
      // The connection is still there for a put-token that fits.
      expect(await putToken(conn, hub.host, serviceToken())).toBe(200);
    } finally {
      conn.close();
    }
  });

  it('drops oversize frames before authentication and garbage, without buffering them', async () => {
    const header = Buffer.from([0x41, 0x4d, 0x51, 0x50, 0, 1, 0, 0]);
    const big = Buffer.alloc(8);
    big.writeUInt32BE(64 * 1024 * 1024, 0);
    big[4] = 2;
    await rawSend(hub, Buffer.concat([header, big]));
    await rawSend(hub, Buffer.from('GET / HTTP/1.1\r\nHost: x\r\n\r\n'));
    await rawSend(hub, Buffer.concat([header, Buffer.from([0, 0, 0, 3, 2, 0, 0, 0])]));
    // The endpoint still serves.
    const conn = await amqpConnect(hub);
    try {
      expect(await putToken(conn, hub.host, serviceToken())).toBe(200);
    } finally {
      conn.close();
    }
  });
});

describe('AMQP endpoint: device and module nodes, hostile input', () => {
  let hub: Hub;
  let api: HubClient;
  const keys = new Map<string, string>();

  beforeAll(async () => {
    hub = await startTestHub({ deviceLimits: { connectTimeoutMs: CONNECT_TIMEOUT_MS } });
    api = new HubClient({ connectionString: hub.connectionString(), ca: hub.ca });
    const registry = registryFor(hub.connectionString(), hub.ca);
    for (const d of ['dev-a', 'dev-b', 'dev-c']) {
      await registry.create({ deviceId: d });
      keys.set(d, (await registry.get(d)).responseBody.authentication?.symmetricKey?.primaryKey ?? '');
    }
    for (const m of ['mod-1', 'mod-2']) {
      await registry.addModule({ deviceId: 'dev-a', moduleId: m });
      keys.set(`dev-a/${m}`, (await registry.getModule('dev-a', m)).responseBody.authentication?.symmetricKey?.primaryKey ?? '');
    }
  });
  afterAll(async () => {
    await hub?.close();
  });

  /** A connection holding the accepted token of `identity` (`device` or `device/module`), valid until `se`. */
  const as = (identity: string, se?: number): Promise<Connection> => identityConnection(hub, identity, keys.get(identity) ?? '', se);
  const telemetry = (body: string | Buffer): rhea.Message => ({ message_id: `t-${Math.random()}`, body: rhea.message.data_section(Buffer.isBuffer(body) ? body : Buffer.from(body)) as unknown });
  const stored = async (deviceId: string): Promise<number> => (await api.readTelemetry({ deviceId, limit: 1000 })).messages.length;

  it("a module token opens only that module's nodes; a device token none of its modules'", async () => {
    const mod = await as('dev-a/mod-1');
    try {
      expect(await sendOn(mod, '/devices/dev-a/modules/mod-1/messages/events', telemetry('from mod-1'))).toBe('accepted');
      expect(await receiveFrom(mod, '/devices/dev-a/modules/mod-1/twin')).toBe('open');
      expect(await receiveFrom(mod, '/devices/dev-a/modules/mod-1/methods/devicebound')).toBe('open');
      // Module input messages arrive on its events node.
      expect(await receiveFrom(mod, '/devices/dev-a/modules/mod-1/messages/events')).toBe('open');
      // Its device's nodes, a sibling module's, another device's: refused, nothing stored.
      expect(await sendOn(mod, '/devices/dev-a/messages/events', telemetry('as the device'))).toBe('closed:amqp:unauthorized-access');
      expect(await sendOn(mod, '/devices/dev-a/modules/mod-2/messages/events', telemetry('as mod-2'))).toBe('closed:amqp:unauthorized-access');
      expect(await receiveFrom(mod, '/devices/dev-a/modules/mod-2/twin')).toBe('closed:amqp:unauthorized-access');
      expect(await receiveFrom(mod, '/devices/dev-a/twin')).toBe('closed:amqp:unauthorized-access');
      expect(await receiveFrom(mod, '/devices/dev-b/methods/devicebound')).toBe('closed:amqp:unauthorized-access');
      // Modules get no cloud-to-device messages (IoT Hub sends none); percent-escapes name the same node.
      expect(await receiveFrom(mod, '/devices/dev-a/modules/mod-1/messages/devicebound')).toBe('closed:amqp:not-found');
      expect(await sendOn(mod, '/devices/dev-a/modules/mod%2D1/messages/events', telemetry('escaped'))).toBe('accepted');
      expect(await sendOn(mod, '/devices/dev-a/modules/%zz/messages/events', telemetry('bad escape'))).toBe('closed:amqp:not-found');
    } finally {
      mod.close();
    }
    const dev = await as('dev-a');
    try {
      expect(await receiveFrom(dev, '/devices/dev-a/modules/mod-1/twin')).toBe('closed:amqp:unauthorized-access');
      expect(await sendOn(dev, '/devices/dev-a/modules/mod-1/methods/devicebound', { correlation_id: '1', application_properties: { 'IoThub-status': 200 }, body: '{}' })).toBe('closed:amqp:unauthorized-access');
      expect(await sendOn(dev, '/devices/dev-b/twin', { correlation_id: 'x', message_annotations: { operation: 'GET' }, body: ' ' })).toBe('closed:amqp:unauthorized-access');
      // Telemetry is sent, never received; cloud-to-device messages received, never sent.
      expect(await receiveFrom(dev, '/devices/dev-a/messages/events')).toBe('closed:amqp:not-found');
      expect(await sendOn(dev, '/devices/dev-a/messages/devicebound', telemetry('backwards'))).toBe('closed:amqp:not-found');
    } finally {
      dev.close();
    }
    const got = (await api.readTelemetry({ deviceId: 'dev-a' })).messages;
    expect(got.map((m) => [m.systemProperties['connectionModuleId'], Buffer.from(m.body as string, 'utf8').toString()])).toEqual([
      ['mod-1', 'from mod-1'],
      ['mod-1', 'escaped'],
    ]);
  });

  it('an identity is present while it holds a link on any connection, and gone with the last', async () => {
    const state = async (): Promise<unknown> => ((await api.getTwin('dev-c')) as { connectionState?: unknown }).connectionState;
    const one = await as('dev-c');
    const two = await as('dev-c');
    try {
      // A token alone connects nothing.
      expect(await state()).toBe('Disconnected');
      const twin = one.open_receiver({ source: { address: '/devices/dev-c/twin' } });
      expect(await receiveFrom(two, '/devices/dev-c/methods/devicebound')).toBe('open');
      await eventually(async () => (await state()) === 'Connected', { what: 'dev-c connected' });
      // The hub handles a detach before it answers it: once answered, dev-c still holds the other link.
      await new Promise<void>((resolve) => {
        twin.once('receiver_close', () => resolve());
        twin.close();
      });
      expect(await state()).toBe('Connected');
      two.close();
      await eventually(async () => (await state()) === 'Disconnected', { what: 'dev-c gone with its last link' });
    } finally {
      one.close();
      two.close();
    }
  });

  it('holds nothing for device and module links once they have gone, however they went', async () => {
    const entries = async (): Promise<number> => Number(/^kedge_hub_amqp_identity_entries (\d+)$/m.exec((await rawRest(hub, 'GET', '/metrics')).text)?.[1]);
    await eventually(async () => (await entries()) === 0, { what: 'no entries left by earlier tests' });
    const identities = ['dev-a', 'dev-a/mod-1', 'dev-a/mod-2', 'dev-c'];
    const conns: Connection[] = [];
    for (let i = 0; i < 12; i++) {
      const identity = identities[i % identities.length] ?? '';
      const conn = await as(identity);
      conns.push(conn);
      const base = `/devices/${identity.replace('/', '/modules/')}`;
      const replies = await collect(conn, `${base}/twin`);
      // Subscribed to desired patches: one more entry to let go of.
      expect(await sendOn(conn, `${base}/twin`, { correlation_id: `s${i}`, message_annotations: { operation: 'PUT', resource: '/notifications/twin/properties/desired' }, body: ' ' })).toBe('accepted');
      await eventually(() => replies.length > 0, { what: 'the subscription answered' });
      expect(await receiveFrom(conn, `${base}/methods/devicebound`)).toBe('open');
      conn.open_sender({ target: { address: `${base}/messages/events` } });
    }
    expect(await entries()).toBeGreaterThan(0);
    // Half the connections end whole, the other half detach link by link (and then end).
    for (const [i, conn] of conns.entries()) if (i % 2 === 0) conn.close();
    for (const [i, conn] of conns.entries()) if (i % 2 === 1) conn.each_link((l: rhea.Sender | rhea.Receiver) => l.close());
    await eventually(async () => (await entries()) === 0, { what: 'every entry released' });
    for (const conn of conns) conn.close();
  });

  it('detaches a twin link when its token reaches se', async () => {
    const conn = await as('dev-b', now() + 3);
    try {
      const closed = detachOf(conn, '/devices/dev-b/twin');
      const started = Date.now();
      expect(await closed).toBe('amqp:unauthorized-access');
      expect(Date.now() - started).toBeGreaterThan(CONNECT_TIMEOUT_MS);
      // After se the token opens nothing more.
      expect(await receiveFrom(conn, '/devices/dev-b/twin')).toBe('closed:amqp:unauthorized-access');
    } finally {
      conn.close();
    }
  });

  it('announces max-message-size and detaches a link whose multi-frame message outgrows it, storing nothing', async () => {
    const conn = await as('dev-b');
    try {
      const limit = 256 * 1024 + PACKET_OVERHEAD_BYTES;
      const announced = await new Promise<unknown>((resolve) => {
        const s = conn.open_sender({ target: { address: '/devices/dev-b/messages/events' } });
        s.once('sendable', () => {
          resolve((s as unknown as { remote: { attach?: { max_message_size?: unknown } } }).remote.attach?.max_message_size);
          s.close();
        });
      });
      expect(Number(announced)).toBe(limit);
      const before = await stored('dev-b');
      // rhea splits this into frames of the hub's max-frame-size: each frame passes the frame guard, the message not.
      expect(await sendOn(conn, '/devices/dev-b/messages/events', telemetry(Buffer.alloc(4 * limit, 0x61)))).toBe('closed:amqp:link:message-size-exceeded');
      // The connection stays usable and a message within bounds goes through.
      expect(await sendOn(conn, '/devices/dev-b/messages/events', telemetry('small'))).toBe('accepted');
      expect(await stored('dev-b')).toBe(before + 1);
    } finally {
      conn.close();
    }
  });

  it('gives a sending device 64 credits back as messages are settled, and detaches a link that sends past its credit', async () => {
    const conn = await as('dev-c');
    try {
      const before = await stored('dev-c');
      // An honest sender: the credit is the window, and comes back as the hub settles.
      let most = 0;
      const accepted = await new Promise<number>((resolve) => {
        const s = conn.open_sender({ target: { address: '/devices/dev-c/messages/events' } });
        let sent = 0;
        let acked = 0;
        s.on('sendable', () => {
          most = Math.max(most, (s as unknown as { credit: number }).credit);
          while (s.sendable() && sent < 200) {
            sent++;
            s.send(telemetry(`m${sent}`));
          }
        });
        s.on('accepted', () => {
          if (++acked === 200) resolve(acked);
        });
      });
      expect(accepted).toBe(200);
      expect(most).toBe(64);
      expect(await stored('dev-c')).toBe(before + 200);
      // A sender ignoring its credit (rhea's sender made to believe it has some): refused once past the window.
      const closed = await new Promise<string>((resolve) => {
        const s = conn.open_sender({ target: { address: '/devices/dev-c/messages/events' } });
        s.on('sender_error', () => undefined);
        s.once('sender_close', (ctx: EventContext) => resolve((ctx.sender?.error as AmqpError | undefined)?.condition ?? ''));
        s.once('sendable', () => {
          (s as unknown as { has_credit(): boolean }).has_credit = () => true;
          for (let i = 0; i < 1000; i++) s.send(telemetry('x'));
        });
      });
      expect(closed).toBe('amqp:link:transfer-limit-exceeded');
    } finally {
      conn.close();
    }
  });

  it('a method response is matched to the identity it came from: another device cannot answer a call', async () => {
    const target = await as('dev-a');
    const intruder = await as('dev-b');
    try {
      const requests = await collect(target, '/devices/dev-a/methods/devicebound');
      const service = new HubClient({ connectionString: hub.connectionString(), ca: hub.ca });
      const call = service.invoke('dev-a', undefined, 'open', { door: 1 });
      const req = await eventually(() => requests[0], { what: 'the method request on dev-a' });
      expect(req.application_properties?.['IoThub-methodname']).toBe('open');
      expect(JSON.parse(bodyText(req.body))).toEqual({ door: 1 });
      const response = (status: number, body: string): rhea.Message => ({ correlation_id: req.correlation_id, application_properties: { 'IoThub-status': rhea.types.wrap_int(status) }, body: rhea.message.data_section(Buffer.from(body)) as unknown });
      // dev-b replays the request id on its own node: accepted there, answers nothing.
      expect(await sendOn(intruder, '/devices/dev-b/methods/devicebound', response(200, '"forged"'))).toBe('accepted');
      // Malformed responses are rejected.
      expect(await sendOn(target, '/devices/dev-a/methods/devicebound', { correlation_id: req.correlation_id, application_properties: { 'IoThub-status': 'ok' }, body: '{}' })).toBe('rejected:amqp:invalid-field');
      expect(await sendOn(target, '/devices/dev-a/methods/devicebound', response(201, '"real"'))).toBe('accepted');
      expect(await call).toEqual({ status: 201, payload: 'real' });
    } finally {
      target.close();
      intruder.close();
    }
  });

  it('twin requests: a missing correlation id is rejected, an unknown operation and malformed JSON answered 400', async () => {
    const conn = await as('dev-b');
    try {
      const replies = await collect(conn, '/devices/dev-b/twin');
      const patch = (extra: Partial<rhea.Message>): rhea.Message => ({ message_annotations: { operation: 'PATCH', resource: '/properties/reported' }, body: rhea.message.data_section(Buffer.from('{"x":1}')) as unknown, ...extra });
      expect(await sendOn(conn, '/devices/dev-b/twin', patch({}))).toBe('rejected:amqp:invalid-field');
      expect(await sendOn(conn, '/devices/dev-b/twin', patch({ correlation_id: 'c1', message_annotations: { operation: 'POST', resource: '/properties/reported' } }))).toBe('accepted');
      expect(await sendOn(conn, '/devices/dev-b/twin', patch({ correlation_id: 'c2', body: rhea.message.data_section(Buffer.from('{"x":')) as unknown }))).toBe('accepted');
      expect(await sendOn(conn, '/devices/dev-b/twin', patch({ correlation_id: 'c3', body: rhea.message.data_section(Buffer.from('{"__proto__":{"polluted":1}}')) as unknown }))).toBe('accepted');
      await eventually(() => replies.length >= 3, { what: 'three replies' });
      const status = (id: string): unknown => replies.find((r) => r.correlation_id === id)?.message_annotations?.['status'];
      // A `__proto__` key is data to the twin code (null-prototype objects), as over MQTT: stored, nothing polluted.
      expect([status('c1'), status('c2'), status('c3')]).toEqual([400, 400, 204]);
      const twin = (await api.getTwin('dev-b')) as { properties: { reported: Record<string, unknown> } };
      expect(twin.properties.reported['x']).toBeUndefined();
      expect(({} as Record<string, unknown>)['polluted']).toBeUndefined();
    } finally {
      conn.close();
    }
  });
});

describe('AMQP identity links end with their credentials', () => {
  let hub: Hub & { dataDir: string };
  afterAll(async () => {
    await hub?.close();
  });

  /** Opens the twin and methods links of `deviceId` on `conn`; resolves each one's detach condition. */
  const detachesOf = (conn: Connection, deviceId: string): Array<Promise<string>> => ['twin', 'methods/devicebound'].map((node) => detachOf(conn, `/devices/${deviceId}/${node}`));

  it('a disabled device loses its links: announced at once, and written past the hub by the periodic re-check', async () => {
    hub = await startTestHub({ deviceLimits: { recheckSeconds: 1 } });
    const registry = registryFor(hub.connectionString(), hub.ca);
    const connect = async (deviceId: string): Promise<Connection> => {
      await registry.create({ deviceId });
      return identityConnection(hub, deviceId, (await registry.get(deviceId)).responseBody.authentication?.symmetricKey?.primaryKey ?? '');
    };
    const announced = await connect('disabled-1');
    const behind = await connect('disabled-2');
    try {
      const a = detachesOf(announced, 'disabled-1');
      const b = detachesOf(behind, 'disabled-2');
      const d = await registry.get('disabled-1');
      await registry.update({ deviceId: 'disabled-1', status: 'disabled', etag: d.responseBody.etag });
      expect(await Promise.all(a)).toEqual(['amqp:unauthorized-access', 'amqp:unauthorized-access']);
      // Written straight into the database, as a lost bus event would leave it: only the re-check can notice.
      const db = new Database(join(hub.dataDir, 'hub.db'));
      try {
        db.prepare("UPDATE devices SET status = 'disabled' WHERE device_id = ?").run('disabled-2');
      } finally {
        db.close();
      }
      expect(await Promise.all(b)).toEqual(['amqp:unauthorized-access', 'amqp:unauthorized-access']);
    } finally {
      announced.close();
      behind.close();
    }
  });
});
