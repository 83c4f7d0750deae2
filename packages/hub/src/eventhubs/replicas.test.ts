import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { earliestEventPosition, latestEventPosition } from '@azure/event-hubs';
import type { EventHubConsumerClient } from '@azure/event-hubs';
import { Message } from 'azure-iot-device';
import type { Client as DeviceClient } from 'azure-iot-device';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startHub } from '../hub.js';
import type { RunningHub } from '../hub.js';
import { consumerFor, receive, receiveWhileSending } from '../test-support/eventhubs.js';
import { freeLoopbackAddress } from '../test-support/loopback.js';
import type { TestPostgres } from '../test-support/postgres.js';
import { maybeStartTestPostgres } from '../test-support/postgres.js';
import { deviceClientFor, registryFor } from '../test-support/sdk.js';
import { ensureCertificates } from '../tls/certs.js';
import { partitionOf } from './partitions.js';

/** Two device ids on one partition of `count`. */
function twoOnOnePartition(count: number): [string, string, number] {
  const seen = new Map<number, string>();
  for (let i = 0; ; i++) {
    const id = `roamer-${i}`;
    const p = partitionOf(id, count);
    const other = seen.get(p);
    if (other !== undefined) return [other, id, p];
    seen.set(p, id);
  }
}

/**
 * Two hub replicas on one PostgreSQL behind one name (replica A's): telemetry stored by either is read, live and by
 * sequence number, through the other; batches of both replicas on one partition get one gapless numbering.
 */
describe('Event Hubs-compatible endpoint across replicas sharing PostgreSQL', () => {
  let pg: TestPostgres | undefined;
  let a: RunningHub;
  let b: RunningHub;
  let hostA: string;
  let hostB: string;
  const closables: { close(): Promise<unknown> }[] = [];
  const [onA, onB, partition] = twoOnOnePartition(4);

  beforeAll(async () => {
    pg = await maybeStartTestPostgres();
    if (!pg) return;
    hostA = await freeLoopbackAddress([443, 8883, 5671]);
    hostB = await freeLoopbackAddress([443, 8883, 5671]);
    while (hostB === hostA) hostB = await freeLoopbackAddress([443, 8883, 5671]);
    const tls = ensureCertificates(mkdtempSync(join(tmpdir(), 'kedge-tls-')), [hostA, hostB]);
    const common = { hostName: hostA, altNames: [hostB], db: pg.url, tls, deployments: { resyncSeconds: 3600 }, eventHubs: { name: 'plant' } };
    const logger = pino({ level: 'silent' });
    const at = (host: string, id: string): Parameters<typeof startHub>[0] => ({
      ...common,
      dataDir: mkdtempSync(join(tmpdir(), `kedge-${id}-`)),
      replicaId: id,
      service: { host, port: 443 },
      mqtt: { host, port: 8883 },
      amqp: { host, port: 5671 },
    });
    a = await startHub(at(hostA, 'a'), { logger });
    b = await startHub(at(hostB, 'b'), { logger });
  });

  afterAll(async () => {
    for (const c of closables.reverse()) await c.close().catch(() => undefined);
    await b?.close();
    await a?.close();
    await pg?.stop();
  });

  const device = async (deviceId: string, gateway: string): Promise<DeviceClient> => {
    const registry = registryFor(a.connectionString(), a.ca);
    await registry.create({ deviceId });
    const key = (await registry.get(deviceId)).responseBody.authentication?.symmetricKey?.primaryKey ?? '';
    const c = await deviceClientFor(`HostName=${hostA};DeviceId=${deviceId};SharedAccessKey=${key};GatewayHostName=${gateway}`, a.ca);
    await c.open();
    closables.push(c);
    return c;
  };
  const consumerOn = (host: string): EventHubConsumerClient => {
    const c = consumerFor(a.eventHubsConnectionString(), a.ca, '$Default', { endpoint: `sb://${host}` });
    closables.push(c);
    return c;
  };

  it('numbers one partition without gaps while both replicas store into it, and serves it through either', async (ctx) => {
    if (!pg) return ctx.skip();
    const [da, db] = [await device(onA, hostA), await device(onB, hostB)];
    const n = 15;
    const burst = (c: DeviceClient, who: string): Promise<unknown[]> => Promise.all(Array.from({ length: n }, (_, i) => c.sendEvent(new Message(JSON.stringify({ who, i })))));
    await Promise.all([burst(da, 'a'), burst(db, 'b')]);
    const seen = await receive(consumerOn(hostB), 2 * n, earliestEventPosition, String(partition));
    expect(seen.map((s) => s.event.sequenceNumber)).toEqual(Array.from({ length: 2 * n }, (_, i) => i));
    for (const who of ['a', 'b']) {
      const mine = seen.filter((s) => (s.event.body as { who: string }).who === who);
      expect(mine).toHaveLength(n);
    }
    const viaA = await receive(consumerOn(hostA), 2 * n, earliestEventPosition, String(partition));
    expect(viaA.map((s) => s.event.messageId ?? s.event.sequenceNumber)).toEqual(seen.map((s) => s.event.messageId ?? s.event.sequenceNumber));
  });

  it('delivers telemetry stored by replica A to a live reader on replica B', async (ctx) => {
    if (!pg) return ctx.skip();
    const live = receive(consumerOn(hostB), 1, latestEventPosition, String(partition));
    const registry = registryFor(a.connectionString(), a.ca);
    const key = (await registry.get(onA)).responseBody.authentication?.symmetricKey?.primaryKey ?? '';
    const c = await deviceClientFor(`HostName=${hostA};DeviceId=${onA};SharedAccessKey=${key}`, a.ca);
    await c.open();
    closables.push(c);
    const got = await receiveWhileSending(live, (i) => c.sendEvent(new Message(JSON.stringify({ live: i }))), 'an event through replica B');
    expect(got[0]?.event.body).toMatchObject({ live: expect.any(Number) as number });
    expect(got[0]?.event.systemProperties?.['iothub-connection-device-id']).toBe(onA);
  });
});
