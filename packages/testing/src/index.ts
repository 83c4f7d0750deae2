/**
 * @kedge/testing: a real Kubernetes control plane for tests (etcd, kube-apiserver, kube-controller-manager,
 * kube-scheduler and kwok-simulated nodes, all on 127.0.0.1), plus helpers for tests that run against it.
 * Dev-only: production code must not import it (enforced by dependency-cruiser).
 */
export {
  startControlPlane, stopRecordedCluster, compactEtcd, freePorts, waitForCrdsEstablished, TEST_CONTEXT, STATE_FILE,
} from './control-plane.js';
export type { ControlPlane, ControlPlaneOptions, ClusterState } from './control-plane.js';
export { MissingBinariesError, resolveBinDir, CONTROL_PLANE_BINARIES } from './binaries.js';
export type { ControlPlaneBinary } from './binaries.js';
export {
  SIMULATE_LABEL, SIMULATE_EXIT_CODE_ANNOTATION, SIMULATE_REASON_ANNOTATION, SIMULATE_MODES, criLog,
} from './kwok-config.js';
export type { SimulateMode } from './kwok-config.js';
export {
  kubeConfigForTests, kubeconfigPathForTests, etcdUrlForTests, ETCD_URL_ENV, eventually, apiStatus, createTestNamespace, withNamespace, simulateLabels, simulateAnnotations,
  summarizePod, getPodSummary, listPodSummaries, setFakePodLogs, KUBECONFIG_ENV, CLUSTER_DIR_ENV, TEST_NAMESPACE_LABEL,
} from './helpers.js';
export type { EventuallyOptions, TestNamespace, PodSummary, ContainerSummary } from './helpers.js';
export { watchWithRelist } from './watch.js';
export type { RelistingWatch, RelistingWatchOptions, WatchEventType } from './watch.js';
export { applyCrd, applyCrds } from './crds.js';
export { pythonSdk, runPython } from './python.js';
export { freeLoopbackAddress } from './loopback.js';
export type { LoopbackRange } from './loopback.js';
export type { PythonRun } from './python.js';
