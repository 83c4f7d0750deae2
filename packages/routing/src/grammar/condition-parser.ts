import { fail, MAX_EXPRESSION_DEPTH, MAX_NESTING, RouteErrorCode } from '../errors.js';
import type { BinaryOp, ExprNode } from './ast.js';
import { Tok, type Token } from './lexer.js';

type Level = { readonly ops: ReadonlyMap<Tok, BinaryOp> };

// Precedence levels of `Condition.g4`, loosest first: ?? < OR < AND < equality < comparison < additive < multiplicative.
const LEVELS: readonly Level[] = [
  { ops: new Map<Tok, BinaryOp>([[Tok.Coalesce, '??']]) },
  { ops: new Map<Tok, BinaryOp>([[Tok.Or, 'OR']]) },
  { ops: new Map<Tok, BinaryOp>([[Tok.And, 'AND']]) },
  { ops: new Map<Tok, BinaryOp>([[Tok.Eq, '='], [Tok.Ne1, '!='], [Tok.Ne2, '!=']]) },
  { ops: new Map<Tok, BinaryOp>([[Tok.Lt, '<'], [Tok.Le, '<='], [Tok.Gt, '>'], [Tok.Ge, '>=']]) },
  { ops: new Map<Tok, BinaryOp>([[Tok.Plus, '+'], [Tok.Minus, '-'], [Tok.Concat, '||']]) },
  { ops: new Map<Tok, BinaryOp>([[Tok.Mul, '*'], [Tok.Div, '/'], [Tok.Mod, '%']]) },
];

/**
 * Hand-written recursive-descent parser for edgeHub's condition grammar (`Condition.g4`). Binary levels are loops
 * (left-associative, no recursion per operator); recursion happens only for parentheses, prefix operators and call
 * arguments, and every node's depth is bounded by {@link MAX_EXPRESSION_DEPTH}, so no input can overflow the stack.
 *
 * The parser reads tokens from `pos` up to the first token it cannot use; the caller decides what may follow
 * (end of input for a bare condition, `INTO` inside a route).
 */
export class ConditionParser {
  readonly #tokens: readonly Token[];
  #pos: number;
  #openParens = 0;
  /** Number of parser steps taken; tests use it to prove linear work. */
  steps = 0;

  constructor(tokens: readonly Token[], pos: number) {
    this.#tokens = tokens;
    this.#pos = pos;
  }

  get position(): number {
    return this.#pos;
  }

  peek(): Token {
    return this.#tokens[this.#pos] ?? (this.#tokens[this.#tokens.length - 1] as Token);
  }

  #next(): Token {
    const t = this.peek();
    if (t.kind !== Tok.Eof) this.#pos++;
    this.steps++;
    return t;
  }

  /** Parses one expression starting at the current token. */
  parseExpression(): ExprNode {
    return this.#binary(0, 0).node;
  }

  #binary(level: number, depth: number): { node: ExprNode; depth: number } {
    if (level >= LEVELS.length) return this.#unary(depth);
    const ops = (LEVELS[level] as Level).ops;
    let left = this.#binary(level + 1, depth);
    for (;;) {
      this.steps++;
      const t = this.peek();
      const op = ops.get(t.kind);
      if (op === undefined) return left;
      this.#next();
      const right = this.#binary(level + 1, depth);
      const d = Math.max(left.depth, right.depth) + 1;
      if (d > MAX_EXPRESSION_DEPTH) tooDeep(t);
      left = { node: { kind: 'binary', op, opText: t.text, left: left.node, right: right.node, at: t }, depth: d };
    }
  }

  #unary(depth: number): { node: ExprNode; depth: number } {
    if (depth > MAX_NESTING) fail(RouteErrorCode.TooDeep, `Expression nested too deeply (limit ${MAX_NESTING} levels of parentheses, prefix operators and calls)`, this.peek());
    const t = this.peek();
    if (t.kind === Tok.Minus) {
      this.#next();
      const operand = this.#unary(depth + 1);
      return deeper({ kind: 'negate', operand: operand.node, at: t }, operand.depth, t);
    }
    if (t.kind === Tok.Not) {
      this.#next();
      const operand = this.#unary(depth + 1);
      return deeper({ kind: 'not', operand: operand.node, op: t.text, at: t }, operand.depth, t);
    }
    return this.#primary(depth);
  }

  #primary(depth: number): { node: ExprNode; depth: number } {
    const t = this.#next();
    switch (t.kind) {
      case Tok.LParen: {
        this.#openParens++;
        const inner = this.#binary(0, depth + 1);
        const close = this.peek();
        if (close.kind !== Tok.RParen) {
          if (close.kind === Tok.Unknown) invalidSymbol(close);
          if (close.kind === Tok.UnterminatedString) unterminated(close);
          fail(RouteErrorCode.Syntax, "Syntax error: missing closing ')'", t);
        }
        this.#next();
        this.#openParens--;
        this.#rejectExtraParen();
        return { node: inner.node, depth: inner.depth };
      }
      case Tok.Integer:
      case Tok.Real:
        return leaf({ kind: 'number', value: parseDotnetDouble(t.text), at: t });
      case Tok.Hex:
        return leaf(parseHex(t));
      case Tok.String:
        return leaf({ kind: 'string', value: unescape(t.text.slice(1, -1)), at: t });
      case Tok.True:
        return leaf({ kind: 'bool', value: true, at: t });
      case Tok.False:
        return leaf({ kind: 'bool', value: false, at: t });
      case Tok.Null:
        return leaf({ kind: 'null', at: t });
      case Tok.Undefined:
        return leaf({ kind: 'undefined', at: t });
      case Tok.SysProp:
        return leaf({ kind: 'sysProperty', text: t.text, escaped: false, at: t });
      case Tok.LBrace: {
        const prop = this.#next();
        if (prop.kind !== Tok.SysProp) syntaxError(prop);
        const close = this.#next();
        if (close.kind !== Tok.RBrace) syntaxError(close);
        return leaf({ kind: 'sysProperty', text: prop.text, escaped: true, at: prop });
      }
      case Tok.Id: {
        if (this.peek().kind !== Tok.LParen) return leaf({ kind: 'appProperty', name: t.text, at: t });
        return this.#call(t, depth);
      }
      case Tok.UnterminatedString:
        return unterminated(t);
      case Tok.Unknown:
        return invalidSymbol(t);
      default:
        return syntaxError(t);
    }
  }

  #call(name: Token, depth: number): { node: ExprNode; depth: number } {
    this.#next(); // '('
    this.#openParens++;
    const args: ExprNode[] = [];
    const argStart = this.#pos;
    let maxDepth = 0;
    if (this.peek().kind !== Tok.RParen) {
      for (;;) {
        const arg = this.#binary(0, depth + 1);
        args.push(arg.node);
        maxDepth = Math.max(maxDepth, arg.depth);
        if (this.peek().kind !== Tok.Comma) break;
        this.#next();
      }
    }
    const argEnd = this.#pos;
    const close = this.peek();
    if (close.kind !== Tok.RParen) {
      if (close.kind === Tok.Unknown) invalidSymbol(close);
      if (close.kind === Tok.UnterminatedString) unterminated(close);
      syntaxError(close);
    }
    this.#next();
    this.#openParens--;
    this.#rejectExtraParen();
    let argText = '';
    for (let k = argStart; k < argEnd; k++) argText += (this.#tokens[k] as Token).text;
    return deeper({ kind: 'call', name: name.text, args, argText, at: name }, maxDepth, name);
  }

  // `nested_expr ')'` and `fcall ')'` are edgeHub's "unmatched closing ')'" alternatives: a ')' right after a
  // group or call that no enclosing '(' is waiting for.
  #rejectExtraParen(): void {
    const t = this.peek();
    if (t.kind === Tok.RParen && this.#openParens === 0) unmatchedParen(t);
  }
}

