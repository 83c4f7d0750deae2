import type { FastifyInstance, FastifyRequest } from 'fastify';
import { Right } from '../auth/policies.js';
import type { DeviceQuery, QueryRow } from '../deployments/routing-port.js';
import { compileTwinQuery, QueryShape } from '../deployments/routing-port.js';
import { hubError } from '../errors.js';
import { authorize, objectBody, sendJson } from '../http.js';
import type { HubServices } from '../services.js';
import type { JsonObject } from '@kedge/protocol';
import { isObject } from '@kedge/protocol';

/** IoT Hub's limit on the length of a query expression (query-twins.md, "Twin query limitations"). */
export const MAX_QUERY_LENGTH = 8192;
/** Page size without `x-ms-max-item-count`, and the largest page (IoT Hub: up to 1000). */
export const DEFAULT_PAGE_SIZE = 100;
export const MAX_PAGE_SIZE = 1000;
const MAX_TOKEN_LENGTH = 2048;
const SCAN_PAGE = 200;

/**
 * Where a paged query resumes. Twins and projections resume after the last twin returned (device id, and module id
 * for `devices.modules`); aggregates are recomputed and resume at a row offset. `n` counts results already returned,
 * for `TOP`.
 */
type Continuation = { readonly kind: 'after'; readonly d: string; readonly m: string | undefined; readonly n: number } | { readonly kind: 'offset'; readonly o: number; readonly n: number };

const badToken = (): Error => hubError('CLOUD_ERR_BAD_REQUEST', 'Invalid x-ms-continuation token; send back the token the previous page returned, unchanged');

function encodeToken(c: Continuation): string {
  const body = c.kind === 'after' ? { d: c.d, ...(c.m === undefined ? {} : { m: c.m }), n: c.n } : { o: c.o, n: c.n };
  return Buffer.from(JSON.stringify(body), 'utf8').toString('base64url');
}

/** Parses a continuation token: hostile input, so bounded, shape-checked and never merged into anything. */
function decodeToken(header: unknown, shape: QueryShape): Continuation | undefined {
  if (header === undefined || header === '') return undefined;
  if (typeof header !== 'string' || header.length > MAX_TOKEN_LENGTH) throw badToken();
  let v: unknown;
  try {
    v = JSON.parse(Buffer.from(header, 'base64url').toString('utf8')) as unknown;
  } catch {
    throw badToken();
  }
  if (!isObject(v)) throw badToken();
  const n = v['n'];
  if (typeof n !== 'number' || !Number.isSafeInteger(n) || n < 0) throw badToken();
  if (shape === QueryShape.Aggregate) {
    const o = v['o'];
    if (typeof o !== 'number' || !Number.isSafeInteger(o) || o < 0) throw badToken();
    return { kind: 'offset', o, n };
  }
  const d = v['d'];
  const m = v['m'];
  if (typeof d !== 'string' || (m !== undefined && typeof m !== 'string')) throw badToken();
  return { kind: 'after', d, m, n };
}

function pageSize(req: FastifyRequest): number {
  const h = req.headers['x-ms-max-item-count'];
  if (h === undefined || h === '') return DEFAULT_PAGE_SIZE;
  const n = Number(h);
  // IoT Hub: "The service may use a different value if the value specified is not acceptable."
  return Number.isInteger(n) && n >= 1 ? Math.min(n, MAX_PAGE_SIZE) : DEFAULT_PAGE_SIZE;
}

interface Scanned {
  readonly deviceId: string;
  /** `undefined` for a device twin. */
  readonly moduleId: string | undefined;
  /** The twin as `GET /twins/…` serves it: what queries filter and project. */
  readonly json: JsonObject;
}

/**
 * Twins of a collection in (deviceId, moduleId) order, strictly after `from`, as IoT Hub twin JSON. Reads the store
 * in pages, so a query never holds the registry in memory.
 */
async function* scan(s: HubServices, collection: DeviceQuery['collection'], from: { d: string; m: string | undefined } | undefined): AsyncGenerator<Scanned> {
  let after = from?.d;
  if (collection === 'devices.modules' && from !== undefined) {
    // Resume inside the device the previous page stopped in.
    yield* modulesOf(s, from.d, from.m);
  }
  for (;;) {
    const page = await s.store.listDeviceTwins({ limit: SCAN_PAGE, ...(after === undefined ? {} : { after }) });
    if (page.length === 0) return;
    for (const t of page) {
      if (collection === 'devices') {
        const device = await s.store.getDevice(t.deviceId);
        yield { deviceId: t.deviceId, moduleId: undefined, json: s.twins.toJson(t, device, await s.store.getPresence(t.deviceId, '')) };
      } else {
        yield* modulesOf(s, t.deviceId, undefined);
      }
      after = t.deviceId;
    }
  }
}

