import { randomUUID } from 'node:crypto';
import { Gauge, Registry } from 'prom-client';
import type { MetricValueWithName } from 'prom-client';

const QUANTILES = [0.5, 0.9, 0.95, 0.99, 0.999, 0.9999];

/** Relative accuracy of {@link WindowedSummary}'s quantiles (DDSketch's α): a reported quantile is within 1 % of a value observed at that rank. */
const RELATIVE_ACCURACY = 0.01;
const GAMMA = (1 + RELATIVE_ACCURACY) / (1 - RELATIVE_ACCURACY);
const LN_GAMMA = Math.log(GAMMA);

/** A series' key: its label values in the declared order, each ended by NUL (so `a|bc` and `ab|c` differ). */
function seriesKey<L extends string>(names: readonly L[], labels: Partial<Record<L, string | number>>): string {
  let key = '';
  for (const n of names) key += `${labels[n] ?? ''}\u0000`;
  return key;
}

/** The labels a series is exposed with: an own copy of those given, in the declared order. */
function ownLabels<L extends string>(names: readonly L[], labels: Partial<Record<L, string | number>>): Record<string, string | number> {
  const own: Record<string, string | number> = {};
  for (const n of names) if (labels[n] !== undefined) own[n] = labels[n];
  return own;
}

interface Slot {
  /** Start of the slot's time span (ms). */
  start: number;
  /** Counts per logarithmic bucket: bucket `i` holds values in (γ^(i-1), γ^i]. */
  readonly buckets: Map<number, number>;
  /** Observations ≤ 0 (a duration under the clock's resolution). */
  zeros: number;
  count: number;
}

interface Series {
  readonly labels: Record<string, string | number>;
  readonly slots: Slot[];
  sum: number;
  count: number;
}

/**
 * A Prometheus summary as prom-client's `Summary` exposes it (the quantiles over a sliding window of `maxAgeSeconds`
 * that moves in `ageBuckets` steps, `_sum` and `_count` since start), made for the per-message path. prom-client pushes
 * every observation into a t-digest per age bucket (five pushes per observation, the edge hub made three
 * observations per message); here an observation is one increment of a logarithmic bucket in the current time slot
 * (DDSketch: quantiles within {@link RELATIVE_ACCURACY} of a value of that rank), and the window's slots are merged
 * when scraped. `observe(labels, value, count)` records `count` equal observations at once.
 */
export class WindowedSummary<L extends string> {
  readonly name: string;
  readonly help: string;
  readonly type = 'summary';
  readonly aggregator = 'sum';
  readonly #labelNames: readonly L[];
  readonly #percentiles: readonly number[];
  readonly #slotMs: number;
  readonly #slots: number;
  readonly #now: () => number;
  readonly #series = new Map<string, Series>();

  constructor(o: { name: string; help: string; labelNames: readonly L[]; registers: Registry[]; percentiles?: readonly number[]; maxAgeSeconds?: number; ageBuckets?: number; now?: () => number }) {
    this.name = o.name;
    this.help = o.help;
    this.#labelNames = o.labelNames;
    this.#percentiles = o.percentiles ?? QUANTILES;
    this.#slots = o.ageBuckets ?? 5;
    this.#slotMs = ((o.maxAgeSeconds ?? 600) * 1000) / this.#slots;
    this.#now = o.now ?? Date.now;
    for (const r of o.registers) r.registerMetric(this as never);
  }

  /** Records `count` observations of `value`. */
  observe(labels: Partial<Record<L, string | number>>, value: number, count = 1): void {
    this.#observe(seriesKey(this.#labelNames, labels), labels, value, count);
  }

