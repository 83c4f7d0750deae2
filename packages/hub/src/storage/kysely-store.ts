import { randomUUID } from 'node:crypto';
import type { Kysely, Selectable, Transaction } from 'kysely';
import { Migrator, sql } from 'kysely';
import type { AccessPolicy, Right } from '../auth/policies.js';
import { hubError } from '../errors.js';
import type { JsonObject, TwinProperties } from '@kedge/protocol';
import { parseJson } from '@kedge/protocol';
import { InCodeMigrations } from './migrations/index.js';
import type { Database } from './schema.js';
import type {
  C2dAck,
  C2dFeedbackRecord,
  C2dMessageRecord,
  C2dOutcome,
  C2dSettlement,
  ConfigurationRecord,
  DeviceRecord,
  IdentityAuth,
  ModuleRecord,
  NewC2dMessage,
  NewTelemetry,
  PartitionRecord,
  PresenceRecord,
  Store,
  TelemetryRecord,
  TwinMutator,
  TwinRecord,
} from './store.js';

type Db = Kysely<Database>;
type Tx = Transaction<Database>;
type C2dRow = Selectable<Database['c2d_messages']>;

type TelemetryRow = Selectable<Database['telemetry']>;

function toTelemetry(r: TelemetryRow): TelemetryRecord {
  return {
    offset: Number(r.seq),
    deviceId: r.device_id,
    moduleId: r.module_id,
    enqueuedTime: Number(r.enqueued_time),
    properties: parse<Record<string, string>>(r.properties),
    systemProperties: parse<Record<string, string>>(r.system_properties),
    body: Buffer.from(r.body),
    ...(r.partition_id === null || r.partition_seq === null ? {} : { partition: Number(r.partition_id), sequenceNumber: Number(r.partition_seq) }),
  };
}

/**
 * Gives each row with a partition the next sequence numbers of that partition. The partition row's update takes its
 * lock until the transaction commits, so on PostgreSQL a partition's batches commit in sequence order: a reader
 * that saw sequence number n never later finds a committed n-1. Partitions are taken in ascending order (no
 * deadlock between two replicas' batches).
 */
async function assignPartitionSeqs(tx: Tx, rows: { partition_id: number | null; partition_seq: number | null; enqueued_time: number }[]): Promise<void> {
  const byPartition = new Map<number, typeof rows>();
  for (const r of rows) {
    if (r.partition_id === null) continue;
    const list = byPartition.get(r.partition_id);
    if (list) list.push(r);
    else byPartition.set(r.partition_id, [r]);
  }
  for (const p of [...byPartition.keys()].sort((a, b) => a - b)) {
    const mine = byPartition.get(p) ?? [];
    const latest = Math.max(...mine.map((r) => r.enqueued_time));
    const updated = await tx
      .updateTable('eventhub_partitions')
      .set({ last_seq: sql`last_seq + ${mine.length}`, last_enqueued_time: sql`CASE WHEN last_enqueued_time > ${latest} THEN last_enqueued_time ELSE ${latest} END` })
      .where('partition_id', '=', p)
      .returning('last_seq')
      .executeTakeFirst();
    if (!updated) throw hubError('CLOUD_ERR_INTERNAL', `Telemetry partition ${p} does not exist`);
    let seq = Number(updated.last_seq) - mine.length;
    for (const r of mine) r.partition_seq = ++seq;
  }
}

// Stored documents hold keys chosen by devices and clients (`__proto__`, `constructor`, …): null-prototype objects.
const parse = <T>(text: string): T => parseJson(text) as T;

function isUniqueViolation(e: unknown): boolean {
  const code = (e as { code?: unknown } | null)?.code;
  return code === '23505' || code === 'SQLITE_CONSTRAINT_PRIMARYKEY' || code === 'SQLITE_CONSTRAINT_UNIQUE';
}

function toDevice(r: Database['devices']): DeviceRecord {
  return {
    deviceId: r.device_id,
    generationId: r.generation_id,
    etagVersion: Number(r.etag_version),
    status: r.status === 'disabled' ? 'disabled' : 'enabled',
    statusReason: r.status_reason,
    statusUpdatedTime: r.status_updated,
    auth: parse<IdentityAuth>(r.auth),
    iotEdge: Number(r.iot_edge) === 1,
    deviceScope: r.device_scope,
    parentScopes: parse<string[]>(r.parent_scopes),
    createdTime: r.created_time,
  };
}

