import type { AccessPolicy } from '../auth/policies.js';
import type { JsonObject, TwinProperties } from '@kedge/protocol';

/** Authentication of a device or module identity. Keys are secrets: never log them. */
export interface IdentityAuth {
  readonly type: 'sas' | 'selfSigned' | 'certificateAuthority' | 'none';
  readonly primaryKey: string;
  readonly secondaryKey: string;
  readonly primaryThumbprint: string;
  readonly secondaryThumbprint: string;
}

/** A device identity as stored. `etagVersion` increments on every identity write. */
export interface DeviceRecord {
  readonly deviceId: string;
  readonly generationId: string;
  readonly etagVersion: number;
  readonly status: 'enabled' | 'disabled';
  readonly statusReason: string;
  readonly statusUpdatedTime: string;
  readonly auth: IdentityAuth;
  readonly iotEdge: boolean;
  readonly deviceScope: string;
  readonly parentScopes: readonly string[];
  readonly createdTime: string;
}

/** A module identity as stored. */
export interface ModuleRecord {
  readonly deviceId: string;
  readonly moduleId: string;
  readonly generationId: string;
  readonly etagVersion: number;
  readonly auth: IdentityAuth;
  readonly managedBy: string;
  readonly createdTime: string;
}

/** A device or module twin as stored (`moduleId` is `''` for a device twin). */
export interface TwinRecord {
  readonly deviceId: string;
  readonly moduleId: string;
  /** Increments on every twin write; the twin's ETag and `version` derive from it. */
  readonly version: number;
  readonly tags: JsonObject;
  readonly desired: TwinProperties;
  readonly reported: TwinProperties;
  /** `{"<configurationId>": {"status": "Targeted" | "Applied"}}`. */
  readonly configurations: JsonObject;
}

/** One stored telemetry message. `offset` is assigned by the store, strictly increasing. */
export interface TelemetryRecord {
  readonly offset: number;
  readonly deviceId: string;
  readonly moduleId: string;
  readonly enqueuedTime: number;
  readonly properties: Readonly<Record<string, string>>;
  readonly systemProperties: Readonly<Record<string, string>>;
  readonly body: Buffer;
  /** The Event Hubs partition the message went to (absent: stored without one, not served by that endpoint). */
  readonly partition?: number;
  /** Its sequence number in that partition, assigned by the store: 0, 1, 2, … with no holes. */
  readonly sequenceNumber?: number;
}
export type NewTelemetry = Omit<TelemetryRecord, 'offset' | 'sequenceNumber'>;

/** One partition of the Event Hubs-compatible endpoint, as stored. Sequence numbers are -1 while it is empty. */
export interface PartitionRecord {
  readonly partition: number;
  /** Sequence number of the oldest stored message (after retention), -1 when none is stored. */
  readonly beginSequenceNumber: number;
  /** Sequence number of the last message ever enqueued, -1 when none was. */
  readonly lastSequenceNumber: number;
  /** When it was (ms epoch), 0 when none was. */
  readonly lastEnqueuedTime: number;
  /** When the partitions were created (ms epoch). */
  readonly createdAt: number;
}

/** An automatic deployment (IoT Hub configuration) as stored: the whole document plus indexed fields. */
export interface ConfigurationRecord {
  readonly id: string;
  readonly etagVersion: number;
  readonly priority: number;
  readonly createdTimeUtc: string;
  readonly doc: JsonObject;
}

/** Where a connected device/module is (which replica holds its MQTT connection). */
export interface PresenceRecord {
  readonly deviceId: string;
  readonly moduleId: string;
  readonly replicaId: string;
  readonly connectedAt: number;
}

/** IoT Hub's `ack` values of a cloud-to-device message: which outcomes produce a feedback record. */
export type C2dAck = 'none' | 'positive' | 'negative' | 'full';

/** Final outcome of a cloud-to-device message, as IoT Hub's feedback `statusCode` names it. */
export type C2dOutcome = 'Success' | 'Expired' | 'DeliveryCountExceeded' | 'Rejected' | 'Purged';

