import type { Bus } from '../cluster/bus.js';
import { hubError } from '../errors.js';
import type { Logger } from '../log.js';
import type { HubMetrics } from '../metrics.js';
import { etagOf } from '../registry/ids.js';
import { newTwin } from '../registry/registry.js';
import type { ConfigurationRecord, Store, TwinRecord } from '../storage/store.js';
import type { JsonObject } from '@kedge/protocol';
import { cloneJson, isObject, jsonEqual, newObject, objectFromEntries, ownValue, userProperties } from '@kedge/protocol';
import type { Twins } from '../twins/twins.js';
import type { ModulesContent } from './manifest-port.js';
import { composeLayers, validateLayer, validateManifest } from './manifest-port.js';
import type { QueryTwin, TwinPredicate } from './routing-port.js';
import { compileDeviceQuery, compileTargetCondition } from './routing-port.js';

/** IoT Hub's limit on configurations per hub. */
export const MAX_CONFIGURATIONS = 100;
const CONFIG_ID = /^[a-z0-9\-:+%_#*?!(),=@;$'.]{1,128}$/;
const DESIRED = 'properties.desired';

interface Compiled {
  readonly record: ConfigurationRecord;
  readonly layered: boolean;
  readonly content: ModulesContent;
  readonly target: TwinPredicate;
  readonly mentionsReported: boolean;
}

/** True when content uses `properties.desired.<path>` keys, i.e. it is a layered deployment. */
export function isLayered(content: ModulesContent): boolean {
  return Object.values(content).some((entry) => Object.keys(entry).some((k) => k.startsWith(`${DESIRED}.`)));
}

function modulesContentOf(doc: JsonObject): unknown {
  const content = isObject(doc['content']) ? doc['content'] : undefined;
  if (!content) return undefined;
  return content['modulesContent'] ?? content['moduleContent'];
}

/** The twin as queries see it. */
export function queryView(t: TwinRecord, iotEdge: boolean): QueryTwin {
  return {
    deviceId: t.deviceId,
    ...(t.moduleId ? { moduleId: t.moduleId } : {}),
    tags: t.tags,
    properties: { desired: t.desired, reported: t.reported },
    capabilities: { iotEdge },
    configurations: t.configurations,
  };
}

const issuesText = (issues: ReadonlyArray<{ path: string; message: string }>): string => issues.map((i) => `${i.path}: ${i.message}`).join('; ');

/**
 * Deployments: single-device `applyConfigurationContent` and automatic deployments (IoT Hub configurations).
 *
 * Which configurations apply to a device is decided here (iotedge-protocols.md §1.5): among the targeted ones the
 * standard configuration with the highest priority (tie: newest `createdTimeUtc`) is the base, and every targeted
 * layered configuration with a higher priority is composed over it in ascending priority. Evaluation is
 * level-triggered and coalesced per device: tag changes, reported changes (when a condition reads reported
 * properties), configuration changes and a periodic resync all just mark devices dirty.
 */
export class Deployments {
  readonly #store: Store;
  readonly #twins: Twins;
  readonly #bus: Bus;
  readonly #log: Logger;
  readonly #metrics: HubMetrics;
  readonly #resyncMs: number;
  #compiled: Compiled[] | undefined;
  readonly #dirty = new Set<string>();
  #all = false;
  #running: Promise<void> | undefined;
  #timer: NodeJS.Timeout | undefined;
  #closed = false;
  readonly #offs: Array<() => void> = [];

  constructor(deps: { store: Store; twins: Twins; bus: Bus; log: Logger; metrics: HubMetrics; resyncSeconds: number }) {
    this.#store = deps.store;
    this.#twins = deps.twins;
    this.#bus = deps.bus;
    this.#log = deps.log;
    this.#metrics = deps.metrics;
    this.#resyncMs = deps.resyncSeconds * 1000;
  }

  start(): void {
    this.#offs.push(
      this.#twins.onChange((c) => {
        if (c.moduleId !== '') return;
        if (c.tags || (c.reported && (this.#compiled ?? []).some((x) => x.mentionsReported))) this.enqueue(c.deviceId);
      }),
      this.#bus.subscribe((e) => {
        if (e.type === 'configurations') {
          this.#compiled = undefined;
          this.enqueueAll();
        }
      }),
    );
    this.#timer = setInterval(() => this.enqueueAll(), this.#resyncMs);
    this.#timer.unref();
    this.enqueueAll();
  }

  // ---- single device -------------------------------------------------------------------------------------------

  /** `POST /devices/{id}/applyConfigurationContent`: validates, then replaces each named module twin's desired. */
  async applyContent(deviceId: string, body: unknown): Promise<void> {
    const device = await this.#store.getDevice(deviceId);
    if (!device) throw hubError('CLOUD_ERR_DEVICE_NOT_FOUND', `Device ${deviceId} not found`);
    if (isObject(body) && !('modulesContent' in body) && ('deviceContent' in body || 'moduleContent' in body)) {
      throw hubError('CLOUD_ERR_BAD_REQUEST', 'Only modulesContent is supported');
    }
    const r = validateManifest(body);
    if (!r.ok) throw hubError('CLOUD_ERR_INVALID_MANIFEST', `Invalid deployment manifest: ${issuesText(r.error)}`);
    if (!device.iotEdge) throw hubError('CLOUD_ERR_BAD_REQUEST', `Device ${deviceId} is not an IoT Edge device`);
    await this.#writeModules(deviceId, r.value);
  }

  async #writeModules(deviceId: string, content: ModulesContent): Promise<void> {
    for (const [moduleId, entry] of Object.entries(content)) {
      const desired = entry[DESIRED];
      if (!isObject(desired)) continue;
      await this.#store.ensureTwin(newTwin(deviceId, moduleId, new Date().toISOString()));
      await this.#twins.replaceDesired(deviceId, moduleId, userProperties(desired));
    }
  }

  // ---- configurations ------------------------------------------------------------------------------------------

  #validate(id: string, body: unknown): { doc: JsonObject; priority: number } {
    if (!CONFIG_ID.test(id)) throw hubError('CLOUD_ERR_INVALID_ID', `Invalid configuration id '${id.slice(0, 140)}' (lowercase letters, digits and - : + % _ # * ? ! ( ) , = @ ; $ ' .)`);
    if (!isObject(body)) throw hubError('CLOUD_ERR_BAD_REQUEST', 'Configuration must be a JSON object');
    if (body['id'] !== undefined && body['id'] !== id) throw hubError('CLOUD_ERR_BAD_REQUEST', 'Body id does not match the URL');
    const priority = body['priority'] ?? 0;
    if (typeof priority !== 'number' || !Number.isInteger(priority) || priority < 0) throw hubError('CLOUD_ERR_BAD_REQUEST', 'priority must be a non-negative integer');
    const target = body['targetCondition'] ?? '';
    if (typeof target !== 'string') throw hubError('CLOUD_ERR_BAD_REQUEST', 'targetCondition must be a string');
    if (target.trim() !== '') {
      const c = compileTargetCondition(target);
      if (!c.ok) throw hubError('CLOUD_ERR_BAD_REQUEST', `targetCondition: ${c.error.message} (line ${c.error.line}, column ${c.error.column})`);
    }
    const mc = modulesContentOf(body);
    if (!isObject(mc)) throw hubError('CLOUD_ERR_BAD_REQUEST', 'content.modulesContent is required (deviceContent is not supported)');
    const layered = isLayered(mc as ModulesContent);
    const r = layered ? validateLayer(mc) : validateManifest(mc);
    if (!r.ok) throw hubError('CLOUD_ERR_INVALID_MANIFEST', `Invalid ${layered ? 'layered ' : ''}deployment content: ${issuesText(r.error)}`);
    const metrics = isObject(body['metrics']) ? body['metrics'] : {};
    const queries = isObject(metrics['queries']) ? metrics['queries'] : {};
    for (const [name, q] of Object.entries(queries)) {
      const c = typeof q === 'string' ? compileDeviceQuery(q) : undefined;
      if (!c?.ok) throw hubError('CLOUD_ERR_BAD_REQUEST', `metrics.queries.${name}: ${c && !c.ok ? c.error.message : 'must be a string'}`);
    }
    const labels = isObject(body['labels']) ? body['labels'] : {};
    const doc: JsonObject = {
      id,
      schemaVersion: typeof body['schemaVersion'] === 'string' ? body['schemaVersion'] : '1.0',
      labels,
      content: { modulesContent: cloneJson(mc) },
      targetCondition: target,
      priority,
      metrics: { queries: cloneJson(queries) },
    };
    return { doc, priority };
  }

  async createConfiguration(id: string, body: unknown): Promise<ConfigurationRecord> {
    const { doc, priority } = this.#validate(id, body);
    if ((await this.#store.listConfigurations()).length >= MAX_CONFIGURATIONS) {
      throw hubError('CLOUD_ERR_TOO_MANY_CONFIGURATIONS', `A hub holds at most ${MAX_CONFIGURATIONS} configurations`);
    }
    const now = new Date().toISOString();
    const rec: ConfigurationRecord = { id, etagVersion: 1, priority, createdTimeUtc: now, doc: { ...doc, createdTimeUtc: now, lastUpdatedTimeUtc: now } };
    await this.#store.createConfiguration(rec);
    await this.#changed();
    return rec;
  }

  async updateConfiguration(id: string, body: unknown, expectedEtag: number | undefined): Promise<ConfigurationRecord> {
    const cur = await this.#store.getConfiguration(id);
    if (!cur) throw hubError('CLOUD_ERR_CONFIGURATION_NOT_FOUND', `Configuration ${id} not found`);
    const { doc } = this.#validate(id, body);
    // As in IoT Hub, only targetCondition, priority, labels and metrics may change; content is immutable.
    if (!jsonEqual(doc['content'], cur.doc['content'])) throw hubError('CLOUD_ERR_BAD_REQUEST', 'Configuration content cannot be changed; create a new configuration');
    const next: ConfigurationRecord = {
      ...cur,
      priority: Number(doc['priority']),
      doc: { ...doc, createdTimeUtc: cur.createdTimeUtc, lastUpdatedTimeUtc: new Date().toISOString() },
    };
    const saved = await this.#store.updateConfiguration(next, expectedEtag);
    await this.#changed();
    return saved;
  }

  async deleteConfiguration(id: string, expectedEtag: number | undefined): Promise<void> {
    await this.#store.deleteConfiguration(id, expectedEtag);
    await this.#changed();
  }

  async #changed(): Promise<void> {
    this.#compiled = undefined;
    await this.#bus.publish({ type: 'configurations' });
    this.enqueueAll();
  }

  async #configs(): Promise<Compiled[]> {
    if (this.#compiled) return this.#compiled;
    const out: Compiled[] = [];
    for (const record of await this.#store.listConfigurations()) {
      const content = (modulesContentOf(record.doc) ?? {}) as ModulesContent;
      const text = typeof record.doc['targetCondition'] === 'string' ? record.doc['targetCondition'] : '';
      const c = text.trim() === '' ? undefined : compileTargetCondition(text);
      // An empty condition targets nothing (IoT Hub); a stored condition that no longer compiles targets nothing.
      const target: TwinPredicate = c?.ok ? c.value : () => false;
      out.push({ record, layered: isLayered(content), content, target, mentionsReported: text.includes('properties.reported') });
    }
    this.#compiled = out;
    return out;
  }

  /** The configuration with computed `systemMetrics` and custom `metrics.results`, as IoT Hub serves it. */
  async configurationJson(rec: ConfigurationRecord): Promise<JsonObject> {
    const id = rec.id;
    let targeted = 0;
    let applied = 0;
    let success = 0;
    let failure = 0;
    const queries = isObject(rec.doc['metrics']) && isObject(rec.doc['metrics']['queries']) ? rec.doc['metrics']['queries'] : {};
    const compiled = Object.entries(queries).flatMap(([name, q]) => {
      const c = typeof q === 'string' ? compileDeviceQuery(q) : undefined;
      return c?.ok ? [{ name, pred: c.value }] : [];
    });
    const results = objectFromEntries<number>(compiled.map((c) => [c.name, 0]));
    for await (const { twin, iotEdge } of this.#deviceTwins()) {
      const mine = ownValue(twin.configurations, id);
      const status = isObject(mine) ? mine['status'] : undefined;
      if (status !== undefined) targeted++;
      let agent: TwinRecord | undefined;
      const needsModules = compiled.some((c) => c.pred.collection === 'devices.modules');
      const modules = needsModules || status === 'Applied' ? await this.#store.listModuleTwins(twin.deviceId) : [];
      if (status === 'Applied') {
        applied++;
        agent = modules.find((m) => m.moduleId === '$edgeAgent');
        const rep: JsonObject = agent?.reported ?? {};
        const code = isObject(rep['lastDesiredStatus']) ? rep['lastDesiredStatus']['code'] : undefined;
        if (agent && rep['lastDesiredVersion'] === agent.desired.$version && code === 200) success++;
        else if (agent && code !== undefined && code !== 200) failure++;
      }
      for (const c of compiled) {
        if (c.pred.collection === 'devices') {
          if (c.pred(queryView(twin, iotEdge))) results[c.name] = (results[c.name] ?? 0) + 1;
        } else {
          for (const m of modules) if (c.pred(queryView(m, iotEdge))) results[c.name] = (results[c.name] ?? 0) + 1;
        }
      }
    }
    const target = typeof rec.doc['targetCondition'] === 'string' ? rec.doc['targetCondition'] : '';
    return {
      ...rec.doc,
      etag: etagOf(rec.etagVersion),
      contentType: 'assignment',
      systemMetrics: {
        results: { targetedCount: targeted, appliedCount: applied, reportedSuccessfulCount: success, reportedFailedCount: failure },
        queries: {
          Targeted: `select deviceId from devices where capabilities.iotEdge = true${target.trim() ? ` and ${target}` : ''}`,
          Applied: `select deviceId from devices.modules where moduleId = '$edgeAgent' and configurations.[[${id}]].status = 'Applied'`,
        },
      },
      metrics: { queries, results },
    };
  }

  /** Edge devices' twins, paged (deployments and their metrics only concern edge devices). */
  async *#deviceTwins(): AsyncGenerator<{ twin: TwinRecord; iotEdge: boolean }> {
    let after: string | undefined;
    for (;;) {
      const page = await this.#store.listDeviceTwins({ limit: 500, edgeOnly: true, ...(after === undefined ? {} : { after }) });
      if (page.length === 0) return;
      for (const twin of page) yield { twin, iotEdge: true };
      after = page[page.length - 1]?.deviceId;
    }
  }

  // ---- evaluation ----------------------------------------------------------------------------------------------

  enqueue(deviceId: string): void {
    if (this.#closed) return;
    this.#dirty.add(deviceId);
    this.#kick();
  }

  enqueueAll(): void {
    if (this.#closed) return;
    this.#all = true;
    this.#kick();
  }

  #kick(): void {
    this.#running ??= this.#drain()
      .catch((e: unknown) => this.#log.error({ err: e }, 'Deployment evaluation failed'))
      .finally(() => {
        this.#running = undefined;
        if (!this.#closed && (this.#all || this.#dirty.size > 0)) this.#kick();
      });
  }

  async #drain(): Promise<void> {
    while (!this.#closed && (this.#all || this.#dirty.size > 0)) {
      if (this.#all) {
        this.#all = false;
        for await (const { twin } of this.#deviceTwins()) {
          if (this.#closed) return;
          this.#dirty.delete(twin.deviceId);
          await this.#evaluate(twin.deviceId);
        }
        continue;
      }
      const next = this.#dirty.values().next();
      if (next.done === true) return;
      this.#dirty.delete(next.value);
      await this.#evaluate(next.value);
    }
  }

  /** Picks the configurations that apply to one device and writes the composed desired documents. */
  async #evaluate(deviceId: string): Promise<void> {
    try {
      const device = await this.#store.getDevice(deviceId);
      const twin = await this.#store.getTwin(deviceId, '');
      if (!device?.iotEdge || !twin) return;
      const view = queryView(twin, true);
      const configs = await this.#configs();
      const targeted = configs.filter((c) => c.target(view));
      const byPriorityThenAge = (a: Compiled, b: Compiled): number =>
        a.record.priority - b.record.priority || a.record.createdTimeUtc.localeCompare(b.record.createdTimeUtc);
      const standard = targeted.filter((c) => !c.layered).sort(byPriorityThenAge);
      const base = standard[standard.length - 1];
      const layers = targeted.filter((c) => c.layered && (base === undefined || c.record.priority > base.record.priority)).sort(byPriorityThenAge);
      const appliedIds = new Set([...(base ? [base.record.id] : []), ...layers.map((l) => l.record.id)]);
      if (appliedIds.size > 0) {
        const merged = composeLayers(
          base?.content,
          layers.map((l) => ({ id: l.record.id, priority: l.record.priority, content: l.content })),
        );
        await this.#writeModules(deviceId, merged);
      }
      // Keyed by configuration id, which may be a name such as `constructor`.
      const statuses = newObject();
      for (const c of targeted) statuses[c.record.id] = { status: appliedIds.has(c.record.id) ? 'Applied' : 'Targeted' };
      await this.#twins.setConfigurations(deviceId, '', statuses);
      if (await this.#store.getTwin(deviceId, '$edgeAgent')) await this.#twins.setConfigurations(deviceId, '$edgeAgent', statuses);
      this.#metrics.deploymentEvaluations.inc({ result: 'ok' });
    } catch (e) {
      this.#metrics.deploymentEvaluations.inc({ result: 'error' });
      this.#log.warn({ err: e, deviceId }, 'Failed to evaluate deployments for device');
    }
  }

  async close(): Promise<void> {
    this.#closed = true;
    if (this.#timer) clearInterval(this.#timer);
    for (const off of this.#offs) off();
    await this.#running;
  }
}
