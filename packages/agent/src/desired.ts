import type { Issue } from '@kedge/contracts';
import { validateManifest, type EdgeDeploymentSpec } from '@kedge/manifest';
import { isObject, type Json, type JsonObject } from '@kedge/protocol';

/** IoT Edge's deployment status codes (`lastDesiredStatus.code`, iotedge-protocols.md §5.1). */
export const DesiredStatusCode = {
  Ok: 200,
  ConfigFormatError: 400,
  Unknown: 406,
  InvalidSchemaVersion: 412,
  ConfigEmptyError: 417,
  Failed: 500,
} as const;
export type DesiredStatusCode = (typeof DesiredStatusCode)[keyof typeof DesiredStatusCode];

/** `lastDesiredStatus` as edgeAgent reports it. */
export interface DesiredStatus {
  readonly code: number;
  readonly description: string;
}

/** Keys that would reach an object's prototype if merged with ordinary assignment. */
const POISON = new Set(['__proto__', 'constructor', 'prototype']);

/** The first key anywhere in `v` that must never be merged into an object, or undefined. */
export function poisonedKey(v: unknown, depth = 0): string | undefined {
  if (depth > 32) return '(nesting too deep)';
  if (Array.isArray(v)) {
    for (const x of v) {
      const p = poisonedKey(x, depth + 1);
      if (p) return p;
    }
    return undefined;
  }
  if (!isObject(v)) return undefined;
  for (const k of Object.keys(v)) {
    if (POISON.has(k)) return k;
    const p = poisonedKey(v[k], depth + 1);
    if (p) return p;
  }
  return undefined;
}

/**
 * Applies a desired-properties patch (JSON merge patch, RFC 7396: `null` deletes) to a document. Returns a new
 * document built from null-prototype objects; the inputs are not modified. `$version`/`$metadata` at the top are
 * dropped (the caller tracks the version). Callers reject patches with {@link poisonedKey} first.
 */
export function mergeDesired(doc: JsonObject, patch: JsonObject): JsonObject {
  const merge = (target: JsonObject, p: JsonObject, top: boolean): JsonObject => {
    const out = Object.create(null) as JsonObject;
    for (const k of Object.keys(target)) if (!(top && (k === '$version' || k === '$metadata'))) out[k] = target[k] as Json;
    for (const k of Object.keys(p)) {
      if (top && (k === '$version' || k === '$metadata')) continue;
      const v = p[k] as Json;
      if (v === null) delete out[k];
      else if (isObject(v)) out[k] = merge(isObject(out[k]) ? (out[k]) : {}, v, false);
      else out[k] = structuredClone(v);
    }
    return out;
  };
  return merge(doc, patch, true);
}

/** The user part of a desired document (no `$version`, `$metadata`), as a plain JSON value. */
export function desiredUserPart(doc: JsonObject): JsonObject {
  const out: JsonObject = {};
  for (const k of Object.keys(doc)) if (k !== '$version' && k !== '$metadata') out[k] = doc[k] as Json;
  return JSON.parse(JSON.stringify(out)) as JsonObject;
}

/** The outcome of checking an `$edgeAgent` desired document. */
export type DesiredCheck =
  | { readonly ok: true; readonly spec: Pick<EdgeDeploymentSpec, 'agentSchemaVersion' | 'systemModules' | 'modules' | 'registryCredentials'>; readonly warnings: readonly Issue[] }
  | { readonly ok: false; readonly status: DesiredStatus };

/** edgeAgent accepts `$edgeAgent` schema versions of major 1 up to 1.1 (EdgeAgentConnection.ExpectedSchemaVersion). */
function schemaVersionProblem(v: unknown): string | undefined {
  if (typeof v !== 'string') return 'schemaVersion is missing';
  const m = /^(\d+)\.(\d+)(?:\.(\d+))?$/.exec(v.trim());
  if (!m) return `schemaVersion "${v}" is not a version`;
  const [major, minor, patch] = [Number(m[1]), Number(m[2]), Number(m[3] ?? 0)];
  if (major !== 1 || minor > 1 || (minor === 1 && patch > 0)) return `schemaVersion "${v}" is not supported (expected 1.0 or 1.1)`;
  return undefined;
}

/**
 * The `$edgeAgent` half of what the core validates as a deployment. The `$edgeHub` twin belongs to the edge hub's
 * identity (the agent cannot read it without taking over the edge hub's connection), so the agent validates its
 * own document paired with an empty `$edgeHub` part: route checks that need both halves become warnings.
 */
const HUB_PLACEHOLDER = { schemaVersion: '1.1', routes: {} };

/**
 * Checks an `$edgeAgent` desired document as edgeAgent would and turns it into the EdgeDeployment fields the twin
 * owns. Refusals carry IoT Edge's status codes: 412 for an unsupported schema version, 417 for an empty
 * deployment, 400 for everything else that does not validate (every `path: message`).
 */
export function checkAgentDesired(doc: JsonObject): DesiredCheck {
  const user = desiredUserPart(doc);
  if (Object.keys(user).length === 0) return { ok: false, status: { code: DesiredStatusCode.ConfigEmptyError, description: 'The deployment is empty' } };
  const poison = poisonedKey(user);
  if (poison) return { ok: false, status: { code: DesiredStatusCode.ConfigFormatError, description: `Error while parsing desired properties - key "${poison}" is not allowed` } };
  const sv = schemaVersionProblem(user['schemaVersion']);
  if (sv) return { ok: false, status: { code: DesiredStatusCode.InvalidSchemaVersion, description: sv } };
  const r = validateManifest({ modulesContent: { $edgeAgent: { 'properties.desired': user }, $edgeHub: { 'properties.desired': HUB_PLACEHOLDER } } });
  if (!r.ok) {
    const text = r.error.map((i) => `${i.path}: ${i.message}`).join('; ');
    return { ok: false, status: { code: DesiredStatusCode.ConfigFormatError, description: truncate(`Error while parsing desired properties - ${text}`) } };
  }
  const s = r.manifest.spec;
  return {
    ok: true,
    spec: { agentSchemaVersion: s.agentSchemaVersion, systemModules: s.systemModules, modules: s.modules, registryCredentials: s.registryCredentials },
    warnings: r.warnings.filter((w) => !w.path.startsWith('$edgeHub')),
  };
}

function truncate(s: string, n = 2000): string {
  return s.length > n ? `${s.slice(0, n - 1)}…` : s;
}
