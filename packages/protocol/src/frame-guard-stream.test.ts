/**
 * `FrameGuard` as a stream over a real loopback TCP connection: the end, errors and close of the socket under it
 * reach the guard, the guard's own end reaches the socket, back-pressure pauses the socket and resumes it, and a
 * packet body split across reads is counted exactly.
 */
import { once } from 'node:events';
import { createServer, connect, type Server, type Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { FrameGuard } from './frame-guard.js';

const limits = { maxConnectBytes: 4 * 1024 * 1024, maxPacketBytes: 4 * 1024 * 1024 };

/** Fixed header + body of `length` bytes of `fill`. */
function packet(type: number, length: number, fill = 0x61): Buffer {
  const len: number[] = [];
  let n = length;
  do {
    let b = n % 128;
    n = Math.floor(n / 128);
    if (n > 0) b |= 0x80;
    len.push(b);
  } while (n > 0);
  return Buffer.concat([Buffer.from([type << 4, ...len]), Buffer.alloc(length, fill)]);
}

async function until(cond: () => boolean, what: string): Promise<void> {
  const deadline = Date.now() + 20_000;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise<void>((resolve) => setTimeout(resolve, 5));
  }
}

let server: Server | undefined;
const sockets: Socket[] = [];
afterEach(async () => {
  for (const s of sockets.splice(0)) s.destroy();
  if (server) await new Promise<void>((resolve) => server?.close(() => resolve()));
  server = undefined;
});

/**
 * A loopback connection: `client` (the device side) and `inner` (the accepted socket, half-open allowed so that
 * only the guard decides when it ends) with `guard` over it.
 */
async function connection(): Promise<{ client: Socket; inner: Socket; guard: FrameGuard }> {
  const accepted = new Promise<Socket>((resolve) => {
    server = createServer({ allowHalfOpen: true }, resolve);
  });
  const srv = server as unknown as Server;
  srv.listen(0, '127.0.0.1');
  await once(srv, 'listening');
  const { port } = srv.address() as { port: number };
  const client = connect({ host: '127.0.0.1', port, allowHalfOpen: true });
  const inner = await accepted;
  sockets.push(client, inner);
  return { client, inner, guard: new FrameGuard(inner, limits) };
}

describe('FrameGuard over a socket', () => {
  it('a body split across reads is counted exactly: the next packet is read as a packet', async () => {
    const { client, guard } = await connection();
    const out: Buffer[] = [];
    guard.on('data', (c: Buffer) => out.push(c));
    let error: Error | undefined;
    guard.on('error', (e: Error) => (error = e));
    const connectPacket = packet(1, 10);
    // Header and 3 body bytes, then 7 body bytes that would read as a malformed header if miscounted.
    client.write(connectPacket.subarray(0, 5));
    await until(() => Buffer.concat(out).length === 5, 'the first piece');
    client.write(Buffer.alloc(7, 0xff));
    await until(() => Buffer.concat(out).length === 12, 'the rest of the body');
    const ping = Buffer.from([0xc0, 0x00]);
    client.write(ping);
    await until(() => Buffer.concat(out).length === 14, 'PINGREQ');
    expect(Buffer.concat(out)).toEqual(Buffer.concat([connectPacket.subarray(0, 5), Buffer.alloc(7, 0xff), ping]));
    expect(error).toBeUndefined();
    expect(guard.destroyed).toBe(false);
  });

  it('the client ending its side ends the guard, and the guard (not half-open) ends the socket back', async () => {
    const { client, guard } = await connection();
    guard.resume();
    let guardEnded = false;
    guard.on('end', () => (guardEnded = true));
    let clientGotEnd = false;
    client.on('end', () => (clientGotEnd = true));
    client.resume();
    client.end(packet(1, 3));
    await until(() => guardEnded, 'the guard to end');
    await until(() => clientGotEnd, 'the socket to be ended back');
  });

  it('ending the guard ends the socket under it', async () => {
    const { client, inner, guard } = await connection();
    let clientGotEnd = false;
    client.on('end', () => (clientGotEnd = true));
    client.resume();
    guard.end(Buffer.from('bye'));
    await until(() => clientGotEnd, 'the client to see the end');
    expect(inner.writableEnded).toBe(true);
  });

  it('an error on the socket destroys the guard with that error', async () => {
    const { inner, guard } = await connection();
    const boom = new Error('boom');
    const got = new Promise<Error>((resolve) => guard.once('error', resolve));
    inner.destroy(boom);
    expect(await got).toBe(boom);
    expect(guard.destroyed).toBe(true);
  });

  it('the socket closing destroys the guard', async () => {
    const { inner, guard } = await connection();
    let closed = false;
    guard.on('close', () => (closed = true));
    guard.on('error', () => undefined);
    inner.destroy();
    await until(() => closed, 'the guard to close');
    expect(guard.destroyed).toBe(true);
  });

  it('destroying the guard destroys the socket', async () => {
    const { client, inner, guard } = await connection();
    let clientGotEnd = false;
    client.on('end', () => (clientGotEnd = true));
    client.on('error', () => undefined);
    client.resume();
    guard.destroy();
    await until(() => inner.destroyed && clientGotEnd, 'the socket to be destroyed');
  });

  it('pauses the socket while nobody reads the guard, and resumes it when they do: every byte arrives', async () => {
    const { client, inner, guard } = await connection();
    const big = packet(1, 2 * 1024 * 1024);
    client.write(big);
    // Nobody reads: the guard's buffer fills and it pauses the socket instead of buffering 2 MB.
    await until(() => inner.isPaused(), 'the socket to be paused');
    expect(guard.readableLength).toBeLessThan(big.length);
    const out: Buffer[] = [];
    let n = 0;
    guard.on('data', (c: Buffer) => {
      out.push(c);
      n += c.length;
    });
    await until(() => n === big.length, 'every byte');
    expect(Buffer.concat(out).equals(big)).toBe(true);
  });
});