async function* modulesOf(s: HubServices, deviceId: string, afterModule: string | undefined): AsyncGenerator<Scanned> {
  const device = await s.store.getDevice(deviceId);
  if (!device) return;
  const mods = (await s.store.listModuleTwins(deviceId)).filter((m) => afterModule === undefined || m.moduleId > afterModule);
  mods.sort((a, b) => (a.moduleId < b.moduleId ? -1 : a.moduleId > b.moduleId ? 1 : 0));
  for (const m of mods) yield { deviceId, moduleId: m.moduleId, json: s.twins.toJson(m, device, await s.store.getPresence(deviceId, m.moduleId)) };
}

/** One page of results and where the next page starts (`undefined`: this was the last page). */
interface Page {
  readonly items: unknown[];
  readonly next: Continuation | undefined;
}

async function twinsPage(s: HubServices, q: DeviceQuery, max: number, from: Continuation | undefined): Promise<Page> {
  const done = from?.kind === 'after' ? from.n : 0;
  const limit = Math.min(max, q.top === undefined ? Infinity : q.top - done);
  const items: unknown[] = [];
  let last: Scanned | undefined;
  if (limit <= 0) return { items, next: undefined };
  for await (const t of scan(s, q.collection, from?.kind === 'after' ? from : undefined)) {
    if (!q(t.json)) continue;
    // One match past a full page proves there is a next page, so the last page never comes back empty.
    if (items.length === limit) {
      const n = done + items.length;
      return { items, next: last && (q.top === undefined || n < q.top) ? { kind: 'after', d: last.deviceId, m: last.moduleId, n } : undefined };
    }
    items.push(q.shape === QueryShape.Projection ? q.project(t.json) : t.json);
    last = t;
  }
  return { items, next: undefined };
}

async function aggregatePage(s: HubServices, q: DeviceQuery, max: number, from: Continuation | undefined): Promise<Page> {
  const agg = q.aggregate();
  for await (const t of scan(s, q.collection, undefined)) if (q(t.json)) agg.add(t.json);
  const rows: QueryRow[] = agg.rows().slice(0, q.top);
  const o = from?.kind === 'offset' ? from.o : 0;
  const items = rows.slice(o, o + max);
  const end = o + items.length;
  return { items, next: end < rows.length ? { kind: 'offset', o: end, n: end } : undefined };
}

/**
 * The IoT Hub query API (`POST /devices/query`) and the statistics it sits next to. Queries are compiled by
 * `@kedge/routing` (projections, aggregates, `GROUP BY`, `TOP`); results page with `x-ms-max-item-count` and an opaque
 * `x-ms-continuation` token, and `x-ms-item-type` says whether items are twins (`twin`) or built objects (`raw`).
 */
export function queryRoutes(app: FastifyInstance, s: HubServices): void {
  app.post('/devices/query', async (req, reply) => {
    await authorize(s, req, Right.RegistryRead);
    const text = objectBody(req)['query'];
    if (typeof text !== 'string' || text.trim() === '') throw hubError('CLOUD_ERR_BAD_REQUEST', 'query is required, e.g. {"query": "SELECT * FROM devices"}');
    if (text.length > MAX_QUERY_LENGTH) throw hubError('CLOUD_ERR_BAD_REQUEST', `query is longer than ${MAX_QUERY_LENGTH} characters`);
    const q = compileTwinQuery(text);
    if (!q.ok) throw hubError('CLOUD_ERR_BAD_REQUEST', `query: ${q.error.message} (line ${q.error.line}, column ${q.error.column})`);
    const from = decodeToken(req.headers['x-ms-continuation'], q.value.shape);
    const max = pageSize(req);
    const page = q.value.shape === QueryShape.Aggregate ? await aggregatePage(s, q.value, max, from) : await twinsPage(s, q.value, max, from);
    if (page.next !== undefined) void reply.header('x-ms-continuation', encodeToken(page.next));
    void reply.header('x-ms-item-type', q.value.shape === QueryShape.Twins ? 'twin' : 'raw');
    return sendJson(reply, 200, page.items);
  });

  app.get('/statistics/devices', async (req, reply) => {
    await authorize(s, req, Right.RegistryRead);
    const c = await s.store.countDevices();
    return sendJson(reply, 200, { totalDeviceCount: c.total, enabledDeviceCount: c.enabled, disabledDeviceCount: c.total - c.enabled });
  });

  // Connected devices across every replica (presence is shared through the database); modules do not count.
  app.get('/statistics/service', async (req, reply) => {
    await authorize(s, req, Right.RegistryRead);
    return sendJson(reply, 200, { connectedDeviceCount: await s.store.countConnectedDevices() });
  });
}