function fromDevice(d: DeviceRecord): Database['devices'] {
  return {
    device_id: d.deviceId,
    generation_id: d.generationId,
    etag_version: d.etagVersion,
    status: d.status,
    status_reason: d.statusReason,
    status_updated: d.statusUpdatedTime,
    auth: JSON.stringify(d.auth),
    iot_edge: d.iotEdge ? 1 : 0,
    device_scope: d.deviceScope,
    parent_scopes: JSON.stringify(d.parentScopes),
    created_time: d.createdTime,
  };
}

function toModule(r: Database['modules']): ModuleRecord {
  return {
    deviceId: r.device_id,
    moduleId: r.module_id,
    generationId: r.generation_id,
    etagVersion: Number(r.etag_version),
    auth: parse<IdentityAuth>(r.auth),
    managedBy: r.managed_by,
    createdTime: r.created_time,
  };
}

function fromModule(m: ModuleRecord): Database['modules'] {
  return {
    device_id: m.deviceId,
    module_id: m.moduleId,
    generation_id: m.generationId,
    etag_version: m.etagVersion,
    auth: JSON.stringify(m.auth),
    managed_by: m.managedBy,
    created_time: m.createdTime,
  };
}

function toTwin(r: Database['twins']): TwinRecord {
  return {
    deviceId: r.device_id,
    moduleId: r.module_id,
    version: Number(r.version),
    tags: parse<JsonObject>(r.tags),
    desired: parse<TwinProperties>(r.desired),
    reported: parse<TwinProperties>(r.reported),
    configurations: parse<JsonObject>(r.configurations),
  };
}

function fromTwin(t: TwinRecord): Database['twins'] {
  return {
    device_id: t.deviceId,
    module_id: t.moduleId,
    version: t.version,
    tags: JSON.stringify(t.tags),
    desired: JSON.stringify(t.desired),
    reported: JSON.stringify(t.reported),
    configurations: JSON.stringify(t.configurations),
  };
}

function toConfiguration(r: Database['configurations']): ConfigurationRecord {
  return { id: r.id, etagVersion: Number(r.etag_version), priority: Number(r.priority), createdTimeUtc: r.created_time, doc: parse<JsonObject>(r.doc) };
}

/** Whether a message sent with `ack` gets a feedback record for `outcome` (IoT Hub: positive, negative, full). */
export function wantsFeedback(ack: C2dAck, outcome: C2dOutcome): boolean {
  return ack === 'full' || (ack === 'positive' ? outcome === 'Success' : ack === 'negative' && outcome !== 'Success');
}

const ACKS: readonly string[] = ['none', 'positive', 'negative', 'full'];

function toC2d(r: C2dRow): C2dMessageRecord {
  return {
    seq: Number(r.seq),
    deviceId: r.device_id,
    messageId: r.message_id,
    generationId: r.generation_id,
    ack: (ACKS.includes(r.ack) ? r.ack : 'none') as C2dAck,
    enqueuedAt: Number(r.enqueued_at),
    expiresAt: Number(r.expires_at),
    deliveryCount: Number(r.delivery_count),
    lockToken: r.lock_token,
    lockedUntil: Number(r.locked_until),
    properties: parse<Record<string, string>>(r.properties),
    systemProperties: parse<Record<string, string>>(r.system_properties),
    body: Buffer.from(r.body),
  };
}

/**
 * The {@link Store} over kysely, shared by SQLite and PostgreSQL: the engines differ only in row locking (`FOR
 * UPDATE`, PostgreSQL) and in the DDL types chosen by the migrations.
 */
export class KyselyStore implements Store {
  readonly dialect: 'sqlite' | 'postgres';
  readonly #db: Db;
  readonly #onClose: () => Promise<void>;

  constructor(deps: { db: Db; dialect: 'sqlite' | 'postgres'; onClose?: () => Promise<void> }) {
    this.#db = deps.db;
    this.dialect = deps.dialect;
    this.#onClose = deps.onClose ?? (() => Promise.resolve());
  }

