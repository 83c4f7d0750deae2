import { describe, expect, it, vi } from 'vitest';
import { compileCondition } from './condition.js';
import type { RouteMessage } from './message.js';

const msg: RouteMessage = {
  source: { deviceId: 'dev1', moduleId: 'sensor', output: 'out1' },
  properties: { color: 'Blue', count: '12', empty: '', nothing: null, $shadow: 'app-wins' },
  systemProperties: { messageId: 'm-1', cid: 'corr-7', shadow: 'sys-value', level: 'HIGH' },
  contentType: 'application/json',
  contentEncoding: 'utf-8',
  body: new TextEncoder().encode(
    JSON.stringify({
      temp: 21.5,
      ok: true,
      off: false,
      name: 'pump-7',
      none: null,
      when: '2024-05-01T10:20:30Z',
      day: '2024-05-01',
      list: [3, 5, 8],
      rows: [{ v: 1 }, { v: 2 }],
      nested: { deep: { x: 'y' } },
    }),
  ),
};

/** Evaluates a condition; 'error' when it does not compile. */
function ev(condition: string, message: RouteMessage = msg): boolean | undefined | 'error' {
  const c = compileCondition(condition);
  return c.ok ? c.value.evaluate(message) : 'error';
}

function errorOf(condition: string): { message: string; line: number; column: number } {
  const c = compileCondition(condition);
  if (c.ok) throw new Error(`expected ${condition} not to compile`);
  return { message: c.error.message, line: c.error.line, column: c.error.column };
}

describe('three-valued logic', () => {
  // Rows: left operand, columns: right operand; T/F/U = true/false/undefined, N = null.
  const operand = { T: 'true', F: 'false', U: 'undefined', X: "missing = 'x'" } as const;
  const andTable: [keyof typeof operand, keyof typeof operand, boolean | undefined][] = [
    ['T', 'T', true], ['T', 'F', false], ['T', 'U', undefined], ['T', 'X', undefined],
    ['F', 'T', false], ['F', 'F', false], ['F', 'U', false], ['F', 'X', false],
    ['U', 'T', undefined], ['U', 'F', false], ['U', 'U', undefined], ['X', 'X', undefined],
  ];
  it.each(andTable)('%s AND %s', (l, r, want) => expect(ev(`${operand[l]} AND ${operand[r]}`)).toBe(want));

  const orTable: [keyof typeof operand, keyof typeof operand, boolean | undefined][] = [
    ['T', 'T', true], ['T', 'F', true], ['T', 'U', true], ['T', 'X', true],
    ['F', 'T', true], ['F', 'F', false], ['F', 'U', undefined], ['F', 'X', undefined],
    ['U', 'T', true], ['U', 'F', undefined], ['U', 'U', undefined], ['X', 'X', undefined],
  ];
  it.each(orTable)('%s OR %s', (l, r, want) => expect(ev(`${operand[l]} OR ${operand[r]}`)).toBe(want));

  it('NOT', () => {
    expect(ev('NOT true')).toBe(false);
    expect(ev('not false')).toBe(true);
    expect(ev("NOT (missing = 'x')")).toBe(undefined);
    expect(ev('NOT null')).toBe(true);
    expect(ev('NOT undefined')).toBe('error'); // edgeHub: operand of NOT must be bool
    expect(ev('NOT color')).toBe('error');
  });

  it('null in AND/OR: null AND x is null (false at top level), null OR x is x', () => {
    expect(ev('null')).toBe(false);
    expect(ev('null AND true')).toBe(false);
    expect(ev('(null AND true) = null')).toBe(true);
    expect(ev('null OR true')).toBe(true);
    expect(ev('null OR false')).toBe(false);
    expect(ev('(null OR null) = null')).toBe(true);
    expect(ev('null AND undefined')).toBe('error');
  });

  it('non-boolean top-level values are undefined; the empty condition too', () => {
    expect(ev('1')).toBe(undefined);
    expect(ev("'text'")).toBe(undefined);
    expect(ev('color')).toBe(undefined);
    expect(ev('')).toBe(undefined);
    expect(ev('  /* just a comment */ ')).toBe(undefined);
  });
});

