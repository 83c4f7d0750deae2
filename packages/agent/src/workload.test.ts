import { createHmac } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import tls from 'node:tls';
import { X509Certificate } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { pino } from 'pino';
import { Aedes } from 'aedes';
import { ModuleClient } from 'azure-iot-device';
import { Mqtt } from 'azure-iot-device-mqtt';
import { generateKey, issueCa, parseSasToken, verifySasToken } from '@kedge/protocol';
import { EdgeHubReportStore } from './edgehub-report.js';
import { WorkloadApi, type WorkloadModule } from './workload.js';

const log = pino({ level: process.env.KEDGE_TEST_LOG ?? 'silent' });
const ca = issueCa('kedge device CA test', { years: 1 });
const modules = new Map<string, WorkloadModule>([
  ['$edgeHub', { key: generateKey(), secret: 'hub-secret-6f1d0c2b9a8e4d7c', serverNames: ['edgehub', 'localhost', '127.0.0.1'] }],
  ['filter', { key: generateKey(), secret: 'filter-secret-0a9b8c7d6e5f4a3b' }],
  ['sink', { key: generateKey(), secret: 'sink-secret-1b2c3d4e5f6a7b8c' }],
]);
const mod = (id: string): WorkloadModule => modules.get(id) as WorkloadModule;
const reports = new EdgeHubReportStore();
let api: WorkloadApi;
let base: string;

beforeAll(async () => {
  api = new WorkloadApi({ modules: { get: (id) => modules.get(id) }, ca, trustBundle: ca.cert, namespace: 'dev1', edgeHubReports: reports, log });
  base = await api.listen({ host: '127.0.0.1', port: 0 });
});
afterAll(() => api.close());

async function call(method: string, path: string, body?: unknown, raw?: string): Promise<{ status: number; body: Record<string, unknown> }> {
  const url = new URL(path, base);
  if (!url.searchParams.has('api-version')) url.searchParams.set('api-version', '2018-06-28');
  const res = await fetch(url, { method, ...(body !== undefined || raw !== undefined ? { body: raw ?? JSON.stringify(body), headers: { 'Content-Type': 'application/json' } } : {}) });
  const text = await res.text();
  return { status: res.status, body: text ? (JSON.parse(text) as Record<string, unknown>) : {} };
}

const sign = (id: string, secret: string, data: string) =>
  call('POST', `/modules/${encodeURIComponent(id)}/genid/${encodeURIComponent(secret)}/sign`, { keyId: 'primary', algo: 'HMACSHA256', data: Buffer.from(data).toString('base64') });

describe('workload API: sign', () => {
  it('signs with the module key when the caller presents that module credential', async () => {
    const r = await sign('filter', mod('filter').secret, 'hub/devices/d/modules/filter\n1700000000');
    expect(r.status).toBe(200);
    expect(r.body['digest']).toBe(createHmac('sha256', Buffer.from(mod('filter').key, 'base64')).update('hub/devices/d/modules/filter\n1700000000').digest('base64'));
  });

  it('module A cannot sign for module B: its credential is refused on B path, and B key is never used', async () => {
    const r = await sign('sink', mod('filter').secret, 'hub/devices/d/modules/sink\n1700000000');
    expect(r).toEqual({ status: 403, body: { message: 'The caller is not authorized for this module' } });
    expect((await sign('$edgeHub', mod('filter').secret, 'x')).status).toBe(403);
    expect((await sign('sink', '', 'x')).status).toBe(404); // an empty genid segment is no route at all
    expect((await sign('sink', 'sink-secret-1b2c3d4e5f6a7b8', 'x')).status).toBe(403); // one character short
  });

  it('refuses unknown modules, bad bodies, oversized bodies and a missing api-version, clearly', async () => {
    expect((await sign('nobody', 'x', 'x')).status).toBe(404);
    expect((await call('POST', `/modules/filter/genid/${mod('filter').secret}/sign`, undefined, '{"data":')).status).toBe(400);
    expect((await call('POST', `/modules/filter/genid/${mod('filter').secret}/sign`, { data: 'not base64!' })).status).toBe(400);
    expect((await call('POST', `/modules/filter/genid/${mod('filter').secret}/sign`, { data: Buffer.alloc(5000).toString('base64') })).status).toBe(400);
    expect((await call('POST', `/modules/filter/genid/${mod('filter').secret}/sign`, undefined, `{"data":"${'A'.repeat(300_000)}"}`)).status).toBe(413);
    const noVersion = await fetch(new URL(`/modules/filter/genid/${mod('filter').secret}/sign`, base), { method: 'POST', body: '{}' });
    expect(noVersion.status).toBe(400);
  });
});

