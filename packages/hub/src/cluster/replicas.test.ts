import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Message } from 'azure-iot-device';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { HubClient } from '../client.js';
import { startHub } from '../hub.js';
import type { RunningHub } from '../hub.js';
import { eventually } from '../test-support/eventually.js';
import { freeLoopbackAddress } from '../test-support/loopback.js';
import type { TestPostgres } from '../test-support/postgres.js';
import { maybeStartTestPostgres } from '../test-support/postgres.js';
import { deviceClientFor, registryFor, serviceClientFor } from '../test-support/sdk.js';
import { ensureCertificates } from '../tls/certs.js';

/**
 * Two hub replicas on one PostgreSQL, as a scaled-out deployment runs them behind one name: both answer for the
 * same `HostName` (replica A's address) and share TLS material; the device connects to replica B through its
 * gateway address while the service talks to replica A.
 */
describe('hub replicas sharing PostgreSQL', () => {
  let pg: TestPostgres | undefined;
  let a: RunningHub;
  let b: RunningHub;
  let hostA: string;
  let hostB: string;

  beforeAll(async () => {
    pg = await maybeStartTestPostgres();
    if (!pg) return;
    hostA = await freeLoopbackAddress();
    hostB = await freeLoopbackAddress();
    while (hostB === hostA) hostB = await freeLoopbackAddress();
    const tls = ensureCertificates(mkdtempSync(join(tmpdir(), 'kedge-tls-')), [hostA, hostB]);
    const common = { hostName: hostA, altNames: [hostB], db: pg.url, tls, deployments: { resyncSeconds: 3600 } };
    const logger = pino({ level: 'silent' });
    a = await startHub({ ...common, dataDir: mkdtempSync(join(tmpdir(), 'kedge-a-')), replicaId: 'a', service: { host: hostA, port: 443 }, mqtt: { host: hostA, port: 8883 } }, { logger });
    b = await startHub({ ...common, dataDir: mkdtempSync(join(tmpdir(), 'kedge-b-')), replicaId: 'b', service: { host: hostB, port: 443 }, mqtt: { host: hostB, port: 8883 } }, { logger });
  });

  afterAll(async () => {
    await b?.close();
    await a?.close();
    await pg?.stop();
  });

  it('routes methods, desired patches and telemetry between replicas', async (ctx) => {
    if (!pg) return ctx.skip();
    const registry = registryFor(a.connectionString(), a.ca);
    await registry.create({ deviceId: 'roaming' });
    const key = (await registry.get('roaming')).responseBody.authentication?.symmetricKey?.primaryKey ?? '';
    // 1. The device connects to replica B.
    const device = await deviceClientFor(`HostName=${hostA};DeviceId=roaming;SharedAccessKey=${key};GatewayHostName=${hostB}`, a.ca);
    device.onDeviceMethod('where', (_req, res) => {
      res.send(200, { replica: 'b' }, () => undefined);
    });
    await device.open();
    try {
      const twin = await device.getTwin();
      let desired: Record<string, unknown> | undefined;
      twin.on('properties.desired', (d: Record<string, unknown>) => {
        desired = d;
      });
      // 2. A direct method invoked on replica A reaches the device on B (presence table + LISTEN/NOTIFY).
      const service = serviceClientFor(a.connectionString(), a.ca);
      const r = await eventually(async () => {
        try {
          return await service.invokeDeviceMethod('roaming', { methodName: 'where', payload: null, responseTimeoutInSeconds: 10 });
        } catch {
          return undefined;
        }
      }, { what: 'cross-replica method call' });
      expect(r.result).toEqual({ status: 200, payload: { replica: 'b' } });
      // 3. A desired change made through A is pushed by B.
      await registry.updateTwin('roaming', { properties: { desired: { mode: 'eco' } } }, '*');
      await eventually(() => desired?.['mode'] === 'eco', { what: 'desired patch through replica B' });
      // 4. Telemetry ingested by B is readable through A.
      await device.sendEvent(new Message('via-b'));
      const api = new HubClient({ connectionString: a.connectionString(), ca: a.ca });
      expect((await api.readTelemetry({ deviceId: 'roaming' })).messages.map((m) => m.body)).toEqual(['via-b']);
    } finally {
      await device.close();
    }
  });
});
