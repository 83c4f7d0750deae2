import type { Issue } from '@kedge/contracts';
import { TwinLimits, checkPatch, newObject, objectFromEntries, ownValue } from '@kedge/protocol';
import { DEFAULT_TIME_TO_LIVE_SECS, parseEdgeHubDesired, type CompiledRoute, type RouteSpec as CompiledRouteSpec } from '@kedge/routing';
import { isChunkKey, joinChunks } from './chunks.js';
import { parseCreateOptions, type CreateOptions } from './create-options.js';
import { IssueCollector, formatPath, isObject, typeName, type PathSegment } from './issues.js';
import {
  DEFAULT_STARTUP_ORDER,
  ImagePullPolicies,
  ModuleStatuses,
  RestartPolicies,
  type EdgeDeploymentSpec,
  type ModuleSpec,
  type RegistryCredential,
  type RouteSpec,
} from './schema.js';
import { PROCESS_OPTIONS, parseProcessOptions, type ProcessOptions } from './process-options.js';
import { K8S_OPTIONS, k8sOptionsSettings, parseK8sOptions, validateKubernetesOptions, type KubernetesOptions } from './k8s-options.js';

/** The `modulesContent` of a deployment: module id → `{"properties.desired": {…}}`. */
export type ModulesContent = Record<string, Record<string, unknown>>;

/** A validated manifest: the normalized device spec, plus what goes into module twins. */
export interface DeploymentManifest {
  readonly spec: EdgeDeploymentSpec;
  /** Parsed createOptions per module name (system modules under `$edgeAgent`/`$edgeHub`'s module names). */
  readonly createOptions: Readonly<Record<string, CreateOptions>>;
  /** Desired properties of every other module twin in the manifest. */
  readonly moduleTwins: Readonly<Record<string, Record<string, unknown>>>;
}

/** The outcome of {@link validateManifest}: accepted or rejected as a whole, with warnings either way. */
export type ManifestResult =
  | { readonly ok: true; readonly value: ModulesContent; readonly manifest: DeploymentManifest; readonly warnings: Issue[] }
  | { readonly ok: false; readonly error: Issue[]; readonly warnings: Issue[] };

const DESIRED = 'properties.desired';
const AGENT = '$edgeAgent';
const HUB = '$edgeHub';
const MODULE_KEYS = new Set(['version', 'type', 'status', 'restartPolicy', 'startupOrder', 'imagePullPolicy', 'env', 'settings', 'k8s']);
/** Keys IoT Hub or tools add to modules that mean nothing to the runtime. */
const MODULE_KEYS_IGNORED = new Set(['configuration']);
/**
 * The one name no record of the spec can hold: zod's records (the EdgeDeployment resource is re-validated by them)
 * drop an own `__proto__` key, so a module, route, credential or env var of that name would vanish silently. Every
 * other key (`constructor`, `toString`, …) is kept as data: the records below are null-prototype objects.
 */
const PROTO = '__proto__';
const protoRefused = (what: string): string => `"${PROTO}" cannot be ${what} name: the EdgeDeployment resource cannot carry a key of that name`;

/**
 * Finds the `modulesContent` in what a user hands us: a bare modulesContent, `{"modulesContent": …}` or
 * `{"content": {"modulesContent": …}}` (an IoT Hub configuration). Records an error when there is none.
 */
export function unwrapModulesContent(input: unknown, issues: IssueCollector): ModulesContent | undefined {
  if (!isObject(input)) {
    issues.error([], `a manifest must be a JSON object, got ${typeName(input)}`);
    return undefined;
  }
  let doc: unknown = input;
  if (isObject(input.content)) doc = input.content;
  if (isObject(doc) && 'modulesContent' in doc) {
    if (!isObject(doc.modulesContent)) {
      issues.error(['modulesContent'], `expected an object, got ${typeName(doc.modulesContent)}`);
      return undefined;
    }
    for (const k of Object.keys(doc)) if (!['modulesContent', 'content'].includes(k)) issues.warn([k], 'not part of a deployment manifest; ignored');
    return doc.modulesContent as ModulesContent;
  }
  if (isObject(doc) && ('moduleContent' in doc || 'deviceContent' in doc)) {
    const k = 'moduleContent' in doc ? 'moduleContent' : 'deviceContent';
    issues.error([k], `"${k}" is not supported; the key is "modulesContent" (the az CLI rewrites the deprecated name, IoT Edge does not)`);
    return undefined;
  }
  if (isObject(doc) && (AGENT in doc || HUB in doc)) return doc as ModulesContent;
  issues.error(['modulesContent'], 'required (expected {"modulesContent": {"$edgeAgent": …, "$edgeHub": …}})');
  return undefined;
}

