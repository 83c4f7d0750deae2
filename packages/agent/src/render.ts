import type {
  KubernetesObject,
  V1Container,
  V1ContainerPort,
  V1Deployment,
  V1EnvVar,
  V1PersistentVolumeClaim,
  V1Probe,
  V1PodSpec,
  V1Secret,
  V1Service,
  V1ServiceAccount,
  V1ServicePort,
  V1Volume,
  V1VolumeMount,
  V1NetworkPolicy,
  V1ResourceQuota,
  V1LimitRange,
  V1SecurityContext,
} from '@kubernetes/client-node';
import type { Issue } from '@kedge/contracts';
import {
  EdgeDeploymentResource,
  type CreateOptions,
  type ModuleSpec,
  type ParsedSpec,
  type RegistryCredential,
} from '@kedge/manifest';
import { Annotations, Labels, MANAGED_BY, isDnsLabel, toDnsLabel, toLabelValue } from './names.js';
import { EDGE_HUB_SERVICE, kubernetesModuleEnv } from './module-env.js';
import { moduleEntries, startupOrderOf, startupWaits } from './modules.js';

export { moduleEntries, moduleDigest } from './modules.js';
export type { ModuleEntry } from './modules.js';
import type { DevicePolicy } from './policy.js';

/** The EdgeDeployment being rendered: enough metadata for names and owner references. */
export interface OwnerMeta {
  readonly name: string;
  readonly namespace: string;
  readonly uid: string;
}

export interface RenderInput {
  readonly owner: OwnerMeta;
  readonly deviceId: string;
  readonly parsed: ParsedSpec;
  readonly policy: DevicePolicy;
  /**
   * Modules observed available, for `startupOrder`: a module starts only once every running module with a lower
   * order is available. `undefined` renders every module as if its predecessors were up (dry runs).
   */
  readonly available?: ReadonlySet<string>;
  /** Modules that exited and must not be restarted (restartPolicy), with their exit codes: rendered with 0 replicas. */
  readonly parked?: ReadonlyMap<string, number | undefined>;
}

/** What the renderer decided for one module. */
export interface RenderedModule {
  /** The module name as in the manifest (`SimulatedTemperatureSensor`, system modules `edgeHub`/`edgeAgent`). */
  readonly name: string;
  /** The DNS label used for its Deployment, Service and ServiceAccount. */
  readonly objectName: string;
  readonly system: boolean;
  readonly desiredStatus: 'running' | 'stopped';
  readonly startupOrder: number;
  /** Replicas written: 0 when stopped or held back by startupOrder. */
  readonly replicas: number;
  /** Set when startupOrder holds the module back: the modules it waits for. */
  readonly waitingFor?: readonly string[];
  /** True when the module exited and its restartPolicy keeps it down. */
  readonly parked?: boolean;
  /** The exit code it stopped with, when parked and known. */
  readonly parkedExitCode?: number;
  /** Digest of the module's spec (changes whenever anything about the module changes). */
  readonly specDigest: string;
  readonly image: string;
  readonly version?: string;
  readonly restartPolicy: ModuleSpec['restartPolicy'];
}

/** Why a spec cannot be rendered on this device. */
export const RenderErrorReason = { NameCollision: 'NameCollision', PolicyViolation: 'PolicyViolation' } as const;
export type RenderErrorReason = (typeof RenderErrorReason)[keyof typeof RenderErrorReason];

/** A located problem and its reason (the `SpecValid` condition's reason). */
export interface RenderError extends Issue {
  readonly reason: RenderErrorReason;
}

export interface RenderResult {
  /** Every object to apply, in apply order (Secrets, ServiceAccounts, PVCs, Services, Deployments, policy). */
  readonly objects: KubernetesObject[];
  readonly modules: readonly RenderedModule[];
  readonly warnings: readonly Issue[];
  /** Problems that make the spec unusable on this device (policy violations, name collisions): apply nothing. */
  readonly errors: readonly RenderError[];
}


const ownerRef = (o: OwnerMeta) => [
  { apiVersion: EdgeDeploymentResource.apiVersion, kind: EdgeDeploymentResource.kind, name: o.name, uid: o.uid, controller: true, blockOwnerDeletion: true },
];

/**
 * Renders the Kubernetes objects for one EdgeDeployment. Pure and deterministic: the same input always gives the
 * same output (no clocks, no randomness), so applying it twice changes nothing and the CLI's `manifest render`
 * shows exactly what the controller applies.
 */
