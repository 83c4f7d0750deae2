import type { DeviceRecord, ModuleRecord, Store } from '../storage/store.js';

/** True when `device` is a child of edge device `edge`: its `parentScopes` holds the edge's `deviceScope`. */
export const isChildOf = (device: DeviceRecord, edge: DeviceRecord): boolean => edge.iotEdge && edge.deviceScope !== '' && device.parentScopes.includes(edge.deviceScope);

/** One page of an edge device's scope: devices (the edge first), the edge's modules on the first page. */
export interface ScopePage {
  readonly devices: readonly DeviceRecord[];
  readonly modules: readonly ModuleRecord[];
  /** deviceId to continue after, when there may be more. */
  readonly next?: string;
}

const SCAN = 1000;

/**
 * The identities an edge hub may serve: the edge device itself, its modules and its child devices (devices whose
 * `parentScopes` holds the edge's `deviceScope`), in deviceId order after the edge, `count` devices per page.
 * `after` is the last child returned by the previous page (`undefined`: first page, with the edge and its modules).
 */
export async function scopePage(store: Store, edge: DeviceRecord, count: number, after: string | undefined): Promise<ScopePage> {
  const devices: DeviceRecord[] = [];
  let modules: ModuleRecord[] = [];
  if (after === undefined) {
    devices.push(edge);
    modules = await store.listModules(edge.deviceId);
  }
  // Children are found by scanning the registry in id order (no index on parent scopes yet).
  let cursor = after;
  for (;;) {
    const batch = await store.listDevices({ limit: SCAN, ...(cursor === undefined ? {} : { after: cursor }) });
    for (const d of batch) {
      if (d.deviceId === edge.deviceId || !isChildOf(d, edge)) continue;
      devices.push(d);
      if (devices.length >= count) return { devices, modules, next: d.deviceId };
    }
    const last = batch[batch.length - 1];
    if (batch.length < SCAN || !last) return { devices, modules };
    cursor = last.deviceId;
  }
}

/**
 * One identity of the edge's scope (`deviceAndModuleInDeviceScope`): the target device when it is the edge or one
 * of its children, and, for the edge, the target module. Empty when the target is not in scope.
 */
export async function scopeTarget(store: Store, edge: DeviceRecord, deviceId: string, moduleId: string): Promise<{ devices: DeviceRecord[]; modules: ModuleRecord[] }> {
  const device = deviceId === edge.deviceId ? edge : await store.getDevice(deviceId);
  if (!device || (device !== edge && !isChildOf(device, edge))) return { devices: [], modules: [] };
  if (moduleId === '') return { devices: [device], modules: [] };
  const module = device === edge ? await store.getModule(deviceId, moduleId) : undefined;
  return { devices: [device], modules: module ? [module] : [] };
}
