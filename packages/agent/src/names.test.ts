import { createHash } from 'node:crypto';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { isDnsLabel, toDnsLabel, toLabelValue } from './names.js';

const hash8 = (s: string) => createHash('sha256').update(s).digest('hex').slice(0, 8);
const LABEL_VALUE = /^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$/;

describe('isDnsLabel', () => {
  it('accepts RFC 1123 labels up to 63 characters and nothing else', () => {
    expect(isDnsLabel('a')).toBe(true);
    expect(isDnsLabel('filter-2')).toBe(true);
    expect(isDnsLabel('a'.repeat(63))).toBe(true);
    expect(isDnsLabel('a'.repeat(64))).toBe(false);
    for (const bad of ['', '-a', 'a-', 'A', 'a_b', 'a.b', 'a b', 'ä']) expect(isDnsLabel(bad), bad).toBe(false);
  });
});

describe('toDnsLabel', () => {
  it('keeps a name that already is a label', () => {
    expect(toDnsLabel('filter')).toBe('filter');
    expect(toDnsLabel('a'.repeat(63))).toBe('a'.repeat(63));
  });

  it('sanitizes any other name and suffixes the hash of the original', () => {
    expect(toDnsLabel('My_Module')).toBe(`my-module-${hash8('My_Module')}`);
    expect(toDnsLabel('--a..b--')).toBe(`a-b-${hash8('--a..b--')}`);
    expect(toDnsLabel('___')).toBe(`m-${hash8('___')}`);
    expect(toDnsLabel('')).toBe(`m-${hash8('')}`);
  });

  it('fits a module id of 64 to 128 characters into 63 (the limit of a Kubernetes name)', () => {
    const long = 'a'.repeat(64);
    const n = toDnsLabel(long);
    expect(n).toBe(`${'a'.repeat(54)}-${hash8(long)}`);
    expect(n).toHaveLength(63);
    const id128 = `Sensor_${'x'.repeat(121)}`;
    expect(toDnsLabel(id128)).toHaveLength(63);
    expect(isDnsLabel(toDnsLabel(id128))).toBe(true);
  });

  it('collapses runs of dashes, those it makes and those it is given, into one', () => {
    expect(toDnsLabel('A--b')).toBe(`a-b-${hash8('A--b')}`);
    expect(toDnsLabel('a__b')).toBe(`a-b-${hash8('a__b')}`);
    expect(toDnsLabel('a_-_b')).toBe(`a-b-${hash8('a_-_b')}`);
  });

  it('never ends the shortened base with a dash before the hash', () => {
    const name = `${'a'.repeat(53)}_b`;
    expect(toDnsLabel(name)).toBe(`${'a'.repeat(53)}-${hash8(name)}`);
  });

  it('honours a shorter maximum length', () => {
    expect(toDnsLabel('abcdefghij', 10)).toBe('abcdefghij');
    expect(toDnsLabel('abcdefghijk', 10)).toBe(`a-${hash8('abcdefghijk')}`);
  });

  it('always gives a valid label, and different names different labels', () => {
    fc.assert(
      fc.property(fc.string({ maxLength: 128 }), fc.string({ maxLength: 128 }), (a, b) => {
        expect(isDnsLabel(toDnsLabel(a))).toBe(true);
        if (a !== b) expect(toDnsLabel(a)).not.toBe(toDnsLabel(b));
      }),
    );
  });
});

describe('toLabelValue', () => {
  it('keeps a valid label value up to 63 characters', () => {
    expect(toLabelValue('default')).toBe('default');
    expect(toLabelValue('My_Deployment.v1')).toBe('My_Deployment.v1');
    expect(toLabelValue('x')).toBe('x');
    expect(toLabelValue('b'.repeat(63))).toBe('b'.repeat(63));
  });

  it('shortens longer values to 63 with a hash', () => {
    const v = 'b'.repeat(64);
    expect(toLabelValue(v)).toBe(`${'b'.repeat(54)}-${hash8(v)}`);
    expect(toLabelValue(v)).toHaveLength(63);
  });

  it('replaces what a label value may not hold, and trims non-alphanumeric ends', () => {
    expect(toLabelValue('a b')).toBe(`a-b-${hash8('a b')}`);
    expect(toLabelValue('_a_')).toBe(`a-${hash8('_a_')}`);
    expect(toLabelValue('-')).toBe(hash8('-'));
    expect(toLabelValue('a  b')).toBe(`a-b-${hash8('a  b')}`);
    expect(toLabelValue('a\t\nb')).toBe(`a-b-${hash8('a\t\nb')}`);
    // Cut at 54 characters: every non-alphanumeric character at the cut goes, not only the last.
    const cut2 = `${'c'.repeat(52)}._${'d'.repeat(10)}`;
    expect(toLabelValue(cut2)).toBe(`${'c'.repeat(52)}-${hash8(cut2)}`);
    const cut = `${'c'.repeat(53)}..${'d'.repeat(10)}`;
    expect(toLabelValue(cut)).toBe(`${'c'.repeat(53)}-${hash8(cut)}`);
  });

  it('always gives a valid label value', () => {
    fc.assert(
      fc.property(fc.string({ maxLength: 200 }), (s) => {
        const v = toLabelValue(s);
        expect(v.length).toBeLessThanOrEqual(63);
        expect(v).toMatch(LABEL_VALUE);
      }),
    );
  });
});
