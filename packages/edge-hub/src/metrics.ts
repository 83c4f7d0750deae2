import { randomUUID } from 'node:crypto';
import { Counter, Gauge, Registry, Summary } from 'prom-client';

const QUANTILES = [0.5, 0.9, 0.95, 0.99, 0.999, 0.9999];

/**
 * The edge hub's Prometheus metrics, on IoT Edge's names and labels (iotedge-protocols.md §7, [IE doc/BuiltInMetrics.md]),
 * on a registry of its own. Every series carries `iothub`, `edge_device` and `instance_number` (one per process start).
 */
export class EdgeHubMetrics {
  readonly registry = new Registry();
  readonly received: Counter<'route_output' | 'id'>;
  readonly sent: Counter<'from' | 'to' | 'from_route_output' | 'to_route_input' | 'priority'>;
  readonly dropped: Counter<'reason' | 'from' | 'from_route_output'>;
  readonly unacked: Counter<'reason' | 'from' | 'from_route_output'>;
  readonly queueLength: Gauge<'endpoint' | 'priority'>;
  readonly sendDuration: Summary<'from' | 'to' | 'from_route_output' | 'to_route_input'>;
  readonly processDuration: Summary<'from' | 'to' | 'priority'>;
  readonly messageSize: Summary<'id'>;
  readonly connectedClients: Gauge;
  readonly connectSuccess: Counter<'id'>;
  readonly connectFailed: Counter<'id' | 'reason'>;
  readonly disconnects: Counter<'id'>;
  readonly getTwin: Counter<'source' | 'id'>;
  readonly getTwinDuration: Summary<'source' | 'id'>;
  readonly reported: Counter<'target' | 'id'>;
  readonly reportedDuration: Summary<'target' | 'id'>;
  readonly methods: Counter<'from' | 'to'>;
  readonly methodDuration: Summary<'from' | 'to'>;
  readonly offlineCount: Counter<'id'>;
  readonly retries: Counter<'id' | 'operation'>;

  constructor(labels: { iothub: string; edgeDevice: string }) {
    this.registry.setDefaultLabels({ iothub: labels.iothub, edge_device: labels.edgeDevice, instance_number: randomUUID() });
    const registers = [this.registry];
    // IoT Edge's summaries: quantiles over a 10-minute window.
    const summary = <L extends string>(name: string, help: string, labelNames: L[]): Summary<L> =>
      new Summary({ name, help, labelNames, percentiles: QUANTILES, maxAgeSeconds: 600, ageBuckets: 5, registers });
    this.received = new Counter({ name: 'edgehub_messages_received_total', help: 'Messages received from clients', labelNames: ['route_output', 'id'], registers });
    this.sent = new Counter({
      name: 'edgehub_messages_sent_total',
      help: 'Messages delivered to an endpoint',
      labelNames: ['from', 'to', 'from_route_output', 'to_route_input', 'priority'],
      registers,
    });
    this.dropped = new Counter({ name: 'edgehub_messages_dropped_total', help: 'Messages dropped, by reason', labelNames: ['reason', 'from', 'from_route_output'], registers });
    this.unacked = new Counter({ name: 'edgehub_messages_unack_total', help: 'Messages refused to their sender, by reason', labelNames: ['reason', 'from', 'from_route_output'], registers });
    this.queueLength = new Gauge({ name: 'edgehub_queue_length', help: 'Messages waiting in an endpoint queue', labelNames: ['endpoint', 'priority'], registers });
    this.sendDuration = new Summary({
      name: 'edgehub_message_send_duration_seconds',
      help: 'Time from receipt to delivery acknowledgement',
      labelNames: ['from', 'to', 'from_route_output', 'to_route_input'],
      percentiles: QUANTILES,
      maxAgeSeconds: 600,
      ageBuckets: 5,
      registers,
    });
    this.processDuration = summary('edgehub_message_process_duration_seconds', 'Time an endpoint took to deliver a batch, per message delivered', ['from', 'to', 'priority']);
    this.messageSize = new Summary({ name: 'edgehub_message_size_bytes', help: 'Size of received messages', labelNames: ['id'], percentiles: QUANTILES, maxAgeSeconds: 600, ageBuckets: 5, registers });
    this.connectedClients = new Gauge({ name: 'edgehub_connected_clients', help: 'Connected clients', registers });
    this.connectSuccess = new Counter({ name: 'edgehub_client_connect_success_total', help: 'Accepted client connections', labelNames: ['id'], registers });
    this.connectFailed = new Counter({ name: 'edgehub_client_connect_failed_total', help: 'Refused client connections', labelNames: ['id', 'reason'], registers });
    this.disconnects = new Counter({ name: 'edgehub_client_disconnect_total', help: 'Client disconnections', labelNames: ['id'], registers });
    this.getTwin = new Counter({ name: 'edgehub_gettwin_total', help: 'Twin GET requests', labelNames: ['source', 'id'], registers });
    this.getTwinDuration = summary('edgehub_gettwin_duration_seconds', 'Time to answer a twin GET', ['source', 'id']);
    this.reported = new Counter({ name: 'edgehub_reported_properties_total', help: 'Reported property patches', labelNames: ['target', 'id'], registers });
    this.reportedDuration = summary('edgehub_reported_properties_update_duration_seconds', 'Time to answer a reported properties patch', ['target', 'id']);
    this.methods = new Counter({ name: 'edgehub_direct_methods_total', help: 'Direct method calls relayed', labelNames: ['from', 'to'], registers });
    this.methodDuration = summary('edgehub_direct_method_duration_seconds', 'Time to resolve a direct method call between clients of the edge hub', ['from', 'to']);
    this.offlineCount = new Counter({ name: 'edgehub_offline_count_total', help: 'Times the upstream link went offline', labelNames: ['id'], registers });
    this.retries = new Counter({ name: 'edgehub_operation_retry_total', help: 'Retried upstream operations', labelNames: ['id', 'operation'], registers });
  }
}
