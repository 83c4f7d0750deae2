import { generateKey } from '@kedge/protocol';

/** Rights of a shared access policy, as IoT Hub names them. */
export const Right = {
  RegistryRead: 'RegistryRead',
  RegistryWrite: 'RegistryWrite',
  ServiceConnect: 'ServiceConnect',
  DeviceConnect: 'DeviceConnect',
} as const;
export type Right = (typeof Right)[keyof typeof Right];

/** A hub-level shared access policy (`iothubowner`-style). Keys are secrets: never log them. */
export interface AccessPolicy {
  readonly name: string;
  readonly primaryKey: string;
  readonly secondaryKey: string;
  readonly rights: readonly Right[];
}

/** The policies IoT Hub creates for a new hub; Kedge creates the same ones, with fresh keys, on first start. */
export function defaultPolicies(): AccessPolicy[] {
  const p = (name: string, rights: Right[]): AccessPolicy => ({ name, primaryKey: generateKey(), secondaryKey: generateKey(), rights });
  return [
    p('iothubowner', [Right.RegistryRead, Right.RegistryWrite, Right.ServiceConnect, Right.DeviceConnect]),
    p('service', [Right.ServiceConnect]),
    p('device', [Right.DeviceConnect]),
    p('registryRead', [Right.RegistryRead]),
    p('registryReadWrite', [Right.RegistryRead, Right.RegistryWrite]),
  ];
}

/** True when `have` includes `need`; RegistryWrite implies RegistryRead as in IoT Hub. */
export function grants(have: readonly Right[], need: Right): boolean {
  return have.includes(need) || (need === Right.RegistryRead && have.includes(Right.RegistryWrite));
}