/**
 * Validates an IoT Edge deployment manifest as edgeAgent and edgeHub would, and normalizes it into an
 * {@link EdgeDeploymentSpec}. Every error names its JSON path (`$edgeAgent.properties.desired.modules.filter.settings.image`).
 * A manifest is accepted or rejected as a whole. Never throws on any input.
 */
export function validateManifest(input: unknown): ManifestResult {
  const issues = new IssueCollector();
  const content = unwrapModulesContent(input, issues);
  if (!content) return { ok: false, error: issues.errors, warnings: issues.warnings };

  const agent = desiredOf(content, AGENT, issues);
  const hub = desiredOf(content, HUB, issues);
  const moduleTwins = newObject<Record<string, unknown>>();
  for (const name of Object.keys(content)) {
    if (name === AGENT || name === HUB) continue;
    if (name === PROTO) {
      issues.error([name], protoRefused('a module'));
      continue;
    }
    // desiredOf names what is wrong with the entry (not an object, no properties.desired, unknown keys).
    const d = desiredOf(content, name, issues);
    if (d) moduleTwins[name] = d;
  }

  for (const [name, d] of [[AGENT, agent], [HUB, hub], ...Object.entries(moduleTwins)] as const) if (d) checkTwinSafe(name, d, issues);

  const createOptions = newObject<CreateOptions>();
  const agentPart = agent ? checkAgent(agent, [AGENT, DESIRED], issues, createOptions) : undefined;
  const hubPart = hub ? checkHub(hub, [HUB, DESIRED], issues) : undefined;

  if (agentPart && hubPart) {
    const known = new Set(Object.keys(agentPart.modules).map((m) => m.toLowerCase()));
    for (const r of hubPart.compiled) {
      for (const m of routeModules(r.route)) {
        if (!known.has(m.toLowerCase())) issues.warn([HUB, DESIRED, 'routes', r.name], `refers to module "${m}", which this deployment does not run`);
      }
    }
    for (const name of Object.keys(moduleTwins)) {
      if (!known.has(name.toLowerCase())) issues.warn([name], 'desired properties for a module this deployment does not run');
    }
  }
  if (issues.errors.length > 0 || !agentPart || !hubPart) {
    return { ok: false, error: issues.errors, warnings: issues.warnings };
  }
  const spec: EdgeDeploymentSpec = {
    agentSchemaVersion: agentPart.schemaVersion,
    hubSchemaVersion: hubPart.schemaVersion,
    systemModules: agentPart.systemModules,
    modules: agentPart.modules,
    registryCredentials: agentPart.registryCredentials,
    routes: hubPart.routes,
    storeAndForward: hubPart.storeAndForward,
  };
  return { ok: true, value: content, manifest: { spec, createOptions, moduleTwins }, warnings: issues.warnings };
}

function desiredOf(content: ModulesContent, name: string, issues: IssueCollector): Record<string, unknown> | undefined {
  const entry = content[name];
  if (entry === undefined) {
    if (name === AGENT || name === HUB) issues.error([name], 'required');
    return undefined;
  }
  if (!isObject(entry)) {
    issues.error([name], `expected an object with "${DESIRED}", got ${typeName(entry)}`);
    return undefined;
  }
  for (const key of Object.keys(entry)) {
    if (key === DESIRED) continue;
    if (key.startsWith(`${DESIRED}.`)) issues.error([name, key], 'a layered-deployment path; only valid in a layered deployment, which is merged onto a base deployment');
    else issues.error([name, key], `unknown key; a module entry holds only "${DESIRED}"`);
  }
  const desired = entry[DESIRED];
  if (desired === undefined) {
    if (!Object.keys(entry).some((k) => k.startsWith(`${DESIRED}.`))) issues.error([name, DESIRED], 'required');
    return undefined;
  }
  if (!isObject(desired)) {
    issues.error([name, DESIRED], `expected an object, got ${typeName(desired)}`);
    return undefined;
  }
  return desired;
}

