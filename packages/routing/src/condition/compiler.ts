import { fail, RouteErrorCode, type Position } from '../errors.js';
import type { ExprNode, LiteralNode } from '../grammar/ast.js';
import type { MessageContext } from '../message.js';
import { BUILTINS, overloadMatches, type Typed } from './builtins.js';
import { parseBodyPath, parseTwinPath } from './json-path.js';
import { and3, compareAny, compareNumbers, compareStrings, isAnyCompatible, NULL_STRING, or3, typeName, type TriBool, type ValueType } from './values.js';

/** Compile-time context of a condition. */
export interface ConditionScope {
  /**
   * True when the route's source is `/twinChangeNotifications`: only then is `twin_change_includes` available
   * (edgeHub's `TwinChangeIncludes.IsValidMessageSource`).
   */
  readonly twinChange: boolean;
}

type Cmp = '<' | '<=' | '>' | '>=' | '=' | '!=';

/**
 * Type-checks an expression tree and turns it into closures, once. Type rules, operator tables and builtins follow
 * edgeHub's `ConditionVisitor`; see `docs/routing.md` for the rules and the deliberate differences.
 */
export function compileExpression(node: ExprNode, scope: ConditionScope): Typed {
  switch (node.kind) {
    case 'number':
    case 'string':
    case 'bool':
    case 'null':
    case 'undefined':
      return literal(node);
    case 'appProperty': {
      const key = node.name.toLowerCase();
      return { type: 'string', fn: (c) => c.app(key) };
    }
    case 'sysProperty':
      return sysProperty(node.text, node.escaped, node.at);
    case 'call':
      return call(node, scope);
    case 'negate': {
      const operand = compileExpression(node.operand, scope);
      if (operand.type !== 'number') unaryError('-', operand.type, 'number', node.at);
      const f = operand.fn;
      return { type: 'number', fn: (c) => -(f(c) as number) };
    }
    case 'not':
      return not(compileExpression(node.operand, scope), node.op, node.at);
    case 'binary': {
      const left = compileExpression(node.left, scope);
      const right = compileExpression(node.right, scope);
      switch (node.op) {
        case '*':
        case '/':
        case '%':
        case '+':
        case '-':
          return arithmetic(node.op, node.opText, left, right, node.at);
        case '||':
          checkOperands(node.opText, 'string', left, right, node.at);
          return callBuiltin('concat', node.opText, [left, right], node.at);
        case 'AND':
        case 'OR':
          return logical(node.op, node.opText, left, right, node.at);
        case '??':
          return coalesce(node.opText, left, right, node.at);
        default:
          return compare(node.op, node.opText, left, right, node.at);
      }
    }
  }
}

/** The value of a whole condition: booleans stay, `null` is false, anything else is undefined (`Convert(…, Bool)`). */
export function toCondition(t: Typed): (ctx: MessageContext) => TriBool {
  const f = t.fn;
  switch (t.type) {
    case 'bool':
      return f as (ctx: MessageContext) => TriBool;
    case 'null':
      return () => false;
    case 'any':
      return (c) => {
        const v = f(c);
        return typeof v === 'boolean' ? v : undefined;
      };
    default:
      return () => undefined;
  }
}

function literal(node: LiteralNode): Typed {
  switch (node.kind) {
    case 'number': {
      // A number .NET fails to parse becomes the undefined constant, typed `undefined` (edgeHub VisitReal).
      if (Number.isNaN(node.value)) return { type: 'undefined', fn: () => undefined };
      const v = node.value;
      return { type: 'number', fn: () => v };
    }
    case 'string': {
      const v = node.value;
      return { type: 'string', fn: () => v };
    }
    case 'bool': {
      const v = node.value;
      return { type: 'bool', fn: () => v };
    }
    case 'null':
      return { type: 'null', fn: () => null };
    case 'undefined':
      return { type: 'undefined', fn: () => undefined };
  }
}

const BODY_PREFIX = '$body.';

