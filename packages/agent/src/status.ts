import type { V1ContainerStatus, V1Deployment, V1Pod } from '@kubernetes/client-node';
import type { Issue } from '@kedge/contracts';
import { newObject, ownValue } from '@kedge/protocol';
import type { Condition, EdgeDeploymentStatus, ModuleStatusReport, RestartPolicy } from '@kedge/manifest';
import type { RoutesCondition } from './edgehub-report.js';
import { MAX_RESTART_COUNT, restartsAfterExit } from './restart-policy.js';
import type { RenderedModule } from './render.js';

/** Condition types (kubebuilder style); reasons are in {@link Reasons}. */
export const ConditionTypes = {
  Ready: 'Ready',
  SpecValid: 'SpecValid',
  ModulesAvailable: 'ModulesAvailable',
  RoutesApplied: 'RoutesApplied',
} as const;

export const Reasons = {
  Valid: 'Valid',
  InvalidSpec: 'InvalidSpec',
  PolicyViolation: 'PolicyViolation',
  NameCollision: 'NameCollision',
  AllAvailable: 'AllAvailable',
  Progressing: 'Progressing',
  ModulesFailing: 'ModulesFailing',
  ApplyFailed: 'ApplyFailed',
  RoutesValid: 'RoutesValid',
  NotApplied: 'NotApplied',
} as const;

export const Phases = { Ready: 'Ready', Progressing: 'Progressing', Degraded: 'Degraded', Invalid: 'Invalid', Failed: 'Failed' } as const;

/** True when a module's Deployment has rolled out its current spec and has a ready pod. */
export function isAvailable(d: V1Deployment | undefined): boolean {
  if (!d?.status || !d.metadata) return false;
  const upToDate = (d.status.observedGeneration ?? 0) >= (d.metadata.generation ?? 0);
  return upToDate && (d.status.availableReplicas ?? 0) >= 1 && (d.status.updatedReplicas ?? 0) >= 1;
}

const time = (t: Date | string | undefined): string | undefined => (t === undefined ? undefined : typeof t === 'string' ? t : t.toISOString());

function newest(pods: readonly V1Pod[]): V1Pod | undefined {
  return [...pods]
    .filter((p) => !p.metadata?.deletionTimestamp)
    .sort((a, b) => String(time(b.metadata?.creationTimestamp) ?? '').localeCompare(String(time(a.metadata?.creationTimestamp) ?? '')))[0];
}

export { MAX_RESTART_COUNT } from './restart-policy.js';

/**
 * Whether a module's pods show an exit its restartPolicy says not to restart: any exit under `never`, a clean
 * exit (code 0) under `on-failure`/`on-unhealthy`. Returns the exit code, or undefined to keep it running.
 * Kubernetes Deployments always restart containers, so the controller scales such a module to 0 instead.
 */
export function exitWithoutRestart(m: { restartPolicy: RestartPolicy }, pods: readonly V1Pod[]): number | undefined {
  if (m.restartPolicy === 'always') return undefined;
  for (const pod of pods) {
    for (const cs of pod.status?.containerStatuses ?? []) {
      const term = cs.state?.terminated ?? cs.lastState?.terminated;
      if (!term) continue;
      if (!restartsAfterExit(m.restartPolicy, term.exitCode)) return term.exitCode;
    }
  }
  return undefined;
}

/**
 * The runtime status of one module from its observed Deployment and pods, in edgeAgent's vocabulary
 * (running, backoff, failed, stopped, unknown) plus `pending` for a module not yet scheduled or held back by
 * startupOrder.
 */
