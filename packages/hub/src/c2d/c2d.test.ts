import { Message as DeviceMessageCtor } from 'azure-iot-device';
import type { Message as DeviceMessage } from 'azure-iot-device';
import type { Client as DeviceClient } from 'azure-iot-device';
import { Message } from 'azure-iothub/dist/common-core/message.js';
import type { Client as ServiceClient, Registry } from 'azure-iothub';
import { NoRetry } from 'azure-iothub/dist/common-core/retry_policy.js';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { HubClient } from '../client.js';
import type { RunningHub } from '../hub.js';
import { eventually } from '../test-support/eventually.js';
import { startTestHub } from '../test-support/fixtures.js';
import { maybeStartTestPostgres } from '../test-support/postgres.js';
import { c2dClientFor, deviceClientFor, registryFor } from '../test-support/sdk.js';

type Hub = RunningHub & { host: string };
interface FeedbackRecord {
  originalMessageId: string;
  statusCode: string;
  description: string;
  deviceId: string;
  deviceGenerationId: string;
  enqueuedTimeUtc: string;
}

const C2D_TEST_CONFIG = { maxPendingPerDevice: 3, sweepIntervalSeconds: 0.2, lockTimeoutSeconds: 60 };

async function deviceCs(registry: Registry, hub: Hub, deviceId: string): Promise<string> {
  await registry.create({ deviceId }).catch(() => undefined);
  const d = await registry.get(deviceId);
  return `HostName=${hub.host};DeviceId=${deviceId};SharedAccessKey=${d.responseBody.authentication?.symmetricKey?.primaryKey ?? ''}`;
}

/** Collects the feedback records the service's feedback receiver gets (each batch completed). */
async function feedbackOf(service: ServiceClient): Promise<FeedbackRecord[]> {
  const records: FeedbackRecord[] = [];
  const r = await service.getFeedbackReceiver();
  const receiver = r.result;
  receiver.on('message', (msg: { getData(): Buffer | string }) => {
    records.push(...(JSON.parse(msg.getData().toString()) as FeedbackRecord[]));
    void receiver.complete(msg as never);
  });
  return records;
}

const text = (m: DeviceMessage): string => (m.getData() as Buffer).toString('utf8');

/** A device over MQTT collecting the cloud-to-device messages it receives (each completed). */
async function receivingDevice(cs: string, ca: string): Promise<{ client: DeviceClient; got: DeviceMessage[] }> {
  const client = await deviceClientFor(cs, ca);
  const got: DeviceMessage[] = [];
  client.on('message', (msg: DeviceMessage) => {
    got.push(msg);
    void client.complete(msg);
  });
  await client.open();
  return { client, got };
}

