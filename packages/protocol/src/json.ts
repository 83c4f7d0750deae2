/**
 * JSON from devices and clients, handled without ever touching a prototype.
 *
 * Keys such as `__proto__`, `constructor` or `toString` are ordinary twin keys (IoT Hub stores and returns them as
 * data), but on an ordinary object `obj[k] = v` with `k = '__proto__'` replaces the prototype, and `obj[k]` reads
 * an inherited member when there is no own property. So untrusted JSON lives in **null-prototype** objects, which
 * have neither behaviour, and code that may still meet ordinary objects reads keys through {@link ownValue}.
 */

/** A JSON value as stored in twins. */
export type Json = string | number | boolean | null | Json[] | { [key: string]: Json };
export type JsonObject = { [key: string]: Json };

/** A JSON object (not an array, not null). */
export const isObject = (v: unknown): v is JsonObject => typeof v === 'object' && v !== null && !Array.isArray(v);

/** A new empty null-prototype object: any key assigned to it becomes an own data property, `__proto__` included. */
export const newObject = <T = Json>(): { [key: string]: T } => Object.create(null) as { [key: string]: T };

/** True when `obj` has an own property `key` (never an inherited one). */
export const hasOwn = (obj: object, key: string): boolean => Object.prototype.hasOwnProperty.call(obj, key);

/** The own property `key` of `obj`, or `undefined`; never an inherited member such as `constructor`. */
export function ownValue<T>(obj: { readonly [key: string]: T }, key: string): T | undefined {
  return hasOwn(obj, key) ? obj[key] : undefined;
}

/** Like `JSON.parse` (throws `SyntaxError` the same way), but every object in the result has a null prototype. */
export function parseJson(text: string): unknown {
  // The reviver runs bottom-up; JSON.parse defines each (revived) member with CreateDataProperty, never a setter.
  return JSON.parse(text, (_key, value: unknown) => (isObject(value) ? (Object.setPrototypeOf(value, null) as unknown) : value));
}

const strictUtf8 = new TextDecoder('utf-8', { fatal: true });

/**
 * Parses JSON bytes from the wire like {@link parseJson}. Bytes that are not valid UTF-8 are refused (`TypeError`)
 * rather than decoded with U+FFFD replacement characters; malformed JSON throws `SyntaxError`.
 */
export function parseJsonBytes(bytes: Uint8Array): unknown {
  return parseJson(strictUtf8.decode(bytes));
}

/** A deep copy of a JSON value whose objects all have a null prototype (own enumerable keys only). */
export function cloneJson<T extends Json>(value: T): T {
  if (Array.isArray(value)) return value.map((v) => cloneJson(v)) as T;
  if (!isObject(value)) return value;
  const out = newObject();
  for (const [k, v] of Object.entries(value)) out[k] = cloneJson(v);
  return out as T;
}

/** A null-prototype object built from `[key, value]` pairs (a safe `Object.fromEntries` for untrusted keys). */
export function objectFromEntries<T>(entries: Iterable<readonly [string, T]>): { [key: string]: T } {
  const out = newObject<T>();
  for (const [k, v] of entries) out[k] = v;
  return out;
}
