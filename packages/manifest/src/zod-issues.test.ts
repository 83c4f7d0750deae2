import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { zodIssues } from './zod-issues.js';

// The short messages Kedge makes of zod's issues, each kind, with the full path.

function issues(schema: z.ZodType, value: unknown): string[] {
  const r = schema.safeParse(value, { reportInput: true });
  return r.success ? [] : zodIssues(r.error, ['spec', 'x']).map((i) => `${i.path}: ${i.message}`);
}

describe('zodIssues', () => {
  it('names a missing field "required" and a wrong type with what it got', () => {
    const s = z.strictObject({ a: z.string(), n: z.number() });
    expect(issues(s, { n: 1 })).toEqual(['spec.x.a: required']);
    expect(issues(s, { a: null, n: 1 })).toEqual(['spec.x.a: expected string, got null']);
    expect(issues(s, { a: [], n: 1 })).toEqual(['spec.x.a: expected string, got array']);
    expect(issues(s, { a: 'x', n: 'one' })).toEqual(['spec.x.n: expected number, got string']);
  });

  it('lists the allowed values', () => {
    expect(issues(z.enum(['a', 'b']), 'c')).toEqual(['spec.x: must be one of "a", "b", got "c"']);
    expect(issues(z.strictObject({ t: z.enum(['a']) }), {})).toEqual(['spec.x.t: required']);
    expect(issues(z.strictObject({ t: z.literal('docker') }), {})).toEqual(['spec.x.t: required']);
  });

  it('names unknown fields, one or several', () => {
    const s = z.strictObject({});
    expect(issues(s, { a: 1 })).toEqual(['spec.x: unknown field "a"']);
    expect(issues(s, { a: 1, b: 2 })).toEqual(['spec.x: unknown fields "a", "b"']);
  });

  it('says what is too small: empty strings, short strings, small numbers', () => {
    expect(issues(z.string().min(1), '')).toEqual(['spec.x: must not be empty']);
    expect(issues(z.string().min(3), 'ab')).toEqual(['spec.x: must be at least 3 characters']);
    expect(issues(z.number().min(0), -1)).toEqual(['spec.x: must be at least 0']);
    expect(issues(z.array(z.string()).min(2), ['a'])).toEqual(['spec.x: must be at least 2']);
    expect(issues(z.number().positive(), 0)).toEqual(['spec.x: must be greater than 0']);
    expect(issues(z.number().gt(1), 1)).toEqual(['spec.x: must be greater than 1']);
  });

  it('says what is too big', () => {
    expect(issues(z.number().max(9), 10)).toEqual(['spec.x: must be at most 9']);
    expect(issues(z.number().lt(5), 5)).toEqual(['spec.x: must be less than 5']);
    expect(issues(z.string().max(2), 'abc')).toEqual(['spec.x: must be at most 2']);
  });

  it('keeps zod\'s message for other issues, and writes array indexes and symbols into the path', () => {
    expect(issues(z.string().regex(/^a/, 'must start with a'), 'b')).toEqual(['spec.x: must start with a']);
    expect(issues(z.array(z.number()), [1, 'x'])).toEqual(['spec.x[1]: expected number, got string']);
    const sym = Symbol('s');
    const e = new z.ZodError([{ code: 'custom', path: [sym, 'k'], message: 'bad', input: 1 }]);
    expect(zodIssues(e, [])).toEqual([{ path: 'Symbol(s).k', message: 'bad' }]);
  });
});
