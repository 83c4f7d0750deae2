import { EventEmitter } from 'node:events';
import type { Bus } from '../cluster/bus.js';
import { hubError } from '../errors.js';
import type { Logger } from '../log.js';
import type { HubMetrics } from '../metrics.js';
import { partitionOf } from '../eventhubs/partitions.js';
import type { NewTelemetry, Store, TelemetryRecord } from '../storage/store.js';

interface Waiting {
  readonly msg: NewTelemetry;
  readonly resolve: (offset: number) => void;
  readonly reject: (e: Error) => void;
}

/** Telemetry settings (see `HubConfig.telemetry`). */
export interface TelemetryOptions {
  readonly retentionHours: number;
  readonly maxMessages: number;
  readonly batchMaxMessages: number;
  readonly batchMaxDelayMs: number;
  readonly purgeIntervalSeconds: number;
}

/**
 * Telemetry ingestion and reading. `ingest` resolves only after the message is committed, and the MQTT endpoint
 * sends PUBACK only then, so an acknowledged message is never lost. Writes are group-committed: whatever arrives
 * while a batch is being written goes into the next one (up to `batchMaxMessages`), which is what makes QoS 1
 * ingestion fast on both engines.
 */
export class Telemetry {
  readonly #store: Store;
  readonly #bus: Bus;
  readonly #log: Logger;
  readonly #metrics: HubMetrics;
  readonly #opts: TelemetryOptions;
  readonly #partitions: number | undefined;
  readonly #emitter = new EventEmitter().setMaxListeners(0);
  #queue: Waiting[] = [];
  #writing: Promise<void> | undefined;
  #timer: NodeJS.Timeout | undefined;
  #purgeTimer: NodeJS.Timeout | undefined;
  #closed = false;
  readonly #unsubscribe: () => void;

  /** `partitionCount`: the Event Hubs-compatible endpoint's partitions, each message goes to its device's one. */
  constructor(deps: { store: Store; bus: Bus; log: Logger; metrics: HubMetrics; options: TelemetryOptions; partitionCount?: number }) {
    this.#store = deps.store;
    this.#partitions = deps.partitionCount;
    this.#bus = deps.bus;
    this.#log = deps.log;
    this.#metrics = deps.metrics;
    this.#opts = deps.options;
    this.#unsubscribe = this.#bus.subscribe((e) => {
      if (e.type === 'telemetry') this.#emitter.emit('appended', e.last);
      else if (e.type === 'resync') this.#emitter.emit('appended', 0); // readers look again (they ignore the value)
    });
  }

  /** Starts the retention sweeper. */
  start(): void {
    this.#purgeTimer = setInterval(() => void this.purge().catch((e: unknown) => this.#log.warn({ err: e }, 'Telemetry purge failed')), this.#opts.purgeIntervalSeconds * 1000);
    this.#purgeTimer.unref();
  }

  /** Stores one message; resolves with its offset once committed. */
  ingest(msg: NewTelemetry): Promise<number> {
    if (this.#closed) return Promise.reject(hubError('CLOUD_ERR_SHUTTING_DOWN', 'The hub is shutting down'));
    const partitions = this.#partitions;
    const stamped = msg.partition === undefined && partitions !== undefined ? { ...msg, partition: partitionOf(msg.deviceId, partitions) } : msg;
    return new Promise<number>((resolve, reject) => {
      this.#queue.push({ msg: stamped, resolve, reject });
      if (this.#writing) return;
      if (this.#queue.length >= this.#opts.batchMaxMessages) this.#flush();
      else this.#timer ??= setTimeout(() => this.#flush(), this.#opts.batchMaxDelayMs);
    });
  }

  #flush(): void {
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = undefined;
    if (this.#writing || this.#queue.length === 0) return;
    const batch = this.#queue.splice(0, this.#opts.batchMaxMessages);
    this.#writing = this.#write(batch).finally(() => {
      this.#writing = undefined;
      if (this.#queue.length > 0) this.#flush();
    });
  }

  async #write(batch: Waiting[]): Promise<void> {
    try {
      const offsets = await this.#store.appendTelemetry(batch.map((w) => w.msg));
      batch.forEach((w, i) => w.resolve(offsets[i] ?? 0));
      this.#metrics.telemetryIngested.inc(batch.length);
      this.#metrics.telemetryBatch.observe(batch.length);
      this.#metrics.telemetryBytes.inc(batch.reduce((n, w) => n + w.msg.body.length, 0));
      const last = offsets[offsets.length - 1] ?? 0;
      await this.#bus.publish({ type: 'telemetry', last });
    } catch (e) {
      this.#log.error({ err: e, count: batch.length }, 'Failed to store telemetry');
      const failure = hubError('CLOUD_ERR_INTERNAL', 'Telemetry could not be stored', e);
      for (const w of batch) w.reject(failure);
    }
  }

  /** Reads stored messages from `from` (inclusive), oldest first. */
  read(opts: { from: number; limit: number; deviceId?: string; moduleId?: string }): Promise<TelemetryRecord[]> {
    return this.#store.readTelemetry(opts);
  }

  bounds(): Promise<{ first: number; last: number; count: number }> {
    return this.#store.telemetryBounds();
  }

  /** Calls `listener` whenever new messages were committed (on any replica). */
  onAppended(listener: (last: number) => void): () => void {
    this.#emitter.on('appended', listener);
    return () => this.#emitter.off('appended', listener);
  }

  /** Applies the retention window and the size cap. */
  async purge(): Promise<number> {
    const n = await this.#store.purgeTelemetry({ olderThan: Date.now() - this.#opts.retentionHours * 3600_000, keepLast: this.#opts.maxMessages });
    if (n > 0) {
      this.#metrics.telemetryPurged.inc(n);
      this.#log.info({ count: n }, 'Purged telemetry');
    }
    return n;
  }

  /** Stops accepting messages and waits until everything accepted is committed. */
  async close(): Promise<void> {
    this.#closed = true;
    this.#unsubscribe();
    if (this.#purgeTimer) clearInterval(this.#purgeTimer);
    while (this.#writing || this.#queue.length > 0) {
      this.#flush();
      await this.#writing;
    }
    this.#emitter.removeAllListeners();
  }
}

/** The JSON form served by the telemetry API and the monitor stream (body as UTF-8 text when valid, else base64). */
export function telemetryJson(r: TelemetryRecord): Record<string, unknown> {
  const text = r.body.toString('utf8');
  const isText = Buffer.from(text, 'utf8').equals(r.body);
  let body: unknown = isText ? text : r.body.toString('base64');
  if (isText && (r.systemProperties['contentType'] ?? '').includes('json')) {
    try {
      body = JSON.parse(text) as unknown;
    } catch {
      body = text;
    }
  }
  return {
    offset: r.offset,
    deviceId: r.deviceId,
    ...(r.moduleId ? { moduleId: r.moduleId } : {}),
    enqueuedTime: new Date(r.enqueuedTime).toISOString(),
    properties: r.properties,
    systemProperties: r.systemProperties,
    body,
    ...(isText ? {} : { bodyEncoding: 'base64' }),
  };
}
