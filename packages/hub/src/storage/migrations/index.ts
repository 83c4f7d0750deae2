import type { Kysely, Migration, MigrationProvider } from 'kysely';
import { sql } from 'kysely';

type Dialect = 'sqlite' | 'postgres';

/**
 * The schema, as ordered migrations. Never edit a released migration: add a new one. Types differ only where the
 * engines do (auto-increment offsets, binary bodies); JSON documents are text in both.
 */
function migrations(dialect: Dialect): Record<string, Migration> {
  const serial = dialect === 'sqlite' ? 'integer' : 'bigserial';
  const bigint = dialect === 'sqlite' ? 'integer' : 'bigint';
  const binary = dialect === 'sqlite' ? 'blob' : 'bytea';
  return {
    '0001_initial': {
      async up(db: Kysely<unknown>): Promise<void> {
        await db.schema
          .createTable('devices')
          .addColumn('device_id', 'text', (c) => c.primaryKey())
          .addColumn('generation_id', 'text', (c) => c.notNull())
          .addColumn('etag_version', 'integer', (c) => c.notNull())
          .addColumn('status', 'text', (c) => c.notNull())
          .addColumn('status_reason', 'text', (c) => c.notNull())
          .addColumn('status_updated', 'text', (c) => c.notNull())
          .addColumn('auth', 'text', (c) => c.notNull())
          .addColumn('iot_edge', 'integer', (c) => c.notNull())
          .addColumn('device_scope', 'text', (c) => c.notNull())
          .addColumn('parent_scopes', 'text', (c) => c.notNull())
          .addColumn('created_time', 'text', (c) => c.notNull())
          .execute();
        await db.schema
          .createTable('modules')
          .addColumn('device_id', 'text', (c) => c.notNull())
          .addColumn('module_id', 'text', (c) => c.notNull())
          .addColumn('generation_id', 'text', (c) => c.notNull())
          .addColumn('etag_version', 'integer', (c) => c.notNull())
          .addColumn('auth', 'text', (c) => c.notNull())
          .addColumn('managed_by', 'text', (c) => c.notNull())
          .addColumn('created_time', 'text', (c) => c.notNull())
          .addPrimaryKeyConstraint('modules_pk', ['device_id', 'module_id'])
          .execute();
        await db.schema
          .createTable('twins')
          .addColumn('device_id', 'text', (c) => c.notNull())
          .addColumn('module_id', 'text', (c) => c.notNull())
          .addColumn('version', 'integer', (c) => c.notNull())
          .addColumn('tags', 'text', (c) => c.notNull())
          .addColumn('desired', 'text', (c) => c.notNull())
          .addColumn('reported', 'text', (c) => c.notNull())
          .addColumn('configurations', 'text', (c) => c.notNull())
          .addPrimaryKeyConstraint('twins_pk', ['device_id', 'module_id'])
          .execute();
        await db.schema
          .createTable('telemetry')
          .addColumn('seq', serial, (c) => (dialect === 'sqlite' ? c.primaryKey().autoIncrement() : c.primaryKey()))
          .addColumn('device_id', 'text', (c) => c.notNull())
          .addColumn('module_id', 'text', (c) => c.notNull())
          .addColumn('enqueued_time', bigint, (c) => c.notNull())
          .addColumn('properties', 'text', (c) => c.notNull())
          .addColumn('system_properties', 'text', (c) => c.notNull())
          .addColumn('body', binary, (c) => c.notNull())
          .execute();
        await db.schema.createIndex('telemetry_device_seq').on('telemetry').columns(['device_id', 'seq']).execute();
        await db.schema.createIndex('telemetry_time').on('telemetry').column('enqueued_time').execute();
        await db.schema
          .createTable('consumers')
          .addColumn('name', 'text', (c) => c.primaryKey())
          .addColumn('offset', bigint, (c) => c.notNull())
          .addColumn('updated_at', bigint, (c) => c.notNull())
          .execute();
        await db.schema
          .createTable('configurations')
          .addColumn('id', 'text', (c) => c.primaryKey())
          .addColumn('etag_version', 'integer', (c) => c.notNull())
          .addColumn('priority', 'integer', (c) => c.notNull())
          .addColumn('created_time', 'text', (c) => c.notNull())
          .addColumn('doc', 'text', (c) => c.notNull())
          .execute();
        await db.schema
          .createTable('policies')
          .addColumn('name', 'text', (c) => c.primaryKey())
          .addColumn('primary_key', 'text', (c) => c.notNull())
          .addColumn('secondary_key', 'text', (c) => c.notNull())
          .addColumn('rights', 'text', (c) => c.notNull())
          .execute();
        await db.schema
          .createTable('presence')
          .addColumn('device_id', 'text', (c) => c.notNull())
          .addColumn('module_id', 'text', (c) => c.notNull())
          .addColumn('replica_id', 'text', (c) => c.notNull())
          .addColumn('connected_at', bigint, (c) => c.notNull())
          .addPrimaryKeyConstraint('presence_pk', ['device_id', 'module_id'])
          .execute();
        await db.schema
          .createTable('bus')
          .addColumn('id', serial, (c) => (dialect === 'sqlite' ? c.primaryKey().autoIncrement() : c.primaryKey()))
          .addColumn('channel', 'text', (c) => c.notNull())
          .addColumn('payload', 'text', (c) => c.notNull())
          .addColumn('created_at', bigint, (c) => c.notNull())
          .execute();
        if (dialect === 'postgres') await sql`ALTER TABLE telemetry ALTER COLUMN body SET STORAGE EXTERNAL`.execute(db);
      },
    },
    '0002_c2d': {
      async up(db: Kysely<unknown>): Promise<void> {
        // Cloud-to-device queue: one row per pending message; a lock is (lock_token, locked_until > now).
        await db.schema
          .createTable('c2d_messages')
          .addColumn('seq', serial, (c) => (dialect === 'sqlite' ? c.primaryKey().autoIncrement() : c.primaryKey()))
          .addColumn('device_id', 'text', (c) => c.notNull())
          .addColumn('message_id', 'text', (c) => c.notNull())
          .addColumn('generation_id', 'text', (c) => c.notNull())
          .addColumn('ack', 'text', (c) => c.notNull())
          .addColumn('enqueued_at', bigint, (c) => c.notNull())
          .addColumn('expires_at', bigint, (c) => c.notNull())
          .addColumn('delivery_count', 'integer', (c) => c.notNull())
          .addColumn('lock_token', 'text', (c) => c.notNull())
          .addColumn('locked_until', bigint, (c) => c.notNull())
          .addColumn('properties', 'text', (c) => c.notNull())
          .addColumn('system_properties', 'text', (c) => c.notNull())
          .addColumn('body', binary, (c) => c.notNull())
          .execute();
        await db.schema.createIndex('c2d_device_seq').on('c2d_messages').columns(['device_id', 'seq']).execute();
        await db.schema.createIndex('c2d_expires').on('c2d_messages').column('expires_at').execute();
        await db.schema
          .createTable('c2d_feedback')
          .addColumn('seq', serial, (c) => (dialect === 'sqlite' ? c.primaryKey().autoIncrement() : c.primaryKey()))
          .addColumn('device_id', 'text', (c) => c.notNull())
          .addColumn('message_id', 'text', (c) => c.notNull())
          .addColumn('generation_id', 'text', (c) => c.notNull())
          .addColumn('status_code', 'text', (c) => c.notNull())
          .addColumn('enqueued_at', bigint, (c) => c.notNull())
          .execute();
      },
    },
    '0003_eventhubs': {
      async up(db: Kysely<unknown>): Promise<void> {
        // The Event Hubs-compatible endpoint: each message's partition and its sequence number in that partition,
        // assigned at insert under the partition row's lock (so a partition's committed sequence numbers never have a
        // hole a reader could skip). Messages stored before this migration have neither and are not served there.
        await db.schema.alterTable('telemetry').addColumn('partition_id', 'integer').execute();
        await db.schema.alterTable('telemetry').addColumn('partition_seq', bigint).execute();
        await db.schema.createIndex('telemetry_partition_seq').on('telemetry').columns(['partition_id', 'partition_seq']).unique().execute();
        await db.schema
          .createTable('eventhub_partitions')
          .addColumn('partition_id', 'integer', (c) => c.primaryKey())
          .addColumn('last_seq', bigint, (c) => c.notNull())
          .addColumn('last_enqueued_time', bigint, (c) => c.notNull())
          .addColumn('created_at', bigint, (c) => c.notNull())
          .execute();
      },
    },
  };
}

/** Supplies the in-code migrations to kysely's `Migrator`. */
export class InCodeMigrations implements MigrationProvider {
  readonly #dialect: Dialect;
  constructor(dialect: Dialect) {
    this.#dialect = dialect;
  }
  getMigrations(): Promise<Record<string, Migration>> {
    return Promise.resolve(migrations(this.#dialect));
  }
}