function describeC2d(name: string, database: () => Promise<{ url: string | undefined; stop(): Promise<void> } | undefined>): void {
  describe(`cloud-to-device messages with the Azure IoT SDKs (${name})`, () => {
    let db: { url: string | undefined; stop(): Promise<void> } | undefined;
    let hub: Hub;
    let registry: Registry;
    let service: ServiceClient;
    let feedback: FeedbackRecord[];
    const closables: Array<{ close(): Promise<unknown> }> = [];
    let skipped = false;

    beforeAll(async () => {
      db = await database();
      if (!db) {
        skipped = true;
        return;
      }
      hub = await startTestHub({ ...(db.url ? { db: db.url } : {}), c2d: C2D_TEST_CONFIG });
      registry = registryFor(hub.connectionString(), hub.ca);
      service = c2dClientFor(hub.connectionString(), hub.ca);
      service.setRetryPolicy(new NoRetry());
      await service.open();
      feedback = await feedbackOf(service);
    });
    afterEach(async () => {
      for (const c of closables.splice(0).reverse()) await c.close().catch(() => undefined);
    });
    afterAll(async () => {
      await service?.close().catch(() => undefined);
      await hub?.close();
      await db?.stop();
    });

    it('Client.send over AMQP reaches an MQTT device; its completion comes back as positive feedback', async (ctx) => {
      if (skipped) return ctx.skip();
      const { client, got } = await receivingDevice(await deviceCs(registry, hub, 'c2d-1'), hub.ca);
      closables.push(client);
      const m = new Message('{"led":"on"}');
      m.messageId = 'cmd-1';
      m.ack = 'positive';
      m.correlationId = 'corr-1';
      m.contentType = 'application/json';
      m.properties.add('color', 'red & blue');
      await service.send('c2d-1', m);
      const msg = await eventually(() => got[0], { what: 'the message on the device' });
      expect(text(msg)).toBe('{"led":"on"}');
      expect(msg.messageId).toBe('cmd-1');
      expect(msg.correlationId).toBe('corr-1');
      expect(msg.properties.getValue('color')).toBe('red & blue');
      const fb = await eventually(() => feedback.find((f) => f.originalMessageId === 'cmd-1'), { what: 'positive feedback' });
      expect(fb).toMatchObject({ statusCode: 'Success', description: 'Success', deviceId: 'c2d-1' });
      expect(fb.deviceGenerationId).toBe((await registry.get('c2d-1')).responseBody.generationId);
      expect(Date.parse(fb.enqueuedTimeUtc)).toBeGreaterThan(0);
      // Completed: nothing is delivered again.
      const api = new HubClient({ connectionString: hub.connectionString(), ca: hub.ca });
      expect(await api.purgeC2dQueue('c2d-1')).toBe(0);
      expect(got).toHaveLength(1);
    });

    it('queues for an offline device and delivers in order when it connects; ack none gives no feedback', async (ctx) => {
      if (skipped) return ctx.skip();
      const cs = await deviceCs(registry, hub, 'c2d-2');
      for (const id of ['a', 'b', 'c']) {
        const m = new Message(id);
        m.messageId = `order-${id}`;
        await service.send('c2d-2', m);
      }
      const { client, got } = await receivingDevice(cs, hub.ca);
      closables.push(client);
      await eventually(() => got.length === 3, { what: 'three messages' });
      expect(got.map(text)).toEqual(['a', 'b', 'c']);
      expect(feedback.some((f) => f.originalMessageId.startsWith('order-'))).toBe(false);
    });

    it('refuses a message over the per-device queue depth, and purge empties the queue', async (ctx) => {
      if (skipped) return ctx.skip();
      await deviceCs(registry, hub, 'c2d-full');
      for (let i = 0; i < 3; i++) await service.send('c2d-full', new Message(`m${i}`));
      const err = await service.send('c2d-full', new Message('one too many')).catch((e: unknown) => e);
      expect((err as Error).constructor.name).toBe('DeviceMaximumQueueDepthExceededError');
      const api = new HubClient({ connectionString: hub.connectionString(), ca: hub.ca });
      expect(await api.purgeC2dQueue('c2d-full')).toBe(3);
      await service.send('c2d-full', new Message('fits again'));
      expect(await api.purgeC2dQueue('c2d-full')).toBe(1);
      await expect(api.purgeC2dQueue('no-such-device')).rejects.toMatchObject({ status: 404 });
      // A device that does not exist: refused, nothing stored.
      const missing = await service.send('no-such-device', new Message('x')).catch((e: unknown) => e);
      expect((missing as Error).constructor.name).toBe('DeviceNotFoundError');
    });

    it('an expired message gives Expired feedback to a negative ack and is never delivered', async (ctx) => {
      if (skipped) return ctx.skip();
      const cs = await deviceCs(registry, hub, 'c2d-ttl');
      const m = new Message('too late');
      m.messageId = 'ttl-1';
      m.ack = 'negative';
      m.expiryTimeUtc = Date.now() + 500;
      await service.send('c2d-ttl', m);
      const fb = await eventually(() => feedback.find((f) => f.originalMessageId === 'ttl-1'), { what: 'expired feedback' });
      expect(fb).toMatchObject({ statusCode: 'Expired', description: 'Message expired', deviceId: 'c2d-ttl' });
      const { client, got } = await receivingDevice(cs, hub.ca);
      closables.push(client);
      const ok = new Message('in time');
      await service.send('c2d-ttl', ok);
      await eventually(() => got.length > 0, { what: 'the message in time' });
      expect(got.map(text)).toEqual(['in time']);
    });

    it('sends over AMQP over WebSockets too', async (ctx) => {
      if (skipped) return ctx.skip();
      const { client, got } = await receivingDevice(await deviceCs(registry, hub, 'c2d-ws'), hub.ca);
      closables.push(client);
      const ws = c2dClientFor(hub.connectionString('service'), hub.ca, { websocket: true });
      ws.setRetryPolicy(new NoRetry());
      closables.push(ws);
      await ws.open();
      await ws.send('c2d-ws', new Message('over websockets'));
      await eventually(() => got.length > 0, { what: 'the message' });
      expect(got[0] && text(got[0])).toBe('over websockets');
    });

    it('an AMQP device receives; its reject gives Rejected feedback to ack full, its complete Success', async (ctx) => {
      if (skipped) return ctx.skip();
      const client = await deviceClientFor(await deviceCs(registry, hub, 'c2d-amqp'), hub.ca, { amqp: true });
      closables.push(client);
      const got: DeviceMessage[] = [];
      client.on('message', (msg: DeviceMessage) => {
        got.push(msg);
        // The first is rejected, the second completed.
        void (got.length === 1 ? client.reject(msg) : client.complete(msg));
      });
      await client.open();
      for (const id of ['rej', 'ok']) {
        const m = new Message(`amqp ${id}`);
        m.messageId = `amqp-${id}`;
        m.ack = 'full';
        m.properties.add('kind', id);
        await service.send('c2d-amqp', m);
      }
      const rejected = await eventually(() => feedback.find((f) => f.originalMessageId === 'amqp-rej'), { what: 'rejected feedback' });
      expect(rejected).toMatchObject({ statusCode: 'Rejected', description: 'Message rejected', deviceId: 'c2d-amqp' });
      const done = await eventually(() => feedback.find((f) => f.originalMessageId === 'amqp-ok'), { what: 'success feedback' });
      expect(done.statusCode).toBe('Success');
      expect(got.map(text)).toEqual(['amqp rej', 'amqp ok']);
      expect(got[1]?.properties.getValue('kind')).toBe('ok');
      const api = new HubClient({ connectionString: hub.connectionString(), ca: hub.ca });
      expect(await api.purgeC2dQueue('c2d-amqp')).toBe(0);
    });

    it('an AMQP device sends telemetry, stored as MQTT telemetry is', async (ctx) => {
      if (skipped) return ctx.skip();
      const client = await deviceClientFor(await deviceCs(registry, hub, 'amqp-tel'), hub.ca, { amqp: true });
      closables.push(client);
      await client.open();
      const m = new DeviceMessageCtor('{"t":20}');
      m.messageId = 'tel-1';
      m.contentType = 'application/json';
      m.contentEncoding = 'utf-8';
      m.properties.add('unit', 'C');
      await client.sendEvent(m);
      const api = new HubClient({ connectionString: hub.connectionString(), ca: hub.ca });
      const got = await api.readTelemetry({ deviceId: 'amqp-tel' });
      expect(got.messages).toHaveLength(1);
      expect(got.messages[0]?.body).toEqual({ t: 20 });
      expect(got.messages[0]?.properties).toEqual({ unit: 'C' });
      expect(got.messages[0]?.systemProperties).toMatchObject({ messageId: 'tel-1', connectionDeviceId: 'amqp-tel' });
    });

    it('a policy without ServiceConnect cannot open the service client', async (ctx) => {
      if (skipped) return ctx.skip();
      const c = c2dClientFor(hub.connectionString('registryRead'), hub.ca);
      c.setRetryPolicy(new NoRetry());
      closables.push(c);
      await expect(c.open()).rejects.toThrow();
    });
  });
}

