import { join } from 'node:path';
import type { Identity } from '@kedge/protocol';
import { readJsonFile, writeFileDurably } from './durable-file.js';
import { identityKey } from './identities.js';
import type { Logger } from './log.js';

/** A JSON object whose every nested object has no prototype: hostile keys (`__proto__`, `constructor`) are data. */
export type SafeObject = { [key: string]: unknown };

const isPlainObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/** A deep copy of a JSON value with null-prototype objects. */
export function toSafe(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(toSafe);
  if (!isPlainObject(v)) return v;
  const out = Object.create(null) as SafeObject;
  for (const k of Object.keys(v)) out[k] = toSafe(v[k]);
  return out;
}

/** Parses JSON into null-prototype objects; `undefined` when it is not JSON. */
export function parseSafe(text: string): unknown {
  try {
    return toSafe(JSON.parse(text));
  } catch {
    return undefined;
  }
}

/** JSON merge patch (RFC 7396, `null` deletes) of `patch` into the null-prototype object `target`, in place. */
export function mergeSafe(target: SafeObject, patch: SafeObject): void {
  for (const k of Object.keys(patch)) {
    const v = patch[k];
    if (v === null) {
      delete target[k];
    } else if (isPlainObject(v)) {
      const cur = target[k];
      const next = isPlainObject(cur) ? (cur as SafeObject) : (Object.create(null) as SafeObject);
      mergeSafe(next, v);
      target[k] = next;
    } else {
      target[k] = toSafe(v);
    }
  }
}

interface Entry {
  desired: SafeObject;
  reported: SafeObject;
  /** Reported patches accepted while the hub was unreachable, oldest first. */
  pending: SafeObject[];
}

const versionOf = (doc: SafeObject): number => (typeof doc['$version'] === 'number' ? doc['$version'] : 0);

/**
 * The twins the edge hub has seen (its own and its clients'), cached on disk so a module gets its twin while the
 * hub is unreachable and reported patches accepted offline are sent upstream later (iotedge-protocols.md §3.5).
 * One JSON file per identity under `dir`, replaced atomically.
 */
export class TwinCache {
  readonly #dir: string;
  readonly #log: Logger;
  readonly #entries = new Map<string, Entry>();

  constructor(dir: string, log: Logger) {
    this.#dir = dir;
    this.#log = log;
  }

  #file(id: Identity): string {
    return join(this.#dir, `${encodeURIComponent(identityKey(id.deviceId, id.moduleId))}.json`);
  }

  #entry(id: Identity): Entry | undefined {
    const key = identityKey(id.deviceId, id.moduleId);
    let e = this.#entries.get(key);
    if (e) return e;
    const raw = toSafe(readJsonFile(this.#file(id)));
    if (!isPlainObject(raw) || !isPlainObject(raw['desired']) || !isPlainObject(raw['reported'])) return undefined;
    e = { desired: raw['desired'], reported: raw['reported'], pending: Array.isArray(raw['pending']) ? (raw['pending'].filter(isPlainObject)) : [] };
    this.#entries.set(key, e);
    return e;
  }

  #save(id: Identity, e: Entry): void {
    try {
      writeFileDurably(this.#file(id), JSON.stringify({ desired: e.desired, reported: e.reported, pending: e.pending }));
    } catch (err) {
      this.#log.warn({ err: err instanceof Error ? err.message : String(err) }, 'Could not persist a cached twin');
    }
  }

  /** Stores the twin the hub returned (`{desired, reported}` JSON); false when the body is not such a document. */
  put(id: Identity, body: string): boolean {
    const doc = parseSafe(body);
    if (!isPlainObject(doc) || !isPlainObject(doc['desired']) || !isPlainObject(doc['reported'])) return false;
    const e: Entry = { desired: doc['desired'], reported: doc['reported'], pending: this.#entry(id)?.pending ?? [] };
    this.#entries.set(identityKey(id.deviceId, id.moduleId), e);
    this.#save(id, e);
    return true;
  }

  /** The cached twin as a GET reply body, with reported patches not yet sent applied; `undefined` when never seen. */
  get(id: Identity): string | undefined {
    const e = this.#entry(id);
    if (!e) return undefined;
    const reported = toSafe(e.reported) as SafeObject;
    let v = versionOf(reported);
    for (const p of e.pending) {
      mergeSafe(reported, p);
      v++;
    }
    reported['$version'] = v;
    return JSON.stringify({ desired: e.desired, reported });
  }

  /** The cached desired properties (null-prototype), if any. */
  desired(id: Identity): SafeObject | undefined {
    return this.#entry(id)?.desired;
  }

  /** Applies a desired patch from the hub (`$version` inside) to the cached twin. */
  applyDesired(id: Identity, patch: unknown): void {
    const e = this.#entry(id);
    if (!e || !isPlainObject(patch)) return;
    const version = patch['$version'];
    mergeSafe(e.desired, patch);
    if (typeof version === 'number') e.desired['$version'] = version;
    this.#save(id, e);
  }

  /** Applies a reported patch the hub accepted (with its new `$version`). */
  applyReported(id: Identity, patch: SafeObject, version: number | undefined): void {
    const e = this.#entry(id);
    if (!e) return;
    mergeSafe(e.reported, patch);
    if (version !== undefined) e.reported['$version'] = version;
    this.#save(id, e);
  }

  /** Queues a reported patch accepted while offline; returns the reported `$version` the client is told. */
  addPending(id: Identity, patch: SafeObject): number {
    const key = identityKey(id.deviceId, id.moduleId);
    const e = this.#entry(id) ?? { desired: Object.assign(Object.create(null) as SafeObject, { $version: 0 }), reported: Object.assign(Object.create(null) as SafeObject, { $version: 0 }), pending: [] };
    this.#entries.set(key, e);
    e.pending.push(patch);
    this.#save(id, e);
    return versionOf(e.reported) + e.pending.length;
  }

  /** Reported patches waiting to be sent, oldest first. */
  pending(id: Identity): readonly SafeObject[] {
    return this.#entry(id)?.pending ?? [];
  }

  /** Identities with reported patches waiting. */
  withPending(): Identity[] {
    return [...this.#entries.entries()].filter(([, e]) => e.pending.length > 0).map(([k]) => {
      const slash = k.indexOf('/');
      return slash < 0 ? { deviceId: k, moduleId: '' } : { deviceId: k.slice(0, slash), moduleId: k.slice(slash + 1) };
    });
  }

  /** Drops the oldest pending patch after the hub accepted it. */
  shiftPending(id: Identity, version: number | undefined): void {
    const e = this.#entry(id);
    const p = e?.pending.shift();
    if (!e || !p) return;
    mergeSafe(e.reported, p);
    if (version !== undefined) e.reported['$version'] = version;
    this.#save(id, e);
  }
}
