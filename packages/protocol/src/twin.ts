import type { Result } from '@kedge/contracts';
import { err, ok } from '@kedge/contracts';
import type { Json, JsonObject } from './json.js';
import { cloneJson, hasOwn, isObject, newObject, ownValue } from './json.js';

// Every function here takes documents that may hold any key a device or client chose (`__proto__`, `constructor`,
// …): working copies are null-prototype (cloneJson/newObject) and keys are read with ownValue/hasOwn.

/**
 * One side of a twin's `properties` (desired or reported) as stored and served: user properties plus `$metadata`
 * (a tree mirroring the properties, each node with `$lastUpdated`, desired nodes also `$lastUpdatedVersion`) and
 * `$version` (starts at 1, +1 per accepted patch).
 */
export type TwinProperties = JsonObject & { $version: number; $metadata: JsonObject };

/** IoT Hub's size limits, in bytes of the JSON text without `$metadata`/`$version`. */
export const TwinLimits = { desiredBytes: 32 * 1024, reportedBytes: 32 * 1024, tagsBytes: 8 * 1024, maxDepth: 10, maxKeyBytes: 1024 } as const;

/** Why a patch was refused; `path` is a dotted path inside the patch. */
export interface PatchProblem {
  readonly path: string;
  readonly message: string;
  readonly tooLarge?: boolean;
}

/** A fresh properties document, version 1 (null-prototype). */
export function emptyProperties(nowIso: string): TwinProperties {
  const metadata = newObject();
  metadata['$lastUpdated'] = nowIso;
  const doc = newObject() as TwinProperties;
  doc.$metadata = metadata;
  doc.$version = 1;
  return doc;
}

/** The user part of a properties document (no `$metadata`, `$version`), as a null-prototype object sharing values. */
export function userProperties(doc: JsonObject): JsonObject {
  const out = newObject();
  for (const [k, v] of Object.entries(doc)) if (k !== '$metadata' && k !== '$version') out[k] = v;
  return out;
}

/**
 * Checks a patch (or a full document) for what IoT Hub refuses: non-objects, keys with `.`, `$`, spaces or control
 * characters, keys over 1 KB, depth over 10. Top-level `$version`/`$metadata` are tolerated and ignored by callers.
 */
export function checkPatch(patch: unknown, where: string): Result<JsonObject, PatchProblem> {
  if (!isObject(patch)) return err({ path: where, message: 'must be a JSON object' });
  const walk = (v: Json, path: string, depth: number): PatchProblem | undefined => {
    if (depth > TwinLimits.maxDepth) return { path, message: `nesting deeper than ${TwinLimits.maxDepth} levels` };
    if (Array.isArray(v)) {
      for (let i = 0; i < v.length; i++) {
        const p = walk(v[i] as Json, `${path}[${i}]`, depth + 1);
        if (p) return p;
      }
      return undefined;
    }
    if (!isObject(v)) return typeof v === 'number' && !Number.isFinite(v) ? { path, message: 'numbers must be finite' } : undefined;
    for (const [k, child] of Object.entries(v)) {
      const top = depth === 1 && (k === '$version' || k === '$metadata');
      if (!top && (k.length === 0 || /[.$ ]/.test(k) || hasControlChar(k))) {
        return { path: `${path}.${k}`, message: 'keys must be non-empty and cannot contain ".", "$", spaces or control characters' };
      }
      if (Buffer.byteLength(k) > TwinLimits.maxKeyBytes) return { path: `${path}.${k.slice(0, 32)}…`, message: 'keys are limited to 1 KB' };
      if (top) continue;
      const p = walk(child, `${path}.${k}`, depth + 1);
      if (p) return p;
    }
    return undefined;
  };
  const problem = walk(patch, where, 1);
  // A null-prototype copy: callers index it by the (untrusted) keys it holds.
  return problem ? err(problem) : ok(cloneJson(patch));
}

const hasControlChar = (k: string): boolean => [...k].some((c) => c.charCodeAt(0) < 0x20);

/** JSON byte size of the user part of a document. */
export const userBytes = (doc: JsonObject): number => Buffer.byteLength(JSON.stringify(userProperties(doc)));

