import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { defaultPolicies } from '../auth/policies.js';
import { isHubError } from '../errors.js';
import { newTwin } from '../registry/registry.js';
import { applyPatch } from '@kedge/protocol';
import type { DeviceRecord, ModuleRecord, Store } from './store.js';

const NOW = '2026-01-01T00:00:00.000Z';

export function device(deviceId: string, over: Partial<DeviceRecord> = {}): DeviceRecord {
  return {
    deviceId,
    generationId: '1',
    etagVersion: 1,
    status: 'enabled',
    statusReason: '',
    statusUpdatedTime: NOW,
    auth: { type: 'sas', primaryKey: 'a', secondaryKey: 'b', primaryThumbprint: '', secondaryThumbprint: '' },
    iotEdge: false,
    deviceScope: '',
    parentScopes: [],
    createdTime: NOW,
    ...over,
  };
}

function module(deviceId: string, moduleId: string): ModuleRecord {
  return { deviceId, moduleId, generationId: '1', etagVersion: 1, auth: device(deviceId).auth, managedBy: '', createdTime: NOW };
}

async function code(p: Promise<unknown>): Promise<string | undefined> {
  try {
    await p;
    return undefined;
  } catch (e) {
    if (isHubError(e)) return e.code;
    throw e;
  }
}

/**
 * The {@link Store} contract (aedes-persistence `abstract.js` style): every implementation runs it. `factory`
 * returns a fresh, empty, migrated store and a cleanup.
 */
