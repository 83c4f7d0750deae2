import { K8S_EXPERIMENTAL_KEYS, validateKubernetesOptions, type KubernetesOptions } from './k8s-options.js';
import type { IssueCollector} from './issues.js';
import { newObject } from '@kedge/protocol';
import { isObject, typeName, type PathSegment } from './issues.js';

/** A port binding of `HostConfig.PortBindings` (`"80/tcp": [{"HostPort": "8080"}]`). */
export interface PortBinding {
  readonly HostIp?: string;
  readonly HostPort?: string;
}

/** A `HostConfig.Mounts` entry. */
export interface Mount {
  readonly Type?: string;
  readonly Source?: string;
  readonly Target?: string;
  readonly ReadOnly?: boolean;
}

/** A `HostConfig.Devices` entry. */
export interface DeviceMapping {
  readonly PathOnHost?: string;
  readonly PathInContainer?: string;
  readonly CgroupPermissions?: string;
}

/** The parts of Docker's `HostConfig` that Kedge reads. */
export interface HostConfig {
  readonly PortBindings?: Readonly<Record<string, readonly PortBinding[]>>;
  readonly Binds?: readonly string[];
  readonly Mounts?: readonly Mount[];
  readonly Privileged?: boolean;
  readonly CapAdd?: readonly string[];
  readonly CapDrop?: readonly string[];
  readonly Memory?: number;
  readonly MemoryReservation?: number;
  readonly MemorySwap?: number;
  readonly NanoCpus?: number;
  readonly CpuShares?: number;
  readonly CpuPeriod?: number;
  readonly CpuQuota?: number;
  readonly NetworkMode?: string;
  readonly IpcMode?: string;
  readonly PidMode?: string;
  readonly Devices?: readonly DeviceMapping[];
  readonly DeviceRequests?: readonly unknown[];
  readonly ExtraHosts?: readonly string[];
  readonly Dns?: readonly string[];
  readonly DnsSearch?: readonly string[];
  readonly ShmSize?: number;
  readonly ReadonlyRootfs?: boolean;
  readonly Sysctls?: Readonly<Record<string, string>>;
  readonly RestartPolicy?: unknown;
  readonly LogConfig?: unknown;
}

/**
 * Docker `ContainerCreate` options as IoT Edge modules write them in `settings.createOptions`, parsed into the
 * fields Kedge understands. Field names are Docker's; edgeAgent matched them case-insensitively, and so do we
 * (with a warning, since Docker itself does not).
 */
export interface CreateOptions {
  readonly Entrypoint?: readonly string[];
  readonly Cmd?: readonly string[];
  readonly Env?: readonly string[];
  readonly WorkingDir?: string;
  readonly User?: string;
  readonly Hostname?: string;
  readonly ExposedPorts?: Readonly<Record<string, unknown>>;
  readonly Labels?: Readonly<Record<string, string>>;
  readonly HostConfig?: HostConfig;
  readonly NetworkingConfig?: unknown;
  readonly Healthcheck?: unknown;
  readonly StopSignal?: string;
  readonly StopTimeout?: number;
  /** The preview's `k8s-experimental` section, validated. */
  readonly k8s?: KubernetesOptions;
}

type Kind = 'string' | 'bool' | 'number' | 'strings' | 'stringOrStrings' | 'stringMap' | 'object' | 'any' | 'ports' | 'mounts' | 'devices' | 'array';

