import type { MessageContext } from '../message.js';
import { dotnetPow, NULL_STRING, parseNumberAny, type ValueType } from './values.js';

/** A compiled sub-expression: its static type and the closure computing it. */
export interface Typed {
  readonly type: ValueType;
  readonly fn: (ctx: MessageContext) => unknown;
}

/** Accepted argument types of one overload, with edgeHub's `Args`, `VarArgs` and `AnyArgs` matching. */
export type ArgSpec =
  | { readonly kind: 'fixed'; readonly types: readonly ValueType[] }
  | { readonly kind: 'var'; readonly types: readonly ValueType[] }
  | { readonly kind: 'any'; readonly arity: number };

/**
 * One overload of a builtin (edgeHub `BuiltinExecutor`). When `wrapsAny` is set, arguments may also be `$body`
 * values and are all passed as `any` values (`IsQueryValueSupported`).
 */
export interface Overload {
  readonly args: ArgSpec;
  readonly wrapsAny: boolean;
  readonly build: (args: readonly Typed[]) => Typed;
}

type Fn = (ctx: MessageContext) => unknown;

const fixed = (...types: ValueType[]): ArgSpec => ({ kind: 'fixed', types });
const constant = (type: ValueType, value: unknown): Typed => ({ type, fn: () => value });
const arg = (args: readonly Typed[], i: number): Fn => (args[i] as Typed).fn;

function unary(type: ValueType, f: (v: unknown) => unknown): (args: readonly Typed[]) => Typed {
  return (args) => {
    const a = arg(args, 0);
    return { type, fn: (c) => f(a(c)) };
  };
}

function binary(type: ValueType, f: (a: unknown, b: unknown) => unknown): (args: readonly Typed[]) => Typed {
  return (args) => {
    const a = arg(args, 0);
    const b = arg(args, 1);
    return { type, fn: (c) => f(a(c), b(c)) };
  };
}

const math = (f: (x: number) => number): Overload => ({
  args: fixed('number'),
  wrapsAny: true,
  build: unary('number', (v) => (typeof v === 'number' ? f(v) : Number.NaN)),
});

const stringPredicate = (f: (s: string, frag: string) => boolean): Overload => ({
  args: fixed('string', 'string'),
  wrapsAny: true,
  build: binary('bool', (s, frag) => (typeof s === 'string' && typeof frag === 'string' ? f(s, frag) : undefined)),
});

const stringMap = (f: (s: string) => string): Overload => ({
  args: fixed('string'),
  wrapsAny: true,
  build: unary('string', (s) => (typeof s === 'string' ? f(s) : undefined)),
});

const alwaysFalse: Overload = { args: { kind: 'any', arity: 1 }, wrapsAny: false, build: () => constant('bool', false) };

/**
 * The builtins of edgeHub's condition language (`ConditionVisitor.Builtins`), keyed by lower-cased name. Overloads
 * are tried in order and the first match wins, as in `Builtin.Get`. `twin_change_includes` is handled by the
 * compiler because it reads its argument as text.
 */
