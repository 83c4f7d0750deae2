/** One step of a `$body` path: a property name, optionally followed by an array index (`name[3]`). */
export interface PathSegment {
  readonly key: string;
  readonly index?: number;
}

// IDENTIFIER characters of edgeHub's JsonPath.g4: anything but ()<>@,;:\"/[]?={}. and tab/CR/LF.
const BAD_IDENTIFIER_CHARS = /[()<>@,;:\\"/[\]?={}.\t\r\n]/;

/**
 * Validates and splits a `$body.` path the way edgeHub's `JsonPathValidator` does (grammar `expr: innerExpr ('.'
 * innerExpr)*; innerExpr: IDENTIFIER | IDENTIFIER '[' INT ']'`). A segment made only of digits lexes as INT there and
 * is rejected. Returns an error message instead of segments when the path is not supported.
 */
export function parseBodyPath(path: string): PathSegment[] | string {
  if (path.length === 0) return '$body query cannot be empty';
  const segments: PathSegment[] = [];
  for (const part of path.split('.')) {
    const m = /^([^[\]]*)(?:\[(\d+)\])?$/.exec(part);
    const key = m?.[1];
    if (m === null || key === undefined || key.length === 0) return `Error in $body query. Invalid path segment '${part}' in '${path}'`;
    if (BAD_IDENTIFIER_CHARS.test(key) || /^\d+$/.test(key)) return `Error in $body query. Invalid path segment '${part}' in '${path}'`;
    const index = m[2];
    segments.push(index === undefined ? { key } : { key, index: Number(index) });
  }
  return segments;
}

/**
 * Validates a `twin_change_includes` argument like edgeHub's `TwinChangeJsonPathValidator`: a dotted path below
 * `properties.desired`, `properties.reported` or `tags`, with no array indexes.
 */
export function parseTwinPath(path: string): PathSegment[] | string {
  if (path.length === 0) return 'twin_change_includes argument cannot be empty';
  const parts = path.split('.');
  const ok =
    parts.every((p) => p.length > 0 && !BAD_IDENTIFIER_CHARS.test(p) && !/\s/.test(p)) &&
    ((parts[0] === 'properties' && (parts[1] === 'desired' || parts[1] === 'reported') && parts.length >= 3) ||
      (parts[0] === 'tags' && parts.length >= 2));
  if (!ok) return `Invalid twin_change_includes path '${path}': expected properties.desired.<x>, properties.reported.<x> or tags.<x>`;
  return parts.map((key) => ({ key }));
}

/** Marker for "the path selected an object, an array or several tokens" (edgeHub `QueryValueType.Object`). */
export const OBJECT = Symbol('object');

/**
 * Newtonsoft `SelectTokens` over a parsed JSON document for the supported subset (names, `[n]`, and `*` as a
 * wildcard): returns the single leaf value, `null` when nothing matches, or {@link OBJECT} for objects, arrays and
 * multiple matches. Property names are case-sensitive.
 */
export function selectPath(doc: unknown, path: readonly PathSegment[]): unknown {
  if (!path.some((s) => s.key === '*')) return selectSimple(doc, path);
  let current: unknown[] = [doc];
  for (const seg of path) {
    const next: unknown[] = [];
    for (const node of current) {
      if (node === null || typeof node !== 'object') continue;
      if (seg.key === '*') {
        for (const v of Array.isArray(node) ? node : Object.values(node)) next.push(v);
      } else if (!Array.isArray(node) && Object.prototype.hasOwnProperty.call(node, seg.key)) {
        next.push((node as Record<string, unknown>)[seg.key]);
      }
    }
    current = next;
    if (seg.index !== undefined) {
      const indexed: unknown[] = [];
      for (const node of current) {
        if (Array.isArray(node) && seg.index < node.length) indexed.push(node[seg.index]);
      }
      current = indexed;
    }
    if (current.length === 0) return null;
  }
  if (current.length !== 1) return OBJECT;
  const v = current[0];
  return v !== null && typeof v === 'object' ? OBJECT : v;
}

/** {@link selectPath} for paths without wildcards: walks the document without allocating. */
export function selectSimple(doc: unknown, path: readonly PathSegment[]): unknown {
  let node = doc;
  for (const seg of path) {
    if (node === null || typeof node !== 'object' || Array.isArray(node)) return null;
    if (!Object.prototype.hasOwnProperty.call(node, seg.key)) return null;
    node = (node as Record<string, unknown>)[seg.key];
    if (seg.index !== undefined) {
      if (!Array.isArray(node) || seg.index >= node.length) return null;
      node = node[seg.index] as unknown;
    }
  }
  return node !== null && typeof node === 'object' ? OBJECT : node;
}

const DAYS_IN_MONTH = [31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];

/**
 * True when Newtonsoft's default `DateParseHandling.DateTime` would read this JSON string as a date (ISO 8601
 * `yyyy-MM-ddTHH:mm:ss[.f…][Z|±HH[:mm]]`, 19–40 characters, or `/Date(…)/`). edgeHub then sees an object, so a
 * `$body` query on it is undefined.
 */
export function isNewtonsoftDate(s: string): boolean {
  if (s.charCodeAt(0) === 47 /* '/' */) return /^\/Date\(-?\d+([+-]\d{4})?\)\/$/.test(s);
  if (s.length < 19 || s.length > 40 || s[10] !== 'T') return false;
  const m = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(\.\d+)?(Z|[+-]\d{2}(:?\d{2})?)?$/.exec(s);
  if (m === null) return false;
  const [year, month, day, hour, minute, second] = m.slice(1, 7).map(Number) as [number, number, number, number, number, number];
  const leap = (year % 4 === 0 && year % 100 !== 0) || year % 400 === 0;
  const maxDay = month === 2 && !leap ? 28 : (DAYS_IN_MONTH[month - 1] ?? 0);
  return year >= 1 && month >= 1 && month <= 12 && day >= 1 && day <= maxDay && hour < 24 && minute < 60 && second < 60;
}
