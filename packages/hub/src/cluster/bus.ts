import { EventEmitter } from 'node:events';
import type pg from 'pg';
import type { Logger } from '../log.js';
import type { Json, JsonObject } from '@kedge/protocol';

/** Events replicas exchange. Every replica receives every event, its own included. */
export type BusEvent =
  | { readonly type: 'desired'; readonly deviceId: string; readonly moduleId: string; readonly patch: JsonObject }
  | {
      readonly type: 'method-request';
      readonly callId: string;
      readonly replyTo: string;
      readonly targetReplica: string;
      readonly deviceId: string;
      readonly moduleId: string;
      readonly methodName: string;
      readonly payload: Json;
      readonly timeoutMs: number;
    }
  | { readonly type: 'method-response'; readonly callId: string; readonly replyTo: string; readonly status: number; readonly payload: Json; readonly error?: string }
  | { readonly type: 'telemetry'; readonly last: number }
  | { readonly type: 'configurations' }
  | { readonly type: 'kick'; readonly deviceId: string; readonly moduleId: string; readonly exceptReplica: string }
  /** A cloud-to-device message was queued or abandoned for `deviceId`: the replica holding its connection delivers. */
  | { readonly type: 'c2d'; readonly deviceId: string }
  /** Cloud-to-device feedback records may be waiting for the service's feedback receiver. */
  | { readonly type: 'c2d-feedback' }
  /** A device (`moduleId` `''`: with all its modules) or module identity was created, changed or deleted. */
  | { readonly type: 'identity'; readonly deviceId: string; readonly moduleId: string }
  /**
   * Local only, never published: this replica's bus was disconnected and may have missed events; listeners look again
   * at what they wait for (queued C2D messages, new telemetry).
   */
  | { readonly type: 'resync' };

/** The replicas' event bus. A single process uses {@link LocalBus}; PostgreSQL deployments use {@link PgBus}. */
export interface Bus {
  publish(event: BusEvent): Promise<void>;
  subscribe(listener: (event: BusEvent) => void): () => void;
  close(): Promise<void>;
}

/** In-process bus: delivery on the next microtask, so publishers never re-enter listeners. */
export class LocalBus implements Bus {
  readonly #emitter = new EventEmitter().setMaxListeners(0);
  publish(event: BusEvent): Promise<void> {
    queueMicrotask(() => this.#emitter.emit('event', event));
    return Promise.resolve();
  }
  subscribe(listener: (event: BusEvent) => void): () => void {
    this.#emitter.on('event', listener);
    return () => this.#emitter.off('event', listener);
  }
  close(): Promise<void> {
    this.#emitter.removeAllListeners();
    return Promise.resolve();
  }
}

const CHANNEL = 'kedge_bus';
/** NOTIFY payloads are limited to 8000 bytes; larger events go through the `bus` table and only their id is sent. */
const INLINE_LIMIT = 7000;

/**
 * PostgreSQL LISTEN/NOTIFY bus. One dedicated connection listens; publishes use the pool. Events larger than
 * {@link INLINE_LIMIT} are stored in the `bus` table and fetched by id (rows older than a minute are swept).
 * When the listening connection breaks (a server restart, a failover, an idle-connection killer) it is opened again
 * with a capped, jittered backoff; events published while it was down are not received (the periodic re-checks
 * of sessions, deployments and C2D locks cover that window).
 */
export class PgBus implements Bus {
  readonly #pool: pg.Pool;
  readonly #log: Logger;
  readonly #emitter = new EventEmitter().setMaxListeners(0);
  #listener: pg.PoolClient | undefined;
  #sweep: NodeJS.Timeout | undefined;
  #retry: NodeJS.Timeout | undefined;
  #reconnects = 0;
  #closed = false;

  constructor(deps: { pool: pg.Pool; log: Logger }) {
    this.#pool = deps.pool;
    this.#log = deps.log;
  }

