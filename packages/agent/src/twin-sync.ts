import type { Logger } from 'pino';
import type { IotHubClient } from '@kedge/iothub-client';
import type { ClusterConfig, KubeClient } from '@kedge/kube';
import { parseEdgeDeploymentSpec, type EdgeDeploymentSpec } from '@kedge/manifest';
import { diffAsMergePatch, jsonEqual, userProperties, type JsonObject } from '@kedge/protocol';
import { checkAgentDesired, desiredUserPart, mergeDesired } from './desired.js';
import { KubernetesModuleRuntime } from './kubernetes-runtime.js';
import type { ModuleRuntime } from './module-runtime.js';
import { edgeAgentReported, type LastDesired } from './reported.js';
import type { TwinCacheStore } from './twin-cache.js';

export { TWIN_SYNC_FIELD_MANAGER } from './kubernetes-runtime.js';

/** The Kubernetes shorthand of {@link TwinSyncOptions}: the device's EdgeDeployment, as a {@link KubernetesModuleRuntime}. */
export interface KubernetesTwinTarget {
  readonly kube: KubeClient;
  readonly cluster: ClusterConfig;
  readonly namespace: string;
  /** The device's EdgeDeployment. */
  readonly name: string;
}

export type TwinSyncOptions = TwinSyncCommonOptions & ({ readonly runtime: ModuleRuntime } | KubernetesTwinTarget);

export interface TwinSyncCommonOptions {
  readonly client: IotHubClient;
  readonly deviceId: string;
  readonly cache: TwinCacheStore;
  readonly log: Logger;
  /** Reported-property changes within this window go out as one patch. @default 500 */
  readonly reportCoalesceMs?: number;
  /** Retry delay after a failed EdgeDeployment write or twin read. @default 5000 */
  readonly retryMs?: number;
  /** Called after every accepted desired document was written (module identities follow the spec). */
  readonly onSpecWritten?: (spec: EdgeDeploymentSpec) => void;
}

/**
 * Twin sync: the cloud half of the agent, on any {@link ModuleRuntime}. Desired `$edgeAgent` properties (full
 * document on every connection, then patches applied strictly in `$version` order — a gap re-reads the whole twin,
 * as edgeAgent does) are validated and applied to the runtime (`spec.deviceId`, `spec.manifestVersion` = the desired
 * `$version`, modules, system modules, registry credentials): on Kubernetes written into the device's EdgeDeployment
 * by server-side apply with its own field manager. A refused document changes nothing and is reported with IoT
 * Edge's status code. What runs — the runtime's status — is reported as `$edgeAgent` reported properties in IoT
 * Edge's schema, as merge patches against what the twin holds, bursts coalesced. With the hub unreachable nothing
 * is written anywhere; the last desired document is cached so that a restart while offline knows what it last handled.
 */
export class TwinSync {
  readonly #o: TwinSyncOptions;
  readonly #runtime: ModuleRuntime;
  /** True when this twin sync made the runtime (the Kubernetes shorthand) and so stops it. */
  readonly #ownsRuntime: boolean;
  readonly #startedAt = new Date().toISOString();
  #desired: JsonObject | undefined;
  #last: LastDesired | undefined;
  /** The reported document the twin holds (from GET, then what we sent). */
  #baseline: JsonObject | undefined;
  #chain: Promise<void> = Promise.resolve();
  #reportTimer: NodeJS.Timeout | undefined;
  #retryTimer: NodeJS.Timeout | undefined;
  #reporting = false;
  #reportAgain = false;
  #stopped = false;
  readonly #listeners: Array<() => void> = [];

  constructor(options: TwinSyncOptions) {
    this.#o = options;
    this.#ownsRuntime = !('runtime' in options);
    this.#runtime = 'runtime' in options ? options.runtime : new KubernetesModuleRuntime({ ...options, log: options.log });
  }

  /** The last desired `$version` handled and its outcome, for tests and `kedge check`. */
  get lastDesired(): LastDesired | undefined {
    return this.#last;
  }

  /** True once the runtime's cache has synced. */
  hasSynced(): boolean {
    return this.#runtime.hasSynced();
  }

