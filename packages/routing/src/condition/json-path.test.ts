import { describe, expect, it } from 'vitest';
import { OBJECT, isNewtonsoftDate, parseBodyPath, parseTwinPath, selectPath, selectSimple, type PathSegment } from './json-path.js';

describe('parseBodyPath', () => {
  it('splits names and [n] indexes', () => {
    expect(parseBodyPath('a')).toEqual([{ key: 'a' }]);
    expect(parseBodyPath('machine.temperature')).toEqual([{ key: 'machine' }, { key: 'temperature' }]);
    expect(parseBodyPath('a[0].b[12]')).toEqual([{ key: 'a', index: 0 }, { key: 'b', index: 12 }]);
    expect(parseBodyPath('a1.*')).toEqual([{ key: 'a1' }, { key: '*' }]);
  });

  it('refuses empty paths and segments, all-digit names, bad characters and bad indexes', () => {
    expect(parseBodyPath('')).toBe('$body query cannot be empty');
    for (const bad of ['.a', 'a.', 'a..b', '1', 'a.2', 'a[x]', 'a[]', 'a[1', '[1]', 'a b(', 'a/b', 'a=b', 'a{b', 'a"b', 'a;b', 'a\tb', 'a:b', 'a[1][2]']) {
      expect(parseBodyPath(bad), bad).toMatch(/^Error in \$body query\. Invalid path segment '.*' in '.*'$/);
    }
    expect(parseBodyPath('a.2')).toBe("Error in $body query. Invalid path segment '2' in 'a.2'");
    expect(parseBodyPath('a1')).toEqual([{ key: 'a1' }]);
  });
});

describe('parseTwinPath', () => {
  it('accepts paths below properties.desired, properties.reported and tags', () => {
    expect(parseTwinPath('properties.desired.fw')).toEqual([{ key: 'properties' }, { key: 'desired' }, { key: 'fw' }]);
    expect(parseTwinPath('properties.reported.a.b')).toHaveLength(4);
    expect(parseTwinPath('tags.env')).toEqual([{ key: 'tags' }, { key: 'env' }]);
  });

  it('refuses anything else', () => {
    expect(parseTwinPath('')).toBe('twin_change_includes argument cannot be empty');
    for (const bad of ['properties', 'properties.desired', 'properties.other.x', 'tags', 'tag.x', 'x.tags.y', 'tags..x', 'tags.a b', 'tags.a[0]', 'properties.desired.a(b)', 'desired.properties.x']) {
      expect(parseTwinPath(bad), bad).toBe(`Invalid twin_change_includes path '${bad}': expected properties.desired.<x>, properties.reported.<x> or tags.<x>`);
    }
  });
});

