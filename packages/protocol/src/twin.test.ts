import { describe, expect, it } from 'vitest';
import { applyPatch, checkPatch, diffAsMergePatch, emptyProperties, replaceProperties, userProperties } from './twin.js';

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
