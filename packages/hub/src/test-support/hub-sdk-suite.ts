import { Message } from 'azure-iot-device';
import type { Twin as DeviceTwin } from 'azure-iot-device';
import type { Client as ServiceClient, Registry } from 'azure-iothub';
import mqtt from 'mqtt';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createSasToken } from '@kedge/protocol';
import { HubClient } from '../client.js';
import type { RunningHub } from '../hub.js';
import { eventually } from './eventually.js';
import { manifest, startTestHub } from './fixtures.js';
import { deviceClientFor, moduleClientFor, registryFor, serviceClientFor } from './sdk.js';

type Hub = RunningHub & { host: string };
type Closable = { close(): Promise<unknown> };

function deviceCs(hub: Hub, deviceId: string, key: string, moduleId?: string): string {
  return `HostName=${hub.host};DeviceId=${deviceId}${moduleId ? `;ModuleId=${moduleId}` : ''};SharedAccessKey=${key}`;
}

async function keyOf(registry: Registry, deviceId: string, moduleId?: string): Promise<string> {
  if (moduleId) {
    const m = await registry.getModule(deviceId, moduleId);
    return m.responseBody.authentication?.symmetricKey?.primaryKey ?? '';
  }
  const d = await registry.get(deviceId);
  return d.responseBody.authentication?.symmetricKey?.primaryKey ?? '';
}

/** Reported patch through the SDK's callback API. */
function report(twin: DeviceTwin, patch: Record<string, unknown>): Promise<void> {
  const reported = twin.properties.reported as unknown as { update(p: unknown, cb: (e?: Error) => void): void };
  return new Promise<void>((resolve, reject) => reported.update(patch, (e) => (e ? reject(e) : resolve())));
}

function onDesired(twin: DeviceTwin): { latest: () => Record<string, unknown> | undefined } {
  let latest: Record<string, unknown> | undefined;
  twin.on('properties.desired', (d: Record<string, unknown>) => {
    latest = d;
  });
  return { latest: () => latest };
}

/**
 * The acceptance suite: drives a real hub with Microsoft's azure-iothub and azure-iot-device over real sockets
 * (HTTPS on 443, MQTT/TLS on 8883, MQTT over WebSockets). Runs once per storage engine.
 */
