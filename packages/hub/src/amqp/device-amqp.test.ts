import { Client as DeviceClient, Message, ModuleClient } from 'azure-iot-device';
import type { DeviceMethodRequest, DeviceMethodResponse, Twin as DeviceTwin } from 'azure-iot-device';
import { Amqp, AmqpWs } from 'azure-iot-device-amqp';
import type { Client as ServiceClient, Registry } from 'azure-iothub';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { HubClient } from '../client.js';
import type { RunningHub } from '../hub.js';
import { eventually } from '../test-support/eventually.js';
import { startTestHub } from '../test-support/fixtures.js';
import { maybeStartTestPostgres } from '../test-support/postgres.js';
import { registryFor, serviceClientFor } from '../test-support/sdk.js';
import { detachOf, identityConnection, receiveFrom } from './test-clients.js';

type Hub = RunningHub & { host: string };
type Closable = { close(): Promise<unknown> };
type Transport = 'Amqp' | 'AmqpWs';

/** Creates the device (and module) if needed; its connection string for `hub`. */
async function connectionString(registry: Registry, hub: Hub, deviceId: string, moduleId?: string): Promise<string> {
  await registry.create({ deviceId }).catch(() => undefined);
  if (moduleId) {
    await registry.addModule({ deviceId, moduleId }).catch(() => undefined);
    const m = await registry.getModule(deviceId, moduleId);
    return `HostName=${hub.host};DeviceId=${deviceId};ModuleId=${moduleId};SharedAccessKey=${m.responseBody.authentication?.symmetricKey?.primaryKey ?? ''}`;
  }
  const d = await registry.get(deviceId);
  return `HostName=${hub.host};DeviceId=${deviceId};SharedAccessKey=${d.responseBody.authentication?.symmetricKey?.primaryKey ?? ''}`;
}

/** An `azure-iot-device-amqp` device client (`Amqp`: TLS on 5671; `AmqpWs`: WebSockets on 443) trusting the hub's CA. */
async function amqpDevice(cs: string, ca: string, transport: Transport): Promise<DeviceClient> {
  const c = DeviceClient.fromConnectionString(cs, transport === 'Amqp' ? Amqp : AmqpWs);
  await c.setOptions({ ca });
  return c;
}

async function amqpModule(cs: string, ca: string, transport: Transport): Promise<ModuleClient> {
  const c = ModuleClient.fromConnectionString(cs, transport === 'Amqp' ? Amqp : AmqpWs);
  await c.setOptions({ ca });
  return c;
}

function report(twin: DeviceTwin, patch: Record<string, unknown>): Promise<void> {
  const reported = twin.properties.reported as unknown as { update(p: unknown, cb: (e?: Error) => void): void };
  return new Promise<void>((resolve, reject) => reported.update(patch, (e) => (e ? reject(e) : resolve())));
}

/** The desired patches a twin receives after `getTwin` (the SDK subscribes over the twin link). */
function desiredPatches(twin: DeviceTwin): Array<Record<string, unknown>> {
  const seen: Array<Record<string, unknown>> = [];
  twin.on('properties.desired', (d: Record<string, unknown>) => seen.push(d));
  return seen;
}

const answer = (status: number, payload: unknown) => (req?: DeviceMethodRequest, res?: DeviceMethodResponse): void => {
  res?.send(status, { payload, got: req?.payload as unknown }, () => undefined);
};

/** Invokes a method; `{ status, payload }` from the device or `{ http }` with the hub's HTTP status. */
async function invoke(service: ServiceClient, target: { deviceId: string; moduleId?: string }, methodName: string, payload: unknown, responseTimeoutInSeconds = 10): Promise<{ status?: number; payload?: unknown; http?: number; body?: string }> {
  const params = { methodName, payload, responseTimeoutInSeconds };
  try {
    const r = target.moduleId ? await service.invokeDeviceMethod(target.deviceId, target.moduleId, params) : await service.invokeDeviceMethod(target.deviceId, params);
    return r.result as { status: number; payload: unknown };
  } catch (e) {
    const err = e as { response?: { statusCode?: number }; responseBody?: string };
    return { ...(err.response?.statusCode === undefined ? {} : { http: err.response.statusCode }), ...(err.responseBody === undefined ? {} : { body: err.responseBody }) };
  }
}