/** Copies `stamp`'s (our own, fixed) metadata keys onto `meta`. */
function stampInto(meta: JsonObject, stamp: JsonObject): void {
  for (const [k, v] of Object.entries(stamp)) meta[k] = v;
}

/** Merges `patch` into `target` (and its metadata tree `meta`); both must be null-prototype trees. */
function mergeInto(target: JsonObject, meta: JsonObject, patch: JsonObject, stamp: JsonObject): void {
  for (const [k, v] of Object.entries(patch)) {
    if (k === '$version' || k === '$metadata') continue;
    if (v === null) {
      delete target[k];
      delete meta[k];
      continue;
    }
    const current = ownValue(target, k);
    if (isObject(v)) {
      const t = isObject(current) ? current : newObject();
      const m0 = ownValue(meta, k);
      const m = isObject(m0) && isObject(current) ? m0 : newObject();
      target[k] = t;
      meta[k] = m;
      mergeInto(t, m, v, stamp);
      stampInto(m, stamp);
    } else {
      target[k] = cloneJson(v);
      meta[k] = cloneJson(stamp);
    }
  }
}

/** A properties document's null-prototype working copy (also repairs a missing `$metadata`). */
function workingCopy(doc: TwinProperties): TwinProperties {
  const next = cloneJson(doc as JsonObject) as TwinProperties;
  if (!isObject(ownValue(next, '$metadata'))) next.$metadata = newObject();
  return next;
}

/**
 * Applies a JSON merge patch (`null` deletes) to a properties document: returns the new document with `$version`
 * + 1 and `$metadata` stamped on every touched node. Pure; the input is not modified.
 */
export function applyPatch(doc: TwinProperties, patch: JsonObject, nowIso: string, opts: { desired: boolean }): TwinProperties {
  const version = doc.$version + 1;
  const next = workingCopy(doc);
  const stamp: JsonObject = opts.desired ? { $lastUpdated: nowIso, $lastUpdatedVersion: version } : { $lastUpdated: nowIso };
  mergeInto(next, next.$metadata, patch, stamp);
  stampInto(next.$metadata, stamp);
  next.$version = version;
  return next;
}

/**
 * Replaces the user part of a document (deployments write whole desired documents). Returns the new document and
 * the merge patch (with `null` for removed keys) that turns the old user part into the new one, which is what
 * connected clients are sent.
 */
export function replaceProperties(doc: TwinProperties, next: JsonObject, nowIso: string, opts: { desired: boolean }): { doc: TwinProperties; patch: JsonObject } {
  const patch = diffAsMergePatch(userProperties(doc), userProperties(next));
  const base = emptyProperties(nowIso);
  base.$version = doc.$version;
  return { doc: applyPatch(base, userProperties(next), nowIso, opts), patch };
}

/** The merge patch from `a` to `b` (RFC 7396 inverse): changed values, `null` for removed keys. */
export function diffAsMergePatch(a: JsonObject, b: JsonObject): JsonObject {
  const out = newObject();
  for (const k of Object.keys(a)) if (!hasOwn(b, k)) out[k] = null;
  for (const [k, v] of Object.entries(b)) {
    const old = ownValue(a, k);
    if (isObject(v) && isObject(old)) {
      const d = diffAsMergePatch(old, v);
      if (Object.keys(d).length > 0) out[k] = d;
    } else if (!jsonEqual(old, v)) {
      out[k] = cloneJson(v);
    }
  }
  return out;
}

/** Deep equality of JSON values (object key order ignored). */
export function jsonEqual(a: Json | undefined, b: Json | undefined): boolean {
  if (a === b) return true;
  if (Array.isArray(a) && Array.isArray(b)) return a.length === b.length && a.every((x, i) => jsonEqual(x, b[i]));
  if (isObject(a) && isObject(b)) {
    const ka = Object.keys(a);
    if (ka.length !== Object.keys(b).length) return false;
    return ka.every((k) => hasOwn(b, k) && jsonEqual(a[k], ownValue(b, k)));
  }
  return false;
}

/** Merges tags (merge patch semantics, `null` deletes), without metadata. */
export function mergeTags(tags: JsonObject, patch: JsonObject): JsonObject {
  const next = cloneJson(tags);
  const meta = newObject();
  mergeInto(next, meta, patch, {});
  return next;
}
