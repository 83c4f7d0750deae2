import type { EventRecord } from '@kedge/kube';
import type { EdgeDeploymentStatus } from '@kedge/manifest';
import { ConditionTypes, Reasons } from './status.js';

type Condition = NonNullable<EdgeDeploymentStatus['conditions']>[number];

const find = (s: EdgeDeploymentStatus | undefined, type: string): Condition | undefined => s?.conditions?.find((c) => c.type === type);
const same = (a: Condition | undefined, b: Condition | undefined): boolean => a?.status === b?.status && a?.reason === b?.reason && a?.message === b?.message;

/**
 * The Kubernetes Events a status change is worth (what `kubectl describe edep` shows), derived from the previous
 * and the new status only, so every path that writes status reports the same way:
 *
 * - `SpecValid` turning False (invalid spec, policy violation, name collision): a Warning with the exact reason;
 *   turning True again: Normal `Valid`.
 * - `ModulesAvailable` False because modules fail or objects could not be applied: a Warning (again when the
 *   list of failing modules changes). Plain progress is not an event.
 * - `Ready` turning True: Normal `Ready`.
 * - A module entering `failed` or `backoff`: a Warning `ModuleFailed` / `ModuleBackOff`; a module stopped after it
 *   exited (restartPolicy): Normal `ModuleStopped`.
 */
export function statusEvents(previous: EdgeDeploymentStatus | undefined, next: EdgeDeploymentStatus): EventRecord[] {
  const out: EventRecord[] = [];
  const spec = find(next, ConditionTypes.SpecValid);
  const prevSpec = find(previous, ConditionTypes.SpecValid);
  if (spec && !same(spec, prevSpec)) {
    if (spec.status === 'False') out.push({ type: 'Warning', reason: spec.reason, message: spec.message });
    else if (spec.status === 'True' && prevSpec?.status === 'False') out.push({ type: 'Normal', reason: Reasons.Valid, message: 'The spec is valid again' });
  }
  const modules = find(next, ConditionTypes.ModulesAvailable);
  if (modules && modules.status === 'False' && modules.reason !== Reasons.Progressing && !same(modules, find(previous, ConditionTypes.ModulesAvailable))) {
    out.push({ type: 'Warning', reason: modules.reason, message: modules.message });
  }
  const ready = find(next, ConditionTypes.Ready);
  if (ready?.status === 'True' && find(previous, ConditionTypes.Ready)?.status !== 'True') {
    out.push({ type: 'Normal', reason: 'Ready', message: modules?.message ?? ready.message });
  }
  for (const [name, m] of Object.entries(next.modules ?? {})) {
    const before = previous?.modules?.[name]?.runtimeStatus;
    if (m.runtimeStatus === before) continue;
    const detail = m.description ? `: ${m.description}` : '';
    if (m.runtimeStatus === 'failed') out.push({ type: 'Warning', reason: 'ModuleFailed', message: `Module ${name} failed${detail}` });
    else if (m.runtimeStatus === 'backoff') out.push({ type: 'Warning', reason: 'ModuleBackOff', message: `Module ${name} is restarting${detail}` });
    else if (m.runtimeStatus === 'stopped' && m.desiredStatus === 'running') {
      out.push({ type: 'Normal', reason: 'ModuleStopped', message: `Module ${name} exited and stays stopped (restartPolicy)${detail}` });
    }
  }
  return out;
}
