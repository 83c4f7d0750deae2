import { z } from 'zod';
import { readJsonFile, writeFileDurably } from './durable-file.js';
import type { ScopeIdentity } from './hub-client.js';
import type { Logger } from './log.js';

/** Where the scope comes from (the hub's device-scope API). */
export interface ScopeSource {
  deviceScope(): Promise<ScopeIdentity[]>;
}

/** The key of an identity in the cache: `deviceId` or `deviceId/moduleId`. */
export const identityKey = (deviceId: string, moduleId: string): string => (moduleId ? `${deviceId}/${moduleId}` : deviceId);

const CacheFile = z.object({
  version: z.literal(1),
  identities: z.array(z.object({ deviceId: z.string(), moduleId: z.string(), primaryKey: z.string(), secondaryKey: z.string(), enabled: z.boolean() })),
});

/** Options of {@link IdentityCache}. */
export interface IdentityCacheOptions {
  /** The JSON file the cache is persisted in (mode 0600: it holds keys). */
  readonly file: string;
  readonly source: ScopeSource;
  readonly log: Logger;
  /** Periodic refresh. */
  readonly refreshSeconds: number;
  /** Least time between two refreshes caused by unknown identities (a flood of bogus CONNECTs is one refresh). */
  readonly unknownRefreshSeconds: number;
  readonly now?: () => number;
}

/**
 * The identities of the edge device's scope (its modules and child devices, with keys), as last fetched from the
 * hub. Persisted on disk so clients can connect while the hub is unreachable; refreshed periodically and when a
 * client presents an identity the cache does not know (rate-limited). Listeners hear which identities were removed,
 * disabled or re-keyed, so the broker ends their sessions.
 */
export class IdentityCache {
  readonly #o: IdentityCacheOptions;
  #byKey = new Map<string, ScopeIdentity>();
  #refreshing: Promise<boolean> | undefined;
  #lastUnknownRefresh = Number.NEGATIVE_INFINITY;
  #timer: NodeJS.Timeout | undefined;
  readonly #listeners = new Set<(changed: ReadonlySet<string>) => void>();

  constructor(options: IdentityCacheOptions) {
    this.#o = options;
  }

  /** Loads the persisted cache (an unreadable file is logged and ignored: the next refresh rebuilds it). */
  load(): void {
    const raw = readJsonFile(this.#o.file);
    if (raw === undefined) return;
    const parsed = CacheFile.safeParse(raw);
    if (!parsed.success) {
      this.#o.log.warn({ file: this.#o.file }, 'Ignoring an unreadable identity cache');
      return;
    }
    this.#byKey = new Map(parsed.data.identities.map((i) => [identityKey(i.deviceId, i.moduleId), i]));
  }

  /** Starts the periodic refresh (the first one at once, without waiting for it). */
  start(): void {
    void this.refresh();
    this.#timer = setInterval(() => void this.refresh(), this.#o.refreshSeconds * 1000);
    this.#timer.unref();
  }

  get size(): number {
    return this.#byKey.size;
  }

  /** The cached identity, enabled or not. */
  get(deviceId: string, moduleId: string): ScopeIdentity | undefined {
    return this.#byKey.get(identityKey(deviceId, moduleId));
  }

  /** {@link get}, refreshing first when the identity is unknown and the last such refresh is old enough. */
  async lookup(deviceId: string, moduleId: string): Promise<ScopeIdentity | undefined> {
    const hit = this.get(deviceId, moduleId);
    if (hit) return hit;
    const now = (this.#o.now ?? Date.now)();
    if (now - this.#lastUnknownRefresh < this.#o.unknownRefreshSeconds * 1000) return undefined;
    this.#lastUnknownRefresh = now;
    await this.refresh();
    return this.get(deviceId, moduleId);
  }

  /** Called with the keys of identities removed, disabled or re-keyed by a refresh. */
  onChange(listener: (changed: ReadonlySet<string>) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /** Fetches the scope now (concurrent calls share one request). True when it succeeded. Never throws. */
  refresh(): Promise<boolean> {
    this.#refreshing ??= this.#doRefresh().finally(() => (this.#refreshing = undefined));
    return this.#refreshing;
  }

  async #doRefresh(): Promise<boolean> {
    let list: ScopeIdentity[];
    try {
      list = await this.#o.source.deviceScope();
    } catch (e) {
      this.#o.log.warn({ err: e instanceof Error ? e.message : String(e), cached: this.#byKey.size }, 'Could not refresh the device scope; using the cached identities');
      return false;
    }
    const next = new Map(list.map((i) => [identityKey(i.deviceId, i.moduleId), i]));
    const changed = new Set<string>();
    for (const [k, old] of this.#byKey) {
      const now = next.get(k);
      if (!now || !now.enabled || now.primaryKey !== old.primaryKey || now.secondaryKey !== old.secondaryKey) changed.add(k);
    }
    this.#byKey = next;
    try {
      writeFileDurably(this.#o.file, JSON.stringify({ version: 1, identities: [...next.values()] }));
    } catch (e) {
      this.#o.log.warn({ err: e instanceof Error ? e.message : String(e), file: this.#o.file }, 'Could not persist the identity cache');
    }
    this.#o.log.debug({ identities: next.size, changed: changed.size }, 'Refreshed the device scope');
    if (changed.size > 0) for (const l of this.#listeners) l(changed);
    return true;
  }

  close(): void {
    if (this.#timer) clearInterval(this.#timer);
    this.#listeners.clear();
  }
}