describe('static typing', () => {
  it.each([
    ['count > 10', "Invalid operands to binary operator '>': have 'string' and 'number', expected 'string' and 'string'", 7],
    ["1 + '1' = 2", "Invalid operands to binary operator '+': have 'number' and 'string', expected 'number' and 'number'", 3],
    ['true - 1 = 0', "Invalid operands to binary operator '-': have 'bool' and 'number', expected 'number' and 'number'", 6],
    ['1 = undefined', "Invalid operands to binary operator '=': have 'number' and 'undefined', expected 'number' and 'number'", 3],
    ["color AND true", "Invalid operands to binary operator 'AND': have 'string' and 'bool', expected 'bool' and 'bool'", 7],
    ['- (color) = 1', "Invalid operands to unary operator '-': have 'string', expected 'number'", 1],
    ['color ?? true', "Invalid operands to binary operator '??': have 'string' and 'bool', expected 'string' and 'string'", 7],
    ["'a' || 1 = 'a1'", "Invalid operands to binary operator '||': have 'string' and 'number', expected 'string' and 'string'", 5],
  ])('%s', (condition, message, column) => {
    expect(errorOf(condition)).toEqual({ message, line: 1, column });
  });

  it('$body values are dynamic: they compare with anything but undefined', () => {
    expect(ev('$body.temp > 20')).toBe(true);
    expect(ev("$body.temp = '21.5'")).toBe(false); // no implicit conversion
    expect(ev("$body.temp <> 'x'")).toBe(true);
    expect(ev('$body.temp = undefined')).toBe('error');
    expect(ev('$body.temp % 2 = 1')).toBe('error'); // edgeHub defines no % on $body values
    expect(ev('-$body.temp = 1')).toBe('error'); // '-$body.temp' lexes as one ID: a string property
    expect(ev('- $body.temp < 0')).toBe('error');
  });
});

describe('literals and arithmetic', () => {
  it.each([
    ['3 + 4 * 5 = 23', true],
    ['7 / 2 = 3.5', true],
    ['7 % 4 = 3', true],
    ['-7 % 4 = -3', true],
    ['0x10 = 16', true],
    ['0xFFFFFFFFFFFFFFFF = -1', true],
    ['0100 = 100', true],
    ['1.5e2 = 150', true],
    ['1 / 0 > 1e308', true],
    ['-1 / 0 < 0', true],
    ['is_defined(1 % 0)', false],
    ["'it\\'s' = \"it's\"", true],
    ["'\\u0041' = 'A'", true],
    ["'a' < 'b'", true],
    ["'B' < 'a'", true], // ordinal
    ["'a' = 'A'", false],
    ['true > false', true],
    ['null = null', true],
    ['null <> null', false],
    ['undefined = undefined', undefined],
    ['(1 ?? 2) = 1', true],
    ['(1 % 0 ?? 2) = 2', true],
    ["(missing ?? color) = 'Blue'", true],
    ['(undefined ?? undefined) = undefined', undefined],
  ])('%s', (condition, want) => expect(ev(condition)).toBe(want));
});

