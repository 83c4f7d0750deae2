import { mkdtempSync } from 'node:fs';
import { request } from 'node:https';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { HubClient, startHub, type RunningHub } from '@kedge/hub';
import { createSasToken, parseConnectionString } from '@kedge/protocol';
import { HubOutcome, checkHubCredentials } from './check-hub.js';

// `kedge check`'s hub check against a real Kedge hub (MQTT over TLS on loopback): each way the credentials can fail.

let hub: RunningHub;
let service: HubClient;
let mqttPort = 0;

async function createEdgeDevice(id: string): Promise<string> {
  const d = (await service.createDevice(id, { edge: true })) as { authentication: { symmetricKey: { primaryKey: string } } };
  return d.authentication.symmetricKey.primaryKey;
}

/** Disables a device through the service REST API (PUT /devices/{id} with status disabled), as `az iot hub device-identity update` would. */
async function disable(id: string): Promise<void> {
  const cs = parseConnectionString(hub.connectionString());
  const d = (await service.getDevice(id)) as Record<string, unknown>;
  const body = JSON.stringify({ ...d, status: 'disabled' });
  const status = await new Promise<number>((resolve, reject) => {
    const req = request({
      host: '127.0.0.1',
      port: Number(new URL(hub.urls.service).port),
      method: 'PUT',
      path: `/devices/${encodeURIComponent(id)}?api-version=2021-04-12`,
      ca: hub.ca,
      headers: {
        authorization: createSasToken({ audience: '127.0.0.1', key: cs.get('SharedAccessKey') ?? '', keyName: cs.get('SharedAccessKeyName') ?? '', expirySeconds: Math.floor(Date.now() / 1000) + 600 }),
        'content-type': 'application/json',
        'if-match': '*',
      },
    });
    req.on('response', (r) => {
      r.resume();
      resolve(r.statusCode ?? 0);
    });
    req.on('error', reject);
    req.end(body);
  });
  expect(status).toBe(200);
}

const check = (o: { deviceId: string; key: string; ca?: string | null; port?: number; nowMs?: () => number }) =>
  checkHubCredentials({
    hostName: '127.0.0.1',
    deviceId: o.deviceId,
    sharedAccessKey: o.key,
    port: o.port ?? mqttPort,
    ...(o.ca === null ? {} : { ca: o.ca ?? hub.ca }),
    timeoutMs: 5_000,
    ...(o.nowMs ? { nowMs: o.nowMs } : {}),
  });

beforeAll(async () => {
  const dir = mkdtempSync(join(tmpdir(), 'kedge-check-hub-'));
  hub = await startHub({ dataDir: join(dir, 'data'), hostName: '127.0.0.1', service: { host: '127.0.0.1', port: 0 }, mqtt: { host: '127.0.0.1', port: 0 }, deployments: { resyncSeconds: 3600 }, logLevel: 'silent' });
  mqttPort = Number(new URL(hub.urls.mqtt).port);
  service = new HubClient({ connectionString: hub.connectionString(), ca: hub.ca, port: Number(new URL(hub.urls.service).port) });
});
afterAll(async () => {
  await hub?.close();
});

describe("kedge check: does the hub accept the device's credentials?", () => {
  it('ok: the device authenticates over verified TLS and reads its twin', async () => {
    const key = await createEdgeDevice('ok-1');
    await service.updateTwin('ok-1', undefined, { properties: { desired: { a: 1 } } });
    const r = await check({ deviceId: 'ok-1', key });
    expect(r).toEqual({ outcome: HubOutcome.Ok, detail: 'device ok-1 authenticated at 127.0.0.1:' + mqttPort + ' over verified TLS; twin read (desired $version 2)' });
  });

  it('wrong key: refused, says to compare the key', async () => {
    await createEdgeDevice('wrong-key');
    const r = await check({ deviceId: 'wrong-key', key: Buffer.alloc(32, 9).toString('base64') });
    expect(r.outcome).toBe(HubOutcome.KeyRefused);
    expect(r.detail).toContain('CONNACK 4');
    expect(r.fix).toContain('kedge devices show wrong-key');
  });

  it("expired: a token from a clock an hour behind is refused like a wrong key, and the fix names the clock", async () => {
    const key = await createEdgeDevice('late-clock');
    expect((await check({ deviceId: 'late-clock', key })).outcome).toBe(HubOutcome.Ok);
    const r = await check({ deviceId: 'late-clock', key, nowMs: () => Date.now() - 3600_000 });
    expect(r.outcome).toBe(HubOutcome.KeyRefused);
    expect(r.detail).toContain('expired');
    expect(r.fix).toContain('date -u');
  });

  it('disabled or unknown device: not admitted, says to create or enable it', async () => {
    const key = await createEdgeDevice('off-1');
    await disable('off-1');
    const disabled = await check({ deviceId: 'off-1', key });
    expect(disabled.outcome).toBe(HubOutcome.DeviceRefused);
    expect(disabled.fix).toContain('kedge devices create off-1 --edge');
    expect((await check({ deviceId: 'never-made', key })).outcome).toBe(HubOutcome.DeviceRefused);
  });

  it("TLS untrusted: the hub's own CA is not in the system's roots", async () => {
    const key = await createEdgeDevice('tls-1');
    const r = await check({ deviceId: 'tls-1', key, ca: null });
    expect(r.outcome).toBe(HubOutcome.TlsUntrusted);
    expect(r.fix).toContain('--hub-ca');
  });

  it('unreachable: nothing listens there', async () => {
    const port = await new Promise<number>((resolve) => {
      const s = createServer().listen(0, '127.0.0.1', () => {
        const p = (s.address() as { port: number }).port;
        s.close(() => resolve(p));
      });
    });
    const r = await check({ deviceId: 'x', key: Buffer.alloc(32, 1).toString('base64'), port });
    expect(r).toMatchObject({ outcome: HubOutcome.Unreachable, detail: `127.0.0.1:${port}: ECONNREFUSED` });
    expect(r.fix).toContain('firewall');
  });
});
