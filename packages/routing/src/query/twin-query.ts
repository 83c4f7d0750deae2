import { err, ok, type Result } from '@kedge/contracts';
import { CompileFailure, compileError, fail, MAX_NESTING, RouteErrorCode, type Position, type RouteCompileError } from '../errors.js';
import { and3, or3, type TriBool } from '../condition/values.js';
import { AggregateFn, aggregation, lookupPath, projector, type Aggregation, type QueryRow, type SelectItem } from './select.js';

/** A device or module twin as IoT Hub queries see it. Field names are case-sensitive. */
export interface TwinDocument {
  readonly deviceId?: string;
  readonly moduleId?: string;
  readonly tags?: Readonly<Record<string, unknown>>;
  readonly properties?: {
    readonly desired?: Readonly<Record<string, unknown>>;
    readonly reported?: Readonly<Record<string, unknown>>;
  };
  readonly capabilities?: { readonly iotEdge?: boolean };
  readonly [field: string]: unknown;
}

/** A compiled twin predicate. */
export type TwinPredicate = (twin: TwinDocument) => boolean;

/**
 * What a device query returns: whole twins (`SELECT *`), one projected object per twin (`SELECT deviceId,
 * properties.reported.fw`), or aggregate rows (`SELECT COUNT() AS n … [GROUP BY …]`).
 */
export const QueryShape = { Twins: 'twins', Projection: 'projection', Aggregate: 'aggregate' } as const;
export type QueryShape = (typeof QueryShape)[keyof typeof QueryShape];

/**
 * A compiled `SELECT [TOP n] … FROM devices[.modules] [WHERE …] [GROUP BY …]` query: a predicate (the WHERE part)
 * that also says what it selects from and how to build results. Evaluate it over the IoT Hub twin JSON (the document
 * `GET /twins/{id}` serves), so every twin field (`status`, `connectionState`, …) can be filtered and projected.
 */
export interface DeviceQuery extends TwinPredicate {
  readonly collection: 'devices' | 'devices.modules';
  /** Selected paths, dotted (`*` for everything; aggregates as `count()`, `sum(path)`, …). */
  readonly select: readonly string[];
  readonly shape: QueryShape;
  /** `TOP n`: at most this many results in all. */
  readonly top: number | undefined;
  /** The parsed SELECT list (empty for `*`). */
  readonly items: readonly SelectItem[];
  /** GROUP BY paths (empty without GROUP BY). */
  readonly groupBy: readonly (readonly string[])[];
  /** For {@link QueryShape.Projection}: the projected object of one matching twin. */
  project(twin: TwinDocument): QueryRow;
  /** For {@link QueryShape.Aggregate}: a fresh aggregation to feed matching twins into. */
  aggregate(): Aggregation;
}

/** Largest `TOP n` (IoT Hub pages hold at most 1000 items; TOP itself is not bounded there, but a number is). */
export const MAX_TOP = 1_000_000;

const T = {
  Str: 'Str',
  Num: 'Num',
  Path: 'Path',
  Word: 'Word',
  Punct: 'Punct',
  Eof: 'Eof',
} as const;
type T = (typeof T)[keyof typeof T];

interface QToken extends Position {
  readonly kind: T;
  readonly text: string;
  /** Decoded value: string contents, number, or the path segments. */
  readonly value: string | number | readonly string[];
}

const KEYWORDS = new Set(['and', 'or', 'not', 'in', 'select', 'from', 'where', 'true', 'false', 'null', 'as', 'group', 'by', 'top']);

// Top-level twin fields match case-insensitively, as in IoT Hub (`SELECT DeviceId` yields `deviceId`); nested
// property names (tags, desired, reported) stay case-sensitive.
const TWIN_FIELDS: ReadonlyMap<string, string> = new Map(
  [
    'deviceId', 'moduleId', 'etag', 'deviceEtag', 'status', 'statusReason', 'statusUpdateTime', 'connectionState', 'lastActivityTime',
    'cloudToDeviceMessageCount', 'authenticationType', 'x509Thumbprint', 'modelId', 'version', 'tags', 'properties', 'capabilities',
    'configurations', 'deviceScope', 'parentScopes',
  ].map((f) => [f.toLowerCase(), f]),
);

