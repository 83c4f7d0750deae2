import type { AmqpEndpoint } from './amqp/endpoint.js';
import type { ServiceAuth } from './auth/service-auth.js';
import type { CloudToDevice } from './c2d/c2d.js';
import type { Bus } from './cluster/bus.js';
import type { Deployments } from './deployments/deployments.js';
import type { EventHubsDirectory } from './eventhubs/directory.js';
import type { Logger } from './log.js';
import type { HubMetrics } from './metrics.js';
import type { Methods } from './methods/methods.js';
import type { DeviceGateway } from './mqtt/gateway.js';
import type { Registry } from './registry/registry.js';
import type { Store } from './storage/store.js';
import type { Telemetry } from './telemetry/telemetry.js';
import type { Twins } from './twins/twins.js';

/** Everything the HTTP routes use, injected into `build(opts)` (tests can build an app over any store). */
export interface HubServices {
  readonly store: Store;
  readonly auth: ServiceAuth;
  readonly registry: Registry;
  readonly twins: Twins;
  readonly methods: Methods;
  readonly telemetry: Telemetry;
  readonly deployments: Deployments;
  readonly bus: Bus;
  readonly metrics: HubMetrics;
  readonly log: Logger;
  readonly c2d: CloudToDevice;
  /** Present when the AMQP endpoint runs in this process (WebSocket upgrades with subprotocol `AMQPWSB10`). */
  readonly amqp?: AmqpEndpoint;
  /** Present when the MQTT endpoint runs in this process (WebSocket upgrades are handed to it). */
  readonly gateway?: DeviceGateway;
  /** The Event Hubs-compatible endpoint's description (`GET /kedge/eventhubs`), where it runs. */
  readonly eventHubs?: EventHubsDirectory;
  /** False once shutdown has begun (readiness turns 503). */
  readonly isReady: () => boolean;
}