export const BUILTINS: ReadonlyMap<string, readonly Overload[]> = new Map<string, readonly Overload[]>([
  // math
  ['abs', [math(Math.abs)]],
  ['exp', [math(Math.exp)]],
  ['power', [{ args: fixed('number', 'number'), wrapsAny: true, build: binary('number', (x, y) => (typeof x === 'number' && typeof y === 'number' ? dotnetPow(x, y) : Number.NaN)) }]],
  ['square', [math((x) => x * x)]],
  ['ceiling', [math(Math.ceil)]],
  ['floor', [math(Math.floor)]],
  ['sign', [math((x) => (Number.isNaN(x) ? Number.NaN : Math.sign(x)))]],
  ['sqrt', [math(Math.sqrt)]],
  // type checking
  [
    'as_number',
    [
      { args: fixed('string'), wrapsAny: true, build: unary('number', (v) => (typeof v === 'string' ? parseNumberAny(v) : typeof v === 'number' ? v : Number.NaN)) },
      { args: fixed('number'), wrapsAny: false, build: (args) => args[0] as Typed },
    ],
  ],
  ['is_bool', [{ args: fixed('bool'), wrapsAny: true, build: unary('bool', (v) => (v === undefined ? undefined : typeof v === 'boolean')) }, alwaysFalse]],
  [
    'is_defined',
    [
      { args: fixed('string'), wrapsAny: false, build: unary('bool', (v) => v !== undefined) },
      { args: fixed('number'), wrapsAny: false, build: unary('bool', (v) => !Number.isNaN(v)) },
      { args: fixed('bool'), wrapsAny: false, build: unary('bool', (v) => v !== undefined) },
      { args: fixed('undefined'), wrapsAny: false, build: () => constant('bool', false) },
      { args: fixed('null'), wrapsAny: false, build: () => constant('bool', true) },
      { args: fixed('any'), wrapsAny: false, build: unary('bool', (v) => v !== undefined) },
    ],
  ],
  [
    'is_null',
    [
      { args: fixed('string'), wrapsAny: false, build: unary('bool', (v) => v === null) },
      // Deliberate difference: edgeHub compares the QueryValue by reference here (see docs/routing.md).
      { args: fixed('any'), wrapsAny: false, build: unary('bool', (v) => (v === undefined ? undefined : v === null)) },
      { args: fixed('null'), wrapsAny: false, build: () => constant('bool', true) },
      alwaysFalse,
    ],
  ],
  ['is_number', [{ args: fixed('number'), wrapsAny: true, build: unary('bool', (v) => typeof v === 'number' && Number.isFinite(v)) }, alwaysFalse]],
  ['is_string', [{ args: fixed('string'), wrapsAny: true, build: unary('bool', (v) => typeof v === 'string') }, alwaysFalse]],
  // strings
  [
    'concat',
    [
      {
        args: { kind: 'var', types: ['string', 'string', 'string'] },
        wrapsAny: true,
        build: (args) => {
          const fns = args.map((a) => a.fn);
          return {
            type: 'string',
            fn: (c) => {
              let out = '';
              for (const f of fns) {
                const v = f(c);
                if (typeof v === 'string') out += v;
                else if (v !== NULL_STRING) return undefined;
              }
              return out;
            },
          };
        },
      },
    ],
  ],
  ['length', [{ args: fixed('string'), wrapsAny: true, build: unary('number', (s) => (typeof s === 'string' ? s.length : Number.NaN)) }]],
  ['lower', [stringMap((s) => s.toLowerCase())]],
  ['upper', [stringMap((s) => s.toUpperCase())]],
  [
    'substring',
    [
      {
        args: fixed('string', 'number'),
        wrapsAny: true,
        build: binary('string', (s, start) =>
          typeof s === 'string' && typeof start === 'number' && start >= 0 && start <= s.length ? s.substring(Math.trunc(start)) : undefined,
        ),
      },
      {
        args: fixed('string', 'number', 'number'),
        wrapsAny: true,
        build: (args) => {
          const [s, st, ln] = [arg(args, 0), arg(args, 1), arg(args, 2)];
          return {
            type: 'string',
            fn: (c) => {
              const str = s(c);
              const start = st(c);
              const len = ln(c);
              if (typeof str !== 'string' || typeof start !== 'number' || typeof len !== 'number') return undefined;
              const valid = start >= 0 && start < str.length && len >= 0 && len <= str.length - start;
              return valid ? str.substr(Math.trunc(start), Math.trunc(len)) : undefined;
            },
          };
        },
      },
    ],
  ],
  ['index_of', [{ args: fixed('string', 'string'), wrapsAny: true, build: binary('number', (s, f) => (typeof s === 'string' && typeof f === 'string' ? s.indexOf(f) : Number.NaN)) }]],
  ['starts_with', [stringPredicate((s, f) => s.startsWith(f))]],
  ['ends_with', [stringPredicate((s, f) => s.endsWith(f))]],
  ['contains', [stringPredicate((s, f) => s.includes(f))]],
]);

/** Does an argument of type `given` fit a parameter of type `required` (edgeHub `Args.IsMatchInternal`)? */
function fits(required: ValueType, given: ValueType, wrapsAny: boolean): boolean {
  if (required === given) return true;
  if (!wrapsAny) return false;
  const supported = (t: ValueType): boolean => t === 'number' || t === 'string' || t === 'bool' || t === 'null';
  return (given === 'any' && supported(required)) || (required === 'any' && supported(given));
}

/** True when the overload accepts arguments of these types. */
export function overloadMatches(o: Overload, given: readonly ValueType[]): boolean {
  const spec = o.args;
  if (spec.kind === 'any') return given.length === spec.arity;
  if (spec.kind === 'fixed') return spec.types.length === given.length && spec.types.every((t, i) => fits(t, given[i] as ValueType, o.wrapsAny));
  const n = spec.types.length - 1;
  const last = spec.types[n] as ValueType;
  if (given.length < n) return false;
  return given.every((g, i) => g === (i < n ? spec.types[i] : last) || (o.wrapsAny && g === 'any'));
}
