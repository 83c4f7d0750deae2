/**
 * The edges of the twin query language: three-valued logic with missing and null operands, every comparison at
 * its boundary and across types, each function true/false/undefined, the lexer's tokens and error positions, and
 * each SELECT rule's refusal with its code.
 */
import { describe, expect, it } from 'vitest';
import { MAX_NESTING, RouteErrorCode } from '../errors.js';
import { compileDeviceQuery, compileTargetCondition, MAX_TOP, QueryShape, type TwinDocument } from './twin-query.js';

const twin: TwinDocument = {
  deviceId: 'edge-01',
  tags: { env: 'prod', floor: 3, on: true, off: false, nothing: null, name: 'say "hi"', list: [1, 2], obj: { a: 1 }, 'a-b': 'dash', 'x.y': 'dotted' },
  properties: { desired: { $version: 4 }, reported: { fw: '1.2.3' } },
};

function matches(condition: string, doc: TwinDocument = twin): boolean {
  const c = compileTargetCondition(condition);
  if (!c.ok) throw new Error(`${condition}: ${c.error.message}`);
  return c.value(doc);
}
function refusal(condition: string): { code: string; message: string; line: number; column: number } {
  const c = compileTargetCondition(condition);
  if (c.ok) throw new Error(`${condition} compiled`);
  return c.error;
}
function compiled(text: string) {
  const q = compileDeviceQuery(text);
  if (!q.ok) throw new Error(`${text}: ${q.error.message}`);
  const v = q.value;
  return { fn: v, top: v.top, shape: v.shape, select: v.select, collection: v.collection, items: v.items, groupBy: v.groupBy };
}
function queryRefusal(text: string): { code: string; message: string; line: number; column: number } {
  const q = compileDeviceQuery(text);
  if (q.ok) throw new Error(`${text} compiled`);
  return q.error;
}

describe('comparisons', () => {
  it.each([
    ['tags.floor < 3', false],
    ['tags.floor <= 3', true],
    ['tags.floor > 3', false],
    ['tags.floor >= 3', true],
    ['tags.floor < 4', true],
    ['tags.floor > 2', true],
    ['tags.floor >= 4', false],
    ['tags.floor <= 2', false],
    ['tags.floor = 3', true],
    ['tags.floor != 3', false],
    ['tags.floor <> 4', true],
    ["tags.env < 'prof'", true],
    ["tags.env > 'pro'", true],
    ["tags.env >= 'prod'", true],
    ["tags.env <= 'prod'", true],
    ["tags.env < 'prod'", false],
    ['tags.on > tags.off', true],
    ['tags.on = true', true],
    ['tags.off = false', true],
    ['tags.on != false', true],
  ])('%s is %s', (condition, want) => expect(matches(condition)).toBe(want));

  it('null equals null (= <= >= hold, < > != do not); against a value only = (false) and != (true) are defined', () => {
    expect(matches('tags.nothing = null')).toBe(true);
    expect(matches('tags.nothing <= null')).toBe(true);
    expect(matches('tags.nothing >= null')).toBe(true);
    expect(matches('tags.nothing != null')).toBe(false);
    expect(matches('tags.nothing < null')).toBe(false);
    expect(matches('tags.nothing > null')).toBe(false);
    // A defined false, not undefined: NOT turns it true.
    expect(matches('NOT (tags.nothing < null)')).toBe(true);
    expect(matches('NOT (tags.nothing != null)')).toBe(true);
    expect(matches("tags.nothing = 'x'")).toBe(false);
    expect(matches("NOT (tags.nothing = 'x')")).toBe(true);
    expect(matches("tags.nothing != 'x'")).toBe(true);
    expect(matches("null != tags.env")).toBe(true);
    // Ordering against null is undefined: neither it nor its negation matches.
    for (const op of ['<', '<=', '>', '>=']) {
      expect(matches(`tags.nothing ${op} 1`)).toBe(false);
      expect(matches(`NOT (tags.nothing ${op} 1)`)).toBe(false);
      expect(matches(`1 ${op} tags.nothing`)).toBe(false);
      expect(matches(`NOT (1 ${op} tags.nothing)`)).toBe(false);
    }
  });

  it('missing operands, other types and non-scalars are undefined: neither the comparison nor its negation matches', () => {
    for (const c of ['tags.missing = 1', 'tags.missing != 1', '1 = tags.missing', "tags.floor = '3'", "tags.floor != '3'", 'tags.on = 1', 'tags.list = 1', 'tags.obj = 1', 'tags.list != 1', 'tags.obj != null', 'tags.missing = null', 'tags.missing != null']) {
      expect(matches(c), c).toBe(false);
      expect(matches(`NOT (${c})`), `NOT (${c})`).toBe(false);
    }
  });
});