describe('workload API: trust bundle and server certificates', () => {
  it('serves the device CA as PEM text', async () => {
    expect(await call('GET', '/trust-bundle')).toEqual({ status: 200, body: { certificate: ca.cert } });
  });

  it('issues the edge hub a server certificate for the names modules dial, chained to the trust bundle', async () => {
    const r = await call('POST', `/modules/%24edgeHub/genid/${mod('$edgeHub').secret}/certificate/server`, { commonName: 'edgehub', expiration: new Date(Date.now() + 7 * 24 * 3600e3).toISOString() });
    expect(r.status).toBe(201);
    const cert = new X509Certificate(r.body['certificate'] as string);
    expect(cert.checkIssued(new X509Certificate(ca.cert))).toBe(true);
    expect(cert.checkHost('edgehub')).toBe('edgehub');
    expect(cert.checkHost('localhost')).toBe('localhost');
    expect(cert.checkHost('sink')).toBeUndefined();
    expect((r.body['privateKey'] as { type: string; bytes: string }).bytes).toContain('PRIVATE KEY');
  });

  it('a module gets no server certificate for a name that is not its own', async () => {
    expect((await call('POST', `/modules/filter/genid/${mod('filter').secret}/certificate/server`, { commonName: 'edgehub' })).status).toBe(403);
    expect((await call('POST', `/modules/%24edgeHub/genid/${mod('$edgeHub').secret}/certificate/server`, { commonName: 'evil.example.com' })).status).toBe(403);
  });
});

describe('workload API: the edge hub reports its routes', () => {
  it('files the report for the device; other modules may not report; hostile names are refused and change nothing', async () => {
    const routes = { up: { route: 'FROM /messages/* INTO $upstream', priority: 1 } };
    expect((await call('PUT', `/modules/%24edgeHub/genid/${mod('$edgeHub').secret}/routes`, { routes })).status).toBe(204);
    expect(reports.get('dev1')?.routes).toEqual(routes);
    expect((await call('PUT', `/modules/filter/genid/${mod('filter').secret}/routes`, { routes: {} })).status).toBe(403);
    const hostile = await call('PUT', `/modules/%24edgeHub/genid/${mod('$edgeHub').secret}/routes`, undefined, '{"routes":{"__proto__":{"route":"x"}}}');
    expect(hostile.status).toBe(400);
    expect(reports.get('dev1')?.routes).toEqual(routes);
  });
});

describe('the Azure IoT Node SDK ModuleClient.fromEnvironment', () => {
  let dir: string;
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'kedge-workload-'));
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it.each([['tcp'], ['unix']])('connects with a SAS token signed by the workload API (%s), to a broker whose certificate the API issued', async (transport) => {
    const workload = transport === 'tcp' ? api : new WorkloadApi({ modules: { get: (id) => modules.get(id) }, ca, trustBundle: ca.cert, namespace: 'dev1', log });
    const uri = transport === 'tcp' ? base : await workload.listen({ path: join(dir, 'workload.sock') });
    // The edge hub's side: a TLS MQTT broker with the server certificate the workload API issued it.
    const cert = await call('POST', `/modules/%24edgeHub/genid/${mod('$edgeHub').secret}/certificate/server`, { commonName: 'localhost' });
    const passwords: string[] = [];
    const broker = await Aedes.createBroker({
      authenticate: (_client, _username, password, done) => {
        passwords.push(password?.toString('utf8') ?? '');
        done(null, true);
      },
    });
    const server = tls.createServer({ cert: cert.body['certificate'] as string, key: (cert.body['privateKey'] as { bytes: string }).bytes }, (s) => broker.handle(s));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const env = {
      IOTEDGE_WORKLOADURI: uri,
      IOTEDGE_DEVICEID: 'dev1',
      IOTEDGE_MODULEID: 'filter',
      IOTEDGE_MODULEGENERATIONID: mod('filter').secret,
      IOTEDGE_IOTHUBHOSTNAME: 'hub.example.com',
      IOTEDGE_AUTHSCHEME: 'sasToken',
      IOTEDGE_GATEWAYHOSTNAME: `localhost:${(server.address() as AddressInfo).port}`,
    };
    const saved = { ...process.env };
    Object.assign(process.env, env);
    let client: ModuleClient | undefined;
    try {
      client = await ModuleClient.fromEnvironment(Mqtt);
      await client.open();
      expect(passwords).toHaveLength(1);
      const token = parseSasToken(passwords[0] ?? '');
      if (!token.ok) throw new Error(`not a SAS token: ${passwords[0]}`);
      expect(verifySasToken(token.value, { audiences: ['hub.example.com/devices/dev1/modules/filter'], keys: [mod('filter').key], nowSeconds: Math.floor(Date.now() / 1000) }).ok).toBe(true);
      // Signed with filter's key and no other.
      expect(verifySasToken(token.value, { audiences: ['hub.example.com/devices/dev1/modules/filter'], keys: [mod('sink').key], nowSeconds: Math.floor(Date.now() / 1000) }).ok).toBe(false);
    } finally {
      process.env = saved;
      await client?.close();
      await new Promise<void>((resolve) => broker.close(() => resolve()));
      server.close();
      if (workload !== api) await workload.close();
    }
  });

  it('a module presenting another module credential gets no token: open() fails', async () => {
    const saved = { ...process.env };
    Object.assign(process.env, {
      IOTEDGE_WORKLOADURI: base,
      IOTEDGE_DEVICEID: 'dev1',
      IOTEDGE_MODULEID: 'sink',
      IOTEDGE_MODULEGENERATIONID: mod('filter').secret,
      IOTEDGE_IOTHUBHOSTNAME: 'hub.example.com',
      IOTEDGE_AUTHSCHEME: 'sasToken',
      IOTEDGE_GATEWAYHOSTNAME: 'localhost:1',
    });
    try {
      const client = await ModuleClient.fromEnvironment(Mqtt);
      await expect(client.open()).rejects.toThrow();
      await client.close().catch(() => undefined);
    } finally {
      process.env = saved;
    }
  });
});