function bodyQuery(text: string, at: Position): Typed {
  const path = parseBodyPath(text.slice(BODY_PREFIX.length));
  if (typeof path === 'string') {
    fail(RouteErrorCode.Arguments, `Invalid arguments to built-in function '${text}': ${text}(string). Error: ${path}`, at);
  }
  if (path.some((s) => s.key === '*')) return { type: 'any', fn: (c) => c.body(path) };
  return { type: 'any', fn: (c) => c.bodySimple(path) };
}

/**
 * `$name`: an application property literally called `$name` wins; otherwise `$body.<path>` is a body query and any
 * other name reads the system property `name`. `{$name}` skips the application property. Names with `[`/`]` are
 * only valid as body queries (otherwise they are the undefined constant).
 */
function sysProperty(text: string, escaped: boolean, at: Position): Typed {
  const lower = text.toLowerCase();
  const body = lower.startsWith(BODY_PREFIX) ? bodyQuery(text, at) : undefined;
  if (text.includes('[') || text.includes(']')) return body ?? { type: 'undefined', fn: () => undefined };
  if (body !== undefined) {
    if (escaped) return body;
    const query = body.fn;
    return {
      type: 'any',
      fn: (c) => {
        const v = c.app(lower);
        return v === undefined ? query(c) : v === null ? NULL_STRING : v;
      },
    };
  }
  const sysKey = lower.slice(1);
  if (escaped) return { type: 'string', fn: (c) => c.sys(sysKey) };
  return {
    type: 'string',
    fn: (c) => {
      const v = c.app(lower);
      return v === undefined ? c.sys(sysKey) : v;
    },
  };
}

function call(node: Extract<ExprNode, { kind: 'call' }>, scope: ConditionScope): Typed {
  const lower = node.name.toLowerCase();
  if (lower === 'twin_change_includes') {
    if (!scope.twinChange) fail(RouteErrorCode.UnknownFunction, `Invalid built-in function '${node.name}'`, node.at);
    const path = parseTwinPath(node.argText);
    if (typeof path === 'string') {
      fail(RouteErrorCode.Arguments, `Invalid arguments to built-in function '${node.name}': ${node.name}(string). Error: ${path}`, node.at);
    }
    return { type: 'bool', fn: (c) => c.bodyIncludes(path) };
  }
  const args = node.args.map((a) => compileExpression(a, scope));
  return callBuiltin(lower, node.name, args, node.at);
}

function callBuiltin(lower: string, written: string, args: readonly Typed[], at: Position): Typed {
  const overloads = BUILTINS.get(lower);
  if (overloads === undefined) return fail(RouteErrorCode.UnknownFunction, `Invalid built-in function '${written}'`, at);
  const types = args.map((a) => a.type);
  const o = overloads.find((x) => overloadMatches(x, types));
  if (o === undefined) {
    const name = lower === 'concat' && written === '||' ? 'concat' : written;
    return fail(RouteErrorCode.Arguments, `Invalid arguments to built-in function '${name}': ${name}(${types.map(typeName).join(', ')})`, at);
  }
  return o.build(o.wrapsAny ? args.map(toAny) : args);
}

/** Wraps a value as an `any` value (implicit conversions to edgeHub's `QueryValue`). */
function toAny(t: Typed): Typed {
  const f = t.fn;
  switch (t.type) {
    case 'any':
      return t;
    case 'number':
      return { type: 'any', fn: (c) => {
        const v = f(c) as number;
        return Number.isNaN(v) ? undefined : v;
      } };
    case 'string':
      return { type: 'any', fn: (c) => {
        const v = f(c);
        return v === null ? NULL_STRING : v;
      } };
    default:
      return { type: 'any', fn: f };
  }
}

function operandError(op: string, left: ValueType, right: ValueType, expected: ValueType, at: Position): never {
  return fail(
    RouteErrorCode.Type,
    `Invalid operands to binary operator '${op}': have '${typeName(left)}' and '${typeName(right)}', expected '${typeName(expected)}' and '${typeName(expected)}'`,
    at,
  );
}

