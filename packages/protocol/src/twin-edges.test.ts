import { describe, expect, it } from 'vitest';
import { parseJson } from './json.js';
import type { JsonObject } from './json.js';
import { TwinLimits, applyPatch, checkPatch, diffAsMergePatch, emptyProperties, jsonEqual, mergeTags, replaceProperties, userBytes, userProperties } from './twin.js';

const T0 = '2026-01-01T00:00:00.000Z';
const T1 = '2026-01-02T00:00:00.000Z';
const obj = (text: string): JsonObject => parseJson(text) as JsonObject;
const nest = (depth: number): JsonObject => {
  let v: JsonObject = obj('{"leaf":1}');
  for (let i = 1; i < depth; i++) v = obj(`{"k":${JSON.stringify(v)}}`);
  return v;
};

describe('checkPatch rules', () => {
  it('refuses non-objects, naming where', () => {
    for (const p of [null, [], 'x', 1]) expect(checkPatch(p, 'desired')).toEqual({ ok: false, error: { path: 'desired', message: 'must be a JSON object' } });
  });

  it('refuses keys with . $ space, control characters or empty, with their path', () => {
    for (const k of ['a.b', 'a$b', 'a b', 'a\u0001b', 'a\u001fb', '']) {
      const r = checkPatch(obj(`{"x":{${JSON.stringify(k)}:1}}`), 'desired');
      expect(r.ok, JSON.stringify(k)).toBe(false);
      if (!r.ok) expect(r.error.path).toBe(`desired.x.${k}`);
    }
    expect(checkPatch(obj('{"a\u0020b":1}'), 'p').ok).toBe(false);
    expect(checkPatch(obj('{"a\\u007fb":1,"é-_~":2}'), 'p').ok).toBe(true);
  });

  it('tolerates $version and $metadata at the top only, without checking inside', () => {
    expect(checkPatch(obj('{"$version":3,"$metadata":{"a.b":1},"x":1}'), 'p').ok).toBe(true);
    expect(checkPatch(obj('{"x":{"$version":3}}'), 'p').ok).toBe(false);
  });

  it('allows keys of 1024 bytes, not 1025', () => {
    expect(TwinLimits.maxKeyBytes).toBe(1024);
    expect(checkPatch(obj(`{"${'k'.repeat(1024)}":1}`), 'p').ok).toBe(true);
    const r = checkPatch(obj(`{"${'k'.repeat(1025)}":1}`), 'p');
    expect(r).toEqual({ ok: false, error: { path: `p.${'k'.repeat(32)}…`, message: 'keys are limited to 1 KB' } });
    expect(checkPatch(obj(`{"${'é'.repeat(513)}":1}`), 'p').ok).toBe(false);
  });

  it('allows 10 levels of nesting, not 11, counting arrays', () => {
    expect(TwinLimits.maxDepth).toBe(10);
    expect(checkPatch(nest(9), 'p').ok).toBe(true);
    expect(checkPatch(nest(10), 'p').ok).toBe(false);
    expect(checkPatch(obj('{"a":[[[[[[[[1]]]]]]]]}'), 'p').ok).toBe(true);
    const r = checkPatch(obj('{"a":[[[[[[[[[1]]]]]]]]]}'), 'p');
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.error.path).toBe('p.a[0][0][0][0][0][0][0][0][0]');
    expect(checkPatch(obj('{"a":[1,{"b.c":1}]}'), 'p')).toMatchObject({ ok: false, error: { path: 'p.a[1].b.c' } });
  });

  it('returns a null-prototype copy', () => {
    const src = obj('{"a":{"b":1}}');
    const r = checkPatch(src, 'p');
    expect(r.ok && r.value).toEqual(src);
    expect(r.ok && r.value !== src && Object.getPrototypeOf(r.value)).toBeNull();
  });

  it('has IoT Hub size limits', () => {
    expect(TwinLimits).toEqual({ desiredBytes: 32768, reportedBytes: 32768, tagsBytes: 8192, maxDepth: 10, maxKeyBytes: 1024 });
  });
});

