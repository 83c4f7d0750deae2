import type { Result } from '@kedge/contracts';
import { err, ok } from '@kedge/contracts';

/** A JSON value as stored in twins. */
export type Json = string | number | boolean | null | Json[] | { [key: string]: Json };
export type JsonObject = { [key: string]: Json };

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

export const isObject = (v: unknown): v is JsonObject => typeof v === 'object' && v !== null && !Array.isArray(v);

/** A fresh properties document, version 1. */
export function emptyProperties(nowIso: string): TwinProperties {
  return { $metadata: { $lastUpdated: nowIso }, $version: 1 };
}

/** The user part of a properties document (no `$metadata`, `$version`). */
export function userProperties(doc: JsonObject): JsonObject {
  const out: JsonObject = {};
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
  return problem ? err(problem) : ok(patch);
}

const hasControlChar = (k: string): boolean => [...k].some((c) => c.charCodeAt(0) < 0x20);

/** JSON byte size of the user part of a document. */
export const userBytes = (doc: JsonObject): number => Buffer.byteLength(JSON.stringify(userProperties(doc)));

function mergeInto(target: JsonObject, meta: JsonObject, patch: JsonObject, stamp: JsonObject): void {
  for (const [k, v] of Object.entries(patch)) {
    if (k === '$version' || k === '$metadata') continue;
    if (v === null) {
      delete target[k];
      delete meta[k];
      continue;
    }
    const current = target[k];
    if (isObject(v)) {
      const t: JsonObject = isObject(current) ? current : {};
      const m0 = meta[k];
      const m: JsonObject = isObject(m0) && isObject(current) ? m0 : {};
      target[k] = t;
      meta[k] = m;
      mergeInto(t, m, v, stamp);
      Object.assign(m, stamp);
    } else {
      target[k] = structuredClone(v);
      meta[k] = { ...stamp };
    }
  }
}

/**
 * Applies a JSON merge patch (`null` deletes) to a properties document: returns the new document with `$version`
 * + 1 and `$metadata` stamped on every touched node. Pure; the input is not modified.
 */
export function applyPatch(doc: TwinProperties, patch: JsonObject, nowIso: string, opts: { desired: boolean }): TwinProperties {
  const version = doc.$version + 1;
  const next = structuredClone(doc);
  const stamp: JsonObject = opts.desired ? { $lastUpdated: nowIso, $lastUpdatedVersion: version } : { $lastUpdated: nowIso };
  mergeInto(next, next.$metadata, patch, stamp);
  Object.assign(next.$metadata, stamp);
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
  const base: TwinProperties = { $metadata: { $lastUpdated: nowIso }, $version: doc.$version };
  return { doc: applyPatch(base, userProperties(next), nowIso, opts), patch };
}

/** The merge patch from `a` to `b` (RFC 7396 inverse): changed values, `null` for removed keys. */
export function diffAsMergePatch(a: JsonObject, b: JsonObject): JsonObject {
  const out: JsonObject = {};
  for (const k of Object.keys(a)) if (!(k in b)) out[k] = null;
  for (const [k, v] of Object.entries(b)) {
    const old = a[k];
    if (isObject(v) && isObject(old)) {
      const d = diffAsMergePatch(old, v);
      if (Object.keys(d).length > 0) out[k] = d;
    } else if (!jsonEqual(old, v)) {
      out[k] = structuredClone(v);
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
    return ka.every((k) => k in b && jsonEqual(a[k], b[k]));
  }
  return false;
}

/** Merges tags (merge patch semantics, `null` deletes), without metadata. */
export function mergeTags(tags: JsonObject, patch: JsonObject): JsonObject {
  const next = structuredClone(tags);
  const meta: JsonObject = {};
  mergeInto(next, meta, patch, {});
  return next;
}
