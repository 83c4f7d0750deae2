import { Duplex } from 'node:stream';

/** Limits on the MQTT packets one connection may send. */
export interface FrameLimits {
  /** Largest packet (remaining length) before CONNECT was accepted: CONNECT itself. */
  readonly beforeConnectBytes: number;
  /** Largest packet after the first one. */
  readonly afterConnectBytes: number;
}

/** Why {@link FrameGuard} cut a connection. */
export class FrameTooLargeError extends Error {
  readonly code = 'EDGE_ERR_FRAME_TOO_LARGE';
  constructor(readonly size: number, readonly limit: number) {
    super(`MQTT packet of ${size} bytes exceeds the ${limit}-byte limit`);
    this.name = 'FrameTooLargeError';
  }
}

/**
 * A transparent duplex in front of a client socket that reads MQTT fixed headers as bytes arrive and destroys the
 * connection as soon as a packet announces a remaining length over its limit (or a malformed length), before the
 * packet is buffered. aedes and mqtt-packet have no packet size limit of their own: without this, one announced
 * 256 MB PUBLISH would be buffered in full. The first packet (CONNECT, [MQTT-3.1.0-1]) gets the smaller limit.
 */
export class FrameGuard extends Duplex {
  readonly #socket: Duplex;
  readonly #limits: FrameLimits;
  #packets = 0;
  /** Bytes of the current packet still to skip; -1 while reading a fixed header. */
  #skip = -1;
  #header: number[] = [];

  constructor(socket: Duplex, limits: FrameLimits) {
    super({ allowHalfOpen: false });
    this.#socket = socket;
    this.#limits = limits;
    socket.on('data', (chunk: Buffer) => {
      const problem = this.#scan(chunk);
      if (problem) {
        this.destroy(problem);
        return;
      }
      if (!this.push(chunk)) socket.pause();
    });
    socket.once('end', () => this.push(null));
    socket.once('close', () => this.destroy());
    socket.on('error', (e: Error) => this.destroy(e));
  }

  #scan(chunk: Buffer): Error | undefined {
    let i = 0;
    while (i < chunk.length) {
      if (this.#skip > 0) {
        const n = Math.min(this.#skip, chunk.length - i);
        this.#skip -= n;
        i += n;
        if (this.#skip === 0) this.#skip = -1;
        continue;
      }
      // Fixed header: one type byte, then 1–4 bytes of remaining length [MQTT-2.2.3].
      this.#header.push(chunk[i] as number);
      i++;
      if (this.#header.length === 1) continue;
      const last = this.#header[this.#header.length - 1] as number;
      if ((last & 0x80) !== 0) {
        if (this.#header.length === 5) return new Error('malformed MQTT remaining length');
        continue;
      }
      let length = 0;
      for (let k = this.#header.length - 1; k >= 1; k--) length = length * 128 + ((this.#header[k] as number) & 0x7f);
      const limit = this.#packets === 0 ? this.#limits.beforeConnectBytes : this.#limits.afterConnectBytes;
      if (length > limit) return new FrameTooLargeError(length, limit);
      this.#packets++;
      this.#header = [];
      this.#skip = length === 0 ? -1 : length;
    }
    return undefined;
  }

  override _read(): void {
    this.#socket.resume();
  }

  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (e?: Error | null) => void): void {
    this.#socket.write(chunk, cb);
  }

  override _final(cb: (e?: Error | null) => void): void {
    this.#socket.end();
    cb();
  }

  override _destroy(e: Error | null, cb: (e?: Error | null) => void): void {
    this.#socket.destroy();
    cb(e);
  }
}
