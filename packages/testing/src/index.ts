export { startControlPlane, stopRecordedCluster, freePorts, waitForCrdsEstablished, TEST_CONTEXT } from './control-plane.js';
export type { ControlPlane, ControlPlaneOptions, ClusterState } from './control-plane.js';
export { MissingBinariesError, resolveBinDir, CONTROL_PLANE_BINARIES } from './binaries.js';
export { SIMULATE_LABEL, SIMULATE_EXIT_CODE_ANNOTATION, SIMULATE_REASON_ANNOTATION, SIMULATE_MODES, criLog } from './kwok-config.js';
export type { SimulateMode } from './kwok-config.js';
