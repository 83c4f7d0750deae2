import { CoreV1Api } from '@kubernetes/client-node';
import { pino } from 'pino';
import { Registry } from 'prom-client';
import { describe, it } from 'vitest';
import { ClusterConfig, createKubeClient } from '@kedge/kube';
import type { ModuleSpec } from '@kedge/manifest';
import { createTestNamespace, kubeConfigForTests, kubeconfigPathForTests, setFakePodLogs, simulateAnnotations, SIMULATE_LABEL } from '@kedge/testing';
import { startEdgeDeploymentController } from './controller.js';
import { KubernetesModuleRuntime } from './kubernetes-runtime.js';
import { describeModuleRuntime, type ModuleBehaviour } from './module-runtime.contract.js';
import { toDnsLabel } from './names.js';
import { defaultPolicy } from './policy.js';

const log = pino({ level: process.env['KEDGE_TEST_LOG'] ?? 'silent' });

/** A module whose pod kwok runs (stays up) or crash-loops with an exit code (the `kedge.io/simulate` stages). */
function kwokModule(b: ModuleBehaviour, overrides: Partial<ModuleSpec> = {}): ModuleSpec {
  return {
    type: 'docker',
    status: 'running',
    restartPolicy: 'always',
    imagePullPolicy: 'on-create',
    env: {},
    settings: { image: 'kedge/test:1', createOptions: {} },
    ...(b.kind === 'exit' ? { k8s: { podAnnotations: { [SIMULATE_LABEL]: 'crashloop', ...simulateAnnotations({ exitCode: b.exitCode }) } } } : {}),
    ...overrides,
  };
}

describeModuleRuntime(
  'kubernetes (EdgeDeployment controller, kwok pods)',
  async () => {
    const kc = kubeConfigForTests();
    const cluster = ClusterConfig.fromFiles([kubeconfigPathForTests()]);
    const ns = await createTestNamespace(kc, 'runtime');
    const controller = await startEdgeDeploymentController({ config: cluster, namespace: ns.name, policy: defaultPolicy(), log, registry: new Registry(), workers: 2 });
    const runtime = new KubernetesModuleRuntime({ kube: createKubeClient(cluster), cluster, namespace: ns.name, name: 'device', log });
    await runtime.start();
    const core = kc.makeApiClient(CoreV1Api);
    return {
      runtime,
      module: kwokModule,
      writeLogs: async (name, lines) => {
        const pods = (await core.listNamespacedPod({ namespace: ns.name, labelSelector: `kedge.io/module=${toDnsLabel(name)}` })).items.filter((p) => !p.metadata?.deletionTimestamp);
        for (const p of pods) await setFakePodLogs(kc, { namespace: ns.name, pod: p.metadata?.name ?? '', lines });
      },
      cleanup: async () => {
        await runtime.stop();
        await controller.stop();
        await ns.cleanup();
      },
    };
  },
  { describe, it },
  { timeoutMs: 60_000 },
);
