import { connect as tlsConnect } from 'node:tls';
import rhea from 'rhea';
import type { AmqpError, Connection, EventContext } from 'rhea';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createSasToken, generateKey, parseConnectionString } from '@kedge/protocol';
import { HubClient } from '../client.js';
import type { RunningHub } from '../hub.js';
import { startTestHub } from '../test-support/fixtures.js';
import { registryFor } from '../test-support/sdk.js';

type Hub = RunningHub & { host: string };
const CONNECT_TIMEOUT_MS = 1500;
const now = (): number => Math.floor(Date.now() / 1000);

/** A raw rhea client connection to the hub's AMQP/TLS port (what the SDKs use underneath), opened. */
async function amqpConnect(hub: Hub): Promise<Connection> {
  const conn = rhea.create_container().connect({ host: hub.host, port: 5671, transport: 'tls', ca: hub.ca, hostname: hub.host, reconnect: false });
  conn.on('error', () => undefined);
  conn.on('connection_error', () => undefined);
  conn.on('disconnected', () => undefined);
  await new Promise<void>((resolve, reject) => {
    conn.once('connection_open', () => resolve());
    conn.once('disconnected', (ctx: EventContext) => reject(ctx.error ?? new Error('disconnected')));
  });
  return conn;
}

/** CBS put-token on `conn`; resolves the reply's `status-code`. */
function putToken(conn: Connection, audience: string, token: string, type = 'servicebus.windows.net:sastoken'): Promise<number> {
  const id = `pt-${Math.random()}`;
  return new Promise<number>((resolve) => {
    const receiver = conn.open_receiver({ source: { address: '$cbs' } });
    receiver.on('message', (ctx: EventContext) => {
      if (ctx.message?.correlation_id !== id) return;
      const props = (ctx.message.application_properties ?? {}) as Record<string, unknown>;
      resolve(Number(props['status-code']));
    });
    receiver.once('receiver_open', () => {
      const sender = conn.open_sender({ target: { address: '$cbs' } });
      sender.once('sendable', () => {
        sender.send({ to: '$cbs', reply_to: 'cbs', message_id: id, application_properties: { operation: 'put-token', type, name: audience }, body: token });
      });
    });
  });
}

/**
 * Opens a sending link to `address` and sends one message once it may: `accepted`, `rejected:<condition>` or,
 * when the hub detaches the link, `closed:<condition>`.
 */
function sendOn(conn: Connection, address: string, message: rhea.Message): Promise<string> {
  return new Promise<string>((resolve) => {
    const sender = conn.open_sender({ target: { address } });
    let sent = false;
    sender.on('sender_error', () => undefined);
    sender.once('sender_close', (ctx: EventContext) => resolve(`closed:${(ctx.sender?.error as AmqpError | undefined)?.condition ?? ''}`));
    sender.on('sendable', () => {
      if (sent) return;
      sent = true;
      sender.send(message);
    });
    sender.once('accepted', () => resolve('accepted'));
    sender.once('rejected', (ctx: EventContext) => resolve(`rejected:${(ctx.delivery?.remote_state as { error?: AmqpError } | undefined)?.error?.condition ?? ''}`));
  });
}

/** Opens a receiving link from `address`: `open` once the hub attached it and kept it, or `closed:<condition>`. */
function receiveFrom(conn: Connection, address: string): Promise<string> {
  return new Promise<string>((resolve) => {
    const receiver = conn.open_receiver({ source: { address } });
    receiver.on('receiver_error', () => undefined);
    receiver.once('receiver_close', (ctx: EventContext) => resolve(`closed:${(ctx.receiver?.error as AmqpError | undefined)?.condition ?? ''}`));
    // A refused attach is followed by its detach in the same read; the open is settled a turn later.
    receiver.once('receiver_open', () => setImmediate(() => resolve(receiver.is_closed() || !receiver.is_remote_open() ? 'closed:' : 'open')));
  });
}

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
