import type { Logger } from 'pino';
import type { IotHubClient } from '@kedge/iothub-client';
import { Informer, type ClusterConfig, type KubeClient } from '@kedge/kube';
import { EdgeDeploymentResource, parseEdgeDeploymentSpec, type EdgeDeploymentSpec } from '@kedge/manifest';
import { diffAsMergePatch, jsonEqual, userProperties, type JsonObject } from '@kedge/protocol';
import { checkAgentDesired, desiredUserPart, mergeDesired } from './desired.js';
import type { EdgeDeploymentObject } from './reconciler.js';
import { edgeAgentReported, type LastDesired } from './reported.js';
import type { TwinCache } from './twin-cache.js';

/** The field manager twin sync applies the EdgeDeployment with (the controller applies its children as `kedge-agent`). */
export const TWIN_SYNC_FIELD_MANAGER = 'kedge-twin-sync';

export interface TwinSyncOptions {
  readonly client: IotHubClient;
  readonly kube: KubeClient;
  readonly cluster: ClusterConfig;
  readonly namespace: string;
  /** The device's EdgeDeployment. */
  readonly name: string;
  readonly deviceId: string;
  readonly cache: TwinCache;
  readonly log: Logger;
  /** Reported-property changes within this window go out as one patch. @default 500 */
  readonly reportCoalesceMs?: number;
  /** Retry delay after a failed EdgeDeployment write or twin read. @default 5000 */
  readonly retryMs?: number;
  /** Called after every accepted desired document was written (module identities follow the spec). */
  readonly onSpecWritten?: (spec: EdgeDeploymentSpec) => void;
}

/**
 * Twin sync: the cloud half of the agent. Desired `$edgeAgent` properties (full document on every connection, then
 * patches applied strictly in `$version` order — a gap re-reads the whole twin, as edgeAgent does) are validated
 * and written into the device's EdgeDeployment by server-side apply with its own field manager (`spec.deviceId`,
 * `spec.manifestVersion` = the desired `$version`, modules, system modules, registry credentials). A refused
 * document changes nothing and is reported with IoT Edge's status code. What runs — the EdgeDeployment's status —
 * is reported as `$edgeAgent` reported properties in IoT Edge's schema, as merge patches against what the twin
 * holds, bursts coalesced. With the hub unreachable nothing is written anywhere; the last desired document is
 * cached in the namespace so that a restart while offline knows what it last handled.
 */
export class TwinSync {
  readonly #o: TwinSyncOptions;
  readonly #informer: Informer<EdgeDeploymentObject>;
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
    this.#informer = new Informer<EdgeDeploymentObject>(
      { apiVersion: EdgeDeploymentResource.apiVersion, kind: EdgeDeploymentResource.kind, namespace: options.namespace },
      { config: options.cluster, log: options.log },
    );
  }

  /** The last desired `$version` handled and its outcome, for tests and `kedge check`. */
  get lastDesired(): LastDesired | undefined {
    return this.#last;
  }

  /** True once the EdgeDeployment cache has synced. */
  hasSynced(): boolean {
    return this.#informer.hasSynced();
  }

  /** Loads the cache, starts watching the EdgeDeployment and follows the client's connection. */
  async start(signal?: AbortSignal): Promise<void> {
    const cached = await this.#o.cache.load();
    this.#desired = cached.desired;
    this.#last = cached.last;
    const mine = (ed: EdgeDeploymentObject) => ed.metadata?.name === this.#o.name;
    this.#informer.on('add', (ed) => mine(ed) && this.#scheduleReport());
    this.#informer.on('update', (ed) => mine(ed) && this.#scheduleReport());
    // Someone deleted the EdgeDeployment: write the last accepted document again (the cloud still wants it).
    this.#informer.on('delete', (ed) => mine(ed) && this.#enqueue(() => this.#rewrite()));
    this.#informer.start();
    if (!(await this.#informer.waitForSync(signal))) throw new Error('EdgeDeployment informer stopped before it synced');
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
    await this.#informer.stop();
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
    const applied = await this.#o.kube.apply<EdgeDeploymentObject>(
      { apiVersion: EdgeDeploymentResource.apiVersion, kind: EdgeDeploymentResource.kind, metadata: { name: this.#o.name, namespace: this.#o.namespace }, spec: specFields },
      { fieldManager: TWIN_SYNC_FIELD_MANAGER, force: true },
    );
    const generation = applied.metadata?.generation;
    this.#desired = plain;
    this.#last = { version, ...(generation !== undefined ? { generation } : {}) };
    await this.#o.cache.save({ desired: plain, last: this.#last });
    this.#o.log.info({ version, generation }, 'Wrote the EdgeDeployment from desired properties');
    this.#scheduleReport(0);
    const parsed = parseEdgeDeploymentSpec(applied.spec);
    return parsed.ok ? parsed.value.spec : (specFields as EdgeDeploymentSpec);
  }

  async #rewrite(): Promise<void> {
    const last = this.#last;
    if (!this.#desired || !last || last.refused) return;
    const check = checkAgentDesired(this.#desired);
    if (!check.ok) return;
    this.#o.log.warn({ name: this.#o.name }, 'The EdgeDeployment was deleted; writing the last desired deployment again');
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
      const ed = this.#informer.get(this.#o.name, this.#o.namespace);
      const parsed = ed ? parseEdgeDeploymentSpec(ed.spec) : undefined;
      const full = edgeAgentReported({
        ...(parsed?.ok ? { spec: parsed.value.spec } : {}),
        ...(ed?.status ? { status: ed.status } : {}),
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