  /** Brings the schema up to date (idempotent; concurrent replicas serialise on kysely's migration lock). */
  async migrate(): Promise<void> {
    const migrator = new Migrator({ db: this.#db, provider: new InCodeMigrations(this.dialect) });
    const { error, results } = await migrator.migrateToLatest();
    const failed = results?.find((r) => r.status === 'Error');
    if (error !== undefined || failed) {
      throw hubError('CLOUD_ERR_INTERNAL', `Database migration ${failed?.migrationName ?? ''} failed`, error);
    }
  }

  /** The kysely instance, for the PostgreSQL bus (same pool). */
  get db(): Db {
    return this.#db;
  }

  async #lockedTwin(tx: Tx, deviceId: string, moduleId: string): Promise<Database['twins'] | undefined> {
    const q = tx.selectFrom('twins').selectAll().where('device_id', '=', deviceId).where('module_id', '=', moduleId);
    return this.dialect === 'postgres' ? q.forUpdate().executeTakeFirst() : q.executeTakeFirst();
  }

  async createDevice(device: DeviceRecord, twin: TwinRecord): Promise<void> {
    try {
      await this.#db.transaction().execute(async (tx) => {
        await tx.insertInto('devices').values(fromDevice(device)).execute();
        await tx.deleteFrom('twins').where('device_id', '=', device.deviceId).execute();
        await tx.insertInto('twins').values(fromTwin(twin)).execute();
      });
    } catch (e) {
      if (isUniqueViolation(e)) throw hubError('CLOUD_ERR_DEVICE_EXISTS', `Device ${device.deviceId} already exists`);
      throw e;
    }
  }

  async getDevice(deviceId: string): Promise<DeviceRecord | undefined> {
    const r = await this.#db.selectFrom('devices').selectAll().where('device_id', '=', deviceId).executeTakeFirst();
    return r && toDevice(r);
  }

  async listDevices(opts: { limit: number; after?: string }): Promise<DeviceRecord[]> {
    let q = this.#db.selectFrom('devices').selectAll().orderBy('device_id').limit(opts.limit);
    if (opts.after !== undefined) q = q.where('device_id', '>', opts.after);
    return (await q.execute()).map(toDevice);
  }

  async updateDevice(device: DeviceRecord, expectedEtag: number | undefined): Promise<DeviceRecord> {
    return this.#db.transaction().execute(async (tx) => {
      const cur = await tx.selectFrom('devices').select(['etag_version']).where('device_id', '=', device.deviceId).executeTakeFirst();
      if (!cur) throw hubError('CLOUD_ERR_DEVICE_NOT_FOUND', `Device ${device.deviceId} not found`);
      if (expectedEtag !== undefined && Number(cur.etag_version) !== expectedEtag) {
        throw hubError('CLOUD_ERR_PRECONDITION_FAILED', `Device ${device.deviceId} ETag does not match`);
      }
      const next = { ...device, etagVersion: Number(cur.etag_version) + 1 };
      await tx.updateTable('devices').set(fromDevice(next)).where('device_id', '=', device.deviceId).execute();
      return next;
    });
  }

  async deleteDevice(deviceId: string, expectedEtag: number | undefined): Promise<void> {
    await this.#db.transaction().execute(async (tx) => {
      const cur = await tx.selectFrom('devices').select(['etag_version']).where('device_id', '=', deviceId).executeTakeFirst();
      if (!cur) throw hubError('CLOUD_ERR_DEVICE_NOT_FOUND', `Device ${deviceId} not found`);
      if (expectedEtag !== undefined && Number(cur.etag_version) !== expectedEtag) {
        throw hubError('CLOUD_ERR_PRECONDITION_FAILED', `Device ${deviceId} ETag does not match`);
      }
      await tx.deleteFrom('devices').where('device_id', '=', deviceId).execute();
      await tx.deleteFrom('modules').where('device_id', '=', deviceId).execute();
      await tx.deleteFrom('twins').where('device_id', '=', deviceId).execute();
      // IoT Hub drops a deleted device's cloud-to-device queue with it.
      await tx.deleteFrom('c2d_messages').where('device_id', '=', deviceId).execute();
    });
  }

  async countDevices(): Promise<{ total: number; enabled: number }> {
    const r = await this.#db
      .selectFrom('devices')
      .select((eb) => [eb.fn.countAll().as('total'), eb.fn.sum<number | string>(sql`case when status = 'enabled' then 1 else 0 end`).as('enabled')])
      .executeTakeFirstOrThrow();
    return { total: Number(r.total), enabled: Number(r.enabled ?? 0) };
  }

  async createModule(module: ModuleRecord, twin: TwinRecord): Promise<void> {
    try {
      await this.#db.transaction().execute(async (tx) => {
        const dev = await tx.selectFrom('devices').select('device_id').where('device_id', '=', module.deviceId).executeTakeFirst();
        if (!dev) throw hubError('CLOUD_ERR_DEVICE_NOT_FOUND', `Device ${module.deviceId} not found`);
        await tx.insertInto('modules').values(fromModule(module)).execute();
        // A deployment may have created the module twin before the identity existed: keep that twin.
        await tx.insertInto('twins').values(fromTwin(twin)).onConflict((oc) => oc.columns(['device_id', 'module_id']).doNothing()).execute();
      });
    } catch (e) {
      if (isUniqueViolation(e)) throw hubError('CLOUD_ERR_MODULE_EXISTS', `Module ${module.moduleId} already exists on device ${module.deviceId}`);
      throw e;
    }
  }

  async getModule(deviceId: string, moduleId: string): Promise<ModuleRecord | undefined> {
    const r = await this.#db.selectFrom('modules').selectAll().where('device_id', '=', deviceId).where('module_id', '=', moduleId).executeTakeFirst();
    return r && toModule(r);
  }

  async listModules(deviceId: string): Promise<ModuleRecord[]> {
    return (await this.#db.selectFrom('modules').selectAll().where('device_id', '=', deviceId).orderBy('module_id').execute()).map(toModule);
  }

  async updateModule(module: ModuleRecord, expectedEtag: number | undefined): Promise<ModuleRecord> {
    return this.#db.transaction().execute(async (tx) => {
      const cur = await tx
        .selectFrom('modules')
        .select(['etag_version'])
        .where('device_id', '=', module.deviceId)
        .where('module_id', '=', module.moduleId)
        .executeTakeFirst();
      if (!cur) throw hubError('CLOUD_ERR_MODULE_NOT_FOUND', `Module ${module.moduleId} not found on device ${module.deviceId}`);
      if (expectedEtag !== undefined && Number(cur.etag_version) !== expectedEtag) {
        throw hubError('CLOUD_ERR_PRECONDITION_FAILED', `Module ${module.moduleId} ETag does not match`);
      }
      const next = { ...module, etagVersion: Number(cur.etag_version) + 1 };
      await tx.updateTable('modules').set(fromModule(next)).where('device_id', '=', module.deviceId).where('module_id', '=', module.moduleId).execute();
      return next;
    });
  }

  async deleteModule(deviceId: string, moduleId: string, expectedEtag: number | undefined): Promise<void> {
    await this.#db.transaction().execute(async (tx) => {
      const cur = await tx.selectFrom('modules').select(['etag_version']).where('device_id', '=', deviceId).where('module_id', '=', moduleId).executeTakeFirst();
      if (!cur) throw hubError('CLOUD_ERR_MODULE_NOT_FOUND', `Module ${moduleId} not found on device ${deviceId}`);
      if (expectedEtag !== undefined && Number(cur.etag_version) !== expectedEtag) {
        throw hubError('CLOUD_ERR_PRECONDITION_FAILED', `Module ${moduleId} ETag does not match`);
      }
      await tx.deleteFrom('modules').where('device_id', '=', deviceId).where('module_id', '=', moduleId).execute();
      await tx.deleteFrom('twins').where('device_id', '=', deviceId).where('module_id', '=', moduleId).execute();
    });
  }

  async getTwin(deviceId: string, moduleId: string): Promise<TwinRecord | undefined> {
    const r = await this.#db.selectFrom('twins').selectAll().where('device_id', '=', deviceId).where('module_id', '=', moduleId).executeTakeFirst();
    return r && toTwin(r);
  }

  async listDeviceTwins(opts: { limit: number; after?: string; edgeOnly?: boolean }): Promise<TwinRecord[]> {
    let q = this.#db
      .selectFrom('twins')
      .innerJoin('devices', 'devices.device_id', 'twins.device_id')
      .selectAll('twins')
      .where('twins.module_id', '=', '')
      .orderBy('twins.device_id')
      .limit(opts.limit);
    if (opts.after !== undefined) q = q.where('twins.device_id', '>', opts.after);
    if (opts.edgeOnly === true) q = q.where('devices.iot_edge', '=', 1);
    return (await q.execute()).map(toTwin);
  }

  async listModuleTwins(deviceId: string): Promise<TwinRecord[]> {
    return (
      await this.#db.selectFrom('twins').selectAll().where('device_id', '=', deviceId).where('module_id', '!=', '').orderBy('module_id').execute()
    ).map(toTwin);
  }

  async mutateTwin(deviceId: string, moduleId: string, mutate: TwinMutator): Promise<{ before: TwinRecord; after: TwinRecord } | undefined> {
    return this.#db.transaction().execute(async (tx) => {
      const row = await this.#lockedTwin(tx, deviceId, moduleId);
      if (!row) return undefined;
      const before = toTwin(row);
      const changed = mutate(before);
      if (!changed) return { before, after: before };
      const after = { ...changed, deviceId, moduleId, version: before.version + 1 };
      await tx
        .updateTable('twins')
        .set(fromTwin(after))
        .where('device_id', '=', deviceId)
        .where('module_id', '=', moduleId)
        .execute();
      return { before, after };
    });
  }

  async ensureTwin(twin: TwinRecord): Promise<void> {
    await this.#db.insertInto('twins').values(fromTwin(twin)).onConflict((oc) => oc.columns(['device_id', 'module_id']).doNothing()).execute();
  }

  async appendTelemetry(batch: readonly NewTelemetry[]): Promise<number[]> {
    if (batch.length === 0) return [];
    const rows = batch.map((m) => ({
      device_id: m.deviceId,
      module_id: m.moduleId,
      enqueued_time: m.enqueuedTime,
      properties: JSON.stringify(m.properties),
      system_properties: JSON.stringify(m.systemProperties),
      body: m.body,
      partition_id: m.partition ?? null,
      partition_seq: null as number | null,
    }));
    // Chunked so one statement stays under SQLite's 32766 bound-parameter limit.
    const out: number[] = [];
    await this.#db.transaction().execute(async (tx) => {
      await assignPartitionSeqs(tx, rows);
      for (let i = 0; i < rows.length; i += 1000) {
        const r = await tx.insertInto('telemetry').values(rows.slice(i, i + 1000)).returning('seq').execute();
        for (const x of r) out.push(Number(x.seq));
      }
    });
    return out;
  }

  async readTelemetry(opts: { from: number; limit: number; deviceId?: string; moduleId?: string }): Promise<TelemetryRecord[]> {
    let q = this.#db.selectFrom('telemetry').selectAll().where('seq', '>=', opts.from).orderBy('seq').limit(opts.limit);
    if (opts.deviceId !== undefined) q = q.where('device_id', '=', opts.deviceId);
    if (opts.moduleId !== undefined) q = q.where('module_id', '=', opts.moduleId);
    return (await q.execute()).map(toTelemetry);
  }

  async initPartitions(count: number, now: number): Promise<number> {
    const stored = await this.#db.selectFrom('eventhub_partitions').select((eb) => eb.fn.countAll().as('n')).executeTakeFirstOrThrow();
    if (Number(stored.n) > 0) return Number(stored.n);
    const rows = Array.from({ length: count }, (_, p) => ({ partition_id: p, last_seq: -1, last_enqueued_time: 0, created_at: now }));
    // Two replicas starting at once: the first insert wins, the other's conflicts change nothing.
    await this.#db.insertInto('eventhub_partitions').values(rows).onConflict((oc) => oc.column('partition_id').doNothing()).execute();
    const after = await this.#db.selectFrom('eventhub_partitions').select((eb) => eb.fn.countAll().as('n')).executeTakeFirstOrThrow();
    return Number(after.n);
  }

  async readPartition(opts: { partition: number; fromSeq: number; limit: number }): Promise<TelemetryRecord[]> {
    const rows = await this.#db
      .selectFrom('telemetry')
      .selectAll()
      .where('partition_id', '=', opts.partition)
      .where('partition_seq', '>=', opts.fromSeq)
      .orderBy('partition_seq')
      .limit(opts.limit)
      .execute();
    return rows.map(toTelemetry);
  }

  async getPartition(partition: number): Promise<PartitionRecord | undefined> {
    const p = await this.#db.selectFrom('eventhub_partitions').selectAll().where('partition_id', '=', partition).executeTakeFirst();
    if (!p) return undefined;
    const first = await this.#db
      .selectFrom('telemetry')
      .select('partition_seq')
      .where('partition_id', '=', partition)
      .orderBy('partition_seq')
      .limit(1)
      .executeTakeFirst();
    return {
      partition,
      beginSequenceNumber: first?.partition_seq === undefined || first.partition_seq === null ? -1 : Number(first.partition_seq),
      lastSequenceNumber: Number(p.last_seq),
      lastEnqueuedTime: Number(p.last_enqueued_time),
      createdAt: Number(p.created_at),
    };
  }

  async partitionSeqAfter(partition: number, time: number): Promise<number | undefined> {
    const r = await this.#db
      .selectFrom('telemetry')
      .select((eb) => eb.fn.min('partition_seq').as('seq'))
      .where('partition_id', '=', partition)
      .where('enqueued_time', '>', time)
      .executeTakeFirst();
    return r?.seq === undefined || r.seq === null ? undefined : Number(r.seq);
  }

  async purgeTelemetry(opts: { olderThan: number; keepLast: number }): Promise<number> {
    const byAge = await this.#db.deleteFrom('telemetry').where('enqueued_time', '<', opts.olderThan).executeTakeFirst();
    const last = await this.#db.selectFrom('telemetry').select((eb) => eb.fn.max('seq').as('last')).executeTakeFirst();
    let bySize = 0n;
    if (last?.last !== null && last?.last !== undefined) {
      const cut = Number(last.last) - opts.keepLast;
      const r = await this.#db.deleteFrom('telemetry').where('seq', '<=', cut).executeTakeFirst();
      bySize = r.numDeletedRows;
    }
    return Number(byAge.numDeletedRows + bySize);
  }

  async telemetryBounds(): Promise<{ first: number; last: number; count: number }> {
    const r = await this.#db
      .selectFrom('telemetry')
      .select((eb) => [eb.fn.min('seq').as('first'), eb.fn.max('seq').as('last'), eb.fn.countAll().as('count')])
      .executeTakeFirstOrThrow();
    return { first: Number(r.first ?? 0), last: Number(r.last ?? 0), count: Number(r.count) };
  }

  async getConsumerOffset(name: string): Promise<number | undefined> {
    const r = await this.#db.selectFrom('consumers').select('offset').where('name', '=', name).executeTakeFirst();
    return r ? Number(r.offset) : undefined;
  }

  async setConsumerOffset(name: string, offset: number): Promise<void> {
    const now = Date.now();
    await this.#db
      .insertInto('consumers')
      .values({ name, offset, updated_at: now })
      .onConflict((oc) => oc.column('name').doUpdateSet({ offset, updated_at: now }))
      .execute();
  }

  async createConfiguration(cfg: ConfigurationRecord): Promise<void> {
    try {
      await this.#db
        .insertInto('configurations')
        .values({ id: cfg.id, etag_version: cfg.etagVersion, priority: cfg.priority, created_time: cfg.createdTimeUtc, doc: JSON.stringify(cfg.doc) })
        .execute();
    } catch (e) {
      if (isUniqueViolation(e)) throw hubError('CLOUD_ERR_CONFIGURATION_EXISTS', `Configuration ${cfg.id} already exists`);
      throw e;
    }
  }

  async getConfiguration(id: string): Promise<ConfigurationRecord | undefined> {
    const r = await this.#db.selectFrom('configurations').selectAll().where('id', '=', id).executeTakeFirst();
    return r && toConfiguration(r);
  }

  async listConfigurations(): Promise<ConfigurationRecord[]> {
    return (await this.#db.selectFrom('configurations').selectAll().orderBy('id').execute()).map(toConfiguration);
  }

  async updateConfiguration(cfg: ConfigurationRecord, expectedEtag: number | undefined): Promise<ConfigurationRecord> {
    return this.#db.transaction().execute(async (tx) => {
      const cur = await tx.selectFrom('configurations').select(['etag_version']).where('id', '=', cfg.id).executeTakeFirst();
      if (!cur) throw hubError('CLOUD_ERR_CONFIGURATION_NOT_FOUND', `Configuration ${cfg.id} not found`);
      if (expectedEtag !== undefined && Number(cur.etag_version) !== expectedEtag) {
        throw hubError('CLOUD_ERR_PRECONDITION_FAILED', `Configuration ${cfg.id} ETag does not match`);
      }
      const next = { ...cfg, etagVersion: Number(cur.etag_version) + 1 };
      await tx
        .updateTable('configurations')
        .set({ etag_version: next.etagVersion, priority: next.priority, created_time: next.createdTimeUtc, doc: JSON.stringify(next.doc) })
        .where('id', '=', cfg.id)
        .execute();
      return next;
    });
  }

  async deleteConfiguration(id: string, expectedEtag: number | undefined): Promise<void> {
    await this.#db.transaction().execute(async (tx) => {
      const cur = await tx.selectFrom('configurations').select(['etag_version']).where('id', '=', id).executeTakeFirst();
      if (!cur) throw hubError('CLOUD_ERR_CONFIGURATION_NOT_FOUND', `Configuration ${id} not found`);
      if (expectedEtag !== undefined && Number(cur.etag_version) !== expectedEtag) {
        throw hubError('CLOUD_ERR_PRECONDITION_FAILED', `Configuration ${id} ETag does not match`);
      }
      await tx.deleteFrom('configurations').where('id', '=', id).execute();
    });
  }

  async listPolicies(): Promise<AccessPolicy[]> {
    const rows = await this.#db.selectFrom('policies').selectAll().orderBy('name').execute();
    return rows.map((r) => ({ name: r.name, primaryKey: r.primary_key, secondaryKey: r.secondary_key, rights: parse<Right[]>(r.rights) }));
  }

  async seedPolicies(policies: readonly AccessPolicy[]): Promise<void> {
    for (const p of policies) {
      await this.#db
        .insertInto('policies')
        .values({ name: p.name, primary_key: p.primaryKey, secondary_key: p.secondaryKey, rights: JSON.stringify(p.rights) })
        .onConflict((oc) => oc.column('name').doNothing())
        .execute();
    }
  }

  async setPresence(p: PresenceRecord): Promise<void> {
    await this.#db
      .insertInto('presence')
      .values({ device_id: p.deviceId, module_id: p.moduleId, replica_id: p.replicaId, connected_at: p.connectedAt })
      .onConflict((oc) => oc.columns(['device_id', 'module_id']).doUpdateSet({ replica_id: p.replicaId, connected_at: p.connectedAt }))
      .execute();
  }

  async clearPresence(deviceId: string, moduleId: string, replicaId: string): Promise<void> {
    await this.#db
      .deleteFrom('presence')
      .where('device_id', '=', deviceId)
      .where('module_id', '=', moduleId)
      .where('replica_id', '=', replicaId)
      .execute();
  }

  async getPresence(deviceId: string, moduleId: string): Promise<PresenceRecord | undefined> {
    const r = await this.#db.selectFrom('presence').selectAll().where('device_id', '=', deviceId).where('module_id', '=', moduleId).executeTakeFirst();
    return r && { deviceId: r.device_id, moduleId: r.module_id, replicaId: r.replica_id, connectedAt: Number(r.connected_at) };
  }

  async countConnectedDevices(): Promise<number> {
    const r = await this.#db
      .selectFrom('presence')
      .innerJoin('devices', 'devices.device_id', 'presence.device_id')
      .where('presence.module_id', '=', '')
      .select((eb) => eb.fn.countAll().as('n'))
      .executeTakeFirstOrThrow();
    return Number(r.n);
  }

  async clearReplicaPresence(replicaId: string): Promise<void> {
    await this.#db.deleteFrom('presence').where('replica_id', '=', replicaId).execute();
  }

  async enqueueC2d(m: NewC2dMessage, maxPending: number): Promise<'queued' | 'full' | 'no-device'> {
    return this.#db.transaction().execute(async (tx) => {
      const q = tx.selectFrom('devices').select(['generation_id']).where('device_id', '=', m.deviceId);
      // The device row serialises concurrent senders of one device across replicas (PostgreSQL).
      const dev = await (this.dialect === 'postgres' ? q.forUpdate() : q).executeTakeFirst();
      if (!dev) return 'no-device';
      const n = await tx
        .selectFrom('c2d_messages')
        .select((eb) => eb.fn.countAll().as('n'))
        .where('device_id', '=', m.deviceId)
        .executeTakeFirstOrThrow();
      if (Number(n.n) >= maxPending) return 'full';
      await tx
        .insertInto('c2d_messages')
        .values({
          device_id: m.deviceId,
          message_id: m.messageId,
          generation_id: dev.generation_id,
          ack: m.ack,
          enqueued_at: m.enqueuedAt,
          expires_at: m.expiresAt,
          delivery_count: 0,
          lock_token: '',
          locked_until: 0,
          properties: JSON.stringify(m.properties),
          system_properties: JSON.stringify(m.systemProperties),
          body: m.body,
        })
        .execute();
      return 'queued';
    });
  }

  /** Removes `row` and records feedback for `outcome` when its `ack` asks for it. */
  async #finish(tx: Tx, row: C2dRow, outcome: C2dOutcome, now: number): Promise<void> {
    await tx.deleteFrom('c2d_messages').where('seq', '=', row.seq).execute();
    if (!wantsFeedback((ACKS.includes(row.ack) ? row.ack : 'none') as C2dAck, outcome)) return;
    await tx
      .insertInto('c2d_feedback')
      .values({ device_id: row.device_id, message_id: row.message_id, generation_id: row.generation_id, status_code: outcome, enqueued_at: now })
      .execute();
  }

  async lockC2d(deviceId: string, opts: { now: number; lockMs: number; maxDeliveryCount: number }): Promise<C2dMessageRecord | undefined> {
    return this.#db.transaction().execute(async (tx) => {
      for (;;) {
        const q = tx.selectFrom('c2d_messages').selectAll().where('device_id', '=', deviceId).where('locked_until', '<=', opts.now).orderBy('seq').limit(16);
        const rows = await (this.dialect === 'postgres' ? q.forUpdate().skipLocked() : q).execute();
        if (rows.length === 0) return undefined;
        for (const row of rows) {
          if (Number(row.expires_at) <= opts.now) await this.#finish(tx, row, 'Expired', opts.now);
          else if (Number(row.delivery_count) >= opts.maxDeliveryCount) await this.#finish(tx, row, 'DeliveryCountExceeded', opts.now);
          else {
            const locked = { ...row, lock_token: randomUUID(), locked_until: opts.now + opts.lockMs, delivery_count: Number(row.delivery_count) + 1 };
            await tx
              .updateTable('c2d_messages')
              .set({ lock_token: locked.lock_token, locked_until: locked.locked_until, delivery_count: locked.delivery_count })
              .where('seq', '=', row.seq)
              .execute();
            return toC2d(locked);
          }
        }
      }
    });
  }

  async settleC2d(deviceId: string, lockToken: string, settlement: C2dSettlement, now: number): Promise<boolean> {
    if (lockToken === '') return false;
    return this.#db.transaction().execute(async (tx) => {
      const q = tx.selectFrom('c2d_messages').selectAll().where('device_id', '=', deviceId).where('lock_token', '=', lockToken);
      const row = await (this.dialect === 'postgres' ? q.forUpdate() : q).executeTakeFirst();
      if (!row) return false;
      if (settlement === 'abandon') await tx.updateTable('c2d_messages').set({ lock_token: '', locked_until: 0 }).where('seq', '=', row.seq).execute();
      else await this.#finish(tx, row, settlement === 'complete' ? 'Success' : 'Rejected', now);
      return true;
    });
  }

  async purgeC2d(deviceId: string, now: number): Promise<number> {
    return this.#db.transaction().execute(async (tx) => {
      const rows = await tx.selectFrom('c2d_messages').selectAll().where('device_id', '=', deviceId).execute();
      for (const row of rows) await this.#finish(tx, row, 'Purged', now);
      return rows.length;
    });
  }

  async expireC2d(now: number, maxDeliveryCount: number): Promise<number> {
    return this.#db.transaction().execute(async (tx) => {
      const q = tx
        .selectFrom('c2d_messages')
        .selectAll()
        .where((eb) => eb.or([eb('expires_at', '<=', now), eb.and([eb('delivery_count', '>=', maxDeliveryCount), eb('locked_until', '<=', now)])]))
        .orderBy('seq')
        .limit(1000);
      const rows = await (this.dialect === 'postgres' ? q.forUpdate().skipLocked() : q).execute();
      for (const row of rows) await this.#finish(tx, row, Number(row.expires_at) <= now ? 'Expired' : 'DeliveryCountExceeded', now);
      return rows.length;
    });
  }

  async countC2d(deviceId: string): Promise<number> {
    const r = await this.#db
      .selectFrom('c2d_messages')
      .select((eb) => eb.fn.countAll().as('n'))
      .where('device_id', '=', deviceId)
      .executeTakeFirstOrThrow();
    return Number(r.n);
  }

  async readC2dFeedback(limit: number): Promise<C2dFeedbackRecord[]> {
    const rows = await this.#db.selectFrom('c2d_feedback').selectAll().orderBy('seq').limit(limit).execute();
    return rows.map((r) => ({
      seq: Number(r.seq),
      deviceId: r.device_id,
      messageId: r.message_id,
      generationId: r.generation_id,
      statusCode: r.status_code as C2dOutcome,
      enqueuedAt: Number(r.enqueued_at),
    }));
  }

  async deleteC2dFeedback(seqs: readonly number[]): Promise<void> {
    if (seqs.length === 0) return;
    await this.#db.deleteFrom('c2d_feedback').where('seq', 'in', [...seqs]).execute();
  }

  async ping(): Promise<void> {
    await sql`select 1`.execute(this.#db);
  }

  async close(): Promise<void> {
    await this.#db.destroy();
    await this.#onClose();
  }
}
