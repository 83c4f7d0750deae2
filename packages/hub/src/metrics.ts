import { Counter, Gauge, Histogram, Registry } from 'prom-client';

/**
 * The hub's Prometheus metrics, on a registry of their own (never prom-client's global one, so several hubs can
 * live in one process, as the tests and the bench do).
 */
export class HubMetrics {
  readonly registry = new Registry();
  readonly connections = new Gauge({ name: 'kedge_hub_mqtt_connections', help: 'Connected MQTT clients on this replica', registers: [this.registry] });
  readonly connects = new Counter({
    name: 'kedge_hub_mqtt_connects_total',
    help: 'MQTT CONNECT attempts by result',
    labelNames: ['result'] as const,
    registers: [this.registry],
  });
  readonly telemetryIngested = new Counter({ name: 'kedge_hub_telemetry_ingested_total', help: 'Telemetry messages stored', registers: [this.registry] });
  readonly telemetryBytes = new Counter({ name: 'kedge_hub_telemetry_bytes_total', help: 'Telemetry body bytes stored', registers: [this.registry] });
  readonly telemetryBatch = new Histogram({
    name: 'kedge_hub_telemetry_batch_size',
    help: 'Messages per telemetry store write',
    buckets: [1, 10, 50, 100, 250, 500, 1000],
    registers: [this.registry],
  });
  readonly telemetryPurged = new Counter({ name: 'kedge_hub_telemetry_purged_total', help: 'Telemetry messages removed by retention', registers: [this.registry] });
  readonly c2dMessages = new Counter({
    name: 'kedge_hub_c2d_messages_total',
    help: 'Cloud-to-device message events: queued, complete, reject, abandon, expired, delivered',
    labelNames: ['event'] as const,
    registers: [this.registry],
  });
  readonly amqpConnections = new Gauge({ name: 'kedge_hub_amqp_connections', help: 'Open AMQP connections on this replica', registers: [this.registry] });
  readonly eventHubsState = new Gauge({ name: 'kedge_hub_eventhubs_entries', help: 'Entries the Event Hubs-compatible endpoint holds for readers, management links and tokens on this replica (0 when no client is connected)', registers: [this.registry] });
  readonly eventHubsEvents = new Counter({ name: 'kedge_hub_eventhubs_events_sent_total', help: 'Events sent to Event Hubs-compatible readers', registers: [this.registry] });
  readonly amqpIdentityState = new Gauge({ name: 'kedge_hub_amqp_identity_entries', help: 'Entries the AMQP endpoint holds for device and module links on this replica (0 when none is attached)', registers: [this.registry] });
  readonly twinUpdates = new Counter({
    name: 'kedge_hub_twin_updates_total',
    help: 'Twin writes by side',
    labelNames: ['side'] as const,
    registers: [this.registry],
  });
  readonly methodCalls = new Counter({
    name: 'kedge_hub_method_calls_total',
    help: 'Direct method invocations by result',
    labelNames: ['result'] as const,
    registers: [this.registry],
  });
  readonly httpRequests = new Counter({
    name: 'kedge_hub_http_requests_total',
    help: 'Service API requests by status class',
    labelNames: ['status'] as const,
    registers: [this.registry],
  });
  readonly deploymentEvaluations = new Counter({
    name: 'kedge_hub_deployment_evaluations_total',
    help: 'Per-device deployment evaluations by result',
    labelNames: ['result'] as const,
    registers: [this.registry],
  });
}