/** One queued cloud-to-device message. Times are ms epoch; `lockedUntil` 0 (or past) means not locked. */
export interface C2dMessageRecord {
  readonly seq: number;
  readonly deviceId: string;
  readonly messageId: string;
  /** The device's `generationId` when the message was queued (feedback names it). */
  readonly generationId: string;
  readonly ack: C2dAck;
  readonly enqueuedAt: number;
  readonly expiresAt: number;
  readonly deliveryCount: number;
  readonly lockToken: string;
  readonly lockedUntil: number;
  readonly properties: Readonly<Record<string, string>>;
  /** IoT Hub system properties by their long names (`messageId`, `correlationId`, `userId`, `contentType`, …). */
  readonly systemProperties: Readonly<Record<string, string>>;
  readonly body: Buffer;
}
export type NewC2dMessage = Omit<C2dMessageRecord, 'seq' | 'generationId' | 'deliveryCount' | 'lockToken' | 'lockedUntil'>;

/** One feedback record waiting for the service's feedback receiver. */
export interface C2dFeedbackRecord {
  readonly seq: number;
  readonly deviceId: string;
  readonly messageId: string;
  readonly generationId: string;
  readonly statusCode: C2dOutcome;
  /** When the outcome happened (ms epoch). */
  readonly enqueuedAt: number;
}

/** How a device settles a locked message. */
export type C2dSettlement = 'complete' | 'reject' | 'abandon';

/** Outcome of a read-modify-write: `undefined` from the mutator means "no change". */
export type TwinMutator = (twin: TwinRecord) => TwinRecord | undefined;

/**
 * The hub's storage port. Implementations (SQLite, PostgreSQL) must pass `describeStore` in `store.contract.ts`.
 * Contract highlights:
 * - `create*` throw `HubError` `CLOUD_ERR_DEVICE_EXISTS`/`CLOUD_ERR_MODULE_EXISTS`/`CLOUD_ERR_CONFIGURATION_EXISTS`.
 * - `update*`/`delete*` take the expected `etagVersion` (or `undefined` for "any") and throw
 *   `CLOUD_ERR_PRECONDITION_FAILED` on mismatch, `*_NOT_FOUND` when absent.
 * - Creating a device or module creates its twin in the same transaction; deleting a device deletes its modules and
 *   all their twins.
 * - `mutateTwin` is atomic: concurrent mutations of one twin are serialised, none is lost.
 */
export interface Store {
  readonly dialect: 'sqlite' | 'postgres';

  createDevice(device: DeviceRecord, twin: TwinRecord): Promise<void>;
  getDevice(deviceId: string): Promise<DeviceRecord | undefined>;
  listDevices(opts: { limit: number; after?: string }): Promise<DeviceRecord[]>;
  updateDevice(device: DeviceRecord, expectedEtag: number | undefined): Promise<DeviceRecord>;
  deleteDevice(deviceId: string, expectedEtag: number | undefined): Promise<void>;
  countDevices(): Promise<{ total: number; enabled: number }>;

  createModule(module: ModuleRecord, twin: TwinRecord): Promise<void>;
  getModule(deviceId: string, moduleId: string): Promise<ModuleRecord | undefined>;
  listModules(deviceId: string): Promise<ModuleRecord[]>;
  updateModule(module: ModuleRecord, expectedEtag: number | undefined): Promise<ModuleRecord>;
  deleteModule(deviceId: string, moduleId: string, expectedEtag: number | undefined): Promise<void>;

  getTwin(deviceId: string, moduleId: string): Promise<TwinRecord | undefined>;
  /** Device twins (moduleId `''`) of devices, in deviceId order, `after` exclusive. */
  listDeviceTwins(opts: { limit: number; after?: string; edgeOnly?: boolean }): Promise<TwinRecord[]>;
  /** Module twins of one device. */
  listModuleTwins(deviceId: string): Promise<TwinRecord[]>;
  /** Atomic read-modify-write. Returns the stored twin after the call, or `undefined` if the twin does not exist. */
  mutateTwin(deviceId: string, moduleId: string, mutate: TwinMutator): Promise<{ before: TwinRecord; after: TwinRecord } | undefined>;
  /** Creates the module twin if it does not exist yet (deployments may name modules that have no identity). */
  ensureTwin(twin: TwinRecord): Promise<void>;

