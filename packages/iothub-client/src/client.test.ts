import { createHmac } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { HubClient, startHub, type RunningHub } from '@kedge/hub';
import { DeviceRegistryClient, IotHubClient, IotHubClientError, IotHubErrorCode, backoffDelay } from './index.js';

// The real Kedge hub, in process, on loopback (ports chosen by the OS; kept across a restart).
const HOST = '127.0.0.1';
let hub: RunningHub;
let dataDir: string;
let ports: { service: number; mqtt: number };
let api: HubClient;
const closables: Array<{ close(): Promise<unknown> }> = [];

async function start(p = { service: 0, mqtt: 0 }): Promise<void> {
  hub = await startHub(
    { dataDir, hostName: HOST, service: { host: HOST, port: p.service }, mqtt: { host: HOST, port: p.mqtt }, deployments: { resyncSeconds: 3600 } },
    { logger: pino({ level: process.env['KEDGE_TEST_LOG'] ?? 'silent' }) },
  );
  ports = { service: Number(new URL(hub.urls.service).port), mqtt: Number(new URL(hub.urls.mqtt).port) };
  api = new HubClient({ connectionString: hub.connectionString(), ca: hub.ca, port: ports.service });
}

async function device(id: string, opts: { edge?: boolean } = {}): Promise<string> {
  const d = (await api.createDevice(id, opts)) as { authentication: { symmetricKey: { primaryKey: string } } };
  return d.authentication.symmetricKey.primaryKey;
}

function client(deviceId: string, key: string, extra: Partial<ConstructorParameters<typeof IotHubClient>[0]> = {}): IotHubClient {
  const c = new IotHubClient({ hostName: HOST, deviceId, sharedAccessKey: key, port: ports.mqtt, ca: hub.ca, requestTimeoutMs: 5000, backoff: { initialMs: 50, maxMs: 500 }, ...extra });
  closables.push(c);
  return c;
}

function next<T extends unknown[]>(c: IotHubClient, event: 'connected' | 'disconnected' | 'desired', timeoutMs = 10_000): Promise<T> {
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`no ${event} within ${timeoutMs} ms`)), timeoutMs);
    c.once(event, (...args: unknown[]) => {
      clearTimeout(t);
      resolve(args as T);
    });
  });
}

beforeAll(async () => {
  dataDir = mkdtempSync(join(tmpdir(), 'kedge-iothub-client-'));
  await start();
});
afterEach(async () => {
  for (const c of closables.splice(0).reverse()) await c.close().catch(() => undefined);
});
afterAll(async () => {
  await hub?.close();
});