function canonical(path: readonly string[]): readonly string[] {
  const first = path[0];
  const c = first === undefined ? undefined : TWIN_FIELDS.get(first.toLowerCase());
  return c === undefined || c === first ? path : [c, ...path.slice(1)];
}

function lexQuery(text: string): QToken[] {
  const out: QToken[] = [];
  let i = 0;
  let line = 1;
  let lineStart = 0;
  const at = (start: number): Position => ({ line, column: start - lineStart + 1 });
  while (i < text.length) {
    const c = text[i] as string;
    if (c === '\n') {
      line++;
      lineStart = ++i;
      continue;
    }
    if (/\s/.test(c)) {
      i++;
      continue;
    }
    const start = i;
    if (c === "'" || c === '"') {
      let s = '';
      i++;
      for (;;) {
        if (i >= text.length) fail(RouteErrorCode.Syntax, 'Syntax error: unterminated string', at(start));
        const d = text[i] as string;
        if (d === c) {
          if (text[i + 1] === c) {
            s += c; // '' (or "") escapes the quote
            i += 2;
            continue;
          }
          i++;
          break;
        }
        s += d;
        i++;
      }
      out.push({ kind: T.Str, text: text.slice(start, i), value: s, ...at(start) });
      continue;
    }
    const num = /^-?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?/.exec(text.slice(i, i + 64));
    if (num !== null && (c !== '-' || /[\d.]/.test(text[i + 1] ?? ''))) {
      i += num[0].length;
      out.push({ kind: T.Num, text: num[0], value: Number(num[0]), ...at(start) });
      continue;
    }
    if (/[A-Za-z_$]/.test(c) || (c === '[' && text[i + 1] === '[')) {
      const segs: string[] = [];
      for (;;) {
        if (text[i] === '[' && text[i + 1] === '[') {
          const close = text.indexOf(']]', i + 2);
          if (close < 0) fail(RouteErrorCode.Syntax, "Syntax error: unterminated '[[' name", at(i));
          segs.push(text.slice(i + 2, close));
          i = close + 2;
        } else {
          let j = i;
          while (j < text.length && /[A-Za-z0-9_$-]/.test(text[j] as string)) j++;
          if (j === i) fail(RouteErrorCode.Syntax, 'Syntax error: invalid property name', at(i));
          segs.push(text.slice(i, j));
          i = j;
        }
        if (text[i] === '.' && (/[A-Za-z0-9_$]/.test(text[i + 1] ?? '') || (text[i + 1] === '[' && text[i + 2] === '['))) {
          i++;
          continue;
        }
        break;
      }
      const word = text.slice(start, i);
      const lower = word.toLowerCase();
      const isWord = segs.length === 1 && (KEYWORDS.has(lower) || text[i] === '(');
      out.push({ kind: isWord ? T.Word : T.Path, text: word, value: isWord ? lower : segs, ...at(start) });
      continue;
    }
    const two = text.slice(i, i + 2);
    if (two === '!=' || two === '<>' || two === '<=' || two === '>=') {
      i += 2;
      out.push({ kind: T.Punct, text: two, value: two === '<>' ? '!=' : two, ...at(start) });
      continue;
    }
    if ('()[],=<>*'.includes(c)) {
      i++;
      out.push({ kind: T.Punct, text: c, value: c, ...at(start) });
      continue;
    }
    fail(RouteErrorCode.Syntax, `Syntax error: invalid symbol '${c}'`, at(start));
  }
  out.push({ kind: T.Eof, text: '<EOF>', value: '', ...at(i) });
  return out;
}

type Eval = (twin: TwinDocument) => unknown;
type Pred = (twin: TwinDocument) => TriBool;
const scalar = (v: unknown): boolean => v === null || typeof v === 'string' || typeof v === 'number' || typeof v === 'boolean';

function compareValues(op: string, a: unknown, b: unknown): TriBool {
  if (a === undefined || b === undefined || !scalar(a) || !scalar(b)) return undefined;
  if (a === null || b === null) {
    if (a === b) return op === '=' || op === '<=' || op === '>=';
    return op === '=' ? false : op === '!=' ? true : undefined;
  }
  if (typeof a !== typeof b) return undefined;
  const x = a as string | number | boolean;
  const y = b as string | number | boolean;
  switch (op) {
    case '=':
      return x === y;
    case '!=':
      return x !== y;
    case '<':
      return x < y;
    case '<=':
      return x <= y;
    case '>':
      return x > y;
    default:
      return x >= y;
  }
}

