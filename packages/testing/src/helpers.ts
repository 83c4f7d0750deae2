import { existsSync, readFileSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { ApiException, CoreV1Api, CustomObjectsApi, KubeConfig, type V1Pod } from '@kubernetes/client-node';
import { STATE_FILE } from './control-plane.js';
import { SIMULATE_EXIT_CODE_ANNOTATION, SIMULATE_LABEL, SIMULATE_REASON_ANNOTATION, criLog, type SimulateMode } from './kwok-config.js';

/** Environment variable through which the cluster global setup hands the kubeconfig path to test workers. */
export const KUBECONFIG_ENV = 'KEDGE_TEST_KUBECONFIG';
/** Environment variable with the control plane's directory (set by the global setup when it started the cluster). */
export const CLUSTER_DIR_ENV = 'KEDGE_TEST_CLUSTER_DIR';
/** Environment variable with the etcd client URL (http://127.0.0.1:port) of the test control plane. */
export const ETCD_URL_ENV = 'KEDGE_TEST_ETCD_URL';

/**
 * The etcd URL of the test control plane: `$KEDGE_TEST_ETCD_URL`, else the `cluster.json` the harness wrote next to
 * the kubeconfig (a cluster from `npm run cluster:up`).
 */
export function etcdUrlForTests(kubeconfigPath: string | undefined = process.env[KUBECONFIG_ENV]): string {
  const fromEnv = process.env[ETCD_URL_ENV];
  if (fromEnv) return fromEnv;
  if (kubeconfigPath) {
    try {
      const st = JSON.parse(readFileSync(join(dirname(kubeconfigPath), STATE_FILE), 'utf8')) as { etcdUrl?: string };
      if (st.etcdUrl) return st.etcdUrl;
    } catch {
      // not a harness-made cluster directory: fall through to the error
    }
  }
  throw new Error(`${ETCD_URL_ENV} is not set and no ${STATE_FILE} next to the kubeconfig: the etcd of this cluster is unknown`);
}

/** Label put on every namespace made by {@link createTestNamespace}. */
export const TEST_NAMESPACE_LABEL = 'kedge.io/test-namespace';

/**
 * A `KubeConfig` for the test control plane. `path` defaults to `$KEDGE_TEST_KUBECONFIG`, which the `cluster`
 * project's global setup sets (it also provides it as `inject('kedgeKubeconfig')`).
 * @throws if neither is available, i.e. the test is not running under `vitest --project cluster`.
 */
export function kubeConfigForTests(path: string = kubeconfigPathForTests()): KubeConfig {
  const kc = new KubeConfig();
  kc.loadFromFile(path);
  return kc;
}

/**
 * The path of the test control plane's admin kubeconfig (`$KEDGE_TEST_KUBECONFIG`), for clients other than
 * client-node's (Kedge's own `ClusterConfig.fromFiles([path])`).
 * @throws if it is not set, i.e. the test is not running under `vitest --project cluster`.
 */
export function kubeconfigPathForTests(): string {
  const path = process.env[KUBECONFIG_ENV];
  if (!path) {
    throw new Error(`${KUBECONFIG_ENV} is not set: control-plane tests must run in the vitest \`cluster\` project ` +
      '(`npx vitest run --project cluster`), whose global setup starts the cluster');
  }
  return path;
}

export interface EventuallyOptions {
  /** @default 30_000 */
  timeoutMs?: number;
  /** First pause between attempts; doubles up to 500 ms. @default 50 */
  intervalMs?: number;
  /** Prefix for the timeout error. */
  message?: string;
}

/**
 * Polls `fn` until it returns something other than `false` (or resolves) without throwing, and returns that value.
 * Assertions inside `fn` are the usual way to express the condition. At the deadline it throws the last failure.
 */
export async function eventually<T>(fn: () => T | Promise<T>, opts: EventuallyOptions = {}): Promise<Exclude<T, false>> {
  const timeoutMs = opts.timeoutMs ?? 30_000;
  const end = Date.now() + timeoutMs;
  let pause = opts.intervalMs ?? 50;
  let last: unknown = new Error('condition returned false');
  for (;;) {
    try {
      const v = await fn();
      if (v !== false) return v as Exclude<T, false>;
      last = new Error('condition returned false');
    } catch (err) {
      last = err;
    }
    if (Date.now() >= end) {
      const why = last instanceof Error ? last.message : String(last);
      throw new Error(`${opts.message ?? 'eventually'}: not true within ${timeoutMs} ms: ${why}`, { cause: last });
    }
    await delay(Math.min(pause, Math.max(0, end - Date.now())));
    pause = Math.min(pause * 2, 500);
  }
}

/** HTTP status of a client-node error (`ApiException.code`), or undefined for anything else. */
export function apiStatus(err: unknown): number | undefined {
  return err instanceof ApiException ? err.code : undefined;
}

export interface TestNamespace {
  readonly name: string;
  /** Deletes the namespace (kube-controller-manager then deletes its content). Idempotent. */
  cleanup(): Promise<void>;
}

/**
 * Creates a namespace `kedge-<prefix>-xxxxx` for one test and waits until its `default` ServiceAccount exists
 * (until then the ServiceAccount admission plugin rejects pods).
 */
export async function createTestNamespace(kc: KubeConfig, prefix = 'test'): Promise<TestNamespace> {
  const core = kc.makeApiClient(CoreV1Api);
  const ns = await core.createNamespace({
    body: { metadata: { generateName: `kedge-${prefix.toLowerCase().replace(/[^a-z0-9-]/g, '-').slice(0, 30)}-`, labels: { [TEST_NAMESPACE_LABEL]: 'true' } } },
  });
  const name = ns.metadata?.name;
  if (!name) throw new Error('namespace created without a name');
  await eventually(() => core.readNamespacedServiceAccount({ name: 'default', namespace: name }), {
    timeoutMs: 30_000, message: `default ServiceAccount in ${name}`,
  });
  let done = false;
  return {
    name,
    cleanup: async () => {
      if (done) return;
      done = true;
      try {
        await core.deleteNamespace({ name });
      } catch (err) {
        if (apiStatus(err) !== 404) throw err;
      }
    },
  };
}

/** Runs `fn` in a fresh namespace and deletes the namespace afterwards, whether `fn` succeeded or not. */
export async function withNamespace<T>(kc: KubeConfig, fn: (namespace: string) => Promise<T>, prefix = 'test'): Promise<T> {
  const ns = await createTestNamespace(kc, prefix);
  try {
    return await fn(ns.name);
  } finally {
    await ns.cleanup();
  }
}

/** Labels that make kwok simulate `mode` for a pod (put them on the pod or on a pod template). */
export function simulateLabels(mode: SimulateMode): Record<string, string> {
  return { [SIMULATE_LABEL]: mode };
}

/** Annotations tuning a simulated failure: container exit code and terminated/waiting reason. */
export function simulateAnnotations(opts: { exitCode?: number; reason?: string }): Record<string, string> {
  const a: Record<string, string> = {};
  if (opts.exitCode !== undefined) a[SIMULATE_EXIT_CODE_ANNOTATION] = String(opts.exitCode);
  if (opts.reason !== undefined) a[SIMULATE_REASON_ANNOTATION] = opts.reason;
  return a;
}

export interface ContainerSummary {
  readonly name: string;
  readonly ready: boolean;
  readonly restartCount: number;
  readonly state: 'running' | 'waiting' | 'terminated' | 'unknown';
  /** `waiting.reason` or `terminated.reason`. */
  readonly reason?: string;
  /** `terminated.exitCode`, or the last termination's exit code while waiting to restart. */
  readonly exitCode?: number;
}

export interface PodSummary {
  readonly name: string;
  readonly phase: string;
  readonly ready: boolean;
  readonly nodeName?: string;
  readonly podIP?: string;
  readonly containers: readonly ContainerSummary[];
}

/** The state of a pod as the tests care about it: phase, Ready, and per container state/reason/restarts. */
export function summarizePod(pod: V1Pod): PodSummary {
  const containers = (pod.status?.containerStatuses ?? []).map((c): ContainerSummary => {
    const s = c.state;
    const state = s?.running ? 'running' : s?.waiting ? 'waiting' : s?.terminated ? 'terminated' : 'unknown';
    const reason = s?.waiting?.reason ?? s?.terminated?.reason;
    const exitCode = s?.terminated?.exitCode ?? c.lastState?.terminated?.exitCode;
    return {
      name: c.name, ready: c.ready, restartCount: c.restartCount, state,
      ...(reason !== undefined ? { reason } : {}), ...(exitCode !== undefined ? { exitCode } : {}),
    };
  });
  return {
    name: pod.metadata?.name ?? '',
    phase: pod.status?.phase ?? 'Unknown',
    ready: pod.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True') ?? false,
    ...(pod.spec?.nodeName ? { nodeName: pod.spec.nodeName } : {}),
    ...(pod.status?.podIP ? { podIP: pod.status.podIP } : {}),
    containers,
  };
}

/** Reads one pod and summarises it. */
export async function getPodSummary(kc: KubeConfig, namespace: string, name: string): Promise<PodSummary> {
  return summarizePod(await kc.makeApiClient(CoreV1Api).readNamespacedPod({ name, namespace }));
}

/** Lists pods (optionally by label selector) and summarises them, sorted by name. */
export async function listPodSummaries(kc: KubeConfig, namespace: string, labelSelector?: string): Promise<PodSummary[]> {
  const list = await kc.makeApiClient(CoreV1Api).listNamespacedPod({ namespace, ...(labelSelector ? { labelSelector } : {}) });
  return list.items.map(summarizePod).sort((a, b) => a.name.localeCompare(b.name));
}

/**
 * Makes `pods/log` for one pod return `lines`: writes them as a CRI log file and creates a kwok `Logs` object
 * (namespace/name of the pod) pointing at it. Without one, every pod serves the cluster's default fake log.
 * The object lives in the pod's namespace, so namespace cleanup removes it.
 */
export async function setFakePodLogs(
  kc: KubeConfig,
  opts: { namespace: string; pod: string; lines: readonly string[]; previousLines?: readonly string[]; containers?: readonly string[] },
): Promise<void> {
  // Inside the cluster's directory when known (removed with the cluster), else a shared temp dir.
  const kubeconfig = process.env[KUBECONFIG_ENV];
  const clusterDir = process.env[CLUSTER_DIR_ENV] ??
    (kubeconfig && existsSync(join(dirname(kubeconfig), STATE_FILE)) ? dirname(kubeconfig) : join(tmpdir(), 'kedge-fake-logs'));
  const dir = join(clusterDir, 'pod-logs', opts.namespace);
  await mkdir(dir, { recursive: true });
  const logsFile = join(dir, `${opts.pod}.log`);
  await writeFile(logsFile, criLog(opts.lines));
  let previousLogsFile: string | undefined;
  if (opts.previousLines) {
    previousLogsFile = join(dir, `${opts.pod}.previous.log`);
    await writeFile(previousLogsFile, criLog(opts.previousLines));
  }
  await kc.makeApiClient(CustomObjectsApi).createNamespacedCustomObject({
    group: 'kwok.x-k8s.io', version: 'v1alpha1', plural: 'logs', namespace: opts.namespace,
    body: {
      apiVersion: 'kwok.x-k8s.io/v1alpha1', kind: 'Logs',
      metadata: { name: opts.pod, namespace: opts.namespace },
      spec: { logs: [{ ...(opts.containers ? { containers: opts.containers } : {}), logsFile, ...(previousLogsFile ? { previousLogsFile } : {}) }] },
    },
  });
}
