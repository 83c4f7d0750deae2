/**
 * The edge hub's durable `MessageStore` (ADR 0008): an append-only segmented log shared by every queue, group
 * commit, atomic checkpoints, CRC-checked recovery, TTL expiry and a disk quota with a documented eviction policy.
 */
export { openMessageStore, parseFsyncPolicy, FsMessageStore } from './fs-store.js';
export type { FsMessageStoreOptions, FsyncPolicy, OnFull, FsStoreStats } from './fs-store.js';
export { StateFileError, writeFileDurably } from './state-file.js';