describe('properties', () => {
  it('reads application properties case-insensitively; missing ones are undefined', () => {
    expect(ev("color = 'Blue'")).toBe(true);
    expect(ev("COLOR = 'Blue'")).toBe(true);
    expect(ev("color = 'blue'")).toBe(false);
    expect(ev("missing = 'x'")).toBe(undefined);
    expect(ev("missing <> 'x'")).toBe(undefined);
    expect(ev("empty = ''")).toBe(true);
  });

  it('treats null-valued properties as existing with no value', () => {
    expect(ev('is_defined(nothing)')).toBe(true);
    expect(ev('is_null(nothing)')).toBe(true);
    expect(ev("nothing = 'x'")).toBe(undefined);
    expect(ev("'a' || nothing || 'b' = 'ab'")).toBe(true);
  });

  it('reads system properties with $, letting an application property named $x win', () => {
    expect(ev("$messageId = 'm-1'")).toBe(true);
    expect(ev("$MESSAGEID = 'm-1'")).toBe(true);
    expect(ev("$cid = 'corr-7'")).toBe(true);
    expect(ev('is_defined($correlationId)')).toBe(false); // edgeHub stores the correlation id as 'cid'
    expect(ev("$shadow = 'app-wins'")).toBe(true);
    expect(ev("{$shadow} = 'sys-value'")).toBe(true);
    expect(ev("{ $level } = 'HIGH'")).toBe(true);
  });

  it('derives connection ids, output name and content type from the message', () => {
    expect(ev("$connectionDeviceId = 'dev1'")).toBe(true);
    expect(ev("$connectionModuleId = 'sensor'")).toBe(true);
    expect(ev("$outputName = 'out1'")).toBe(true);
    expect(ev("$contentType = 'application/json' AND $contentEncoding = 'utf-8'")).toBe(true);
    expect(ev('NOT is_defined($connectionModuleId)', { source: { deviceId: 'leaf' } })).toBe(true);
  });

  it('rejects names with brackets outside $body', () => {
    expect(ev('is_defined($foo[1])')).toBe(false);
  });
});

describe('$body queries', () => {
  it('reads typed leaf values by path and index', () => {
    expect(ev('$body.temp = 21.5')).toBe(true);
    expect(ev('$BODY.temp >= 21')).toBe(true);
    expect(ev("$body.name = 'pump-7'")).toBe(true);
    expect(ev('$body.ok')).toBe(true);
    expect(ev('$body.ok AND NOT $body.off')).toBe(true);
    expect(ev('$body.list[1] = 5')).toBe(true);
    expect(ev('$body.list[1] + $body.list[2] = 13')).toBe(true);
    expect(ev('$body.rows[1].v = 2')).toBe(true);
    expect(ev("$body.nested.deep.x = 'y'")).toBe(true);
  });

  it('gives null for missing paths and undefined for objects, arrays and dates', () => {
    expect(ev('$body.absent = null')).toBe(true);
    expect(ev("$body.absent <> 'x'")).toBe(true);
    expect(ev('$body.absent')).toBe(undefined);
    expect(ev('$body.list[9] = null')).toBe(true);
    expect(ev('$body.none = null')).toBe(true);
    expect(ev('$body.nested <> null')).toBe(undefined);
    expect(ev('$body.list = null')).toBe(undefined);
    expect(ev("$body.when <> 'x'")).toBe(undefined); // Newtonsoft reads ISO dates as dates
    expect(ev("$body.day = '2024-05-01'")).toBe(true); // a bare date stays a string
  });

  it('lets an application property named like the query win, unless escaped', () => {
    const m: RouteMessage = { ...msg, properties: { '$body.temp': '99' } };
    expect(ev("$body.temp = '99'", m)).toBe(true);
    expect(ev('{$body.temp} = 21.5', m)).toBe(true);
  });

  it('is undefined unless the content type is JSON in a supported encoding', () => {
    expect(ev('$body.temp = 21.5', { ...msg, contentType: 'text/plain' })).toBe(undefined);
    expect(ev('$body.temp = 21.5', { ...msg, contentEncoding: 'latin1' })).toBe(undefined);
    expect(ev('$body.temp = 21.5', { ...msg, contentType: 'APPLICATION/JSON', contentEncoding: 'UTF-8' })).toBe(true);
    expect(ev('$body.temp = 21.5', { ...msg, body: new TextEncoder().encode('not json') })).toBe(undefined);
    expect(ev('$body.temp = 21.5', { ...msg, body: new TextEncoder().encode('[1]') })).toBe(undefined);
    expect(ev('$body.temp = 21.5', { ...msg, body: { temp: 21.5 } })).toBe(true); // already parsed
  });

  it('decodes UTF-16LE and UTF-32LE bodies', () => {
    const text = '{"t": 1}';
    const u16 = new Uint8Array(text.length * 2);
    const u32 = new Uint8Array(text.length * 4);
    [...text].forEach((c, i) => {
      u16[i * 2] = c.charCodeAt(0);
      u32[i * 4] = c.charCodeAt(0);
    });
    expect(ev('$body.t = 1', { ...msg, contentEncoding: 'utf-16', body: u16 })).toBe(true);
    expect(ev('$body.t = 1', { ...msg, contentEncoding: 'UTF-32', body: u32 })).toBe(true);
    expect(ev('$body.t = 1', { ...msg, contentEncoding: 'utf-8', body: u16 })).toBe(undefined);
  });

  it('rejects unsupported paths at compile time', () => {
    for (const bad of ['$body.', '$body.a[]', '$body.a[x]', '$body.a..b', '$body.a[1:2]', '$body.1']) {
      expect(errorOf(`${bad} = 1`).message, bad).toMatch(/Invalid arguments to built-in function|Syntax error/);
    }
  });

  it('parses the body once per message however many conditions read it', () => {
    const parse = vi.spyOn(JSON, 'parse');
    const m: RouteMessage = { ...msg, body: new TextEncoder().encode('{"a": 1}') };
    const c1 = compileCondition('$body.a = 1');
    const c2 = compileCondition('$body.a > 0');
    if (!c1.ok || !c2.ok) throw new Error('compile');
    expect(c1.value.evaluate(m)).toBe(true);
    expect(c2.value.evaluate(m)).toBe(true);
    expect(c1.value.evaluate(m)).toBe(true);
    expect(parse).toHaveBeenCalledTimes(1);
    parse.mockRestore();
  });
});

