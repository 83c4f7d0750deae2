/**
 * Hostile keys against every twin, tag and property path, on both storage engines. IoT Hub treats `__proto__`,
 * `constructor` and the other `Object.prototype` member names as ordinary keys: stored and returned as data. The
 * expected documents are modelled here with `Map`s (no code shared with the hub's merge functions).
 */
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { HubClient } from '../client.js';
import type { RunningHub } from '../hub.js';
import { eventually } from '../test-support/eventually.js';
import { manifest, startTestHub } from '../test-support/fixtures.js';
import { maybeStartTestPostgres } from '../test-support/postgres.js';
import type { RawDevice } from '../test-support/raw-clients.js';
import { rawDevice, rawRest } from '../test-support/raw-clients.js';

type Hub = RunningHub & { host: string };

const PROTO_KEYS = [
  '__proto__',
  'constructor',
  'prototype',
  'toString',
  'valueOf',
  'hasOwnProperty',
  'isPrototypeOf',
  'propertyIsEnumerable',
  'toLocaleString',
  '__defineGetter__',
  '__defineSetter__',
  '__lookupGetter__',
  '__lookupSetter__',
] as const;

// ---- the test's own JSON model ---------------------------------------------------------------------------------

/** A generated JSON object: entries, not a JS object, so no key ever meets a prototype on the test side either. */
class Obj {
  constructor(readonly entries: ReadonlyArray<readonly [string, Val]>) {}
}
type Val = null | boolean | number | string | Val[] | Obj;
/** A document in the model. */
type Model = null | boolean | number | string | Model[] | Map<string, Model>;

const text = (v: Val): string =>
  v instanceof Obj ? `{${v.entries.map(([k, x]) => `${JSON.stringify(k)}:${text(x)}`).join(',')}}` : Array.isArray(v) ? `[${v.map(text).join(',')}]` : JSON.stringify(v);

const toModel = (v: Val): Model => (v instanceof Obj ? merge(new Map(), v) : Array.isArray(v) ? v.map(toModel) : v);

/** RFC 7396 merge patch onto a model object (mutates and returns it). */
function merge(target: Map<string, Model>, patch: Obj): Map<string, Model> {
  for (const [k, v] of patch.entries) {
    if (v === null) target.delete(k);
    else if (v instanceof Obj) {
      const cur = target.get(k);
      target.set(k, merge(cur instanceof Map ? cur : new Map<string, Model>(), v));
    } else target.set(k, toModel(v));
  }
  return target;
}

/** A deep copy of a model object. */
function rebuild(m: Model): Map<string, Model> {
  const out = new Map<string, Model>();
  if (m instanceof Map) for (const [k, v] of m) out.set(k, v instanceof Map ? rebuild(v) : Array.isArray(v) ? v.map((x) => (x instanceof Map ? rebuild(x) : x)) : v);
  return out;
}

/** Key-order-independent text of a model value. */
function canon(m: Model): string {
  if (m instanceof Map) return `{${[...m].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)).map(([k, v]) => `${JSON.stringify(k)}:${canon(v)}`).join(',')}}`;
  if (Array.isArray(m)) return `[${m.map(canon).join(',')}]`;
  return JSON.stringify(m);
}

/** The same text for what the hub returned (parsed by JSON.parse: `__proto__` is an own data property there). */
function canonJs(v: unknown, skipTop: readonly string[] = []): string {
  if (Array.isArray(v)) return `[${v.map((x) => canonJs(x)).join(',')}]`;
  if (typeof v === 'object' && v !== null) {
    const entries = Object.entries(v).filter(([k]) => !skipTop.includes(k));
    return `{${entries.sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)).map(([k, x]) => `${JSON.stringify(k)}:${canonJs(x)}`).join(',')}}`;
  }
  return JSON.stringify(v);
}

/** IoT Hub's key rule: non-empty, no `.`, `$`, space or control character, at most 1 KB. */
const validKey = (k: string): boolean => k.length > 0 && !/[.$ ]/.test(k) && [...k].every((c) => c.charCodeAt(0) >= 0x20) && Buffer.byteLength(k) <= 1024;
const allKeysValid = (v: Val): boolean =>
  v instanceof Obj ? v.entries.every(([k, x]) => validKey(k) && allKeysValid(x)) : Array.isArray(v) ? v.every(allKeysValid) : true;
const bytes = (m: Map<string, Model>): number => Buffer.byteLength(canon(m));

// ---- generators ------------------------------------------------------------------------------------------------