const HOST_CONFIG_FIELDS: Readonly<Record<string, Kind>> = {
  PortBindings: 'ports', Binds: 'strings', Mounts: 'mounts', Privileged: 'bool', CapAdd: 'strings', CapDrop: 'strings',
  Memory: 'number', MemoryReservation: 'number', MemorySwap: 'number', NanoCpus: 'number', CpuShares: 'number',
  CpuPeriod: 'number', CpuQuota: 'number', NetworkMode: 'string', IpcMode: 'string', PidMode: 'string',
  Devices: 'devices', DeviceRequests: 'array', ExtraHosts: 'strings', Dns: 'strings', DnsSearch: 'strings',
  ShmSize: 'number', ReadonlyRootfs: 'bool', Sysctls: 'stringMap', RestartPolicy: 'any', LogConfig: 'any',
};
/** HostConfig fields Docker has and Kedge deliberately passes over without a typo warning. */
const HOST_CONFIG_KNOWN_IGNORED = new Set([
  'memoryswappiness', 'oomkilldisable', 'init', 'securityopt', 'ulimits', 'blkioweight', 'cpusetcpus', 'cpusetmems',
  'groupadd', 'autoremove', 'volumedriver', 'volumesfrom', 'links', 'portsalloc', 'publishallports', 'utsmode',
  'usernsmode', 'cgroupparent', 'runtime', 'storageopt', 'tmpfs', 'isolation', 'cpucount', 'cpupercent', 'pidslimit',
  'kernelmemory', 'oomscoreadj', 'dnsoptions', 'consolesize', 'cgroup', 'cgroupnsmode', 'maskedpaths', 'readonlypaths',
  'devicecgrouprules', 'containeridfile', 'cpurealtimeperiod', 'cpurealtimeruntime', 'blkiodeviceweight',
  'blkiodevicereadbps', 'blkiodevicewritebps', 'blkiodevicereadiops', 'blkiodevicewriteiops', 'memoryreservation',
]);
const TOP_FIELDS: Readonly<Record<string, Kind>> = {
  Entrypoint: 'stringOrStrings', Cmd: 'stringOrStrings', Env: 'strings', WorkingDir: 'string', User: 'string',
  Hostname: 'string', ExposedPorts: 'object', Labels: 'stringMap', HostConfig: 'object', NetworkingConfig: 'any',
  Healthcheck: 'any', StopSignal: 'string', StopTimeout: 'number',
};
const TOP_KNOWN_IGNORED = new Set([
  'image', 'domainname', 'attachstdin', 'attachstdout', 'attachstderr', 'tty', 'openstdin', 'stdinonce', 'volumes',
  'networkdisabled', 'macaddress', 'onbuild', 'argsescaped', 'shell', 'name', 'platform',
]);
const K8S_KEY = 'k8s-experimental';

const lowerIndex = (fields: Readonly<Record<string, Kind>>): Map<string, string> =>
  new Map(Object.keys(fields).map((k) => [k.toLowerCase(), k]));
const TOP_INDEX = lowerIndex(TOP_FIELDS);
const HOST_INDEX = lowerIndex(HOST_CONFIG_FIELDS);

/**
 * Parses createOptions (JSON text, or an object when the input was an already-parsed CR) into the typed model.
 * `""`, `"null"` and absence mean `{}`. Wrong value types that Newtonsoft would coerce (`"true"`, `"73400320"`) are
 * coerced with a warning; unknown fields produce a warning (Docker ignores them, so a typo silently loses settings).
 */
export function parseCreateOptions(
  source: string | Record<string, unknown> | undefined,
  path: readonly PathSegment[],
  issues: IssueCollector,
): { options: CreateOptions; raw: Record<string, unknown> } | undefined {
  let raw: unknown = {};
  if (typeof source === 'string') {
    const text = source.trim();
    if (text !== '' && text !== 'null') {
      try {
        raw = JSON.parse(text);
      } catch (e) {
        issues.error(path, `not valid JSON: ${(e as Error).message}`);
        return undefined;
      }
    }
  } else if (source !== undefined) raw = source;
  if (raw === null) raw = {};
  if (!isObject(raw)) {
    issues.error(path, `must be a JSON object, got ${typeName(raw)}`);
    return undefined;
  }
  const out: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(raw)) {
    if (key.toLowerCase() === K8S_KEY) {
      const k8s = parseK8sExperimental(value, [...path, key], issues);
      if (k8s) out.k8s = k8s;
      continue;
    }
    const canonical = TOP_INDEX.get(key.toLowerCase());
    if (!canonical) {
      if (!TOP_KNOWN_IGNORED.has(key.toLowerCase())) issues.warn([...path, key], `unknown createOptions field; Docker ignores it, so does Kedge${suggest(key, TOP_INDEX)}`);
      continue;
    }
    if (canonical !== key) issues.warn([...path, key], `read as "${canonical}" (Docker field names are case-sensitive; edgeAgent matched them case-insensitively)`);
    if (canonical === 'HostConfig') {
      const hc = parseHostConfig(value, [...path, key], issues);
      if (hc) out.HostConfig = hc;
      continue;
    }
    const v = coerce(value, TOP_FIELDS[canonical] ?? 'any', [...path, key], issues);
    if (v !== undefined) out[canonical] = v;
  }
  return { options: out, raw };
}