function describeAmqpDevices(name: string, database: () => Promise<{ url: string | undefined; stop(): Promise<void> } | undefined>): void {
  describe(`devices and modules over azure-iot-device-amqp (${name})`, () => {
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
    afterEach(async () => {
      for (const c of closables.splice(0).reverse()) await c.close().catch(() => undefined);
    });
    afterAll(async () => {
      await hub?.close();
      await db?.stop();
    });

    for (const transport of ['Amqp', 'AmqpWs'] as const) {
      it(`a device (${transport}): telemetry, twin get / reported / desired, a direct method`, async (ctx) => {
        if (skipped) return ctx.skip();
        const deviceId = `amqp-${transport.toLowerCase()}`;
        const client = await amqpDevice(await connectionString(registry, hub, deviceId), hub.ca, transport);
        closables.push(client);
        client.onDeviceMethod('reboot', answer(200, 'rebooting'));
        await client.open();

        const m = new Message('{"t":21}');
        m.messageId = `${deviceId}-1`;
        await client.sendEvent(m);
        const stored = await api.readTelemetry({ deviceId });
        expect(stored.messages.map((s) => s.systemProperties['messageId'])).toEqual([`${deviceId}-1`]);

        const twin = await client.getTwin();
        const seen = desiredPatches(twin);
        await report(twin, { firmware: '2.0', sensor: { ok: true } });
        const t = await registry.getTwin(deviceId);
        expect(t.responseBody.properties.reported['firmware']).toBe('2.0');
        expect(t.responseBody.properties.reported['sensor']).toEqual({ ok: true });
        await report(twin, { sensor: null });
        expect((await registry.getTwin(deviceId)).responseBody.properties.reported['sensor']).toBeUndefined();

        await registry.updateTwin(deviceId, { properties: { desired: { setpoint: 19 } } }, '*');
        const d = await eventually(() => seen.find((p) => p['setpoint'] === 19), { what: 'the desired patch on the device' });
        const version = (await registry.getTwin(deviceId)).responseBody.properties.desired['$version'] as number;
        expect(d['$version']).toBe(version);
        // The twin the SDK reads now has it too (GET over the twin link).
        const again = await client.getTwin();
        expect(again.properties.desired['setpoint']).toBe(19);
        expect(again.properties.reported['firmware']).toBe('2.0');

        expect(await invoke(service, { deviceId }, 'reboot', { delay: 5 })).toEqual({ status: 200, payload: { payload: 'rebooting', got: { delay: 5 } } });
        expect((await registry.get(deviceId)).responseBody.connectionState).toBe('Connected');
      });
    }

    it('a module (Amqp): its telemetry, twin and methods are its own', async (ctx) => {
      if (skipped) return ctx.skip();
      const mc = await amqpModule(await connectionString(registry, hub, 'amqp-edge', 'filter'), hub.ca, 'Amqp');
      closables.push(mc);
      mc.onMethod('ping', answer(201, 'pong'));
      await mc.open();
      const m = new Message('{"t":30}');
      m.messageId = 'mod-1';
      await mc.sendEvent(m);
      const stored = await api.readTelemetry({ deviceId: 'amqp-edge' });
      expect(stored.messages[0]?.systemProperties).toMatchObject({ messageId: 'mod-1', connectionDeviceId: 'amqp-edge', connectionModuleId: 'filter' });

      const twin = await mc.getTwin();
      const seen = desiredPatches(twin);
      await report(twin, { threshold: 25 });
      const mt = await registry.getModuleTwin('amqp-edge', 'filter');
      expect(mt.responseBody.properties.reported['threshold']).toBe(25);
      // The device twin is untouched: the module wrote its own.
      expect((await registry.getTwin('amqp-edge')).responseBody.properties.reported['threshold']).toBeUndefined();
      await registry.updateModuleTwin('amqp-edge', 'filter', { properties: { desired: { threshold: 30 } } }, '*');
      await eventually(() => seen.find((p) => p['threshold'] === 30), { what: 'the module desired patch' });
      // A desired change to the device twin is not the module's.
      await registry.updateTwin('amqp-edge', { properties: { desired: { deviceOnly: 1 } } }, '*');
      await registry.updateModuleTwin('amqp-edge', 'filter', { properties: { desired: { marker: 1 } } }, '*');
      await eventually(() => seen.find((p) => p['marker'] === 1), { what: 'the marker patch' });
      expect(seen.some((p) => 'deviceOnly' in p)).toBe(false);

      expect(await invoke(service, { deviceId: 'amqp-edge', moduleId: 'filter' }, 'ping', null)).toEqual({ status: 201, payload: { payload: 'pong', got: null } });
      // The device itself is not connected: a call to it is 404, not answered by its module.
      const dev = await invoke(service, { deviceId: 'amqp-edge' }, 'ping', null);
      expect(dev.http).toBe(404);
      expect(dev.body).toMatch(/DeviceNotOnline/);

    });

    it('token renewal: the SDK puts a new token before se and its twin and method links stay', async (ctx) => {
      if (skipped) return ctx.skip();
      const client = DeviceClient.fromConnectionString(await connectionString(registry, hub, 'amqp-renew'), Amqp);
      // Tokens valid for 6 s, renewed 3 s before they expire: several renewals while the test waits.
      await client.setOptions({ ca: hub.ca, tokenRenewal: { tokenValidTimeInSeconds: 6, tokenRenewalMarginInSeconds: 3 } });
      closables.push(client);
      const trouble: string[] = [];
      client.on('error', (e: Error) => trouble.push(`error: ${e.message}`));
      client.on('disconnect', () => trouble.push('disconnect'));
      client.onDeviceMethod('ping', answer(200, 'pong'));
      await client.open();
      const twin = await client.getTwin();
      const seen = desiredPatches(twin);
      const started = Date.now();
      // Past the first token's se (and its successor's) before anything is asked again.
      await eventually(() => Date.now() - started > 13_000 || undefined, { timeoutMs: 20_000, what: 'two token lifetimes' });
      expect(await invoke(service, { deviceId: 'amqp-renew' }, 'ping', null)).toEqual({ status: 200, payload: { payload: 'pong', got: null } });
      await registry.updateTwin('amqp-renew', { properties: { desired: { after: 'renewal' } } }, '*');
      await eventually(() => seen.find((p) => p['after'] === 'renewal'), { what: 'the desired patch after renewals' });
      expect(trouble).toEqual([]);
    }, 40_000);

    it('twin rules as over MQTT: an oversize or malformed reported patch is refused and nothing changes', async (ctx) => {
      if (skipped) return ctx.skip();
      const client = await amqpDevice(await connectionString(registry, hub, 'amqp-rules'), hub.ca, 'Amqp');
      closables.push(client);
      await client.open();
      const twin = await client.getTwin();
      await report(twin, { kept: 1 });
      const before = (await registry.getTwin('amqp-rules')).responseBody.properties.reported;
      // The SDK wraps the translated status (400: FormatError) in its own error, with the hub's message.
      const tooBig = (await report(twin, { big: 'x'.repeat(40 * 1024) }).catch((e: unknown) => e)) as { message: string; amqpError?: Error };
      expect(tooBig.amqpError?.constructor.name).toBe('FormatError');
      expect(tooBig.message).toMatch(/limit is 32768/);
      const badKey = (await report(twin, { 'a.b': 1 }).catch((e: unknown) => e)) as { message: string; amqpError?: Error };
      expect(badKey.amqpError?.constructor.name).toBe('FormatError');
      expect((await registry.getTwin('amqp-rules')).responseBody.properties.reported).toEqual(before);
    });

    it('direct methods: no handler is 404 at once, no answer is 504 after the response timeout', async (ctx) => {
      if (skipped) return ctx.skip();
      const client = await amqpDevice(await connectionString(registry, hub, 'amqp-silent'), hub.ca, 'Amqp');
      closables.push(client);
      await client.open();
      // Connected, but no method link attached (the SDK attaches it with the first onDeviceMethod).
      const none = await invoke(service, { deviceId: 'amqp-silent' }, 'reboot', null);
      expect(none.http).toBe(404);
      client.onDeviceMethod('hang', () => undefined);
      client.onDeviceMethod('ok', answer(200, 'fine'));
      await eventually(async () => (await invoke(service, { deviceId: 'amqp-silent' }, 'ok', null)).status === 200, { what: 'the method link' });
      const started = Date.now();
      const hung = await invoke(service, { deviceId: 'amqp-silent' }, 'hang', null, 5);
      expect(hung.http).toBe(504);
      expect(Date.now() - started).toBeGreaterThanOrEqual(4900);
      // Disconnected: 404 again.
      await client.close();
      await eventually(async () => (await invoke(service, { deviceId: 'amqp-silent' }, 'ok', null)).http === 404, { what: '404 once the device left' });
    });
  });
}