describe('three-valued AND, OR, NOT', () => {
  const U = 'tags.missing = 1';
  it.each([
    [`${U} OR tags.on = true`, true],
    [`tags.on = true OR ${U}`, true],
    [`NOT (${U} OR tags.on = false)`, false],
    [`NOT (tags.on = false OR ${U})`, false],
    [`NOT (tags.on = false OR tags.off = true)`, true],
    [`${U} AND tags.on = false`, false],
    [`NOT (${U} AND tags.on = false)`, true],
    [`NOT (tags.on = false AND ${U})`, true],
    [`NOT (${U} AND tags.on = true)`, false],
    [`NOT (tags.on = true AND ${U})`, false],
    [`tags.on = true AND tags.floor = 3 AND tags.env = 'prod'`, true],
    [`tags.on = true AND tags.floor = 3 AND tags.env = 'dev'`, false],
    [`tags.on = false OR tags.floor = 4 OR tags.env = 'prod'`, true],
    [`tags.on = false OR tags.floor = 4 OR tags.env = 'dev'`, false],
    [`NOT NOT tags.on = true`, true],
    [`NOT NOT (${U})`, false],
    [`not tags.on = false and tags.floor = 3 or tags.env = 'dev'`, true],
  ])('%s is %s', (condition, want) => expect(matches(condition)).toBe(want));
});

describe('IN and NOT IN', () => {
  it.each([
    ['tags.floor IN [1, 3]', true],
    ['tags.floor IN [1, 2]', false],
    ["tags.floor IN ['3']", false],
    ['tags.floor NOT IN [1, 2]', true],
    ['tags.floor NOT IN [3]', false],
    ['tags.nothing IN [null]', true],
    ['tags.nothing NOT IN [1]', true],
    ['tags.missing IN [1]', false],
    ['tags.missing NOT IN [1]', false],
    ['NOT (tags.missing IN [1])', false],
    ['tags.floor IN [tags.missing, 3]', true],
    ['tags.floor not in []', true],
  ])('%s is %s', (condition, want) => expect(matches(condition)).toBe(want));
});

describe('functions', () => {
  it.each([
    ['IS_DEFINED(tags.nothing)', true],
    ['IS_DEFINED(tags.missing)', false],
    ['NOT IS_DEFINED(tags.missing)', true],
    ['IS_NULL(tags.nothing)', true],
    ['IS_NULL(tags.env)', false],
    ['NOT IS_NULL(tags.env)', true],
    ['NOT IS_NULL(tags.missing)', false],
    ['IS_STRING(tags.env)', true],
    ['NOT IS_STRING(tags.floor)', true],
    ['NOT IS_STRING(tags.missing)', false],
    ['IS_NUMBER(tags.floor)', true],
    ['NOT IS_NUMBER(tags.env)', true],
    ['NOT IS_NUMBER(tags.missing)', false],
    ['IS_BOOL(tags.off)', true],
    ['NOT IS_BOOL(tags.floor)', true],
    ['NOT IS_BOOL(tags.missing)', false],
    ["STARTS_WITH(tags.env, 'pr')", true],
    ["NOT STARTS_WITH(tags.env, 'od')", true],
    ["NOT STARTS_WITH(tags.floor, '3')", false],
    ["NOT STARTS_WITH('x', tags.floor)", false],
    ["ENDS_WITH(tags.env, 'od')", true],
    ["NOT ENDS_WITH(tags.env, 'pr')", true],
    ["NOT ENDS_WITH(tags.floor, '3')", false],
    ["NOT ENDS_WITH('x', tags.floor)", false],
    ["CONTAINS(tags.env, 'ro')", true],
    ["NOT CONTAINS(tags.env, 'x')", true],
    ["NOT CONTAINS(tags.missing, 'x')", false],
    ["NOT CONTAINS('x', tags.missing)", false],
    ['is_number(tags.floor)', true],
  ])('%s is %s', (condition, want) => expect(matches(condition)).toBe(want));

  it.each([
    ['IS_NULL()', 'IS_NULL', 1, 0],
    ['IS_STRING(tags.a, tags.b)', 'IS_STRING', 1, 2],
    ['IS_NUMBER()', 'IS_NUMBER', 1, 0],
    ['IS_BOOL(tags.a, 1)', 'IS_BOOL', 1, 2],
    ["STARTS_WITH(tags.a)", 'STARTS_WITH', 2, 1],
    ["ENDS_WITH(tags.a, 'x', 'y')", 'ENDS_WITH', 2, 3],
    ['CONTAINS()', 'CONTAINS', 2, 0],
  ])('%s: wrong arity', (condition, name, want, got) => {
    expect(refusal(condition)).toMatchObject({ code: RouteErrorCode.Arguments, message: `Invalid arguments to function '${name}': expected ${want}, got ${got}`, column: 1 });
  });

  it('a function name without a call is a property name', () => {
    expect(matches('is_defined = 1', { is_defined: 1 })).toBe(true);
    expect(refusal('IS_DEFINED(tags.a')).toMatchObject({ code: RouteErrorCode.Syntax, message: "Syntax error: expected ')'" });
  });
});

