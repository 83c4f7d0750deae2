import { err, ok, type Issue, type Result } from '@kedge/contracts';
import type { RouteCompileError } from './errors.js';
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

/** Where {@link parseRoutes} reports its issues: the `$edgeHub` desired properties in a deployment manifest. */
export const EDGE_HUB_DESIRED_PATH = '$edgeHub.properties.desired';

/** Route names: non-empty, none of `.`, `$`, `#` or space (edgeHub's JSON schema, [IE doc/Route_priority_and_TTL.md]). */
export const ROUTE_NAME = /^[^.$# ]+$/;
const MAX_UINT32 = 4_294_967_295;

const isObject = (v: unknown): v is Record<string, unknown> => v !== null && typeof v === 'object' && !Array.isArray(v);

const typeName = (v: unknown): string => (v === null ? 'null' : Array.isArray(v) ? 'array' : typeof v);

/** What is wrong with a route name under {@link ROUTE_NAME}, naming the offending characters; undefined if nothing. */
export function checkRouteName(name: string): string | undefined {
  if (name === '') return 'route names must not be empty';
  if (ROUTE_NAME.test(name)) return undefined;
  const bad = [...new Set(name.match(/[.$# ]/g))].map((c) => (c === ' ' ? 'a space' : `"${c}"`));
  return `route name ${JSON.stringify(name)} contains ${bad.join(' and ')}; route names must not contain ".", "$", "#" or space`;
}

/** The message of a route compile error, located inside the route text: `line L, column C: …`. */
export function describeRouteError(e: RouteCompileError): string {
  return `line ${e.line}, column ${e.column}: ${e.message}`;
}

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

/** `schemaVersion` as .NET's `Version` reads it: 2 to 4 numeric components. */
function parseSchemaVersion(v: unknown): { major: number; minor: number } | undefined {
  if (typeof v !== 'string') return undefined;
  const m = /^\s*(\d+)\.(\d+)(\.\d+){0,2}\s*$/.exec(v);
  return m === null ? undefined : { major: Number(m[1]), minor: Number(m[2]) };
}

const isUint = (v: unknown, max: number): v is number => typeof v === 'number' && Number.isInteger(v) && v >= 0 && v <= max;

/**
 * Validates `$edgeHub` desired properties and compiles every route, the way edgeHub's `EdgeHubConfigParser` and
 * `RouteFactory` do: `schemaVersion` 1.0–1.3 (1.0 allows only string routes), route names matching {@link ROUTE_NAME},
 * `priority` 0..9, `timeToLiveSecs` a uint32 (0 or absent means the store-and-forward TTL), a route object's `route`
 * non-blank, empty route strings skipped. Every problem is reported, each with a path like
 * `$edgeHub.properties.desired.routes.<name>`; compile errors give the line and column inside the route text. Also
 * accepts the wrappers of {@link unwrapEdgeHubDesired}.
 */
export function parseRoutes(input: unknown): Result<RouteSpec[], Issue[]> {
  return parseEdgeHubDesired(unwrapEdgeHubDesired(input));
}

/**
 * {@link parseRoutes} on the `$edgeHub` desired properties as given, without unwrapping. Issue paths start with
 * `root`, so a caller that holds the desired properties at another path reports its own (the manifest validator does).
 */
export function parseEdgeHubDesired(desired: unknown, root: string = EDGE_HUB_DESIRED_PATH): Result<RouteSpec[], Issue[]> {
  const issues: Issue[] = [];
  if (!isObject(desired)) return err([{ path: root, message: `expected an object, got ${typeName(desired)}` }]);
  const sv = desired['schemaVersion'];
  const version = parseSchemaVersion(sv);
  if (sv === undefined) issues.push({ path: `${root}.schemaVersion`, message: 'required' });
  else if (version === undefined) issues.push({ path: `${root}.schemaVersion`, message: `must be a version such as "1.1", got ${JSON.stringify(sv)}` });
  else if (version.major !== 1 || version.minor > 3) issues.push({ path: `${root}.schemaVersion`, message: `unsupported version ${JSON.stringify(sv)}: edgeHub accepts 1.0 to 1.3` });
  let ttl = DEFAULT_TIME_TO_LIVE_SECS;
  const saf = desired['storeAndForwardConfiguration'];
  if (saf !== undefined) {
    if (!isObject(saf)) issues.push({ path: `${root}.storeAndForwardConfiguration`, message: `expected an object, got ${typeName(saf)}` });
    else if (saf['timeToLiveSecs'] !== undefined) {
      const t = saf['timeToLiveSecs'];
      if (typeof t !== 'number' || !Number.isInteger(t)) issues.push({ path: `${root}.storeAndForwardConfiguration.timeToLiveSecs`, message: `expected an integer, got ${JSON.stringify(t)}` });
      else ttl = t;
    }
  }
  const routes = desired['routes'];
  const specs: RouteSpec[] = [];
  if (routes === undefined) issues.push({ path: `${root}.routes`, message: 'required' });
  else if (!isObject(routes)) issues.push({ path: `${root}.routes`, message: `expected an object of named routes, got ${typeName(routes)}` });
  else {
    // Only a supported 1.0 forbids route objects; any other version is reported above already.
    const stringsOnly = version?.major === 1 && version.minor === 0 ? String(sv) : undefined;
    for (const [name, value] of Object.entries(routes)) {
      const spec = parseOne(name, value, `${root}.routes.${name}`, stringsOnly, ttl, issues);
      if (spec !== undefined) specs.push(spec);
    }
  }
  return issues.length > 0 ? err(issues) : ok(specs);
}

/** One route; `stringsOnly` is the schemaVersion as written when it allows only route strings. */
function parseOne(name: string, value: unknown, path: string, stringsOnly: string | undefined, defaultTtl: number, issues: Issue[]): RouteSpec | undefined {
  const nameProblem = checkRouteName(name);
  if (nameProblem !== undefined) {
    issues.push({ path, message: nameProblem });
    return undefined;
  }
  if (typeof value === 'string') {
    // edgeHub 1.0 skips empty route strings; from 1.1 its RouteSpec rejects them. Kedge skips them in every version.
    if (value.trim() === '') return undefined;
    return compileOne(name, value, path, DEFAULT_PRIORITY, 0, defaultTtl, issues);
  }
  if (!isObject(value)) {
    const expected = stringsOnly !== undefined ? 'a route string' : 'a route string or {"route", "priority", "timeToLiveSecs"}';
    issues.push({ path, message: `expected ${expected}, got ${typeName(value)}` });
    return undefined;
  }
  if (stringsOnly !== undefined) {
    issues.push({ path, message: `route objects need $edgeHub schemaVersion 1.1 or later (this is ${stringsOnly})` });
    return undefined;
  }
  const before = issues.length;
  const { route: text, priority, timeToLiveSecs: ttl } = value;
  // edgeHub's RouteSpec constructor rejects a blank route (Preconditions.CheckNonWhiteSpace).
  if (text === undefined) issues.push({ path: `${path}.route`, message: 'required' });
  else if (typeof text !== 'string' || text.trim() === '') issues.push({ path: `${path}.route`, message: `expected a non-empty route string, got ${JSON.stringify(text)}` });
  if (priority !== undefined && !isUint(priority, 9)) issues.push({ path: `${path}.priority`, message: `must be an integer from 0 (highest) to 9, got ${JSON.stringify(priority)}` });
  if (ttl !== undefined && !isUint(ttl, MAX_UINT32)) issues.push({ path: `${path}.timeToLiveSecs`, message: `must be an integer from 0 to ${MAX_UINT32}, got ${JSON.stringify(ttl)}` });
  if (issues.length > before || typeof text !== 'string') return undefined;
  return compileOne(name, text, `${path}.route`, isUint(priority, 9) ? priority : DEFAULT_PRIORITY, isUint(ttl, MAX_UINT32) ? ttl : 0, defaultTtl, issues);
}

function compileOne(name: string, text: string, path: string, priority: number, ttl: number, defaultTtl: number, issues: Issue[]): RouteSpec | undefined {
  const compiled = compileRoute(text);
  if (!compiled.ok) {
    issues.push({ path, message: describeRouteError(compiled.error) });
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
