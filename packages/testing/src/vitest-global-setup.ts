/**
 * Global setup of the vitest `cluster` project: one real control plane per test run.
 *
 * 1. Reuses a running cluster if `KEDGE_TEST_KUBECONFIG` is set, or if `KUBECONFIG` is set and its current context
 *    is `kedge-test` (one made by this harness, e.g. `npm run cluster:up`); a developer's real cluster is never used.
 *    Otherwise it starts one ({@link startControlPlane}); missing binaries fail the run loudly, never skip it.
 * 2. Applies every CustomResourceDefinition in `deploy/crds/*.yaml` and waits until each is Established.
 * 3. Hands the kubeconfig path to tests as `inject('kedgeKubeconfig')` and as `$KEDGE_TEST_KUBECONFIG`
 *    (what `kubeConfigForTests()` reads); the teardown stops the cluster it started.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { KubeConfig } from '@kubernetes/client-node';
import type {} from 'vitest';
import type { TestProject } from 'vitest/node';
import { MissingBinariesError, repoRoot } from './binaries.js';
import { applyCrds } from './crds.js';
import { TEST_CONTEXT, startControlPlane, waitForCrdsEstablished, type ControlPlane } from './control-plane.js';
import { CLUSTER_DIR_ENV, ETCD_URL_ENV, KUBECONFIG_ENV } from './helpers.js';

declare module 'vitest' {
  export interface ProvidedContext {
    /** Absolute path of the test control plane's kubeconfig (admin, system:masters). */
    kedgeKubeconfig: string;
  }
}

function reusableKubeconfig(): string | undefined {
  const explicit = process.env[KUBECONFIG_ENV];
  if (explicit) return explicit;
  const kc = process.env.KUBECONFIG;
  if (!kc || kc.includes(':') || !existsSync(kc)) return undefined;
  const config = new KubeConfig();
  config.loadFromFile(kc);
  return config.getCurrentContext() === TEST_CONTEXT ? kc : undefined;
}

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  let cp: ControlPlane | undefined;
  let kubeconfigPath = reusableKubeconfig();
  if (kubeconfigPath) {
    console.log(`[kedge cluster] reusing the control plane of ${kubeconfigPath}`);
  } else {
    try {
      cp = await startControlPlane({ onProgress: (m) => console.log(`[kedge cluster] ${m}`) });
    } catch (err) {
      if (err instanceof MissingBinariesError) {
        // Fail the run, never skip: CI sets KEDGE_REQUIRE_CLUSTER=1, but a silent skip is wrong locally too.
        throw new Error(`[kedge cluster] cannot run control-plane tests: ${err.message}`, { cause: err });
      }
      throw err;
    }
    kubeconfigPath = cp.kubeconfigPath;
    process.env[CLUSTER_DIR_ENV] = cp.dir;
    process.env[ETCD_URL_ENV] = cp.etcdUrl;
  }
  try {
    const kc = new KubeConfig();
    kc.loadFromFile(kubeconfigPath);
    const crdDir = join(repoRoot(), 'deploy', 'crds');
    const crds = await applyCrds(kc, crdDir);
    await waitForCrdsEstablished(kc, crds, Date.now() + 60_000);
    console.log(`[kedge cluster] ${crds.length} CRD(s) from deploy/crds established${crds.length ? `: ${crds.join(', ')}` : ''}`);
  } catch (err) {
    await cp?.stop();
    throw err;
  }
  process.env[KUBECONFIG_ENV] = kubeconfigPath;
  project.provide('kedgeKubeconfig', kubeconfigPath);
  return async () => {
    if (cp) {
      await cp.stop();
      console.log('[kedge cluster] stopped');
    }
  };
}
