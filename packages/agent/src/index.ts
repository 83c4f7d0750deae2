export { render, moduleEntries, imageRegistry, moduleDigest, RenderErrorReason } from './render.js';
export type { RenderInput, RenderResult, RenderedModule, OwnerMeta, RenderError, ModuleEntry } from './render.js';
export { DevicePolicySchema, defaultPolicy } from './policy.js';
export type { DevicePolicy, DevicePolicyInput } from './policy.js';
export { Labels, Annotations, MANAGED_BY, toDnsLabel, toLabelValue, isDnsLabel } from './names.js';
export { EdgeDeploymentReconciler, OwnedKinds, apiView } from './reconciler.js';
export type { ClusterView, EdgeDeploymentObject, ReconcilerDeps, ReconcilerMemory } from './reconciler.js';
export { startEdgeDeploymentController, slimObject } from './controller.js';
export type { AgentControllerOptions, RunningController } from './controller.js';
export { computeStatus, moduleStatus, isAvailable, ConditionTypes, Reasons, Phases } from './status.js';
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
export type { TwinSyncOptions } from './twin-sync.js';
export { TwinCache } from './twin-cache.js';
export type { CachedTwin } from './twin-cache.js';
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
