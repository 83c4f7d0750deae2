import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseAllDocuments, stringify } from 'yaml';

/** Label (or annotation) that makes kwok simulate a failure mode for a pod instead of running it. */
export const SIMULATE_LABEL = 'kedge.io/simulate';
/** Annotation: exit code of the simulated container termination (`crashloop`, `fail`). @default "1" */
export const SIMULATE_EXIT_CODE_ANNOTATION = 'kedge.io/simulate-exit-code';
/** Annotation: `terminated.reason` (`crashloop`, `fail`; default `Error`) or `waiting.reason` (`pending`; default `ContainerCreating`). */
export const SIMULATE_REASON_ANNOTATION = 'kedge.io/simulate-reason';
/** Values of {@link SIMULATE_LABEL}. */
export type SimulateMode = 'crashloop' | 'fail' | 'pending';
export const SIMULATE_MODES: readonly SimulateMode[] = ['crashloop', 'fail', 'pending'];

/** Upstream kwok stages (relative to `kustomize/stage/` in the kwok module) the harness runs. */
const UPSTREAM_STAGES = [
  'node/fast/node-initialize.yaml',
  'node/heartbeat-with-lease/node-heartbeat-with-lease.yaml',
  'pod/fast/pod-ready.yaml',
  'pod/fast/pod-complete.yaml',
  'pod/fast/pod-delete.yaml',
  'volume/fast/pvc-provision.yaml',
  'volume/fast/pv-bind.yaml',
  'volume/fast/pvc-delete.yaml',
  'volume/fast/pv-delete.yaml',
];

/** Upstream pod stages that would otherwise race our simulate stages (kwok picks one matching stage at random). */
const EXCLUDE_SIMULATED = new Set(['pod-ready', 'pod-complete']);

interface StageDoc {
  metadata?: { name?: string };
  spec?: { selector?: { matchExpressions?: unknown[] } };
}

/**
 * Builds the multi-document kwok configuration: upstream stages read from the kwok module (pod-ready and
 * pod-complete get one extra selector so pods with `kedge.io/simulate` are left to our stages), Kedge's own
 * stages from `testenv/kwok-stages/`, and a `ClusterLogs` entry that serves `defaultLogFile` as every container's
 * log through kwok's kubelet endpoint (per-pod `Logs` objects, enabled as a CRD, take precedence).
 */
export function buildKwokConfig(opts: { kwokModuleDir: string; kedgeStagesDir: string; defaultLogFile: string }): string {
  const docs: unknown[] = [];
  for (const rel of UPSTREAM_STAGES) {
    const text = readFileSync(join(opts.kwokModuleDir, 'kustomize', 'stage', rel), 'utf8');
    for (const doc of parseAllDocuments(text)) {
      const stage = doc.toJS() as StageDoc | null;
      if (!stage) continue;
      if (EXCLUDE_SIMULATED.has(stage.metadata?.name ?? '')) {
        const exprs = stage.spec?.selector?.matchExpressions;
        if (!exprs) throw new Error(`kwok stage ${rel} has no matchExpressions to extend`);
        // jq `//`: the label wins, the annotation is the fallback; NotIn also matches when neither is set.
        exprs.push({ key: simulateKey, operator: 'NotIn', values: [...SIMULATE_MODES] });
      }
      docs.push(stage);
    }
  }
  for (const f of readdirSync(opts.kedgeStagesDir).filter((n) => n.endsWith('.yaml')).sort()) {
    for (const doc of parseAllDocuments(readFileSync(join(opts.kedgeStagesDir, f), 'utf8'))) {
      const stage: unknown = doc.toJS();
      if (stage) docs.push(stage);
    }
  }
  docs.push({
    apiVersion: 'kwok.x-k8s.io/v1alpha1',
    kind: 'ClusterLogs',
    metadata: { name: 'kedge-default-logs' },
    spec: { selector: {}, logs: [{ logsFile: opts.defaultLogFile, previousLogsFile: opts.defaultLogFile }] },
  });
  return docs.map((d) => stringify(d, { lineWidth: 0 })).join('---\n');
}

const simulateKey = `.metadata.labels["${SIMULATE_LABEL}"] // .metadata.annotations["${SIMULATE_LABEL}"]`;

/** Formats lines as a CRI container log (what kwok's log endpoint reads): `<RFC3339Nano> stdout F <line>`. */
export function criLog(lines: readonly string[], stream: 'stdout' | 'stderr' = 'stdout', start = new Date()): string {
  return lines.map((l, i) => `${new Date(start.getTime() + i).toISOString().replace('Z', '000000Z')} ${stream} F ${l}\n`).join('');
}