describe('lexer', () => {
  it('strings in either quote, doubled quotes escaping; numbers signed, fractional, exponents', () => {
    expect(matches('tags.name = "say ""hi"""')).toBe(true);
    expect(matches("tags.name = 'say \"hi\"'")).toBe(true);
    expect(matches("'it''s' = 'it''s'")).toBe(true);
    expect(matches("'' = ''")).toBe(true);
    expect(matches('tags.floor = 3.0')).toBe(true);
    expect(matches('tags.floor = 0.3e1')).toBe(true);
    expect(matches('tags.floor = 30E-1')).toBe(true);
    expect(matches('tags.floor = 3e+0')).toBe(true);
    expect(matches('tags.floor > -4')).toBe(true);
    expect(matches('-4 < tags.floor')).toBe(true);
    expect(matches('.5 < tags.floor')).toBe(true);
    expect(matches('tags.floor > -.5')).toBe(true);
    expect(matches('tags.floor = 3.')).toBe(true);
  });

  it('names: letters, digits, _, $ and -, [[…]] for anything; top-level twin fields in any case, nested names exactly', () => {
    expect(matches("tags.a-b = 'dash'")).toBe(true);
    expect(matches("tags.[[x.y]] = 'dotted'")).toBe(true);
    expect(matches("[[tags]].env = 'prod'")).toBe(true);
    expect(matches('properties.desired.$version = 4')).toBe(true);
    expect(matches("DEVICEID = 'edge-01'")).toBe(true);
    expect(matches("Tags.env = 'prod'")).toBe(true);
    expect(matches("tags.ENV = 'prod'")).toBe(false);
    expect(matches("properties.REPORTED.fw = '1.2.3'")).toBe(false);
    expect(matches("tags.env = 'prod' AND tags.floor = 3")).toBe(true);
    expect(matches("tags.env = 'prod' aNd tags.floor = 3")).toBe(true);
    expect(matches('tags.on = TRUE AND tags.nothing = NULL AND tags.off = False')).toBe(true);
  });

  it('whitespace of any kind separates; errors give the line and column', () => {
    expect(matches("tags.env\t=\r\n'prod'")).toBe(true);
    expect(refusal("tags.env = 'prod'\nAND tags.floor = @")).toMatchObject({ message: "Syntax error: invalid symbol '@'", line: 2, column: 18 });
    expect(refusal("tags.a = 'x'\n\n  AND")).toMatchObject({ message: 'Syntax error: unexpected end of query', line: 3, column: 6 });
    expect(refusal("\n tags.a = 'x")).toMatchObject({ message: 'Syntax error: unterminated string', line: 2, column: 11 });
    expect(refusal('tags.a = "x')).toMatchObject({ message: 'Syntax error: unterminated string', column: 10 });
    expect(refusal("tags.a = 'x''")).toMatchObject({ message: 'Syntax error: unterminated string' });
  });

  it('refuses bad names and stray symbols', () => {
    expect(refusal("tags.[[x = 'v'")).toMatchObject({ code: RouteErrorCode.Syntax, message: "Syntax error: unterminated '[[' name", column: 6 });
    expect(refusal("tags. = 'v'")).toMatchObject({ message: "Syntax error: invalid symbol '.'", column: 5 });
    expect(refusal("tags.a. = 'v'")).toMatchObject({ message: "Syntax error: invalid symbol '.'", column: 7 });
    expect(refusal('tags.a = - 1')).toMatchObject({ message: "Syntax error: invalid symbol '-'", column: 10 });
    expect(refusal('tags.a = 1 ! 2')).toMatchObject({ message: "Syntax error: invalid symbol '!'" });
    expect(refusal("tags.a == 'x'")).toMatchObject({ message: "Syntax error: unexpected '='" });
    expect(refusal('tags.a = AND')).toMatchObject({ message: "Syntax error: unexpected 'AND'", column: 10 });
    expect(refusal('tags.a = )')).toMatchObject({ message: "Syntax error: unexpected ')'", column: 10 });
    expect(refusal("tags.a = 'x')")).toMatchObject({ message: "Syntax error: unexpected ')'", column: 13 });
    expect(refusal("tags.a IN 'x'")).toMatchObject({ message: "Syntax error: expected '['" });
    expect(refusal('tags.a IN [1, 2')).toMatchObject({ message: "Syntax error: expected ']'" });
    expect(refusal('tags.a NOT 1')).toMatchObject({ message: 'Syntax error: expected a comparison operator', column: 8 });
    expect(refusal('tags.a * 1')).toMatchObject({ message: 'Syntax error: expected a comparison operator' });
    expect(refusal('   ')).toMatchObject({ message: 'Syntax error: empty target condition' });
    expect(refusal('* AND tags.a = 1')).toMatchObject({ code: RouteErrorCode.Syntax });
  });

  it('bounds nesting at exactly the limit, for parentheses and NOT', () => {
    const parens = (n: number) => `${'('.repeat(n)}tags.floor = 3${')'.repeat(n)}`;
    expect(matches(parens(MAX_NESTING))).toBe(true);
    expect(refusal(parens(MAX_NESTING + 1))).toMatchObject({ code: RouteErrorCode.TooDeep, message: `Query nested too deeply (limit ${MAX_NESTING})`, column: MAX_NESTING + 1 });
    const nots = (n: number) => `${'NOT '.repeat(n)}tags.floor = 3`;
    expect(matches(nots(MAX_NESTING))).toBe(true);
    expect(refusal(nots(MAX_NESTING + 1))).toMatchObject({ code: RouteErrorCode.TooDeep });
    // Nesting counts depth, not how many: many groups side by side are fine.
    expect(matches(Array.from({ length: MAX_NESTING + 5 }, () => '(tags.floor = 3)').join(' AND '))).toBe(true);
  });
});

