import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { EventHubConsumerClient } from '@azure/event-hubs';
import { earliestEventPosition, latestEventPosition } from '@azure/event-hubs';
import { Message } from 'azure-iot-device';
import type { Client as DeviceClient, ModuleClient } from 'azure-iot-device';
import type { Registry } from 'azure-iothub';
import type { Connection, Receiver, Sender } from 'rhea';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createSasToken, parseConnectionString } from '@kedge/protocol';
import type { RunningHub } from '../hub.js';
import { eventually } from '../test-support/eventually.js';
import type { SeenEvent } from '../test-support/eventhubs.js';
import { consumerFor, policyToken, putToken, rawConnect, rawReceiver, readWithPython, receive, receiveWhileSending, requestClient } from '../test-support/eventhubs.js';
import { startTestHub } from '../test-support/fixtures.js';
import { maybeStartTestPostgres } from '../test-support/postgres.js';
import { rawRest } from '../test-support/raw-clients.js';
import { deviceClientFor, moduleClientFor, registryFor } from '../test-support/sdk.js';
import { partitionOf } from './partitions.js';

type Hub = RunningHub & { host: string; dataDir: string };
const PARTITIONS = 4;
const EVENT_HUBS = { name: 'factory', partitionCount: PARTITIONS, consumerGroups: ['analytics'] };

/** Device ids landing on partitions 0, 0, 1 and 2 (partition 3 stays empty), chosen by the pinned hash. */
function pickDevices(): string[] {
  const by = new Map<number, string[]>();
  for (let i = 0; i < 200; i++) {
    const id = `sensor-${i}`;
    const p = partitionOf(id, PARTITIONS);
    by.set(p, [...(by.get(p) ?? []), id]);
  }
  const take = (p: number, n: number): string[] => (by.get(p) ?? []).slice(0, n);
  return [...take(0, 2), ...take(1, 1), ...take(2, 1)];
}

const policyKey = (hub: Hub, name: string): string => parseConnectionString(hub.connectionString(name)).get('SharedAccessKey') ?? '';
const byPartition = (seen: readonly SeenEvent[], p: string): SeenEvent[] => seen.filter((s) => s.partition === p);

/**
 * The Event Hubs-compatible endpoint against Microsoft's consumers: `@azure/event-hubs` and Python's
 * `azure-eventhub` read what `azure-iot-device` sent over MQTT. Runs once per storage engine.
 */