describe('builtins', () => {
  it.each([
    // type checking
    ["as_number('42') = 42", true],
    ["as_number(' 1,000.5 ') = 1000.5", true],
    ["is_defined(as_number('x'))", false],
    ['as_number(count) * 2 = 24', true],
    ['as_number(3) = 3', true],
    ['as_number($body.temp) = 21.5', true],
    ["as_number($body.name) = 1", undefined],
    ['is_bool(true)', true],
    ['is_bool(1)', false],
    ['is_bool($body.ok)', true],
    ['is_bool($body.temp)', false],
    ['is_bool($body.nested)', undefined],
    ["is_bool(missing = 'x')", undefined],
    ['is_defined(color)', true],
    ['is_defined(missing)', false],
    ['is_defined(null)', true],
    ['is_defined(undefined)', false],
    ['is_defined($body.absent)', true],
    ['is_defined($body.nested)', false],
    ['is_null(null)', true],
    ['is_null(color)', false],
    ['is_null(missing)', false],
    ['is_null(1)', false],
    ['is_null($body.none)', true],
    ['is_null($body.temp)', false],
    ['is_number(1.5)', true],
    ['is_number(1 / 0)', false],
    ["is_number('1')", false],
    ['is_number($body.temp)', true],
    ["is_string('x')", true],
    ['is_string(color)', true],
    ['is_string(missing)', false],
    ['is_string(nothing)', false],
    ['is_string($body.name)', true],
    ['is_string(1)', false],
    // strings
    ["concat('a', color, 'c') = 'aBluec'", true],
    ["is_defined(concat('a', missing))", false],
    ["concat($body.name, '!') = 'pump-7!'", true],
    ["length('héllo') = 5", true],
    ['length(color) = 4', true],
    ['is_defined(length(missing))', false],
    ["lower(color) = 'blue'", true],
    ["upper(color) = 'BLUE'", true],
    ["substring('hello', 1) = 'ello'", true],
    ["substring('hello', 5) = ''", true],
    ["is_defined(substring('hello', 6))", false],
    ["is_defined(substring('hello', -1))", false],
    ["substring('hello', 1, 3) = 'ell'", true],
    ["substring('hello', 1.9, 2.9) = 'el'", true],
    ["is_defined(substring('hello', 5, 0))", false],
    ["is_defined(substring('hello', 2, 4))", false],
    ["index_of('banana', 'na') = 2", true],
    ["index_of('banana', 'x') = -1", true],
    ["starts_with(color, 'Bl')", true],
    ["ends_with(color, 'ue')", true],
    ["contains(color, 'lu')", true],
    ["contains(color, 'LU')", false],
    ["contains(missing, 'x')", undefined],
    // math
    ['abs(-2) = 2', true],
    ['ceiling(1.2) = 2', true],
    ['floor(-1.2) = -2', true],
    ['exp(0) = 1', true],
    ['power(2, 10) = 1024', true],
    ['power(1, 1 / 0) = 1', true],
    ['square(-3) = 9', true],
    ['sign(-0.5) = -1', true],
    ['sign(0) = 0', true],
    ['sqrt(16) = 4', true],
    ['is_defined(sqrt(-1))', false],
    ['abs($body.temp - 20) = 1.5', true],
    ["is_defined(abs(as_number('x')))", false],
  ])('%s', (condition, want) => expect(ev(condition)).toBe(want));

  it('names are case-insensitive', () => {
    expect(ev("IS_DEFINED(COLOR) AND Lower(color) = 'blue'")).toBe(true);
  });

  it.each([
    ['as_number(true) = 1', "Invalid arguments to built-in function 'as_number': as_number(bool)", 1],
    ['nope(1)', "Invalid built-in function 'nope'", 1],
    ['log(1) = 0', "Invalid built-in function 'log'", 1], // IoT Hub only, not on Edge
    ["1 = concat('a')", "Invalid arguments to built-in function 'concat': concat(string)", 5],
    ['is_defined()', "Invalid arguments to built-in function 'is_defined': is_defined()", 1],
    ['abs(color) = 1', "Invalid arguments to built-in function 'abs': abs(string)", 1],
    ["substring('a', 'b') = ''", "Invalid arguments to built-in function 'substring': substring(string, string)", 1],
    ['twin_change_includes(properties.reported.x)', "Invalid built-in function 'twin_change_includes'", 1],
  ])('%s does not compile', (condition, message, column) => {
    expect(errorOf(condition)).toEqual({ message, line: 1, column });
  });

  it('twin_change_includes works only for twin-change routes and checks its path', () => {
    const twin: RouteMessage = {
      source: { kind: 'twinChangeNotification', deviceId: 'dev1' },
      contentType: 'application/json',
      contentEncoding: 'utf-8',
      body: { properties: { reported: { fan: { speed: 3 } } } },
    };
    const c = compileCondition('twin_change_includes(properties.reported.fan) AND NOT twin_change_includes(properties.reported.pump)', { twinChange: true });
    expect(c.ok && c.value.evaluate(twin)).toBe(true);
    const bad = compileCondition('twin_change_includes(properties.reported)', { twinChange: true });
    expect(bad.ok).toBe(false);
    const spaced = compileCondition('twin_change_includes( properties.reported.fan.speed )', { twinChange: true });
    expect(spaced.ok && spaced.value.evaluate(twin)).toBe(true);
  });
});

describe('error positions', () => {
  it('reports line and column of the offending token on later lines', () => {
    expect(errorOf("color = 'x'\n  AND count > 3")).toEqual({
      message: "Invalid operands to binary operator '>': have 'string' and 'number', expected 'string' and 'string'",
      line: 2,
      column: 13,
    });
    expect(errorOf('true AND\n\n   @')).toMatchObject({ line: 3, column: 4 });
  });

  it('rejects trailing tokens after a complete condition', () => {
    expect(errorOf('true true')).toMatchObject({ message: 'Syntax error.', column: 6 });
    expect(errorOf('1 = 1)')).toMatchObject({ message: "Syntax error: unmatched closing ')'", column: 6 });
  });
});
