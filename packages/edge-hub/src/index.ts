/**
 * `@kedge/edge-hub`: the edge hub of a Kedge device. An IoT Hub-compatible MQTT broker for the device's modules and
 * leaf devices, the endpoints its router delivers to (module inputs, `$upstream`) and the upstream link to the hub.
 */
export { EdgeErrorCode, EdgeHubError, isEdgeHubError } from './errors.js';
export { EdgeHubMetrics } from './metrics.js';
export { HubRestClient, EDGE_HUB_MODULE } from './hub-client.js';
export type { ScopeIdentity, HubRestOptions } from './hub-client.js';
export { IdentityCache, identityKey } from './identities.js';
export type { IdentityCacheOptions, ScopeSource } from './identities.js';
export { FrameGuard, FrameTooLargeError } from './frame-guard.js';
export type { FrameLimits } from './frame-guard.js';
