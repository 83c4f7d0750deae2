/**
 * The twin rules of {@link Twins} on the real SQLite store (in memory) and the in-process bus: what each write
 * changes, what it refuses (with which code, changing nothing), who is told, and the JSON shape IoT Hub returns.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { BusEvent } from '../cluster/bus.js';
import { LocalBus } from '../cluster/bus.js';
import { isHubError } from '../errors.js';
import { etagOf } from '../registry/ids.js';
import { newTwin } from '../registry/registry.js';
import { openSqliteStore } from '../storage/sqlite.js';
import { device } from '../storage/store.contract.js';
import type { KyselyStore } from '../storage/kysely-store.js';
import type { TwinChange } from './twins.js';
import { Twins } from './twins.js';

const CREATED = '2026-01-01T00:00:00.000Z';
const NOW = new Date('2026-02-03T04:05:06.000Z');

async function codeOf(p: Promise<unknown>): Promise<string | undefined> {
  try {
    await p;
    return undefined;
  } catch (e) {
    if (isHubError(e)) return e.code;
    throw e;
  }
}
const settle = (): Promise<void> => new Promise((r) => setImmediate(r));

describe('Twins', () => {
  let store: KyselyStore;
  let bus: LocalBus;
  let twins: Twins;
  let events: BusEvent[];
  let changes: TwinChange[];

  beforeEach(async () => {
    store = await openSqliteStore({ path: ':memory:' });
    bus = new LocalBus();
    twins = new Twins({ store, bus, now: () => NOW });
    events = [];
    changes = [];
    bus.subscribe((e) => events.push(e));
    twins.onChange((c) => changes.push(c));
    await store.createDevice(device('d1'), newTwin('d1', '', CREATED));
    await store.createModule(
      { deviceId: 'd1', moduleId: 'm1', generationId: '1', etagVersion: 1, auth: device('d1').auth, managedBy: '', createdTime: CREATED },
      newTwin('d1', 'm1', CREATED),
    );
  });
  afterEach(async () => {
    await bus.close();
    await store.close();
  });

  /** The stored twin, and that nothing was published or announced since `before`. */
  const unchanged = async (deviceId: string, moduleId: string, version: number): Promise<void> => {
    await settle();
    expect((await twins.get(deviceId, moduleId)).version).toBe(version);
    expect(events).toEqual([]);
    expect(changes).toEqual([]);
  };

  describe('get', () => {
    it('returns the stored twin; an unknown device or module is not found, with its own code', async () => {
      expect((await twins.get('d1', '')).deviceId).toBe('d1');
      expect((await twins.get('d1', 'm1')).moduleId).toBe('m1');
      expect(await codeOf(twins.get('nope', ''))).toBe('CLOUD_ERR_DEVICE_NOT_FOUND');
      expect(await codeOf(twins.get('d1', 'nope'))).toBe('CLOUD_ERR_MODULE_NOT_FOUND');
      expect(await codeOf(twins.patch('nope', '', { tags: { a: 1 } }, undefined))).toBe('CLOUD_ERR_DEVICE_NOT_FOUND');
      expect(await codeOf(twins.patchReported('d1', 'nope', { a: 1 }))).toBe('CLOUD_ERR_MODULE_NOT_FOUND');
    });
  });

  describe('toJson', () => {
    it('a device twin without a device record or presence: IoT Hub defaults, capabilities, no moduleId or configurations', async () => {
      const t = await twins.get('d1', '');
      expect(twins.toJson(t, undefined, undefined)).toEqual({
        deviceId: 'd1',
        etag: etagOf(1),
        deviceEtag: etagOf(0),
        status: 'enabled',
        statusUpdateTime: '0001-01-01T00:00:00Z',
        connectionState: 'Disconnected',
        lastActivityTime: '0001-01-01T00:00:00Z',
        cloudToDeviceMessageCount: 0,
        authenticationType: 'sas',
        x509Thumbprint: { primaryThumbprint: null, secondaryThumbprint: null },
        modelId: '',
        version: 1,
        tags: {},
        properties: { desired: t.desired, reported: t.reported },
        capabilities: { iotEdge: false },
      });
    });

    it('a module twin of a disabled edge device, connected, with configurations', async () => {
      await twins.setConfigurations('d1', 'm1', { c1: { status: 'Applied' } });
      const t = await twins.get('d1', 'm1');
      const d = device('d1', { etagVersion: 7, status: 'disabled', statusUpdatedTime: '2026-01-05T00:00:00.000Z', iotEdge: true });
      const j = twins.toJson(t, d, { deviceId: 'd1', moduleId: 'm1', replicaId: 'r', connectedAt: Date.parse('2026-01-06T00:00:00.000Z') });
      expect(j).toMatchObject({
        deviceId: 'd1',
        moduleId: 'm1',
        etag: etagOf(2),
        deviceEtag: etagOf(7),
        status: 'disabled',
        statusUpdateTime: '2026-01-05T00:00:00.000Z',
        connectionState: 'Connected',
        lastActivityTime: '2026-01-06T00:00:00.000Z',
        version: 2,
        configurations: { c1: { status: 'Applied' } },
      });
      expect(j['capabilities']).toBeUndefined();
      // A device twin's capabilities follow the device record.
      expect(twins.toJson(await twins.get('d1', ''), d, undefined)['capabilities']).toEqual({ iotEdge: true });
    });
  });

  describe('patch (service)', () => {
    it('merges desired properties, stamps them, bumps the version and tells the bus and the listeners', async () => {
      const t = await twins.patch('d1', '', { properties: { desired: { a: 1, b: { c: 2 } } } }, undefined);
      expect(t.version).toBe(2);
      expect(t.desired.$version).toBe(2);
      expect(t.desired).toMatchObject({ a: 1, b: { c: 2 } });
      expect(t.desired.$metadata).toMatchObject({ $lastUpdated: NOW.toISOString(), $lastUpdatedVersion: 2, a: { $lastUpdated: NOW.toISOString() } });
      await settle();
      expect(events).toEqual([{ type: 'desired', deviceId: 'd1', moduleId: '', patch: { a: 1, b: { c: 2 }, $version: 2 } }]);
      expect(changes).toEqual([{ deviceId: 'd1', moduleId: '', tags: false, desired: true, reported: false }]);
      // `null` deletes; the bus is sent only the change.
      const t2 = await twins.patch('d1', '', { properties: { desired: { a: null } } }, undefined);
      expect(t2.desired['a']).toBeUndefined();
      expect(t2.desired['b']).toEqual({ c: 2 });
      await settle();
      expect(events[1]).toEqual({ type: 'desired', deviceId: 'd1', moduleId: '', patch: { a: null, $version: 3 } });
    });

    it('merges tags without touching desired: a tags change, nothing on the bus', async () => {
      await twins.patch('d1', 'm1', { tags: { site: 'a', x: 1 } }, undefined);
      const t = await twins.patch('d1', 'm1', { tags: { x: null, y: { z: 1 } } }, undefined);
      expect(t.tags).toEqual({ site: 'a', y: { z: 1 } });
      expect(t.desired.$version).toBe(1);
      await settle();
      expect(events).toEqual([]);
      expect(changes).toEqual([
        { deviceId: 'd1', moduleId: 'm1', tags: true, desired: false, reported: false },
        { deviceId: 'd1', moduleId: 'm1', tags: true, desired: false, reported: false },
      ]);
    });

    it('a patch that changes nothing writes nothing: no version bump, no notification', async () => {
      for (const body of [{}, { tags: null }, { properties: null }, { properties: {} }, { properties: { desired: {} } }, { properties: { desired: { $version: 9 } } }])
        await twins.patch('d1', '', body, undefined);
      await unchanged('d1', '', 1);
    });

    it('refuses what IoT Hub refuses, with CLOUD_ERR_BAD_REQUEST, and changes nothing', async () => {
      const bad: unknown[] = [
        null,
        [],
        'x',
        { properties: 5 },
        { properties: [] },
        { properties: { reported: { a: 1 } } },
        { properties: { desired: 5 } },
        { properties: { desired: { 'a.b': 1 } } },
        { tags: 'x' },
        { tags: { 'a b': 1 } },
        { tags: { ok: 1 }, properties: { desired: { $bad: 1 } } },
      ];
      for (const body of bad) expect(await codeOf(twins.patch('d1', '', body, undefined)), JSON.stringify(body)).toBe('CLOUD_ERR_BAD_REQUEST');
      await unchanged('d1', '', 1);
    });

    it('says what is wrong with the body', async () => {
      await expect(twins.patch('d1', '', 'x', undefined)).rejects.toThrow('Twin patch must be a JSON object');
      await expect(twins.patch('d1', '', { properties: 5 }, undefined)).rejects.toThrow('properties must be an object');
      await expect(twins.patch('d1', '', { properties: { reported: {} } }, undefined)).rejects.toThrow('Reported properties are read-only for the service');
      await expect(twins.get('nope', '')).rejects.toThrow('Device nope not found');
      await expect(twins.get('d1', 'nope')).rejects.toThrow('Module twin d1/nope not found');
    });

    it('names the bad path in the refusal', async () => {
      await expect(twins.patch('d1', '', { tags: { a: { 'b.c': 1 } } }, undefined)).rejects.toThrow(/^tags\.a\.b\.c: /);
      await expect(twins.patch('d1', '', { properties: { desired: { 'b c': 1 } } }, undefined)).rejects.toThrow(/^properties\.desired\.b c: /);
    });

    it('honours an ETag precondition: the current version writes, another is CLOUD_ERR_PRECONDITION_FAILED and writes nothing', async () => {
      expect(await codeOf(twins.patch('d1', '', { tags: { a: 1 } }, 2))).toBe('CLOUD_ERR_PRECONDITION_FAILED');
      expect(await codeOf(twins.patch('d1', '', { tags: { a: 1 } }, -1))).toBe('CLOUD_ERR_PRECONDITION_FAILED');
      await unchanged('d1', '', 1);
      expect((await twins.patch('d1', '', { tags: { a: 1 } }, 1)).version).toBe(2);
      expect(await codeOf(twins.replace('d1', '', { tags: {} }, 1))).toBe('CLOUD_ERR_PRECONDITION_FAILED');
      expect((await twins.get('d1', '')).tags).toEqual({ a: 1 });
      await expect(twins.patch('d1', '', { tags: { a: 1 } }, 9)).rejects.toThrow('Twin d1 ETag does not match');
      await expect(twins.patch('d1', 'm1', { tags: { a: 1 } }, 9)).rejects.toThrow('Twin d1/m1 ETag does not match');
    });
  });

  describe('size limits', () => {
    // {"a":"xxx…"} is 8 bytes plus the string.
    const sized = (bytes: number) => ({ a: 'x'.repeat(bytes - 8) });

    it('tags up to 8 KB, desired up to 32 KB; a byte more is CLOUD_ERR_TWIN_TOO_LARGE and changes nothing', async () => {
      expect(await codeOf(twins.patch('d1', '', { tags: sized(8 * 1024 + 1) }, undefined))).toBe('CLOUD_ERR_TWIN_TOO_LARGE');
      expect(await codeOf(twins.patch('d1', '', { properties: { desired: sized(32 * 1024 + 1) } }, undefined))).toBe('CLOUD_ERR_TWIN_TOO_LARGE');
      await unchanged('d1', '', 1);
      expect((await twins.patch('d1', '', { tags: sized(8 * 1024) }, undefined)).version).toBe(2);
      expect((await twins.patch('d1', '', { properties: { desired: sized(32 * 1024) } }, undefined)).version).toBe(3);
    });

    it('reported up to 32 KB; a byte more is CLOUD_ERR_TWIN_TOO_LARGE', async () => {
      expect(await codeOf(twins.patchReported('d1', '', sized(32 * 1024 + 1)))).toBe('CLOUD_ERR_TWIN_TOO_LARGE');
      await unchanged('d1', '', 1);
      expect(await twins.patchReported('d1', '', sized(32 * 1024))).toBe(2);
    });

    it('says which part is too large', async () => {
      await expect(twins.patch('d1', '', { tags: sized(8 * 1024 + 1) }, undefined)).rejects.toThrow('Twin tags are 8193 bytes; the limit is 8192');
      await expect(twins.replaceDesired('d1', '', sized(32 * 1024 + 1))).rejects.toThrow('Desired properties are 32769 bytes; the limit is 32768');
      await expect(twins.patchReported('d1', '', sized(32 * 1024 + 1))).rejects.toThrow('Reported properties are 32769 bytes; the limit is 32768');
    });
  });

  describe('replace (service PUT)', () => {
    it('replaces tags and desired: what is left out goes, and the bus is sent nulls for it', async () => {
      await twins.patch('d1', '', { tags: { old: 1 }, properties: { desired: { a: 1, b: 2 } } }, undefined);
      const t = await twins.replace('d1', '', { tags: { new: 1 }, properties: { desired: { b: 3 } } }, undefined);
      expect(t.tags).toEqual({ new: 1 });
      expect(t.desired['a']).toBeUndefined();
      expect(t.desired['b']).toBe(3);
      expect(t.desired.$version).toBe(3);
      expect(t.desired.$metadata).toMatchObject({ $lastUpdated: NOW.toISOString(), b: { $lastUpdated: NOW.toISOString(), $lastUpdatedVersion: 3 } });
      await settle();
      expect(events.at(-1)).toEqual({ type: 'desired', deviceId: 'd1', moduleId: '', patch: { a: null, b: 3, $version: 3 } });
      expect(changes.at(-1)).toEqual({ deviceId: 'd1', moduleId: '', tags: true, desired: true, reported: false });
    });

    it('a body without tags or properties empties them; properties that are not an object count as none', async () => {
      await twins.patch('d1', '', { tags: { old: 1 }, properties: { desired: { a: 1 } } }, undefined);
      const t = await twins.replace('d1', '', { properties: 'x' }, undefined);
      expect(t.tags).toEqual({});
      expect(t.desired['a']).toBeUndefined();
      const t2 = await twins.replace('d1', '', { tags: { k: 1 } }, undefined);
      expect(t2.tags).toEqual({ k: 1 });
    });

    it('names the bad part: the body, tags or properties.desired', async () => {
      await expect(twins.replace('d1', '', 'x', undefined)).rejects.toThrow('Twin must be a JSON object');
      await expect(twins.replace('d1', '', { tags: { 'a.b': 1 } }, undefined)).rejects.toThrow(/^tags\.a\.b: /);
      await expect(twins.replace('d1', '', { properties: { desired: { 'a.b': 1 } } }, undefined)).rejects.toThrow(/^properties\.desired\.a\.b: /);
      await expect(twins.replace('d1', '', { tags: 5 }, undefined)).rejects.toThrow(/^tags: must be a JSON object/);
    });

    it('refuses a body that is not an object, or bad keys, with CLOUD_ERR_BAD_REQUEST', async () => {
      for (const body of [null, [], 1, { tags: 'x' }, { tags: { 'a.b': 1 } }, { properties: { desired: { 'a$': 1 } } }])
        expect(await codeOf(twins.replace('d1', '', body, undefined)), JSON.stringify(body)).toBe('CLOUD_ERR_BAD_REQUEST');
      await unchanged('d1', '', 1);
    });
  });

  describe('patchReported (device)', () => {
    it('merges, returns the new $version, announces a reported change and publishes nothing', async () => {
      expect(await twins.patchReported('d1', 'm1', { a: 1 })).toBe(2);
      expect(await twins.patchReported('d1', 'm1', { b: 2, a: null })).toBe(3);
      const t = await twins.get('d1', 'm1');
      expect(t.reported).toMatchObject({ b: 2 });
      expect(t.reported['a']).toBeUndefined();
      expect(t.reported.$metadata).toMatchObject({ $lastUpdated: NOW.toISOString(), b: { $lastUpdated: NOW.toISOString() } });
      expect((t.reported.$metadata as Record<string, unknown>)['$lastUpdatedVersion']).toBeUndefined();
      await settle();
      expect(events).toEqual([]);
      expect(changes).toEqual([
        { deviceId: 'd1', moduleId: 'm1', tags: false, desired: false, reported: true },
        { deviceId: 'd1', moduleId: 'm1', tags: false, desired: false, reported: true },
      ]);
    });

    it('refuses a patch that is not an object or has bad keys', async () => {
      for (const body of [null, [1], 'x', { 'a.b': 1 }, { a: { $b: 1 } }]) expect(await codeOf(twins.patchReported('d1', '', body))).toBe('CLOUD_ERR_BAD_REQUEST');
      await expect(twins.patchReported('d1', '', { 'a b': 1 })).rejects.toThrow(/^properties\.reported\.a b: /);
      await unchanged('d1', '', 1);
    });
  });

  describe('replaceDesired (deployments)', () => {
    it('writes and publishes only when the user part changes; an array change of the same length is a change', async () => {
      const t = await twins.replaceDesired('d1', 'm1', { a: [1], b: 'x' });
      expect(t.version).toBe(2);
      expect(await twins.replaceDesired('d1', 'm1', { b: 'x', a: [1] })).toMatchObject({ version: 2 });
      const t3 = await twins.replaceDesired('d1', 'm1', { a: [2], b: 'x' });
      expect(t3.version).toBe(3);
      expect(t3.desired['a']).toEqual([2]);
      await settle();
      expect(events).toEqual([
        { type: 'desired', deviceId: 'd1', moduleId: 'm1', patch: { a: [1], b: 'x', $version: 2 } },
        { type: 'desired', deviceId: 'd1', moduleId: 'm1', patch: { a: [2], $version: 3 } },
      ]);
      expect(changes).toHaveLength(2);
    });

    it('stamps the new desired document as desired ($lastUpdatedVersion on every node)', async () => {
      const t = await twins.replaceDesired('d1', 'm1', { a: 1, b: { c: 2 } });
      expect(t.desired.$metadata).toMatchObject({ $lastUpdated: NOW.toISOString(), $lastUpdatedVersion: 2, a: { $lastUpdatedVersion: 2 }, b: { $lastUpdatedVersion: 2, c: { $lastUpdatedVersion: 2 } } });
    });

    it('refuses bad keys, naming the module (or the device)', async () => {
      await expect(twins.replaceDesired('d1', 'm1', { 'a.b': 1 })).rejects.toThrow(/^m1\.properties\.desired\.a\.b: /);
      await expect(twins.replaceDesired('d1', '', { 'a.b': 1 })).rejects.toThrow(/^d1\.properties\.desired\.a\.b: /);
      await unchanged('d1', 'm1', 1);
    });
  });

  describe('setConfigurations and listeners', () => {
    it('writes configurations only when they change; the change names no part', async () => {
      await twins.setConfigurations('d1', '', { c1: { status: 'Targeted' } });
      await twins.setConfigurations('d1', '', { c1: { status: 'Targeted' } });
      expect((await twins.get('d1', '')).version).toBe(2);
      await twins.setConfigurations('d1', '', { c1: { status: 'Applied' } });
      const t = await twins.get('d1', '');
      expect(t.version).toBe(3);
      expect(t.configurations).toEqual({ c1: { status: 'Applied' } });
      await settle();
      expect(events).toEqual([]);
      expect(changes).toEqual([
        { deviceId: 'd1', moduleId: '', tags: false, desired: false, reported: false },
        { deviceId: 'd1', moduleId: '', tags: false, desired: false, reported: false },
      ]);
      expect(await codeOf(twins.setConfigurations('nope', '', {}))).toBe('CLOUD_ERR_DEVICE_NOT_FOUND');
    });

    it('a listener that unsubscribes hears nothing more', async () => {
      const heard: TwinChange[] = [];
      const off = twins.onChange((c) => heard.push(c));
      await twins.patch('d1', '', { tags: { a: 1 } }, undefined);
      off();
      await twins.patch('d1', '', { tags: { a: 2 } }, undefined);
      expect(heard).toHaveLength(1);
      expect(changes).toHaveLength(2);
    });

    it('without a clock, stamps the present time', async () => {
      const live = new Twins({ store, bus });
      const before = Date.now();
      const t = await live.patch('d1', '', { properties: { desired: { a: 1 } } }, undefined);
      const stamped = Date.parse(String((t.desired.$metadata as Record<string, unknown>)['$lastUpdated']));
      expect(stamped).toBeGreaterThanOrEqual(before);
      expect(stamped).toBeLessThanOrEqual(Date.now());
    });
  });
});
