import type { Duplex } from 'node:stream';
import { StreamGuard } from '@kedge/protocol';

/** Size limits an {@link AmqpFrameGuard} enforces. */
export interface AmqpFrameLimits {
  /** Largest frame before the connection holds an accepted CBS token (open, attach, the put-token transfer). */
  readonly maxFrameBytesBeforeAuth: number;
  /** Largest frame afterwards: the `max-frame-size` the hub announces in its `open`. */
  readonly maxFrameBytes: number;
}

/** A peer sent a frame the hub refuses to buffer, or bytes that are no AMQP framing. Code `AMQP_FRAME_REFUSED`. */
export class AmqpFrameRefusedError extends Error {
  readonly code = 'AMQP_FRAME_REFUSED';
}

/** `AMQP` in ASCII: the start of a protocol header [AMQP 1.0 2.2]. */
const PROTOCOL_HEADER = 0x414d5150;
/** Smallest legal frame: the 8-byte frame header [AMQP 1.0 2.3.1]. */
const MIN_FRAME = 8;

/**
 * Sits between a socket and rhea and refuses a frame as soon as its 4-byte size announces more bytes than allowed,
 * before its body is buffered: rhea (1.0) announces `max-frame-size` but does not enforce it on input, and keeps
 * concatenating until an announced frame is complete (a frame claiming 4 GB makes it buffer until memory runs out).
 *
 * It reads only what delimits frames: 8-byte protocol headers (`AMQP` + id + version, sent before SASL and again
 * before AMQP [AMQP 1.0 2.2, 5.3.2]) and each frame's size and `doff` [AMQP 1.0 2.3.1]; every byte passes on
 * unchanged and decoding stays rhea's. Refusal destroys the stream (and the socket under it).
 */
export class AmqpFrameGuard extends StreamGuard {
  readonly #limits: AmqpFrameLimits;
  /** Bytes of the current 8-byte unit (a protocol header or a frame header) collected so far. */
  readonly #head = Buffer.alloc(8);
  #headLength = 0;
  /** Body bytes of the current frame still to pass. */
  #remaining = 0;

  constructor(inner: Duplex, limits: AmqpFrameLimits) {
    super(inner);
    this.#limits = limits;
  }

  /** The frame limit in force now (before or after authentication); the hub bounds whole messages by it too. */
  get frameLimit(): number {
    return this.isAuthenticated ? this.#limits.maxFrameBytes : this.#limits.maxFrameBytesBeforeAuth;
  }

  protected override refusal(reason: string): Error {
    return new AmqpFrameRefusedError(reason);
  }

  protected override scan(chunk: Buffer): string | undefined {
    let i = 0;
    while (i < chunk.length) {
      if (this.#remaining > 0) {
        const n = Math.min(this.#remaining, chunk.length - i);
        i += n;
        this.#remaining -= n;
        continue;
      }
      const n = Math.min(8 - this.#headLength, chunk.length - i);
      chunk.copy(this.#head, this.#headLength, i, i + n);
      this.#headLength += n;
      i += n;
      if (this.#headLength < 8) break;
      this.#headLength = 0;
      const size = this.#head.readUInt32BE(0);
      // A protocol header: 'AMQP', protocol id 0 (AMQP) or 3 (SASL), version 1.0.0.
      if (size === PROTOCOL_HEADER) {
        const id = this.#head[4];
        if ((id !== 0 && id !== 3) || this.#head[5] !== 1 || this.#head[6] !== 0 || this.#head[7] !== 0) return 'unsupported protocol header';
        continue;
      }
      const limit = this.frameLimit;
      if (size < MIN_FRAME) return `malformed frame size ${size}`;
      if (size > limit) return `a frame of ${size} bytes exceeds the limit of ${limit}${this.isAuthenticated ? '' : ' before authentication'}`;
      // doff counts 4-byte words of the frame header; at least 2 [AMQP 1.0 2.3.1].
      const doff = this.#head[4] ?? 0;
      if (doff < 2 || doff * 4 > size) return 'malformed frame header';
      this.#remaining = size - MIN_FRAME;
    }
    return undefined;
  }
}