const FUNCTIONS: ReadonlyMap<string, (args: readonly unknown[]) => TriBool> = new Map<string, (args: readonly unknown[]) => TriBool>([
  ['is_defined', (a) => a[0] !== undefined],
  ['is_null', (a) => (a[0] === undefined ? undefined : a[0] === null)],
  ['is_string', (a) => (a[0] === undefined ? undefined : typeof a[0] === 'string')],
  ['is_number', (a) => (a[0] === undefined ? undefined : typeof a[0] === 'number')],
  ['is_bool', (a) => (a[0] === undefined ? undefined : typeof a[0] === 'boolean')],
  ['starts_with', (a) => (typeof a[0] === 'string' && typeof a[1] === 'string' ? a[0].startsWith(a[1]) : undefined)],
  ['ends_with', (a) => (typeof a[0] === 'string' && typeof a[1] === 'string' ? a[0].endsWith(a[1]) : undefined)],
  ['contains', (a) => (typeof a[0] === 'string' && typeof a[1] === 'string' ? a[0].includes(a[1]) : undefined)],
]);
const ARITY: ReadonlyMap<string, number> = new Map([
  ['is_defined', 1], ['is_null', 1], ['is_string', 1], ['is_number', 1], ['is_bool', 1], ['starts_with', 2], ['ends_with', 2], ['contains', 2],
]);

/**
 * Recursive-descent parser for the WHERE part of IoT Hub twin queries (the subset used by deployment target
 * conditions and metric queries): `OR`, `AND`, `NOT`, parentheses, comparisons `= != <> < > <= >=` between property
 * paths and literals, `IN [..]` / `NOT IN [..]`, and `IS_DEFINED`, `IS_NULL`, `IS_STRING`, `IS_NUMBER`, `IS_BOOL`,
 * `STARTS_WITH`, `ENDS_WITH`, `CONTAINS`. OR and AND chains are evaluated iteratively.
 */
class QueryParser {
  readonly #tokens: readonly QToken[];
  #pos = 0;
  #nesting = 0;

  constructor(tokens: readonly QToken[], pos: number) {
    this.#tokens = tokens;
    this.#pos = pos;
  }

  get position(): number {
    return this.#pos;
  }

  peek(): QToken {
    return this.#tokens[this.#pos] ?? (this.#tokens[this.#tokens.length - 1] as QToken);
  }

