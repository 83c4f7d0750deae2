import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { z } from 'zod';

/**
 * Limits of the device endpoint before and after authentication (`deviceLimits` in the hub config). Every value is
 * enforced on MQTT/TLS (8883) and on MQTT over WebSockets (the service port's `/$iothub/websocket`).
 */
export const DeviceLimitsSchema = z
  .object({
    /** From TCP accept to an accepted CONNECT (TLS handshake included); later sockets are destroyed. */
    connectTimeoutMs: z.number().int().positive().default(10_000),
    /** Largest MQTT packet before authentication (the CONNECT with its SAS token). */
    maxConnectBytes: z.number().int().min(1024).default(8 * 1024),
    /** Connections not yet authenticated (TLS handshake or CONNECT pending), in total and per source address. */
    maxPendingConnections: z.number().int().positive().default(1000),
    maxPendingPerAddress: z.number().int().positive().default(100),
    /**
     * Every live session is also re-checked against the registry this often, besides on each identity change: a
     * backstop for changes whose announcement was lost (a dropped PostgreSQL listener) or written past the hub.
     */
    recheckSeconds: z.number().positive().default(300),
  })
  .default({ connectTimeoutMs: 10_000, maxConnectBytes: 8 * 1024, maxPendingConnections: 1000, maxPendingPerAddress: 100, recheckSeconds: 300 });
export type DeviceLimits = z.output<typeof DeviceLimitsSchema>;

/** Bytes an MQTT packet may carry beyond the message body: topic (with its property bag) and fixed header. */
export const PACKET_OVERHEAD_BYTES = 64 * 1024;

/** One not-yet-authenticated connection: holds its place under the caps and its deadline until released. */
export interface Ticket {
  /** Frees the place and cancels the deadline (authenticated, or closed). Idempotent. */
  release(): void;
  /** Adds a stream layered on the admitted socket (its TLS socket): destroyed at the deadline too, releases on close. */
  attach(stream: Duplex): void;
}

const peerKey = (s: Socket): string => `${s.remoteAddress ?? ''}|${s.remotePort ?? 0}`;

/**
 * Admission control for sockets that have not authenticated yet: caps their number (in total and per source
 * address) and destroys each one that has not been released within `connectTimeoutMs` of being admitted.
 * A TLS server's raw sockets are admitted on `connection` and looked up again, by peer address and port, when
 * their TLS session is up ({@link claim}).
 */
export class Admission {
  readonly #limits: DeviceLimits;
  readonly #onRefused: (reason: 'cap' | 'timeout') => void;
  #pending = 0;
  readonly #perAddress = new Map<string, number>();
  readonly #awaitingTls = new Map<string, Ticket>();

  constructor(limits: DeviceLimits, onRefused: (reason: 'cap' | 'timeout') => void = () => undefined) {
    this.#limits = limits;
    this.#onRefused = onRefused;
  }

  /** Connections currently pending. */
  get pending(): number {
    return this.#pending;
  }

  /** Admits `socket` or destroys it at once when a cap is reached. */
  admit(socket: Socket): Ticket | undefined {
    const address = socket.remoteAddress ?? '';
    const fromAddress = this.#perAddress.get(address) ?? 0;
    if (this.#pending >= this.#limits.maxPendingConnections || fromAddress >= this.#limits.maxPendingPerAddress) {
      this.#onRefused('cap');
      socket.destroy();
      return undefined;
    }
    this.#pending++;
    this.#perAddress.set(address, fromAddress + 1);
    let released = false;
    const streams: Duplex[] = [socket];
    const timer = setTimeout(() => {
      this.#onRefused('timeout');
      for (const s of streams) s.destroy();
    }, this.#limits.connectTimeoutMs);
    timer.unref();
    const release = (): void => {
      if (released) return;
      released = true;
      clearTimeout(timer);
      for (const s of streams) s.off('close', release);
      this.#pending--;
      const n = (this.#perAddress.get(address) ?? 1) - 1;
      if (n <= 0) this.#perAddress.delete(address);
      else this.#perAddress.set(address, n);
    };
    socket.once('close', release);
    const attach = (stream: Duplex): void => {
      if (released) return;
      streams.push(stream);
      stream.once('close', release);
    };
    return { release, attach };
  }

  /** Admits a TLS server's raw socket; {@link claim} finds its ticket once the handshake is done. */
  admitRaw(raw: Socket): void {
    const ticket = this.admit(raw);
    if (!ticket) return;
    const key = peerKey(raw);
    const entry: Ticket = {
      release: () => {
        if (this.#awaitingTls.get(key) === entry) this.#awaitingTls.delete(key);
        ticket.release();
      },
      attach: (stream) => ticket.attach(stream),
    };
    this.#awaitingTls.set(key, entry);
    raw.once('close', () => entry.release());
  }

  /** The ticket of the raw socket under a just-established TLS socket (same peer address and port), attached to it. */
  claim(tlsSocket: Socket): Ticket | undefined {
    const key = peerKey(tlsSocket);
    const t = this.#awaitingTls.get(key);
    this.#awaitingTls.delete(key);
    t?.attach(tlsSocket);
    return t;
  }
}