  async start(): Promise<void> {
    await this.#listen();
    this.#sweep = setInterval(() => {
      void this.#pool.query('DELETE FROM bus WHERE created_at < $1', [Date.now() - 60_000]).catch(() => undefined);
    }, 30_000);
    this.#sweep.unref();
  }

  /** Whether the LISTEN connection is up (false while it reconnects). */
  get listening(): boolean {
    return this.#listener !== undefined;
  }

  /** How many times the LISTEN connection was lost and opened again. */
  get reconnects(): number {
    return this.#reconnects;
  }

  async #listen(): Promise<void> {
    const client = await this.#pool.connect();
    let lost = false;
    const onLost = (e?: unknown): void => {
      if (lost || this.#closed) return; // after close() the client is released already
      lost = true;
      if (this.#listener === client) this.#listener = undefined;
      // A broken client must not go back into the pool: release(err) destroys it.
      client.release(e instanceof Error ? e : new Error('bus listener connection ended'));
      this.#log.error({ err: e }, 'Bus listener connection lost; reconnecting (events published meanwhile are not received)');
      this.#reconnect(0);
    };
    client.on('notification', (n) => {
      if (n.channel === CHANNEL && n.payload !== undefined) void this.#receive(n.payload).catch((e: unknown) => this.#log.warn({ err: e }, 'Dropped bus event'));
    });
    client.on('error', onLost);
    client.on('end', () => onLost());
    try {
      await client.query(`LISTEN ${CHANNEL}`);
    } catch (e) {
      // The caller retries (or fails start()): no second reconnect from here, and the client is destroyed.
      if (!lost) {
        lost = true;
        client.release(e instanceof Error ? e : new Error('LISTEN failed'));
      }
      throw e;
    }
    if (this.#closed) {
      client.release();
      return;
    }
    if (!lost) this.#listener = client;
  }

  /** Opens the LISTEN connection again after `attempt` failures: 100 ms doubling to 5 s, with jitter. */
  #reconnect(attempt: number): void {
    if (this.#closed || this.#retry) return;
    const delay = Math.min(5000, 100 * 2 ** attempt) * (0.5 + Math.random() / 2);
    this.#retry = setTimeout(() => {
      this.#retry = undefined;
      this.#listen().then(
        () => {
          if (this.#closed) return;
          this.#reconnects++;
          this.#log.warn({ attempt: attempt + 1 }, 'Bus listener connection restored');
          this.#emitter.emit('event', { type: 'resync' } satisfies BusEvent);
        },
        (e: unknown) => {
          this.#log.warn({ err: e, attempt: attempt + 1 }, 'Bus listener reconnect failed');
          this.#reconnect(attempt + 1);
        },
      );
    }, delay);
    this.#retry.unref();
  }

  async #receive(payload: string): Promise<void> {
    let text = payload;
    if (payload.startsWith('@')) {
      const r = await this.#pool.query<{ payload: string }>('SELECT payload FROM bus WHERE id = $1', [payload.slice(1)]);
      const row = r.rows[0];
      if (!row) return;
      text = row.payload;
    }
    this.#emitter.emit('event', JSON.parse(text) as BusEvent);
  }

  async publish(event: BusEvent): Promise<void> {
    if (this.#closed) return;
    let text = JSON.stringify(event);
    if (Buffer.byteLength(text) > INLINE_LIMIT) {
      const r = await this.#pool.query<{ id: string }>('INSERT INTO bus (channel, payload, created_at) VALUES ($1, $2, $3) RETURNING id', [
        CHANNEL,
        text,
        Date.now(),
      ]);
      text = `@${r.rows[0]?.id ?? ''}`;
    }
    await this.#pool.query('SELECT pg_notify($1, $2)', [CHANNEL, text]);
  }

  subscribe(listener: (event: BusEvent) => void): () => void {
    this.#emitter.on('event', listener);
    return () => this.#emitter.off('event', listener);
  }

  async close(): Promise<void> {
    this.#closed = true;
    if (this.#sweep) clearInterval(this.#sweep);
    if (this.#retry) clearTimeout(this.#retry);
    const l = this.#listener;
    this.#listener = undefined;
    if (l) {
      await l.query(`UNLISTEN ${CHANNEL}`).catch(() => undefined);
      l.release();
    }
    this.#emitter.removeAllListeners();
  }
}
