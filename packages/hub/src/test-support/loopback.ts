import { freeLoopbackAddress as free } from '@kedge/testing';

/**
 * A loopback address of 127.0.41.x–127.0.44.x where every port in `ports` is free (the hub's tests' range):
 * azure-iothub always calls port 443 of the connection string's HostName, so each hub under test gets its own.
 */
export function freeLoopbackAddress(ports: readonly number[] = [443, 8883]): Promise<string> {
  return free(ports, { firstOctet: 41 });
}
