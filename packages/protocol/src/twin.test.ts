import { describe, expect, it } from 'vitest';
import { ownValue, parseJson } from './json.js';
import { applyPatch, checkPatch, diffAsMergePatch, emptyProperties, jsonEqual, mergeTags, replaceProperties, userProperties } from './twin.js';

const T0 = '2026-01-01T00:00:00.000Z';
const T1 = '2026-01-01T00:00:01.000Z';

describe('twin documents', () => {
  it('merges patches, deletes with null, bumps $version and stamps $metadata', () => {
    const a = applyPatch(emptyProperties(T0), { a: 1, nested: { x: 1, y: 2 } }, T0, { desired: true });
    const b = applyPatch(a, { nested: { y: null, z: 3 }, a: null }, T1, { desired: true });
    expect(userProperties(b)).toEqual({ nested: { x: 1, z: 3 } });
    expect(b.$version).toBe(3);
    expect(b.$metadata).toMatchObject({ $lastUpdated: T1, $lastUpdatedVersion: 3, nested: { $lastUpdated: T1, x: { $lastUpdated: T0 }, z: { $lastUpdated: T1 } } });
    expect(a.$version).toBe(2);
  });

  it('computes the merge patch for whole-document replacement', () => {
    const a = applyPatch(emptyProperties(T0), { keep: 1, drop: 2, obj: { a: 1, b: 2 } }, T0, { desired: true });
    const { doc, patch } = replaceProperties(a, { keep: 1, obj: { a: 1, c: 3 } }, T1, { desired: true });
    expect(patch).toEqual({ drop: null, obj: { b: null, c: 3 } });
    expect(userProperties(doc)).toEqual({ keep: 1, obj: { a: 1, c: 3 } });
    expect(doc.$version).toBe(3);
    expect(diffAsMergePatch({ a: [1] }, { a: [1] })).toEqual({});
  });

  it('refuses keys IoT Hub refuses and deep nesting', () => {
    expect(checkPatch({ 'a.b': 1 }, 'p').ok).toBe(false);
    expect(checkPatch({ $x: 1 }, 'p').ok).toBe(false);
    expect(checkPatch({ 'a b': 1 }, 'p').ok).toBe(false);
    expect(checkPatch({ a: { 'bad\u0001': 1 } }, 'p').ok).toBe(false);
    expect(checkPatch([1], 'p').ok).toBe(false);
    let deep: Record<string, unknown> = { v: 1 };
    for (let i = 0; i < 11; i++) deep = { n: deep };
    expect(checkPatch(deep, 'p')).toMatchObject({ ok: false, error: { message: expect.stringContaining('deeper') as unknown } });
    expect(checkPatch({ $version: 4, ok: { list: [1, 'a', null] } }, 'p').ok).toBe(true);
  });
});

// Keys that are members of Object.prototype: ordinary data for IoT Hub, never a prototype for us.
const PROTO_KEYS = ['__proto__', 'constructor', 'toString', 'hasOwnProperty', 'valueOf', '__defineGetter__', 'isPrototypeOf'];

describe('twin documents with prototype-named keys', () => {
  it('stores __proto__ and friends as data and never touches a prototype', () => {
    const patch = JSON.parse('{"__proto__": {"polluted": true, "status": "x"}, "constructor": {"prototype": {"p": 1}}, "toString": 1}') as Record<string, never>;
    const checked = checkPatch(patch, 'properties.reported');
    expect(checked.ok).toBe(true);
    if (!checked.ok) return;
    const doc = applyPatch(emptyProperties(T0), checked.value, T0, { desired: false });
    expect(({} as Record<string, unknown>)['polluted']).toBeUndefined();
    expect(Object.prototype).not.toHaveProperty('polluted');
    expect(JSON.parse(JSON.stringify(userProperties(doc)))).toEqual(JSON.parse('{"__proto__": {"polluted": true, "status": "x"}, "constructor": {"prototype": {"p": 1}}, "toString": 1}'));
    expect(Object.keys(doc.$metadata).sort()).toEqual(['$lastUpdated', '__proto__', 'constructor', 'toString']);
    // Deleting works like for any key, and keys never present are not invented from the prototype.
    const gone = applyPatch(doc, JSON.parse('{"__proto__": null, "hasOwnProperty": null}') as Record<string, never>, T1, { desired: false });
    expect(Object.keys(userProperties(gone)).sort()).toEqual(['constructor', 'toString']);
  });

  it('diffs and compares by own keys only', () => {
    for (const k of PROTO_KEYS) {
      const a = JSON.parse(`{"${k}": 1}`) as Record<string, never>;
      expect(JSON.stringify(diffAsMergePatch(a, {}))).toBe(`{"${k}":null}`);
      expect(jsonEqual(a, {})).toBe(false);
      expect(jsonEqual({}, a)).toBe(false);
      const tags = mergeTags({}, JSON.parse(`{"${k}": {"a": 1}}`) as Record<string, never>);
      expect(JSON.stringify(tags)).toBe(`{"${k}":{"a":1}}`);
    }
    expect(Object.getPrototypeOf({})).toBe(Object.prototype);
  });

  it('parses JSON into null-prototype objects', () => {
    const v = parseJson('{"__proto__": {"a": 1}, "list": [{"constructor": 2}]}') as Record<string, unknown>;
    expect(Object.getPrototypeOf(v)).toBeNull();
    expect(Object.keys(v)).toEqual(['__proto__', 'list']);
    expect(ownValue(v, 'toString')).toBeUndefined();
    expect(JSON.stringify(v)).toBe('{"__proto__":{"a":1},"list":[{"constructor":2}]}');
    expect(() => parseJson('{')).toThrow(SyntaxError);
  });
});
