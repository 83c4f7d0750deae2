import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Registry } from 'azure-iothub';
import mqtt from 'mqtt';
import Database from 'better-sqlite3';
import type { MqttClient } from 'mqtt';
import pino from 'pino';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createSasToken, generateKey } from '@kedge/protocol';
import { HubClient } from '../client.js';
import { startHub } from '../hub.js';
import type { RunningHub } from '../hub.js';
import { startTestHub } from '../test-support/fixtures.js';
import { freeLoopbackAddress } from '../test-support/loopback.js';
import { maybeStartTestPostgres } from '../test-support/postgres.js';
import { registryFor } from '../test-support/sdk.js';
import { ensureCertificates } from '../tls/certs.js';

/** Where devices connect (`mqttHost`) and where the registry is changed (`service`): one hub, or two replicas. */
interface Topology {
  readonly hostName: string;
  readonly mqttHost: string;
  readonly service: RunningHub;
  stop(): Promise<void>;
}

const now = (): number => Math.floor(Date.now() / 1000);

function describeSessions(name: string, start: () => Promise<Topology | undefined>): void {
  describe(`MQTT sessions follow their credentials (${name})`, () => {
    let t: Topology | undefined;
    let registry: Registry;
    let api: HubClient;
    const clients: MqttClient[] = [];

    beforeAll(async () => {
      t = await start();
      if (!t) return;
      registry = registryFor(t.service.connectionString(), t.service.ca);
      api = new HubClient({ connectionString: t.service.connectionString(), ca: t.service.ca });
    }, 120_000);
    afterEach(async () => {
      for (const c of clients.splice(0)) await c.endAsync(true).catch(() => undefined);
    });
    afterAll(async () => {
      await t?.stop();
    });

    async function connect(
      deviceId: string,
      key: string,
      opts: { moduleId?: string; ttlSeconds?: number; will?: string } = {},
    ): Promise<{ client: MqttClient; closed: Promise<number> }> {
      if (!t) throw new Error('no hub');
      const id = opts.moduleId ? `${deviceId}/${opts.moduleId}` : deviceId;
      const audience = `${t.hostName}/devices/${deviceId}${opts.moduleId ? `/modules/${opts.moduleId}` : ''}`;
      const password = createSasToken({ audience, key, expirySeconds: now() + (opts.ttlSeconds ?? 600) });
      const client = await mqtt.connectAsync(`mqtts://${t.mqttHost}:8883`, {
        clientId: id,
        username: `${t.hostName}/${id}/?api-version=2021-04-12`,
        password,
        ca: t.service.ca,
        protocolVersion: 4,
        reconnectPeriod: 0,
        clean: false,
        ...(opts.will ? { will: { topic: `devices/${deviceId}/messages/events/`, payload: Buffer.from(opts.will), qos: 1, retain: false } } : {}),
      });
      clients.push(client);
      const closed = new Promise<number>((resolve) => client.once('close', () => resolve(Date.now())));
      return { client, closed };
    }

    async function createDevice(deviceId: string): Promise<{ primary: string; secondary: string }> {
      const keys = { primary: generateKey(), secondary: generateKey() };
      await registry.create({ deviceId, authentication: { symmetricKey: { primaryKey: keys.primary, secondaryKey: keys.secondary } } });
      return keys;
    }

    it('closes the session when the device is deleted; the re-created device inherits nothing of it', async (ctx) => {
      if (!t) return ctx.skip();
      const keys = await createDevice('deleted');
      const old = await connect('deleted', keys.primary, { will: 'old-session-will' });
      await old.client.subscribeAsync('$iothub/methods/POST/#');
      await registry.delete('deleted');
      await old.closed;
      // Re-created with the very same keys: the old token would verify, but the generation differs.
      await registry.create({ deviceId: 'deleted', authentication: { symmetricKey: { primaryKey: keys.primary, secondaryKey: keys.secondary } } });
      const fresh = await connect('deleted', keys.primary);
      // The old session's subscriptions are gone: a method call finds no subscriber.
      await expect(api.invoke('deleted', undefined, 'ping', null, 5)).rejects.toMatchObject({ status: 404 });
      await fresh.client.publishAsync('devices/deleted/messages/events/', 'new-device', { qos: 1 });
      const bodies = (await api.readTelemetry({ deviceId: 'deleted' })).messages.map((m) => m.body);
      expect(bodies).toEqual(['new-device']);
    });

    it('closes the session when the device is disabled, and refuses it while disabled', async (ctx) => {
      if (!t) return ctx.skip();
      const keys = await createDevice('disabled');
      const s = await connect('disabled', keys.primary);
      await registry.update({ deviceId: 'disabled', status: 'disabled' });
      await s.closed;
      await expect(connect('disabled', keys.primary)).rejects.toThrow();
    });

    it('closes the session when the device is re-keyed; the old key is refused, the new one works', async (ctx) => {
      if (!t) return ctx.skip();
      const keys = await createDevice('rekeyed');
      const s = await connect('rekeyed', keys.primary);
      const next = { primaryKey: generateKey(), secondaryKey: generateKey() };
      await registry.update({ deviceId: 'rekeyed', authentication: { symmetricKey: next } });
      await s.closed;
      await expect(connect('rekeyed', keys.primary)).rejects.toThrow();
      const again = await connect('rekeyed', next.primaryKey);
      expect(again.client.connected).toBe(true);
    });

    it('keeps a session whose key did not change (an unrelated device update)', async (ctx) => {
      if (!t) return ctx.skip();
      const keys = await createDevice('untouched');
      const s = await connect('untouched', keys.secondary);
      let closed = false;
      void s.closed.then(() => {
        closed = true;
      });
      const markerKeys = await createDevice('marker');
      const marker = await connect('marker', markerKeys.primary);
      await registry.update({ deviceId: 'untouched', authentication: { symmetricKey: { primaryKey: generateKey(), secondaryKey: keys.secondary } } });
      // A later change that does end a session: once it has, the earlier change has been handled too.
      await registry.delete('marker');
      await marker.closed;
      // The session rests on the secondary key, which stayed: it is still served.
      await s.client.publishAsync('devices/untouched/messages/events/', 'after-update', { qos: 1 });
      expect(closed).toBe(false);
    });

    it('closes a module session when the module is deleted or re-keyed', async (ctx) => {
      if (!t) return ctx.skip();
      await createDevice('modhost');
      const key = generateKey();
      await registry.addModule({ deviceId: 'modhost', moduleId: 'm1', authentication: { symmetricKey: { primaryKey: key, secondaryKey: generateKey() } } });
      const s = await connect('modhost', key, { moduleId: 'm1' });
      await registry.updateModule({ deviceId: 'modhost', moduleId: 'm1', authentication: { symmetricKey: { primaryKey: generateKey(), secondaryKey: generateKey() } } }, true);
      await s.closed;
      const m = await registry.getModule('modhost', 'm1');
      const k2 = m.responseBody.authentication?.symmetricKey?.primaryKey ?? '';
      const s2 = await connect('modhost', k2, { moduleId: 'm1' });
      await registry.removeModule('modhost', 'm1');
      await s2.closed;
    });

    it('closes the session when its SAS token expires', async (ctx) => {
      if (!t) return ctx.skip();
      const keys = await createDevice('expiring');
      const se = now() + 3;
      const s = await connect('expiring', keys.primary, { ttlSeconds: se - now() });
      const at = await s.closed;
      expect(at).toBeGreaterThanOrEqual(se * 1000 - 50);
      expect(at).toBeLessThan(se * 1000 + 5000);
      // A token already past `se` opens nothing.
      await expect(connect('expiring', keys.primary, { ttlSeconds: -1 })).rejects.toThrow();
    });
  });
}