/** Reports a ')' that closes nothing. */
export function unmatchedParen(t: Token): never {
  return fail(RouteErrorCode.Syntax, "Syntax error: unmatched closing ')'", t);
}

function leaf(node: ExprNode): { node: ExprNode; depth: number } {
  return { node, depth: 1 };
}

function tooDeep(t: Token): never {
  return fail(RouteErrorCode.TooDeep, `Expression too deep (limit ${MAX_EXPRESSION_DEPTH} levels)`, t);
}

function deeper(node: ExprNode, childDepth: number, at: Token): { node: ExprNode; depth: number } {
  if (childDepth + 1 > MAX_EXPRESSION_DEPTH) tooDeep(at);
  return { node, depth: childDepth + 1 };
}

/** Reports the generic ANTLR syntax error at `t`. */
export function syntaxError(t: Token): never {
  if (t.kind === Tok.Unknown) invalidSymbol(t);
  if (t.kind === Tok.UnterminatedString) unterminated(t);
  return fail(RouteErrorCode.Syntax, 'Syntax error.', t);
}

function invalidSymbol(t: Token): never {
  return fail(RouteErrorCode.Syntax, `Syntax error: invalid symbol '${t.text}'`, t);
}

function unterminated(t: Token): never {
  return fail(RouteErrorCode.Syntax, 'Syntax error: unterminated string', t);
}

/**
 * `double.TryParse(text, NumberStyles.Any, InvariantCulture)` for the literal shapes the lexer produces. A REAL token
 * without digits before the exponent (`e5`) does not parse in .NET; edgeHub then uses `undefined`, and so do we (NaN).
 */
export function parseDotnetDouble(text: string): number {
  if (!/^-?(\d+\.?\d*|\.\d+)(e[+-]?\d+)?$/i.test(text)) return Number.NaN;
  return Number(text);
}

function parseHex(t: Token): ExprNode {
  // long.TryParse(hex, HexNumber): at most 16 significant digits, read as a two's-complement 64-bit integer.
  const digits = t.text.slice(2).replace(/^0+(?=.)/, '');
  if (digits.length > 16) return { kind: 'undefined', at: t };
  return { kind: 'number', value: Number(BigInt.asIntN(64, BigInt(`0x${digits}`))), at: t };
}

/** edgeHub's `Unescape`: `\uXXXX` first, then `\"`, `\'` and `\\`. */
export function unescape(input: string): string {
  if (!input.includes('\\')) return input;
  return input
    .replace(/\\[Uu]([0-9A-Fa-f]{4})/g, (_m, hex: string) => String.fromCharCode(parseInt(hex, 16)))
    .replace(/\\(["'\\])/g, (_m, c: string) => c);
}