  /** Loads the cache, starts watching the runtime and follows the client's connection. */
  async start(signal?: AbortSignal): Promise<void> {
    const cached = await this.#o.cache.load();
    this.#desired = cached.desired;
    this.#last = cached.last;
    let had = false;
    this.#listeners.push(
      this.#runtime.onChange(() => {
        const has = this.#runtime.snapshot().spec !== undefined;
        // Someone deleted the deployment (the EdgeDeployment): write the last accepted document again (the cloud still wants it).
        if (had && !has) this.#enqueue(() => this.#rewrite());
        had = has;
        this.#scheduleReport();
      }),
    );
    if (this.#ownsRuntime) await this.#runtime.start(signal);
    had = this.#runtime.snapshot().spec !== undefined;
    const c = this.#o.client;
    const onConnected = () => this.#enqueue(() => this.#fullSync());
    const onDesired = (patch: JsonObject, version: number | undefined) => this.#enqueue(() => this.#onPatch(patch, version));
    c.on('connected', onConnected);
    c.on('desired', onDesired);
    this.#listeners.push(() => c.off('connected', onConnected), () => c.off('desired', onDesired));
    if (c.connected) onConnected();
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    for (const off of this.#listeners.splice(0)) off();
    clearTimeout(this.#reportTimer);
    clearTimeout(this.#retryTimer);
    await this.#chain;
    if (this.#ownsRuntime) await this.#runtime.stop();
  }

  #enqueue(fn: () => Promise<void>): void {
    this.#chain = this.#chain.then(async () => {
      if (this.#stopped) return;
      try {
        await fn();
      } catch (e) {
        this.#o.log.warn({ err: (e as Error).message }, 'Twin sync step failed; retrying');
        this.#retry();
      }
    });
  }

  #retry(): void {
    if (this.#stopped || this.#retryTimer) return;
    this.#retryTimer = setTimeout(() => {
      this.#retryTimer = undefined;
      if (this.#o.client.connected) this.#enqueue(() => this.#fullSync());
    }, this.#o.retryMs ?? 5000);
  }

  async #fullSync(): Promise<void> {
    const c = this.#o.client;
    if (!c.connected) return;
    const twin = await c.getTwin();
    this.#baseline = userProperties(twin.reported);
    const version = typeof twin.desired['$version'] === 'number' ? twin.desired['$version'] : 0;
    await this.#handle(desiredUserPart(twin.desired), version);
    this.#scheduleReport(0);
  }

  async #onPatch(patch: JsonObject, version: number | undefined): Promise<void> {
    const current = this.#last?.version;
    if (version === undefined || current === undefined || this.#desired === undefined || version !== current + 1) {
      this.#o.log.info({ version, current }, 'Desired patch out of order; reading the whole twin');
      await this.#fullSync();
      return;
    }
    await this.#handle(mergeDesired(this.#desired, patch), version);
  }

  async #handle(doc: JsonObject, version: number): Promise<void> {
    const plain = desiredUserPart(doc);
    if (this.#last?.version === version && this.#desired !== undefined && jsonEqual(this.#desired, plain)) return;
    const check = checkAgentDesired(plain);
    if (!check.ok) {
      this.#o.log.warn({ version, code: check.status.code, description: check.status.description }, 'Refused desired properties; nothing changed');
      this.#desired = plain;
      this.#last = { version, refused: check.status };
      await this.#o.cache.save({ desired: plain, last: this.#last });
      this.#scheduleReport(0);
      return;
    }
    for (const w of check.warnings) this.#o.log.info({ path: w.path }, w.message);
    const spec: EdgeDeploymentSpec = await this.#write({ deviceId: this.#o.deviceId, manifestVersion: String(version), ...check.spec }, version, plain);
    this.#o.onSpecWritten?.(spec);
  }

  async #write(specFields: Record<string, unknown>, version: number, plain: JsonObject): Promise<EdgeDeploymentSpec> {
    const parsed = parseEdgeDeploymentSpec(specFields);
    if (!parsed.ok) throw new Error(`The checked deployment does not parse as a spec: ${parsed.error.map((i) => `${i.path}: ${i.message}`).join('; ')}`);
    const { generation } = await this.#runtime.apply(parsed.value.spec);
    this.#desired = plain;
    this.#last = { version, generation };
    await this.#o.cache.save({ desired: plain, last: this.#last });
    this.#o.log.info({ version, generation, runtime: this.#runtime.kind }, 'Applied the deployment from desired properties');
    this.#scheduleReport(0);
    return parsed.value.spec;
  }

  async #rewrite(): Promise<void> {
    const last = this.#last;
    if (!this.#desired || !last || last.refused) return;
    const check = checkAgentDesired(this.#desired);
    if (!check.ok) return;
    this.#o.log.warn({ runtime: this.#runtime.kind }, 'The deployment (EdgeDeployment) was deleted; applying the last desired deployment again');
    const spec = await this.#write({ deviceId: this.#o.deviceId, manifestVersion: String(last.version), ...check.spec }, last.version, this.#desired);
    this.#o.onSpecWritten?.(spec);
  }

  #scheduleReport(delayMs = this.#o.reportCoalesceMs ?? 500): void {
    if (this.#stopped) return;
    if (this.#reportTimer) {
      if (delayMs > 0) return;
      clearTimeout(this.#reportTimer);
    }
    this.#reportTimer = setTimeout(() => {
      this.#reportTimer = undefined;
      void this.#report();
    }, delayMs);
  }

  async #report(): Promise<void> {
    if (this.#reporting) {
      this.#reportAgain = true;
      return;
    }
    const c = this.#o.client;
    // Offline: nothing to do; the next connection reads the twin and reports the difference.
    if (!c.connected || this.#baseline === undefined) return;
    this.#reporting = true;
    try {
      const snap = this.#runtime.snapshot();
      const full = edgeAgentReported({
        ...(snap.spec ? { spec: snap.spec } : {}),
        ...(snap.status ? { status: snap.status } : {}),
        ...(this.#last ? { last: this.#last } : {}),
        startedAt: this.#startedAt,
      });
      const patch = diffAsMergePatch(this.#baseline, full);
      if (Object.keys(patch).length > 0) {
        await c.updateReported(patch);
        this.#baseline = full;
        this.#o.log.debug({ keys: Object.keys(patch) }, 'Reported $edgeAgent properties');
      }
    } catch (e) {
      this.#o.log.warn({ err: (e as Error).message }, 'Could not report $edgeAgent properties; will retry');
      this.#reportAgain = true;
    } finally {
      this.#reporting = false;
    }
    if (this.#reportAgain) {
      this.#reportAgain = false;
      this.#scheduleReport(this.#o.client.connected ? (this.#o.reportCoalesceMs ?? 500) : 0);
    }
  }
}
