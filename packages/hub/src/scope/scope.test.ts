import { request } from 'node:https';
import type { Registry } from 'azure-iothub';
import mqtt from 'mqtt';
import type { MqttClient } from 'mqtt';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createSasToken } from '@kedge/protocol';
import { HubClient } from '../client.js';
import type { RunningHub } from '../hub.js';
import { startTestHub } from '../test-support/fixtures.js';
import { maybeStartTestPostgres } from '../test-support/postgres.js';
import { registryFor } from '../test-support/sdk.js';

type Hub = RunningHub & { host: string };
interface ScopeReply {
  devices: { deviceId: string; authentication: { symmetricKey: { primaryKey: string } }; parentScopes: string[]; deviceScope: string }[];
  modules: { deviceId: string; moduleId: string; authentication: { symmetricKey: { primaryKey: string } } }[];
  continuationLink: string | null;
}

const soon = (): number => Math.floor(Date.now() / 1000) + 600;

function describeScopes(name: string, database: () => Promise<{ url: string | undefined; stop(): Promise<void> } | undefined>): void {
  describe(`edge device scopes and on-behalf-of connections (${name})`, () => {
    let db: { url: string | undefined; stop(): Promise<void> } | undefined;
    let hub: Hub;
    let registry: Registry;
    let edgeScope = '';
    let edgeHubKey = '';
    const clients: MqttClient[] = [];

    beforeAll(async () => {
      db = await database();
      if (!db) return;
      hub = await startTestHub(db.url ? { db: db.url } : {});
      registry = registryFor(hub.connectionString(), hub.ca);
      await registry.create({ deviceId: 'edge1', capabilities: { iotEdge: true } });
      edgeScope = ((await registry.get('edge1')).responseBody as unknown as { deviceScope: string }).deviceScope;
      // azure-iothub's Registry.create carries parentScopes through unchanged.
      await registry.create({ deviceId: 'leaf1', parentScopes: [edgeScope] });
      await registry.create({ deviceId: 'leaf2', parentScopes: [edgeScope] });
      await registry.create({ deviceId: 'stranger' });
      await registry.addModule({ deviceId: 'edge1', moduleId: 'sensor' });
      edgeHubKey = (await registry.getModule('edge1', '$edgeHub')).responseBody.authentication?.symmetricKey?.primaryKey ?? '';
    }, 120_000);
    afterEach(async () => {
      for (const c of clients.splice(0)) await c.endAsync(true).catch(() => undefined);
    });
    afterAll(async () => {
      await hub?.close();
      await db?.stop();
    });

    const edgeHubToken = (key = edgeHubKey): string => createSasToken({ audience: `${hub.host}/devices/edge1/modules/$edgeHub`, key, expirySeconds: soon() });

    function get(path: string, auth: string): Promise<{ status: number; body: ScopeReply }> {
      return new Promise((resolve, reject) => {
        const req = request(`https://${hub.host}${path}`, { ca: hub.ca, headers: { authorization: auth } }, (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () => resolve({ status: res.statusCode ?? 0, body: JSON.parse(Buffer.concat(chunks).toString('utf8') || 'null') as ScopeReply }));
        });
        req.on('error', reject);
        req.end();
      });
    }

    async function onBehalfOf(identity: string, password = edgeHubToken(), chain = `${identity};edge1`, escape = true): Promise<{ client: MqttClient; closed: Promise<void> }> {
      const client = await mqtt.connectAsync(`mqtts://${hub.host}:8883`, {
        clientId: identity,
        username: `${hub.host}/${identity}/?api-version=2021-04-12&auth-chain=${escape ? encodeURIComponent(chain) : chain}`,
        password,
        ca: hub.ca,
        protocolVersion: 4,
        reconnectPeriod: 0,
        clean: false,
      });
      clients.push(client);
      return { client, closed: new Promise((resolve) => client.once('close', () => resolve())) };
    }

    it('stores deviceScope and parentScopes in the registry (IoT Hub shape)', async (ctx) => {
      if (!db) return ctx.skip();
      expect(edgeScope).toMatch(/^ms-azure-iot-edge:\/\/edge1-\d+$/);
      const leaf = (await registry.get('leaf1')).responseBody as unknown as { parentScopes: string[] };
      expect(leaf.parentScopes).toEqual([edgeScope]);
    });

    it('serves the device scope to the $edgeHub token, paged, with keys', async (ctx) => {
      if (!db) return ctx.skip();
      const base = '/devices/edge1/modules/$edgeHub/devicesAndModulesInDeviceScope';
      const all = await get(`${base}?deviceCount=10&api-version=2018-08-30-preview`, edgeHubToken());
      expect(all.status).toBe(200);
      expect(all.body.devices.map((d) => d.deviceId)).toEqual(['edge1', 'leaf1', 'leaf2']);
      expect(all.body.modules.map((m) => m.moduleId).sort()).toEqual(['$edgeAgent', '$edgeHub', 'sensor']);
      expect(all.body.devices[1]?.authentication.symmetricKey.primaryKey).toMatch(/^[A-Za-z0-9+/]+=*$/);
      expect(all.body.continuationLink).toBeNull();
      // Paged: one device per page, following continuationLink (a path relative to the hub).
      const seen: string[] = [];
      let link: string | null = `${base}?deviceCount=1&api-version=2018-08-30-preview`;
      while (link !== null) {
        const page: { status: number; body: ScopeReply } = await get(link, edgeHubToken());
        seen.push(...page.body.devices.map((d) => d.deviceId));
        link = page.body.continuationLink;
      }
      expect(seen).toEqual(['edge1', 'leaf1', 'leaf2']);
      // One identity.
      const one = await get('/devices/edge1/modules/$edgeHub/deviceAndModuleInDeviceScope?targetDeviceId=leaf1&targetModuleId=', edgeHubToken());
      expect(one.body.devices.map((d) => d.deviceId)).toEqual(['leaf1']);
      const mod = await get('/devices/edge1/modules/$edgeHub/deviceAndModuleInDeviceScope?targetDeviceId=edge1&targetModuleId=sensor', edgeHubToken());
      expect(mod.body.modules.map((m) => m.moduleId)).toEqual(['sensor']);
      const outside = await get('/devices/edge1/modules/$edgeHub/deviceAndModuleInDeviceScope?targetDeviceId=stranger', edgeHubToken());
      expect(outside.body.devices).toEqual([]);
    });

    it('refuses the device scope to other credentials', async (ctx) => {
      if (!db) return ctx.skip();
      const base = '/devices/edge1/modules/$edgeHub/devicesAndModulesInDeviceScope';
      const leafKey = (await registry.get('leaf1')).responseBody.authentication?.symmetricKey?.primaryKey ?? '';
      expect((await get(base, createSasToken({ audience: `${hub.host}/devices/leaf1`, key: leafKey, expirySeconds: soon() }))).status).toBe(401);
      expect((await get(base, createSasToken({ audience: `${hub.host}/devices/edge1/modules/$edgeHub`, key: leafKey, expirySeconds: soon() }))).status).toBe(401);
      const agentKey = (await registry.getModule('edge1', '$edgeAgent')).responseBody.authentication?.symmetricKey?.primaryKey ?? '';
      const agentToken = createSasToken({ audience: `${hub.host}/devices/edge1/modules/$edgeAgent`, key: agentKey, expirySeconds: soon() });
      expect((await get('/devices/edge1/modules/$edgeAgent/devicesAndModulesInDeviceScope', agentToken)).status).toBe(404);
      // A policy with RegistryRead may read it.
      const cs = hub.connectionString('registryRead');
      const policyKey = cs.split('SharedAccessKey=')[1] ?? '';
      const policyToken = createSasToken({ audience: hub.host, key: policyKey, keyName: 'registryRead', expirySeconds: soon() });
      expect((await get(base, policyToken)).status).toBe(200);
    });

    it('accepts on-behalf-of connections for the edge, its modules and its children only', async (ctx) => {
      if (!db) return ctx.skip();
      const leaf = await onBehalfOf('leaf1');
      await leaf.client.publishAsync('devices/leaf1/messages/events/', 'from-leaf', { qos: 1 });
      const api = new HubClient({ connectionString: hub.connectionString(), ca: hub.ca });
      const stored = (await api.readTelemetry({ deviceId: 'leaf1' })).messages;
      expect(stored.map((m) => [m.body, m.systemProperties['connectionDeviceId']])).toEqual([['from-leaf', 'leaf1']]);
      // It acts as leaf1 only: another identity's topics disconnect it.
      leaf.client.publish('devices/leaf2/messages/events/', 'forged', { qos: 1 });
      await leaf.closed;
      expect((await api.readTelemetry({ deviceId: 'leaf2' })).messages).toEqual([]);
      const mod = await onBehalfOf('edge1/sensor');
      await mod.client.publishAsync('devices/edge1/modules/sensor/messages/events/', 'from-module', { qos: 1 });
      await onBehalfOf('edge1');
      // The chain may also come unescaped (`edge1/sensor;edge1` as is).
      await onBehalfOf('edge1/sensor', edgeHubToken(), 'edge1/sensor;edge1', false);
      await expect(onBehalfOf('stranger')).rejects.toThrow();
      await expect(onBehalfOf('leaf1', edgeHubToken(), 'leaf2;edge1')).rejects.toThrow();
      await expect(onBehalfOf('leaf1', edgeHubToken(), 'leaf1;edge1;edge0')).rejects.toThrow();
      const agentKey = (await registry.getModule('edge1', '$edgeAgent')).responseBody.authentication?.symmetricKey?.primaryKey ?? '';
      await expect(onBehalfOf('leaf1', createSasToken({ audience: `${hub.host}/devices/edge1/modules/$edgeHub`, key: agentKey, expirySeconds: soon() }))).rejects.toThrow();
    });

    it('ends an on-behalf-of session when the child leaves the scope or the $edgeHub is re-keyed', async (ctx) => {
      if (!db) return ctx.skip();
      await registry.create({ deviceId: 'leaf3', parentScopes: [edgeScope] });
      const moved = await onBehalfOf('leaf3');
      await registry.update({ deviceId: 'leaf3', parentScopes: [] });
      await moved.closed;
      await expect(onBehalfOf('leaf3')).rejects.toThrow();
      const leaf = await onBehalfOf('leaf2');
      await registry.updateModule(
        { deviceId: 'edge1', moduleId: '$edgeHub', authentication: { symmetricKey: { primaryKey: Buffer.alloc(32, 7).toString('base64'), secondaryKey: Buffer.alloc(32, 8).toString('base64') } } },
        true,
      );
      await leaf.closed;
      await expect(onBehalfOf('leaf2')).rejects.toThrow();
      await onBehalfOf('leaf2', edgeHubToken(Buffer.alloc(32, 7).toString('base64')));
    });
  });
}

describeScopes('SQLite', () => Promise.resolve({ url: undefined, stop: () => Promise.resolve() }));
describeScopes('PostgreSQL', async () => {
  const pg = await maybeStartTestPostgres();
  return pg && { url: pg.url, stop: () => pg.stop() };
});