export function render(input: RenderInput): RenderResult {
  const { owner, policy, parsed } = input;
  const spec = parsed.spec;
  const warnings: Issue[] = [...parsed.warnings];
  const errors: RenderError[] = [];
  const ctx = { owner, policy, deviceId: input.deviceId, warnings, errors };

  const entries = moduleEntries(parsed, policy);

  // Names: stable, valid, and never two modules on one object.
  const byObject = new Map<string, string>();
  for (const e of entries) {
    const n = e.objectName;
    const other = byObject.get(n);
    if (other !== undefined) errors.push({ path: e.path, reason: RenderErrorReason.NameCollision, message: `maps to the Kubernetes name "${n}", which module "${other}" already uses; rename one of them` });
    byObject.set(n, e.name);
  }

  // startupOrder: which running modules are held back by a lower-ordered one that is not yet available.
  const waiting = input.available ? startupWaits(entries, input.available) : new Map<string, string[]>();

  const secrets: V1Secret[] = [];
  const pullSecretFor = registrySecrets(spec.registryCredentials, ctx, secrets);
  const serviceAccounts: V1ServiceAccount[] = [];
  const pvcs = new Map<string, V1PersistentVolumeClaim>();
  const services: V1Service[] = [];
  const deployments: V1Deployment[] = [];
  const modules: RenderedModule[] = [];

  for (const e of entries) {
    const name = e.objectName;
    const co = parsed.createOptions[e.name] ?? {};
    const held = waiting.get(e.name);
    const parked = input.parked?.has(e.name) === true;
    const replicas = e.spec.status === 'stopped' || held || parked ? 0 : 1;
    modules.push({
      name: e.name,
      objectName: name,
      system: e.system,
      desiredStatus: e.spec.status,
      startupOrder: startupOrderOf(e),
      replicas,
      ...(held ? { waitingFor: held } : {}),
      ...(parked ? { parked: true } : {}),
      ...(parked && input.parked?.get(e.name) !== undefined ? { parkedExitCode: input.parked.get(e.name) } : {}),
      specDigest: e.specDigest,
      image: e.spec.settings.image,
      ...(e.spec.version !== undefined ? { version: e.spec.version } : {}),
      restartPolicy: e.spec.restartPolicy,
    });
    const labels = moduleLabels(owner, name);
    const moduleAnnotations = { [Annotations.moduleName]: e.name, [Annotations.deviceId]: input.deviceId };
    serviceAccounts.push({
      apiVersion: 'v1',
      kind: 'ServiceAccount',
      metadata: { name, namespace: owner.namespace, labels, annotations: moduleAnnotations, ownerReferences: ownerRef(owner) },
      automountServiceAccountToken: false,
    });
    const svc = renderService(e.name, name, e.spec, co, labels, ctx, e.path);
    if (svc) services.push(svc);
    const volumes = renderVolumes(e.spec, co, ctx, e.path, pvcs);
    deployments.push(renderDeployment(e, name, co, replicas, labels, moduleAnnotations, volumes, pullSecretFor(e.spec.settings.image), ctx));
  }

  const objects: KubernetesObject[] = [...secrets, ...serviceAccounts, ...[...pvcs.values()].sort((a, b) => (a.metadata?.name ?? '').localeCompare(b.metadata?.name ?? '')), ...services, ...deployments];
  objects.push(...renderHardening(owner, policy, entries.some((e) => e.name === 'edgeHub') ? (services.find((s) => s.metadata?.name === EDGE_HUB_SERVICE)?.spec?.ports ?? []) : []));
  return { objects, modules, warnings, errors };
}

function moduleLabels(owner: OwnerMeta, objectName: string): Record<string, string> {
  return {
    [Labels.managedBy]: MANAGED_BY,
    [Labels.partOf]: 'kedge',
    [Labels.deployment]: toLabelValue(owner.name),
    [Labels.module]: objectName,
  };
}

interface Ctx {
  readonly owner: OwnerMeta;
  readonly policy: DevicePolicy;
  readonly deviceId: string;
  readonly warnings: Issue[];
  readonly errors: RenderError[];
}

/** Registry host of an image reference (`docker.io` when none is given, as Docker resolves it). */
export function imageRegistry(image: string): string {
  const first = image.split('/')[0] ?? '';
  return image.includes('/') && (first.includes('.') || first.includes(':') || first === 'localhost') ? first.toLowerCase() : 'docker.io';
}