describe('IotHubClient against the Kedge hub', () => {
  it('reads the twin, reports with $rid correlation and receives desired patches in $version order', async () => {
    const key = await device('twin-dev');
    const c = client('twin-dev', key);
    await c.open();
    const twin = await c.getTwin();
    expect(twin.desired['$version']).toBe(1);
    const v1 = await c.updateReported({ temperature: 21, nested: { a: 1 } });
    const v2 = await c.updateReported({ nested: { a: null, b: 2 } });
    expect(v2).toBe((v1 ?? 0) + 1);
    const seen = (await api.getTwin('twin-dev')) as { properties: { reported: Record<string, unknown> } };
    expect(seen.properties.reported).toMatchObject({ temperature: 21, nested: { b: 2 } });
    expect(seen.properties.reported['nested']).not.toHaveProperty('a');

    const patches: Array<[Record<string, unknown>, number | undefined]> = [];
    c.on('desired', (p, v) => patches.push([p, v]));
    await api.updateTwin('twin-dev', undefined, { properties: { desired: { interval: 5 } } });
    await api.updateTwin('twin-dev', undefined, { properties: { desired: { interval: 7 } } });
    await expect.poll(() => patches.length, { timeout: 5000 }).toBe(2);
    expect(patches.map(([p, v]) => [p['interval'], v])).toEqual([[5, 2], [7, 3]]);
    expect((await c.getTwin()).desired).toMatchObject({ interval: 7, $version: 3 });
  });

  it('answers direct methods and sends telemetry with a property bag', async () => {
    const key = await device('method-dev');
    const c = client('method-dev', key);
    c.onMethod((req) => (req.name === 'echo' ? { status: 200, payload: { got: req.payload } } : { status: 404, payload: { message: 'no such method' } }));
    await c.open();
    expect(await api.invoke('method-dev', undefined, 'echo', { x: 1 }, 5)).toEqual({ status: 200, payload: { got: { x: 1 } } });
    expect((await api.invoke('method-dev', undefined, 'other', null, 5)).status).toBe(404);

    await c.sendEvent(JSON.stringify({ t: 1 }), { properties: { alert: 'yes', 'a&b': 'c=d' }, messageId: 'm-1', contentType: 'application/json', contentEncoding: 'utf-8' });
    await expect.poll(async () => (await api.readTelemetry({ deviceId: 'method-dev' })).messages.length, { timeout: 5000 }).toBe(1);
    const [msg] = (await api.readTelemetry({ deviceId: 'method-dev' })).messages;
    expect(msg?.properties).toEqual({ alert: 'yes', 'a&b': 'c=d' });
    expect(msg?.systemProperties).toMatchObject({ messageId: 'm-1', contentType: 'application/json', connectionDeviceId: 'method-dev' });
    expect(msg?.body).toEqual({ t: 1 });
  });

  it('connects as a module with a caller-supplied signer', async () => {
    const key = await device('sign-dev');
    const m = (await api.createModule('sign-dev', 'filter')) as { authentication: { symmetricKey: { primaryKey: string } } };
    const signed: string[] = [];
    const signer = (data: string) => {
      signed.push(data);
      return Promise.resolve(createHmac('sha256', Buffer.from(m.authentication.symmetricKey.primaryKey, 'base64')).update(data).digest('base64'));
    };
    const c = new IotHubClient({ hostName: HOST, deviceId: 'sign-dev', moduleId: 'filter', signer, port: ports.mqtt, ca: hub.ca });
    closables.push(c);
    await c.open();
    expect(signed[0]).toMatch(/^127\.0\.0\.1%2Fdevices%2Fsign-dev%2Fmodules%2Ffilter\n\d+$/);
    await c.updateReported({ ok: true });
    expect(((await api.getTwin('sign-dev', 'filter')) as { properties: { reported: Record<string, unknown> } }).properties.reported['ok']).toBe(true);
    // The device key is not the module's.
    const wrong = client('sign-dev', key, { moduleId: 'filter' });
    wrong.start();
    const [info] = await next<[{ error?: IotHubClientError }]>(wrong, 'disconnected');
    expect(info.error?.code).toBe(IotHubErrorCode.Unauthorized);
    expect(wrong.connected).toBe(false);
    await expect(wrong.getTwin()).rejects.toMatchObject({ code: IotHubErrorCode.NotConnected });
  });

  it('renews its token before expiry by reconnecting, and still receives desired patches', async () => {
    const key = await device('renew-dev');
    const c = client('renew-dev', key, { tokenValiditySeconds: 3, tokenRenewalMarginSeconds: 1 });
    await c.open();
    const [info] = await next<[{ renewal: boolean }]>(c, 'disconnected', 10_000);
    expect(info.renewal).toBe(true);
    await next(c, 'connected');
    const desired = next<[Record<string, unknown>, number | undefined]>(c, 'desired');
    await api.updateTwin('renew-dev', undefined, { properties: { desired: { after: 'renewal' } } });
    expect((await desired)[0]).toMatchObject({ after: 'renewal' });
  });

  it('reconnects with backoff after the hub restarts and works again', async () => {
    const key = await device('restart-dev');
    const c = client('restart-dev', key);
    await c.open();
    const down = next(c, 'disconnected');
    const saved = ports;
    await hub.close();
    await down;
    await expect(c.updateReported({ x: 1 })).rejects.toMatchObject({ code: IotHubErrorCode.NotConnected });
    await start(saved);
    await c.waitForConnection(10_000);
    expect(await c.updateReported({ x: 2 })).toBeGreaterThan(1);
    const desired = next<[Record<string, unknown>, number | undefined]>(c, 'desired');
    await api.updateTwin('restart-dev', undefined, { properties: { desired: { back: true } } });
    expect((await desired)[0]).toMatchObject({ back: true });
  });

  it('gives every wait a deadline', async () => {
    // Nothing listens on this port: the connection attempt fails and open() times out without hanging.
    const c = new IotHubClient({ hostName: HOST, deviceId: 'nobody', sharedAccessKey: Buffer.alloc(32).toString('base64'), port: 1, connectTimeoutMs: 500, backoff: { initialMs: 50, maxMs: 100 } });
    closables.push(c);
    await expect(c.open(300)).rejects.toMatchObject({ code: IotHubErrorCode.Timeout });
    // A signer that never answers does not hold up close().
    const stuck = new IotHubClient({ hostName: HOST, deviceId: 'nobody', signer: () => new Promise<string>(() => undefined), port: ports.mqtt, ca: hub.ca });
    stuck.start();
    const t0 = Date.now();
    await stuck.close();
    expect(Date.now() - t0).toBeLessThan(1000);
    await c.close();
    await expect(c.getTwin()).rejects.toMatchObject({ code: IotHubErrorCode.Closed });
  });

  it('jitters the backoff between half and all of the capped exponential delay', () => {
    expect(backoffDelay(1, { initialMs: 1000 }, () => 0)).toBe(500);
    expect(backoffDelay(1, { initialMs: 1000 }, () => 1)).toBe(1000);
    expect(backoffDelay(4, { initialMs: 1000 }, () => 1)).toBe(8000);
    expect(backoffDelay(40, { initialMs: 1000, maxMs: 60_000 }, () => 0.5)).toBe(45_000);
  });
});

