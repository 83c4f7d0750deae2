import type { Logger } from 'pino';
import { Informer, KubeTransport, type ClusterConfig, type KubeClient, type KubernetesObject } from '@kedge/kube';
import { EdgeDeploymentResource, parseEdgeDeploymentSpec, type EdgeDeploymentSpec } from '@kedge/manifest';
import { UnknownModuleError, type LogLine, type LogQuery, type ModuleRuntime, type RuntimeSnapshot } from './module-runtime.js';
import { moduleEntries } from './modules.js';
import { Labels, MANAGED_BY } from './names.js';
import type { EdgeDeploymentObject } from './reconciler.js';

/** The field manager the desired deployment is written with (the controller applies its children as `kedge-agent`). */
export const TWIN_SYNC_FIELD_MANAGER = 'kedge-twin-sync';

/** Options of {@link KubernetesModuleRuntime}. */
export interface KubernetesRuntimeOptions {
  readonly kube: KubeClient;
  readonly cluster: ClusterConfig;
  readonly namespace: string;
  /** The device's EdgeDeployment. */
  readonly name: string;
  readonly log: Logger;
  /** Deadline of each log request. @default 30_000 */
  readonly timeoutMs?: number;
}

/**
 * The Kubernetes side of the {@link ModuleRuntime} port: the desired deployment is the device's EdgeDeployment
 * (written by server-side apply with field manager {@link TWIN_SYNC_FIELD_MANAGER}); the EdgeDeployment controller
 * (started beside it) turns it into Deployments and reports what runs in its status, which this runtime watches.
 * Restart deletes the module's pods (its Deployment starts a new one); logs are the newest pod's `pods/log`.
 */
export class KubernetesModuleRuntime implements ModuleRuntime {
  readonly kind = 'kubernetes';
  readonly #o: KubernetesRuntimeOptions;
  readonly #informer: Informer<EdgeDeploymentObject>;
  readonly #listeners = new Set<() => void>();
  #started = false;

  constructor(options: KubernetesRuntimeOptions) {
    this.#o = options;
    this.#informer = new Informer<EdgeDeploymentObject>(
      { apiVersion: EdgeDeploymentResource.apiVersion, kind: EdgeDeploymentResource.kind, namespace: options.namespace },
      { config: options.cluster, log: options.log },
    );
    const mine = (ed: EdgeDeploymentObject) => ed.metadata?.name === options.name;
    const emit = (ed: EdgeDeploymentObject) => {
      if (mine(ed)) for (const l of this.#listeners) l();
    };
    this.#informer.on('add', emit);
    this.#informer.on('update', emit);
    this.#informer.on('delete', emit);
  }