export function describeHubWithSdks(name: string, database: () => Promise<{ url: string | undefined; stop(): Promise<void> } | undefined>): void {
  describe(`hub with the Azure IoT SDKs (${name})`, () => {
    let db: { url: string | undefined; stop(): Promise<void> } | undefined;
    let hub: Hub;
    let registry: Registry;
    let service: ServiceClient;
    let api: HubClient;
    const closables: Closable[] = [];
    let skipped = false;

    beforeAll(async () => {
      db = await database();
      if (!db) {
        skipped = true;
        return;
      }
      hub = await startTestHub(db.url ? { db: db.url } : {});
      registry = registryFor(hub.connectionString(), hub.ca);
      service = serviceClientFor(hub.connectionString(), hub.ca);
      api = new HubClient({ connectionString: hub.connectionString(), ca: hub.ca });
    });

    // The SDK reconnects on its own: clients of one test must not fight over the identity with the next test's.
    afterEach(async () => {
      for (const c of closables.splice(0).reverse()) await c.close().catch(() => undefined);
    });

    afterAll(async () => {
      await hub?.close();
      await db?.stop();
    });

    it('creates a device, connects over MQTT/TLS and stores telemetry with properties', async (ctx) => {
      if (skipped) return ctx.skip();
      const created = await registry.create({ deviceId: 'thermo-1' });
      expect(created.responseBody.deviceId).toBe('thermo-1');
      expect(created.responseBody.authentication?.symmetricKey?.primaryKey).toMatch(/^[A-Za-z0-9+/]{43}=$/);
      const key = await keyOf(registry, 'thermo-1');
      const client = await deviceClientFor(deviceCs(hub, 'thermo-1', key), hub.ca);
      closables.push(client);
      await client.open();
      const msg = new Message(JSON.stringify({ temperature: 21.5 }));
      msg.properties.add('alert', 'high & hot');
      msg.messageId = 'm-1';
      msg.contentType = 'application/json';
      msg.contentEncoding = 'utf-8';
      await client.sendEvent(msg);
      // QoS 1: sendEvent resolved on PUBACK, which the hub sends only after the store commit.
      const got = await api.readTelemetry({ deviceId: 'thermo-1' });
      expect(got.messages).toHaveLength(1);
      const m = got.messages[0];
      expect(m?.body).toEqual({ temperature: 21.5 });
      expect(m?.properties).toEqual({ alert: 'high & hot' });
      expect(m?.systemProperties).toMatchObject({ messageId: 'm-1', contentType: 'application/json', connectionDeviceId: 'thermo-1' });
      const dev = await registry.get('thermo-1');
      expect(dev.responseBody.connectionState).toBe('Connected');
    });

    it('updates reported properties and shows them in the twin', async (ctx) => {
      if (skipped) return ctx.skip();
      const key = await keyOf(registry, 'thermo-1');
      const client = await deviceClientFor(deviceCs(hub, 'thermo-1', key), hub.ca);
      closables.push(client);
      await client.open();
      const twin = await client.getTwin();
      await report(twin, { firmware: '1.2.3', sensor: { ok: true } });
      const t = await registry.getTwin('thermo-1');
      expect(t.responseBody.properties.reported['firmware']).toBe('1.2.3');
      expect(t.responseBody.properties.reported['sensor']).toEqual({ ok: true });
      expect(t.responseBody.properties.reported['$version']).toBeGreaterThanOrEqual(2);
      // null deletes
      await report(twin, { sensor: null });
      const t2 = await registry.getTwin('thermo-1');
      expect(t2.responseBody.properties.reported['sensor']).toBeUndefined();
    });

    it('delivers desired property changes to the connected device', async (ctx) => {
      if (skipped) return ctx.skip();
      const key = await keyOf(registry, 'thermo-1');
      const client = await deviceClientFor(deviceCs(hub, 'thermo-1', key), hub.ca);
      closables.push(client);
      await client.open();
      const twin = await client.getTwin();
      const seen = onDesired(twin);
      const before = await registry.getTwin('thermo-1');
      await registry.updateTwin('thermo-1', { tags: { site: 'lab' }, properties: { desired: { setpoint: 19 } } }, before.responseBody.etag);
      const d = await eventually(() => (seen.latest()?.['setpoint'] === 19 ? seen.latest() : undefined), { what: 'desired patch on the device' });
      expect(d['$version']).toBeGreaterThanOrEqual(2);
      const after = await registry.getTwin('thermo-1');
      expect(after.responseBody.tags).toEqual({ site: 'lab' });
      expect(after.responseBody.properties.desired['setpoint']).toBe(19);
      // A stale ETag is refused and changes nothing.
      await expect(registry.updateTwin('thermo-1', { properties: { desired: { setpoint: 1 } } }, before.responseBody.etag)).rejects.toThrow();
      expect((await registry.getTwin('thermo-1')).responseBody.properties.desired['setpoint']).toBe(19);
    });

    it('invokes a direct method on a device and on a module', async (ctx) => {
      if (skipped) return ctx.skip();
      const key = await keyOf(registry, 'thermo-1');
      const client = await deviceClientFor(deviceCs(hub, 'thermo-1', key), hub.ca);
      closables.push(client);
      client.onDeviceMethod('reboot', (req, res) => {
        res.send(200, { rebooting: true, echo: req.payload as unknown }, () => undefined);
      });
      await client.open();
      const r = await eventually(async () => {
        try {
          return await service.invokeDeviceMethod('thermo-1', { methodName: 'reboot', payload: { delay: 5 }, responseTimeoutInSeconds: 10 });
        } catch {
          return undefined; // the subscription may still be in flight
        }
      });
      expect(r.result).toEqual({ status: 200, payload: { rebooting: true, echo: { delay: 5 } } });

      await registry.addModule({ deviceId: 'thermo-1', moduleId: 'reader' });
      const mkey = await keyOf(registry, 'thermo-1', 'reader');
      const mc = await moduleClientFor(deviceCs(hub, 'thermo-1', mkey, 'reader'), hub.ca);
      closables.push(mc);
      mc.onMethod('ping', (_req, res) => {
        res?.send(201, 'pong', () => undefined);
      });
      await mc.open();
      const mr = await eventually(async () => {
        try {
          return await service.invokeDeviceMethod('thermo-1', 'reader', { methodName: 'ping', payload: null, responseTimeoutInSeconds: 10 });
        } catch {
          return undefined;
        }
      });
      expect(mr.result).toEqual({ status: 201, payload: 'pong' });
      // Offline device: 404 DeviceNotOnline, quickly.
      await registry.create({ deviceId: 'offline-1' });
      const offline = await service.invokeDeviceMethod('offline-1', { methodName: 'x', payload: null }).then(
        () => undefined,
        (e: { response?: { statusCode?: number }; responseBody?: string }) => e,
      );
      expect(offline?.response?.statusCode).toBe(404);
      expect(offline?.responseBody).toMatch(/ErrorCode:DeviceNotOnline;/);
    });

    it('connects over MQTT over WebSockets', async (ctx) => {
      if (skipped) return ctx.skip();
      await registry.create({ deviceId: 'ws-1' });
      const client = await deviceClientFor(deviceCs(hub, 'ws-1', await keyOf(registry, 'ws-1')), hub.ca, { websocket: true });
      closables.push(client);
      await client.open();
      await client.sendEvent(new Message('over-ws'));
      const got = await api.readTelemetry({ deviceId: 'ws-1' });
      expect(got.messages.map((m) => m.body)).toEqual(['over-ws']);
    });

    it('applies a deployment to one edge device and writes the module twins', async (ctx) => {
      if (skipped) return ctx.skip();
      await registry.create({ deviceId: 'edge-1', capabilities: { iotEdge: true } });
      const mods = await registry.getModulesOnDevice('edge-1');
      expect(mods.responseBody.map((m) => m.moduleId).sort()).toEqual(['$edgeAgent', '$edgeHub']);
      await registry.applyConfigurationContentOnDevice('edge-1', manifest({ filter: 'contoso/filter:1.0' }, { filter: { threshold: 25 } }));
      const agent = await registry.getModuleTwin('edge-1', '$edgeAgent');
      const desired = agent.responseBody.properties.desired as Record<string, { filter?: unknown }>;
      expect(desired['modules']?.filter).toMatchObject({ settings: { image: 'contoso/filter:1.0' } });
      const hubTwin = await registry.getModuleTwin('edge-1', '$edgeHub');
      expect((hubTwin.responseBody.properties.desired as Record<string, unknown>)['routes']).toEqual({ upstream: 'FROM /messages/* INTO $upstream' });
      const filter = await registry.getModuleTwin('edge-1', 'filter');
      expect(filter.responseBody.properties.desired['threshold']).toBe(25);

      // A bad manifest is refused with the exact path, and nothing changes.
      const bad = manifest({ filter: '' });
      await expect(registry.applyConfigurationContentOnDevice('edge-1', bad as never)).rejects.toThrow(/\$edgeAgent\.properties\.desired\.modules\.filter\.settings\.image/);
      const again = await registry.getModuleTwin('edge-1', '$edgeAgent');
      expect(again.responseBody.properties.desired['$version']).toBe(agent.responseBody.properties.desired['$version']);
    });

    it('runs automatic deployments that target devices by tag and follow tag changes', async (ctx) => {
      if (skipped) return ctx.skip();
      await registry.create({ deviceId: 'edge-2', capabilities: { iotEdge: true } });
      await registry.addConfiguration({
        id: 'prod-base',
        content: { modulesContent: manifest({ sensor: 'contoso/sensor:2.0' })['modulesContent'] as never },
        targetCondition: "tags.env='prod'",
        priority: 10,
        labels: {},
        metrics: { queries: { reporting: "SELECT deviceId FROM devices WHERE tags.env = 'prod'" } },
      } as never);
      await registry.addConfiguration({
        id: 'prod-extra',
        content: {
          modulesContent: {
            $edgeAgent: { 'properties.desired.modules.extra': { version: '1.0', type: 'docker', status: 'running', restartPolicy: 'always', settings: { image: 'contoso/extra:1', createOptions: '{}' } } },
          },
        },
        targetCondition: "tags.env='prod'",
        priority: 20,
      } as never);
      const twin = await registry.getTwin('edge-2');
      await registry.updateTwin('edge-2', { tags: { env: 'prod' } }, twin.responseBody.etag);
      const modules = await eventually(async () => {
        const a = await registry.getModuleTwin('edge-2', '$edgeAgent');
        const m = (a.responseBody.properties.desired as Record<string, Record<string, unknown> | undefined>)['modules'];
        return m?.['sensor'] && m['extra'] ? m : undefined;
      }, { what: 'automatic deployment applied' });
      expect(Object.keys(modules).sort()).toEqual(['extra', 'sensor']);
      const cfg = await eventually(async () => {
        const c = (await registry.getConfiguration('prod-base')).responseBody as unknown as { systemMetrics: { results: Record<string, number> }; metrics: { results: Record<string, number> } };
        return c.systemMetrics.results['appliedCount'] === 1 ? c : undefined;
      });
      expect(cfg.systemMetrics.results['targetedCount']).toBe(1);
      expect(cfg.metrics.results['reporting']).toBe(1);
      const dt = await registry.getTwin('edge-2');
      expect((dt.responseBody as unknown as { configurations: unknown }).configurations).toEqual({ 'prod-base': { status: 'Applied' }, 'prod-extra': { status: 'Applied' } });

      // Tag change: the device leaves the deployment's target set.
      await registry.updateTwin('edge-2', { tags: { env: 'dev' } }, '*');
      await eventually(async () => {
        const c = (await registry.getConfiguration('prod-base')).responseBody as unknown as { systemMetrics: { results: Record<string, number> } };
        return c.systemMetrics.results['targetedCount'] === 0;
      }, { what: 'device to leave the deployment' });

      // A bad target condition is refused with its position.
      await expect(registry.addConfiguration({ id: 'broken', content: { modulesContent: {} }, targetCondition: "tags.env = 'x' AND", priority: 1 } as never)).rejects.toThrow(/targetCondition/);
    });

    it('refuses bad input and foreign topics, changing nothing', async (ctx) => {
      if (skipped) return ctx.skip();
      await registry.create({ deviceId: 'victim' });
      await registry.create({ deviceId: 'mallory' });
      const malloryKey = await keyOf(registry, 'mallory');
      const base = `https://${hub.host}`;
      const token = createSasToken({ audience: hub.host, key: hub.connectionString().split('SharedAccessKey=')[1] ?? '', keyName: 'iothubowner', expirySeconds: Math.floor(Date.now() / 1000) + 600 });
      const call = async (method: string, path: string, body: string, auth = token): Promise<{ status: number; body: Record<string, unknown> }> => {
        const https = await import('node:https');
        return new Promise((resolve, reject) => {
          const req = https.request(`${base}${path}?api-version=2021-04-12`, { method, ca: hub.ca, headers: { authorization: auth, 'content-type': 'application/json' } }, (res) => {
            const chunks: Buffer[] = [];
            res.on('data', (c: Buffer) => chunks.push(c));
            res.on('end', () => resolve({ status: res.statusCode ?? 0, body: JSON.parse(Buffer.concat(chunks).toString('utf8') || '{}') as Record<string, unknown> }));
          });
          req.on('error', reject);
          req.end(body);
        });
      };
      // 1. Malformed JSON.
      const mal = await call('PUT', '/devices/newdev', '{"deviceId": ');
      expect(mal.status).toBe(400);
      expect(mal.body['code']).toBe('CLOUD_ERR_MALFORMED_JSON');
      expect(String(mal.body['Message'])).toMatch(/^ErrorCode:ArgumentInvalid;/);
      await expect(registry.get('newdev')).rejects.toMatchObject({ name: 'DeviceNotFoundError' });
      // 2. Oversize twin.
      const big = 'x'.repeat(33 * 1024);
      const over = await call('PATCH', '/twins/victim', JSON.stringify({ properties: { desired: { big } } }));
      expect(over.status).toBe(400);
      expect(over.body['code']).toBe('CLOUD_ERR_TWIN_TOO_LARGE');
      expect((await registry.getTwin('victim')).responseBody.properties.desired['big']).toBeUndefined();
      // 3. Wrong and expired service tokens.
      const wrong = createSasToken({ audience: hub.host, key: Buffer.alloc(32, 1).toString('base64'), keyName: 'iothubowner', expirySeconds: Math.floor(Date.now() / 1000) + 600 });
      expect((await call('GET', '/devices/victim', '', wrong)).status).toBe(401);
      const key = hub.connectionString().split('SharedAccessKey=')[1] ?? '';
      const expired = createSasToken({ audience: hub.host, key, keyName: 'iothubowner', expirySeconds: Math.floor(Date.now() / 1000) - 600 });
      expect((await call('GET', '/devices/victim', '', expired)).status).toBe(401);
      // A device's own token cannot use the service API on another device.
      const devToken = createSasToken({ audience: `${hub.host}/devices/mallory`, key: malloryKey, expirySeconds: Math.floor(Date.now() / 1000) + 600 });
      expect((await call('GET', '/twins/victim', '', devToken)).status).toBe(401);
      // 4. MQTT: a wrong key is refused at CONNECT.
      const badDevice = await deviceClientFor(deviceCs(hub, 'victim', malloryKey), hub.ca);
      await expect(badDevice.open()).rejects.toThrow();
      // 5. Another device's topics and topic injection, with a raw MQTT client holding mallory's credentials.
      const username = `${hub.host}/mallory/?api-version=2021-04-12`;
      const password = createSasToken({ audience: `${hub.host}/devices/mallory`, key: malloryKey, expirySeconds: Math.floor(Date.now() / 1000) + 600 });
      const raw = await mqtt.connectAsync(`mqtts://${hub.host}:8883`, { clientId: 'mallory', username, password, ca: hub.ca, protocolVersion: 4, reconnectPeriod: 0 });
      await expect(raw.subscribeAsync('devices/victim/messages/devicebound/#')).rejects.toThrow(/Subscribe error/);
      await expect(raw.subscribeAsync('#')).rejects.toThrow(/Subscribe error/);
      expect((await raw.subscribeAsync('$iothub/methods/POST/#')).map((g) => g.qos)).toEqual([0]);
      const closed = new Promise<void>((resolve) => raw.once('close', () => resolve()));
      raw.publish('devices/victim/messages/events/', 'forged', { qos: 1 });
      await closed;
      await raw.endAsync(true);
      const raw2 = await mqtt.connectAsync(`mqtts://${hub.host}:8883`, { clientId: 'mallory', username, password, ca: hub.ca, protocolVersion: 4, reconnectPeriod: 0 });
      const closed2 = new Promise<void>((resolve) => raw2.once('close', () => resolve()));
      raw2.publish('devices/mallory/messages/events/a=1/../../victim', 'injected', { qos: 1 });
      await closed2;
      await raw2.endAsync(true);
      // A client id that does not match the token is refused.
      await expect(
        mqtt.connectAsync(`mqtts://${hub.host}:8883`, { clientId: 'victim', username: `${hub.host}/victim/?api-version=2021-04-12`, password, ca: hub.ca, protocolVersion: 4, reconnectPeriod: 0 }),
      ).rejects.toThrow();
      const stored = await api.readTelemetry({ deviceId: 'victim' });
      expect(stored.messages).toHaveLength(0);
      expect((await api.readTelemetry({ deviceId: 'mallory' })).messages).toHaveLength(0);
    });

    it('streams telemetry live and resumes from a consumer offset', async (ctx) => {
      if (skipped) return ctx.skip();
      await registry.create({ deviceId: 'streamer' });
      const client = await deviceClientFor(deviceCs(hub, 'streamer', await keyOf(registry, 'streamer')), hub.ca);
      closables.push(client);
      await client.open();
      await client.sendEvent(new Message('one'));
      const ac = new AbortController();
      const seen: unknown[] = [];
      const reader = (async () => {
        for await (const m of api.monitor({ deviceId: 'streamer', consumer: 'test-reader', signal: ac.signal })) {
          seen.push(m.body);
          if (seen.length === 2) ac.abort();
        }
      })();
      await client.sendEvent(new Message('two'));
      await reader;
      expect(seen).toEqual(['one', 'two']);
      await client.sendEvent(new Message('three'));
      const ac2 = new AbortController();
      const resumed: unknown[] = [];
      for await (const m of api.monitor({ deviceId: 'streamer', consumer: 'test-reader', signal: ac2.signal })) {
        resumed.push(m.body);
        ac2.abort();
      }
      expect(resumed).toEqual(['three']);
    });
  });
}