describe('selectSimple and selectPath', () => {
  const doc = { a: { b: 1, arr: [10, { c: 'x' }], n: null, o: {} }, s: 's', list: [1, 2] };
  const p = (path: string): PathSegment[] => {
    const r = parseBodyPath(path);
    if (typeof r === 'string') throw new Error(r);
    return r;
  };
  const both = (path: string) => {
    const segs = p(path);
    const r = selectPath(doc, segs);
    if (!segs.some((s) => s.key === '*')) expect(selectSimple(doc, segs), path).toBe(r);
    return r;
  };

  it('returns leaves, null when nothing matches, OBJECT for objects and arrays', () => {
    expect(both('a.b')).toBe(1);
    expect(both('s')).toBe('s');
    expect(both('a.arr[0]')).toBe(10);
    expect(both('a.arr[1].c')).toBe('x');
    expect(both('a.n')).toBe(null);
    expect(both('a.o')).toBe(OBJECT);
    expect(both('a.arr')).toBe(OBJECT);
    expect(both('a.arr[1]')).toBe(OBJECT);
    expect(both('a')).toBe(OBJECT);
    expect(both('missing')).toBe(null);
    expect(both('a.b.c')).toBe(null);
    expect(both('s.x')).toBe(null);
    expect(both('a.arr[2]')).toBe(null);
    expect(both('a.b[0]')).toBe(null);
    expect(both('list.x')).toBe(null);
    expect(both('a.n.x')).toBe(null);
  });

  it('matches own properties only, case-sensitively', () => {
    expect(both('A.b')).toBe(null);
    expect(both('constructor')).toBe(null);
    expect(both('a.toString')).toBe(null);
    expect(selectSimple([1], [{ key: 'length' }])).toBe(null);
  });

  it('reads at the top of a non-object document as nothing', () => {
    expect(selectSimple(5, [{ key: 'a' }])).toBe(null);
    expect(selectSimple(null, [{ key: 'a' }])).toBe(null);
    expect(selectPath('x', [{ key: '*' }])).toBe(null);
  });

  it('expands * over object values and array items', () => {
    expect(both('a.*')).toBe(OBJECT);
    expect(selectPath({ only: { v: 3 } }, p('*.v'))).toBe(3);
    expect(selectPath({ x: { v: 3 }, y: { v: 4 } }, p('*.v'))).toBe(OBJECT);
    expect(selectPath({ x: { v: 3 }, y: { w: 4 } }, p('*.v'))).toBe(3);
    expect(selectPath({ x: [5] }, p('*'))).toBe(OBJECT);
    expect(selectPath({ x: [5] }, [{ key: '*' }, { key: '*' }])).toBe(5);
    expect(selectPath({ x: [5, 6] }, [{ key: '*', index: 1 }])).toBe(6);
    expect(selectPath({ x: [5, 6] }, [{ key: '*', index: 2 }])).toBe(null);
    expect(selectPath({ x: { y: 1 } }, [{ key: '*', index: 0 }])).toBe(null);
    expect(selectPath({ a: [{ v: 1 }] }, [{ key: 'a' }, { key: '*' }, { key: 'v' }])).toBe(1);
    expect(selectPath({ a: [1, 2] }, [{ key: 'a' }, { key: 'x' }, { key: '*' }])).toBe(null);
    expect(selectPath({ a: { n: null } }, [{ key: '*' }, { key: 'n' }])).toBe(null);
    expect(selectPath({ a: null, b: 2 }, [{ key: '*' }, { key: '*' }])).toBe(null);
    expect(selectPath({}, [{ key: '*' }])).toBe(null);
  });
});

describe('isNewtonsoftDate', () => {
  it('reads ISO 8601 date-times and /Date(…)/ as dates', () => {
    for (const d of ['2026-01-31T23:59:59', '2026-01-31T23:59:59Z', '2026-01-31T23:59:59.1234567Z', '2024-02-29T00:00:00', '2000-02-29T00:00:00+01:00', '2026-06-30T12:00:00-0530', '2026-06-30T12:00:00+05', '0001-01-01T00:00:00', '/Date(0)/', '/Date(-123)/', '/Date(1700000000000+0100)/']) {
      expect(isNewtonsoftDate(d), d).toBe(true);
    }
  });

  it('refuses what is not a valid date-time', () => {
    for (const d of ['', '2026-01-31', '2026-01-31 23:59:59', '2026-13-01T00:00:00', '2026-00-01T00:00:00', '2026-01-00T00:00:00', '2026-01-32T00:00:00', '2026-02-29T00:00:00', '1900-02-29T00:00:00', '2026-04-31T00:00:00', '2026-01-01T24:00:00', '2026-01-01T00:60:00', '2026-01-01T00:00:60', '0000-01-01T00:00:00', '2026-01-01T00:00:00Q', '/Date(x)/', '/Date(1)', '/x/Date(1)/', '/Date(1)/x', 'x2026-01-01T00:00:00', `2026-01-01T00:00:00.${'1'.repeat(21)}`, '2026-1-01T00:00:00Z']) {
      expect(isNewtonsoftDate(d), d).toBe(false);
    }
    expect(isNewtonsoftDate(`2026-01-01T00:00:00.${'1'.repeat(20)}`)).toBe(true);
    expect(isNewtonsoftDate('2026-12-31T00:00:00')).toBe(true);
    expect(isNewtonsoftDate('2026-12-32T00:00:00')).toBe(false);
  });
});
