/**
 * `@kedge/iothub-client`: the device side of IoT Hub — an MQTT client for a device or module (twin, desired
 * patches, direct methods, telemetry; SAS tokens renewed, reconnecting with backoff) and the device-scoped REST
 * calls an edge device makes for its module identities. Used by the edge agent and the edge hub's upstream link.
 */
export { IotHubClient } from './client.js';
export type {
  ClientLogger, EventOptions, IotHubClientEvents, IotHubClientOptions, MethodHandler, MethodRequest, MethodResponse, Signer, TwinDocument,
} from './client.js';
export { DeviceRegistryClient } from './registry.js';
export type { DeviceRegistryOptions, ModuleIdentity } from './registry.js';
export { IotHubClientError, IotHubErrorCode, isRetriable } from './errors.js';
export { backoffDelay } from './backoff.js';
export type { BackoffOptions } from './backoff.js';
