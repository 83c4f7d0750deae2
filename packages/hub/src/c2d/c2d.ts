import { randomUUID } from 'node:crypto';
import { z } from 'zod';
import type { Bus } from '../cluster/bus.js';
import { hubError } from '../errors.js';
import type { Logger } from '../log.js';
import type { HubMetrics } from '../metrics.js';
import type { C2dAck, C2dFeedbackRecord, C2dMessageRecord, C2dSettlement, Store } from '../storage/store.js';

/** Cloud-to-device settings (`c2d` in the hub config). Defaults are IoT Hub's. */
export const C2dConfigSchema = z
  .object({
    /** TTL of a message without `absolute-expiry-time` (IoT Hub's default is one hour). */
    defaultTtlSeconds: z.number().int().positive().default(3600),
    /** Longest TTL accepted; later expiry times are cut to it (IoT Hub: 48 hours). */
    maxTtlSeconds: z.number().int().positive().default(48 * 3600),
    /** Messages queued per device; one more is refused (IoT Hub: 50). */
    maxPendingPerDevice: z.number().int().positive().default(50),
    /** Deliveries before a message is dead-lettered (IoT Hub: 10). */
    maxDeliveryCount: z.number().int().positive().default(10),
    /** How long a delivered message stays locked waiting for its settlement (IoT Hub: 60 s). */
    lockTimeoutSeconds: z.number().positive().default(60),
    /** Largest message body (IoT Hub: 64 KB). */
    maxMessageBytes: z.number().int().positive().default(64 * 1024),
    /** How often expired and dead-lettered messages are swept into feedback. */
    sweepIntervalSeconds: z.number().positive().default(10),
  })
  .default({
    defaultTtlSeconds: 3600,
    maxTtlSeconds: 48 * 3600,
    maxPendingPerDevice: 50,
    maxDeliveryCount: 10,
    lockTimeoutSeconds: 60,
    maxMessageBytes: 64 * 1024,
    sweepIntervalSeconds: 10,
  });
export type C2dConfig = z.output<typeof C2dConfigSchema>;

/** What a service sends (already validated as far as its transport can). */
export interface C2dSend {
  readonly deviceId: string;
  /** Generated when the sender gave none. */
  readonly messageId?: string;
  readonly ack: C2dAck;
  /** Absolute expiry (ms epoch), if the sender set one. */
  readonly expiresAt?: number;
  readonly properties: Readonly<Record<string, string>>;
  readonly systemProperties: Readonly<Record<string, string>>;
  readonly body: Buffer;
}

/** IoT Hub's feedback `description` per status code. */
const DESCRIPTIONS: Readonly<Record<C2dFeedbackRecord['statusCode'], string>> = {
  Success: 'Success',
  Expired: 'Message expired',
  DeliveryCountExceeded: 'Message delivery count exceeded',
  Rejected: 'Message rejected',
  Purged: 'Message purged',
};

/** The content type of a feedback batch message. */
export const FEEDBACK_CONTENT_TYPE = 'application/vnd.microsoft.iothub.feedback.json';

/** IoT Hub's feedback batch body: a JSON array of records. */
export function feedbackBatchJson(records: readonly C2dFeedbackRecord[]): string {
  return JSON.stringify(
    records.map((r) => ({
      originalMessageId: r.messageId,
      description: DESCRIPTIONS[r.statusCode],
      deviceGenerationId: r.generationId,
      deviceId: r.deviceId,
      enqueuedTimeUtc: new Date(r.enqueuedAt).toISOString(),
      statusCode: r.statusCode,
    })),
  );
}

/**
 * Cloud-to-device messages with IoT Hub's semantics: a durable per-device queue (TTL, a cap on pending messages),
 * lock → complete / reject / abandon with delivery counts, dead-lettering at the max delivery count, and
 * feedback records for the outcomes each message's `ack` asks for. Transports (the MQTT gateway, the AMQP endpoint)
 * deliver and settle; every replica hears of new messages and feedback on the bus.
 */
export class CloudToDevice {
  readonly #store: Store;
  readonly #bus: Bus;
  readonly #log: Logger;
  readonly #metrics: HubMetrics | undefined;
  readonly config: C2dConfig;
  readonly #now: () => number;
  #sweep: NodeJS.Timeout | undefined;

  constructor(deps: { store: Store; bus: Bus; log: Logger; metrics?: HubMetrics; config: C2dConfig; nowMs?: () => number }) {
    this.#store = deps.store;
    this.#bus = deps.bus;
    this.#log = deps.log;
    this.#metrics = deps.metrics;
    this.config = deps.config;
    this.#now = deps.nowMs ?? Date.now;
  }