describeC2d('SQLite', () => Promise.resolve({ url: undefined, stop: () => Promise.resolve() }));
describeC2d('PostgreSQL', async () => {
  const pg = await maybeStartTestPostgres();
  return pg && { url: pg.url, stop: () => pg.stop() };
});

describe('cloud-to-device messages across two PostgreSQL replicas', () => {
  let pg: { url: string; stop(): Promise<void> } | undefined;
  let a: Hub;
  let b: Hub;
  let service: ServiceClient;
  let feedback: FeedbackRecord[];
  const closables: Array<{ close(): Promise<unknown> }> = [];

  beforeAll(async () => {
    pg = await maybeStartTestPostgres();
    if (!pg) return;
    a = await startTestHub({ db: pg.url, replicaId: 'a', c2d: C2D_TEST_CONFIG });
    b = await startTestHub({ db: pg.url, replicaId: 'b', c2d: C2D_TEST_CONFIG });
    service = c2dClientFor(a.connectionString(), a.ca);
    service.setRetryPolicy(new NoRetry());
    await service.open();
    feedback = await feedbackOf(service);
  });
  afterAll(async () => {
    for (const c of closables.reverse()) await c.close().catch(() => undefined);
    await service?.close().catch(() => undefined);
    await b?.close();
    await a?.close();
    await pg?.stop();
  });

  it('a message sent to replica A reaches the device on replica B; the completion reaches A as feedback', async (ctx) => {
    if (!pg) return ctx.skip();
    const registry = registryFor(a.connectionString(), a.ca);
    await registry.create({ deviceId: 'roamer' });
    const key = (await registry.get('roamer')).responseBody.authentication?.symmetricKey?.primaryKey ?? '';
    const { client, got } = await receivingDevice(`HostName=${b.host};DeviceId=roamer;SharedAccessKey=${key}`, b.ca);
    closables.push(client);
    const m = new Message('across replicas');
    m.messageId = 'x-1';
    m.ack = 'full';
    await service.send('roamer', m);
    await eventually(() => got.length > 0, { what: 'the message on replica B' });
    expect(got[0] && text(got[0])).toBe('across replicas');
    const fb = await eventually(() => feedback.find((f) => f.originalMessageId === 'x-1'), { what: 'feedback on replica A' });
    expect(fb.statusCode).toBe('Success');
  });
});
