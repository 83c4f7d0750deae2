import { Counter, Gauge, Histogram } from 'prom-client';
import type { Registry } from 'prom-client';

/** `result` label values of `kedge_controller_reconcile_total` (controller-runtime's set, plus `terminal_error`). */
export const ReconcileOutcome = {
  Success: 'success',
  Error: 'error',
  TerminalError: 'terminal_error',
  Requeue: 'requeue',
  RequeueAfter: 'requeue_after',
} as const;
export type ReconcileOutcome = (typeof ReconcileOutcome)[keyof typeof ReconcileOutcome];

const registries = new WeakMap<Registry, KubeMetrics>();

/**
 * The kube package's Prometheus metrics, named after controller-runtime's (`controller_runtime_reconcile_total`,
 * `workqueue_depth`, ...) with a `kedge_` prefix. One instance per registry: controllers, queues and informers
 * sharing a registry share the metric objects and differ by label.
 */
export class KubeMetrics {
  readonly reconcileTotal: Counter<'controller' | 'result'>;
  readonly reconcileErrors: Counter<'controller'>;
  readonly reconcileTime: Histogram<'controller'>;
  readonly workqueueDepth: Gauge<'name'>;
  readonly workqueueAdds: Counter<'name'>;
  readonly workqueueRetries: Counter<'name'>;
  readonly informerRestarts: Counter<'kind'>;
  readonly informerRelists: Counter<'kind'>;

  private constructor(registry: Registry) {
    const registers = [registry];
    this.reconcileTotal = new Counter({
      name: 'kedge_controller_reconcile_total',
      help: 'Total number of reconciliations per controller and result',
      labelNames: ['controller', 'result'],
      registers,
    });
    this.reconcileErrors = new Counter({
      name: 'kedge_controller_reconcile_errors_total',
      help: 'Total number of reconciliation errors per controller',
      labelNames: ['controller'],
      registers,
    });
    this.reconcileTime = new Histogram({
      name: 'kedge_controller_reconcile_time_seconds',
      help: 'Length of time per reconciliation per controller',
      labelNames: ['controller'],
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60],
      registers,
    });
    this.workqueueDepth = new Gauge({
      name: 'kedge_workqueue_depth',
      help: 'Current depth of the work queue',
      labelNames: ['name'],
      registers,
    });
    this.workqueueAdds = new Counter({
      name: 'kedge_workqueue_adds_total',
      help: 'Total number of adds handled by the work queue',
      labelNames: ['name'],
      registers,
    });
    this.workqueueRetries = new Counter({
      name: 'kedge_workqueue_retries_total',
      help: 'Total number of rate-limited retries handled by the work queue',
      labelNames: ['name'],
      registers,
    });
    this.informerRestarts = new Counter({
      name: 'kedge_informer_restarts_total',
      help: 'Times an informer restarted its list/watch after an error',
      labelNames: ['kind'],
      registers,
    });
    this.informerRelists = new Counter({
      name: 'kedge_informer_relists_total',
      help: 'Full relists after the initial list (410 Gone, forced by the watch-health check)',
      labelNames: ['kind'],
      registers,
    });
  }

  /** The metrics registered on `registry`, created on first use. */
  static forRegistry(registry: Registry): KubeMetrics {
    let m = registries.get(registry);
    if (!m) {
      m = new KubeMetrics(registry);
      registries.set(registry, m);
    }
    return m;
  }
}
