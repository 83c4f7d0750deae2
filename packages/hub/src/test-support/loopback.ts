import { createServer } from 'node:net';

function canBind(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = createServer();
    s.once('error', () => resolve(false));
    s.listen({ host, port, exclusive: true }, () => s.close(() => resolve(true)));
  });
}

/**
 * Finds a loopback address (127.0.41.x–127.0.44.x) where every port in `ports` is free. azure-iothub always calls
 * port 443 of the connection string's HostName, so each hub under test gets an address of its own; the random
 * start keeps concurrent test files (and other packages' tests) apart.
 */
export async function freeLoopbackAddress(ports: readonly number[] = [443, 8883]): Promise<string> {
  const start = Math.floor(Math.random() * 1000);
  for (let i = 0; i < 1000; i++) {
    const n = (start + i) % 1000;
    const host = `127.0.${41 + Math.floor(n / 250)}.${(n % 250) + 2}`;
    const free = await Promise.all(ports.map((p) => canBind(host, p)));
    if (free.every(Boolean)) return host;
  }
  throw new Error('No free loopback address for the hub under test');
}