  #next(): QToken {
    const t = this.peek();
    if (t.kind !== T.Eof) this.#pos++;
    return t;
  }

  #isWord(w: string): boolean {
    const t = this.peek();
    return t.kind === T.Word && t.value === w;
  }

  #isPunct(p: string): boolean {
    const t = this.peek();
    return t.kind === T.Punct && t.value === p;
  }

  #expectPunct(p: string): void {
    if (!this.#isPunct(p)) fail(RouteErrorCode.Syntax, `Syntax error: expected '${p}'`, this.peek());
    this.#next();
  }

  or(): Pred {
    const parts = [this.#and()];
    while (this.#isWord('or')) {
      this.#next();
      parts.push(this.#and());
    }
    if (parts.length === 1) return parts[0] as Pred;
    return (twin) => {
      let acc: TriBool = false;
      for (const p of parts) {
        acc = or3(acc, p(twin));
        if (acc === true) return true;
      }
      return acc;
    };
  }

  #and(): Pred {
    const parts = [this.#not()];
    while (this.#isWord('and')) {
      this.#next();
      parts.push(this.#not());
    }
    if (parts.length === 1) return parts[0] as Pred;
    return (twin) => {
      let acc: TriBool = true;
      for (const p of parts) {
        acc = and3(acc, p(twin));
        if (acc === false) return false;
      }
      return acc;
    };
  }

  #not(): Pred {
    if (this.#isWord('not')) {
      const t = this.#next();
      this.#enter(t);
      const inner = this.#not();
      this.#nesting--;
      return (twin) => {
        const v = inner(twin);
        return v === undefined ? undefined : !v;
      };
    }
    return this.#predicate();
  }

  #enter(t: QToken): void {
    if (++this.#nesting > MAX_NESTING) fail(RouteErrorCode.TooDeep, `Query nested too deeply (limit ${MAX_NESTING})`, t);
  }

  #predicate(): Pred {
    const t = this.peek();
    if (this.#isPunct('(')) {
      this.#next();
      this.#enter(t);
      const inner = this.or();
      this.#nesting--;
      if (!this.#isPunct(')')) fail(RouteErrorCode.Syntax, "Syntax error: missing closing ')'", t);
      this.#next();
      return inner;
    }
    if (t.kind === T.Word && FUNCTIONS.has(t.value as string) && this.#tokens[this.#pos + 1]?.text === '(') {
      const name = t.value as string;
      this.#next();
      this.#next();
      const args: Eval[] = [];
      if (!this.#isPunct(')')) {
        args.push(this.#operand());
        while (this.#isPunct(',')) {
          this.#next();
          args.push(this.#operand());
        }
      }
      this.#expectPunct(')');
      if (args.length !== ARITY.get(name)) fail(RouteErrorCode.Arguments, `Invalid arguments to function '${t.text}': expected ${ARITY.get(name)}, got ${args.length}`, t);
      const f = FUNCTIONS.get(name) as (a: readonly unknown[]) => TriBool;
      return (twin) => f(args.map((a) => a(twin)));
    }
    const left = this.#operand();
    let negate = false;
    if (this.#isWord('not') && this.#tokens[this.#pos + 1]?.value === 'in') {
      this.#next();
      negate = true;
    }
    if (this.#isWord('in')) {
      this.#next();
      this.#expectPunct('[');
      const items: Eval[] = [];
      if (!this.#isPunct(']')) {
        items.push(this.#operand());
        while (this.#isPunct(',')) {
          this.#next();
          items.push(this.#operand());
        }
      }
      this.#expectPunct(']');
      return (twin) => {
        const v = left(twin);
        if (v === undefined) return undefined;
        const found = items.some((i) => compareValues('=', v, i(twin)) === true);
        return negate ? !found : found;
      };
    }
    const op = this.peek();
    if (op.kind !== T.Punct || !['=', '!=', '<', '<=', '>', '>='].includes(op.value as string)) {
      return fail(RouteErrorCode.Syntax, 'Syntax error: expected a comparison operator', op);
    }
    this.#next();
    const right = this.#operand();
    const o = op.value as string;
    return (twin) => compareValues(o, left(twin), right(twin));
  }

  #operand(): Eval {
    const t = this.#next();
    switch (t.kind) {
      case T.Str:
      case T.Num: {
        const v = t.value;
        return () => v;
      }
      case T.Path: {
        const path = canonical(t.value as readonly string[]);
        return (twin) => lookupPath(twin, path);
      }
      case T.Word:
        if (t.value === 'true') return () => true;
        if (t.value === 'false') return () => false;
        if (t.value === 'null') return () => null;
        return fail(RouteErrorCode.Syntax, `Syntax error: unexpected '${t.text}'`, t);
      default:
        return fail(RouteErrorCode.Syntax, t.kind === T.Eof ? 'Syntax error: unexpected end of query' : `Syntax error: unexpected '${t.text}'`, t);
    }
  }
}

function guard<V>(step: () => V): Result<V, RouteCompileError> {
  try {
    return ok(step());
  } catch (e) {
    if (e instanceof CompileFailure) return err(e.error);
    return err(compileError(RouteErrorCode.Syntax, `Cannot compile: ${e instanceof Error ? e.message : String(e)}`, { line: 1, column: 1 }));
  }
}

function whereClause(tokens: readonly QToken[], from: number): Pred {
  const parser = new QueryParser(tokens, from);
  const pred = parser.or();
  const rest = parser.peek();
  if (rest.kind !== T.Eof) fail(RouteErrorCode.Syntax, `Syntax error: unexpected '${rest.text}'`, rest);
  return pred;
}

/**
 * Compiles an IoT Hub automatic-deployment target condition, e.g. `tags.environment='prod' AND
 * properties.reported.lastDesiredStatus.code = 200`, into a twin predicate. `*` targets every device. Missing
 * properties and comparisons between different types are undefined, which never matches. Never throws.
 */
export function compileTargetCondition(text: string): Result<TwinPredicate, RouteCompileError> {
  return guard(() => {
    const tokens = lexQuery(text);
    const first = tokens[0] as QToken;
    if (first.kind === T.Punct && first.value === '*' && (tokens[1] as QToken).kind === T.Eof) return () => true;
    if (first.kind === T.Eof) fail(RouteErrorCode.Syntax, 'Syntax error: empty target condition', first);
    const pred = whereClause(tokens, 0);
    return (twin: TwinDocument) => pred(twin) === true;
  });
}

const AGGREGATES: ReadonlyMap<string, AggregateFn> = new Map(Object.values(AggregateFn).map((f) => [f, f]));
const ALIAS = /^[A-Za-z_][A-Za-z0-9_]*$/;

interface Cursor {
  tok(k?: number): QToken;
  next(): QToken;
  word(w: string, k?: number): boolean;
  punct(p: string, k?: number): boolean;
  pos: number;
}

function cursor(tokens: readonly QToken[]): Cursor {
  const c: Cursor = {
    pos: 0,
    tok: (k = 0) => tokens[c.pos + k] ?? (tokens[tokens.length - 1] as QToken),
    next: () => {
      const t = c.tok();
      if (t.kind !== T.Eof) c.pos++;
      return t;
    },
    word: (w, k = 0) => c.tok(k).kind === T.Word && c.tok(k).value === w,
    punct: (p, k = 0) => c.tok(k).kind === T.Punct && c.tok(k).value === p,
  };
  return c;
}

/** `path` or `AGG([path])`, then an optional `AS alias`; `$n` names unaliased aggregates, as DocumentDB does. */
function selectItem(c: Cursor, unnamed: { n: number }): SelectItem {
  const t = c.tok();
  let item: SelectItem;
  if (t.kind === T.Word && c.punct('(', 1)) {
    const fn = AGGREGATES.get(t.value as string);
    if (fn === undefined) fail(RouteErrorCode.UnknownFunction, `Unsupported function '${t.text}' in SELECT (use COUNT, SUM, AVG, MIN or MAX)`, t);
    c.next();
    c.next();
    let path: readonly string[] | undefined;
    if (c.tok().kind === T.Path) path = canonical(c.next().value as readonly string[]);
    if (!c.punct(')')) fail(RouteErrorCode.Syntax, fn === AggregateFn.Count ? "Syntax error: expected ')' (COUNT takes no argument)" : "Syntax error: expected a property and ')'", c.tok());
    c.next();
    if (fn === AggregateFn.Count && path !== undefined) fail(RouteErrorCode.Arguments, "Invalid arguments to function 'COUNT': expected 0, got 1", t);
    if (fn !== AggregateFn.Count && path === undefined) fail(RouteErrorCode.Arguments, `Invalid arguments to function '${t.text}': expected a property`, t);
    item = { kind: 'aggregate', fn, path, name: `$${++unnamed.n}` };
  } else if (t.kind === T.Path) {
    c.next();
    const path = canonical(t.value as readonly string[]);
    item = { kind: 'field', path, name: path[path.length - 1] as string };
  } else {
    return fail(RouteErrorCode.Syntax, "Syntax error: expected '*', a property or an aggregate (COUNT(), SUM(…), …) to select", t);
  }
  if (c.word('as')) {
    c.next();
    const a = c.next();
    const alias = a.kind === T.Path && (a.value as readonly string[]).length === 1 ? ((a.value as readonly string[])[0] as string) : undefined;
    if (alias === undefined || !ALIAS.test(alias)) fail(RouteErrorCode.Syntax, 'Syntax error: expected a name (letters, digits, _) after AS', a);
    item = { ...item, name: alias };
  }
  return item;
}

const dotted = (i: SelectItem): string => (i.kind === 'field' ? i.path.join('.') : `${i.fn}(${i.path?.join('.') ?? ''})`);

/**
 * Compiles an IoT Hub device query, `SELECT [TOP n] <* | item, …> FROM devices[.modules] [WHERE <condition>]
 * [GROUP BY path, …]`, where an item is a property path or `COUNT()` / `SUM(path)` / `AVG(path)` / `MIN(path)` /
 * `MAX(path)`, each with an optional `AS alias`. Forms the hub cannot answer are compile errors, never ignored:
 * mixing `*` with items, aggregates next to properties that are not grouped, GROUP BY without an aggregate, two
 * items with one output name. Never throws.
 */
export function compileDeviceQuery(text: string): Result<DeviceQuery, RouteCompileError> {
  return guard(() => {
    const tokens = lexQuery(text);
    const c = cursor(tokens);
    if (!c.word('select')) fail(RouteErrorCode.Syntax, "Syntax error: expected 'SELECT'", c.tok());
    c.next();
    let top: number | undefined;
    if (c.word('top')) {
      c.next();
      const n = c.next();
      if (n.kind !== T.Num || !Number.isInteger(n.value) || (n.value as number) < 1 || (n.value as number) > MAX_TOP) {
        fail(RouteErrorCode.Syntax, `Syntax error: TOP expects a whole number from 1 to ${MAX_TOP}`, n);
      }
      top = n.value as number;
    }
    const items: SelectItem[] = [];
    let star = false;
    const unnamed = { n: 0 };
    for (;;) {
      if (c.punct('*')) {
        if (star || items.length > 0) fail(RouteErrorCode.Syntax, "Syntax error: '*' cannot be combined with other selections", c.tok());
        star = true;
        c.next();
      } else {
        if (star) fail(RouteErrorCode.Syntax, "Syntax error: '*' cannot be combined with other selections", c.tok());
        items.push(selectItem(c, unnamed));
      }
      if (!c.punct(',')) break;
      c.next();
    }
    if (!c.word('from')) fail(RouteErrorCode.Syntax, "Syntax error: expected 'FROM'", c.tok());
    c.next();
    const coll = c.tok();
    const name = coll.kind === T.Path ? (coll.value as readonly string[]).join('.').toLowerCase() : '';
    if (name !== 'devices' && name !== 'devices.modules') fail(RouteErrorCode.Syntax, "Syntax error: expected 'devices' or 'devices.modules'", coll);
    const collection: DeviceQuery['collection'] = name;
    c.next();
    let pred: Pred = () => true;
    if (c.word('where')) {
      const parser = new QueryParser(tokens, c.pos + 1);
      pred = parser.or();
      c.pos = parser.position;
    }
    const groupBy: (readonly string[])[] = [];
    const groupAt = c.tok();
    if (c.word('group')) {
      c.next();
      if (!c.word('by')) fail(RouteErrorCode.Syntax, "Syntax error: expected 'BY' after 'GROUP'", c.tok());
      c.next();
      for (;;) {
        const g = c.next();
        if (g.kind !== T.Path) fail(RouteErrorCode.Syntax, 'Syntax error: GROUP BY expects property paths', g);
        groupBy.push(canonical(g.value as readonly string[]));
        if (!c.punct(',')) break;
        c.next();
      }
    }
    if (c.tok().kind !== T.Eof) fail(RouteErrorCode.Syntax, `Syntax error: unexpected '${c.tok().text}'`, c.tok());

    const hasAggregate = items.some((i) => i.kind === 'aggregate');
    if (groupBy.length > 0 && !hasAggregate) fail(RouteErrorCode.Syntax, 'GROUP BY needs an aggregate in SELECT, e.g. COUNT() AS n', groupAt);
    if (hasAggregate) {
      const grouped = new Set(groupBy.map((g) => g.join('.')));
      for (const i of items) {
        if (i.kind === 'field' && !grouped.has(i.path.join('.'))) {
          fail(RouteErrorCode.Syntax, `'${i.path.join('.')}' must appear in GROUP BY to be selected next to an aggregate`, tokens[0] as QToken);
        }
      }
    }
    const names = new Set<string>();
    for (const i of items) {
      if (names.has(i.name)) fail(RouteErrorCode.Syntax, `Two selections are named '${i.name}': give one of them another name with AS`, tokens[0] as QToken);
      names.add(i.name);
    }
    const shape: QueryShape = star ? QueryShape.Twins : hasAggregate ? QueryShape.Aggregate : QueryShape.Projection;
    const project = projector(items);
    const fn = (twin: TwinDocument): boolean => pred(twin) === true;
    return Object.assign(fn, {
      collection,
      select: Object.freeze(star ? ['*'] : items.map(dotted)),
      shape,
      top,
      items: Object.freeze(items),
      groupBy: Object.freeze(groupBy),
      project: (twin: TwinDocument) => project(twin),
      aggregate: () => aggregation(items, groupBy),
    });
  });
}