const keyArb = fc
  .oneof(
    { weight: 4, arbitrary: fc.constantFrom(...PROTO_KEYS) },
    { weight: 2, arbitrary: fc.string({ minLength: 1, maxLength: 8 }) },
    { weight: 1, arbitrary: fc.string({ unit: 'binary', minLength: 0, maxLength: 4 }) },
  )
  .filter((k) => k !== '$version' && k !== '$metadata');

const scalarArb = (nulls: boolean): fc.Arbitrary<Val> =>
  fc.oneof(fc.integer(), fc.boolean(), fc.string({ maxLength: 6 }), fc.double({ noNaN: true, noDefaultInfinity: true }), ...(nulls ? [fc.constant(null)] : []));

const objArb = (nulls: boolean): fc.Arbitrary<Obj> => {
  const { obj } = fc.letrec<{ obj: Obj; val: Val }>((tie) => ({
    obj: fc.uniqueArray(fc.tuple(keyArb, tie('val')), { selector: ([k]) => k, maxLength: 4 }).map((e) => new Obj(e)),
    val: fc.oneof({ depthSize: 'small', maxDepth: 3 }, scalarArb(nulls), tie('obj'), fc.array(scalarArb(nulls), { maxLength: 3 })),
  }));
  return obj;
};

type Target = '' | 'm';
type Op =
  | { readonly kind: 'reported'; readonly target: Target; readonly patch: Obj }
  | { readonly kind: 'desired'; readonly target: Target; readonly patch: Obj }
  | { readonly kind: 'tags'; readonly target: Target; readonly patch: Obj }
  | { readonly kind: 'put'; readonly target: Target; readonly tags: Obj; readonly desired: Obj }
  | { readonly kind: 'telemetry'; readonly target: Target; readonly bag: ReadonlyArray<readonly [string, string]> };

const targetArb = fc.constantFrom<Target>('', 'm');
const bagKeyArb = fc.oneof(fc.constantFrom(...PROTO_KEYS), fc.stringMatching(/^[A-Za-z0-9_-]{1,8}$/));
const opArb: fc.Arbitrary<Op> = fc.oneof(
  fc.record({ kind: fc.constant('reported' as const), target: targetArb, patch: objArb(true) }),
  fc.record({ kind: fc.constant('desired' as const), target: targetArb, patch: objArb(true) }),
  fc.record({ kind: fc.constant('tags' as const), target: targetArb, patch: objArb(true) }),
  fc.record({ kind: fc.constant('put' as const), target: targetArb, tags: objArb(false), desired: objArb(false) }),
  fc.record({
    kind: fc.constant('telemetry' as const),
    target: targetArb,
    bag: fc.uniqueArray(fc.tuple(bagKeyArb, fc.string({ maxLength: 6 })), { selector: ([k]) => k, minLength: 1, maxLength: 5 }),
  }),
);

// ---- the hub side ----------------------------------------------------------------------------------------------

interface TwinModel {
  tags: Map<string, Model>;
  desired: Map<string, Model>;
  reported: Map<string, Model>;
}
const emptyTwin = (): TwinModel => ({ tags: new Map(), desired: new Map(), reported: new Map() });

/** Applies `op` to the model the way IoT Hub would; `false` when IoT Hub refuses the request (nothing changes). */
function expectOp(m: TwinModel, op: Op): boolean {
  const within = (doc: Map<string, Model>, limit: number): boolean => bytes(doc) <= limit;
  switch (op.kind) {
    case 'reported':
    case 'desired':
    case 'tags': {
      if (!allKeysValid(op.patch)) return false;
      const side = op.kind;
      const next = merge(rebuild(m[side]), op.patch);
      if (!within(next, side === 'tags' ? 8 * 1024 : 32 * 1024)) return false;
      m[side] = next;
      return true;
    }
    case 'put': {
      if (!allKeysValid(op.tags) || !allKeysValid(op.desired)) return false;
      const tags = merge(new Map(), op.tags);
      const desired = merge(new Map(), op.desired);
      if (!within(tags, 8 * 1024) || !within(desired, 32 * 1024)) return false;
      m.tags = tags;
      m.desired = desired;
      return true;
    }
    case 'telemetry':
      return true;
  }
}