function normalizeRegistry(address: string): string {
  return address.replace(/^https?:\/\//i, '').replace(/\/.*$/, '').toLowerCase();
}

function registrySecrets(creds: Readonly<Record<string, RegistryCredential>>, ctx: Ctx, out: V1Secret[]): (image: string) => string[] {
  const byRegistry = new Map<string, string[]>();
  for (const name of Object.keys(creds).sort()) {
    const c = creds[name];
    if (!c) continue;
    const server = normalizeRegistry(c.address);
    const secretName = toDnsLabel(`registry-${name}`);
    if (c.password === undefined) {
      ctx.warnings.push({ path: `spec.registryCredentials.${name}`, message: 'has no password; the Secret is not rendered' });
      continue;
    }
    const auth = Buffer.from(`${c.username}:${c.password}`).toString('base64');
    const config = { auths: { [server]: { username: c.username, password: c.password, auth } } };
    out.push({
      apiVersion: 'v1',
      kind: 'Secret',
      type: 'kubernetes.io/dockerconfigjson',
      metadata: {
        name: secretName,
        namespace: ctx.owner.namespace,
        labels: { [Labels.managedBy]: MANAGED_BY, [Labels.partOf]: 'kedge', [Labels.deployment]: toLabelValue(ctx.owner.name), [Labels.registry]: toLabelValue(name) },
        ownerReferences: ownerRef(ctx.owner),
      },
      data: { '.dockerconfigjson': Buffer.from(JSON.stringify(config)).toString('base64') },
    });
    byRegistry.set(server, [...(byRegistry.get(server) ?? []), secretName]);
  }
  return (image) => byRegistry.get(imageRegistry(image)) ?? [];
}

/** `"80/tcp"` → `{ port: 80, protocol: 'TCP' }`. */
function parsePortKey(key: string): { port: number; protocol: 'TCP' | 'UDP' | 'SCTP' } | undefined {
  const m = /^(\d{1,5})(?:\/(tcp|udp|sctp))?$/i.exec(key.trim());
  if (!m) return undefined;
  const port = Number(m[1]);
  if (port < 1 || port > 65535) return undefined;
  return { port, protocol: (m[2]?.toUpperCase() ?? 'TCP') as 'TCP' | 'UDP' | 'SCTP' };
}

function containerPorts(co: CreateOptions, ctx: Ctx, path: string): V1ContainerPort[] {
  const seen = new Map<string, V1ContainerPort>();
  const keys = [...Object.keys(co.ExposedPorts ?? {}), ...Object.keys(co.HostConfig?.PortBindings ?? {})];
  for (const k of keys) {
    const p = parsePortKey(k);
    if (!p) {
      ctx.warnings.push({ path: `${path}.settings.createOptions`, message: `port "${k}" is not "<port>[/tcp|udp|sctp]"; ignored` });
      continue;
    }
    seen.set(`${p.port}/${p.protocol}`, { containerPort: p.port, protocol: p.protocol });
  }
  return [...seen.values()].sort((a, b) => a.containerPort - b.containerPort || (a.protocol ?? '').localeCompare(b.protocol ?? ''));
}

function renderService(moduleName: string, name: string, spec: ModuleSpec, co: CreateOptions, labels: Record<string, string>, ctx: Ctx, path: string): V1Service | undefined {
  const ports = new Map<string, V1ServicePort>();
  for (const k of Object.keys(co.ExposedPorts ?? {})) {
    const p = parsePortKey(k);
    if (p) ports.set(`${p.port}/${p.protocol}`, { name: `exposed-${p.port}-${p.protocol.toLowerCase()}`, port: p.port, targetPort: p.port, protocol: p.protocol });
  }
  let bound = false;
  for (const [k, bindings] of Object.entries(co.HostConfig?.PortBindings ?? {})) {
    const p = parsePortKey(k);
    if (!p) continue;
    for (const b of bindings) {
      const hp = b.HostPort === undefined || b.HostPort === '' ? p.port : Number(b.HostPort);
      if (!Number.isInteger(hp) || hp < 1 || hp > 65535) {
        ctx.warnings.push({ path: `${path}.settings.createOptions.HostConfig.PortBindings.${k}`, message: `HostPort ${JSON.stringify(b.HostPort)} is not a port; binding ignored` });
        continue;
      }
      if (b.HostIp && b.HostIp !== '0.0.0.0' && b.HostIp !== '::') ctx.warnings.push({ path: `${path}.settings.createOptions.HostConfig.PortBindings.${k}`, message: `HostIp ${b.HostIp} has no Kubernetes equivalent; the Service listens on all addresses` });
      bound = true;
      // A binding overrides an exposed port with the same service port (as the preview did).
      ports.set(`${hp}/${p.protocol}`, { name: `host-${hp}-${p.protocol.toLowerCase()}`, port: hp, targetPort: p.port, protocol: p.protocol });
    }
  }
  if (ports.size === 0) return undefined;
  const type = spec.k8s?.serviceOptions?.type ?? (bound ? ctx.policy.portBindingServiceType : 'ClusterIP');
  const svcPorts = [...ports.values()].sort((a, b) => a.port - b.port || (a.protocol ?? '').localeCompare(b.protocol ?? ''));
  return {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: {
      name,
      namespace: ctx.owner.namespace,
      labels,
      annotations: { [Annotations.moduleName]: moduleName, ...(co.Labels ?? {}), ...(spec.k8s?.serviceOptions?.annotations ?? {}) },
      ownerReferences: ownerRef(ctx.owner),
    },
    spec: {
      type,
      selector: { [Labels.deployment]: labels[Labels.deployment] ?? '', [Labels.module]: name },
      ports: svcPorts,
      ...(spec.k8s?.serviceOptions?.loadBalancerIP ? { loadBalancerIP: spec.k8s.serviceOptions.loadBalancerIP } : {}),
    },
  };
}

interface RenderedVolumes {
  readonly volumes: V1Volume[];
  readonly mounts: V1VolumeMount[];
  /** True when a ReadWriteOnce claim is mounted: a rolling update would deadlock, so the Deployment recreates. */
  readonly needsRecreate: boolean;
}

function renderVolumes(spec: ModuleSpec, co: CreateOptions, ctx: Ctx, path: string, pvcs: Map<string, V1PersistentVolumeClaim>): RenderedVolumes {
  const volumes = new Map<string, V1Volume>();
  const mounts = new Map<string, V1VolumeMount>();
  let needsRecreate = false;
  const coPath = `${path}.settings.createOptions.HostConfig`;
  const addMount = (vol: V1Volume, mount: V1VolumeMount) => {
    volumes.set(vol.name, vol);
    const prev = mounts.get(mount.mountPath);
    // The same target mounted twice: read-write wins (as the preview did).
    if (!prev || (prev.readOnly && !mount.readOnly)) mounts.set(mount.mountPath, mount);
  };
  const named = (source: string, target: string, readOnly: boolean) => {
    const claim = toDnsLabel(`data-${source}`);
    const persistence = spec.k8s?.persistence;
    const accessModes = persistence?.accessModes ?? [ctx.policy.pvcAccessMode];
    if (!pvcs.has(claim)) {
      const storageClassName = persistence?.storageClassName ?? ctx.policy.storageClassName;
      pvcs.set(claim, {
        apiVersion: 'v1',
        kind: 'PersistentVolumeClaim',
        metadata: {
          name: claim,
          namespace: ctx.owner.namespace,
          labels: { [Labels.managedBy]: MANAGED_BY, [Labels.partOf]: 'kedge', [Labels.deployment]: toLabelValue(ctx.owner.name), [Labels.volume]: toLabelValue(source) },
          annotations: { [Annotations.volumeName]: source },
          ownerReferences: ownerRef(ctx.owner),
        },
        spec: {
          accessModes: [...accessModes],
          resources: { requests: { storage: String(persistence?.size ?? ctx.policy.pvcSize) } },
          ...(storageClassName !== undefined ? { storageClassName } : {}),
        },
      });
    }
    if (accessModes.some((m) => m === 'ReadWriteOnce' || m === 'ReadWriteOncePod')) needsRecreate = true;
    addMount({ name: claim, persistentVolumeClaim: { claimName: claim, ...(readOnly ? { readOnly: true } : {}) } }, { name: claim, mountPath: target, ...(readOnly ? { readOnly: true } : {}) });
  };
  const host = (source: string, target: string, readOnly: boolean, where: string, type = 'DirectoryOrCreate') => {
    if (!ctx.policy.allowHostPaths) {
      ctx.errors.push({ path: where, reason: RenderErrorReason.PolicyViolation, message: `host path "${source}" is not allowed by this device's policy (allowHostPaths: false); use a named volume or ask the device operator` });
      return;
    }
    const name = toDnsLabel(`host-${source}`);
    addMount({ name, hostPath: { path: source, type } }, { name, mountPath: target, ...(readOnly ? { readOnly: true } : {}) });
  };
  (co.HostConfig?.Binds ?? []).forEach((bind, i) => {
    const parts = bind.split(':');
    const [source, target, mode] = parts;
    if (!source || !target || !target.startsWith('/')) {
      ctx.warnings.push({ path: `${coPath}.Binds[${i}]`, message: `"${bind}" is not "<source>:<target>[:ro]"; ignored` });
      return;
    }
    const ro = (mode ?? '').split(',').includes('ro');
    if (source.startsWith('/')) host(source, target, ro, `${coPath}.Binds[${i}]`);
    else named(source, target, ro);
  });
  (co.HostConfig?.Mounts ?? []).forEach((m, i) => {
    const where = `${coPath}.Mounts[${i}]`;
    if (!m.Target || !m.Source || !m.Type) {
      ctx.warnings.push({ path: where, message: 'a mount needs Type, Source and Target; ignored' });
      return;
    }
    const t = m.Type.toLowerCase();
    if (t === 'volume') named(m.Source, m.Target, m.ReadOnly === true);
    else if (t === 'bind') host(m.Source, m.Target, m.ReadOnly === true, where);
    else ctx.warnings.push({ path: `${where}.Type`, message: `mount type "${m.Type}" is not supported on Kubernetes; ignored` });
  });
  (co.HostConfig?.Devices ?? []).forEach((d, i) => {
    if (!d.PathOnHost) return;
    host(d.PathOnHost, d.PathInContainer ?? d.PathOnHost, false, `${coPath}.Devices[${i}]`, 'CharDevice');
    if (ctx.policy.allowHostPaths && !co.HostConfig?.Privileged) ctx.warnings.push({ path: `${coPath}.Devices[${i}]`, message: 'device mounted as a hostPath; without Privileged the container may lack cgroup access to it (prefer a device plugin)' });
  });
  for (const v of spec.k8s?.volumes ?? []) {
    volumes.set(v.volume.name, v.volume);
    for (const vm of v.volumeMounts) mounts.set(vm.mountPath, vm);
  }
  return {
    volumes: [...volumes.values()].sort((a, b) => a.name.localeCompare(b.name)),
    mounts: [...mounts.values()].sort((a, b) => a.mountPath.localeCompare(b.mountPath)),
    needsRecreate,
  };
}

function renderEnv(e: { name: string; spec: ModuleSpec }, co: CreateOptions, ctx: Ctx, path: string): V1EnvVar[] {
  const env = new Map<string, string>();
  const set = (k: string, v: string, where: string) => {
    let key = k;
    if (key.includes(':')) {
      // .NET configuration reads `A__B` as `A:B`, and `:` is not valid in older Kubernetes env names.
      key = key.replace(/:/g, '__');
      ctx.warnings.push({ path: where, message: `env name "${k}" written as "${key}" (":" is not portable in Kubernetes; .NET reads "__" as ":")` });
    }
    if (!/^[-._a-zA-Z][-._a-zA-Z0-9]*$/.test(key)) {
      ctx.warnings.push({ path: where, message: `env name "${k}" is not valid in Kubernetes; skipped` });
      return;
    }
    env.set(key, v);
  };
  (co.Env ?? []).forEach((kv, i) => {
    const eq = kv.indexOf('=');
    if (eq <= 0) {
      ctx.warnings.push({ path: `${path}.settings.createOptions.Env[${i}]`, message: `"${kv}" is not NAME=value; skipped` });
      return;
    }
    set(kv.slice(0, eq), kv.slice(eq + 1), `${path}.settings.createOptions.Env[${i}]`);
  });
  // The module's env section overrides createOptions.Env; the runtime's variables (moduleRuntimeEnv) override both.
  for (const [k, v] of Object.entries(e.spec.env)) set(k, v.value, `${path}.env.${k}`);
  return [...env.entries()].map(([name, value]) => ({ name, value }));
}

/** Docker `User` (`uid[:gid]`) → runAsUser/runAsGroup; a user name has no Kubernetes equivalent. */
function userContext(user: string | undefined, ctx: Ctx, path: string): V1SecurityContext {
  if (user === undefined || user === '') return {};
  const m = /^(\d+)(?::(\d+))?$/.exec(user);
  if (m) return { runAsUser: Number(m[1]), ...(m[2] !== undefined ? { runAsGroup: Number(m[2]) } : {}) };
  if (user === 'root') return { runAsUser: 0 };
  ctx.warnings.push({ path: `${path}.settings.createOptions.User`, message: `user name "${user}" cannot be resolved on Kubernetes (use a numeric uid[:gid]); the image's default user runs` });
  return {};
}

function renderResources(co: CreateOptions, spec: ModuleSpec): V1Container['resources'] {
  const limits: Record<string, string> = {};
  const requests: Record<string, string> = {};
  const hc = co.HostConfig;
  if (hc?.Memory !== undefined && hc.Memory > 0) limits.memory = String(Math.trunc(hc.Memory));
  if (hc?.MemoryReservation !== undefined && hc.MemoryReservation > 0) requests.memory = String(Math.trunc(hc.MemoryReservation));
  if (hc?.NanoCpus !== undefined && hc.NanoCpus > 0) limits.cpu = `${Math.max(1, Math.round(hc.NanoCpus / 1e6))}m`;
  else if (hc?.CpuQuota !== undefined && hc.CpuQuota > 0) limits.cpu = `${Math.max(1, Math.round((hc.CpuQuota / (hc.CpuPeriod && hc.CpuPeriod > 0 ? hc.CpuPeriod : 100000)) * 1000))}m`;
  for (const [k, v] of Object.entries(spec.k8s?.resources?.limits ?? {})) limits[k] = String(v);
  for (const [k, v] of Object.entries(spec.k8s?.resources?.requests ?? {})) requests[k] = String(v);
  if (Object.keys(limits).length === 0 && Object.keys(requests).length === 0) return undefined;
  return { ...(Object.keys(limits).length ? { limits } : {}), ...(Object.keys(requests).length ? { requests } : {}) };
}

function renderDeployment(
  e: { name: string; spec: ModuleSpec; system: boolean; path: string },
  name: string,
  co: CreateOptions,
  replicas: number,
  labels: Record<string, string>,
  moduleAnnotations: Record<string, string>,
  vols: RenderedVolumes,
  pullSecrets: string[],
  ctx: Ctx,
): V1Deployment {
  const hc = co.HostConfig ?? {};
  const k8s = e.spec.k8s ?? {};
  const path = e.path;
  warnUnsupported(co, ctx, path);
  const privileged = hc.Privileged === true;
  const hostNetwork = hc.NetworkMode === 'host';
  if ((privileged || hostNetwork || hc.IpcMode === 'host' || hc.PidMode === 'host') && !ctx.policy.allowPrivileged) {
    ctx.errors.push({ path: `${path}.settings.createOptions.HostConfig`, reason: RenderErrorReason.PolicyViolation, message: "Privileged and host network/IPC/PID are not allowed by this device's policy (allowPrivileged: false)" });
  }
  if (hc.NetworkMode && !['host', 'default', 'bridge', 'azure-iot-edge'].includes(hc.NetworkMode)) {
    ctx.warnings.push({ path: `${path}.settings.createOptions.HostConfig.NetworkMode`, message: `network "${hc.NetworkMode}" has no Kubernetes equivalent (only "host" does; Docker treats "Host" as a user network); pod networking is used` });
  }
  const capabilities = {
    ...(hc.CapAdd?.length ? { add: [...hc.CapAdd] } : {}),
    ...(hc.CapDrop?.length ? { drop: [...hc.CapDrop] } : {}),
  };
  const securityContext: V1SecurityContext = {
    ...userContext(co.User, ctx, path),
    ...(privileged ? { privileged: true } : {}),
    ...(Object.keys(capabilities).length ? { capabilities } : {}),
    ...(hc.ReadonlyRootfs ? { readOnlyRootFilesystem: true } : {}),
    ...((k8s.containerSecurityContext ?? {}) as V1SecurityContext),
  };
  const resources = renderResources(co, e.spec);
  const probe = healthProbe(co.Healthcheck, ctx, path);
  // Docker restarts an unhealthy container only where IoT Edge would (always, on-unhealthy): a liveness probe there;
  // readiness everywhere, so an unhealthy module is reported and not counted available.
  const restartsWhenUnhealthy = e.spec.restartPolicy === 'always' || e.spec.restartPolicy === 'on-unhealthy';
  const ports = containerPorts(co, ctx, path);
  const ident = kubernetesModuleEnv({ moduleName: e.name, objectName: name, deviceId: ctx.deviceId, hubHostName: ctx.policy.hubHostName, identity: ctx.policy.moduleIdentity });
  const container: V1Container = {
    name: name.slice(0, 63),
    image: e.spec.settings.digest ? `${e.spec.settings.image.replace(/@.*$/, '')}@${e.spec.settings.digest}` : e.spec.settings.image,
    imagePullPolicy: e.spec.imagePullPolicy === 'never' ? 'Never' : 'IfNotPresent',
    ...(co.Entrypoint?.length ? { command: [...co.Entrypoint] } : {}),
    ...(co.Cmd?.length ? { args: [...co.Cmd] } : {}),
    ...(co.WorkingDir ? { workingDir: co.WorkingDir } : {}),
    env: [...renderEnv(e, co, ctx, path).filter((v) => !ident.env.some((i) => i.name === v.name)), ...ident.env],
    ...(ports.length ? { ports } : {}),
    ...(resources ? { resources } : {}),
    ...(probe ? { readinessProbe: probe, ...(restartsWhenUnhealthy ? { livenessProbe: probe } : {}) } : {}),
    ...(Object.keys(securityContext).length ? { securityContext } : {}),
    ...(vols.mounts.length || ident.mounts.length ? { volumeMounts: [...vols.mounts, ...ident.mounts] } : {}),
  };
  const sysctls = Object.entries(hc.Sysctls ?? {}).map(([n, value]) => ({ name: n, value }));
  const podSecurity = { ...(sysctls.length ? { sysctls } : {}), ...(k8s.securityContext ?? {}) };
  const hostAliases = extraHosts(hc.ExtraHosts ?? [], ctx, path);
  const podSpec: V1PodSpec = {
    serviceAccountName: name,
    automountServiceAccountToken: false,
    restartPolicy: 'Always',
    containers: [container],
    ...(vols.volumes.length || ident.volumes.length ? { volumes: [...vols.volumes, ...ident.volumes] } : {}),
    ...(pullSecrets.length ? { imagePullSecrets: pullSecrets.map((n) => ({ name: n })) } : {}),
    ...(hostNetwork ? { hostNetwork: true, dnsPolicy: 'ClusterFirstWithHostNet' } : {}),
    ...(hc.IpcMode === 'host' ? { hostIPC: true } : {}),
    ...(hc.PidMode === 'host' ? { hostPID: true } : {}),
    ...(co.Hostname && isDnsLabel(co.Hostname) ? { hostname: co.Hostname } : {}),
    ...(hostAliases.length ? { hostAliases } : {}),
    ...(hc.Dns?.length || hc.DnsSearch?.length ? { dnsConfig: { ...(hc.Dns?.length ? { nameservers: [...hc.Dns] } : {}), ...(hc.DnsSearch?.length ? { searches: [...hc.DnsSearch] } : {}) } } : {}),
    ...(Object.keys(podSecurity).length ? { securityContext: podSecurity } : {}),
    ...(k8s.nodeSelector ? { nodeSelector: k8s.nodeSelector } : {}),
    ...(k8s.tolerations ? { tolerations: k8s.tolerations } : {}),
    ...(k8s.affinity ? { affinity: k8s.affinity } : {}),
    ...(k8s.priorityClassName ? { priorityClassName: k8s.priorityClassName } : {}),
  };
  if (co.Hostname && !isDnsLabel(co.Hostname)) ctx.warnings.push({ path: `${path}.settings.createOptions.Hostname`, message: `"${co.Hostname}" is not a DNS label; the pod keeps its generated hostname` });
  const strategy = k8s.strategy ?? (vols.needsRecreate ? { type: 'Recreate' as const } : undefined);
  const podAnnotations = {
    ...(co.Labels ?? {}),
    ...(k8s.podAnnotations ?? {}),
    ...moduleAnnotations,
    [Annotations.restartPolicy]: e.spec.restartPolicy,
    ...(e.spec.version !== undefined ? { [Annotations.moduleVersion]: e.spec.version } : {}),
    // Docker labels are not valid label keys/values in general: the preview put them in annotations too.
  };
  return {
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: { name, namespace: ctx.owner.namespace, labels, annotations: { ...moduleAnnotations }, ownerReferences: ownerRef(ctx.owner) },
    spec: {
      replicas,
      revisionHistoryLimit: 3,
      selector: { matchLabels: { [Labels.deployment]: labels[Labels.deployment] ?? '', [Labels.module]: name } },
      ...(strategy ? { strategy: strategy } : {}),
      template: {
        metadata: { labels: { ...(k8s.podLabels ?? {}), ...labels }, annotations: podAnnotations },
        spec: podSpec,
      },
    },
  };
}

function extraHosts(entries: readonly string[], ctx: Ctx, path: string): { ip: string; hostnames: string[] }[] {
  const byIp = new Map<string, string[]>();
  entries.forEach((h, i) => {
    // Docker splits `name:ip` at the first colon, so an IPv6 address stays whole (`host:fe80::1`).
    const idx = h.indexOf(':');
    const host = h.slice(0, idx);
    const ip = h.slice(idx + 1);
    if (idx <= 0 || ip === '' || ip === 'host-gateway') {
      ctx.warnings.push({ path: `${path}.settings.createOptions.HostConfig.ExtraHosts[${i}]`, message: `"${h}" cannot be mapped to a hostAlias; ignored` });
      return;
    }
    byIp.set(ip, [...(byIp.get(ip) ?? []), host]);
  });
  return [...byIp.entries()].map(([ip, hostnames]) => ({ ip, hostnames }));
}

const NS_PER_S = 1e9;

/**
 * Docker `Healthcheck` → an exec probe: `["CMD", …]` runs as is, `["CMD-SHELL", "…"]` through `/bin/sh -c`,
 * `["NONE"]` disables. Durations are nanoseconds in Docker, seconds (≥ 1) here; Docker's defaults apply
 * (interval 30 s, timeout 30 s, 3 retries).
 */
function healthProbe(hc: unknown, ctx: Ctx, path: string): V1Probe | undefined {
  if (hc === undefined || hc === null) return undefined;
  const where = `${path}.settings.createOptions.Healthcheck`;
  const h = hc as { Test?: unknown; Interval?: unknown; Timeout?: unknown; Retries?: unknown; StartPeriod?: unknown };
  const test = Array.isArray(h.Test) && h.Test.every((x) => typeof x === 'string') ? (h.Test) : undefined;
  if (!test || test.length === 0) {
    ctx.warnings.push({ path: `${where}.Test`, message: 'expected ["CMD", …], ["CMD-SHELL", "…"] or ["NONE"]; no health check' });
    return undefined;
  }
  const [kind, ...rest] = test;
  if (kind === 'NONE') return undefined;
  const command = kind === 'CMD' ? rest : kind === 'CMD-SHELL' ? ['/bin/sh', '-c', rest.join(' ')] : undefined;
  if (!command || command.length === 0) {
    ctx.warnings.push({ path: `${where}.Test`, message: `"${kind ?? ''}" is not CMD, CMD-SHELL or NONE; no health check` });
    return undefined;
  }
  const seconds = (v: unknown, dflt: number) => (typeof v === 'number' && v > 0 ? Math.max(1, Math.round(v / NS_PER_S)) : dflt);
  return {
    exec: { command },
    periodSeconds: seconds(h.Interval, 30),
    timeoutSeconds: seconds(h.Timeout, 30),
    failureThreshold: typeof h.Retries === 'number' && h.Retries > 0 ? Math.round(h.Retries) : 3,
    ...(typeof h.StartPeriod === 'number' && h.StartPeriod > 0 ? { initialDelaySeconds: seconds(h.StartPeriod, 0) } : {}),
  };
}

/** Options Kedge reads but cannot honour on Kubernetes: each gets a warning, never silent loss. */
function warnUnsupported(co: CreateOptions, ctx: Ctx, path: string): void {
  const hc = co.HostConfig ?? {};
  const w = (field: string, why: string) => ctx.warnings.push({ path: `${path}.settings.createOptions.${field}`, message: why });
  if (hc.MemorySwap !== undefined && hc.MemorySwap !== 0) w('HostConfig.MemorySwap', 'swap limits have no Kubernetes equivalent; ignored');
  if (hc.CpuShares !== undefined) w('HostConfig.CpuShares', 'CPU shares are ignored; set resources.requests.cpu in settings.k8sOptions');
  if (hc.DeviceRequests?.length) w('HostConfig.DeviceRequests', 'GPU requests are ignored; set resources.limits in settings.k8sOptions (e.g. "nvidia.com/gpu": 1) with a device plugin');
  if (hc.RestartPolicy !== undefined) w('HostConfig.RestartPolicy', "Docker's restart policy is ignored; the module's restartPolicy applies");
  if (hc.LogConfig !== undefined) w('HostConfig.LogConfig', 'log drivers are ignored; the kubelet manages container logs');
  if (hc.ShmSize !== undefined) w('HostConfig.ShmSize', 'shared-memory size is ignored; mount an emptyDir with medium Memory at /dev/shm via volumes in settings.k8sOptions');
  if (co.NetworkingConfig !== undefined && hc.NetworkMode !== 'host') w('NetworkingConfig', 'Docker networks are ignored; modules reach each other by module name through Services');
  if (co.StopSignal !== undefined) w('StopSignal', 'stop signals are ignored; Kubernetes sends SIGTERM');
}

function renderHardening(owner: OwnerMeta, policy: DevicePolicy, hubPorts: readonly V1ServicePort[]): KubernetesObject[] {
  const out: KubernetesObject[] = [];
  const labels = { [Labels.managedBy]: MANAGED_BY, [Labels.partOf]: 'kedge', [Labels.deployment]: toLabelValue(owner.name) };
  const meta = (name: string) => ({ name, namespace: owner.namespace, labels, ownerReferences: ownerRef(owner) });
  const h = policy.hardening;
  if (h.networkPolicy) {
    const deny: V1NetworkPolicy = {
      apiVersion: 'networking.k8s.io/v1',
      kind: 'NetworkPolicy',
      metadata: meta('kedge-default-deny'),
      spec: { podSelector: { matchLabels: { [Labels.deployment]: toLabelValue(owner.name) } }, policyTypes: ['Ingress'], ingress: [] },
    };
    const hub: V1NetworkPolicy = {
      apiVersion: 'networking.k8s.io/v1',
      kind: 'NetworkPolicy',
      metadata: meta('kedge-allow-edgehub'),
      spec: {
        podSelector: { matchLabels: { [Labels.deployment]: toLabelValue(owner.name), [Labels.module]: EDGE_HUB_SERVICE } },
        policyTypes: ['Ingress'],
        ingress: [{ ports: hubPorts.map((p) => ({ port: p.targetPort ?? p.port, protocol: p.protocol ?? 'TCP' })) }],
      },
    };
    out.push(deny, hub);
  }
  if (h.resourceQuota) {
    const q: V1ResourceQuota = { apiVersion: 'v1', kind: 'ResourceQuota', metadata: meta('kedge-quota'), spec: { hard: Object.fromEntries(Object.entries(h.resourceQuota).map(([k, v]) => [k, String(v)])) } };
    out.push(q);
  }
  if (h.limitRange) {
    const str = (r?: Record<string, string | number>) => (r ? Object.fromEntries(Object.entries(r).map(([k, v]) => [k, String(v)])) : undefined);
    const d = str(h.limitRange.defaultLimits);
    const dr = str(h.limitRange.defaultRequests);
    // Wire name `default` (client-node's model calls it `_default`): render output is plain API JSON.
    const lr: V1LimitRange = { apiVersion: 'v1', kind: 'LimitRange', metadata: meta('kedge-limits'),
      spec: { limits: [{ type: 'Container', ...(d ? { default: d } : {}), ...(dr ? { defaultRequest: dr } : {}) }] } };
    out.push(lr);
  }
  return out;
}
