import { describe, expect, it } from 'vitest';
import { NULL_STRING, and3, compareAny, compareNumbers, compareStrings, dotnetPow, isAnyCompatible, or3, parseNumberAny, typeName } from './values.js';

const tri = [true, false, undefined] as const;

describe('three-valued logic', () => {
  it('AND and OR follow Kleene tables', () => {
    const and = tri.map((a) => tri.map((b) => and3(a, b)));
    expect(and).toEqual([
      [true, false, undefined],
      [false, false, false],
      [undefined, false, undefined],
    ]);
    const or = tri.map((a) => tri.map((b) => or3(a, b)));
    expect(or).toEqual([
      [true, true, true],
      [true, false, undefined],
      [true, undefined, undefined],
    ]);
  });
});

describe('types', () => {
  it('names any as unknown and lists what any combines with', () => {
    expect(typeName('any')).toBe('unknown');
    expect(typeName('number')).toBe('number');
    expect(['number', 'string', 'bool', 'null', 'undefined', 'any'].filter((t) => isAnyCompatible(t as never))).toEqual(['number', 'string', 'bool', 'null']);
  });
});

describe('comparisons', () => {
  it('compares numbers like double.CompareTo, NaN first', () => {
    expect(compareNumbers(1, 2)).toBe(-1);
    expect(compareNumbers(2, 1)).toBe(1);
    expect(compareNumbers(2, 2)).toBe(0);
    expect(compareNumbers(Number.NaN, Number.NaN)).toBe(0);
    expect(compareNumbers(Number.NaN, Number.NEGATIVE_INFINITY)).toBe(-1);
    expect(compareNumbers(Number.NEGATIVE_INFINITY, Number.NaN)).toBe(1);
    expect(compareNumbers(-0, 0)).toBe(0);
  });

  it('compares strings ordinally', () => {
    expect(compareStrings('a', 'b')).toBe(-1);
    expect(compareStrings('b', 'a')).toBe(1);
    expect(compareStrings('a', 'a')).toBe(0);
    expect(compareStrings('Z', 'a')).toBe(-1);
    expect(compareStrings('a', 'ab')).toBe(-1);
  });

  it('orders any values by type first: bool < number < string < null', () => {
    const order = [false, true, -1, 0, 2, NULL_STRING, '', 'a', 'b', null];
    for (let i = 0; i < order.length; i++) {
      for (let j = 0; j < order.length; j++) {
        const c = Math.sign(compareAny(order[i], order[j]));
        expect(c, `${String(order[i])} vs ${String(order[j])}`).toBe(Math.sign(i - j));
      }
    }
    expect(compareAny(Number.NaN, 0)).toBe(-1);
  });
});

describe('parseNumberAny (NumberStyles.Any, invariant culture)', () => {
  it.each<[string, number]>([
    ['42', 42], [' 42 ', 42], ['-42', -42], ['+42', 42], ['42-', -42], ['42+', 42], ['(42)', -42],
    ['1,000', 1000], ['1,2,3', 123], ['1.5', 1.5], ['.5', 0.5], ['5.', 5], ['1e3', 1000], ['1E-2', 0.01], ['1.5e+2', 150], ['1e10', 1e10], ['2E-10', 2e-10],
    ['Infinity', Number.POSITIVE_INFINITY], ['+Infinity', Number.POSITIVE_INFINITY], ['-Infinity', Number.NEGATIVE_INFINITY],
  ])('reads %j as %d', (text, value) => {
    expect(parseNumberAny(text)).toBe(value);
  });

  it.each(['', ' ', 'abc', '1a', '--1', '(1', '1)', '15)', '(15', '4(2)', 'e5', '.', '.e5', '1e', '1e+', '0x10', '1.2.3', 'infinity'])('refuses %j', (text) => {
    expect(parseNumberAny(text)).toBeNaN();
  });

  it('reads NaN as NaN', () => {
    expect(parseNumberAny('NaN')).toBeNaN();
  });
});

describe('dotnetPow', () => {
  it('is IEEE 754 pow where JS differs', () => {
    expect(dotnetPow(1, Number.NaN)).toBe(1);
    expect(dotnetPow(1, Number.POSITIVE_INFINITY)).toBe(1);
    expect(dotnetPow(-1, Number.POSITIVE_INFINITY)).toBe(1);
    expect(dotnetPow(-1, Number.NEGATIVE_INFINITY)).toBe(1);
    expect(dotnetPow(-1, 3)).toBe(-1);
    expect(dotnetPow(-1, Number.NaN)).toBeNaN();
    expect(dotnetPow(2, 10)).toBe(1024);
    expect(dotnetPow(2, Number.NEGATIVE_INFINITY)).toBe(0);
  });
});