describeSessions('SQLite', async () => {
  const hub = await startTestHub();
  return { hostName: hub.host, mqttHost: hub.host, service: hub, stop: () => hub.close() };
});

describeSessions('two PostgreSQL replicas: device on B, registry changed through A', async () => {
  const pg = await maybeStartTestPostgres();
  if (!pg) return undefined;
  const hostA = await freeLoopbackAddress();
  let hostB = await freeLoopbackAddress();
  while (hostB === hostA) hostB = await freeLoopbackAddress();
  const tls = ensureCertificates(mkdtempSync(join(tmpdir(), 'kedge-tls-')), [hostA, hostB]);
  const common = { hostName: hostA, altNames: [hostB], db: pg.url, tls, deployments: { resyncSeconds: 3600 }};
  const logger = pino({ level: 'silent' });
  const a = await startHub({ ...common, dataDir: mkdtempSync(join(tmpdir(), 'kedge-a-')), replicaId: 'a', service: { host: hostA, port: 443 }, mqtt: { host: hostA, port: 8883 } }, { logger });
  const b = await startHub({ ...common, dataDir: mkdtempSync(join(tmpdir(), 'kedge-b-')), replicaId: 'b', service: { host: hostB, port: 443 }, mqtt: { host: hostB, port: 8883 } }, { logger });
  return {
    hostName: hostA,
    mqttHost: hostB,
    service: a,
    stop: async () => {
      await b.close();
      await a.close();
      await pg.stop();
    },
  };
});

describe('MQTT sessions: the periodic re-check', () => {
  let hub: RunningHub | undefined;
  let dataDir = '';
  let host = '';
  afterAll(async () => {
    await hub?.close();
  });

  it('closes a session whose device was disabled past the hub (no announcement)', async () => {
    host = await freeLoopbackAddress();
    dataDir = mkdtempSync(join(tmpdir(), 'kedge-recheck-'));
    hub = await startHub(
      { dataDir, hostName: host, service: { host, port: 443 }, mqtt: { host, port: 8883 }, deployments: { resyncSeconds: 3600 }, deviceLimits: { recheckSeconds: 1 } },
      { logger: pino({ level: 'silent' }) },
    );
    const key = generateKey();
    await registryFor(hub.connectionString(), hub.ca).create({ deviceId: 'behind', authentication: { symmetricKey: { primaryKey: key, secondaryKey: generateKey() } } });
    const client = await mqtt.connectAsync(`mqtts://${host}:8883`, {
      clientId: 'behind',
      username: `${host}/behind/?api-version=2021-04-12`,
      password: createSasToken({ audience: `${host}/devices/behind`, key, expirySeconds: now() + 600 }),
      ca: hub.ca,
      protocolVersion: 4,
      reconnectPeriod: 0,
    });
    const closed = new Promise<void>((resolve) => client.once('close', () => resolve()));
    // Written straight into the database, as a lost bus event would leave it: only the re-check can notice.
    const db = new Database(join(dataDir, 'hub.db'));
    try {
      db.prepare("UPDATE devices SET status = 'disabled' WHERE device_id = ?").run('behind');
    } finally {
      db.close();
    }
    await closed;
    await client.endAsync(true);
  });
});
