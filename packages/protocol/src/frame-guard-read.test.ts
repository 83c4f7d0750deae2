import { Duplex } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { FrameGuard, FrameRefusedError } from './frame-guard.js';

/** The client side of a socket, driven by the test: `feed` is what the client sends. */
class Feed extends Duplex {
  override _read(): void {}
  override _write(_chunk: Buffer, _enc: BufferEncoding, cb: (e?: Error | null) => void): void {
    cb();
  }
}

const limits = { maxConnectBytes: 64, maxPacketBytes: 256 };
const packet = (type: number, length: number): Buffer => {
  const len: number[] = [];
  let n = length;
  do {
    let b = n % 128;
    n = Math.floor(n / 128);
    if (n > 0) b |= 0x80;
    len.push(b);
  } while (n > 0);
  return Buffer.concat([Buffer.from([type << 4, ...len]), Buffer.alloc(length, 0x61)]);
};

/** Feeds `chunks` and resolves with every byte the guard passed on (once `expectBytes` arrived) or its error. */
function run(chunks: Buffer[], opts: { expectBytes: number; authenticate?: boolean }): Promise<{ out: Buffer; error?: Error }> {
  const feed = new Feed();
  const guard = new FrameGuard(feed, limits);
  if (opts.authenticate === true) guard.authenticated();
  const out: Buffer[] = [];
  return new Promise((resolve) => {
    guard.on('data', (c: Buffer) => {
      out.push(c);
      if (Buffer.concat(out).length >= opts.expectBytes) resolve({ out: Buffer.concat(out) });
    });
    guard.on('error', (error: Error) => resolve({ out: Buffer.concat(out), error }));
    for (const c of chunks) feed.push(c);
  });
}

describe('FrameGuard reads', () => {
  it('passes a CONNECT of exactly the pre-authentication limit, byte by byte, unchanged', async () => {
    const bytes = Buffer.concat([packet(1, 64), packet(12, 0), packet(3, 2)]);
    const r = await run([...bytes].map((b) => Buffer.from([b])), { expectBytes: bytes.length });
    expect(r.error).toBeUndefined();
    expect(r.out.equals(bytes)).toBe(true);
  });

  it('refuses a CONNECT one byte over the limit before its body arrives', async () => {
    const r = await run([packet(1, 65).subarray(0, 2)], { expectBytes: 1 });
    expect(r.error).toBeInstanceOf(FrameRefusedError);
    expect((r.error as FrameRefusedError).code).toBe('MQTT_FRAME_REFUSED');
    expect(r.error?.message).toBe('a packet of 65 bytes exceeds the limit of 64 before authentication');
    expect(r.out).toHaveLength(0);
  });

  it('refuses a first packet that is not CONNECT [MQTT-3.1.0-1]', async () => {
    const r = await run([packet(3, 2)], { expectBytes: 1 });
    expect(r.error?.message).toBe('the first packet must be CONNECT');
  });

  it('applies the larger limit once authenticated, to every later packet too', async () => {
    const ok = Buffer.concat([packet(1, 10), packet(3, 256)]);
    const r = await run([ok], { expectBytes: ok.length, authenticate: true });
    expect(r.error).toBeUndefined();
    const big = await run([packet(1, 10), packet(3, 257).subarray(0, 3)], { expectBytes: 10_000, authenticate: true });
    expect(big.error?.message).toBe('a packet of 257 bytes exceeds the limit of 256');
    const early = await run([packet(1, 10), packet(3, 65).subarray(0, 2)], { expectBytes: 10_000 });
    expect(early.error?.message).toBe('a packet of 65 bytes exceeds the limit of 64 before authentication');
  });

  it('reads a 4-byte Remaining Length, and refuses a fifth length byte as malformed', async () => {
    const four = await run([Buffer.from([0x10, 0x80, 0x80, 0x80, 0x01])], { expectBytes: 10_000 });
    expect(four.error?.message).toBe(`a packet of ${128 ** 3} bytes exceeds the limit of 64 before authentication`);
    const five = await run([Buffer.from([0x10, 0xff, 0xff, 0xff, 0xff, 0x01])], { expectBytes: 10_000 });
    expect(five.error?.message).toBe('malformed Remaining Length');
    const two = await run([packet(1, 200)], { expectBytes: 10_000 });
    expect(two.error?.message).toBe('a packet of 200 bytes exceeds the limit of 64 before authentication');
  });
});
