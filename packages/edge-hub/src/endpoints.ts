import type { BatchContext, Endpoint, EndpointHooks, InvalidMessage, SinkResult, StoredMessage } from '@kedge/routing';
import { FailureKind } from '@kedge/routing';
import type { Identity } from '@kedge/protocol';
import { Feature, INBOUND_WIRE_NAMES, OUTBOUND_WIRE_NAMES, formatBag, moduleInputTopic, telemetryTopic } from '@kedge/protocol';
import type { EdgeBroker } from './broker.js';
import { identityKey } from './identities.js';
import type { EdgeHubMetrics } from './metrics.js';
import { Need } from './upstream.js';
import type { UpstreamLink } from './upstream.js';

/**
 * The result for a batch whose messages were sent in order, where `firstFailure` is the index of the first one
 * that failed (or `batch.length`): everything from there on is failed, so the retry keeps the queue's order
 * (edgeHub's `ModuleEndpoint`: "if one message fails, all later ones are failed too").
 */
function inOrder(batch: readonly StoredMessage[], firstFailure: number, kind: FailureKind, cause: unknown, invalid: InvalidMessage[] = []): SinkResult {
  if (firstFailure >= batch.length && invalid.length === 0) return { succeeded: batch, failed: [], invalid };
  const bad = new Set(invalid.map((i) => i.message));
  const ok = batch.slice(0, firstFailure).filter((m) => !bad.has(m));
  const failed = batch.slice(firstFailure).filter((m) => !bad.has(m));
  return failed.length === 0 ? { succeeded: ok, failed: [], invalid } : { succeeded: ok, failed, invalid, failure: { kind, cause } };
}

/**
 * Counts delivered messages: `edgehub_messages_sent_total` and `edgehub_message_send_duration_seconds` per message,
 * `edgehub_message_process_duration_seconds` (the batch's duration, once per message) as one weighted observation per
 * sender.
 */
function countDelivered(metrics: EdgeHubMetrics, delivered: readonly StoredMessage[], at: { to: string; toInput: string; priority: string; now: number; started: number }): void {
  const { to, toInput, priority, now } = at;
  // A batch's messages mostly share a sender's property bag (one frozen systemProperties object): its series once.
  const perBag = new Map<object, { source: object; from: string; sent: { inc(): void }; duration: { observe(v: number): void } }>();
  const perSender = new Map<string, number>();
  for (const m of delivered) {
    let c = perBag.get(m.message.systemProperties);
    if (c === undefined || c.source !== m.message.source) {
      const s = sender(m);
      const from = identityKey(s.deviceId, s.moduleId);
      const output = outputOf(m);
      c = {
        source: m.message.source,
        from,
        sent: metrics.sent.child({ from, to, from_route_output: output, to_route_input: toInput, priority }),
        duration: metrics.sendDuration.child({ from, to, from_route_output: output, to_route_input: toInput }),
      };
      perBag.set(m.message.systemProperties, c);
    }
    c.sent.inc();
    c.duration.observe((now - m.message.enqueuedAt) / 1000);
    perSender.set(c.from, (perSender.get(c.from) ?? 0) + 1);
  }
  for (const [from, n] of perSender) metrics.processDuration.observe({ from, to, priority }, (now - at.started) / 1000, n);
}

/** Below this many UTF-16 units a topic cannot exceed MQTT's 65,535 bytes (at most 3 bytes each). */
const MAX_TOPIC_CHARS = Math.floor(0xffff / 3);

/** The original sender of a stored message (its connection identity). */
export const sender = (m: StoredMessage): Identity => ({
  deviceId: m.message.systemProperties['connectionDeviceId'] ?? m.message.source.deviceId,
  moduleId: m.message.systemProperties['connectionModuleId'] ?? m.message.source.moduleId ?? '',
});

/** The module output a stored message was sent on (`from_route_output`); empty for devices and notifications. */
export const outputOf = (m: StoredMessage): string => (m.message.source.kind === 'twinChangeNotification' ? '' : (m.message.source.output ?? ''));

/**
 * A module input (`BrokeredEndpoint("/modules/{m}/inputs/{i}")`): publishes each message to
 * `devices/{edge}/modules/{m}/inputs/{i}/{bag}` with QoS 1 and counts it delivered on the module's PUBACK. A module
 * that is not connected, or not subscribed to its inputs, fails the batch (`NoConnection`): its messages stay in
 * the store, and the executor is told when the module subscribes again.
 */
export class ModuleInputEndpoint implements Endpoint {
  readonly id: string;
  readonly #target: Identity;
  readonly #input: string;
  readonly #broker: EdgeBroker;
  readonly #metrics: EdgeHubMetrics;
  #last: { readonly properties: object; readonly systemProperties: object; readonly topic: string } | undefined;

  constructor(deps: { id: string; edgeDeviceId: string; module: string; input: string; broker: EdgeBroker; metrics: EdgeHubMetrics }) {
    this.id = deps.id;
    this.#target = { deviceId: deps.edgeDeviceId, moduleId: deps.module };
    this.#input = deps.input;
    this.#broker = deps.broker;
    this.#metrics = deps.metrics;
  }

  /**
   * The input topic of a message. Messages of one sender with the same property bag share their (frozen) property
   * objects (the broker reuses them), so the last topic is reused when both objects are the same.
   */
  #topic(m: StoredMessage): string {
    const { properties, systemProperties } = m.message;
    const last = this.#last;
    if (last !== undefined && last.properties === properties && last.systemProperties === systemProperties) return last.topic;
    const topic = moduleInputTopic(this.#target.deviceId, this.#target.moduleId, this.#input, formatBag(properties, systemProperties, OUTBOUND_WIRE_NAMES));
    this.#last = { properties, systemProperties, topic };
    return topic;
  }