function describeHostileKeys(name: string, database: () => Promise<{ url: string | undefined; stop(): Promise<void> } | undefined>): void {
  describe(`hostile keys (${name})`, () => {
    let db: { url: string | undefined; stop(): Promise<void> } | undefined;
    let hub: Hub;
    let api: HubClient;
    let skipped = false;
    const prototypeMembers = (): string[] => Object.getOwnPropertyNames(Object.prototype).sort();
    const baseline = prototypeMembers();

    beforeAll(async () => {
      db = await database();
      if (!db) {
        skipped = true;
        return;
      }
      hub = await startTestHub(db.url ? { db: db.url } : {});
      api = new HubClient({ connectionString: hub.connectionString(), ca: hub.ca });
    });

    afterAll(async () => {
      await hub?.close();
      await db?.stop();
    });

    const keyOf = async (deviceId: string, moduleId?: string): Promise<string> => {
      const j = (moduleId ? await api.getModule(deviceId, moduleId) : await api.getDevice(deviceId)) as { authentication: { symmetricKey: { primaryKey: string } } };
      return j.authentication.symmetricKey.primaryKey;
    };

    it('stores a reported {"__proto__": …} as data, and the hub keeps authenticating', async (ctx) => {
      if (skipped) return ctx.skip();
      await api.createDevice('proto-1');
      const dev = await rawDevice(hub, await keyOf('proto-1'), 'proto-1');
      try {
        const status = await dev.report('{"__proto__": {"polluted": "yes", "status": "disabled"}, "constructor": {"prototype": {"x": 1}}}');
        expect(status).toBe(204);
        expect(prototypeMembers()).toEqual(baseline);
        expect(({} as Record<string, unknown>)['polluted']).toBeUndefined();
        const twin = (await api.getTwin('proto-1')) as { properties: { reported: Record<string, unknown> } };
        expect(canonJs(twin.properties.reported, ['$metadata', '$version'])).toBe('{"__proto__":{"polluted":"yes","status":"disabled"},"constructor":{"prototype":{"x":1}}}');
      } finally {
        await dev.close();
      }
      // Every later authentication still works (it used to fail for every device once the prototype was polluted).
      await api.createDevice('proto-2');
      const other = await rawDevice(hub, await keyOf('proto-2'), 'proto-2');
      expect(await other.report('{"ok": true}')).toBe(204);
      await other.close();
    });

    it('stores property-bag keys named like Object.prototype members as application properties', async (ctx) => {
      if (skipped) return ctx.skip();
      await api.createDevice('bag-1');
      const dev = await rawDevice(hub, await keyOf('bag-1'), 'bag-1');
      try {
        await dev.send('constructor=c&toString=t&__proto__=p&hasOwnProperty=h&%24.mid=m1', '{}');
      } finally {
        await dev.close();
      }
      const { messages } = await api.readTelemetry({ deviceId: 'bag-1' });
      expect(messages).toHaveLength(1);
      expect(canonJs(messages[0]?.properties)).toBe('{"__proto__":"p","constructor":"c","hasOwnProperty":"h","toString":"t"}');
      expect(messages[0]?.systemProperties).toMatchObject({ messageId: 'm1', connectionDeviceId: 'bag-1' });
    });

    it('runs deployments whose ids, tags, module twins and layered paths are prototype names', async (ctx) => {
      if (skipped) return ctx.skip();
      expect((await rawRest(hub, 'PUT', '/devices/cfg-1', '{"capabilities":{"iotEdge":true}}')).status).toBe(200);
      expect((await rawRest(hub, 'PATCH', '/twins/cfg-1', '{"tags":{"constructor":"prod"}}')).status).toBe(200);
      const base = manifest({ sensor: 'contoso/sensor:1.0' }, { sensor: JSON.parse('{"__proto__": {"polluted": 1}}') as Record<string, unknown> });
      const put = (id: string, body: unknown): Promise<{ status: number }> => rawRest(hub, 'PUT', `/configurations/${id}`, JSON.stringify(body));
      expect((await put('__proto__', { id: '__proto__', content: base, targetCondition: "tags.constructor = 'prod'", priority: 1 })).status).toBe(200);
      const layer = JSON.parse('{"sensor": {"properties.desired.__proto__.layered": 2}}') as unknown;
      expect((await put('constructor', { id: 'constructor', content: { modulesContent: layer }, targetCondition: "tags.constructor = 'prod'", priority: 2 })).status).toBe(200);
      const sensor = await eventually(async () => {
        const t = (await rawRest(hub, 'GET', '/twins/cfg-1/modules/sensor')).json as { properties: { desired: unknown } } | undefined;
        const d = t && canonJs(t.properties.desired, ['$metadata', '$version']);
        return d === '{"__proto__":{"layered":2,"polluted":1}}' ? d : undefined;
      });
      expect(sensor).toBeDefined();
      // The device twin's `configurations` is written after the module twins: wait for it too.
      const applied = '{"__proto__":{"status":"Applied"},"constructor":{"status":"Applied"}}';
      const configurations = await eventually(async () => {
        const device = (await rawRest(hub, 'GET', '/twins/cfg-1')).json as { configurations: unknown } | undefined;
        const c = device && canonJs(device.configurations);
        return c === applied ? c : undefined;
      }).catch(async () => canonJs(((await rawRest(hub, 'GET', '/twins/cfg-1')).json as { configurations: unknown }).configurations));
      expect(configurations).toBe(applied);
      const cfg = (await rawRest(hub, 'GET', '/configurations/__proto__')).json as { systemMetrics: { results: Record<string, number> } };
      expect(cfg.systemMetrics.results).toMatchObject({ targetedCount: 1, appliedCount: 1 });
      expect(prototypeMembers()).toEqual(baseline);
    });

    it('serves and stores exactly what IoT Hub would under hostile keys on every path (property test)', async (ctx) => {
      if (skipped) return ctx.skip();
      let run = 0;
      await fc.assert(
        fc.asyncProperty(fc.array(opArb, { minLength: 1, maxLength: 6 }), async (ops) => {
          const deviceId = `pt-${++run}`;
          await api.createDevice(deviceId);
          await api.createModule(deviceId, 'm');
          const conns: Record<Target, RawDevice> = {
            '': await rawDevice(hub, await keyOf(deviceId), deviceId),
            m: await rawDevice(hub, await keyOf(deviceId, 'm'), deviceId, 'm'),
          };
          const model: Record<Target, TwinModel> = { '': emptyTwin(), m: emptyTwin() };
          const twinPath = (t: Target): string => `/twins/${deviceId}${t ? `/modules/${t}` : ''}`;
          try {
            for (const op of ops) {
              const accepted = expectOp(model[op.target], op);
              let status: number;
              switch (op.kind) {
                case 'reported':
                  status = await conns[op.target].report(text(op.patch));
                  expect(status, `reported ${text(op.patch)}`).toBe(accepted ? 204 : 400);
                  break;
                case 'desired':
                case 'tags': {
                  const body = op.kind === 'tags' ? `{"tags":${text(op.patch)}}` : `{"properties":{"desired":${text(op.patch)}}}`;
                  status = (await rawRest(hub, 'PATCH', twinPath(op.target), body)).status;
                  expect(status, `PATCH ${body}`).toBe(accepted ? 200 : 400);
                  break;
                }
                case 'put': {
                  const body = `{"tags":${text(op.tags)},"properties":{"desired":${text(op.desired)}}}`;
                  status = (await rawRest(hub, 'PUT', twinPath(op.target), body)).status;
                  expect(status, `PUT ${body}`).toBe(accepted ? 200 : 400);
                  break;
                }
                case 'telemetry': {
                  const bag = op.bag.map(([k, v]) => `${encodeURIComponent(k)}=${encodeURIComponent(v)}`).join('&');
                  await conns[op.target].send(bag, 'x');
                  const { messages } = await api.readTelemetry({ deviceId, limit: 1000 });
                  const last = messages[messages.length - 1];
                  expect(canonJs(last?.properties)).toBe(canon(new Map(op.bag)));
                  break;
                }
              }
              expect(prototypeMembers()).toEqual(baseline);
            }
            for (const t of ['', 'm'] as const) {
              const twin = (await api.getTwin(deviceId, t || undefined)) as { tags: unknown; properties: { desired: unknown; reported: unknown } };
              expect(canonJs(twin.tags)).toBe(canon(model[t].tags));
              expect(canonJs(twin.properties.desired, ['$metadata', '$version'])).toBe(canon(model[t].desired));
              expect(canonJs(twin.properties.reported, ['$metadata', '$version'])).toBe(canon(model[t].reported));
            }
          } finally {
            await conns[''].close();
            await conns.m.close();
          }
        }),
        { numRuns: 25 },
      );
      // And the hub still serves: a new identity authenticates and reports.
      await api.createDevice('after-property-test');
      const dev = await rawDevice(hub, await keyOf('after-property-test'), 'after-property-test');
      expect(await dev.report('{"still": "serving"}')).toBe(204);
      await dev.close();
    });
  });
}

describeHostileKeys('SQLite', () => Promise.resolve({ url: undefined, stop: () => Promise.resolve() }));
describeHostileKeys('PostgreSQL', async () => {
  const pg = await maybeStartTestPostgres();
  return pg && { url: pg.url, stop: () => pg.stop() };
});
