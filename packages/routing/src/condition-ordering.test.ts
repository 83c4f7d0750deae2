import { describe, expect, it } from 'vitest';
import { compileCondition } from './condition.js';
import type { RouteMessage } from './message.js';

const msg = (body: RouteMessage['body'], properties: Record<string, string | null> = {}): RouteMessage => ({
  source: { deviceId: 'd', moduleId: 'm', output: 'o' },
  properties,
  contentType: 'application/json',
  contentEncoding: 'utf-8',
  body,
});
const ev = (condition: string, m: RouteMessage) => {
  const r = compileCondition(condition);
  if (!r.ok) throw new Error(r.error.message);
  return r.value.evaluate(m);
};

// Each ordering operator below, at 29, 30 and 31 against 30: false outcomes and the boundary are pinned too.
const table: [string, [boolean, boolean, boolean]][] = [
  ['>', [false, false, true]],
  ['>=', [false, true, true]],
  ['<', [true, false, false]],
  ['<=', [true, true, false]],
];

describe('ordering comparisons in route conditions', () => {
  it.each(table)('%s on $body numbers, below, at and above the boundary', (op, want) => {
    expect([29, 30, 31].map((t) => ev(`$body.t ${op} 30`, msg({ t })))).toEqual(want);
    expect([29, 30, 31].map((t) => ev(`30 ${op} $body.t`, msg({ t })))).toEqual([...want].reverse());
  });

  it.each(table)('%s on application properties (ordinal strings) and as_number', (op, want) => {
    expect(['a', 'b', 'c'].map((p) => ev(`p ${op} 'b'`, msg({}, { p })))).toEqual(want);
    expect(['1.5', '2', '10'].map((p) => ev(`as_number(p) ${op} 2`, msg({}, { p })))).toEqual(want);
  });

  it.each(table)('%s with a missing or null property operand is undefined (routes nothing)', (op) => {
    expect(ev(`p ${op} 'b'`, msg({}))).toBeUndefined();
    expect(ev(`p ${op} 'b'`, msg({}, { p: null }))).toBeUndefined();
    expect(ev(`as_number(p) ${op} 2`, msg({}))).toBeUndefined();
    expect(ev(`$body.o ${op} 30`, msg({ o: { a: 1 } }))).toBeUndefined();
  });

  it('orders $body values of different types as edgeHub orders QueryValues: number < string < null', () => {
    // A missing $body path reads as null, which sorts above every number.
    expect(ev('$body.x > 30', msg({ t: 1 }))).toBe(true);
    expect(ev('$body.x < 30', msg({ t: 1 }))).toBe(false);
    expect(ev('$body.n >= 30', msg({ n: null }))).toBe(true);
    expect(ev('$body.n <= 30', msg({ n: null }))).toBe(false);
    expect(ev('$body.s > 30', msg({ s: 'a' }))).toBe(true);
    expect(ev('$body.s < 30', msg({ s: 'a' }))).toBe(false);
    expect(ev('$body.b < 30', msg({ b: true }))).toBe(true);
  });

  it('refuses comparing a string to null at compile time', () => {
    const r = compileCondition("p > null");
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.error.message).toBe("Invalid operands to binary operator '>': have 'string' and 'null', expected 'string' and 'string'");
  });
});
