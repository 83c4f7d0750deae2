import type { Logger } from './log.js';
import type { SafeObject } from './twins.js';

/** A client key as edgeHub writes it into `clients`: `.` → `%2E`, `$` → `%24`, space → `%20` (twin-safe). */
export const clientReportKey = (key: string): string => key.replace(/\./g, '%2E').replace(/\$/g, '%24').replace(/ /g, '%20');

interface ClientState {
  status: 'Connected' | 'Disconnected';
  lastConnectedTimeUtc?: string;
  lastDisconnectedTimeUtc?: string;
}

/**
 * Keeps the `$edgeHub` reported properties (iotedge-protocols.md §5.2): `schemaVersion`, `version`,
 * `lastDesiredVersion`, `lastDesiredStatus` and `clients` (modules stay as `Disconnected`, leaf devices that leave
 * are removed with `null`). Changes are coalesced (`debounceMs`) and sent as one merge patch of the whole state;
 * a send that fails (hub unreachable) is retried when {@link online} is called.
 */
export class EdgeHubReporter {
  readonly #send: (patch: SafeObject) => Promise<boolean>;
  readonly #log: Logger;
  readonly #debounceMs: number;
  #lastDesiredVersion: number | undefined;
  #lastDesiredStatus = { code: 200, description: '' };
  readonly #clients = new Map<string, ClientState>();
  readonly #removed = new Set<string>();
  #timer: NodeJS.Timeout | undefined;
  #sending = false;
  #dirty = false;
  #closed = false;

  constructor(deps: { send: (patch: SafeObject) => Promise<boolean>; log: Logger; debounceMs?: number }) {
    this.#send = deps.send;
    this.#log = deps.log;
    this.#debounceMs = deps.debounceMs ?? 500;
  }

  /** Records the outcome of applying desired properties version `version`. */
  desired(version: number, code: number, description: string): void {
    this.#lastDesiredVersion = version;
    this.#lastDesiredStatus = { code, description };
    this.#schedule();
  }

  /** Records a client connecting or disconnecting. */
  client(key: string, connected: boolean, isModule: boolean): void {
    const k = clientReportKey(key);
    const now = new Date().toISOString();
    if (connected) {
      if (this.#clients.get(k)?.status === 'Connected') return;
      this.#removed.delete(k);
      this.#clients.set(k, { status: 'Connected', lastConnectedTimeUtc: now });
    } else if (isModule) {
      const prev = this.#clients.get(k);
      this.#clients.set(k, { status: 'Disconnected', ...(prev?.lastConnectedTimeUtc ? { lastConnectedTimeUtc: prev.lastConnectedTimeUtc } : {}), lastDisconnectedTimeUtc: now });
    } else {
      this.#clients.delete(k);
      this.#removed.add(k);
    }
    this.#schedule();
  }

  /** The hub is reachable again: send what is pending. */
  online(): void {
    this.#dirty = true;
    this.#schedule();
  }

  /** The whole state as a merge patch. */
  patch(): SafeObject {
    const clients = Object.create(null) as SafeObject;
    for (const k of this.#removed) clients[k] = null;
    for (const [k, v] of this.#clients) clients[k] = { ...v };
    return Object.assign(Object.create(null) as SafeObject, {
      schemaVersion: '1.0',
      version: { version: '0.1.0', build: '', commit: '' },
      ...(this.#lastDesiredVersion === undefined ? {} : { lastDesiredVersion: this.#lastDesiredVersion }),
      lastDesiredStatus: this.#lastDesiredStatus,
      clients,
    });
  }

  #schedule(): void {
    this.#dirty = true;
    if (this.#timer || this.#closed) return;
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      void this.#flush();
    }, this.#debounceMs);
    this.#timer.unref();
  }

  async #flush(): Promise<void> {
    if (this.#sending || !this.#dirty || this.#closed) return;
    this.#sending = true;
    this.#dirty = false;
    const removed = [...this.#removed];
    try {
      const ok = await this.#send(this.patch());
      if (ok) for (const k of removed) this.#removed.delete(k);
      else this.#dirty = true;
    } catch (e) {
      this.#dirty = true;
      this.#log.debug({ err: e instanceof Error ? e.message : String(e) }, 'Could not report $edgeHub properties');
    } finally {
      this.#sending = false;
    }
  }

  close(): void {
    this.#closed = true;
    if (this.#timer) clearTimeout(this.#timer);
  }
}