  /** The module this endpoint delivers to. */
  get target(): Identity {
    return this.#target;
  }

  async process(batch: readonly StoredMessage[], signal: AbortSignal, context?: BatchContext): Promise<SinkResult> {
    const started = Date.now();
    if (!this.#broker.hasFeature(this.#target, Feature.Inputs)) {
      return inOrder(batch, 0, FailureKind.NoConnection, new Error(`module ${this.#target.moduleId} is not connected`));
    }
    // Pipelined: the whole batch in one write, in queue order on the module's connection.
    const sendable: StoredMessage[] = [];
    const items: { topic: string; body: Uint8Array }[] = [];
    const invalid: InvalidMessage[] = [];
    for (const m of batch) {
      const topic = this.#topic(m);
      // MQTT caps a topic at 65,535 bytes; the property bag makes the topic, so such a message can never be sent.
      if (topic.length > MAX_TOPIC_CHARS && Buffer.byteLength(topic, 'utf8') > 0xffff) invalid.push({ message: m, reason: 'its properties make an input topic over 65535 bytes' });
      else {
        sendable.push(m);
        items.push({ topic, body: m.message.body });
      }
    }
    const { acknowledged, error } = await this.#broker.deliverBatch(this.#target, items, signal);
    const now = Date.now();
    const to = identityKey(this.#target.deviceId, this.#target.moduleId);
    const priority = String(context?.priority ?? '');
    countDelivered(this.#metrics, sendable.slice(0, acknowledged), { to, toInput: this.#input, priority, now, started });
    const first = acknowledged === sendable.length ? batch.length : batch.indexOf(sendable[acknowledged] as StoredMessage);
    return inOrder(batch, first, signal.aborted ? FailureKind.Timeout : FailureKind.NoConnection, error, invalid);
  }
}

/**
 * `$upstream`: sends each message to the hub as telemetry of its original sender, on that identity's upstream
 * connection (the hub sets `connectionDeviceId`/`connectionModuleId` from it), QoS 1, delivered on the hub's
 * PUBACK. While the hub is unreachable the batch waits up to `waitMs` for the link (so draining resumes within a
 * reconnect of the hub coming back), then fails (`NoConnection`) and stays stored.
 */
export class UpstreamEndpoint implements Endpoint {
  readonly id: string;
  readonly #link: UpstreamLink;
  readonly #metrics: EdgeHubMetrics;
  readonly #waitMs: number;
  readonly #hooks: EndpointHooks;
  #last: { readonly properties: object; readonly systemProperties: object; readonly id: Identity; readonly topic: string } | undefined;

  constructor(deps: { id: string; link: UpstreamLink; metrics: EdgeHubMetrics; waitMs: number; hooks: EndpointHooks }) {
    this.id = deps.id;
    this.#link = deps.link;
    this.#metrics = deps.metrics;
    this.#waitMs = deps.waitMs;
    this.#hooks = deps.hooks;
  }

  /** The telemetry topic of a message on `id`'s connection; the last one is reused for the same (frozen, shared) bag. */
  #topic(m: StoredMessage, id: Identity): string {
    const { properties, systemProperties } = m.message;
    const last = this.#last;
    if (last !== undefined && last.properties === properties && last.systemProperties === systemProperties && last.id === id) return last.topic;
    const topic = telemetryTopic(id, formatBag(properties, systemProperties, INBOUND_WIRE_NAMES));
    this.#last = { properties, systemProperties, id, topic };
    return topic;
  }

  /** Tells the executor the link is back (called by the edge hub when an upstream connection comes up). */
  available(): void {
    this.#hooks.available();
  }

  async process(batch: readonly StoredMessage[], signal: AbortSignal, context?: BatchContext): Promise<SinkResult> {
    const started = Date.now();
    const invalid: InvalidMessage[] = [];
    const sends: Promise<void>[] = [];
    let firstFailure = batch.length;
    let cause: unknown;
    const used = new Set<ReturnType<UpstreamLink['connection']>>();
    try {
      for (let i = 0; i < batch.length; i++) {
        const m = batch[i] as StoredMessage;
        if (m.message.source.kind === 'twinChangeNotification') {
          // The hub makes its own twin change notifications from the reported patches it receives.
          invalid.push({ message: m, reason: 'twin change notifications are not sent upstream' });
          continue;
        }
        const conn = this.#link.connection(sender(m));
        if (!used.has(conn)) {
          used.add(conn);
          conn.acquire(Need.Telemetry);
        }
        if (!conn.connected) {
          try {
            await conn.waitConnected(this.#waitMs, signal);
          } catch (e) {
            firstFailure = i;
            cause = e;
            break;
          }
        }
        sends.push(conn.publish(this.#topic(m, conn.id), m.message.body));
      }
      const outcomes = await Promise.allSettled(sends);
      // `sends` holds the non-invalid messages before firstFailure, in order.
      const sent = batch.slice(0, firstFailure).filter((m) => !invalid.some((x) => x.message === m));
      const bad = outcomes.findIndex((o) => o.status === 'rejected');
      if (bad >= 0) {
        firstFailure = batch.indexOf(sent[bad] as StoredMessage);
        cause = (outcomes[bad] as PromiseRejectedResult).reason;
      }
      const now = Date.now();
      const priority = String(context?.priority ?? '');
      countDelivered(this.#metrics, sent.slice(0, bad < 0 ? sent.length : bad), { to: 'upstream', toInput: '', priority, now, started });
      return inOrder(batch, firstFailure, signal.aborted ? FailureKind.Timeout : FailureKind.NoConnection, cause, invalid);
    } finally {
      for (const c of used) c.release(Need.Telemetry);
    }
  }
}