function unaryError(op: string, given: ValueType, expected: ValueType, at: Position): never {
  return fail(RouteErrorCode.Type, `Invalid operands to unary operator '${op}': have '${typeName(given)}', expected '${typeName(expected)}'`, at);
}

/** `CheckOperands`: both sides have the expected type, or one is `any` and the other a type `any` accepts. */
function checkOperands(op: string, expected: ValueType, left: Typed, right: Typed, at: Position): void {
  const fits = (given: ValueType): boolean =>
    given === expected || (given === 'any' && isAnyCompatible(expected)) || (expected === 'any' && isAnyCompatible(given));
  if (!fits(left.type) || !fits(right.type)) operandError(op, left.type, right.type, expected, at);
}

function arithmetic(op: '*' | '/' | '%' | '+' | '-', opText: string, left: Typed, right: Typed, at: Position): Typed {
  checkOperands(opText, 'number', left, right, at);
  const l = left.fn;
  const r = right.fn;
  if (left.type === 'number' && right.type === 'number') {
    switch (op) {
      case '*':
        return { type: 'number', fn: (c) => (l(c) as number) * (r(c) as number) };
      case '/':
        return { type: 'number', fn: (c) => (l(c) as number) / (r(c) as number) };
      case '%':
        return { type: 'number', fn: (c) => (l(c) as number) % (r(c) as number) };
      case '+':
        return { type: 'number', fn: (c) => (l(c) as number) + (r(c) as number) };
      case '-':
        return { type: 'number', fn: (c) => (l(c) as number) - (r(c) as number) };
    }
  }
  // edgeHub's QueryValue defines + - * / but not %: the expression tree fails to build, so the route does not compile.
  if (op === '%') fail(RouteErrorCode.Type, `Invalid operands to binary operator '${opText}': not defined for $body values`, at);
  const la = toAny(left).fn;
  const ra = toAny(right).fn;
  const apply = (a: number, b: number): number => (op === '*' ? a * b : op === '/' ? a / b : op === '+' ? a + b : a - b);
  return {
    type: 'any',
    fn: (c) => {
      const a = la(c);
      const b = ra(c);
      return typeof a === 'number' && typeof b === 'number' ? apply(a, b) : undefined;
    },
  };
}

function verdict(op: Cmp, cmp: number): boolean {
  switch (op) {
    case '<':
      return cmp < 0;
    case '<=':
      return cmp <= 0;
    case '>':
      return cmp > 0;
    case '>=':
      return cmp >= 0;
    case '=':
      return cmp === 0;
    case '!=':
      return cmp !== 0;
  }
}

/** Comparison and equality (`ComparisonOperators.Compare`): undefined operands give undefined. */
function compare(op: Cmp, opText: string, left: Typed, right: Typed, at: Position): Typed {
  checkOperands(opText, left.type, left, right, at);
  const l = left.fn;
  const r = right.fn;
  if (left.type === 'any' || right.type === 'any') {
    const la = toAny(left).fn;
    const ra = toAny(right).fn;
    return {
      type: 'bool',
      fn: (c) => {
        const a = la(c);
        const b = ra(c);
        return a === undefined || b === undefined ? undefined : verdict(op, compareAny(a, b));
      },
    };
  }
  switch (left.type) {
    case 'number':
      return {
        type: 'bool',
        fn: (c) => {
          const a = l(c) as number;
          const b = r(c) as number;
          return Number.isNaN(a) || Number.isNaN(b) ? undefined : verdict(op, compareNumbers(a, b));
        },
      };
    case 'string':
      return {
        type: 'bool',
        fn: (c) => {
          const a = l(c) as string | null | undefined;
          const b = r(c) as string | null | undefined;
          return a === undefined || a === null || b === undefined || b === null ? undefined : verdict(op, compareStrings(a, b));
        },
      };
    case 'bool':
      return {
        type: 'bool',
        fn: (c) => {
          const a = l(c) as TriBool;
          const b = r(c) as TriBool;
          return a === undefined || b === undefined ? undefined : verdict(op, (a ? 1 : -1) - (b ? 1 : -1));
        },
      };
    case 'null': {
      const v = op === '=' || op === '<=' || op === '>=';
      return { type: 'bool', fn: () => v };
    }
    default:
      return { type: 'bool', fn: () => undefined };
  }
}

