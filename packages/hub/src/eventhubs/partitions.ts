/**
 * The partition a device's telemetry goes to: FNV-1a (32 bit) of the device id's UTF-8 bytes, modulo the count.
 * Stable across restarts, replicas and releases (a changed hash would move devices between partitions and break
 * per-device order for readers): the test pins its values.
 */
export function partitionOf(deviceId: string, partitionCount: number): number {
  let h = 0x811c9dc5;
  for (const byte of Buffer.from(deviceId, 'utf8')) {
    h ^= byte;
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h % partitionCount;
}
