import { describe, expect, it } from 'vitest';
import { CompileFailure, MAX_EXPRESSION_DEPTH, MAX_NESTING } from '../errors.js';
import type { ExprNode } from './ast.js';
import { ConditionParser, parseDotnetDouble, unescape } from './condition-parser.js';
import { lex } from './lexer.js';

function show(n: ExprNode): string {
  switch (n.kind) {
    case 'binary':
      return `(${show(n.left)} ${n.op} ${show(n.right)})`;
    case 'negate':
      return `(-${show(n.operand)})`;
    case 'not':
      return `(NOT ${show(n.operand)})`;
    case 'call':
      return `${n.name}(${n.args.map(show).join(', ')})`;
    case 'appProperty':
      return n.name;
    case 'sysProperty':
      return n.escaped ? `{${n.text}}` : n.text;
    case 'number':
    case 'bool':
      return String(n.value);
    case 'string':
      return JSON.stringify(n.value);
    default:
      return n.kind;
  }
}

const parse = (text: string): string => show(new ConditionParser(lex(text), 0).parseExpression());

function parseError(text: string): { message: string; line: number; column: number } {
  try {
    new ConditionParser(lex(text), 0).parseExpression();
  } catch (e) {
    if (e instanceof CompileFailure) return { message: e.error.message, line: e.error.line, column: e.error.column };
    throw e;
  }
  throw new Error('expected a parse error');
}

describe('ConditionParser precedence', () => {
  it.each([
    ['1 + 2 * 3', '(1 + (2 * 3))'],
    ['1 - 2 - 3', '((1 - 2) - 3)'],
    ['a = b AND c = d OR e = f', '(((a = b) AND (c = d)) OR (e = f))'],
    ['a ?? b OR c', '(a ?? (b OR c))'],
    ['NOT a = b', '((NOT a) = b)'],
    ['- a * b', '((-a) * b)'],
    ['-a * b', '(-a * b)'], // '-a' is one identifier
    ['1 < 2 = true', '((1 < 2) = true)'],
    ["'a' || 'b' = 'ab'", '(("a" || "b") = "ab")'],
    ['x <> y', '(x != y)'],
    ['f(1, g(2), (3))', 'f(1, g(2), 3)'],
    ['f()', 'f()'],
    ['{ $a } = $b', '({$a} = $b)'],
    ['1 - -2', '(1 - -2)'],
  ])('%s', (text, tree) => {
    expect(parse(text)).toBe(tree);
  });
});

describe('ConditionParser errors', () => {
  it.each([
    ['(2 + 22 = 24', "Syntax error: missing closing ')'", 1, 1],
    ['(2 + 22 )) = 24', "Syntax error: unmatched closing ')'", 1, 10],
    ['f("2")) = 24', "Syntax error: unmatched closing ')'", 1, 7],
    ['f("2" = 24', 'Syntax error.', 1, 11],
    ['"2 = 24', 'Syntax error: unterminated string', 1, 1],
    ['3 = @ 3', "Syntax error: invalid symbol '@'", 1, 5],
    ['1 =\n  ;', "Syntax error: invalid symbol ';'", 2, 3],
    ['32 = [32]', 'Syntax error.', 1, 6],
    ['{a}', 'Syntax error.', 1, 2],
  ])('%s', (text, message, line, column) => {
    expect(parseError(text)).toEqual({ message, line, column });
  });

  it('bounds nesting of parentheses and prefix operators with a clear error', () => {
    expect(parseError('('.repeat(MAX_NESTING + 5) + '1' + ')'.repeat(MAX_NESTING + 5)).message).toMatch(/nested too deeply/);
    expect(parseError('NOT '.repeat(MAX_NESTING + 5) + 'true').message).toMatch(/nested too deeply/);
    expect(parse('('.repeat(MAX_NESTING - 1) + '1' + ')'.repeat(MAX_NESTING - 1))).toBe('1');
  });

  it('bounds the depth of operator chains', () => {
    expect(parseError(Array.from({ length: MAX_EXPRESSION_DEPTH + 10 }, () => '1').join(' + ')).message).toMatch(/too deep/);
  });
});

describe('literals', () => {
  it('parses numbers like double.TryParse and unescapes strings like edgeHub', () => {
    expect(parseDotnetDouble('0100')).toBe(100);
    expect(parseDotnetDouble('10e1000')).toBe(Number.POSITIVE_INFINITY);
    expect(parseDotnetDouble('e5')).toBeNaN();
    expect(unescape('\\u00FCber \\"x\\" \\\\ \\\'')).toBe('über "x" \\ \'');
  });
});