describe('DeviceRegistryClient (device scope)', () => {
  it('lets an edge device manage its own module identities, and nothing else', async () => {
    const key = await device('edge-1', { edge: true });
    const otherKey = await device('edge-2', { edge: true });
    const leafKey = await device('leaf-1');
    const reg = new DeviceRegistryClient({ hostName: HOST, port: ports.service, deviceId: 'edge-1', sharedAccessKey: key, ca: hub.ca, timeoutMs: 5000 });
    const created = await reg.createModule('filter', { managedBy: 'IotEdge' });
    expect(created).toMatchObject({ deviceId: 'edge-1', moduleId: 'filter', managedBy: 'IotEdge' });
    expect(created.primaryKey).not.toBe('');
    expect((await reg.createModule('filter')).primaryKey).toBe(created.primaryKey);
    expect((await reg.listModules()).map((m) => m.moduleId).sort()).toEqual(['$edgeAgent', '$edgeHub', 'filter']);
    expect((await reg.getModule('$edgeAgent'))?.primaryKey).not.toBe('');
    expect(await reg.deleteModule('filter')).toBe(true);
    expect(await reg.getModule('filter')).toBeUndefined();
    expect(await reg.deleteModule('filter')).toBe(false);

    // Another device's token for this device's modules, and a non-edge device: refused.
    const impostor = new DeviceRegistryClient({ hostName: HOST, port: ports.service, deviceId: 'edge-1', sharedAccessKey: otherKey, ca: hub.ca });
    await expect(impostor.listModules()).rejects.toMatchObject({ code: IotHubErrorCode.Unauthorized, status: 401 });
    const leaf = new DeviceRegistryClient({ hostName: HOST, port: ports.service, deviceId: 'leaf-1', sharedAccessKey: leafKey, ca: hub.ca });
    await expect(leaf.createModule('x')).rejects.toBeInstanceOf(IotHubClientError);
  });
});