  /** The series of `labels`, for a caller that observes it often: its key is made once. */
  child(labels: Partial<Record<L, string | number>>): { observe(value: number, count?: number): void } {
    const key = seriesKey(this.#labelNames, labels);
    return { observe: (value, count = 1) => this.#observe(key, labels, value, count) };
  }

  #observe(key: string, labels: Partial<Record<L, string | number>>, value: number, count: number): void {
    if (!Number.isFinite(value)) throw new TypeError(`Value is not a valid number: ${value}`);
    let series = this.#series.get(key);
    if (series === undefined) this.#series.set(key, (series = { labels: ownLabels(this.#labelNames, labels), slots: [], sum: 0, count: 0 }));
    series.sum += value * count;
    series.count += count;
    const slot = this.#slot(series);
    slot.count += count;
    if (value <= 0) slot.zeros += count;
    else {
      const i = Math.ceil(Math.log(value) / LN_GAMMA);
      slot.buckets.set(i, (slot.buckets.get(i) ?? 0) + count);
    }
  }

  /** Starts a timer; the returned function observes the seconds since. */
  startTimer(labels: Partial<Record<L, string | number>>): () => number {
    const start = process.hrtime.bigint();
    return () => {
      const seconds = Number(process.hrtime.bigint() - start) / 1e9;
      this.observe(labels, seconds);
      return seconds;
    };
  }

  #slot(series: Series): Slot {
    const now = this.#now();
    const last = series.slots[series.slots.length - 1];
    if (last !== undefined && now < last.start + this.#slotMs) return last;
    const start = now - (now % this.#slotMs);
    const slot: Slot = { start, buckets: new Map(), zeros: 0, count: 0 };
    series.slots.push(slot);
    this.#expire(series, now);
    return slot;
  }

  /** Drops the slots that are out of the window: the last `ageBuckets` slot spans are kept. */
  #expire(series: Series, now: number): void {
    const oldest = now - this.#slots * this.#slotMs;
    while (series.slots.length > 0 && (series.slots[0] as Slot).start + this.#slotMs <= oldest) series.slots.shift();
  }

  /** The quantile `q` of the window (0 when it is empty, as prom-client). */
  #quantile(series: Series, q: number): number {
    let total = 0;
    let zeros = 0;
    const merged = new Map<number, number>();
    for (const s of series.slots) {
      total += s.count;
      zeros += s.zeros;
      for (const [i, c] of s.buckets) merged.set(i, (merged.get(i) ?? 0) + c);
    }
    if (total === 0) return 0;
    const rank = q * (total - 1);
    let seen = zeros;
    if (rank < seen) return 0;
    for (const i of [...merged.keys()].sort((a, b) => a - b)) {
      seen += merged.get(i) as number;
      if (rank < seen) return (2 * GAMMA ** i) / (GAMMA + 1);
    }
    return (2 * GAMMA ** Math.max(...merged.keys())) / (GAMMA + 1);
  }

  get(): Promise<{ name: string; help: string; type: 'summary'; values: MetricValueWithName<string>[]; aggregator: 'sum' }> {
    const now = this.#now();
    const values: MetricValueWithName<string>[] = [];
    for (const series of this.#series.values()) {
      this.#expire(series, now);
      for (const q of this.#percentiles) values.push({ labels: { quantile: q, ...series.labels }, value: this.#quantile(series, q) });
      values.push({ metricName: `${this.name}_sum`, labels: series.labels, value: series.sum });
      values.push({ metricName: `${this.name}_count`, labels: series.labels, value: series.count });
    }
    return Promise.resolve({ name: this.name, help: this.help, type: 'summary', values, aggregator: 'sum' });
  }

  reset(): void {
    this.#series.clear();
  }
}

/**
 * A Prometheus counter with labels, made for the per-message path: prom-client's `Counter.inc` validates the label
 * names and builds a sorted key of every label on each call; here a series is found by its label values joined in the
 * declared order, and created (with its labels as an own copy) the first time. Registered and exposed as prom-client's.
 */
export class LabeledCounter<L extends string> {
  readonly name: string;
  readonly help: string;
  readonly type = 'counter';
  readonly aggregator = 'sum';
  readonly #labelNames: readonly L[];
  readonly #series = new Map<string, { labels: Record<string, string | number>; value: number }>();

  constructor(o: { name: string; help: string; labelNames: readonly L[]; registers: Registry[] }) {
    this.name = o.name;
    this.help = o.help;
    this.#labelNames = o.labelNames;
    for (const r of o.registers) r.registerMetric(this as never);
  }

  /** Adds `value` (≥ 0) to the series of `labels`. */
  inc(labels: Partial<Record<L, string | number>>, value = 1): void {
    this.#inc(seriesKey(this.#labelNames, labels), labels, value);
  }

  /** The series of `labels`, for a caller that counts it often: its key is made once. */
  child(labels: Partial<Record<L, string | number>>): { inc(value?: number): void } {
    const key = seriesKey(this.#labelNames, labels);
    return { inc: (value = 1) => this.#inc(key, labels, value) };
  }

  #inc(key: string, labels: Partial<Record<L, string | number>>, value: number): void {
    if (!(value >= 0) || !Number.isFinite(value)) throw new TypeError(`a counter only goes up: ${value}`);
    const series = this.#series.get(key);
    if (series !== undefined) series.value += value;
    else this.#series.set(key, { labels: ownLabels(this.#labelNames, labels), value });
  }

  get(): Promise<{ name: string; help: string; type: 'counter'; values: MetricValueWithName<string>[]; aggregator: 'sum' }> {
    const values = [...this.#series.values()].map((s) => ({ labels: s.labels, value: s.value }));
    return Promise.resolve({ name: this.name, help: this.help, type: 'counter', values, aggregator: 'sum' });
  }

  reset(): void {
    this.#series.clear();
  }
}

/**
 * The edge hub's Prometheus metrics, on IoT Edge's names and labels (iotedge-protocols.md §7, [IE doc/BuiltInMetrics.md]),
 * on a registry of its own. Every series carries `iothub`, `edge_device` and `instance_number` (one per process start).
 */
export class EdgeHubMetrics {
  readonly registry = new Registry();
  readonly received: LabeledCounter<'route_output' | 'id'>;
  readonly sent: LabeledCounter<'from' | 'to' | 'from_route_output' | 'to_route_input' | 'priority'>;
  readonly dropped: LabeledCounter<'reason' | 'from' | 'from_route_output'>;
  readonly unacked: LabeledCounter<'reason' | 'from' | 'from_route_output'>;
  readonly queueLength: Gauge<'endpoint' | 'priority'>;
  readonly sendDuration: WindowedSummary<'from' | 'to' | 'from_route_output' | 'to_route_input'>;
  readonly processDuration: WindowedSummary<'from' | 'to' | 'priority'>;
  readonly messageSize: WindowedSummary<'id'>;
  readonly connectedClients: Gauge;
  readonly connectSuccess: LabeledCounter<'id'>;
  readonly connectFailed: LabeledCounter<'id' | 'reason'>;
  readonly disconnects: LabeledCounter<'id'>;
  readonly getTwin: LabeledCounter<'source' | 'id'>;
  readonly getTwinDuration: WindowedSummary<'source' | 'id'>;
  readonly reported: LabeledCounter<'target' | 'id'>;
  readonly reportedDuration: WindowedSummary<'target' | 'id'>;
  readonly methods: LabeledCounter<'from' | 'to'>;
  readonly methodDuration: WindowedSummary<'from' | 'to'>;
  readonly offlineCount: LabeledCounter<'id'>;
  readonly retries: LabeledCounter<'id' | 'operation'>;

  constructor(labels: { iothub: string; edgeDevice: string }) {
    this.registry.setDefaultLabels({ iothub: labels.iothub, edge_device: labels.edgeDevice, instance_number: randomUUID() });
    const registers = [this.registry];
    // IoT Edge's summaries: quantiles over a 10-minute window.
    const summary = <L extends string>(name: string, help: string, labelNames: L[]): WindowedSummary<L> =>
      new WindowedSummary({ name, help, labelNames, percentiles: QUANTILES, maxAgeSeconds: 600, ageBuckets: 5, registers });
    this.received = new LabeledCounter({ name: 'edgehub_messages_received_total', help: 'Messages received from clients', labelNames: ['route_output', 'id'], registers });
    this.sent = new LabeledCounter({
      name: 'edgehub_messages_sent_total',
      help: 'Messages delivered to an endpoint',
      labelNames: ['from', 'to', 'from_route_output', 'to_route_input', 'priority'],
      registers,
    });
    this.dropped = new LabeledCounter({ name: 'edgehub_messages_dropped_total', help: 'Messages dropped, by reason', labelNames: ['reason', 'from', 'from_route_output'], registers });
    this.unacked = new LabeledCounter({ name: 'edgehub_messages_unack_total', help: 'Messages refused to their sender, by reason', labelNames: ['reason', 'from', 'from_route_output'], registers });
    this.queueLength = new Gauge({ name: 'edgehub_queue_length', help: 'Messages waiting in an endpoint queue', labelNames: ['endpoint', 'priority'], registers });
    this.sendDuration = summary('edgehub_message_send_duration_seconds', 'Time from receipt to delivery acknowledgement', ['from', 'to', 'from_route_output', 'to_route_input']);
    this.processDuration = summary('edgehub_message_process_duration_seconds', 'Time an endpoint took to deliver a batch, per message delivered', ['from', 'to', 'priority']);
    this.messageSize = summary('edgehub_message_size_bytes', 'Size of received messages', ['id']);
    this.connectedClients = new Gauge({ name: 'edgehub_connected_clients', help: 'Connected clients', registers });
    this.connectSuccess = new LabeledCounter({ name: 'edgehub_client_connect_success_total', help: 'Accepted client connections', labelNames: ['id'], registers });
    this.connectFailed = new LabeledCounter({ name: 'edgehub_client_connect_failed_total', help: 'Refused client connections', labelNames: ['id', 'reason'], registers });
    this.disconnects = new LabeledCounter({ name: 'edgehub_client_disconnect_total', help: 'Client disconnections', labelNames: ['id'], registers });
    this.getTwin = new LabeledCounter({ name: 'edgehub_gettwin_total', help: 'Twin GET requests', labelNames: ['source', 'id'], registers });
    this.getTwinDuration = summary('edgehub_gettwin_duration_seconds', 'Time to answer a twin GET', ['source', 'id']);
    this.reported = new LabeledCounter({ name: 'edgehub_reported_properties_total', help: 'Reported property patches', labelNames: ['target', 'id'], registers });
    this.reportedDuration = summary('edgehub_reported_properties_update_duration_seconds', 'Time to answer a reported properties patch', ['target', 'id']);
    this.methods = new LabeledCounter({ name: 'edgehub_direct_methods_total', help: 'Direct method calls relayed', labelNames: ['from', 'to'], registers });
    this.methodDuration = summary('edgehub_direct_method_duration_seconds', 'Time to resolve a direct method call between clients of the edge hub', ['from', 'to']);
    this.offlineCount = new LabeledCounter({ name: 'edgehub_offline_count_total', help: 'Times the upstream link went offline', labelNames: ['id'], registers });
    this.retries = new LabeledCounter({ name: 'edgehub_operation_retry_total', help: 'Retried upstream operations (operation connect: a reconnect of an upstream connection, planned after a failed attempt or a lost connection)', labelNames: ['id', 'operation'], registers });
  }
}