describe('documents and patches', () => {
  it('emptyProperties is version 1 stamped now; userProperties drops $ fields; userBytes counts the user part', () => {
    const d = emptyProperties(T0);
    expect({ ...d, $metadata: { ...d.$metadata } }).toEqual({ $version: 1, $metadata: { $lastUpdated: T0 } });
    const doc = { ...emptyProperties(T0), a: 1 };
    expect({ ...userProperties(doc) }).toEqual({ a: 1 });
    expect(userBytes(doc)).toBe(Buffer.byteLength('{"a":1}'));
  });

  it('applyPatch stamps reported without a version, desired with one, and leaves the input alone', () => {
    const d0 = emptyProperties(T0);
    const r = applyPatch(d0, obj('{"a":{"b":1},"c":2}'), T1, { desired: false });
    expect(r.$version).toBe(2);
    expect(JSON.parse(JSON.stringify(r.$metadata))).toEqual({ $lastUpdated: T1, a: { $lastUpdated: T1, b: { $lastUpdated: T1 } }, c: { $lastUpdated: T1 } });
    const d = applyPatch(r, obj('{"a":{"x":3},"c":null,"$version":99}'), T1, { desired: true });
    expect(d.$version).toBe(3);
    expect(JSON.parse(JSON.stringify(userProperties(d)))).toEqual({ a: { b: 1, x: 3 } });
    expect(JSON.parse(JSON.stringify(d.$metadata))).toEqual({
      $lastUpdated: T1,
      $lastUpdatedVersion: 3,
      a: { $lastUpdated: T1, $lastUpdatedVersion: 3, b: { $lastUpdated: T1 }, x: { $lastUpdated: T1, $lastUpdatedVersion: 3 } },
    });
    expect(d0.$version).toBe(1);
    expect(Object.keys(d0)).not.toContain('a');
  });

  it('replaces a scalar by an object with fresh metadata, and repairs a missing $metadata', () => {
    const r = applyPatch({ $version: 4, a: 1 } as never, obj('{"a":{"b":2}}'), T1, { desired: false });
    expect(JSON.parse(JSON.stringify(r))).toEqual({ $version: 5, a: { b: 2 }, $metadata: { $lastUpdated: T1, a: { $lastUpdated: T1, b: { $lastUpdated: T1 } } } });
  });

  it('replaceProperties keeps the version line and sends the diff', () => {
    const d = applyPatch(emptyProperties(T0), obj('{"a":1,"b":{"c":1,"d":2}}'), T0, { desired: true });
    const { doc, patch } = replaceProperties(d, obj('{"b":{"c":1,"d":3},"e":[1]}'), T1, { desired: true });
    expect(JSON.parse(JSON.stringify(patch))).toEqual({ a: null, b: { d: 3 }, e: [1] });
    expect(doc.$version).toBe(d.$version + 1);
    expect(JSON.parse(JSON.stringify(userProperties(doc)))).toEqual({ b: { c: 1, d: 3 }, e: [1] });
  });

  it('diffAsMergePatch sees array changes of the same length and object-to-scalar changes', () => {
    expect({ ...diffAsMergePatch(obj('{"a":[1]}'), obj('{"a":[2]}')) }).toEqual({ a: [2] });
    expect({ ...diffAsMergePatch(obj('{"a":{"b":1}}'), obj('{"a":1}')) }).toEqual({ a: 1 });
    expect({ ...diffAsMergePatch(obj('{"a":{"b":1}}'), obj('{"a":{"b":1}}')) }).toEqual({});
  });

  it('jsonEqual compares deeply, by own keys, order ignored', () => {
    expect(jsonEqual(obj('{"a":1,"b":[1,{"c":2}]}'), obj('{"b":[1,{"c":2}],"a":1}'))).toBe(true);
    expect(jsonEqual([1, 2], [1, 3])).toBe(false);
    expect(jsonEqual([1], [1, 1])).toBe(false);
    expect(jsonEqual(obj('{"a":1}'), obj('{"a":1,"b":1}'))).toBe(false);
    expect(jsonEqual(obj('{"a":1}'), obj('{"b":1}'))).toBe(false);
    expect(jsonEqual(obj('{"a":1}'), obj('{"a":2}'))).toBe(false);
    expect(jsonEqual(null, obj('{}'))).toBe(false);
    expect(jsonEqual([], obj('{}'))).toBe(false);
    expect(jsonEqual(undefined, null)).toBe(false);
    expect(jsonEqual(1, 1)).toBe(true);
  });

  it('mergeTags merges and deletes without metadata', () => {
    expect(JSON.parse(JSON.stringify(mergeTags(obj('{"a":{"b":1},"c":1}'), obj('{"a":{"d":2},"c":null}'))))).toEqual({ a: { b: 1, d: 2 } });
  });
});