  async start(signal?: AbortSignal): Promise<void> {
    if (!this.#started) this.#informer.start();
    this.#started = true;
    if (!(await this.#informer.waitForSync(signal))) throw new Error('EdgeDeployment informer stopped before it synced');
  }

  hasSynced(): boolean {
    return this.#informer.hasSynced();
  }

  async apply(spec: EdgeDeploymentSpec, signal?: AbortSignal): Promise<{ generation: number }> {
    const applied = await this.#o.kube.apply<EdgeDeploymentObject>(
      { apiVersion: EdgeDeploymentResource.apiVersion, kind: EdgeDeploymentResource.kind, metadata: { name: this.#o.name, namespace: this.#o.namespace }, spec },
      { fieldManager: TWIN_SYNC_FIELD_MANAGER, force: true, ...(signal ? { signal } : {}) },
    );
    return { generation: applied.metadata?.generation ?? 0 };
  }

  snapshot(): RuntimeSnapshot {
    const ed = this.#informer.get(this.#o.name, this.#o.namespace);
    if (!ed) return {};
    const parsed = parseEdgeDeploymentSpec(ed.spec);
    return {
      ...(parsed.ok ? { spec: parsed.value.spec } : {}),
      ...(ed.metadata?.generation !== undefined ? { generation: ed.metadata.generation } : {}),
      ...(ed.status ? { status: ed.status } : {}),
    };
  }

  onChange(listener: () => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  async stop(): Promise<void> {
    this.#listeners.clear();
    await this.#informer.stop();
  }

  /** Module name → object name of every module of the device's EdgeDeployment (read from the API server). */
  async #modules(): Promise<Map<string, string>> {
    const ed = await this.#o.kube.get<KubernetesObject & { spec?: unknown }>(EdgeDeploymentResource.apiVersion, EdgeDeploymentResource.kind, this.#o.namespace, this.#o.name);
    const parsed = ed ? parseEdgeDeploymentSpec(ed.spec) : undefined;
    return new Map(parsed?.ok ? moduleEntries(parsed.value, { manageEdgeAgent: false }).map((e) => [e.name, e.objectName]) : []);
  }

  async moduleNames(): Promise<string[]> {
    return [...(await this.#modules()).keys()];
  }

  async #objectName(name: string): Promise<string> {
    const objectName = (await this.#modules()).get(name);
    if (!objectName) throw new UnknownModuleError(name);
    return objectName;
  }

  async #pods(objectName: string): Promise<KubernetesObject[]> {
    const pods = await this.#o.kube.list('v1', 'Pod', this.#o.namespace, { labelSelector: `${Labels.managedBy}=${MANAGED_BY},${Labels.module}=${objectName}` });
    const meta = (p: KubernetesObject) => p.metadata as { deletionTimestamp?: string; creationTimestamp?: string } | undefined;
    return pods.filter((p) => !meta(p)?.deletionTimestamp).sort((a, b) => String(meta(b)?.creationTimestamp ?? '').localeCompare(String(meta(a)?.creationTimestamp ?? '')));
  }

  async restart(name: string): Promise<void> {
    const pods = await this.#pods(await this.#objectName(name));
    for (const p of pods) {
      if (p.metadata?.name) await this.#o.kube.delete('v1', 'Pod', this.#o.namespace, p.metadata.name, p.metadata.uid ? { uid: p.metadata.uid } : {});
    }
    this.#o.log.info({ module: name, pods: pods.length }, 'Restarted module (deleted its pods)');
  }

  /** The newest pod's log lines (with their kubelet timestamps). No pod: no lines. */
  async logs(name: string, q: LogQuery): Promise<LogLine[]> {
    const objectName = await this.#objectName(name);
    const pod = (await this.#pods(objectName))[0];
    if (!pod?.metadata?.name) return [];
    const ns = encodeURIComponent(this.#o.namespace);
    const path = `/api/v1/namespaces/${ns}/pods/${encodeURIComponent(pod.metadata.name)}/log`;
    const text = (await KubeTransport.for(this.#o.cluster).request('GET', path, {
      query: {
        container: objectName.slice(0, 63),
        // `until` needs every line's time; the server can tail only when nothing is filtered after it.
        ...(q.tail !== undefined && q.untilMs === undefined ? { tailLines: String(q.tail) } : {}),
        ...(q.sinceMs !== undefined ? { sinceTime: new Date(q.sinceMs).toISOString().replace(/\.\d{3}Z$/, 'Z') } : {}),
        timestamps: 'true',
        limitBytes: String(4 * 1024 * 1024),
      },
      accept: 'text/plain, */*',
      responseType: 'text',
      timeoutMs: this.#o.timeoutMs ?? 30_000,
    })) as string;
    const lines = text.split('\n');
    if (lines[lines.length - 1] === '') lines.pop();
    let out: LogLine[] = lines.map((l) => {
      const sp = l.indexOf(' ');
      const t = sp > 0 ? Date.parse(l.slice(0, sp)) : NaN;
      return Number.isFinite(t) ? { timeMs: t, text: l.slice(sp + 1) } : { text: l };
    });
    if (q.untilMs !== undefined) out = out.filter((l) => l.timeMs === undefined || l.timeMs <= (q.untilMs ?? 0));
    if (q.tail !== undefined) out = out.slice(Math.max(0, out.length - q.tail));
    return out;
  }
}