describe('compileDeviceQuery', () => {
  it('TOP takes a whole number from 1 to MAX_TOP', () => {
    expect(compiled('SELECT TOP 1 * FROM devices').top).toBe(1);
    expect(compiled(`SELECT TOP ${MAX_TOP} * FROM devices`).top).toBe(MAX_TOP);
    for (const bad of ['0', String(MAX_TOP + 1), '1.5', '-1', "'1'", 'deviceId']) {
      expect(queryRefusal(`SELECT TOP ${bad} * FROM devices`), bad).toMatchObject({ code: RouteErrorCode.Syntax, message: `Syntax error: TOP expects a whole number from 1 to ${MAX_TOP}`, column: 12 });
    }
    expect(compiled('SELECT * FROM devices').top).toBeUndefined();
  });

  it('shapes and what is selected', () => {
    const { fn: _star, ...star } = compiled('select * from DEVICES');
    expect(star).toMatchObject({ shape: QueryShape.Twins, select: ['*'], collection: 'devices', items: [], groupBy: [] });
    const { fn: _proj, ...proj } = compiled('SELECT deviceId, properties.reported.fw AS fw FROM devices.MODULES');
    expect(proj).toMatchObject({ shape: QueryShape.Projection, select: ['deviceId', 'properties.reported.fw'], collection: 'devices.modules' });
    const { fn: _agg, ...agg } = compiled('SELECT COUNT(), SUM(tags.floor), tags.env FROM devices GROUP BY tags.env');
    expect(agg).toMatchObject({ shape: QueryShape.Aggregate, select: ['count()', 'sum(tags.floor)', 'tags.env'], groupBy: [['tags', 'env']] });
    expect(agg.items.map((i) => i.name)).toEqual(['$1', '$2', 'env']);
    expect(compiled('SELECT COUNT(), COUNT() FROM devices').items.map((i) => i.name)).toEqual(['$1', '$2']);
    // Top-level field names are canonical wherever they appear.
    expect(compiled('SELECT COUNT() AS n, TAGS.env FROM devices GROUP BY tags.env').groupBy).toEqual([['tags', 'env']]);
    expect(compiled('SELECT DEVICEID FROM devices').select).toEqual(['deviceId']);
  });

  it('WHERE filters; without it everything matches; what follows must be GROUP BY or nothing', () => {
    const q = compileDeviceQuery("SELECT * FROM devices WHERE tags.env = 'prod'");
    expect(q.ok && q.value(twin)).toBe(true);
    expect(q.ok && q.value({ tags: { env: 'dev' } })).toBe(false);
    expect(q.ok && q.value({})).toBe(false);
    const all = compileDeviceQuery('SELECT * FROM devices');
    expect(all.ok && all.value({})).toBe(true);
    expect(queryRefusal("SELECT * FROM devices WHERE tags.env = 'prod' tags.x = 1")).toMatchObject({ message: "Syntax error: unexpected 'tags.x'" });
    expect(queryRefusal('SELECT * FROM devices deviceId')).toMatchObject({ message: "Syntax error: unexpected 'deviceId'", column: 23 });
  });

  it('refuses each malformed form with its code and position', () => {
    expect(queryRefusal('deviceId FROM devices')).toMatchObject({ code: RouteErrorCode.Syntax, message: "Syntax error: expected 'SELECT'", column: 1 });
    expect(queryRefusal('SELECT deviceId devices')).toMatchObject({ message: "Syntax error: expected 'FROM'", column: 17 });
    expect(queryRefusal('SELECT * FROM')).toMatchObject({ message: "Syntax error: expected 'devices' or 'devices.modules'" });
    expect(queryRefusal("SELECT * FROM 'devices'")).toMatchObject({ message: "Syntax error: expected 'devices' or 'devices.modules'" });
    expect(queryRefusal('SELECT *, * FROM devices')).toMatchObject({ message: "Syntax error: '*' cannot be combined with other selections", column: 11 });
    expect(queryRefusal('SELECT 1 FROM devices')).toMatchObject({ message: "Syntax error: expected '*', a property or an aggregate (COUNT(), SUM(…), …) to select", column: 8 });
    expect(queryRefusal('SELECT COUNT(deviceId) FROM devices')).toMatchObject({ code: RouteErrorCode.Arguments, message: "Invalid arguments to function 'COUNT': expected 0, got 1", column: 8 });
    expect(queryRefusal('SELECT COUNT(1) FROM devices')).toMatchObject({ code: RouteErrorCode.Syntax, message: "Syntax error: expected ')' (COUNT takes no argument)" });
    expect(queryRefusal('SELECT SUM(1) FROM devices')).toMatchObject({ code: RouteErrorCode.Syntax, message: "Syntax error: expected a property and ')'" });
    expect(queryRefusal('SELECT MAX() FROM devices')).toMatchObject({ code: RouteErrorCode.Arguments, message: "Invalid arguments to function 'MAX': expected a property" });
    expect(queryRefusal('SELECT LOWER(deviceId) FROM devices')).toMatchObject({ code: RouteErrorCode.UnknownFunction, column: 8 });
    expect(queryRefusal('SELECT deviceId AS 1 FROM devices')).toMatchObject({ message: 'Syntax error: expected a name (letters, digits, _) after AS', column: 20 });
    expect(queryRefusal('SELECT deviceId AS a-b FROM devices')).toMatchObject({ message: 'Syntax error: expected a name (letters, digits, _) after AS' });
    expect(queryRefusal('SELECT deviceId AS $x FROM devices')).toMatchObject({ message: 'Syntax error: expected a name (letters, digits, _) after AS' });
    expect(queryRefusal('SELECT deviceId AS id, tags.id FROM devices')).toMatchObject({ message: "Two selections are named 'id': give one of them another name with AS", column: 1 });
    expect(queryRefusal('SELECT tags.env FROM devices GROUP BY tags.env')).toMatchObject({ message: 'GROUP BY needs an aggregate in SELECT, e.g. COUNT() AS n', column: 30 });
    expect(queryRefusal('SELECT COUNT() AS n, tags.env FROM devices GROUP BY tags.site')).toMatchObject({ message: "'tags.env' must appear in GROUP BY to be selected next to an aggregate", column: 1 });
    expect(queryRefusal('SELECT COUNT() AS n FROM devices GROUP BY tags.a,')).toMatchObject({ message: 'Syntax error: GROUP BY expects property paths', column: 50 });
    expect(queryRefusal('SELECT COUNT() AS n FROM devices GROUP BY')).toMatchObject({ message: 'Syntax error: GROUP BY expects property paths' });
  });

  it('GROUP BY several paths, and aliases of letters, digits and _', () => {
    const q = compiled('SELECT COUNT() AS n_1, tags.env AS E2, tags.floor FROM devices GROUP BY tags.env, tags.floor');
    expect(q.groupBy).toEqual([['tags', 'env'], ['tags', 'floor']]);
    expect(q.items.map((i) => i.name)).toEqual(['n_1', 'E2', 'floor']);
  });
});