function parseHostConfig(value: unknown, path: readonly PathSegment[], issues: IssueCollector): HostConfig | undefined {
  if (!isObject(value)) {
    issues.warn(path, `expected an object, got ${typeName(value)}; ignored`);
    return undefined;
  }
  const out: Record<string, unknown> = {};
  for (const [key, v] of Object.entries(value)) {
    const canonical = HOST_INDEX.get(key.toLowerCase());
    if (!canonical) {
      if (!HOST_CONFIG_KNOWN_IGNORED.has(key.toLowerCase())) issues.warn([...path, key], `unknown HostConfig field; Docker ignores it, so does Kedge${suggest(key, HOST_INDEX)}`);
      continue;
    }
    if (canonical !== key) issues.warn([...path, key], `read as "${canonical}" (Docker field names are case-sensitive)`);
    const c = coerce(v, HOST_CONFIG_FIELDS[canonical] ?? 'any', [...path, key], issues);
    if (c !== undefined) out[canonical] = c;
  }
  return out;
}

function parseK8sExperimental(value: unknown, path: readonly PathSegment[], issues: IssueCollector): KubernetesOptions | undefined {
  if (!isObject(value)) {
    issues.error(path, `expected an object, got ${typeName(value)}`);
    return undefined;
  }
  // The preview matched these keys case-insensitively and dropped unknown ones with a log line; we warn instead.
  const normalized: Record<string, unknown> = {};
  for (const [key, v] of Object.entries(value)) {
    const canonical = K8S_EXPERIMENTAL_KEYS.find((k) => k.toLowerCase() === key.toLowerCase()) ?? (key.toLowerCase() === 'service-options' ? 'serviceOptions' : undefined);
    if (!canonical) {
      issues.warn([...path, key], `unknown k8s-experimental option; ignored (known: ${K8S_EXPERIMENTAL_KEYS.join(', ')}; use the module's "k8s" field for more)`);
      continue;
    }
    normalized[canonical] = canonical === 'serviceOptions' && isObject(v) ? normalizeServiceType(v) : canonical === 'volumes' ? coerceVolumeBooleans(v, [...path, key], issues) : v;
  }
  return validateKubernetesOptions(normalized, path, issues);
}

function normalizeServiceType(v: Record<string, unknown>): Record<string, unknown> {
  const t = v.type;
  if (typeof t !== 'string') return v;
  const canonical = ['ClusterIP', 'NodePort', 'LoadBalancer'].find((x) => x.toLowerCase() === t.toLowerCase());
  return canonical ? { ...v, type: canonical } : v;
}

// The preview's docs show `"readOnly": "true"` and `"optional": "true"`; Newtonsoft coerced them, so do we.
function coerceVolumeBooleans(v: unknown, path: readonly PathSegment[], issues: IssueCollector): unknown {
  const fix = (o: unknown, p: readonly PathSegment[]): unknown => {
    if (Array.isArray(o)) return o.map((x, i) => fix(x, [...p, i]));
    if (!isObject(o)) return o;
    const r = newObject<unknown>();
    for (const [k, x] of Object.entries(o)) {
      if ((k === 'readOnly' || k === 'optional') && (x === 'true' || x === 'false')) {
        issues.warn([...p, k], `boolean given as the string "${x}"; read as ${x}`);
        r[k] = x === 'true';
      } else r[k] = fix(x, [...p, k]);
    }
    return r;
  };
  return fix(v, path);
}

