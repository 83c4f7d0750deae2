import { describe, expect, it } from 'vitest';
import { isValidKey } from '@kedge/protocol';
import { Right, defaultPolicies, grants } from './policies.js';

describe('defaultPolicies', () => {
  it('creates the five IoT Hub policies with exactly their rights', () => {
    const rights = Object.fromEntries(defaultPolicies().map((p) => [p.name, [...p.rights]]));
    expect(rights).toEqual({
      iothubowner: ['RegistryRead', 'RegistryWrite', 'ServiceConnect', 'DeviceConnect'],
      service: ['ServiceConnect'],
      device: ['DeviceConnect'],
      registryRead: ['RegistryRead'],
      registryReadWrite: ['RegistryRead', 'RegistryWrite'],
    });
  });

  it('gives every policy two fresh, valid, distinct keys', () => {
    const a = defaultPolicies();
    const b = defaultPolicies();
    const keys = [...a, ...b].flatMap((p) => [p.primaryKey, p.secondaryKey]);
    for (const k of keys) expect(isValidKey(k)).toBe(true);
    expect(new Set(keys).size).toBe(keys.length);
  });
});

describe('grants', () => {
  const all = Object.values(Right);

  it('grants each right a policy holds and refuses each it lacks', () => {
    for (const need of all) {
      expect(grants([need], need)).toBe(true);
      for (const other of all) {
        if (other === need || (need === Right.RegistryRead && other === Right.RegistryWrite)) continue;
        expect(grants([other], need), `${other} must not grant ${need}`).toBe(false);
      }
    }
  });

  it('lets RegistryWrite imply RegistryRead, and nothing else', () => {
    expect(grants([Right.RegistryWrite], Right.RegistryRead)).toBe(true);
    expect(grants([Right.RegistryRead], Right.RegistryWrite)).toBe(false);
    expect(grants([Right.RegistryWrite], Right.ServiceConnect)).toBe(false);
    expect(grants([Right.RegistryWrite], Right.DeviceConnect)).toBe(false);
  });

  it('grants nothing to a policy without rights', () => {
    for (const need of all) expect(grants([], need)).toBe(false);
  });
});
