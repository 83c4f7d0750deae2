import { createServer } from 'node:net';

type Bind = 'free' | 'busy' | 'denied';

function tryBind(host: string, port: number): Promise<Bind> {
  return new Promise((resolve) => {
    const s = createServer();
    s.once('error', (e: NodeJS.ErrnoException) => resolve(e.code === 'EACCES' ? 'denied' : 'busy'));
    s.listen({ host, port, exclusive: true }, () => s.close(() => resolve('free')));
  });
}

/** Where a caller's addresses come from: 127.0.{firstOctet}.2 … 127.0.{firstOctet + blocks − 1}.251. */
export interface LoopbackRange {
  /** The third octet of the first block (each block holds 250 addresses). */
  readonly firstOctet: number;
  /** How many blocks of 250 (default 4). */
  readonly blocks?: number;
  /** Addresses not to return (another server of the same test). */
  readonly avoid?: readonly string[];
}

/**
 * A loopback address where every port of `ports` is free. Microsoft's SDKs dial fixed ports (azure-iothub: 443 of
 * `HostName`; the device SDKs: 8883 and 443 of `GatewayHostName`), so each server under test gets an address of its
 * own; the random start keeps concurrent test files apart, and each package's tests use their own range.
 * A privileged port refused for want of rights fails at once with what to do, rather than after every address.
 */
export async function freeLoopbackAddress(ports: readonly number[], range: LoopbackRange): Promise<string> {
  const size = 250 * (range.blocks ?? 4);
  const start = Math.floor(Math.random() * size);
  for (let i = 0; i < size; i++) {
    const n = (start + i) % size;
    const host = `127.0.${range.firstOctet + Math.floor(n / 250)}.${(n % 250) + 2}`;
    if (range.avoid?.includes(host)) continue;
    const binds = await Promise.all(ports.map((p) => tryBind(host, p)));
    const denied = ports.filter((_, k) => binds[k] === 'denied');
    if (denied.length > 0) {
      throw new Error(
        `This test needs port ${denied.join(', ')} on loopback (Microsoft's SDKs dial fixed ports) and this user may not bind it: ` +
          'run it as root, or allow unprivileged ports: sudo sysctl net.ipv4.ip_unprivileged_port_start=443',
      );
    }
    if (binds.every((b) => b === 'free')) return host;
  }
  throw new Error(`No loopback address of 127.0.${range.firstOctet}.x has ports ${ports.join(', ')} free`);
}
