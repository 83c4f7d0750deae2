/**
 * Strict input on the service API: JSON bodies must be valid UTF-8, device and module ids follow one rule on every
 * route (up to 128 characters, never dots only), `GET /devices/` (azure-iothub's `registry.list()`) works, and a
 * direct method that times out is logged as a warning without a stack.
 */
import { Writable } from 'node:stream';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunningHub } from './hub.js';
import { eventually } from './test-support/eventually.js';
import { startTestHub } from './test-support/fixtures.js';
import { rawDevice, rawRest } from './test-support/raw-clients.js';
import { registryFor } from './test-support/sdk.js';

type Hub = RunningHub & { host: string };

describe('strict input', () => {
  let hub: Hub;
  const lines: Array<Record<string, unknown>> = [];

  beforeAll(async () => {
    const sink = new Writable({
      write(chunk: Buffer, _enc, done) {
        for (const l of chunk.toString('utf8').split('\n')) if (l.trim() !== '') lines.push(JSON.parse(l) as Record<string, unknown>);
        done();
      },
    });
    hub = await startTestHub({ logger: pino({ level: 'debug' }, sink) });
  });

  afterAll(async () => {
    await hub?.close();
  });

  const id = (n: number, c = 'a'): string => c.repeat(n);
  const keyOf = async (deviceId: string, moduleId?: string): Promise<string> => {
    const r = await rawRest(hub, 'GET', moduleId ? `/devices/${deviceId}/modules/${moduleId}` : `/devices/${deviceId}`);
    return (r.json as { authentication: { symmetricKey: { primaryKey: string } } }).authentication.symmetricKey.primaryKey;
  };

  it('refuses a JSON body that is not valid UTF-8, and stores nothing', async () => {
    const body = Buffer.concat([Buffer.from('{"deviceId":"utf8-1","statusReason":"'), Buffer.from([0xc3, 0x28]), Buffer.from('"}')]);
    const r = await rawRest(hub, 'PUT', '/devices/utf8-1', body);
    expect(r.status).toBe(400);
    expect(r.json).toMatchObject({ code: 'CLOUD_ERR_MALFORMED_JSON', message: expect.stringContaining('UTF-8') as unknown });
    expect((await rawRest(hub, 'GET', '/devices/utf8-1')).status).toBe(404);
    // Valid multi-byte UTF-8 is fine.
    const ok = await rawRest(hub, 'PUT', '/devices/utf8-1', Buffer.from('{"deviceId":"utf8-1","statusReason":"çà ✓"}', 'utf8'));
    expect(ok.status).toBe(200);
    expect(ok.json).toMatchObject({ statusReason: 'çà ✓' });
  });

  it('refuses a reported patch over MQTT that is not valid UTF-8, and stores nothing', async () => {
    expect((await rawRest(hub, 'PUT', '/devices/utf8-2', '{}')).status).toBe(200);
    const dev = await rawDevice(hub, await keyOf('utf8-2'), 'utf8-2');
    try {
      const status = await dev.report(Buffer.concat([Buffer.from('{"fw":"'), Buffer.from([0xff, 0xfe]), Buffer.from('"}')]));
      expect(status).toBe(400);
      expect(await dev.report('{"fw":"1.0 ✓"}')).toBe(204);
    } finally {
      await dev.close();
    }
    const twin = (await rawRest(hub, 'GET', '/twins/utf8-2')).json as { properties: { reported: Record<string, unknown> } };
    expect(twin.properties.reported).toMatchObject({ fw: '1.0 ✓', $version: 2 });
  });

  it('serves ids of up to 128 characters on every route, including bulk-created ones', async () => {
    for (const n of [100, 101, 128]) {
      const d = id(n, 'd');
      const m = id(n, 'm');
      expect((await rawRest(hub, 'PUT', `/devices/${d}`, '{}')).status).toBe(200);
      expect((await rawRest(hub, 'GET', `/devices/${d}`)).status).toBe(200);
      expect((await rawRest(hub, 'GET', `/twins/${d}`)).status).toBe(200);
      expect((await rawRest(hub, 'PATCH', `/twins/${d}`, '{"tags":{"n":1}}')).status).toBe(200);
      expect((await rawRest(hub, 'PUT', `/devices/${d}/modules/${m}`, '{}')).status).toBe(200);
      expect((await rawRest(hub, 'GET', `/devices/${d}/modules/${m}`)).status).toBe(200);
      expect((await rawRest(hub, 'GET', `/twins/${d}/modules/${m}`)).status).toBe(200);
      expect((await rawRest(hub, 'DELETE', `/devices/${d}/modules/${m}`, undefined, { 'if-match': '*' })).status).toBe(204);
      expect((await rawRest(hub, 'DELETE', `/devices/${d}`, undefined, { 'if-match': '*' })).status).toBe(204);
    }
    // Percent-encoded characters count once: 128 `%` characters are 384 characters on the wire.
    const pct = id(128, '%');
    expect((await rawRest(hub, 'PUT', `/devices/${encodeURIComponent(pct)}`, '{}')).status).toBe(200);
    expect((await rawRest(hub, 'GET', `/twins/${encodeURIComponent(pct)}`)).status).toBe(200);

    const bulk = id(128, 'b');
    const r = await rawRest(hub, 'POST', '/devices', JSON.stringify([{ id: bulk, importMode: 'create' }]));
    expect(r.json).toMatchObject({ isSuccessful: true });
    expect((await rawRest(hub, 'GET', `/devices/${bulk}`)).status).toBe(200);
  });

  it('refuses ids over 128 characters and ids of dots only, with a clear error, on every route', async () => {
    const long = id(129);
    for (const [method, path] of [
      ['PUT', `/devices/${long}`],
      ['GET', `/devices/${long}`],
      ['GET', `/twins/${long}`],
      ['PUT', `/devices/ok-device/modules/${long}`],
      ['GET', `/twins/ok-device/modules/${long}`],
    ] as const) {
      const r = await rawRest(hub, method, path, method === 'PUT' ? '{}' : undefined);
      expect(r.status, `${method} ${path}`).toBe(400);
      expect(r.json).toMatchObject({ code: 'CLOUD_ERR_INVALID_ID', message: expect.stringContaining('at most 128') as unknown });
    }
    expect((await rawRest(hub, 'PUT', '/devices/ok-device', '{}')).status).toBe(200);
    for (const dots of ['...', '.', '..']) {
      const r = await rawRest(hub, 'PUT', `/devices/${encodeURIComponent(dots)}`, '{}');
      expect(r.status, `device '${dots}'`).toBe(400);
      expect(r.json).toMatchObject({ code: 'CLOUD_ERR_INVALID_ID', message: expect.stringContaining('dots only') as unknown });
      const m = await rawRest(hub, 'PUT', `/devices/ok-device/modules/${encodeURIComponent(dots)}`, '{}');
      expect(m.status, `module '${dots}'`).toBe(400);
    }
    const bulk = await rawRest(hub, 'POST', '/devices', JSON.stringify([{ id: '....', importMode: 'create' }, { id: id(129), importMode: 'create' }]));
    expect(bulk.json).toMatchObject({ isSuccessful: false, errors: [{ deviceId: '....', errorCode: 'ArgumentInvalid' }, { errorCode: 'ArgumentInvalid' }] });
    expect((await rawRest(hub, 'GET', '/devices/a.b')).status).toBe(404);
  });

  it("answers azure-iothub's registry.list() (GET /devices/)", async () => {
    await rawRest(hub, 'PUT', '/devices/listed-1', '{}');
    const registry = registryFor(hub.connectionString(), hub.ca);
    const { responseBody } = await registry.list();
    expect(responseBody.map((d) => d.deviceId)).toContain('listed-1');
  });

  it('logs a direct method that times out as a warning without a stack', async () => {
    expect((await rawRest(hub, 'PUT', '/devices/slow-1', '{}')).status).toBe(200);
    const dev = await rawDevice(hub, await keyOf('slow-1'), 'slow-1');
    try {
      await dev.client.subscribeAsync('$iothub/methods/POST/#', { qos: 0 });
      const before = lines.length;
      // The device never answers.
      const r = await rawRest(hub, 'POST', '/twins/slow-1/methods', JSON.stringify({ methodName: 'reboot', payload: {}, responseTimeoutInSeconds: 5 }));
      expect(r.status).toBe(504);
      const logged = await eventually(() => {
        const l = lines.slice(before).find((x) => x['code'] === 'CLOUD_ERR_METHOD_TIMEOUT');
        if (!l) throw new Error('not logged yet');
        return l;
      });
      expect(logged['level']).toBe(40);
      expect(JSON.stringify(logged)).not.toContain('stack');
      expect(lines.slice(before).filter((x) => Number(x['level']) >= 50)).toEqual([]);
    } finally {
      await dev.close();
    }
  });
});
