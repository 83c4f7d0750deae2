/**
 * Runtime value representation. Every expression has a static type (checked at compile time, as edgeHub does) and
 * its closures return plain JS values:
 *
 * | static type | values |
 * |---|---|
 * | `number` | a number; `NaN` is edgeHub's undefined number |
 * | `string` | a string; `null` for a property whose value is null; `undefined` when absent |
 * | `bool` | `true`, `false` or `undefined` (three-valued) |
 * | `null` | `null` |
 * | `undefined` | `undefined` |
 * | `any` (a `$body` value, edgeHub's `QueryValue`) | `undefined`, `null`, a boolean, a number, a string, or {@link NULL_STRING} |
 */
export const ValueType = {
  Number: 'number',
  String: 'string',
  Bool: 'bool',
  Null: 'null',
  Undefined: 'undefined',
  Any: 'any',
} as const;
export type ValueType = (typeof ValueType)[keyof typeof ValueType];

/** A string-typed value that is null, once wrapped as an `any` value (edgeHub `QueryValue(null, String)`). */
export const NULL_STRING = Symbol('null-string');

/** Three-valued boolean: `undefined` is edgeHub's `Bool.Undefined`. */
export type TriBool = boolean | undefined;

/** Kleene AND. */
export const and3 = (a: TriBool, b: TriBool): TriBool => (a === false || b === false ? false : a === true && b === true ? true : undefined);

/** Kleene OR. */
export const or3 = (a: TriBool, b: TriBool): TriBool => (a === true || b === true ? true : a === false && b === false ? false : undefined);

/** How edgeHub names types in messages. */
export function typeName(t: ValueType): string {
  return t === 'any' ? 'unknown' : t;
}

/** Types an `any` value can be compared or combined with (`QueryValue.IsSupportedType`). */
export const isAnyCompatible = (t: ValueType): boolean => t === 'number' || t === 'string' || t === 'bool' || t === 'null';

/** .NET `double.CompareTo`: NaN equals NaN and is smaller than every other number. */
export function compareNumbers(a: number, b: number): number {
  if (a < b) return -1;
  if (a > b) return 1;
  if (a === b) return 0;
  const an = Number.isNaN(a);
  const bn = Number.isNaN(b);
  return an && bn ? 0 : an ? -1 : 1;
}

/** Ordinal string comparison (UTF-16 code units, like `StringComparison.Ordinal`). */
export function compareStrings(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

// QueryValueType order: None < Bool < Double < String < Null < Object.
function rank(v: unknown): number {
  switch (typeof v) {
    case 'boolean':
      return 1;
    case 'number':
      return 2;
    case 'string':
    case 'symbol':
      return 3;
    default:
      return 4;
  }
}

/** `QueryValue.CompareTo` for two defined `any` values: values of different types order by type. */
export function compareAny(a: unknown, b: unknown): number {
  const ra = rank(a);
  const rb = rank(b);
  if (ra !== rb) return ra - rb;
  switch (ra) {
    case 1:
      return (a ? 1 : -1) - (b ? 1 : -1);
    case 2:
      return compareNumbers(a as number, b as number);
    case 3:
      if (a === NULL_STRING) return b === NULL_STRING ? 0 : -1;
      if (b === NULL_STRING) return 1;
      return compareStrings(a as string, b as string);
    default:
      return 0;
  }
}

/**
 * `double.TryParse(s, NumberStyles.Any, CultureInfo.InvariantCulture)` as used by `as_number`: blanks around,
 * a leading or trailing sign or parentheses, thousands separators, a decimal point, an exponent, and the invariant
 * symbols `Infinity`, `-Infinity` and `NaN`. Returns NaN when the text does not parse.
 */
export function parseNumberAny(input: string): number {
  let s = input.trim();
  if (s === 'Infinity' || s === '+Infinity') return Number.POSITIVE_INFINITY;
  if (s === '-Infinity') return Number.NEGATIVE_INFINITY;
  if (s === 'NaN') return Number.NaN;
  let negative = false;
  if (s.startsWith('(') && s.endsWith(')')) {
    negative = true;
    s = s.slice(1, -1).trim();
  } else if (s.startsWith('-') || s.startsWith('+')) {
    negative = s.startsWith('-');
    s = s.slice(1).trimStart();
  } else if (s.endsWith('-') || s.endsWith('+')) {
    negative = s.endsWith('-');
    s = s.slice(0, -1).trimEnd();
  }
  if (!/^(\d[\d,]*)?(\.\d*)?([eE][+-]?\d+)?$/.test(s) || !/\d/.test(s.replace(/[eE][+-]?\d+$/, ''))) return Number.NaN;
  const v = Number(s.replace(/,/g, ''));
  return negative ? -v : v;
}

/** .NET Core `Math.Pow` (IEEE 754): `pow(1, y)` and `pow(-1, ±∞)` are 1 where JS gives NaN. */
export function dotnetPow(x: number, y: number): number {
  if (x === 1) return 1;
  if (x === -1 && (y === Number.POSITIVE_INFINITY || y === Number.NEGATIVE_INFINITY)) return 1;
  return x ** y;
}