describeAmqpDevices('SQLite', () => Promise.resolve({ url: undefined, stop: () => Promise.resolve() }));
describeAmqpDevices('PostgreSQL', async () => {
  const pg = await maybeStartTestPostgres();
  return pg && { url: pg.url, stop: () => pg.stop() };
});

describe('AMQP devices across two PostgreSQL replicas', () => {
  let pg: { url: string; stop(): Promise<void> } | undefined;
  let a: Hub;
  let b: Hub;
  const closables: Closable[] = [];

  beforeAll(async () => {
    pg = await maybeStartTestPostgres();
    if (!pg) return;
    a = await startTestHub({ db: pg.url, replicaId: 'a' });
    b = await startTestHub({ db: pg.url, replicaId: 'b' });
  });
  afterAll(async () => {
    for (const c of closables.reverse()) await c.close().catch(() => undefined);
    await b?.close();
    await a?.close();
    await pg?.stop();
  });

  it('a method invoked on replica A reaches an AMQP device on replica B; a desired change on A reaches it too', async (ctx) => {
    if (!pg) return ctx.skip();
    const registry = registryFor(a.connectionString(), a.ca);
    const service = serviceClientFor(a.connectionString(), a.ca);
    const cs = (await connectionString(registry, a, 'amqp-roamer')).replace(`HostName=${a.host}`, `HostName=${b.host}`);
    const client = await amqpDevice(cs, b.ca, 'Amqp');
    closables.push(client);
    client.onDeviceMethod('where', answer(200, 'on b'));
    await client.open();
    const twin = await client.getTwin();
    const seen = desiredPatches(twin);
    const r = await eventually(async () => {
      const x = await invoke(service, { deviceId: 'amqp-roamer' }, 'where', 1);
      return x.status === 200 ? x : undefined;
    }, { what: 'the method answered across replicas' });
    expect(r.payload).toEqual({ payload: 'on b', got: 1 });
    await registry.updateTwin('amqp-roamer', { properties: { desired: { from: 'a' } } }, '*');
    await eventually(() => seen.find((p) => p['from'] === 'a'), { what: 'the desired patch across replicas' });
  });

  it('one connection per identity: attaching on replica A detaches its links on replica B (amqp:link:stolen)', async (ctx) => {
    if (!pg) return ctx.skip();
    const registry = registryFor(a.connectionString(), a.ca);
    await registry.create({ deviceId: 'twice' });
    const key = (await registry.get('twice')).responseBody.authentication?.symmetricKey?.primaryKey ?? '';
    const onB = await identityConnection(b, 'twice', key);
    const onA = await identityConnection(a, 'twice', key);
    try {
      const stolen = detachOf(onB, '/devices/twice/twin');
      const api = new HubClient({ connectionString: a.connectionString(), ca: a.ca });
      await eventually(async () => ((await api.getTwin('twice')) as { connectionState?: string }).connectionState === 'Connected', { what: 'twice connected on B' });
      expect(await receiveFrom(onA, '/devices/twice/twin')).toBe('open');
      expect(await stolen).toBe('amqp:link:stolen');
    } finally {
      onA.close();
      onB.close();
    }
  });
});
