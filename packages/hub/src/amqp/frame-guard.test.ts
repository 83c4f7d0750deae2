import { PassThrough } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { AmqpFrameGuard } from './frame-guard.js';

const HEADER_SASL = Buffer.from([0x41, 0x4d, 0x51, 0x50, 3, 1, 0, 0]);
const HEADER_AMQP = Buffer.from([0x41, 0x4d, 0x51, 0x50, 0, 1, 0, 0]);
const frame = (size: number): Buffer => {
  const b = Buffer.alloc(size);
  b.writeUInt32BE(size, 0);
  b[4] = 2;
  return b;
};

/** Feeds `bytes` one byte at a time through a guard; returns what came out and the error, if any. */
async function feed(bytes: Buffer, limits = { maxFrameBytesBeforeAuth: 64, maxFrameBytes: 1024 }, authenticateAfter?: number): Promise<{ out: Buffer; error: Error | undefined }> {
  const inner = new PassThrough();
  const guard = new AmqpFrameGuard(inner, limits);
  const chunks: Buffer[] = [];
  let error: Error | undefined;
  guard.on('data', (c: Buffer) => chunks.push(c));
  guard.on('error', (e: Error) => (error = e));
  for (let i = 0; i < bytes.length; i++) {
    if (i === authenticateAfter) guard.authenticated();
    inner.emit('data', bytes.subarray(i, i + 1));
  }
  // Data and errors leave the stream on later ticks.
  await new Promise((resolve) => setImmediate(resolve));
  await new Promise((resolve) => setImmediate(resolve));
  return { out: Buffer.concat(chunks), error };
}

describe('AmqpFrameGuard', () => {
  it('passes headers and frames split at every byte unchanged', async () => {
    const bytes = Buffer.concat([HEADER_SASL, frame(40), HEADER_AMQP, frame(8), frame(64)]);
    const r = await feed(bytes);
    expect(r.error).toBeUndefined();
    expect(r.out.equals(bytes)).toBe(true);
  });

  it('refuses a frame over the pre-authentication limit on its header, and lifts the limit once authenticated', async () => {
    const big = Buffer.concat([HEADER_AMQP, frame(65)]);
    const refused = await feed(big);
    expect(refused.error?.message).toMatch(/exceeds the limit of 64 before authentication/);
    expect(refused.out.length).toBeLessThanOrEqual(HEADER_AMQP.length + 8);
    expect((await feed(big, undefined, HEADER_AMQP.length)).error).toBeUndefined();
    expect((await feed(Buffer.concat([HEADER_AMQP, frame(2000)]), undefined, 0)).error?.message).toMatch(/exceeds the limit of 1024/);
  });

  it('refuses garbage: other protocols, impossible sizes and data offsets', async () => {
    expect((await feed(Buffer.from('GET / HTTP/1.1\r\n\r\n'))).error).toBeDefined();
    expect((await feed(Buffer.from([0x41, 0x4d, 0x51, 0x50, 9, 1, 0, 0]))).error?.message).toMatch(/protocol header/);
    expect((await feed(Buffer.concat([HEADER_AMQP, Buffer.from([0, 0, 0, 4, 2, 0, 0, 0])]))).error?.message).toMatch(/frame size/);
    expect((await feed(Buffer.concat([HEADER_AMQP, Buffer.from([0, 0, 0, 16, 9, 0, 0, 0]), Buffer.alloc(8)]))).error?.message).toMatch(/frame header/);
  });
});
