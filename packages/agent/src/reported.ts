import { arch, platform } from 'node:os';
import { chunkKey, type EdgeDeploymentStatus, type ModuleSpec, type ModuleStatusReport } from '@kedge/manifest';
import { newObject, ownValue, type JsonObject } from '@kedge/protocol';
import { ConditionTypes } from './status.js';
import { DesiredStatusCode, type DesiredStatus } from './desired.js';

/** The agent's own version, as reported in `$edgeAgent` `version` and `runtime.platform.version`. */
export const AGENT_VERSION = '0.1.0';

/** What the twin sync knows about the last desired document it handled. */
export interface LastDesired {
  readonly version: number;
  /** Set when the document was refused (nothing was written); otherwise the outcome comes from the EdgeDeployment. */
  readonly refused?: DesiredStatus;
  /** The EdgeDeployment generation the accepted document was written as. */
  readonly generation?: number;
}

/** What `$edgeAgent` reported properties are computed from. */
export interface ReportedInput {
  /** The EdgeDeployment's spec as read (may be undefined: nothing applied yet). */
  readonly spec?: { readonly systemModules?: Record<string, ModuleSpec | undefined>; readonly modules?: Record<string, ModuleSpec> };
  readonly status?: EdgeDeploymentStatus;
  readonly generation?: number;
  readonly last?: LastDesired;
  /** When this agent process started (its own lastStartTimeUtc). */
  readonly startedAt: string;
}

/** IoT Edge's runtimeStatus vocabulary; Kedge's `pending` (not scheduled, held back) is IoT Edge's `unknown`. */
function runtimeStatus(s: ModuleStatusReport['runtimeStatus'] | undefined): string {
  if (s === undefined || s === 'pending') return 'unknown';
  return s;
}

/** Docker create options as IoT Edge reports them: a JSON string in 512-character chunks (createOptions, createOptions01, …). */
function createOptionsChunks(co: Record<string, unknown>): JsonObject {
  const text = JSON.stringify(co);
  const out: JsonObject = {};
  for (let i = 0; i * 512 < text.length || i === 0; i++) out[chunkKey(i)] = text.slice(i * 512, (i + 1) * 512);
  return out;
}

function moduleReport(spec: ModuleSpec, st: ModuleStatusReport | undefined, system: boolean): JsonObject {
  const r: JsonObject = {
    type: 'docker',
    ...(spec.version !== undefined && !system ? { version: spec.version } : {}),
    status: spec.status,
    restartPolicy: spec.restartPolicy,
    imagePullPolicy: spec.imagePullPolicy,
    runtimeStatus: runtimeStatus(st?.runtimeStatus),
    statusDescription: st?.description ?? 'Not observed yet',
    restartCount: st?.restartCount ?? 0,
    exitCode: st?.exitCode ?? 0,
    ...(st?.lastStartTimeUtc ? { lastStartTimeUtc: st.lastStartTimeUtc } : {}),
    ...(st?.lastExitTimeUtc ? { lastExitTimeUtc: st.lastExitTimeUtc } : {}),
    ...(st?.lastStartTimeUtc && (st.restartCount ?? 0) > 0 ? { lastRestartTimeUtc: st.lastStartTimeUtc } : {}),
    settings: { image: spec.settings.image, ...createOptionsChunks(spec.settings.createOptions) },
  };
  return r;
}

/**
 * `lastDesiredStatus` from what happened to the last desired document: refused by the agent (400/412/417), or
 * written into the EdgeDeployment and then judged by the controller — 200 once the controller has observed that
 * generation with a valid spec (modules may still be starting or backing off, as with edgeAgent), 500 when the
 * controller refused it (policy, name collision) or could not apply it, 406 while it has not looked yet.
 */
export function desiredStatus(input: ReportedInput): DesiredStatus {
  const last = input.last;
  if (!last) return { code: DesiredStatusCode.ConfigEmptyError, description: 'No deployment received yet' };
  if (last.refused) return last.refused;
  const st = input.status;
  if (last.generation === undefined || (st?.observedGeneration ?? 0) < last.generation) return { code: DesiredStatusCode.Unknown, description: 'Applying' };
  const valid = st?.conditions?.find((c) => c.type === ConditionTypes.SpecValid);
  if (valid?.status === 'False') return { code: DesiredStatusCode.Failed, description: `${valid.reason}: ${valid.message}` };
  if (st?.phase === 'Failed') {
    const ready = st.conditions?.find((c) => c.type === ConditionTypes.Ready);
    return { code: DesiredStatusCode.Failed, description: ready?.message ?? 'Failed to apply the deployment' };
  }
  return { code: DesiredStatusCode.Ok, description: '' };
}

/**
 * The complete `$edgeAgent` reported document in IoT Edge's schema (iotedge-protocols.md §5.1), from the
 * EdgeDeployment (what runs, from its status) and the last desired document. Pure: the caller diffs it against what
 * the twin holds and sends only the merge patch.
 */
export function edgeAgentReported(input: ReportedInput): JsonObject {
  // Module names are user keys: a null-prototype record, and own-key reads of the observed status.
  const modules = newObject();
  for (const [name, spec] of Object.entries(input.spec?.modules ?? {})) modules[name] = moduleReport(spec, input.status?.modules ? ownValue(input.status.modules, name) : undefined, false);
  const systemModules: JsonObject = {};
  const hub = input.spec?.systemModules?.['edgeHub'];
  if (hub) systemModules['edgeHub'] = moduleReport(hub, input.status?.modules?.['edgeHub'], true);
  const agent = input.spec?.systemModules?.['edgeAgent'];
  // The agent reports itself as running: it is the process writing this.
  systemModules['edgeAgent'] = {
    type: 'docker',
    runtimeStatus: 'running',
    statusDescription: 'running',
    exitCode: 0,
    lastStartTimeUtc: input.startedAt,
    imagePullPolicy: agent?.imagePullPolicy ?? 'on-create',
    settings: { image: agent?.settings.image ?? 'kedge-agent', ...createOptionsChunks(agent?.settings.createOptions ?? {}) },
  };
  const status = desiredStatus(input);
  return {
    schemaVersion: '1.0',
    version: { version: AGENT_VERSION, build: '', commit: '' },
    ...(input.last ? { lastDesiredVersion: input.last.version } : {}),
    lastDesiredStatus: { code: status.code, description: status.description },
    runtime: { type: 'docker', platform: { os: platform(), architecture: arch() === 'x64' ? 'x86_64' : arch(), version: AGENT_VERSION }, settings: { minDockerVersion: 'v1.25' } },
    systemModules,
    modules,
  };
}
