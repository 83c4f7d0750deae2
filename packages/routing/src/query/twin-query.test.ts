import { describe, expect, it } from 'vitest';
import { compileDeviceQuery, compileTargetCondition, type TwinDocument } from './twin-query.js';

const twin: TwinDocument = {
  deviceId: 'edge-01',
  tags: { environment: 'prod', location: { region: 'westus' }, floor: 3 },
  properties: { desired: { $version: 4 }, reported: { lastDesiredVersion: 4, lastDesiredStatus: { code: 200 } } },
  capabilities: { iotEdge: true },
  configurations: { 'prod-base': { status: 'Applied' } },
};

function matches(condition: string, doc: TwinDocument = twin): boolean | 'error' {
  const c = compileTargetCondition(condition);
  return c.ok ? c.value(doc) : 'error';
}

describe('compileTargetCondition', () => {
  it.each([
    ["tags.environment='prod'", true],
    ['tags.environment="prod"', true],
    ["tags.environment = 'dev'", false],
    ["tags.environment != 'dev'", true],
    ["tags.environment <> 'prod'", false],
    ["tags.location.region = 'westus' AND tags.environment = 'prod'", true],
    ["tags.environment = 'dev' OR tags.floor >= 3", true],
    ["NOT (tags.environment = 'dev')", true],
    ["deviceId = 'edge-01'", true],
    ['capabilities.iotEdge = true', true],
    ['tags.floor > 2 AND tags.floor < 4 AND tags.floor <= 3', true],
    ["tags.missing = 'x'", false],
    ["tags.missing != 'x'", false], // undefined never matches
    ["NOT (tags.missing = 'x')", false],
    ["tags.floor = '3'", false], // no conversion between types
    ["tags.environment IN ['dev', 'prod']", true],
    ["tags.environment NOT IN ['dev', 'prod']", false],
    ["tags.environment IN []", false],
    ['IS_DEFINED(tags.location)', true],
    ['is_defined(tags.nope)', false],
    ["STARTS_WITH(deviceId, 'edge')", true],
    ['properties.desired.$version = properties.reported.lastDesiredVersion', true],
    ['properties.reported.lastDesiredStatus.code = 200', true],
    ["configurations.[[prod-base]].status = 'Applied'", true],
    ["tags.name = 'it''s'", false],
    ['*', true],
  ])('%s', (condition, want) => expect(matches(condition)).toBe(want));

  it('matches a twin with an escaped quote', () => {
    expect(matches("tags.name = 'it''s'", { tags: { name: "it's" } })).toBe(true);
  });

  it.each([
    ['', 'Syntax error: empty target condition', 1],
    ["tags.a = 'x", 'Syntax error: unterminated string', 10],
    ["tags.a = 'x' AND", 'Syntax error: unexpected end of query', 17],
    ["tags.a 'x'", 'Syntax error: expected a comparison operator', 8],
    ["(tags.a = 'x'", "Syntax error: missing closing ')'", 1],
    ["tags.a = 'x' tags.b = 'y'", "Syntax error: unexpected 'tags.b'", 14],
    ['tags.a = @', "Syntax error: invalid symbol '@'", 10],
    ['IS_DEFINED(tags.a, tags.b)', "Invalid arguments to function 'IS_DEFINED': expected 1, got 2", 1],
  ])('rejects %j', (condition, message, column) => {
    const c = compileTargetCondition(condition);
    expect(c.ok).toBe(false);
    if (!c.ok) expect(c.error).toMatchObject({ message, line: 1, column });
  });
});

describe('compileDeviceQuery', () => {
  it('compiles metric queries into predicates that know their collection', () => {
    const q = compileDeviceQuery('SELECT deviceId FROM devices WHERE properties.reported.lastDesiredStatus.code = 200');
    expect(q.ok).toBe(true);
    if (!q.ok) return;
    expect(q.value.collection).toBe('devices');
    expect(q.value.select).toEqual(['deviceId']);
    expect(q.value(twin)).toBe(true);
    expect(q.value({ deviceId: 'x' })).toBe(false);
  });

  it('supports devices.modules and queries without WHERE', () => {
    const m = compileDeviceQuery("select deviceId from devices.modules where moduleId = '$edgeAgent' and configurations.[[prod-base]].status = 'Applied'");
    expect(m.ok && m.value.collection).toBe('devices.modules');
    expect(m.ok && m.value({ ...twin, moduleId: '$edgeAgent' })).toBe(true);
    const all = compileDeviceQuery('SELECT * FROM devices');
    expect(all.ok && all.value({})).toBe(true);
  });

  it.each(['SELECT FROM devices', 'SELECT deviceId devices', 'SELECT deviceId FROM things', 'SELECT * FROM devices WHERE', 'SELECT * FROM devices LIMIT 3'])('rejects %j', (q) => {
    expect(compileDeviceQuery(q).ok).toBe(false);
  });
});

// Queries of 50,000–100,000 tokens: a generous timeout, for a loaded machine and for mutation testing's instrumented code.
describe('long and deep queries', { timeout: 180_000 }, () => {
  it('reads long names and bounds nesting', () => {
    const long = 'x'.repeat(5000);
    expect(matches(`tags.${long} = 'v'`, { tags: { [long]: 'v' } })).toBe(true);
    expect(compileTargetCondition(`${'('.repeat(100_000)}tags.a = 'x'`).ok).toBe(false);
    expect(compileTargetCondition(`${'NOT '.repeat(100_000)}tags.a = 'x'`).ok).toBe(false);
    const chain = Array.from({ length: 50_000 }, (_v, i) => `tags.a = '${i}'`).join(' OR ');
    expect(matches(chain, { tags: { a: '49999' } })).toBe(true);
  });
});