export function moduleStatus(m: RenderedModule, deployment: V1Deployment | undefined, pods: readonly V1Pod[], previous?: ModuleStatusReport): ModuleStatusReport {
  if (m.parked) {
    const prev = previous?.parkedSpec === m.specDigest ? previous : undefined;
    const fresh = prev ? undefined : moduleStatus({ ...m, parked: false }, deployment, pods);
    // The exit code seen when the module was parked: its pod may already be gone when this status is computed.
    const exitCode = prev?.exitCode ?? m.parkedExitCode ?? fresh?.exitCode ?? exitWithoutRestart(m, pods);
    return {
      ...(prev ?? fresh),
      runtimeStatus: exitCode === 0 ? 'stopped' : 'failed',
      description: `Exited with code ${exitCode ?? 'unknown'}; not restarted (restartPolicy: ${m.restartPolicy}) until the module changes`,
      restartCount: prev?.restartCount ?? fresh?.restartCount ?? 0,
      ...(exitCode !== undefined ? { exitCode } : {}),
      desiredStatus: m.desiredStatus,
      image: m.image,
      deployment: m.objectName,
      parkedSpec: m.specDigest,
    };
  }
  const base = {
    desiredStatus: m.desiredStatus,
    image: m.image,
    ...(m.version !== undefined ? { version: m.version } : {}),
    deployment: m.objectName,
    ...(deployment?.status?.readyReplicas !== undefined ? { readyReplicas: deployment.status.readyReplicas } : {}),
  };
  const pod = newest(pods);
  const cs: V1ContainerStatus | undefined = pod?.status?.containerStatuses?.find((c) => c.name === m.objectName) ?? pod?.status?.containerStatuses?.[0];
  const restartCount = cs?.restartCount ?? 0;
  const term = cs?.state?.terminated ?? cs?.lastState?.terminated;
  const times = {
    restartCount,
    ...(term?.exitCode !== undefined ? { exitCode: term.exitCode } : {}),
    ...(time(cs?.state?.running?.startedAt ?? term?.startedAt) ? { lastStartTimeUtc: time(cs?.state?.running?.startedAt ?? term?.startedAt) } : {}),
    ...(time(term?.finishedAt) ? { lastExitTimeUtc: time(term?.finishedAt) } : {}),
  };
  if (!pod) {
    if (m.desiredStatus === 'stopped') return { ...base, runtimeStatus: 'stopped', description: 'Stopped as desired', restartCount: 0 };
    if (m.waitingFor?.length) return { ...base, runtimeStatus: 'pending', description: `Waiting for ${m.waitingFor.join(', ')} to be available (startupOrder)`, restartCount: 0 };
    return { ...base, runtimeStatus: 'pending', description: 'No pod yet', restartCount: 0 };
  }
  const phase = pod.status?.phase ?? 'Unknown';
  const waiting = cs?.state?.waiting;
  if (phase === 'Succeeded') return { ...base, ...times, runtimeStatus: 'stopped', description: 'Exited' };
  if (phase === 'Failed') return { ...base, ...times, runtimeStatus: 'failed', description: pod.status?.message ?? pod.status?.reason ?? 'Pod failed' };
  if (phase === 'Unknown') return { ...base, ...times, runtimeStatus: 'unknown', description: pod.status?.message ?? 'Pod state unknown (node unreachable?)' };
  if (waiting && waiting.reason && waiting.reason !== 'ContainerCreating' && waiting.reason !== 'PodInitializing') {
    if (restartCount >= MAX_RESTART_COUNT) return { ...base, ...times, runtimeStatus: 'failed', description: `Failed: restarted ${restartCount} times (${waiting.reason})` };
    return { ...base, ...times, runtimeStatus: 'backoff', description: `Module in back-off: ${waiting.reason}${waiting.message ? ` (${waiting.message})` : ''}` };
  }
  if (cs?.state?.terminated) {
    const code = cs.state.terminated.exitCode;
    return { ...base, ...times, runtimeStatus: code === 0 ? 'stopped' : 'failed', description: `Exited with code ${code}${cs.state.terminated.reason ? ` (${cs.state.terminated.reason})` : ''}` };
  }
  if (cs?.state?.running) {
    return { ...base, ...times, runtimeStatus: 'running', description: cs.ready ? `Running since ${time(cs.state.running.startedAt) ?? 'unknown'}` : 'Running, not ready yet' };
  }
  const scheduled = pod.status?.conditions?.find((c) => c.type === 'PodScheduled');
  if (scheduled?.status === 'False') return { ...base, ...times, runtimeStatus: 'pending', description: `Not scheduled: ${scheduled.message ?? scheduled.reason ?? 'unknown reason'}` };
  return { ...base, ...times, runtimeStatus: 'pending', description: waiting?.reason ?? `Pod ${phase}` };
}

/** Everything the status of one pass is computed from. */
export interface StatusInput {
  readonly generation: number;
  readonly previous?: EdgeDeploymentStatus;
  /** Clock reading for condition transitions (the only time in status). */
  readonly now: string;
  readonly specErrors?: readonly Issue[];
  readonly specErrorReason?: string;
  readonly applyError?: string;
  readonly routes?: number;
  /** `RoutesApplied` as the edge hub reported it ({@link routesCondition}). @default Unknown, not reported */
  readonly routesApplied?: RoutesCondition;
  readonly modules?: readonly RenderedModule[];
  readonly deployments?: ReadonlyMap<string, V1Deployment>;
  readonly pods?: ReadonlyMap<string, readonly V1Pod[]>;
  /** Modules whose status a runtime computed itself (the process runtime), summarized like the rendered ones. */
  readonly observed?: readonly ObservedModule[];
}

/** One module's observed status, as a runtime reports it to {@link computeStatus}. */
export interface ObservedModule {
  readonly name: string;
  readonly desiredStatus: 'running' | 'stopped';
  /** Exited and kept down by its restartPolicy: not counted as desired. */
  readonly parked?: boolean;
  readonly status: ModuleStatusReport;
  /** Up and usable (counts towards `modulesReady` and `startupOrder`). */
  readonly available: boolean;
}

