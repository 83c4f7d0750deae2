import { err, ok, type Issue, type Result } from '@kedge/contracts';
import { compileRoute, type CompiledRoute } from './route.js';

/** edgeHub's priority for routes that set none (`RouteFactory.DefaultPriority`): below every explicit 0..9. */
export const DEFAULT_PRIORITY = 2_000_000_000;

/** Default `storeAndForwardConfiguration.timeToLiveSecs` when the desired properties give none. */
export const DEFAULT_TIME_TO_LIVE_SECS = 7200;

/** One named, compiled route with its delivery settings. */
export interface RouteSpec {
  readonly name: string;
  /** The route text as configured. */
  readonly text: string;
  readonly route: CompiledRoute;
  /** 0 (highest) … 9, or {@link DEFAULT_PRIORITY} when not set. */
  readonly priority: number;
  /** Effective TTL: the route's own, or the store-and-forward TTL when the route sets none or 0; negative = infinite. */
  readonly timeToLiveSecs: number;
}

const ROOT = '$edgeHub.properties.desired';
// [IE doc/Route_priority_and_TTL.md] route names: non-empty, no '.', '$', '#' or blank.
const ROUTE_NAME = /^[^.$# ]+$/;
const MAX_UINT32 = 4_294_967_295;

const isObject = (v: unknown): v is Record<string, unknown> => v !== null && typeof v === 'object' && !Array.isArray(v);

/**
 * Unwraps what users pass as "the routes": the `$edgeHub` desired properties themselves, `{properties: {desired}}`,
 * a deployment manifest (`{modulesContent: {$edgeHub: {"properties.desired": …}}}`) or a deployment
 * (`{content: {modulesContent: …}}`).
 */
export function unwrapEdgeHubDesired(input: unknown): unknown {
  let v = input;
  if (isObject(v) && isObject(v['content'])) v = v['content'];
  if (isObject(v) && isObject(v['modulesContent'])) v = v['modulesContent'];
  if (isObject(v) && isObject(v['$edgeHub'])) v = v['$edgeHub'];
  if (isObject(v) && isObject(v['properties.desired'])) v = v['properties.desired'];
  if (isObject(v) && isObject(v['properties']) && isObject(v['properties']['desired'])) v = v['properties']['desired'];
  return v;
}

function parseSchemaVersion(v: unknown): { major: number; minor: number } | undefined {
  if (typeof v !== 'string') return undefined;
  // .NET Version.Parse: 2 to 4 numeric components.
  const m = /^\s*(\d+)\.(\d+)(\.\d+){0,2}\s*$/.exec(v);
  return m === null ? undefined : { major: Number(m[1]), minor: Number(m[2]) };
}

const isUint = (v: unknown, max: number): v is number => typeof v === 'number' && Number.isInteger(v) && v >= 0 && v <= max;

/**
 * Validates `$edgeHub` desired properties and compiles every route, the way edgeHub's `EdgeHubConfigParser` and
 * `RouteFactory` do: `schemaVersion` 1.0–1.3 (1.0 allows only string routes), route names matching `^[^.$# ]+$`,
 * `priority` 0..9, `timeToLiveSecs` unsigned (0 or absent means the store-and-forward TTL), empty route strings
 * skipped. Every problem is reported, each with a path like `$edgeHub.properties.desired.routes.<name>`; compile
 * errors include the line and column inside the route text. Also accepts the wrappers of
 * {@link unwrapEdgeHubDesired}.
 */
export function parseRoutes(input: unknown): Result<RouteSpec[], Issue[]> {
  const desired = unwrapEdgeHubDesired(input);
  const issues: Issue[] = [];
  if (!isObject(desired)) return err([{ path: ROOT, message: 'must be an object' }]);
  const version = parseSchemaVersion(desired['schemaVersion']);
  if (desired['schemaVersion'] === undefined) issues.push({ path: `${ROOT}.schemaVersion`, message: 'is required' });
  else if (version === undefined || version.major !== 1 || version.minor > 3) {
    issues.push({ path: `${ROOT}.schemaVersion`, message: `unsupported schema version ${JSON.stringify(desired['schemaVersion'])} (expected 1.0 to 1.3)` });
  }
  let ttl = DEFAULT_TIME_TO_LIVE_SECS;
  const saf = desired['storeAndForwardConfiguration'];
  if (saf !== undefined) {
    if (!isObject(saf)) issues.push({ path: `${ROOT}.storeAndForwardConfiguration`, message: 'must be an object' });
    else if (saf['timeToLiveSecs'] !== undefined) {
      const t = saf['timeToLiveSecs'];
      if (typeof t !== 'number' || !Number.isInteger(t)) issues.push({ path: `${ROOT}.storeAndForwardConfiguration.timeToLiveSecs`, message: 'must be an integer' });
      else ttl = t;
    }
  }
  const routes = desired['routes'];
  const specs: RouteSpec[] = [];
  if (routes === undefined) issues.push({ path: `${ROOT}.routes`, message: 'is required' });
  else if (!isObject(routes)) issues.push({ path: `${ROOT}.routes`, message: 'must be an object of named routes' });
  else {
    const objectsAllowed = version === undefined || version.minor >= 1;
    for (const [name, value] of Object.entries(routes)) {
      const path = `${ROOT}.routes.${name}`;
      const spec = parseOne(name, value, path, objectsAllowed, ttl, issues);
      if (spec !== undefined) specs.push(spec);
    }
  }
  return issues.length > 0 ? err(issues) : ok(specs);
}

function parseOne(name: string, value: unknown, path: string, objectsAllowed: boolean, defaultTtl: number, issues: Issue[]): RouteSpec | undefined {
  if (!ROUTE_NAME.test(name)) {
    issues.push({ path, message: "route name must be non-empty and contain no '.', '$', '#' or blank" });
    return undefined;
  }
  let text: unknown = value;
  let priority = DEFAULT_PRIORITY;
  let ttl = 0;
  if (isObject(value)) {
    if (!objectsAllowed) {
      issues.push({ path, message: 'schemaVersion 1.0 allows only string routes; use 1.1 or later for priority and timeToLiveSecs' });
      return undefined;
    }
    text = value['route'];
    if (value['priority'] !== undefined) {
      if (!isUint(value['priority'], 9)) issues.push({ path: `${path}.priority`, message: 'must be an integer from 0 to 9' });
      else priority = value['priority'];
    }
    if (value['timeToLiveSecs'] !== undefined) {
      if (!isUint(value['timeToLiveSecs'], MAX_UINT32)) issues.push({ path: `${path}.timeToLiveSecs`, message: 'must be a non-negative integer' });
      else ttl = value['timeToLiveSecs'];
    }
    if (text === undefined) {
      issues.push({ path: `${path}.route`, message: 'is required' });
      return undefined;
    }
  }
  if (typeof text !== 'string') {
    issues.push({ path, message: objectsAllowed ? 'must be a route string or {route, priority, timeToLiveSecs}' : 'must be a route string' });
    return undefined;
  }
  if (text.trim() === '') return undefined; // edgeHub skips empty routes
  const compiled = compileRoute(text);
  if (!compiled.ok) {
    const e = compiled.error;
    issues.push({ path: isObject(value) ? `${path}.route` : path, message: `line ${e.line}, column ${e.column}: ${e.message}` });
    return undefined;
  }
  return Object.freeze({ name, text, route: compiled.value, priority, timeToLiveSecs: ttl === 0 ? defaultTtl : ttl });
}

/**
 * Parses a text file of routes, one per line. Blank lines and lines starting with `#` or `//` are skipped. A line
 * may name its route as `name: FROM …`; unnamed routes are called `route1`, `route2`, … by their position among the
 * routes. Priority and TTL take their defaults. Issue paths are `line <n>` and messages give the column in the line.
 */
export function parseRouteLines(text: string): Result<RouteSpec[], Issue[]> {
  const specs: RouteSpec[] = [];
  const issues: Issue[] = [];
  const names = new Set<string>();
  let count = 0;
  text.split(/\r?\n/).forEach((raw, index) => {
    const trimmed = raw.trim();
    if (trimmed === '' || trimmed.startsWith('#') || trimmed.startsWith('//')) return;
    count++;
    const named = /^\s*([^\s:.$#]+)\s*:\s*((?:select|from)\b.*)$/is.exec(raw);
    const name = named?.[1] ?? `route${count}`;
    const routeText = named?.[2] ?? raw;
    const offset = named === null ? 0 : raw.length - routeText.length;
    const where = `line ${index + 1}`;
    if (names.has(name)) {
      issues.push({ path: where, message: `duplicate route name '${name}'` });
      return;
    }
    names.add(name);
    const compiled = compileRoute(routeText);
    if (!compiled.ok) {
      const e = compiled.error;
      issues.push({ path: where, message: `route '${name}', column ${e.column + offset}: ${e.message}` });
      return;
    }
    specs.push(Object.freeze({ name, text: routeText, route: compiled.value, priority: DEFAULT_PRIORITY, timeToLiveSecs: DEFAULT_TIME_TO_LIVE_SECS }));
  });
  return issues.length > 0 ? err(issues) : ok(specs);
}
