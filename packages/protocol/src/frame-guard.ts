import { Duplex } from 'node:stream';

/** MQTT control packet type of CONNECT (high nibble of the first fixed-header byte) [MQTT-2.2.1]. */
const CONNECT = 1;

/** Size limits a {@link FrameGuard} enforces. */
export interface FrameLimits {
  /** Largest packet accepted before the client is authenticated (its CONNECT, and anything it pipelines). */
  readonly maxConnectBytes: number;
  /** Largest packet accepted from an authenticated client. */
  readonly maxPacketBytes: number;
}

/** A client sent a packet the broker refuses to buffer (too large, or no CONNECT first). Code `MQTT_FRAME_REFUSED`. */
export class FrameRefusedError extends Error {
  readonly code = 'MQTT_FRAME_REFUSED';
}

/**
 * The plumbing of a stream guard: sits between a socket and a protocol library, passes every byte on unchanged in
 * both directions, and lets a subclass look at each inbound chunk ({@link scan}) before the library sees it. When
 * `scan` names a reason, the guard stops reading and destroys itself (and the socket under it) with
 * {@link refusal}'s error, so a hostile size announcement is refused before its body is buffered. Used by the MQTT
 * {@link FrameGuard} and by the hub's AMQP frame guard.
 */
export abstract class StreamGuard extends Duplex {
  readonly #inner: Duplex;
  #authenticated = false;

  constructor(inner: Duplex) {
    super({ allowHalfOpen: false });
    this.#inner = inner;
    inner.on('data', (chunk: Buffer) => this.#onData(chunk));
    inner.once('end', () => this.push(null));
    inner.once('error', (e: Error) => this.destroy(e));
    inner.once('close', () => this.destroy());
  }

  /** Raises the limit to the authenticated one: the peer's credentials were accepted. */
  authenticated(): void {
    this.#authenticated = true;
  }

  /** Whether {@link authenticated} was called. */
  protected get isAuthenticated(): boolean {
    return this.#authenticated;
  }

  /** Advances the subclass's scanner over `chunk`; returns why the stream must be refused, if it must. */
  protected abstract scan(chunk: Buffer): string | undefined;

  /** The error a refusal destroys the stream with. */
  protected abstract refusal(reason: string): Error;

  override _read(): void {
    this.#inner.resume();
  }

  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (e?: Error | null) => void): void {
    this.#forward(chunk, cb);
  }

  /**
   * Libraries cork the stream and write a packet in pieces (mqtt-packet: header, topic, payload): they go down as one
   * buffer, i.e. one TLS record and one syscall, rather than one each.
   */
  override _writev(chunks: Array<{ chunk: Buffer }>, cb: (e?: Error | null) => void): void {
    this.#forward(chunks.length === 1 ? (chunks[0] as { chunk: Buffer }).chunk : Buffer.concat(chunks.map((c) => c.chunk)), cb);
  }

  /**
   * Hands `data` to the inner stream and completes at once while it has room; on back-pressure, at its `drain`.
   * Waiting for the inner write's own callback instead would allow one write in flight per connection (a round trip
   * through the socket for every piece of every packet).
   */
  #forward(data: Buffer, cb: (e?: Error | null) => void): void {
    if (this.#inner.write(data)) cb();
    else this.#inner.once('drain', () => cb());
  }

  override _final(cb: (e?: Error | null) => void): void {
    this.#inner.end();
    cb();
  }

  override _destroy(err: Error | null, cb: (e?: Error | null) => void): void {
    this.#inner.destroy();
    cb(err);
  }

  #onData(chunk: Buffer): void {
    if (this.destroyed) return;
    const reason = this.scan(chunk);
    if (reason !== undefined) {
      this.#inner.pause();
      this.destroy(this.refusal(reason));
      return;
    }
    if (!this.push(chunk)) this.#inner.pause();
  }
}

/**
 * Sits between a client's socket and aedes (in the cloud hub and in the edge hub) and refuses a packet as soon as its fixed header announces more bytes
 * than allowed, before any of its body is buffered: mqtt-packet's parser (9.x) has no size limit and would keep
 * appending until the announced Remaining Length has arrived (a CONNECT claiming 200 MB makes it buffer 200 MB).
 *
 * It reads only the fixed header of each packet (type nibble and Remaining Length, a 1–4 byte variable integer
 * [MQTT-2.2.3]) and passes every byte on unchanged; parsing stays mqtt-packet's. The first packet must be CONNECT
 * [MQTT-3.1.0-1]. Refusal destroys the stream (and the socket under it) with a {@link FrameRefusedError}.
 */
export class FrameGuard extends StreamGuard {
  readonly #limits: FrameLimits;
  #frames = 0;
  #state: 'header' | 'length' | 'body' = 'header';
  #length = 0;
  #multiplier = 1;
  #lengthBytes = 0;
  #remaining = 0;

  constructor(inner: Duplex, limits: FrameLimits) {
    super(inner);
    this.#limits = limits;
  }

  protected override refusal(reason: string): Error {
    return new FrameRefusedError(reason);
  }

  /** Advances the fixed-header scanner over `chunk`; returns why the stream must be refused, if it must. */
  protected override scan(chunk: Buffer): string | undefined {
    let i = 0;
    while (i < chunk.length) {
      if (this.#state === 'body') {
        const n = Math.min(this.#remaining, chunk.length - i);
        i += n;
        this.#remaining -= n;
        if (this.#remaining === 0) this.#state = 'header';
        continue;
      }
      const b = chunk[i++] ?? 0;
      if (this.#state === 'header') {
        if (this.#frames === 0 && b >> 4 !== CONNECT) return 'the first packet must be CONNECT';
        this.#length = 0;
        this.#multiplier = 1;
        this.#lengthBytes = 0;
        this.#state = 'length';
        continue;
      }
      this.#length += (b & 0x7f) * this.#multiplier;
      this.#multiplier *= 128;
      this.#lengthBytes++;
      if ((b & 0x80) !== 0) {
        if (this.#lengthBytes === 4) return 'malformed Remaining Length';
        continue;
      }
      this.#frames++;
      const limit = this.isAuthenticated ? this.#limits.maxPacketBytes : this.#limits.maxConnectBytes;
      if (this.#length > limit) return `a packet of ${this.#length} bytes exceeds the limit of ${limit}${this.isAuthenticated ? '' : ' before authentication'}`;
      this.#remaining = this.#length;
      this.#state = this.#remaining === 0 ? 'header' : 'body';
    }
    return undefined;
  }
}
