import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Client as DeviceClient } from 'azure-iot-device';
import type { Registry } from 'azure-iothub';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runPython } from '@kedge/testing';
import type { RunningHub } from '../hub.js';
import { eventually } from '../test-support/eventually.js';
import { startTestHub } from '../test-support/fixtures.js';
import { maybeStartTestPostgres } from '../test-support/postgres.js';
import { deviceClientFor, registryFor } from '../test-support/sdk.js';

type Hub = RunningHub & { host: string };
type Database = { url: string | undefined; stop(): Promise<void> } | undefined;

/** Every page of a Node SDK query (`Query.next` until `hasMoreResults` is false) and each page's `x-ms-item-type`. */
async function allPages(registry: Registry, sql: string, pageSize?: number): Promise<{ pages: unknown[][]; types: string[] }> {
  const q = registry.createQuery(sql, pageSize);
  const pages: unknown[][] = [];
  const types: string[] = [];
  while (q.hasMoreResults) {
    // The promise form of `next()` reads its token from the argument only (`nextAsTwin` falls back to the property).
    const r = await q.next(q.continuationToken);
    pages.push(r.result as unknown[]);
    types.push(String(r.message.headers['x-ms-item-type']));
    if (pages.length > 50) throw new Error('query did not end');
  }
  return { pages, types };
}

// Runs Microsoft's Python SDK (azure-iot-hub) against the hub: requests trusts the hub's CA via REQUESTS_CA_BUNDLE.
const PYTHON = String.raw`
import json, os
from azure.iot.hub import IoTHubRegistryManager, IoTHubConfigurationManager
from azure.iot.hub.models import QuerySpecification, ConfigurationQueriesTestInput, Twin, TwinProperties

cs = os.environ["HUB_CS"]
rm = IoTHubRegistryManager.from_connection_string(cs)
out = {}

d = rm.create_device_with_sas("py-1", None, None, "enabled")
out["created"] = [d.device_id, len(d.authentication.symmetric_key.primary_key or "")]
g = rm.get_device("py-1")
out["got"] = [g.device_id, g.status]
out["listed"] = sorted(x.device_id for x in rm.get_devices())
t = rm.get_twin("py-1")
t2 = rm.update_twin("py-1", Twin(tags={"site": "py"}, properties=TwinProperties(desired={"rate": 5})), t.etag)
out["twin"] = [t2.tags, t2.properties.desired.get("rate")]

r = rm.query_iot_hub(QuerySpecification(query="SELECT * FROM devices WHERE tags.site = 'py'"))
out["twins"] = [r.type, [i.device_id for i in r.items], r.continuation_token]

pages, token = [], None
while True:
    r = rm.query_iot_hub(QuerySpecification(query="SELECT * FROM devices"), token, 2)
    pages.append([i.device_id for i in r.items])
    token = r.continuation_token
    if not token or len(pages) > 20:
        break
out["pages"] = pages

# Projections and aggregates are not twins: read them through the SDK's generated client, as raw JSON.
def raw(sql):
    resp = rm.protocol.query.get_twins(QuerySpecification(query=sql), None, None, None, True)
    return [resp.headers["x-ms-item-type"], resp.response.json()]
out["projection"] = raw("SELECT deviceId, status, properties.reported.fw FROM devices WHERE deviceId IN ['q-a', 'q-e']")
out["grouped"] = raw("SELECT tags.site AS site, COUNT() AS n FROM devices GROUP BY tags.site")
out["modules"] = raw("SELECT COUNT() AS n FROM devices.modules WHERE moduleId = 'm1'")

out["service"] = rm.get_service_statistics().connected_device_count
s = rm.get_device_registry_statistics()
out["registry"] = [s.total_device_count, s.enabled_device_count, s.disabled_device_count]

cm = IoTHubConfigurationManager.from_connection_string(cs)
ok = cm.test_configuration_queries(ConfigurationQueriesTestInput(target_condition="tags.site='py'", custom_metric_queries={"fine": "SELECT deviceId FROM devices WHERE tags.site = 'py'"}))
bad = cm.test_configuration_queries(ConfigurationQueriesTestInput(target_condition="tags.site = ", custom_metric_queries={"fine": "SELECT deviceId FROM devices", "broken": "SELECT deviceId FROM devices WHERE"}))
out["testQueries"] = [[ok.target_condition_error, ok.custom_metric_query_errors], [bad.target_condition_error, bad.custom_metric_query_errors]]

try:
    rm.query_iot_hub(QuerySpecification(query="SELECT deviceId, COUNT() AS n FROM devices"))
    out["refused"] = None
except Exception as e:
    out["refused"] = [e.response.status_code, e.response.json().get("Message")]

rm.delete_device("py-1")
print(json.dumps(out))
`;

