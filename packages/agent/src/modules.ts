import { createHash } from 'node:crypto';
import { DEFAULT_STARTUP_ORDER, type ModuleSpec, type ParsedSpec } from '@kedge/manifest';
import { toDnsLabel } from './names.js';

/**
 * The runtime-neutral view of a deployment's modules, shared by the Kubernetes controller and the process runtime:
 * which modules a device runs, their stable names and digests, and which ones `startupOrder` holds back.
 */

const SYSTEM_OBJECT_NAMES: Readonly<Record<string, string>> = { edgeAgent: 'edgeagent', edgeHub: 'edgehub' };

/** One module a runtime runs, with the names and digest that do not depend on observed state. */
export interface ModuleEntry {
  /** The module name as in the manifest (`SimulatedTemperatureSensor`, system modules `edgeHub`/`edgeAgent`). */
  readonly name: string;
  /** A DNS label for it: its Kubernetes Deployment, Service and ServiceAccount; its log and pid names on the process runtime. */
  readonly objectName: string;
  readonly spec: ModuleSpec;
  readonly system: boolean;
  /** Its path in the EdgeDeployment, for messages. */
  readonly path: string;
  /** Digest of the module's spec ({@link moduleDigest}). */
  readonly specDigest: string;
}

/**
 * The modules of a spec that a device runs, in order (the edge hub, the edge agent if `manageEdgeAgent`, then user
 * modules by name). Both runtimes match what they observe to these entries.
 */
export function moduleEntries(parsed: ParsedSpec, policy: { readonly manageEdgeAgent: boolean }): ModuleEntry[] {
  const spec = parsed.spec;
  const entry = (name: string, m: ModuleSpec, system: boolean, path: string): ModuleEntry => ({
    name,
    objectName: system ? (SYSTEM_OBJECT_NAMES[name] ?? toDnsLabel(name)) : toDnsLabel(name),
    spec: m,
    system,
    path,
    specDigest: moduleDigest(m),
  });
  const entries: ModuleEntry[] = [];
  if (spec.systemModules.edgeHub) entries.push(entry('edgeHub', spec.systemModules.edgeHub, true, 'spec.systemModules.edgeHub'));
  if (spec.systemModules.edgeAgent && policy.manageEdgeAgent) entries.push(entry('edgeAgent', spec.systemModules.edgeAgent, true, 'spec.systemModules.edgeAgent'));
  for (const name of Object.keys(spec.modules).sort()) {
    const m = spec.modules[name];
    if (m) entries.push(entry(name, m, false, `spec.modules.${name}`));
  }
  return entries;
}

/** Digest of a module's spec: changes whenever anything about the module changes (an update: restart it). */
export function moduleDigest(spec: ModuleSpec): string {
  return createHash('sha256').update(JSON.stringify(spec)).digest('hex').slice(0, 16);
}

/** A module's `startupOrder`, IoT Edge's default (last) when absent. */
export const startupOrderOf = (e: { readonly spec: ModuleSpec }): number => e.spec.startupOrder ?? DEFAULT_STARTUP_ORDER;

/**
 * `startupOrder` gating (iotedge-protocols.md §1.2): a desired-running module starts only once every desired-running
 * module with a lower order is available. Returns, for each module held back, the modules it waits for (in entry
 * order); modules not in the map may start.
 */
export function startupWaits(entries: readonly ModuleEntry[], available: ReadonlySet<string>): Map<string, string[]> {
  const running = entries.filter((e) => e.spec.status === 'running');
  const waiting = new Map<string, string[]>();
  for (const e of running) {
    const before = running.filter((o) => startupOrderOf(o) < startupOrderOf(e) && !available.has(o.name)).map((o) => o.name);
    if (before.length > 0) waiting.set(e.name, before);
  }
  return waiting;
}
