export { FIELD_MANAGER, LIST_PAGE_SIZE, PropagationPolicy, createKubeClient } from './client.js';
export type { ApplyOptions, CallOptions, DeleteOptions, KubeClient, KubeClientDeps, ListOptions } from './client.js';
export {
  KubeApiError,
  KubeErrorCode,
  StatusReason,
  TerminalError,
  isAlreadyExists,
  isConflict,
  isForbidden,
  isGone,
  isInvalid,
  isNoKindMatch,
  isNotFound,
  isTerminal,
  isTransient,
  isUnauthorized,
  toKubeApiError,
} from './errors.js';
export type { KubeApiErrorInit, KubeErrorContext } from './errors.js';
export { formatKey, objectKey, parseKey } from './keys.js';
export type { ObjectKey } from './keys.js';
export { ExponentialBackoff, WorkQueue } from './workqueue.js';
export type { BackoffOptions, WorkQueueDeps, WorkQueueOptions } from './workqueue.js';
export { KubeMetrics, ReconcileOutcome } from './metrics.js';
export { FakeClock, systemClock } from './clock.js';
export type { Clock, TimerHandle } from './clock.js';
export { stripManagedFields, Informer, InformerEvent } from './informer.js';
export type { InformerDeps, InformerHandler, InformerOptions } from './informer.js';
export { Controller, controllerOwnerKey } from './controller.js';
export type { ControllerOptions, MapFunc, ReconcileContext, ReconcileResult, Reconciler, WatchOptions } from './controller.js';
export { ClusterConfig, ClusterConfigError, SERVICE_ACCOUNT_DIR } from './config.js';
export type { ClusterConfigInit, ExecCredentialConfig } from './config.js';
export { HttpStatusError, KubeTransport } from './transport.js';
export type { Query, RequestOptions, ResourceInfo, WatchEventHandler, WatchLike } from './transport.js';
export type { KubernetesList, KubernetesObject, ListMeta, ObjectMeta, OwnerReference } from './types.js';
export { EventRecorder, EventType } from './events.js';
export type { EventRecord, EventRecorderOptions, EventSink, EventTarget } from './events.js';
export { LeaderElector, LeadershipLostError } from './leader.js';
export type { Lease, LeaderElectionOptions } from './leader.js';
