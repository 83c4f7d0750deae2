import { hostname } from 'node:os';
import type { Logger } from 'pino';
import type { Registry } from 'prom-client';
import { EdgeDeploymentResource } from '@kedge/manifest';
import { Controller, EventRecorder, Informer, KubeMetrics, createKubeClient, formatKey, type ClusterConfig, type KubeClient, type KubernetesObject, type ObjectKey, type ObjectMeta } from '@kedge/kube';
import { Labels, MANAGED_BY } from './names.js';
import type { EdgeHubReportStore } from './edgehub-report.js';
import type { DevicePolicy } from './policy.js';
import { EdgeDeploymentReconciler, OwnedKinds, apiView, type ClusterView, type EdgeDeploymentObject } from './reconciler.js';

export interface AgentControllerOptions {
  /** The cluster to reconcile in (`ClusterConfig.load()`: kubeconfig or in-cluster ServiceAccount). */
  readonly config: ClusterConfig;
  /** Watch only this namespace (one device); all namespaces when undefined. */
  readonly namespace?: string;
  readonly policy: DevicePolicy;
  readonly log: Logger;
  readonly registry?: Registry;
  /** @default 4 */
  readonly workers?: number;
  /** Re-reconcile everything this often even without events (heals silent stalls). @default 5 minutes */
  readonly resyncPeriodMs?: number;
  /** Force a relist when a watch has been silent this long. @default 10 minutes */
  readonly staleAfterMs?: number;
  /** Ask the apiserver to end each watch after this many seconds (informers reconnect). */
  readonly watchTimeoutSeconds?: number;
  readonly prunePersistentVolumeClaims?: boolean;
  /**
   * Events of owned objects and pods reconcile their EdgeDeployment this long after the first one, so a rollout's
   * burst of pod and Deployment status changes makes one status write rather than one per event. Spec changes of
   * the EdgeDeployment itself reconcile at once. @default 100
   */
  readonly statusCoalesceMs?: number;
  /**
   * What the devices' edge hubs report having loaded (`RoutesApplied`); a change reconciles that namespace's
   * EdgeDeployments. @default none: `RoutesApplied` stays Unknown
   */
  readonly edgeHubReports?: EdgeHubReportStore;
  /** Test hook: a KubeClient to use instead of one made from `config`. */
  readonly kube?: KubeClient;
}

export interface RunningController {
  readonly controller: Controller;
  readonly informers: readonly Informer[];
  readonly reconciler: EdgeDeploymentReconciler;
  /** EdgeDeployments whose last-seen generation the event coalescing remembers (released when one is deleted). */
  readonly trackedGenerations: () => number;
  stop(): Promise<void>;
}

const MANAGED_SELECTOR = `${Labels.managedBy}=${MANAGED_BY}`;

/**
 * What the controller keeps of its own objects and their pods: identity, metadata and status — never `spec`,
 * Secret `data` or `managedFields`. The reconciler reads nothing else from these caches (it renders the spec
 * itself), and at 100 devices × 10 modules the full objects would be most of the agent's memory. Not holding
 * registry passwords in memory is a bonus.
 */
export function slimObject(o: KubernetesObject): KubernetesObject {
  const { managedFields: _managed, ...metadata } = (o.metadata ?? {}) as ObjectMeta & { managedFields?: unknown };
  const status = (o as { status?: unknown }).status;
  return { apiVersion: o.apiVersion, kind: o.kind, metadata, ...(status !== undefined ? { status } : {}) };
}

/**
 * Starts the EdgeDeployment controller: one informer for EdgeDeployments, one per owned kind (only objects labelled
 * `app.kubernetes.io/managed-by=kedge-agent`) and one for their pods; a work queue; N workers. Resolves once the
 * caches have synced and the workers run.
 */
