import type { Logger } from '../log.js';
import type { Store } from '../storage/store.js';
import type { Bus } from './bus.js';

/**
 * Wraps `store` so that every committed identity write (create, update, delete of a device or module, bulk ones
 * included) is announced on the bus as an `identity` event, which every replica's MQTT endpoint receives and uses
 * to re-check the sessions resting on that identity. Wrapping the store, not the routes, means no write path can
 * forget to announce. A failed announcement is logged and does not fail the committed write.
 */
export function announcingIdentityChanges(store: Store, bus: Bus, log: Logger): Store {
  const announce = async <T>(write: Promise<T>, deviceId: string, moduleId: string): Promise<T> => {
    const result = await write;
    await bus.publish({ type: 'identity', deviceId, moduleId }).catch((e: unknown) => log.warn({ err: e, deviceId, moduleId }, 'Failed to announce an identity change'));
    return result;
  };
  const overrides: Partial<Store> = {
    createDevice: (device, twin) => announce(store.createDevice(device, twin), device.deviceId, ''),
    updateDevice: (device, etag) => announce(store.updateDevice(device, etag), device.deviceId, ''),
    deleteDevice: (deviceId, etag) => announce(store.deleteDevice(deviceId, etag), deviceId, ''),
    createModule: (module, twin) => announce(store.createModule(module, twin), module.deviceId, module.moduleId),
    updateModule: (module, etag) => announce(store.updateModule(module, etag), module.deviceId, module.moduleId),
    deleteModule: (deviceId, moduleId, etag) => announce(store.deleteModule(deviceId, moduleId, etag), deviceId, moduleId),
  };
  // A Proxy rather than a delegating class: the wrapper keeps up with every Store method added later, and the
  // target's own methods run bound to the target (its private fields are not reachable through the proxy).
  return new Proxy(store, {
    get(target, prop) {
      if (typeof prop === 'string' && Object.hasOwn(overrides, prop)) return overrides[prop as keyof Store];
      const v: unknown = Reflect.get(target, prop, target);
      return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v;
    },
  });
}