/**
 * AND / OR with edgeHub's typing (`CheckBooleanOperands`, including its quirk that a `$body` left operand accepts any
 * right operand) and its operator tables: Kleene logic on bool/undefined, `null AND x` is null, `null OR x` is x.
 */
function logical(op: 'AND' | 'OR', opText: string, left: Typed, right: Typed, at: Position): Typed {
  const boolish = (t: ValueType): boolean => t === 'null' || t === 'bool' || t === 'undefined' || t === 'any';
  const rightOk = right.type === 'null' || right.type === 'bool' || right.type === 'undefined' || left.type === 'any';
  if (!boolish(left.type) || !rightOk) operandError(opText, left.type, right.type, 'bool', at);
  const isAnd = op === 'AND';
  if (left.type === 'any' || right.type === 'any') {
    // A null operand mixed with a $body value has no operator/conversion in edgeHub: the route does not compile.
    if (isAnd && (left.type === 'null' || right.type === 'null')) {
      fail(RouteErrorCode.Type, `Invalid operands to binary operator '${opText}': have '${typeName(left.type)}' and '${typeName(right.type)}'`, at);
    }
    const la = toAny(left).fn;
    const ra = toAny(right).fn;
    return {
      type: 'bool',
      fn: (c) => {
        const a = la(c);
        const b = ra(c);
        if (typeof a !== 'boolean' || typeof b !== 'boolean') return undefined;
        return isAnd ? a && b : a || b;
      },
    };
  }
  const hasNull = left.type === 'null' || right.type === 'null';
  if (hasNull && (left.type === 'undefined' || right.type === 'undefined')) {
    fail(RouteErrorCode.Type, `Invalid operands to binary operator '${opText}': have '${left.type}' and '${right.type}'`, at);
  }
  const l = left.fn as (c: MessageContext) => TriBool;
  const r = right.fn as (c: MessageContext) => TriBool;
  if (isAnd) {
    if (hasNull) return { type: 'null', fn: () => null };
    return { type: 'bool', fn: (c) => and3(l(c), r(c)) };
  }
  if (left.type === 'null' && right.type === 'null') return { type: 'null', fn: () => null };
  if (left.type === 'null') return { type: 'bool', fn: r };
  if (right.type === 'null') return { type: 'bool', fn: l };
  return { type: 'bool', fn: (c) => or3(l(c), r(c)) };
}

function not(operand: Typed, opText: string, at: Position): Typed {
  const f = operand.fn;
  switch (operand.type) {
    case 'null':
      return { type: 'bool', fn: () => true };
    case 'bool':
      return {
        type: 'bool',
        fn: (c) => {
          const v = f(c) as TriBool;
          return v === undefined ? undefined : !v;
        },
      };
    case 'any':
      return {
        type: 'bool',
        fn: (c) => {
          const v = f(c);
          return typeof v === 'boolean' ? !v : undefined;
        },
      };
    default:
      return unaryError(opText, operand.type, 'bool', at);
  }
}

function isDefinedFn(t: Typed): (c: MessageContext) => boolean {
  const f = t.fn;
  if (t.type === 'number') return (c) => !Number.isNaN(f(c));
  if (t.type === 'null') return () => true;
  return (c) => f(c) !== undefined;
}

/** `a ?? b`: both sides of one type; `a` if it is defined, else `b`. */
function coalesce(opText: string, left: Typed, right: Typed, at: Position): Typed {
  checkOperands(opText, left.type, left, right, at);
  if (left.type === 'undefined') return right;
  const anyMode = left.type === 'any' || right.type === 'any';
  const l = anyMode ? toAny(left) : left;
  const r = anyMode ? toAny(right) : right;
  const defined = isDefinedFn(l);
  const lf = l.fn;
  const rf = r.fn;
  return { type: l.type, fn: (c) => (defined(c) ? lf(c) : rf(c)) };
}