export async function startEdgeDeploymentController(opts: AgentControllerOptions): Promise<RunningController> {
  const { config, log } = opts;
  const metrics = opts.registry ? KubeMetrics.forRegistry(opts.registry) : undefined;
  const kube = opts.kube ?? createKubeClient(config);
  const common = {
    ...(opts.namespace !== undefined ? { namespace: opts.namespace } : {}),
    ...(opts.resyncPeriodMs !== undefined ? { resyncPeriodMs: opts.resyncPeriodMs } : {}),
    ...(opts.staleAfterMs !== undefined ? { staleAfterMs: opts.staleAfterMs } : {}),
    ...(opts.watchTimeoutSeconds !== undefined ? { watchTimeoutSeconds: opts.watchTimeoutSeconds } : {}),
  };
  const deps = { config, log, ...(metrics ? { metrics } : {}) };
  const edInformer = new Informer<EdgeDeploymentObject>({ apiVersion: EdgeDeploymentResource.apiVersion, kind: EdgeDeploymentResource.kind, ...common }, deps);
  const hardening = opts.policy.hardening;
  const kinds = OwnedKinds.filter((k) => {
    if (k.kind === 'NetworkPolicy') return hardening.networkPolicy;
    if (k.kind === 'ResourceQuota') return hardening.resourceQuota !== undefined;
    if (k.kind === 'LimitRange') return hardening.limitRange !== undefined;
    return true;
  });
  const owned = new Map<string, Informer>();
  for (const k of kinds) owned.set(k.kind, new Informer({ apiVersion: k.apiVersion, kind: k.kind, labelSelector: MANAGED_SELECTOR, transform: slimObject, ...common }, deps));
  const podInformer = new Informer({ apiVersion: 'v1', kind: 'Pod', labelSelector: MANAGED_SELECTOR, transform: slimObject, ...common }, deps);

  const matches = (o: KubernetesObject, selector: Record<string, string>) => Object.entries(selector).every(([k, v]) => o.metadata?.labels?.[k] === v);
  const api = apiView(kube);
  const view: ClusterView = {
    getEdgeDeployment: (key) => Promise.resolve(edInformer.get(key.name, key.namespace)),
    list: (_apiVersion, kind, namespace, selector) => {
      const inf = kind === 'Pod' ? podInformer : owned.get(kind);
      if (!inf) return Promise.resolve([]);
      return Promise.resolve(inf.list(namespace).filter((o) => matches(o, selector)));
    },
    // Our own objects are in the caches; anything else (a user's object under a name we want) needs the API.
    cached: (kind, namespace, name) => owned.get(kind)?.get(name, namespace),
    existing: (apiVersion, kind, namespace, callOpts) => api.existing(apiVersion, kind, namespace, callOpts),
  };
  // A new generation (spec change, creation) reconciles at once; an event that leaves the generation alone (our own
  // status write coming back, a resync) joins the coalesced status reconcile.
  const generations = new Map<string, number | undefined>();
  const events = new EventRecorder(kube, { component: 'kedge-agent', instance: hostname(), log });
  const reconciler = new EdgeDeploymentReconciler({
    kube,
    view,
    policy: opts.policy,
    events,
    ...(opts.edgeHubReports ? { edgeHubReports: opts.edgeHubReports } : {}),
    ...(opts.prunePersistentVolumeClaims !== undefined ? { prunePersistentVolumeClaims: opts.prunePersistentVolumeClaims } : {}),
  });
  const controller = new Controller({
    name: 'edgedeployment',
    reconciler: {
      reconcile: async (ctx, key: ObjectKey) => {
        try {
          return await reconciler.reconcile(ctx, key);
        } finally {
          // The coalescing memory of an EdgeDeployment lives as long as it does: its delete event brings its key here.
          if (!edInformer.get(key.name, key.namespace)) generations.delete(formatKey(key));
        }
      },
    },
    workers: opts.workers ?? 4,
    log,
    ...(metrics ? { metrics } : {}),
  });
  const statusCoalesceMs = opts.statusCoalesceMs ?? 100;
  controller.for(edInformer, {
    coalesceMs: (ed) => {
      const k = formatKey({ namespace: ed.metadata?.namespace ?? '', name: ed.metadata?.name ?? '' });
      const seen = generations.has(k);
      const previous = generations.get(k);
      generations.set(k, ed.metadata?.generation);
      return seen && previous === ed.metadata?.generation ? statusCoalesceMs : 0;
    },
  });
  const coalesce = { coalesceMs: statusCoalesceMs };
  for (const inf of owned.values()) controller.owns(inf, EdgeDeploymentResource.kind, EdgeDeploymentResource.group, coalesce);
  // Pods belong to ReplicaSets, not to us: map them to the EdgeDeployments of their namespace (one per device).
  controller.watchMap(podInformer, (pod) =>
    edInformer.list(pod.metadata?.namespace).map((ed) => ({ namespace: ed.metadata?.namespace ?? '', name: ed.metadata?.name ?? '' })),
    coalesce,
  );
  const unsubscribe = opts.edgeHubReports?.onChange((namespace) => {
    for (const ed of edInformer.list(namespace)) controller.enqueue({ namespace, name: ed.metadata?.name ?? '' });
  });
  const informers: Informer[] = [edInformer, ...owned.values(), podInformer];
  const abort = new AbortController();
  const started = await controller.start(abort.signal);
  if (!started) throw new Error('EdgeDeployment controller stopped before its caches synced');
  return {
    controller,
    informers,
    reconciler,
    trackedGenerations: () => generations.size,
    async stop() {
      unsubscribe?.();
      abort.abort();
      await controller.stop();
      await Promise.all(informers.map((i) => i.stop()));
      await events.flush();
    },
  };
}
