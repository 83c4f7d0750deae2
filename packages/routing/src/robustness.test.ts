import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { compileCondition } from './condition.js';
import { ConditionParser } from './grammar/condition-parser.js';
import { lex } from './grammar/lexer.js';
import type { RouteMessage } from './message.js';
import { messageFromJson } from './message-json.js';
import { compileDeviceQuery, compileTargetCondition } from './query/twin-query.js';
import { compileRoute } from './route.js';
import { parseRouteLines, parseRoutes } from './routes-config.js';

// Fragments that exercise every lexer rule and most grammar paths when glued together at random.
const FRAGMENTS = [
  'FROM', 'from', 'WHERE', 'INTO', 'SELECT', '*', '/', '/messages', '/modules/m/outputs/o', '$upstream',
  'BrokeredEndpoint("/modules/a/inputs/b")', '(', ')', ',', '{', '}', 'AND', 'or', 'NOT', '=', '!=', '<>', '<', '<=',
  '>', '>=', '+', '-', '%', '||', '??', 'true', 'false', 'null', 'undefined', '1', '-2.5e3', '0x1F', "'s'", '"t"',
  "'unterminated", '$body.a', '$body.a[0].b', '$sys', '{$body.x}', 'prop', 'as_number', 'concat', 'substring',
  'is_defined', 'twin_change_includes', 'nope', '@', ';', '[1]', '/*', '*/', '\\', '\n', 'é', '\u{1F600}',
];

const soup = fc.array(fc.constantFrom(...FRAGMENTS), { maxLength: 40 }).chain((parts) =>
  fc.array(fc.constantFrom(' ', '', '  '), { minLength: parts.length, maxLength: parts.length }).map((gaps) => parts.map((p, i) => p + (gaps[i] ?? '')).join('')),
);

const anyText = fc.oneof(fc.string({ maxLength: 200 }), fc.string({ unit: 'binary', maxLength: 200 }), soup);

const messageArb = fc
  .record({
    properties: fc.dictionary(fc.constantFrom('prop', 'PROP', '$sys', '$body.a', 'x'), fc.option(fc.string({ maxLength: 8 }), { nil: null })),
    systemProperties: fc.dictionary(fc.constantFrom('sys', 'contentType', 'x'), fc.option(fc.string({ maxLength: 8 }), { nil: null })),
    body: fc.oneof(fc.json({ maxDepth: 3 }).map((j) => JSON.parse(j) as unknown), fc.string({ maxLength: 40 })),
  })
  .map((m) => ({ source: { deviceId: 'd', moduleId: 'm', output: 'o' }, contentType: 'application/json', contentEncoding: 'utf-8', ...m }));

describe('no input makes the compilers throw', () => {
  it('compileCondition / compileRoute / twin queries return Results for any text', () => {
    fc.assert(
      fc.property(anyText, (text) => {
        for (const r of [compileCondition(text), compileCondition(text, { twinChange: true }), compileRoute(text), compileTargetCondition(text), compileDeviceQuery(text), parseRouteLines(text)]) {
          expect(typeof r.ok).toBe('boolean');
          if (!r.ok && 'line' in r.error) {
            expect(r.error.line).toBeGreaterThanOrEqual(1);
            expect(r.error.column).toBeGreaterThanOrEqual(1);
          }
        }
      }),
      { numRuns: 400 },
    );
  });

  it('compiled conditions evaluate any message to true, false or undefined', () => {
    fc.assert(
      fc.property(soup, messageArb, (text, json) => {
        const c = compileCondition(text);
        const m = messageFromJson(json);
        if (!c.ok || !m.ok) return;
        expect([true, false, undefined]).toContain(c.value.evaluate(m.value));
      }),
      { numRuns: 400 },
    );
  });

  it('parseRoutes accepts any JSON value without throwing', () => {
    fc.assert(
      fc.property(fc.jsonValue({ maxDepth: 4 }), (v) => {
        expect(typeof parseRoutes(v).ok).toBe('boolean');
        expect(typeof parseRoutes({ schemaVersion: '1.1', routes: v }).ok).toBe('boolean');
      }),
      { numRuns: 300 },
    );
  });
});

// Inputs of 100,000 tokens: a generous timeout, for a loaded machine and for mutation testing's instrumented code.
describe('deep and long inputs', { timeout: 180_000 }, () => {
  const msg: RouteMessage = { source: { deviceId: 'd' } };
  const n = 100_000;

  it.each([
    ['parentheses', `${'('.repeat(n)}true${')'.repeat(n)}`],
    ['unclosed parentheses', '('.repeat(n)],
    ['NOT chains', `${'NOT '.repeat(n)}true`],
    ['minus chains', `${'- '.repeat(n)}1 = 1`],
    ['nested calls', `${'abs('.repeat(n)}1${')'.repeat(n)} = 1`],
    ['operator chains', Array.from({ length: n }, () => '1').join(' + ') + ' = 1'],
    ['AND chains', Array.from({ length: n }, () => 'true').join(' AND ')],
    ['escaped braces', '{'.repeat(n)],
  ])('%s end in an error, not a stack overflow', (_name, text) => {
    const r = compileCondition(text);
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.error.message).toMatch(/too deep|Syntax error/);
  });

  it('accepts long flat conditions within the depth limit and evaluates them', () => {
    const r = compileCondition(Array.from({ length: 500 }, (_v, i) => `prop = '${i}'`).join(' OR '));
    expect(r.ok && r.value.evaluate({ ...msg, properties: { prop: '499' } })).toBe(true);
  });

  it('handles huge unterminated strings and comments in linear time', () => {
    expect(compileCondition(`'${'x'.repeat(n)}`).ok).toBe(false);
    expect(compileCondition('/* x '.repeat(n)).ok).toBe(false);
    expect(lex('/* x '.repeat(n)).length).toBe(3 * n + 1); // no terminator anywhere: '/', '*', 'x'
    expect(lex('/* a */ b '.repeat(n)).length).toBe(n + 1); // every comment closed and skipped
  });
});

describe('parser work grows linearly with input size', () => {
  // Counts parser steps (tokens consumed plus operator checks) instead of timing anything.
  function steps(text: string): number {
    const p = new ConditionParser(lex(text), 0);
    p.parseExpression();
    return p.steps;
  }
  const chain = (k: number): string => Array.from({ length: k }, (_v, i) => `a${i} = 'x'`).join(' OR ');
  const nested = (k: number): string => `${'('.repeat(k)}a = 'x'${')'.repeat(k)}`;
  const calls = (k: number): string => Array.from({ length: k }, () => "concat(a, 'b', c) = 'x'").join(' AND ');

  it.each([
    ['operator chains', chain],
    ['nesting', nested],
    ['calls', calls],
  ])('%s', (_name, make) => {
    const small = steps(make(100));
    const large = steps(make(200));
    expect(large / small).toBeGreaterThan(1.8);
    expect(large / small).toBeLessThan(2.2);
  });

  it('lexes in a number of tokens proportional to the input', () => {
    expect(lex(chain(200)).length / lex(chain(100)).length).toBeLessThan(2.05);
  });
});