/**
 * Computes the whole status of an EdgeDeployment from observed state. When the spec is invalid, the module
 * statuses of the previous status are kept (the last good objects keep running) and only the conditions change.
 */
export function computeStatus(input: StatusInput): EdgeDeploymentStatus {
  const prev = input.previous;
  const conditions: Condition[] = [];
  const cond = (type: string, status: 'True' | 'False' | 'Unknown', reason: string, message: string) => {
    const old = prev?.conditions?.find((c) => c.type === type);
    const lastTransitionTime = old && old.status === status ? old.lastTransitionTime : input.now;
    conditions.push({ type, status, reason, message, observedGeneration: input.generation, lastTransitionTime });
  };
  if (input.specErrors?.length) {
    const msg = input.specErrors.map((i) => `${i.path}: ${i.message}`).join('; ');
    cond(ConditionTypes.SpecValid, 'False', input.specErrorReason ?? Reasons.InvalidSpec, truncate(msg));
    cond(ConditionTypes.Ready, 'False', input.specErrorReason ?? Reasons.InvalidSpec, 'The spec is not valid; the last good objects keep running');
    const keep = prev?.conditions?.filter((c) => c.type === ConditionTypes.ModulesAvailable || c.type === ConditionTypes.RoutesApplied) ?? [];
    return {
      observedGeneration: input.generation,
      phase: Phases.Invalid,
      ...(prev?.modulesDesired !== undefined ? { modulesDesired: prev.modulesDesired } : {}),
      ...(prev?.modulesReady !== undefined ? { modulesReady: prev.modulesReady } : {}),
      conditions: sortConditions([...conditions, ...keep]),
      ...(prev?.modules ? { modules: prev.modules } : {}),
    };
  }
  cond(ConditionTypes.SpecValid, 'True', Reasons.Valid, 'The spec is valid');
  // Module names are user keys (a module may be called `constructor`): a null-prototype record, own-key reads.
  const modules = newObject<ModuleStatusReport>();
  let desired = 0;
  let ready = 0;
  const failing: string[] = [];
  const notReady: string[] = [];
  const observed: ObservedModule[] = [
    ...(input.modules ?? []).map((m) => {
      const d = input.deployments?.get(m.objectName);
      const status = moduleStatus(m, d, input.pods?.get(m.objectName) ?? [], prev?.modules ? ownValue(prev.modules, m.name) : undefined);
      return { name: m.name, desiredStatus: m.desiredStatus, ...(m.parked ? { parked: true } : {}), status, available: isAvailable(d) && status.runtimeStatus === 'running' };
    }),
    ...(input.observed ?? []),
  ];
  for (const m of observed) {
    const s = m.status;
    modules[m.name] = s;
    if (m.desiredStatus !== 'running' || m.parked) continue;
    desired++;
    if (m.available) ready++;
    else notReady.push(m.name);
    if (s.runtimeStatus === 'backoff' || s.runtimeStatus === 'failed') failing.push(m.name);
  }
  if (input.applyError) {
    cond(ConditionTypes.RoutesApplied, 'Unknown', Reasons.ApplyFailed, 'Not all objects were applied');
    cond(ConditionTypes.ModulesAvailable, ready === desired ? 'True' : 'False', Reasons.ApplyFailed, truncate(input.applyError));
    cond(ConditionTypes.Ready, 'False', Reasons.ApplyFailed, truncate(input.applyError));
  } else {
    const r = input.routesApplied ?? { status: 'Unknown', reason: 'EdgeHubNotReported', message: 'The edge hub has not reported the routes it loaded' };
    cond(ConditionTypes.RoutesApplied, r.status, r.reason, r.message);
    if (ready === desired) cond(ConditionTypes.ModulesAvailable, 'True', Reasons.AllAvailable, `${ready}/${desired} modules available`);
    else if (failing.length) cond(ConditionTypes.ModulesAvailable, 'False', Reasons.ModulesFailing, `Failing: ${failing.join(', ')}`);
    else cond(ConditionTypes.ModulesAvailable, 'False', Reasons.Progressing, `Waiting for ${notReady.join(', ')}`);
    cond(ConditionTypes.Ready, ready === desired ? 'True' : 'False', ready === desired ? Reasons.AllAvailable : failing.length ? Reasons.ModulesFailing : Reasons.Progressing, `${ready}/${desired} modules available`);
  }
  const phase = input.applyError ? Phases.Failed : ready === desired ? Phases.Ready : failing.length ? Phases.Degraded : Phases.Progressing;
  return { observedGeneration: input.generation, phase, modulesDesired: desired, modulesReady: ready, conditions: sortConditions(conditions), modules };
}

function sortConditions(c: Condition[]): Condition[] {
  return c.sort((a, b) => a.type.localeCompare(b.type));
}

function truncate(s: string, n = 1000): string {
  return s.length > n ? `${s.slice(0, n - 1)}…` : s;
}
