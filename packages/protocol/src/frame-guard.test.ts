import { Duplex } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { FrameGuard } from './frame-guard.js';

/** A socket stand-in whose writes complete only when the test says so (a socket whose kernel buffer is busy). */
class SlowSocket extends Duplex {
  readonly chunks: Buffer[] = [];
  readonly held: Array<() => void> = [];
  override _read(): void {}
  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (e?: Error | null) => void): void {
    this.chunks.push(chunk);
    this.held.push(() => cb());
  }
  release(): void {
    for (const f of this.held.splice(0)) f();
  }
}

const limits = { maxConnectBytes: 1024, maxPacketBytes: 4096 };

describe('FrameGuard writes', () => {
  it('sends the pieces of a corked packet as one write', async () => {
    const socket = new SlowSocket();
    const guard = new FrameGuard(socket, limits);
    // mqtt-packet's writeToStream: cork, write header, topic and payload, uncork on the next tick.
    guard.cork();
    guard.write(Buffer.from([0x30, 0x05]));
    guard.write(Buffer.from('ab'));
    guard.write(Buffer.from('cde'));
    await new Promise<void>((resolve) => process.nextTick(() => (guard.uncork(), resolve())));
    await new Promise((r) => setImmediate(r));
    expect(socket.chunks.map((c) => c.toString('latin1'))).toEqual(['\u0030\u0005abcde']);
  });

  it('completes writes while the socket has room, without waiting for each one to reach it', async () => {
    const socket = new SlowSocket();
    const guard = new FrameGuard(socket, limits);
    const done: string[] = [];
    guard.write(Buffer.from('one'), () => done.push('one'));
    guard.write(Buffer.from('two'), () => done.push('two'));
    await new Promise((r) => setImmediate(r));
    // The socket has not completed its first write, yet both packets were handed to it.
    expect(socket.held.length).toBeGreaterThan(0);
    expect(done).toEqual(['one', 'two']);
    expect(socket.chunks.map(String)).toEqual(['one']);
    expect(socket.writableLength).toBe(6); // 'one' in progress, 'two' queued in the socket
    socket.release();
  });

  it('waits for the socket to drain when it pushes back', async () => {
    const socket = new SlowSocket({ writableHighWaterMark: 4 });
    const guard = new FrameGuard(socket, limits);
    const done: string[] = [];
    guard.write(Buffer.from('12345678'), () => done.push('big'));
    await new Promise((r) => setImmediate(r));
    expect(done).toEqual([]);
    socket.release();
    await new Promise((r) => setImmediate(r));
    expect(done).toEqual(['big']);
  });
});
