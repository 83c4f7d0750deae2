import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { compileDeviceQuery, QueryShape, type DeviceQuery, type TwinDocument } from './twin-query.js';

const twins: TwinDocument[] = [
  { deviceId: 'a', status: 'enabled', connectionState: 'Connected', tags: { site: 'lab' }, properties: { desired: {}, reported: { fw: '1.0', temp: 20, cfg: { status: 'Success' } } } },
  { deviceId: 'b', status: 'enabled', connectionState: 'Disconnected', tags: { site: 'lab' }, properties: { desired: {}, reported: { fw: '1.1', temp: 30, cfg: { status: 'Pending' } } } },
  { deviceId: 'c', status: 'disabled', connectionState: 'Disconnected', tags: { site: 'plant' }, properties: { desired: {}, reported: { fw: '1.1', temp: 'hot', cfg: { status: 'Success' } } } },
  { deviceId: 'd', status: 'enabled', connectionState: 'Disconnected', properties: { desired: {}, reported: {} } },
];

function compile(text: string): DeviceQuery {
  const q = compileDeviceQuery(text);
  if (!q.ok) throw new Error(`${q.error.message} (column ${q.error.column})`);
  return q.value;
}

/** Runs a query over `twins` the way the hub does: WHERE, then projection or aggregation; plain objects out. */
function run(text: string): unknown[] {
  const q = compile(text);
  const matching = twins.filter((t) => q(t));
  let out: unknown[];
  if (q.shape === QueryShape.Twins) out = matching;
  else if (q.shape === QueryShape.Projection) out = matching.map((t) => q.project(t));
  else {
    const agg = q.aggregate();
    for (const t of matching) agg.add(t);
    out = agg.rows();
  }
  return JSON.parse(JSON.stringify(out.slice(0, q.top))) as unknown[];
}

describe('device query projections', () => {
  it('projects fields under their last segment, leaving missing ones out', () => {
    expect(compile('SELECT deviceId, status, properties.reported.fw FROM devices').shape).toBe(QueryShape.Projection);
    expect(run('SELECT deviceId, status, properties.reported.fw FROM devices')).toEqual([
      { deviceId: 'a', status: 'enabled', fw: '1.0' },
      { deviceId: 'b', status: 'enabled', fw: '1.1' },
      { deviceId: 'c', status: 'disabled', fw: '1.1' },
      { deviceId: 'd', status: 'enabled' },
    ]);
  });

  it('renames with AS, filters on any twin field, and matches top-level names case-insensitively (as IoT Hub)', () => {
    expect(run("SELECT DeviceId, properties.reported.fw AS firmware FROM devices WHERE status = 'enabled' AND connectionState = 'Disconnected'")).toEqual([
      { deviceId: 'b', firmware: '1.1' },
      { deviceId: 'd' },
    ]);
    expect(run('SELECT tags FROM devices WHERE deviceId = "c"')).toEqual([{ tags: { site: 'plant' } }]);
  });

  it('keeps hostile aliases and property names as plain keys', () => {
    const out = compile('SELECT deviceId AS __proto__, tags.constructor FROM devices').project({ deviceId: 'x', tags: { constructor: 1 } });
    expect(Object.getPrototypeOf(out)).toBeNull();
    expect(JSON.parse(JSON.stringify(out))).toEqual({ ['__proto__']: 'x', constructor: 1 });
    expect(({} as Record<string, unknown>)['x']).toBeUndefined();
  });

  it('limits results with TOP', () => {
    expect(run('SELECT TOP 2 deviceId FROM devices')).toEqual([{ deviceId: 'a' }, { deviceId: 'b' }]);
    expect(compile('SELECT TOP 5 * FROM devices.modules').top).toBe(5);
  });
});

describe('device query aggregates', () => {
  it('counts everything, or what WHERE keeps', () => {
    expect(run('SELECT COUNT() AS total FROM devices')).toEqual([{ total: 4 }]);
    expect(run("select count() as n from devices where tags.site = 'lab'")).toEqual([{ n: 2 }]);
    expect(run("SELECT COUNT() AS n FROM devices WHERE tags.site = 'nowhere'")).toEqual([{ n: 0 }]);
    // Unaliased aggregates are named $1, $2, … (the DocumentDB dialect IoT Hub's language comes from).
    expect(run('SELECT COUNT(), MAX(properties.reported.temp) FROM devices')).toEqual([{ $1: 4, $2: 'hot' }]);
  });

  it('groups as the IoT Hub documentation example does', () => {
    const rows = run('SELECT properties.reported.cfg.status AS status, COUNT() AS numberOfDevices FROM devices GROUP BY properties.reported.cfg.status');
    expect(rows).toEqual([{ status: 'Success', numberOfDevices: 2 }, { status: 'Pending', numberOfDevices: 1 }, { numberOfDevices: 1 }]);
  });

  it('computes SUM, AVG, MIN and MAX over numbers (MIN/MAX order types null < bool < number < string)', () => {
    expect(run('SELECT tags.site AS site, SUM(properties.reported.temp) AS s, AVG(properties.reported.temp) AS a, MIN(properties.reported.temp) AS lo, MAX(properties.reported.fw) AS hi FROM devices GROUP BY tags.site')).toEqual([
      { site: 'lab', s: 50, a: 25, lo: 20, hi: '1.1' },
      { site: 'plant', s: 0, lo: 'hot', hi: '1.1' },
      { s: 0 },
    ]);
  });

  it('groups by several fields and keeps null apart from missing', () => {
    const q = compile('SELECT tags.a AS a, tags.b AS b, COUNT() AS n FROM devices.modules GROUP BY tags.a, tags.b');
    const agg = q.aggregate();
    for (const t of [{ tags: { a: 1, b: null } }, { tags: { a: 1 } }, { tags: { a: 1, b: null } }, { tags: { a: 2, b: 'x' } }]) agg.add(t);
    expect(JSON.parse(JSON.stringify(agg.rows()))).toEqual([{ a: 1, b: null, n: 2 }, { a: 1, n: 1 }, { a: 2, b: 'x', n: 1 }]);
    expect(q.collection).toBe('devices.modules');
  });
});