function describeEventHubs(name: string, database: () => Promise<{ url: string | undefined; stop(): Promise<void> } | undefined>): void {
  describe(`Event Hubs-compatible endpoint (${name})`, () => {
    let db: { url: string | undefined; stop(): Promise<void> } | undefined;
    let hub: Hub;
    let registry: Registry;
    const devices = pickDevices();
    const clients: (DeviceClient | ModuleClient)[] = [];
    const consumers: EventHubConsumerClient[] = [];
    const raw: Connection[] = [];
    let skipped = false;
    /** Every event the first full read saw, per device in send order. */
    let all: SeenEvent[] = [];

    const start = async (dataDir?: string, host?: string): Promise<Hub> =>
      startTestHub({ ...(db?.url ? { db: db.url } : {}), eventHubs: EVENT_HUBS, ...(dataDir ? { dataDir } : {}), ...(host ? { host } : {}) });
    const consumer = (group = '$Default'): EventHubConsumerClient => {
      const c = consumerFor(hub.eventHubsConnectionString(), hub.ca, group);
      consumers.push(c);
      return c;
    };
    const device = async (deviceId: string): Promise<DeviceClient> => {
      const key = (await registry.get(deviceId)).responseBody.authentication?.symmetricKey?.primaryKey ?? '';
      const c = await deviceClientFor(`HostName=${hub.host};DeviceId=${deviceId};SharedAccessKey=${key}`, hub.ca);
      await c.open();
      clients.push(c);
      return c;
    };
    const send = async (client: DeviceClient | ModuleClient, body: string, props: Record<string, string> = {}): Promise<void> => {
      const m = new Message(body);
      m.messageId = `id-${body}`;
      m.correlationId = `corr-${body}`;
      m.contentType = 'application/json';
      m.contentEncoding = 'utf-8';
      for (const [k, v] of Object.entries(props)) m.properties.add(k, v);
      await client.sendEvent(m);
    };
    const connectRaw = async (): Promise<Connection> => {
      const c = await rawConnect(hub.host, hub.ca);
      raw.push(c);
      return c;
    };
    const audience = (rest = ''): string => `sb://${hub.host}/${EVENT_HUBS.name}${rest}`;

    beforeAll(async () => {
      db = await database();
      if (!db) {
        skipped = true;
        return;
      }
      hub = await start(mkdtempSync(join(tmpdir(), 'kedge-eh-')));
      registry = registryFor(hub.connectionString(), hub.ca);
      for (const d of devices) await registry.create({ deviceId: d });
      await registry.addModule({ deviceId: devices[0] ?? '', moduleId: 'probe' });
    });

    afterAll(async () => {
      for (const c of consumers) await c.close().catch(() => undefined);
      for (const c of raw) c.close();
      for (const c of clients) await c.close().catch(() => undefined);
      await hub?.close();
      await db?.stop();
    });

    it('reads the telemetry devices and modules sent, by partition, with IoT Hub annotations and properties as sent', async (ctx) => {
      if (skipped) return ctx.skip();
      // 1. Each device sends two messages; a module of the first device sends one.
      for (const d of devices) {
        const c = await device(d);
        await send(c, `{"d":"${d}","n":0}`, { kind: 'reading' });
        await send(c, `{"d":"${d}","n":1}`, { kind: 'reading', zone: 'north' });
      }
      const moduleKey = (await registry.getModule(devices[0] ?? '', 'probe')).responseBody.authentication?.symmetricKey?.primaryKey ?? '';
      const mod = await moduleClientFor(`HostName=${hub.host};DeviceId=${devices[0] ?? ''};ModuleId=probe;SharedAccessKey=${moduleKey}`, hub.ca);
      await mod.open();
      clients.push(mod);
      await send(mod, `{"m":"probe"}`);
      const total = devices.length * 2 + 1;
      // 2. A consumer of every partition from the beginning sees each exactly once.
      all = await receive(consumer(), total, earliestEventPosition);
      expect(all).toHaveLength(total);
      for (const s of all) {
        const deviceId = s.event.systemProperties?.['iothub-connection-device-id'] as string;
        expect(s.partition).toBe(String(partitionOf(deviceId, PARTITIONS)));
      }
      // 3. Per partition: sequence numbers 0, 1, 2, … in order, the offset their text, each device's order kept.
      for (const p of ['0', '1', '2']) {
        const events = byPartition(all, p);
        expect(events.map((s) => s.event.sequenceNumber)).toEqual(events.map((_, i) => i));
        expect(events.map((s) => s.event.offset)).toEqual(events.map((_, i) => String(i)));
      }
      expect(byPartition(all, '3')).toEqual([]);
      const first = all.find((s) => s.event.messageId === `id-{"d":"${devices[2] ?? ''}","n":1}`);
      expect(first?.event.body).toEqual({ d: devices[2], n: 1 });
      expect(first?.event.properties).toEqual({ kind: 'reading', zone: 'north' });
      expect(first?.event.correlationId).toBe(`corr-{"d":"${devices[2] ?? ''}","n":1}`);
      expect(first?.event.contentType).toBe('application/json');
      const generationId = (await registry.get(devices[2] ?? '')).responseBody.generationId;
      expect(first?.event.systemProperties).toMatchObject({
        'iothub-connection-device-id': devices[2],
        'iothub-message-source': 'Telemetry',
        'iothub-connection-auth-generation-id': generationId,
        contentEncoding: 'utf-8',
      });
      expect(JSON.parse(first?.event.systemProperties?.['iothub-connection-auth-method'] as string)).toMatchObject({ scope: 'device', type: 'sas', issuer: 'iothub' });
      const enqueued = first?.event.systemProperties?.['iothub-enqueuedtime'] as number;
      expect(first?.event.enqueuedTimeUtc.getTime()).toBe(enqueued);
      expect(Math.abs(enqueued - Date.now())).toBeLessThan(600_000);
      const fromModule = all.find((s) => s.event.systemProperties?.['iothub-connection-module-id'] === 'probe');
      expect(fromModule?.event.systemProperties?.['iothub-connection-device-id']).toBe(devices[0]);
      expect(JSON.parse(fromModule?.event.systemProperties?.['iothub-connection-auth-method'] as string)).toMatchObject({ scope: 'module' });
    });

    it('answers the hub and partition properties the SDK asks $management for', async (ctx) => {
      if (skipped) return ctx.skip();
      const c = consumer();
      const props = await c.getEventHubProperties();
      expect(props.name).toBe('factory');
      expect(props.partitionIds).toEqual(['0', '1', '2', '3']);
      const p0 = await c.getPartitionProperties('0');
      const inP0 = byPartition(all, '0');
      expect(p0).toMatchObject({ partitionId: '0', eventHubName: 'factory', beginningSequenceNumber: 0, lastEnqueuedSequenceNumber: inP0.length - 1, lastEnqueuedOffset: String(inP0.length - 1), isEmpty: false });
      expect(p0.lastEnqueuedOnUtc.getTime()).toBe(inP0[inP0.length - 1]?.event.enqueuedTimeUtc.getTime());
      expect(await c.getPartitionProperties('3')).toMatchObject({ isEmpty: true, lastEnqueuedSequenceNumber: -1 });
      await expect(c.getPartitionProperties('7')).rejects.toThrow();
    });

    it('resumes from an offset, a sequence number and an enqueued time; reports the partition\'s end when asked', async (ctx) => {
      if (skipped) return ctx.skip();
      const inP0 = byPartition(all, '0');
      const c = consumer();
      const afterOffset = await receive(c, inP0.length - 2, { offset: inP0[1]?.event.offset ?? '' }, '0');
      expect(afterOffset.map((s) => s.event.messageId)).toEqual(inP0.slice(2).map((s) => s.event.messageId));
      const fromSeq = await receive(c, inP0.length - 1, { sequenceNumber: 1, isInclusive: true }, '0');
      expect(fromSeq.map((s) => s.event.sequenceNumber)).toEqual(inP0.slice(1).map((s) => s.event.sequenceNumber));
      // With trackLastEnqueuedEventProperties each batch says where the partition ends.
      const tracked = await receive(c, 1, { sequenceNumber: 0, isInclusive: true }, '0', { trackLastEnqueued: true });
      expect(tracked[0]?.lastEnqueued).toMatchObject({ sequenceNumber: inP0.length - 1, offset: String(inP0.length - 1) });
      expect(tracked[0]?.lastEnqueued?.enqueuedOn?.getTime()).toBe(inP0[inP0.length - 1]?.event.enqueuedTimeUtc.getTime());
      const t = inP0[0]?.event.enqueuedTimeUtc ?? new Date();
      const later = inP0.filter((s) => s.event.enqueuedTimeUtc > t);
      const afterTime = await receive(c, later.length, { enqueuedOn: t }, '0');
      expect(afterTime.map((s) => s.event.sequenceNumber)).toEqual(later.map((s) => s.event.sequenceNumber));
    });

    it('reads in two consumer groups independently, live from the end in one while the other reads from the beginning', async (ctx) => {
      if (skipped) return ctx.skip();
      const d = devices[3] ?? '';
      const p = String(partitionOf(d, PARTITIONS));
      const before = byPartition(all, p).length;
      // 1. $Default waits at the end of the partition.
      const live = receive(consumer('$Default'), 1, latestEventPosition, p);
      const dev = await device(d);
      // 2. Send until the live reader has one (its attach may land after the first send).
      const got = await receiveWhileSending(live, (n) => send(dev, `{"live":${n}}`), 'a live event');
      expect(got[0]?.event.body).toMatchObject({ live: expect.any(Number) as number });
      expect(got[0]?.event.sequenceNumber).toBeGreaterThanOrEqual(before);
      // 3. The analytics group, reading from the beginning, sees the old events and the new ones.
      const analytics = await receive(consumer('analytics'), before + 1, earliestEventPosition, p);
      expect(analytics.slice(0, before).map((s) => s.event.messageId)).toEqual(byPartition(all, p).map((s) => s.event.messageId));
      expect(analytics[before]?.event.body).toEqual({ live: 0 });
    });

    it('serves Python azure-eventhub over AMQP/TLS: properties, a partition from the beginning, then from an offset', async (ctx) => {
      if (skipped) return ctx.skip();
      const inP0 = byPartition(all, '0');
      const common = { connectionString: hub.eventHubsConnectionString(), ca: hub.ca, partition: '0' };
      const read = await readWithPython({ ...common, group: 'analytics', count: inP0.length, start: '-1' });
      expect(read.hub).toEqual({ name: 'factory', partition_ids: ['0', '1', '2', '3'] });
      expect(read.partition).toMatchObject({ eventhub_name: 'factory', id: '0', beginning_sequence_number: 0, last_enqueued_sequence_number: inP0.length - 1, is_empty: false });
      expect(read.events.slice(0, inP0.length).map((e) => e.sequence_number)).toEqual(inP0.map((s) => s.event.sequenceNumber));
      const e1 = read.events.find((e) => e.system['message-id'] === inP0[1]?.event.messageId);
      expect(e1?.body).toBe(JSON.stringify(inP0[1]?.event.body));
      expect(e1?.system).toMatchObject({ 'iothub-connection-device-id': inP0[1]?.event.systemProperties?.['iothub-connection-device-id'], 'iothub-message-source': 'Telemetry', 'content-type': 'application/json' });
      const resumed = await readWithPython({ ...common, group: '$Default', count: inP0.length - 1, start: read.events[0]?.offset ?? '' });
      expect(resumed.events.map((e) => e.sequence_number)).toEqual(inP0.slice(1).map((s) => s.event.sequenceNumber));
    });

    it('respects link credit: no more events than credit given, then the next ones in order', async (ctx) => {
      if (skipped) return ctx.skip();
      const inP0 = byPartition(all, '0');
      const conn = await connectRaw();
      const service = { name: 'service', key: policyKey(hub, 'service') };
      expect(await putToken(conn, audience(), policyToken(audience(), service))).toBe(200);
      const r = rawReceiver(conn, `${EVENT_HUBS.name}/ConsumerGroups/$Default/Partitions/0`, { filter: "amqp.annotation.x-opt-offset > '-1'", credit: 2 });
      await eventually(() => r.messages.length === 2);
      // A CBS round trip on the same connection and session: anything the hub sent beyond the credit would have
      // arrived first (and, queued in rhea beyond the credit, would hold up the reply: the round trip would hang).
      expect(await putToken(conn, audience(), policyToken(audience(), service))).toBe(200);
      expect(r.messages).toHaveLength(2);
      r.link.add_credit(inP0.length);
      await eventually(() => r.messages.length === inP0.length);
      expect(r.messages.map((m) => Number((m.message_annotations as Record<string, unknown>)['x-opt-sequence-number']))).toEqual(inP0.map((_, i) => i));
    });

    it('GET /kedge/eventhubs answers a ServiceConnect policy with its own connection string, and refuses everyone else', async (ctx) => {
      if (skipped) return ctx.skip();
      const ok = await rawRest(hub, 'GET', '/kedge/eventhubs');
      expect(ok.status).toBe(200);
      const info = ok.json as { name: string; partitionCount: number; consumerGroups: string[]; connectionString: string };
      expect(info).toMatchObject({ name: 'factory', partitionCount: PARTITIONS });
      expect(info.consumerGroups).toEqual(expect.arrayContaining(['$Default', 'analytics']));
      expect(info.connectionString).toContain('SharedAccessKeyName=iothubowner;');
      const se = Math.floor(Date.now() / 1000) + 600;
      const registryRead = createSasToken({ audience: hub.host, key: policyKey(hub, 'registryRead'), keyName: 'registryRead', expirySeconds: se });
      const deviceKey = (await registry.get(devices[0] ?? '')).responseBody.authentication?.symmetricKey?.primaryKey ?? '';
      const device = createSasToken({ audience: `${hub.host}/devices/${devices[0] ?? ''}`, key: deviceKey, expirySeconds: se });
      for (const authorization of [registryRead, device, 'SharedAccessSignature sr=x&sig=y&se=1', '']) {
        const r = await rawRest(hub, 'GET', '/kedge/eventhubs', undefined, { authorization });
        expect(r.status, authorization.slice(0, 40)).toBe(401);
        expect(r.text).not.toContain('SharedAccessKey=');
      }
    });

    it('refuses bad tokens, device tokens, unknown groups and partitions, malformed filters and lower owner levels', async (ctx) => {
      if (skipped) return ctx.skip();
      const service = { name: 'service', key: policyKey(hub, 'service') };
      const conn = await connectRaw();
      const now = Math.floor(Date.now() / 1000);
      // Tokens: expired, wrong key, IoT Hub-signed (base64 key), a device's, a policy without ServiceConnect.
      expect(await putToken(conn, audience(), policyToken(audience(), service, -10))).toBe(401);
      expect(await putToken(conn, audience(), policyToken(audience(), { name: 'service', key: 'bm90IHRoZSBrZXk=' }))).toBe(401);
      expect(await putToken(conn, audience(), createSasToken({ audience: audience(), key: service.key, keyName: 'service', expirySeconds: now + 600 }))).toBe(401);
      const deviceKey = (await registry.get(devices[0] ?? '')).responseBody.authentication?.symmetricKey?.primaryKey ?? '';
      expect(await putToken(conn, audience(), createSasToken({ audience: audience(), key: deviceKey, expirySeconds: now + 600 }))).toBe(401);
      expect(await putToken(conn, audience(), policyToken(audience(), { name: 'registryRead', key: policyKey(hub, 'registryRead') }))).toBe(403);
      // A token for one partition does not open another.
      expect(await putToken(conn, audience('/ConsumerGroups/$Default/Partitions/1'), policyToken(audience('/ConsumerGroups/$Default/Partitions/1'), service))).toBe(200);
      const other = rawReceiver(conn, `${EVENT_HUBS.name}/ConsumerGroups/$Default/Partitions/2`, { credit: 10 });
      await eventually(() => other.state().startsWith('closed'));
      expect(other.state()).toBe('closed:amqp:unauthorized-access');
      // With a hub-wide token: unknown group, partition, hub; malformed and unsupported filters.
      expect(await putToken(conn, audience(), policyToken(audience(), service))).toBe(200);
      const cases: [string, string | undefined, string][] = [
        [`${EVENT_HUBS.name}/ConsumerGroups/nosuch/Partitions/0`, undefined, 'closed:amqp:not-found'],
        [`${EVENT_HUBS.name}/ConsumerGroups/$Default/Partitions/4`, undefined, 'closed:amqp:not-found'],
        [`${EVENT_HUBS.name}/ConsumerGroups/$Default/Partitions/x`, undefined, 'closed:amqp:not-found'],
        [`otherhub/ConsumerGroups/$Default/Partitions/0`, undefined, 'closed:amqp:not-found'],
        [`${EVENT_HUBS.name}/ConsumerGroups/$Default/Partitions/0`, "amqp.annotation.x-opt-offset > 'abc'", 'closed:amqp:invalid-field'],
        [`${EVENT_HUBS.name}/ConsumerGroups/$Default/Partitions/0`, 'DROP TABLE telemetry', 'closed:amqp:invalid-field'],
        [`${EVENT_HUBS.name}/ConsumerGroups/$Default/Partitions/0`, "amqp.annotation.x-opt-sequence-number < '5'", 'closed:amqp:invalid-field'],
      ];
      for (const [address, filter, expected] of cases) {
        const r = rawReceiver(conn, address, { ...(filter === undefined ? {} : { filter }), credit: 10 });
        await eventually(() => r.state().startsWith('closed'), { what: `refusal of ${address} ${filter ?? ''}` });
        expect(r.state()).toBe(expected);
      }
      // No token at all on a fresh connection.
      const bare = rawReceiver(await connectRaw(), `${EVENT_HUBS.name}/ConsumerGroups/$Default/Partitions/0`, { credit: 10 });
      await eventually(() => bare.state().startsWith('closed'));
      expect(bare.state()).toBe('closed:amqp:unauthorized-access');
      // Owner levels: 2 takes the partition from 1; 1 and a reader without one are refused while 2 holds it.
      const address = `${EVENT_HUBS.name}/ConsumerGroups/analytics/Partitions/1`;
      const one = rawReceiver(conn, address, { epoch: 1, credit: 10 });
      await eventually(() => one.state() === 'open');
      const two = rawReceiver(conn, address, { epoch: 2, credit: 10 });
      await eventually(() => one.state().startsWith('closed'));
      expect(one.state()).toBe('closed:amqp:link:stolen');
      await eventually(() => two.state() === 'open');
      for (const opts of [{ epoch: 1 }, {}]) {
        const late = rawReceiver(conn, address, { ...opts, credit: 10 });
        await eventually(() => late.state().startsWith('closed'));
        expect(late.state()).toBe('closed:amqp:link:stolen');
      }
      // The telemetry the readers saw is untouched by all of this.
      expect((await consumer().getPartitionProperties('0')).lastEnqueuedSequenceNumber).toBe(byPartition(all, '0').length - 1);
    });

    it('answers bad management requests with their status and caps the audiences one connection holds tokens for', async (ctx) => {
      if (skipped) return ctx.skip();
      const service = { name: 'service', key: policyKey(hub, 'service') };
      const conn = await connectRaw();
      const cbs = await requestClient(conn, '$cbs');
      const put = async (aud: string): Promise<number> =>
        (await cbs.request({ operation: 'put-token', type: 'servicebus.windows.net:sastoken', name: aud }, policyToken(aud, service))).status;
      expect(await put(audience('/$management'))).toBe(200);
      const mgmt = await requestClient(conn, '$management');
      const read = { operation: 'READ', name: EVENT_HUBS.name, type: 'com.microsoft:eventhub' };
      expect((await mgmt.request(read)).status).toBe(200);
      expect((await mgmt.request({ ...read, security_token: policyToken(audience(), { name: 'service', key: 'bm90IHRoZSBrZXk=' }) })).status).toBe(401);
      expect((await mgmt.request({ ...read, security_token: policyToken(audience(), service, -5) })).status).toBe(401);
      expect((await mgmt.request({ ...read, name: 'otherhub' })).status).toBe(404);
      expect((await mgmt.request({ ...read, operation: 'DELETE' })).status).toBe(400);
      expect((await mgmt.request({ ...read, type: 'com.microsoft:consumergroup' })).status).toBe(400);
      expect((await mgmt.request({ ...read, type: 'com.microsoft:partition', partition: '9' })).status).toBe(404);
      // 256 audiences per connection (one is held already), then a refusal; a renewed one still goes through.
      for (let i = 1; i < 256; i++) expect(await put(audience(`/ConsumerGroups/g${i}/Partitions/0`))).toBe(200);
      expect(await put(audience('/ConsumerGroups/one-too-many/Partitions/0'))).toBe(403);
      expect(await put(audience('/$management'))).toBe(200);
    });

    it('holds nothing for readers, management links and tokens once their connections have gone, however they went', async (ctx) => {
      if (skipped) return ctx.skip();
      const entries = async (): Promise<number> => Number(/^kedge_hub_eventhubs_entries (\d+)$/m.exec((await rawRest(hub, 'GET', '/metrics')).text)?.[1]);
      // The earlier tests' connections (SDK consumers, raw) end first: nothing of theirs may stay behind either.
      for (const c of consumers.splice(0)) await c.close();
      for (const c of raw.splice(0)) c.close();
      await eventually(async () => (await entries()) === 0, { what: 'no entries left by earlier tests' });
      const service = { name: 'service', key: policyKey(hub, 'service') };
      const conns: Connection[] = [];
      for (let i = 0; i < 6; i++) {
        const conn = await rawConnect(hub.host, hub.ca);
        conns.push(conn);
        expect(await putToken(conn, audience(), policyToken(audience(), service))).toBe(200);
        const r = rawReceiver(conn, `${EVENT_HUBS.name}/ConsumerGroups/$Default/Partitions/${i % PARTITIONS}`, { credit: 5 });
        const mgmt = rawReceiver(conn, '$management');
        conn.open_sender({ target: { address: '$management' } });
        await eventually(() => r.state() === 'open' && mgmt.state() === 'open');
      }
      expect(await entries()).toBeGreaterThanOrEqual(6 * 4);
      // Half the connections end whole; the other half detach link by link first, then end.
      for (const [i, conn] of conns.entries()) if (i % 2 === 0) conn.close();
      for (const [i, conn] of conns.entries()) if (i % 2 === 1) conn.each_link((l: Sender | Receiver) => l.close());
      await eventually(async () => (await entries()) === 6 / 2, { what: 'only the open connections\' tokens left' });
      for (const [i, conn] of conns.entries()) if (i % 2 === 1) conn.close();
      await eventually(async () => (await entries()) === 0, { what: 'every entry released' });
    });

    it('detaches a reader when its token expires', async (ctx) => {
      if (skipped) return ctx.skip();
      const conn = await connectRaw();
      const service = { name: 'service', key: policyKey(hub, 'service') };
      expect(await putToken(conn, audience(), policyToken(audience(), service, 2))).toBe(200);
      const r = rawReceiver(conn, `${EVENT_HUBS.name}/ConsumerGroups/$Default/Partitions/0`, { credit: 1 });
      await eventually(() => r.state() !== 'attaching');
      await eventually(() => r.state().startsWith('closed'), { timeoutMs: 20_000, what: 'detach at token expiry' });
      expect(r.state()).toBe('closed:amqp:unauthorized-access');
    });

    it('keeps sequence numbers across a restart and continues them', async (ctx) => {
      if (skipped) return ctx.skip();
      const p = String(partitionOf(devices[3] ?? '', PARTITIONS));
      const before = await consumer().getPartitionProperties(p);
      for (const c of consumers.splice(0)) await c.close();
      for (const c of clients.splice(0)) await c.close().catch(() => undefined);
      const { dataDir, host } = hub;
      await hub.close();
      hub = await start(dataDir, host);
      registry = registryFor(hub.connectionString(), hub.ca);
      const after = await consumer().getPartitionProperties(p);
      expect(after.lastEnqueuedSequenceNumber).toBe(before.lastEnqueuedSequenceNumber);
      await send(await device(devices[3] ?? ''), '{"after":"restart"}');
      const next = await receive(consumer(), 1, { sequenceNumber: before.lastEnqueuedSequenceNumber }, p);
      expect(next[0]?.event.sequenceNumber).toBe(before.lastEnqueuedSequenceNumber + 1);
      expect(next[0]?.event.body).toEqual({ after: 'restart' });
    });
  });
}

describeEventHubs('SQLite', () => Promise.resolve({ url: undefined, stop: () => Promise.resolve() }));
describeEventHubs('PostgreSQL', async () => {
  const pg = await maybeStartTestPostgres();
  return pg && { url: pg.url, stop: () => pg.stop() };
});