  /**
   * Queues a message durably (committed before this resolves). Throws `CLOUD_ERR_DEVICE_NOT_FOUND`,
   * `CLOUD_ERR_QUEUE_FULL` (more than `maxPendingPerDevice`), `CLOUD_ERR_PAYLOAD_TOO_LARGE` or, for an expiry
   * already past, `CLOUD_ERR_BAD_REQUEST`.
   */
  async send(m: C2dSend): Promise<{ messageId: string }> {
    if (m.body.length > this.config.maxMessageBytes) throw hubError('CLOUD_ERR_PAYLOAD_TOO_LARGE', `Message body over ${this.config.maxMessageBytes} bytes`);
    const now = this.#now();
    const latest = now + this.config.maxTtlSeconds * 1000;
    const expiresAt = m.expiresAt === undefined ? now + this.config.defaultTtlSeconds * 1000 : Math.min(m.expiresAt, latest);
    if (expiresAt <= now) throw hubError('CLOUD_ERR_BAD_REQUEST', 'The message expiry time is in the past');
    const messageId = m.messageId ?? randomUUID();
    const r = await this.#store.enqueueC2d(
      {
        deviceId: m.deviceId,
        messageId,
        ack: m.ack,
        enqueuedAt: now,
        expiresAt,
        properties: m.properties,
        systemProperties: { ...m.systemProperties, messageId, expiryTimeUtc: new Date(expiresAt).toISOString() },
        body: m.body,
      },
      this.config.maxPendingPerDevice,
    );
    if (r === 'no-device') throw hubError('CLOUD_ERR_DEVICE_NOT_FOUND', `Device ${m.deviceId} not found`);
    if (r === 'full') throw hubError('CLOUD_ERR_QUEUE_FULL', `Device ${m.deviceId} has ${this.config.maxPendingPerDevice} messages pending`);
    this.#metrics?.c2dMessages.inc({ event: 'queued' });
    this.#announce({ type: 'c2d', deviceId: m.deviceId });
    return { messageId };
  }

  /** Locks the next deliverable message of `deviceId` for `lockTimeoutSeconds`. */
  async lock(deviceId: string): Promise<C2dMessageRecord | undefined> {
    const m = await this.#store.lockC2d(deviceId, { now: this.#now(), lockMs: this.config.lockTimeoutSeconds * 1000, maxDeliveryCount: this.config.maxDeliveryCount });
    // Locking may have dead-lettered or expired messages on the way: their feedback may be waiting.
    this.#announce({ type: 'c2d-feedback' });
    return m;
  }

  /** Settles a locked message; false when the lock was lost. */
  async settle(deviceId: string, lockToken: string, settlement: C2dSettlement): Promise<boolean> {
    const ok = await this.#store.settleC2d(deviceId, lockToken, settlement, this.#now());
    if (ok) {
      this.#metrics?.c2dMessages.inc({ event: settlement });
      if (settlement === 'abandon') this.#announce({ type: 'c2d', deviceId });
      else this.#announce({ type: 'c2d-feedback' });
    }
    return ok;
  }

  /** Drops every message queued for `deviceId`; returns how many (`DELETE /devices/{id}/commands`). */
  async purge(deviceId: string): Promise<number> {
    const n = await this.#store.purgeC2d(deviceId, this.#now());
    if (n > 0) this.#announce({ type: 'c2d-feedback' });
    return n;
  }

  /** The oldest waiting feedback records. */
  readFeedback(limit: number): Promise<C2dFeedbackRecord[]> {
    return this.#store.readC2dFeedback(limit);
  }

  /** Removes feedback records the service accepted. */
  deleteFeedback(seqs: readonly number[]): Promise<void> {
    return this.#store.deleteC2dFeedback(seqs);
  }

  /** Starts the periodic sweep of expired and dead-lettered messages. */
  start(): void {
    this.#sweep = setInterval(() => {
      this.sweep().catch((err: unknown) => this.#log.warn({ err }, 'Failed to sweep cloud-to-device messages'));
    }, this.config.sweepIntervalSeconds * 1000);
    this.#sweep.unref();
  }

  /** One sweep: expired and dead-lettered messages become feedback. Returns how many went. */
  async sweep(): Promise<number> {
    const n = await this.#store.expireC2d(this.#now(), this.config.maxDeliveryCount);
    if (n > 0) {
      this.#metrics?.c2dMessages.inc({ event: 'expired' }, n);
      this.#announce({ type: 'c2d-feedback' });
    }
    return n;
  }

  close(): void {
    if (this.#sweep) clearInterval(this.#sweep);
  }

  #announce(e: { type: 'c2d'; deviceId: string } | { type: 'c2d-feedback' }): void {
    this.#bus.publish(e).catch((err: unknown) => this.#log.warn({ err }, 'Failed to announce a cloud-to-device event'));
  }
}
