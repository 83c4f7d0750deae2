export { render, imageRegistry, RenderErrorReason } from './render.js';
export type { RenderInput, RenderResult, RenderedModule, OwnerMeta, RenderError } from './render.js';
export { moduleEntries, moduleDigest, startupWaits, startupOrderOf } from './modules.js';
export type { ModuleEntry } from './modules.js';
export { MAX_RESTART_COUNT, BACKOFF_UNIT_MS, BACKOFF_MAX_MS, HEALTHY_RESET_MS, restartsAfterExit, backoffDelayMs, decideAfterExit } from './restart-policy.js';
export type { ExitDecision } from './restart-policy.js';
export { UnknownModuleError } from './module-runtime.js';
export type { ModuleRuntime, ModuleOperations, RuntimeSnapshot, LogLine, LogQuery } from './module-runtime.js';
export { describeModuleRuntime } from './module-runtime.contract.js';
export type { ModuleRuntimeHarness, ModuleRuntimeFactory, ModuleBehaviour, SuiteApi } from './module-runtime.contract.js';
export { KubernetesModuleRuntime } from './kubernetes-runtime.js';
export type { KubernetesRuntimeOptions } from './kubernetes-runtime.js';
export { ProcessRuntime } from './process-runtime.js';
export type { ProcessRuntimeOptions } from './process-runtime.js';
export { startProcessAgent, ProcessAgentConfigSchema } from './start-process-agent.js';
export type { ProcessAgentConfigInput, RunningProcessAgent, StartProcessAgentOptions } from './start-process-agent.js';
export { DevicePolicySchema, defaultPolicy } from './policy.js';
export type { DevicePolicy, DevicePolicyInput } from './policy.js';
export { Labels, Annotations, MANAGED_BY, toDnsLabel, toLabelValue, isDnsLabel } from './names.js';
export { EdgeDeploymentReconciler, OwnedKinds, apiView } from './reconciler.js';
export type { ClusterView, EdgeDeploymentObject, ReconcilerDeps, ReconcilerMemory } from './reconciler.js';
export { startEdgeDeploymentController, slimObject } from './controller.js';
export type { AgentControllerOptions, RunningController } from './controller.js';
export { computeStatus, moduleStatus, isAvailable, ConditionTypes, Reasons, Phases } from './status.js';
export type { ObservedModule } from './status.js';
export { agentRbac } from './rbac.js';
export { statusEvents } from './events.js';
export { EdgeHubReportStore, RoutesReasons, routesCondition } from './edgehub-report.js';
export type { EdgeHubReports, EdgeHubRoutesReport, RoutesCondition } from './edgehub-report.js';
export {
  startAgent,
  resolveEdgeDeploymentName,
  AgentConfigSchema,
  AgentConfigError,
  DEFAULT_EDGE_DEPLOYMENT,
  WORKLOAD_PORT,
  WORKLOAD_SERVICE,
  TRUST_BUNDLE_CONFIGMAP,
} from './start-agent.js';
export type { AgentConfig, AgentConfigInput, LeaderHook, RunningAgent, StartAgentOptions } from './start-agent.js';
export { TwinSync, TWIN_SYNC_FIELD_MANAGER } from './twin-sync.js';
export type { TwinSyncOptions, TwinSyncCommonOptions, KubernetesTwinTarget } from './twin-sync.js';
export { TwinCache, FileTwinCache } from './twin-cache.js';
export type { CachedTwin, TwinCacheStore } from './twin-cache.js';
export { checkAgentDesired, mergeDesired, poisonedKey, DesiredStatusCode } from './desired.js';
export type { DesiredCheck, DesiredStatus } from './desired.js';
export { edgeAgentReported, desiredStatus, AGENT_VERSION } from './reported.js';
export type { LastDesired, ReportedInput } from './reported.js';
export { ModuleIdentities, MANAGED_BY_IOT_EDGE, identityOf } from './identities.js';
export {
  moduleRuntimeEnv,
  kubernetesModuleEnv,
  workloadSecretOf,
  identitySecretName,
  IdentitySecretKeys,
  IdentityEnv,
  RuntimeEnv,
  EDGE_HUB_SERVICE,
  WORKLOAD_API_VERSION,
  TRUST_BUNDLE_DIR,
  TRUST_BUNDLE_KEY,
} from './module-env.js';
export type { ModuleEnvInput, ModuleRuntimeEnv, RuntimeEnvVar, IdentitySecretKey, ModuleIdentityPolicy } from './module-env.js';
export { AgentMethods, MethodArgumentError, parseLogTime, MAX_LOGS_PAYLOAD_BYTES } from './methods.js';
export { LogsUploadTasks, TaskStatus, UploadLimits, UploadRequestError, logsBlobName, parseUploadRequest, redactSasUrl } from './logs-upload.js';
export type { CollectedLogs, LogsCollector, LogsUploadOptions } from './logs-upload.js';
export type { AgentMethodsOptions, KubernetesMethodsTarget } from './methods.js';
export { WorkloadApi } from './workload.js';
export { WorkloadClientError, requestServerCertificate, workloadIdentityFromEnv } from './workload-client.js';
export type { WorkloadClientIdentity, WorkloadServerCertificate } from './workload-client.js';
export { DeployedWorkloadModules, edgeHubServerNames } from './workload-modules.js';
export type { DeployedWorkloadModulesOptions } from './workload-modules.js';
export type { WorkloadApiOptions, WorkloadListen, WorkloadModule, WorkloadModules } from './workload.js';
export { DEVICE_CA_SECRET, loadOrCreateDeviceCa } from './device-ca.js';
export type { DeviceCa, DeviceCaOptions } from './device-ca.js';
export { fencedKubeClient, leaseLeader } from './leader-election.js';
export type { LeaseLeader, LeaseLeaderOptions } from './leader-election.js';