  appendTelemetry(batch: readonly NewTelemetry[]): Promise<number[]>;
  readTelemetry(opts: { from: number; limit: number; deviceId?: string; moduleId?: string }): Promise<TelemetryRecord[]>;
  /** Deletes messages older than `olderThan` (ms epoch) and all but the newest `keepLast`. Returns how many went. */
  purgeTelemetry(opts: { olderThan: number; keepLast: number }): Promise<number>;
  telemetryBounds(): Promise<{ first: number; last: number; count: number }>;
  getConsumerOffset(name: string): Promise<number | undefined>;
  setConsumerOffset(name: string, offset: number): Promise<void>;

  /**
   * Creates partitions `0..count-1` of the Event Hubs-compatible endpoint on first start and returns the stored
   * count: once created it is fixed (as on IoT Hub), a later `count` is ignored by the store.
   */
  initPartitions(count: number, now: number): Promise<number>;
  /** Messages of `partition` from sequence number `fromSeq` (inclusive), in sequence order. */
  readPartition(opts: { partition: number; fromSeq: number; limit: number }): Promise<TelemetryRecord[]>;
  getPartition(partition: number): Promise<PartitionRecord | undefined>;
  /** The sequence number of the first stored message of `partition` enqueued after `time` (ms epoch), if any. */
  partitionSeqAfter(partition: number, time: number): Promise<number | undefined>;

  createConfiguration(cfg: ConfigurationRecord): Promise<void>;
  getConfiguration(id: string): Promise<ConfigurationRecord | undefined>;
  listConfigurations(): Promise<ConfigurationRecord[]>;
  updateConfiguration(cfg: ConfigurationRecord, expectedEtag: number | undefined): Promise<ConfigurationRecord>;
  deleteConfiguration(id: string, expectedEtag: number | undefined): Promise<void>;

  listPolicies(): Promise<AccessPolicy[]>;
  /** Inserts policies whose name is not stored yet (first start); existing ones are kept. */
  seedPolicies(policies: readonly AccessPolicy[]): Promise<void>;

  setPresence(p: PresenceRecord): Promise<void>;
  /** Removes presence only if still owned by `replicaId` (a reconnect elsewhere wins). */
  clearPresence(deviceId: string, moduleId: string, replicaId: string): Promise<void>;
  getPresence(deviceId: string, moduleId: string): Promise<PresenceRecord | undefined>;
  /** Devices (not modules) with a live connection on any replica (`GET /statistics/service`). */
  countConnectedDevices(): Promise<number>;
  clearReplicaPresence(replicaId: string): Promise<void>;

  /**
   * Queues a cloud-to-device message for an existing device, atomically with the check that fewer than
   * `maxPending` are queued for it (serialised per device on PostgreSQL by locking the device row).
   */
  enqueueC2d(message: NewC2dMessage, maxPending: number): Promise<'queued' | 'full' | 'no-device'>;
  /**
   * Locks the oldest deliverable message of `deviceId` for `lockMs` (new lock token, delivery count + 1). Messages
   * met on the way that expired or reached `maxDeliveryCount` are removed, with feedback where their `ack` asks.
   */
  lockC2d(deviceId: string, opts: { now: number; lockMs: number; maxDeliveryCount: number }): Promise<C2dMessageRecord | undefined>;
  /**
   * Settles a locked message: `complete` removes it (feedback `Success`), `reject` removes it (`Rejected`),
   * `abandon` unlocks it. False when no message holds `lockToken` (lock lost to a re-delivery, or gone).
   */
  settleC2d(deviceId: string, lockToken: string, settlement: C2dSettlement, now: number): Promise<boolean>;
  /** Removes every queued message of `deviceId` (feedback `Purged` where asked); returns how many. */
  purgeC2d(deviceId: string, now: number): Promise<number>;
  /** Removes expired and dead-lettered (unlocked at `maxDeliveryCount`) messages of every device, with feedback. */
  expireC2d(now: number, maxDeliveryCount: number): Promise<number>;
  /** Messages queued for `deviceId`. */
  countC2d(deviceId: string): Promise<number>;
  /** The oldest feedback records, at most `limit`. */
  readC2dFeedback(limit: number): Promise<C2dFeedbackRecord[]>;
  deleteC2dFeedback(seqs: readonly number[]): Promise<void>;

  /** Liveness of the database (readiness probe). */
  ping(): Promise<void>;
  close(): Promise<void>;
}