describe('unsupported or wrong forms are errors, never ignored', () => {
  it.each([
    ['SELECT *, deviceId FROM devices', "'*' cannot be combined"],
    ['SELECT deviceId, * FROM devices', "'*' cannot be combined"],
    ['SELECT deviceId, COUNT() AS n FROM devices', "'deviceId' must appear in GROUP BY"],
    ['SELECT tags.a AS a FROM devices GROUP BY tags.a', 'GROUP BY needs an aggregate'],
    ['SELECT COUNT(deviceId) AS n FROM devices', "Invalid arguments to function 'COUNT'"],
    ['SELECT SUM() AS n FROM devices', "Invalid arguments to function 'SUM'"],
    ['SELECT LOWER(deviceId) FROM devices', "Unsupported function 'LOWER'"],
    ['SELECT properties.desired.fw, properties.reported.fw FROM devices', "Two selections are named 'fw'"],
    ['SELECT deviceId AS a.b FROM devices', 'expected a name'],
    ['SELECT TOP 0 * FROM devices', 'TOP expects a whole number'],
    ['SELECT TOP x * FROM devices', 'TOP expects a whole number'],
    ['SELECT COUNT() AS n FROM devices GROUP tags.a', "expected 'BY'"],
    ["SELECT COUNT() AS n FROM devices GROUP BY 'x'", 'GROUP BY expects property paths'],
    ['SELECT COUNT() AS n FROM devices ORDER BY deviceId', "unexpected 'ORDER'"],
    ['SELECT * FROM devices.jobs', "expected 'devices' or 'devices.modules'"],
  ])('%s', (text, message) => {
    const q = compileDeviceQuery(text);
    expect(q.ok).toBe(false);
    if (!q.ok) expect(q.error.message).toContain(message);
  });
});

describe('hostile names in projections and groups (property-based)', () => {
  const hostile = fc.constantFrom('__proto__', 'constructor', 'prototype', 'toString', 'hasOwnProperty', 'valueOf', 'x');
  it('builds rows keyed exactly by the selected names, as own properties, and never touches Object.prototype', () => {
    fc.assert(
      fc.property(fc.uniqueArray(hostile, { minLength: 1, maxLength: 4 }), fc.jsonValue(), (names, value) => {
        // Each hostile name both as a property path and as an alias.
        const q = compileDeviceQuery(`SELECT ${names.map((n, i) => `tags.${n} AS a${i}, tags.${n} AS ${n}`).join(', ')} FROM devices`);
        expect(q.ok).toBe(true);
        if (!q.ok) return;
        const tags = Object.create(null) as Record<string, unknown>;
        for (const n of names) tags[n] = value;
        const out = q.value.project({ tags });
        expect(Object.getPrototypeOf(out)).toBeNull();
        expect(Object.keys(out).sort()).toEqual([...names, ...names.map((_n, i) => `a${i}`)].sort());
        for (const n of names) expect(Object.getOwnPropertyDescriptor(out, n)?.value).toEqual(value);
        // Members a plain object inherits are not twin properties.
        expect(Object.keys(q.value.project({ tags: {} }))).toEqual([]);

        const first = names[0] as string;
        const grouped = compileDeviceQuery(`SELECT tags.${first} AS ${first}, COUNT() AS n FROM devices GROUP BY tags.${first}`);
        expect(grouped.ok).toBe(true);
        if (!grouped.ok) return;
        const agg = grouped.value.aggregate();
        agg.add({ tags });
        agg.add({ tags: {} });
        const rows = agg.rows();
        expect(rows.map((r) => r['n'])).toEqual([1, 1]);
        expect(Object.getOwnPropertyDescriptor(rows[0], first)?.value).toEqual(value);
        expect(Object.keys(rows[1] ?? {})).toEqual(['n']);
        expect(Object.getOwnPropertyNames(Object.prototype)).not.toContain('n');
        expect(({} as Record<string, unknown>)['a0']).toBeUndefined();
      }),
      { numRuns: 300 },
    );
  });
});
