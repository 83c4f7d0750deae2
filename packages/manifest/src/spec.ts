import type { Issue } from '@kedge/contracts';
import { checkRouteName, compileRoute, describeRouteError } from '@kedge/routing';
import { parseCreateOptions, type CreateOptions } from './create-options.js';
import { IssueCollector } from './issues.js';
import { EdgeDeploymentSpecSchema, type EdgeDeploymentSpec } from './schema.js';
import { isObject } from './issues.js';
import { checkModuleName } from './validate.js';
import { zodIssues } from './zod-issues.js';

/** A validated EdgeDeployment spec with each module's createOptions parsed. */
export interface ParsedSpec {
  readonly spec: EdgeDeploymentSpec;
  /** Keyed by module name; system modules as `edgeAgent` / `edgeHub`. */
  readonly createOptions: Readonly<Record<string, CreateOptions>>;
  readonly warnings: readonly Issue[];
}

/**
 * Validates the `spec` of an EdgeDeployment resource (as the controller reads it from the API server) with the
 * same rules as a manifest: schema, module names, createOptions, routes. Errors carry paths under `spec`.
 */
export function parseEdgeDeploymentSpec(input: unknown): { ok: true; value: ParsedSpec } | { ok: false; error: Issue[] } {
  const proto = protoKeys(input);
  if (proto.length > 0) return { ok: false, error: proto };
  const r = EdgeDeploymentSpecSchema.safeParse(input, { reportInput: true });
  if (!r.success) return { ok: false, error: zodIssues(r.error, ['spec']) };
  const spec = r.data;
  const issues = new IssueCollector();
  const createOptions: Record<string, CreateOptions> = {};
  const all = [
    ...Object.entries(spec.systemModules).map(([n, m]) => [n, m, ['spec', 'systemModules', n]] as const),
    ...Object.entries(spec.modules).map(([n, m]) => [n, m, ['spec', 'modules', n]] as const),
  ];
  for (const [name, m, path] of all) {
    if (!m) continue;
    if (path[1] === 'modules') {
      const problem = checkModuleName(name);
      if (problem) issues.error(path, problem);
      if (name === 'edgeAgent' || name === 'edgeHub') issues.error(path, `"${name}" is a system module; put it under spec.systemModules`);
    }
    const co = parseCreateOptions(m.settings.createOptions, [...path, 'settings', 'createOptions'], issues);
    if (co) createOptions[name] = co.options;
  }
  for (const [name, route] of Object.entries(spec.routes)) {
    const nameProblem = checkRouteName(name);
    if (nameProblem) issues.error(['spec', 'routes', name], nameProblem);
    const c = compileRoute(route.route);
    if (!c.ok) issues.error(['spec', 'routes', name, 'route'], describeRouteError(c.error));
  }
  for (const [name, cred] of Object.entries(spec.registryCredentials)) {
    if (cred.password === undefined && cred.passwordSecretRef === undefined) issues.error(['spec', 'registryCredentials', name], 'needs password or passwordSecretRef');
  }
  if (issues.errors.length > 0) return { ok: false, error: issues.errors };
  return { ok: true, value: { spec, createOptions, warnings: issues.warnings } };
}

/**
 * zod's records drop an own `__proto__` key without an issue, so a resource naming a module, route, credential or env
 * var `__proto__` would lose it silently; refuse it by path instead (validateManifest refuses it the same way).
 */
function protoKeys(input: unknown): Issue[] {
  const out: Issue[] = [];
  if (!isObject(input)) return out;
  const has = (o: unknown): boolean => isObject(o) && Object.hasOwn(o, '__proto__');
  const refuse = (path: string) => out.push({ path, message: '"__proto__" cannot be a name here: the EdgeDeployment resource cannot carry a key of that name' });
  for (const k of ['modules', 'routes', 'registryCredentials'] as const) if (has(input[k])) refuse(`spec.${k}.__proto__`);
  for (const group of ['modules', 'systemModules'] as const) {
    const mods = input[group];
    if (!isObject(mods)) continue;
    for (const [name, m] of Object.entries(mods)) if (isObject(m) && has(m.env)) refuse(`spec.${group}.${name}.env.__proto__`);
  }
  return out;
}
