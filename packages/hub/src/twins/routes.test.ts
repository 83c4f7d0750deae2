/**
 * The twin REST routes on a real hub (HTTPS on loopback, SQLite): paths for device and module twins, ETags in and
 * out, the right they need, and the codes of refusals.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createSasToken } from '@kedge/protocol';
import type { RunningHub } from '../hub.js';
import { startTestHub } from '../test-support/fixtures.js';
import { rawRest } from '../test-support/raw-clients.js';

type Hub = RunningHub & { host: string };

describe('twin routes', () => {
  let hub: Hub;
  const rest = (method: string, path: string, body?: unknown, headers: Record<string, string> = {}) =>
    rawRest(hub, method, path, body === undefined ? undefined : JSON.stringify(body), headers);
  const as = (policy: string): Record<string, string> => {
    const key = /SharedAccessKey=([^;]+)/.exec(hub.connectionString(policy))?.[1] ?? '';
    return { authorization: createSasToken({ audience: hub.host, key, keyName: policy, expirySeconds: Math.floor(Date.now() / 1000) + 600 }) };
  };
  const etag = async (path: string): Promise<string> => {
    const r = await rest('GET', path);
    return String((r.json as { etag: string }).etag);
  };

  beforeAll(async () => {
    hub = await startTestHub();
    expect((await rest('PUT', '/devices/d1', { deviceId: 'd1' })).status).toBe(200);
    expect((await rest('PUT', '/devices/d1/modules/m1', { deviceId: 'd1', moduleId: 'm1' })).status).toBe(200);
  });
  afterAll(async () => {
    await hub?.close();
  });

  for (const [what, path, moduleId] of [
    ['device', '/twins/d1', undefined],
    ['module', '/twins/d1/modules/m1', 'm1'],
  ] as const) {
    it(`GET, PATCH and PUT a ${what} twin, each answering the twin with its ETag`, async () => {
      const g = await rest('GET', path);
      expect(g.status).toBe(200);
      expect(g.json).toMatchObject({ deviceId: 'd1', ...(moduleId ? { moduleId } : {}), version: expect.any(Number) });
      expect((g.json as Record<string, unknown>)['moduleId']).toBe(moduleId);
      const p = await rest('PATCH', path, { tags: { site: 'a' }, properties: { desired: { x: 1 } } }, { 'if-match': `"${await etag(path)}"` });
      expect(p.status).toBe(200);
      const pj = p.json as { etag: string; tags: unknown; properties: { desired: Record<string, unknown> } };
      expect(pj.tags).toEqual({ site: 'a' });
      expect(pj.properties.desired['x']).toBe(1);
      expect(pj.etag).toBe(await etag(path));
      const u = await rest('PUT', path, { tags: { site: 'b' }, properties: { desired: {} } });
      expect(u.status).toBe(200);
      const uj = u.json as { tags: unknown; properties: { desired: Record<string, unknown> } };
      expect(uj.tags).toEqual({ site: 'b' });
      expect(uj.properties.desired['x']).toBeUndefined();
      expect((await rest('GET', path)).json).toMatchObject({ tags: { site: 'b' } });
    });
  }

  it('sends the ETag header of the version it answers', async () => {
    const { request } = await import('node:https');
    const headers = await new Promise<Record<string, unknown>>((resolve, reject) => {
      const req = request(
        { host: hub.host, port: 443, method: 'GET', path: '/twins/d1?api-version=2021-04-12', ca: hub.ca, agent: false, headers: as('iothubowner') },
        (res) => {
          res.resume();
          resolve(res.headers);
        },
      );
      req.on('error', reject);
      req.end();
    });
    expect(headers['etag']).toBe(`"${await etag('/twins/d1')}"`);
  });

  it('a stale If-Match on PATCH or PUT is 412 and changes nothing', async () => {
    const before = await rest('GET', '/twins/d1/modules/m1');
    for (const method of ['PATCH', 'PUT']) {
      const r = await rest(method, '/twins/d1/modules/m1', { tags: { stale: true } }, { 'if-match': '"Nzc3"' });
      expect(r.status, method).toBe(412);
    }
    expect((await rest('GET', '/twins/d1/modules/m1')).json).toEqual(before.json);
  });

  it('unknown devices and modules are 404 on every method', async () => {
    for (const method of ['GET', 'PATCH', 'PUT']) {
      const body = method === 'GET' ? undefined : { tags: {} };
      expect((await rest(method, '/twins/nope', body)).status, method).toBe(404);
      expect((await rest(method, '/twins/d1/modules/nope', body)).status, method).toBe(404);
    }
  });

  it('needs ServiceConnect: a registry policy is refused (CLOUD_ERR_FORBIDDEN) on every method and changes nothing', async () => {
    const before = await rest('GET', '/twins/d1');
    for (const method of ['GET', 'PATCH', 'PUT']) {
      for (const path of ['/twins/d1', '/twins/d1/modules/m1']) {
        const r = await rest(method, path, method === 'GET' ? undefined : { tags: { denied: true } }, as('registryReadWrite'));
        // IoT Hub answers a missing right with 401 IotHubUnauthorizedAccess; Kedge's code says which refusal it is.
        expect(r.status, `${method} ${path}`).toBe(401);
        expect((r.json as { code: string }).code).toBe('CLOUD_ERR_FORBIDDEN');
      }
    }
    expect((await rest('GET', '/twins/d1', undefined, as('service'))).status).toBe(200);
    expect((await rest('GET', '/twins/d1')).json).toEqual(before.json);
  });

  it('refuses a bad patch with 400', async () => {
    expect((await rest('PATCH', '/twins/d1', { properties: { reported: { a: 1 } } })).status).toBe(400);
    expect((await rest('PUT', '/twins/d1', [1])).status).toBe(400);
  });
});
