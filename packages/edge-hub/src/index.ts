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
export { startEdgeHub } from './edge-hub.js';
export type { RunningEdgeHub, EdgeHubStartOptions } from './edge-hub.js';
export { EdgeHubConfigSchema, parseEdgeHubConfig } from './config.js';
export type { EdgeHubConfig, EdgeHubConfigInput } from './config.js';
export { EdgeBroker, NotConnectedError, sessionPersistence } from './broker.js';
export type { BrokerHandler, BrokerOptions, BrokerDeps, InboundTelemetry, TwinReply } from './broker.js';
export { LocalMethods } from './methods.js';
export type { MethodCall, MethodOutcome, MethodSender } from './methods.js';
export { startHttpsServer, parseMethodPath, parseMethodRequest, methodResultBody, EDGE_MODULE_ID_HEADER, METHOD_LIMITS, MAX_METHOD_BODY_BYTES } from './http.js';
export type { HttpsServerOptions, HttpsServerDeps, RunningHttpsServer, MethodRequestBody } from './http.js';
export { ModuleInputEndpoint, UpstreamEndpoint } from './endpoints.js';
export { UpstreamLink, UpstreamConnection, Need } from './upstream.js';
export type { UpstreamOptions, UpstreamEvents, HubTwinReply, ReconnectStatus } from './upstream.js';
export { TwinCache, mergeSafe, parseSafe, toSafe } from './twins.js';
export type { SafeObject } from './twins.js';
export { EdgeHubReporter, clientReportKey } from './reported.js';
export { createLogger, REDACT_PATHS } from './log.js';
export type { Logger } from './log.js';
