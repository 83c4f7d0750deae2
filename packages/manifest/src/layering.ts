import type { Issue } from '@kedge/contracts';
import { compileRoute, describeRouteError } from '@kedge/routing';
import { checkPatch } from '@kedge/protocol';
import { IssueCollector, formatPath, isObject, typeName } from './issues.js';
import { checkModule, type ModulesContent } from './validate.js';

const DESIRED = 'properties.desired';

/** A layered deployment's content, as the hub stores it with its priority. */
export interface Layer {
  readonly id: string;
  readonly priority: number;
  readonly content: ModulesContent;
}

/**
 * Validates the `modulesContent` of a layered deployment: each module entry holds `properties.desired` or
 * `properties.desired.<path>` keys. Values under well-known paths (`$edgeAgent … modules.<m>`,
 * `$edgeHub … routes.<r>`) are checked like the same parts of a full manifest.
 */
export function validateLayer(input: unknown): { ok: true; value: ModulesContent; warnings: Issue[] } | { ok: false; error: Issue[]; warnings: Issue[] } {
  const issues = new IssueCollector();
  let doc: unknown = input;
  if (isObject(doc) && isObject(doc.content)) doc = doc.content;
  if (isObject(doc) && 'modulesContent' in doc) doc = doc.modulesContent;
  if (!isObject(doc)) {
    issues.error(['modulesContent'], `expected an object, got ${typeName(doc)}`);
    return { ok: false, error: issues.errors, warnings: issues.warnings };
  }
  for (const [name, entry] of Object.entries(doc)) {
    if (!isObject(entry)) {
      issues.error([name], `expected an object of "${DESIRED}[.<path>]" keys, got ${typeName(entry)}`);
      continue;
    }
    for (const [key, value] of Object.entries(entry)) {
      if (key !== DESIRED && !key.startsWith(`${DESIRED}.`)) {
        issues.error([name, key], `layer keys are "${DESIRED}" or "${DESIRED}.<path>"`);
        continue;
      }
      const path = key === DESIRED ? [] : key.slice(DESIRED.length + 1).split('.');
      if (path.some((s) => s === '')) {
        issues.error([name, key], 'empty path segment');
        continue;
      }
      if (key === DESIRED && !isObject(value)) issues.error([name, key], `expected an object, got ${typeName(value)}`);
      const unsafe = path.find((seg) => /[$ ]/.test(seg));
      if (unsafe !== undefined) issues.error([name, key], `path segment "${unsafe}" cannot be a twin key (no "$" or spaces)`);
      if (isObject(value)) {
        // The value becomes part of a twin: the same rules as a full manifest's desired documents.
        const r = checkPatch(value, formatPath([name, key]));
        if (!r.ok) issues.errors.push({ path: r.error.path, message: `IoT Hub refuses this in a twin: ${r.error.message}` });
      }
      if (name === '$edgeAgent' && (path[0] === 'modules' || (path[0] === 'systemModules' && path.length === 2)) && path.length === 2) {
        checkModule(value, [name, key], issues, 1, path[0] === 'systemModules');
      }
      if (name === '$edgeHub' && path[0] === 'routes' && path.length === 2) {
        const text = typeof value === 'string' ? value : isObject(value) && typeof value.route === 'string' ? value.route : undefined;
        if (text === undefined) issues.error([name, key], 'expected a route string or {"route": …}');
        else {
          const c = compileRoute(text);
          if (!c.ok) issues.error([name, key], describeRouteError(c.error));
        }
      }
    }
  }
  return issues.errors.length > 0 ? { ok: false, error: issues.errors, warnings: issues.warnings } : { ok: true, value: doc as ModulesContent, warnings: issues.warnings };
}

/**
 * Merges layered deployments onto a base deployment the way IoT Hub does: layers apply in ascending priority (a
 * higher priority wins on the same path); `properties.desired.<a.b.c>` replaces the subtree at `a.b.c`, and a
 * layer's plain `properties.desired` replaces the whole desired document. Returns a new content with one
 * `properties.desired` per module; the inputs are not modified. Layers of equal priority apply in the given order.
 */
export function composeLayers(base: ModulesContent | undefined, layers: readonly Layer[]): ModulesContent {
  // Module names and paths come from clients (`__proto__`, `constructor`, …): null-prototype maps, own reads only.
  const out = Object.create(null) as Record<string, Record<string, unknown>>;
  for (const [name, entry] of Object.entries(base ?? {})) {
    const d = isObject(entry) ? entry[DESIRED] : undefined;
    out[name] = isObject(d) ? structuredClone(d) : {};
  }
  const ordered = layers.map((l, i) => ({ l, i })).sort((a, b) => a.l.priority - b.l.priority || a.i - b.i);
  for (const { l } of ordered) {
    for (const [name, entry] of Object.entries(l.content)) {
      if (!isObject(entry)) continue;
      // The whole-document key first, so that a same-layer path key refines it instead of being overwritten.
      const keys = Object.keys(entry).sort((a, b) => (a === DESIRED ? -1 : b === DESIRED ? 1 : 0));
      for (const key of keys) {
        const value = structuredClone(entry[key]);
        if (key === DESIRED) {
          out[name] = isObject(value) ? value : {};
          continue;
        }
        if (!key.startsWith(`${DESIRED}.`)) continue;
        const target = Object.hasOwn(out, name) ? (out[name] as Record<string, unknown>) : (out[name] = Object.create(null) as Record<string, unknown>);
        setPath(target, key.slice(DESIRED.length + 1).split('.'), value);
      }
    }
  }
  return Object.fromEntries(Object.entries(out).map(([k, d]) => [k, { [DESIRED]: d }]));
}

/** Defines an own data property (never a setter such as `__proto__`), whatever the object's prototype. */
function define(node: Record<string, unknown>, key: string, value: unknown): void {
  Object.defineProperty(node, key, { value, writable: true, enumerable: true, configurable: true });
}

function setPath(root: Record<string, unknown>, path: readonly string[], value: unknown): void {
  let node = root;
  for (let i = 0; i < path.length - 1; i++) {
    const seg = path[i] as string;
    const next = Object.hasOwn(node, seg) ? node[seg] : undefined;
    if (isObject(next)) node = next;
    else {
      const created = Object.create(null) as Record<string, unknown>;
      define(node, seg, created);
      node = created;
    }
  }
  const last = path[path.length - 1];
  if (last !== undefined) define(node, last, value);
}