function describeQueries(name: string, database: () => Promise<Database>): void {
  describe(`twin queries and statistics with the Node and Python SDKs (${name})`, () => {
    let db: Database;
    let hub: Hub;
    let registry: Registry;
    let device: DeviceClient | undefined;
    let skipped = false;

    beforeAll(async () => {
      db = await database();
      if (!db) {
        skipped = true;
        return;
      }
      hub = await startTestHub(db.url ? { db: db.url } : {});
      registry = registryFor(hub.connectionString(), hub.ca);
      // Five devices: two at the lab, two at the plant, one untagged and disabled; modules on two of them.
      const sites: Record<string, string | undefined> = { 'q-a': 'lab', 'q-b': 'lab', 'q-c': 'plant', 'q-d': 'plant', 'q-e': undefined };
      for (const [id, site] of Object.entries(sites)) {
        await registry.create({ deviceId: id, ...(id === 'q-e' ? { status: 'disabled' } : {}) });
        if (site) await registry.updateTwin(id, { tags: { site } }, '*');
      }
      await registry.addModule({ deviceId: 'q-a', moduleId: 'm1' });
      await registry.addModule({ deviceId: 'q-a', moduleId: 'm2' });
      await registry.addModule({ deviceId: 'q-b', moduleId: 'm1' });
      // q-a reports its firmware over MQTT with azure-iot-device, and stays connected.
      const key = (await registry.get('q-a')).responseBody.authentication?.symmetricKey?.primaryKey ?? '';
      device = await deviceClientFor(`HostName=${hub.host};DeviceId=q-a;SharedAccessKey=${key}`, hub.ca);
      await device.open();
      const twin = await device.getTwin();
      const reported = twin.properties.reported as unknown as { update(p: unknown, cb: (e?: Error) => void): void };
      await new Promise<void>((resolve, reject) => reported.update({ fw: '2.1.0' }, (e) => (e ? reject(e) : resolve())));
    });

    afterAll(async () => {
      await device?.close();
      await hub?.close();
      await db?.stop();
    });

    it('projects fields with azure-iothub Registry.createQuery, paging with x-ms-continuation', async (ctx) => {
      if (skipped) return ctx.skip();
      const { pages, types } = await allPages(registry, 'SELECT deviceId, status, properties.reported.fw FROM devices', 2);
      expect(pages).toEqual([
        [{ deviceId: 'q-a', status: 'enabled', fw: '2.1.0' }, { deviceId: 'q-b', status: 'enabled' }],
        [{ deviceId: 'q-c', status: 'enabled' }, { deviceId: 'q-d', status: 'enabled' }],
        [{ deviceId: 'q-e', status: 'disabled' }],
      ]);
      expect(types).toEqual(['raw', 'raw', 'raw']);
      // Filters see every twin field, and top-level names match case-insensitively, as in IoT Hub.
      const { pages: online } = await allPages(registry, "SELECT DeviceId, connectionState AS state FROM devices WHERE connectionState = 'Connected'");
      expect(online).toEqual([[{ deviceId: 'q-a', state: 'Connected' }]]);
    });

    it('counts and groups with COUNT() … AS and GROUP BY, on devices and devices.modules', async (ctx) => {
      if (skipped) return ctx.skip();
      expect((await allPages(registry, 'SELECT COUNT() AS numberOfDevices FROM devices')).pages).toEqual([[{ numberOfDevices: 5 }]]);
      const grouped = await allPages(registry, 'SELECT tags.site AS site, COUNT() AS n FROM devices GROUP BY tags.site');
      expect(grouped.pages).toEqual([[{ site: 'lab', n: 2 }, { site: 'plant', n: 2 }, { n: 1 }]]);
      // Grouped rows page too.
      expect((await allPages(registry, 'SELECT tags.site AS site, COUNT() AS n FROM devices GROUP BY tags.site', 2)).pages).toEqual([
        [{ site: 'lab', n: 2 }, { site: 'plant', n: 2 }],
        [{ n: 1 }],
      ]);
      const perModule = await allPages(registry, 'SELECT moduleId, COUNT() AS n FROM devices.modules GROUP BY moduleId');
      expect(perModule.pages).toEqual([[{ moduleId: 'm1', n: 2 }, { moduleId: 'm2', n: 1 }]]);
    });

    it('pages whole twins (nextAsTwin) and module twins, never past the page size', async (ctx) => {
      if (skipped) return ctx.skip();
      const q = registry.createQuery("SELECT * FROM devices WHERE tags.site IN ['lab', 'plant']", 3);
      const first = await q.nextAsTwin();
      expect(first.result.map((t) => t.deviceId)).toEqual(['q-a', 'q-b', 'q-c']);
      expect(first.result[0]?.properties.reported['fw']).toBe('2.1.0');
      expect(q.hasMoreResults).toBe(true);
      const second = await q.nextAsTwin();
      expect(second.result.map((t) => t.deviceId)).toEqual(['q-d']);
      expect(q.hasMoreResults).toBe(false);
      // One device's modules split across pages: each page holds at most one item here.
      const mods = await allPages(registry, 'SELECT deviceId, moduleId FROM devices.modules', 1);
      expect(mods.pages).toEqual([[{ deviceId: 'q-a', moduleId: 'm1' }], [{ deviceId: 'q-a', moduleId: 'm2' }], [{ deviceId: 'q-b', moduleId: 'm1' }]]);
      expect((await allPages(registry, 'SELECT TOP 3 deviceId FROM devices', 2)).pages).toEqual([[{ deviceId: 'q-a' }, { deviceId: 'q-b' }], [{ deviceId: 'q-c' }]]);
    });

    it('refuses what it cannot answer with a 400 that says why, and reads registry statistics', async (ctx) => {
      if (skipped) return ctx.skip();
      for (const [sql, why] of [
        ['SELECT deviceId, COUNT() AS n FROM devices', /'deviceId' must appear in GROUP BY/],
        ['SELECT * FROM devices ORDER BY deviceId', /unexpected 'ORDER'/],
        ['SELECT * FROM devices.jobs', /expected 'devices' or 'devices.modules'/],
      ] as const) {
        const e = await registry.createQuery(sql).next().then(() => undefined, (err: { response?: { statusCode?: number }; responseBody?: string }) => err);
        expect(e?.response?.statusCode).toBe(400);
        expect(e?.responseBody).toMatch(why);
      }
      // Hostile input: forged and oversized continuation tokens, an over-long query, an alias named __proto__.
      const forged = Buffer.from(JSON.stringify({ d: { toString: 1 }, n: 0 })).toString('base64url');
      for (const token of ['not-a-token', forged, 'A'.repeat(5000)]) {
        const e = await registry.createQuery('SELECT * FROM devices').next(token).then(() => undefined, (err: { response?: { statusCode?: number }; responseBody?: string }) => err);
        expect(e?.response?.statusCode).toBe(400);
        expect(e?.responseBody).toMatch(/Invalid x-ms-continuation token/);
      }
      const long = `SELECT * FROM devices WHERE ${Array.from({ length: 700 }, (_v, i) => `tags.a = '${i}'`).join(' OR ')}`;
      const tooLong = await registry.createQuery(long).next().then(() => undefined, (err: { responseBody?: string }) => err);
      expect(tooLong?.responseBody).toMatch(/longer than 8192 characters/);
      const proto = await registry.createQuery("SELECT deviceId AS __proto__ FROM devices WHERE deviceId = 'q-a'").next();
      const row = (proto.result as Array<Record<string, unknown>>)[0] ?? {};
      expect(Object.keys(row)).toEqual(['__proto__']);
      expect(Object.getOwnPropertyDescriptor(row, '__proto__')?.value).toBe('q-a');
      const stats = await registry.getRegistryStatistics();
      expect(stats.responseBody).toEqual({ totalDeviceCount: 5, enabledDeviceCount: 4, disabledDeviceCount: 1 });
    });

    it('serves azure-iot-hub (Python): registry, twin, queries, statistics and testQueries', async (ctx) => {
      if (skipped) return ctx.skip();
      const dir = mkdtempSync(join(tmpdir(), 'kedge-py-'));
      writeFileSync(join(dir, 'ca.pem'), hub.ca);
      // q-a's MQTT session makes it the one connected device.
      await eventually(async () => (String((await registry.get('q-a')).responseBody.connectionState) === 'Connected' ? true : undefined));
      const r = await runPython(PYTHON, { env: { HUB_CS: hub.connectionString(), REQUESTS_CA_BUNDLE: join(dir, 'ca.pem') }, timeoutMs: 120_000 });
      expect(r.stderr).toBe('');
      expect(r.code).toBe(0);
      const out = JSON.parse(r.stdout) as Record<string, unknown>;
      expect(out['created']).toEqual(['py-1', 44]);
      expect(out['got']).toEqual(['py-1', 'enabled']);
      expect(out['listed']).toEqual(['py-1', 'q-a', 'q-b', 'q-c', 'q-d', 'q-e']);
      expect(out['twin']).toEqual([{ site: 'py' }, 5]);
      expect(out['twins']).toEqual(['twin', ['py-1'], null]);
      expect(out['pages']).toEqual([['py-1', 'q-a'], ['q-b', 'q-c'], ['q-d', 'q-e']]);
      expect(out['projection']).toEqual(['raw', [{ deviceId: 'q-a', status: 'enabled', fw: '2.1.0' }, { deviceId: 'q-e', status: 'disabled' }]]);
      expect(out['grouped']).toEqual(['raw', [{ site: 'py', n: 1 }, { site: 'lab', n: 2 }, { site: 'plant', n: 2 }, { n: 1 }]]);
      expect(out['modules']).toEqual(['raw', [{ n: 2 }]]);
      expect(out['service']).toBe(1);
      expect(out['registry']).toEqual([6, 5, 1]);
      const [ok, bad] = out['testQueries'] as [[string, Record<string, string>], [string, Record<string, string>]];
      expect(ok).toEqual(['', {}]);
      expect(bad[0]).toMatch(/^Syntax error: unexpected end of query \(line 1, column 13\)$/);
      expect(Object.keys(bad[1])).toEqual(['broken']);
      expect(bad[1]['broken']).toMatch(/unexpected end of query/);
      expect(out['refused']).toEqual([400, expect.stringMatching(/^ErrorCode:ArgumentInvalid;.*'deviceId' must appear in GROUP BY/)]);
    }, 180_000);
  });
}

describeQueries('SQLite', () => Promise.resolve({ url: undefined, stop: () => Promise.resolve() }));
describeQueries('PostgreSQL', async () => {
  const pg = await maybeStartTestPostgres();
  return pg ? { url: pg.url, stop: () => pg.stop() } : undefined;
});