function coerce(value: unknown, kind: Kind, path: readonly PathSegment[], issues: IssueCollector): unknown {
  const bad = (want: string): undefined => {
    issues.warn(path, `expected ${want}, got ${typeName(value)}; ignored`);
    return undefined;
  };
  switch (kind) {
    case 'any':
      return value;
    case 'string':
      if (typeof value === 'string') return value;
      if (typeof value === 'number') return String(value);
      return bad('a string');
    case 'bool':
      if (typeof value === 'boolean') return value;
      if (typeof value === 'string' && /^(true|false)$/i.test(value)) {
        issues.warn(path, `boolean given as the string "${value}"; read as ${value.toLowerCase()} (as edgeAgent does)`);
        return value.toLowerCase() === 'true';
      }
      return bad('a boolean');
    case 'number':
      if (typeof value === 'number' && Number.isFinite(value)) return value;
      if (typeof value === 'string' && /^-?\d+(\.\d+)?$/.test(value.trim())) {
        issues.warn(path, `number given as the string "${value}"; read as ${Number(value)} (as edgeAgent does)`);
        return Number(value);
      }
      return bad('a number');
    case 'strings':
      if (Array.isArray(value) && value.every((x) => typeof x === 'string')) return value;
      if (Array.isArray(value) && value.every((x) => typeof x === 'string' || typeof x === 'number' || typeof x === 'boolean')) return value.map(String);
      return bad('an array of strings');
    case 'stringOrStrings':
      if (typeof value === 'string') return [value];
      return coerce(value, 'strings', path, issues);
    case 'stringMap':
      if (isObject(value)) {
        const out = newObject<string>();
        for (const [k, v] of Object.entries(value)) {
          if (typeof v === 'string') out[k] = v;
          else if (typeof v === 'number' || typeof v === 'boolean') out[k] = String(v);
          else issues.warn([...path, k], `expected a string, got ${typeName(v)}; ignored`);
        }
        return out;
      }
      return bad('an object of strings');
    case 'object':
      return isObject(value) ? value : bad('an object');
    case 'array':
      return Array.isArray(value) ? value : bad('an array');
    case 'ports': {
      if (!isObject(value)) return bad('an object of port bindings');
      const out = newObject<PortBinding[]>();
      for (const [port, list] of Object.entries(value)) {
        if (!Array.isArray(list)) {
          issues.warn([...path, port], `expected an array of bindings, got ${typeName(list)}; ignored`);
          continue;
        }
        out[port] = list.filter(isObject).map((b) => {
          const hp = b.HostPort ?? b.hostPort;
          const hi = b.HostIp ?? b.hostIp;
          const port = typeof hp === 'string' || typeof hp === 'number' ? String(hp) : undefined;
          return { ...(port !== undefined ? { HostPort: port } : {}), ...(typeof hi === 'string' ? { HostIp: hi } : {}) };
        });
      }
      return out;
    }
    case 'mounts': {
      if (!Array.isArray(value)) return bad('an array of mounts');
      return value.map((m, i) => {
        if (!isObject(m)) return {};
        const get = (name: string): unknown => Object.entries(m).find(([k]) => k.toLowerCase() === name.toLowerCase())?.[1];
        const ro = get('ReadOnly');
        const mount: Record<string, unknown> = {};
        for (const f of ['Type', 'Source', 'Target'] as const) {
          const v = get(f);
          if (typeof v === 'string') mount[f] = v;
        }
        if (ro !== undefined) mount.ReadOnly = coerce(ro, 'bool', [...path, i, 'ReadOnly'], issues);
        return mount;
      });
    }
    case 'devices': {
      if (!Array.isArray(value)) return bad('an array of devices');
      return value.filter(isObject).map((d) => {
        const out: Record<string, string> = {};
        for (const f of ['PathOnHost', 'PathInContainer', 'CgroupPermissions']) if (typeof d[f] === 'string') out[f] = d[f];
        return out;
      });
    }
  }
}

function suggest(key: string, index: Map<string, string>): string {
  const k = key.toLowerCase();
  let best: string | undefined;
  let bestD = 3;
  for (const [lower, canonical] of index) {
    const d = distance(k, lower);
    if (d < bestD) {
      bestD = d;
      best = canonical;
    }
  }
  return best ? ` (did you mean "${best}"?)` : '';
}

function distance(a: string, b: string): number {
  if (Math.abs(a.length - b.length) > 2) return 99;
  const dp = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    let prev = dp[0] ?? 0;
    dp[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const tmp = dp[j] ?? 0;
      dp[j] = Math.min((dp[j] ?? 0) + 1, (dp[j - 1] ?? 0) + 1, prev + (a[i - 1] === b[j - 1] ? 0 : 1));
      prev = tmp;
    }
  }
  return dp[b.length] ?? 99;
}
