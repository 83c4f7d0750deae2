import type { Generated } from 'kysely';

/** Table types shared by the SQLite and PostgreSQL stores (JSON is stored as text in both). */
export interface Database {
  devices: {
    device_id: string;
    generation_id: string;
    etag_version: number;
    status: string;
    status_reason: string;
    status_updated: string;
    auth: string;
    iot_edge: number;
    device_scope: string;
    parent_scopes: string;
    created_time: string;
  };
  modules: {
    device_id: string;
    module_id: string;
    generation_id: string;
    etag_version: number;
    auth: string;
    managed_by: string;
    created_time: string;
  };
  twins: {
    device_id: string;
    module_id: string;
    version: number;
    tags: string;
    desired: string;
    reported: string;
    configurations: string;
  };
  telemetry: {
    seq: Generated<number | string>;
    device_id: string;
    module_id: string;
    enqueued_time: number | string;
    properties: string;
    system_properties: string;
    body: Buffer;
    /** Event Hubs partition and sequence number in it (null for messages stored before migration 0003). */
    partition_id: number | null;
    partition_seq: number | string | null;
  };
  eventhub_partitions: { partition_id: number; last_seq: number | string; last_enqueued_time: number | string; created_at: number | string };
  consumers: { name: string; offset: number | string; updated_at: number | string };
  configurations: { id: string; etag_version: number; priority: number; created_time: string; doc: string };
  policies: { name: string; primary_key: string; secondary_key: string; rights: string };
  presence: { device_id: string; module_id: string; replica_id: string; connected_at: number | string };
  c2d_messages: {
    seq: Generated<number | string>;
    device_id: string;
    message_id: string;
    generation_id: string;
    ack: string;
    enqueued_at: number | string;
    expires_at: number | string;
    delivery_count: number;
    lock_token: string;
    locked_until: number | string;
    properties: string;
    system_properties: string;
    body: Buffer;
  };
  c2d_feedback: {
    seq: Generated<number | string>;
    device_id: string;
    message_id: string;
    generation_id: string;
    status_code: string;
    enqueued_at: number | string;
  };
  bus: { id: Generated<number | string>; channel: string; payload: string; created_at: number | string };
}