export function describeStore(name: string, factory: () => Promise<{ store: Store; cleanup: () => Promise<void> } | undefined>): void {
  describe(`Store contract: ${name}`, () => {
    let s: Store;
    let cleanup: () => Promise<void> = () => Promise.resolve();
    let skipped = false;
    beforeAll(async () => {
      const r = await factory();
      if (!r) {
        skipped = true;
        return;
      }
      s = r.store;
      cleanup = r.cleanup;
    });
    afterAll(async () => {
      await cleanup();
    });

    it('creates, reads, updates and deletes devices with ETag preconditions', async (ctx) => {
      if (skipped) return ctx.skip();
      await s.createDevice(device('d1'), newTwin('d1', '', NOW));
      expect(await code(s.createDevice(device('d1'), newTwin('d1', '', NOW)))).toBe('CLOUD_ERR_DEVICE_EXISTS');
      expect((await s.getDevice('d1'))?.auth.primaryKey).toBe('a');
      const up = await s.updateDevice({ ...device('d1'), status: 'disabled' }, 1);
      expect(up.etagVersion).toBe(2);
      expect(await code(s.updateDevice(device('d1'), 1))).toBe('CLOUD_ERR_PRECONDITION_FAILED');
      expect(await code(s.updateDevice(device('nope'), undefined))).toBe('CLOUD_ERR_DEVICE_NOT_FOUND');
      expect(await s.countDevices()).toEqual({ total: 1, enabled: 0 });
      await s.createDevice(device('d0'), newTwin('d0', '', NOW));
      expect((await s.listDevices({ limit: 10 })).map((d) => d.deviceId)).toEqual(['d0', 'd1']);
      expect((await s.listDevices({ limit: 10, after: 'd0' })).map((d) => d.deviceId)).toEqual(['d1']);
      expect(await code(s.deleteDevice('d1', 1))).toBe('CLOUD_ERR_PRECONDITION_FAILED');
      await s.deleteDevice('d1', 2);
      expect(await s.getDevice('d1')).toBeUndefined();
      expect(await s.getTwin('d1', '')).toBeUndefined();
    });

    it('keeps modules under their device and deletes them with it', async (ctx) => {
      if (skipped) return ctx.skip();
      expect(await code(s.createModule(module('ghost', 'm'), newTwin('ghost', 'm', NOW)))).toBe('CLOUD_ERR_DEVICE_NOT_FOUND');
      await s.createDevice(device('e1', { iotEdge: true }), newTwin('e1', '', NOW));
      await s.createModule(module('e1', 'm1'), newTwin('e1', 'm1', NOW));
      expect(await code(s.createModule(module('e1', 'm1'), newTwin('e1', 'm1', NOW)))).toBe('CLOUD_ERR_MODULE_EXISTS');
      expect((await s.listModules('e1')).map((m) => m.moduleId)).toEqual(['m1']);
      expect((await s.listModuleTwins('e1')).map((t) => t.moduleId)).toEqual(['m1']);
      expect((await s.listDeviceTwins({ limit: 10, edgeOnly: true })).map((t) => t.deviceId)).toEqual(['e1']);
      await s.deleteDevice('e1', undefined);
      expect(await s.getModule('e1', 'm1')).toBeUndefined();
      expect(await s.getTwin('e1', 'm1')).toBeUndefined();
    });

    it('serialises concurrent twin mutations without losing any', async (ctx) => {
      if (skipped) return ctx.skip();
      await s.createDevice(device('c1'), newTwin('c1', '', NOW));
      await Promise.all(
        Array.from({ length: 25 }, (_, i) =>
          s.mutateTwin('c1', '', (t) => ({ ...t, reported: applyPatch(t.reported, { [`k${i}`]: i }, NOW, { desired: false }) })),
        ),
      );
      const t = await s.getTwin('c1', '');
      expect(t?.version).toBe(26);
      expect(t?.reported.$version).toBe(26);
      expect(Object.keys(t?.reported ?? {}).filter((k) => k.startsWith('k'))).toHaveLength(25);
      const same = await s.mutateTwin('c1', '', () => undefined);
      expect(same?.after.version).toBe(26);
      expect(await s.mutateTwin('missing', '', (x) => x)).toBeUndefined();
    });

    it('appends telemetry with increasing offsets, reads from an offset and purges', async (ctx) => {
      if (skipped) return ctx.skip();
      const msg = (deviceId: string, i: number, t = Date.now()): Parameters<Store['appendTelemetry']>[0][number] => ({
        deviceId,
        moduleId: '',
        enqueuedTime: t,
        properties: { i: String(i) },
        systemProperties: {},
        body: Buffer.from([0, 1, 2, i]),
      });
      const offsets = await s.appendTelemetry([msg('t1', 0), msg('t2', 1), msg('t1', 2)]);
      expect(offsets).toHaveLength(3);
      expect(offsets[0]! < offsets[1]! && offsets[1]! < offsets[2]!).toBe(true);
      const t1 = await s.readTelemetry({ from: 0, limit: 10, deviceId: 't1' });
      expect(t1.map((m) => m.properties['i'])).toEqual(['0', '2']);
      expect(t1[1]?.body).toEqual(Buffer.from([0, 1, 2, 2]));
      expect((await s.readTelemetry({ from: offsets[1]!, limit: 10 })).map((m) => m.offset)).toEqual([offsets[1], offsets[2]]);
      await s.appendTelemetry([msg('old', 9, Date.now() - 10_000_000)]);
      expect(await s.purgeTelemetry({ olderThan: Date.now() - 1_000_000, keepLast: 1_000 })).toBe(1);
      await s.purgeTelemetry({ olderThan: 0, keepLast: 1 });
      expect((await s.telemetryBounds()).count).toBe(1);
      await s.setConsumerOffset('c', 5);
      await s.setConsumerOffset('c', 7);
      expect(await s.getConsumerOffset('c')).toBe(7);
      expect(await s.getConsumerOffset('none')).toBeUndefined();
    });

    it('numbers each partition of the Event Hubs endpoint 0, 1, 2, … under concurrent batches; the count is fixed once created', async (ctx) => {
      if (skipped) return ctx.skip();
      const at = Date.now();
      expect(await s.initPartitions(3, at)).toBe(3);
      expect(await s.initPartitions(8, at)).toBe(3);
      expect(await s.getPartition(1)).toEqual({ partition: 1, beginSequenceNumber: -1, lastSequenceNumber: -1, lastEnqueuedTime: 0, createdAt: at });
      expect(await s.getPartition(3)).toBeUndefined();
      const msg = (partition: number | undefined, i: number): Parameters<Store['appendTelemetry']>[0][number] => ({
        deviceId: `p${partition ?? 'none'}`,
        moduleId: '',
        enqueuedTime: at + i,
        properties: { i: String(i) },
        systemProperties: {},
        body: Buffer.from([i]),
        ...(partition === undefined ? {} : { partition }),
      });
      // Twenty batches at once (several connections of the pool on PostgreSQL), each over partitions 2 and 0.
      await Promise.all(Array.from({ length: 20 }, (_, b) => s.appendTelemetry([msg(2, b * 3), msg(0, b * 3 + 1), msg(2, b * 3 + 2), msg(undefined, 0)])));
      const p2 = await s.readPartition({ partition: 2, fromSeq: 0, limit: 100 });
      expect(p2.map((m) => m.sequenceNumber)).toEqual(Array.from({ length: 40 }, (_, i) => i));
      // Within a batch the order is the batch's; offsets grow with sequence numbers.
      expect(p2.every((m, i) => i === 0 || m.offset > (p2[i - 1]?.offset ?? 0))).toBe(true);
      expect(p2.every((m) => m.partition === 2 && m.deviceId === 'p2')).toBe(true);
      expect((await s.readPartition({ partition: 0, fromSeq: 15, limit: 100 })).map((m) => m.sequenceNumber)).toEqual([15, 16, 17, 18, 19]);
      expect(await s.readPartition({ partition: 1, fromSeq: 0, limit: 100 })).toEqual([]);
      const info = await s.getPartition(2);
      expect(info).toMatchObject({ beginSequenceNumber: 0, lastSequenceNumber: 39, lastEnqueuedTime: at + 59 });
      const late = p2[30];
      expect(await s.partitionSeqAfter(2, (late?.enqueuedTime ?? 0) - 1)).toBeLessThanOrEqual(30);
      expect(await s.partitionSeqAfter(2, at + 1000)).toBeUndefined();
      // Messages without a partition (stored before the endpoint existed) are in the telemetry log only.
      expect((await s.readTelemetry({ from: 0, limit: 1000, deviceId: 'pnone' })).every((m) => m.partition === undefined && m.sequenceNumber === undefined)).toBe(true);
      // Retention moves the beginning, never the numbering.
      await s.purgeTelemetry({ olderThan: 0, keepLast: 0 });
      expect(await s.getPartition(2)).toMatchObject({ beginSequenceNumber: -1, lastSequenceNumber: 39 });
      await s.appendTelemetry([msg(2, 99)]);
      expect((await s.readPartition({ partition: 2, fromSeq: 0, limit: 10 })).map((m) => m.sequenceNumber)).toEqual([40]);
      expect(await s.getPartition(2)).toMatchObject({ beginSequenceNumber: 40, lastSequenceNumber: 40 });
    });

    it('stores configurations with ETags', async (ctx) => {
      if (skipped) return ctx.skip();
      const cfg = { id: 'cfg', etagVersion: 1, priority: 3, createdTimeUtc: NOW, doc: { id: 'cfg', priority: 3 } };
      await s.createConfiguration(cfg);
      expect(await code(s.createConfiguration(cfg))).toBe('CLOUD_ERR_CONFIGURATION_EXISTS');
      const up = await s.updateConfiguration({ ...cfg, priority: 4 }, 1);
      expect(up.etagVersion).toBe(2);
      expect((await s.getConfiguration('cfg'))?.priority).toBe(4);
      expect(await code(s.deleteConfiguration('cfg', 1))).toBe('CLOUD_ERR_PRECONDITION_FAILED');
      await s.deleteConfiguration('cfg', undefined);
      expect(await s.listConfigurations()).toEqual([]);
    });

    it('seeds policies once and tracks presence per replica', async (ctx) => {
      if (skipped) return ctx.skip();
      const first = defaultPolicies();
      await s.seedPolicies(first);
      await s.seedPolicies(defaultPolicies());
      const owner = (await s.listPolicies()).find((p) => p.name === 'iothubowner');
      expect(owner?.primaryKey).toBe(first[0]?.primaryKey);
      await s.setPresence({ deviceId: 'p', moduleId: '', replicaId: 'A', connectedAt: 1 });
      await s.setPresence({ deviceId: 'p', moduleId: '', replicaId: 'B', connectedAt: 2 });
      await s.clearPresence('p', '', 'A');
      expect((await s.getPresence('p', ''))?.replicaId).toBe('B');
      await s.clearReplicaPresence('B');
      expect(await s.getPresence('p', '')).toBeUndefined();
      await s.ping();
    });

    it('counts connected devices, not modules and not presence left by deleted devices', async (ctx) => {
      if (skipped) return ctx.skip();
      await s.createDevice(device('online'), newTwin('online', '', NOW));
      await s.createDevice(device('offline'), newTwin('offline', '', NOW));
      const before = await s.countConnectedDevices();
      await s.setPresence({ deviceId: 'online', moduleId: '', replicaId: 'A', connectedAt: 1 });
      await s.setPresence({ deviceId: 'online', moduleId: 'mod', replicaId: 'A', connectedAt: 1 });
      await s.setPresence({ deviceId: 'ghost', moduleId: '', replicaId: 'A', connectedAt: 1 });
      expect(await s.countConnectedDevices()).toBe(before + 1);
      await s.clearPresence('online', '', 'A');
      expect(await s.countConnectedDevices()).toBe(before);
    });

    it('queues cloud-to-device messages with a per-device cap, locks, settles and records feedback by ack', async (ctx) => {
      if (skipped) return ctx.skip();
      await s.createDevice(device('c2d', { generationId: 'g1' }), newTwin('c2d', '', NOW));
      const msg = (messageId: string, ack: 'none' | 'positive' | 'negative' | 'full', expiresAt = 10_000) => ({
        deviceId: 'c2d',
        messageId,
        ack,
        enqueuedAt: 1,
        expiresAt,
        properties: { k: 'v' },
        systemProperties: { messageId },
        body: Buffer.from(messageId),
      });
      expect(await s.enqueueC2d({ ...msg('x', 'none'), deviceId: 'absent' }, 5)).toBe('no-device');
      expect(await s.enqueueC2d(msg('m1', 'positive'), 3)).toBe('queued');
      expect(await s.enqueueC2d(msg('m2', 'full'), 3)).toBe('queued');
      expect(await s.enqueueC2d(msg('m3', 'negative', 50), 3)).toBe('queued');
      expect(await s.enqueueC2d(msg('m4', 'full'), 3)).toBe('full');
      const opts = { now: 100, lockMs: 1000, maxDeliveryCount: 2 };
      const a = await s.lockC2d('c2d', opts);
      expect(a).toMatchObject({ messageId: 'm1', deliveryCount: 1, generationId: 'g1', properties: { k: 'v' } });
      expect(a?.body.toString()).toBe('m1');
      // m1 is locked: the next lock takes m2; the lapsed lock of m1 lets it be taken again later.
      const b = await s.lockC2d('c2d', opts);
      expect(b?.messageId).toBe('m2');
      expect(await s.settleC2d('c2d', a?.lockToken ?? '', 'complete', 200)).toBe(true);
      expect(await s.settleC2d('c2d', a?.lockToken ?? '', 'complete', 200)).toBe(false);
      expect(await s.settleC2d('c2d', b?.lockToken ?? '', 'abandon', 200)).toBe(true);
      const b2 = await s.lockC2d('c2d', opts);
      expect(b2).toMatchObject({ messageId: 'm2', deliveryCount: 2 });
      expect(await s.settleC2d('c2d', b2?.lockToken ?? '', 'abandon', 200)).toBe(true);
      // m2 reached the max delivery count and m3 expired: both go, with feedback (full, negative).
      expect(await s.lockC2d('c2d', opts)).toBeUndefined();
      expect(await s.countC2d('c2d')).toBe(0);
      const fb = await s.readC2dFeedback(10);
      expect(fb.map((f) => [f.messageId, f.statusCode, f.generationId])).toEqual([
        ['m1', 'Success', 'g1'],
        ['m2', 'DeliveryCountExceeded', 'g1'],
        ['m3', 'Expired', 'g1'],
      ]);
      await s.deleteC2dFeedback(fb.map((f) => f.seq));
      expect(await s.readC2dFeedback(10)).toEqual([]);
      // Reject, purge, sweep.
      await s.enqueueC2d(msg('r', 'negative'), 5);
      const r = await s.lockC2d('c2d', opts);
      expect(await s.settleC2d('c2d', r?.lockToken ?? '', 'reject', 300)).toBe(true);
      await s.enqueueC2d(msg('p1', 'full'), 5);
      await s.enqueueC2d(msg('p2', 'none'), 5);
      expect(await s.purgeC2d('c2d', 400)).toBe(2);
      await s.enqueueC2d(msg('e', 'full', 500), 5);
      expect(await s.expireC2d(400, 10)).toBe(0);
      expect(await s.expireC2d(600, 10)).toBe(1);
      expect((await s.readC2dFeedback(10)).map((f) => [f.messageId, f.statusCode])).toEqual([
        ['r', 'Rejected'],
        ['p1', 'Purged'],
        ['e', 'Expired'],
      ]);
      // Deleting the device drops its queue.
      await s.enqueueC2d(msg('gone', 'none'), 5);
      await s.deleteDevice('c2d', undefined);
      expect(await s.countC2d('c2d')).toBe(0);
    });
  });
}