/**
 * A manifest's desired documents become twins, so they must be what IoT Hub stores: twin-safe keys, at most 10
 * levels, at most 32 KB each. The hub refuses the rest anyway; saying so here names the path and the fix.
 */
function checkTwinSafe(name: string, desired: Record<string, unknown>, issues: IssueCollector): void {
  const where = formatPath([name, DESIRED]);
  const r = checkPatch(desired, where);
  if (!r.ok) {
    const { path, message } = r.error;
    const k8s = name === AGENT && /^\.(?:system)?[mM]odules\..+?\.k8s[.[]/.test(path.slice(where.length));
    const fix = k8s ? `; give the module's Kubernetes options as the JSON string settings.${K8S_OPTIONS} instead of the k8s object` : '';
    issues.errors.push({ path, message: `IoT Hub refuses this in a twin: ${message}${fix}` });
  }
  const bytes = Buffer.byteLength(JSON.stringify(desired));
  if (bytes > TwinLimits.desiredBytes) issues.error([name, DESIRED], `${bytes} bytes; IoT Hub keeps a twin's desired properties to ${TwinLimits.desiredBytes} bytes`);
}

/** Parses `major.minor[.build]` into numbers, or undefined. */
function parseVersion(v: unknown): [number, number, number] | undefined {
  if (typeof v !== 'string') return undefined;
  const m = /^(\d+)\.(\d+)(?:\.(\d+))?(?:\.(\d+))?$/.exec(v.trim());
  if (!m) return undefined;
  return [Number(m[1]), Number(m[2]), Number(m[3] ?? 0)];
}

interface AgentPart {
  schemaVersion: string;
  systemModules: { edgeAgent?: ModuleSpec; edgeHub?: ModuleSpec };
  modules: Record<string, ModuleSpec>;
  registryCredentials: Record<string, RegistryCredential>;
}

function checkAgent(d: Record<string, unknown>, path: readonly PathSegment[], issues: IssueCollector, createOptions: Record<string, CreateOptions>): AgentPart | undefined {
  const before = issues.errors.length;
  const sv = parseVersion(d.schemaVersion);
  if (d.schemaVersion === undefined) issues.error([...path, 'schemaVersion'], 'required');
  else if (!sv) issues.error([...path, 'schemaVersion'], `must be a version such as "1.1", got ${JSON.stringify(d.schemaVersion)}`);
  else if (sv[0] !== 1 || sv[1] > 1 || (sv[1] === 1 && sv[2] > 0)) issues.error([...path, 'schemaVersion'], `unsupported version "${JSON.stringify(d.schemaVersion).replace(/^"|"$/g, "")}": edgeAgent accepts 1.0 and 1.1`);

  const registryCredentials = newObject<RegistryCredential>();
  const runtime = d.runtime;
  if (runtime === undefined) issues.error([...path, 'runtime'], 'required');
  else if (!isObject(runtime)) issues.error([...path, 'runtime'], `expected an object, got ${typeName(runtime)}`);
  else {
    if (runtime.type === undefined) issues.error([...path, 'runtime', 'type'], 'required');
    else if (runtime.type !== 'docker') issues.error([...path, 'runtime', 'type'], `must be "docker", got ${JSON.stringify(runtime.type)}`);
    const settings = runtime.settings;
    if (settings !== undefined && !isObject(settings)) issues.error([...path, 'runtime', 'settings'], `expected an object, got ${typeName(settings)}`);
    else if (isObject(settings)) {
      const rc = settings.registryCredentials;
      if (rc !== undefined && rc !== null && !isObject(rc)) issues.error([...path, 'runtime', 'settings', 'registryCredentials'], `expected an object, got ${typeName(rc)}`);
      else if (isObject(rc)) {
        for (const [name, cred] of Object.entries(rc)) {
          const p = [...path, 'runtime', 'settings', 'registryCredentials', name];
          if (name === PROTO) {
            issues.error(p, protoRefused('a registry credential'));
            continue;
          }
          const c = checkCredential(cred, p, issues);
          if (c) registryCredentials[name] = c;
        }
      }
    }
  }

  const sys = d.systemModules;
  const systemModules: AgentPart['systemModules'] = {};
  if (sys === undefined) issues.error([...path, 'systemModules'], 'required');
  else if (!isObject(sys)) issues.error([...path, 'systemModules'], `expected an object, got ${typeName(sys)}`);
  else {
    for (const name of ['edgeAgent', 'edgeHub'] as const) {
      if (sys[name] === undefined) {
        issues.error([...path, 'systemModules', name], 'required');
        continue;
      }
      const m = checkModule(sys[name], [...path, 'systemModules', name], issues, sv?.[1] ?? 1, true);
      if (m) {
        systemModules[name] = m.spec;
        createOptions[name === 'edgeAgent' ? AGENT : HUB] = m.createOptions;
      }
    }
    for (const k of Object.keys(sys)) if (k !== 'edgeAgent' && k !== 'edgeHub') issues.error([...path, 'systemModules', k], 'unknown system module; only edgeAgent and edgeHub exist');
  }

  const modules = newObject<ModuleSpec>();
  const mods = d.modules;
  if (mods !== undefined && mods !== null && !isObject(mods)) issues.error([...path, 'modules'], `expected an object, got ${typeName(mods)}`);
  else if (isObject(mods)) {
    const seen = new Map<string, string>();
    for (const [name, raw] of Object.entries(mods)) {
      const p = [...path, 'modules', name];
      const nameProblem = name === PROTO ? protoRefused('a module') : checkModuleName(name);
      if (nameProblem) issues.error(p, nameProblem);
      const lower = name.toLowerCase();
      const other = seen.get(lower);
      if (other !== undefined) issues.error(p, `module names must differ in more than letter case ("${other}")`);
      seen.set(lower, name);
      const m = checkModule(raw, p, issues, sv?.[1] ?? 1, false);
      if (m) {
        modules[name] = m.spec;
        createOptions[name] = m.createOptions;
      }
    }
  }
  for (const k of Object.keys(d)) {
    if (!['schemaVersion', 'runtime', 'systemModules', 'modules', '$version', '$metadata', 'integrity'].includes(k)) issues.warn([...path, k], 'unknown $edgeAgent property; ignored');
  }
  if (issues.errors.length > before) return undefined;
  return { schemaVersion: String(d.schemaVersion).trim(), systemModules, modules, registryCredentials };
}

/** IoT Hub module ids: up to 128 characters of `[A-Za-z0-9-:.+%_#*?!(),=@;$']`, not starting with `$` for user modules. */
export function checkModuleName(name: string): string | undefined {
  if (name.length === 0) return 'module name must not be empty';
  if (name.length > 128) return 'module name is longer than 128 characters';
  if (name.startsWith('$')) return 'module names starting with "$" are reserved for system modules';
  if (!/^[A-Za-z0-9\-:.+%_#*?!(),=@;$']+$/.test(name)) return "module name may only contain letters, digits and -:.+%_#*?!(),=@;$'";
  return undefined;
}

function checkCredential(cred: unknown, p: readonly PathSegment[], issues: IssueCollector): RegistryCredential | undefined {
  if (!isObject(cred)) {
    issues.error(p, `expected an object with address, username and password, got ${typeName(cred)}`);
    return undefined;
  }
  let ok = true;
  for (const f of ['address', 'username', 'password'] as const) {
    const v = cred[f];
    if (v === undefined) {
      issues.error([...p, f], 'required');
      ok = false;
    } else if (typeof v !== 'string') {
      issues.error([...p, f], `expected a string, got ${typeName(v)}`);
      ok = false;
    } else if (!/\S/.test(v)) {
      issues.error([...p, f], 'must not be empty or whitespace');
      ok = false;
    } else if (f === 'address' && /\s/.test(v)) {
      issues.error([...p, f], 'must not contain whitespace');
      ok = false;
    }
  }
  return ok ? { address: String(cred.address), username: String(cred.username), password: String(cred.password) } : undefined;
}

function checkEnum<T extends string>(v: unknown, values: readonly T[], p: readonly PathSegment[], issues: IssueCollector): T | undefined {
  if (v === undefined) return undefined;
  if (typeof v === 'string' && (values as readonly string[]).includes(v)) return v as T;
  issues.error(p, `must be one of ${values.map((x) => `"${x}"`).join(', ')}, got ${JSON.stringify(v)}`);
  return undefined;
}

/** Validates one module entry (IoT Edge manifest form, or a CR spec module with object createOptions). */
export function checkModule(
  raw: unknown,
  p: readonly PathSegment[],
  issues: IssueCollector,
  agentMinor: number,
  system: boolean,
): { spec: ModuleSpec; createOptions: CreateOptions } | undefined {
  if (!isObject(raw)) {
    issues.error(p, `expected an object, got ${typeName(raw)}`);
    return undefined;
  }
  const before = issues.errors.length;
  if (raw.type === undefined) issues.error([...p, 'type'], 'required');
  else if (raw.type !== 'docker') issues.error([...p, 'type'], `must be "docker", got ${JSON.stringify(raw.type)}`);
  if (raw.version !== undefined && typeof raw.version !== 'string') issues.error([...p, 'version'], `expected a string, got ${typeName(raw.version)}`);
  const status = checkEnum(raw.status, ModuleStatuses, [...p, 'status'], issues);
  const restartPolicy = checkEnum(raw.restartPolicy, RestartPolicies, [...p, 'restartPolicy'], issues);
  const imagePullPolicy = checkEnum(raw.imagePullPolicy, ImagePullPolicies, [...p, 'imagePullPolicy'], issues);
  let startupOrder: number | undefined;
  if (raw.startupOrder !== undefined) {
    const so = raw.startupOrder;
    if (typeof so !== 'number' || !Number.isInteger(so) || so < 0 || so > DEFAULT_STARTUP_ORDER) issues.error([...p, 'startupOrder'], `must be an integer from 0 to ${DEFAULT_STARTUP_ORDER}, got ${JSON.stringify(so)}`);
    else if (agentMinor < 1) issues.warn([...p, 'startupOrder'], 'needs $edgeAgent schemaVersion 1.1; edgeAgent 1.0 ignores it, Kedge honours it');
    startupOrder = typeof so === 'number' ? so : undefined;
  }
  const env = newObject<{ value: string }>();
  if (raw.env !== undefined && raw.env !== null) {
    if (!isObject(raw.env)) issues.error([...p, 'env'], `expected an object of {"value": …}, got ${typeName(raw.env)}`);
    else {
      for (const [k, v] of Object.entries(raw.env)) {
        const ep = [...p, 'env', k];
        if (k === PROTO) {
          issues.error(ep, protoRefused('an environment variable'));
          continue;
        }
        if (!isObject(v) || !('value' in v)) {
          issues.error(ep, 'expected {"value": "<string>"}');
          continue;
        }
        const val = v.value;
        if (typeof val === 'string') env[k] = { value: val };
        else if (typeof val === 'number' || typeof val === 'boolean') {
          issues.warn([...ep, 'value'], `${typeof val} ${JSON.stringify(val)} read as the string "${String(val)}"`);
          env[k] = { value: String(val) };
        } else issues.error([...ep, 'value'], `expected a string, got ${typeName(val)}`);
        if (!/^[-._a-zA-Z][-._a-zA-Z0-9]*$/.test(k)) issues.warn(ep, 'not a valid Kubernetes environment variable name (letters, digits, "_", "-", "." and not starting with a digit); it is skipped on Kubernetes');
      }
    }
  }
  // settings
  let image = '';
  let co: { options: CreateOptions; raw: Record<string, unknown> } | undefined;
  let digest: string | undefined;
  let k8sOptions: KubernetesOptions | undefined;
  let k8sGiven = false;
  let processOptions: ProcessOptions | undefined;
  const s = raw.settings;
  if (s === undefined) issues.error([...p, 'settings'], 'required');
  else if (!isObject(s)) issues.error([...p, 'settings'], `expected an object, got ${typeName(s)}`);
  else {
    if (s.image === undefined) issues.error([...p, 'settings', 'image'], 'required');
    else if (typeof s.image !== 'string') issues.error([...p, 'settings', 'image'], `expected a string, got ${typeName(s.image)}`);
    else if (!/\S/.test(s.image)) issues.error([...p, 'settings', 'image'], 'must not be empty');
    else {
      image = s.image.trim();
      if (image.startsWith('$upstream')) issues.warn([...p, 'settings', 'image'], 'pulls through a nested-edge parent ("$upstream"); Kedge has no parent device and uses the image name as given');
    }
    if (typeof s.digest === 'string') digest = s.digest;
    const coPath = [...p, 'settings', 'createOptions'];
    if (isObject(s.createOptions)) co = parseCreateOptions(s.createOptions, coPath, issues);
    else if (s.createOptions === undefined || s.createOptions === null || typeof s.createOptions === 'string') {
      const text = joinChunks(s, 'createOptions', [...p, 'settings'], issues);
      if (text !== null) co = parseCreateOptions(text, coPath, issues);
    } else issues.error(coPath, `expected a JSON string, got ${typeName(s.createOptions)}`);
    const k8sText = joinChunks(s, 'k8sOptions', [...p, 'settings'], issues);
    if (typeof k8sText === 'string') {
      k8sGiven = true;
      const r = parseK8sOptions(k8sText, [...p, 'settings', K8S_OPTIONS], issues);
      if (r.ok) k8sOptions = r.value;
    }
    const processText = joinChunks(s, PROCESS_OPTIONS, [...p, 'settings'], issues);
    if (typeof processText === 'string') {
      const r = parseProcessOptions(processText, [...p, 'settings', PROCESS_OPTIONS], issues);
      if (r.ok) processOptions = r.value;
    }
    for (const k of Object.keys(s)) {
      if (k !== 'image' && k !== 'digest' && !isChunkKey(k, 'createOptions') && !isChunkKey(k, 'k8sOptions') && !isChunkKey(k, PROCESS_OPTIONS)) issues.warn([...p, 'settings', k], 'unknown module setting; ignored');
    }
  }
  if (raw.k8s !== undefined) {
    // The object form predates k8sOptions. IoT Hub stores it only while every key is twin-safe (validateManifest
    // refuses the rest), so it is read, with a warning that shows the string form to write instead.
    if (k8sGiven) issues.error([...p, 'k8s'], `give the Kubernetes options once: settings.${K8S_OPTIONS} or k8s, not both`);
    else {
      const legacy = validateKubernetesOptions(raw.k8s, [...p, 'k8s'], issues);
      if (legacy) {
        k8sOptions = legacy;
        issues.warn([...p, 'k8s'], `the object form cannot travel through a twin once a key holds ".", "$" or a space (kubernetes.io/os, nvidia.com/gpu); write it in settings as ${JSON.stringify(k8sOptionsSettings(legacy))}`);
      }
    }
  }
  const preview = co?.options.k8s;
  const k8s: KubernetesOptions | undefined = preview && k8sOptions ? { ...preview, ...k8sOptions } : (k8sOptions ?? preview);
  for (const k of Object.keys(raw)) {
    if (!MODULE_KEYS.has(k) && !MODULE_KEYS_IGNORED.has(k)) issues.warn([...p, k], `unknown module property; ignored${system ? '' : ' (known: version, type, status, restartPolicy, startupOrder, imagePullPolicy, env, settings, k8s)'}`);
  }
  if (issues.errors.length > before || !co) return undefined;
  const { ['k8s-experimental']: _dropped, ...createOptionsRaw } = co.raw;
  const spec: ModuleSpec = {
    type: 'docker',
    ...(typeof raw.version === 'string' ? { version: raw.version } : {}),
    status: status ?? 'running',
    restartPolicy: restartPolicy ?? 'always',
    ...(startupOrder !== undefined ? { startupOrder } : {}),
    imagePullPolicy: imagePullPolicy ?? 'on-create',
    env,
    settings: { image, createOptions: createOptionsRaw, ...(digest ? { digest } : {}) },
    ...(k8s ? { k8s } : {}),
    ...(processOptions ? { process: processOptions } : {}),
  };
  return { spec, createOptions: co.options };
}

interface HubPart {
  schemaVersion: string;
  routes: Record<string, RouteSpec>;
  storeAndForward: { timeToLiveSecs: number; maxSizeBytes?: number };
  compiled: readonly CompiledRouteSpec[];
}

const HUB_KEYS = ['schemaVersion', 'routes', 'storeAndForwardConfiguration', 'mqttBroker', 'integrity', '$version', '$metadata'];
const ROUTE_KEYS = ['route', 'priority', 'timeToLiveSecs'];

/**
 * `$edgeHub` desired properties. Routes, `schemaVersion` and the store-and-forward TTL are edgeHub's rules, checked
 * by `@kedge/routing`; what is left here is the store limits and warnings about what edgeHub ignores.
 */
function checkHub(d: Record<string, unknown>, path: readonly PathSegment[], issues: IssueCollector): HubPart | undefined {
  const before = issues.errors.length;
  const parsed = parseEdgeHubDesired(d, formatPath(path));
  if (!parsed.ok) issues.errors.push(...parsed.error);
  const routes = isObject(d.routes) ? d.routes : {};
  for (const [name, value] of Object.entries(routes)) {
    if (name === PROTO) issues.error([...path, 'routes', name], protoRefused('a route'));
    if (!isObject(value)) continue;
    for (const k of Object.keys(value)) if (!ROUTE_KEYS.includes(k)) issues.warn([...path, 'routes', name, k], 'unknown route property; ignored');
  }
  const sf = isObject(d.storeAndForwardConfiguration) ? d.storeAndForwardConfiguration : {};
  let maxSizeBytes: number | undefined;
  const limits = sf.storeLimits;
  if (limits !== undefined) {
    const p = [...path, 'storeAndForwardConfiguration', 'storeLimits'];
    if (!isObject(limits)) issues.error(p, `expected an object, got ${typeName(limits)}`);
    else if (limits.maxSizeBytes !== undefined) {
      const m = limits.maxSizeBytes;
      if (typeof m !== 'number' || !Number.isInteger(m) || m <= 0) issues.error([...p, 'maxSizeBytes'], `expected a positive integer, got ${JSON.stringify(m)}`);
      else maxSizeBytes = m;
    }
  }
  if (d.mqttBroker !== undefined) {
    if ((parseVersion(d.schemaVersion)?.[1] ?? 1) < 2) issues.warn([...path, 'mqttBroker'], 'needs $edgeHub schemaVersion 1.2; ignored');
    else issues.warn([...path, 'mqttBroker'], "IoT Edge's experimental MQTT broker configuration is not supported by Kedge's edge hub; ignored");
  }
  for (const k of Object.keys(d)) if (!HUB_KEYS.includes(k)) issues.warn([...path, k], 'unknown $edgeHub property; ignored');
  if (!parsed.ok || issues.errors.length > before) return undefined;
  const ttl = sf.timeToLiveSecs;
  return {
    schemaVersion: String(d.schemaVersion).trim(),
    routes: objectFromEntries(parsed.value.map((r) => [r.name, asWritten(ownValue(routes, r.name), r.text)])),
    storeAndForward: { timeToLiveSecs: typeof ttl === 'number' ? ttl : DEFAULT_TIME_TO_LIVE_SECS, ...(maxSizeBytes !== undefined ? { maxSizeBytes } : {}) },
    compiled: parsed.value,
  };
}

/** A route as the manifest states it (already checked): priority and TTL only where they are set. */
function asWritten(value: unknown, route: string): RouteSpec {
  if (!isObject(value)) return { route };
  const { priority, timeToLiveSecs } = value;
  return { route, ...(typeof priority === 'number' ? { priority } : {}), ...(typeof timeToLiveSecs === 'number' ? { timeToLiveSecs } : {}) };
}

/** Modules a route names: the module of a `/messages/modules/<m>/…` source and of a BrokeredEndpoint sink. */
function routeModules(route: CompiledRoute): string[] {
  const out: string[] = [];
  const src = /^\/messages\/modules\/([^/\s*]+)/i.exec(route.source.path);
  if (src?.[1]) out.push(src[1]);
  if (route.sink.kind === 'module') out.push(route.sink.module);
  return out;
}
