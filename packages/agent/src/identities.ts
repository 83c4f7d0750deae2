import type { Logger } from 'pino';
import type { DeviceRegistryClient } from '@kedge/iothub-client';
import { isNotFound, type KubeClient, type KubernetesObject } from '@kedge/kube';
import type { EdgeDeploymentSpec } from '@kedge/manifest';
import { EDGE_HUB_SERVICE, IdentitySecretKeys, identitySecretName, workloadSecretOf } from './module-env.js';
import { toDnsLabel } from './names.js';

/** `managedBy` of the module identities the agent creates (IoT Edge's value). */
export const MANAGED_BY_IOT_EDGE = 'IotEdge';
/** Field manager of the identity Secrets. */
export const IDENTITY_FIELD_MANAGER = 'kedge-identities';

/** Labels of a module identity Secret. Deliberately not `managed-by: kedge-agent`: the controller must not prune it. */
export const IdentityLabels = {
  component: 'app.kubernetes.io/component',
  identityOf: 'kedge.io/identity-of',
} as const;

/** The hub identity of a module in the spec: system modules are `$edgeHub` / `$edgeAgent`. */
export const identityOf = (name: string): string => (name === 'edgeHub' ? '$edgeHub' : name === 'edgeAgent' ? '$edgeAgent' : name);

export interface ModuleIdentitiesOptions {
  readonly registry: DeviceRegistryClient;
  readonly kube: KubeClient;
  readonly namespace: string;
  readonly hubHostName: string;
  readonly deviceId: string;
  readonly log: Logger;
  /** After a failure, try again this much later. @default 10_000 */
  readonly retryMs?: number;
}

/**
 * Module identities: for every module of the spec (and the edge hub), an identity in the hub, created with the
 * edge device's own credentials (`managedBy: IotEdge`), and a Secret with its key in the device's namespace.
 * Identities the agent created for modules that are gone are deleted, with their Secrets. Runs one pass at a time;
 * a request made during a pass runs once more afterwards with the newest spec; a failed pass retries later.
 */
export class ModuleIdentities {
  readonly #o: ModuleIdentitiesOptions;
  #spec: EdgeDeploymentSpec | undefined;
  #running: Promise<void> | undefined;
  #again = false;
  #timer: NodeJS.Timeout | undefined;
  #stopped = false;

  constructor(options: ModuleIdentitiesOptions) {
    this.#o = options;
  }

  /** Requests a pass for `spec` (or the last one given). Never throws; resolves when that pass is done. */
  sync(spec?: EdgeDeploymentSpec): Promise<void> {
    if (spec) this.#spec = spec;
    if (this.#running) {
      this.#again = true;
      return this.#running;
    }
    this.#running = this.#loop().finally(() => {
      this.#running = undefined;
    });
    return this.#running;
  }

  stop(): Promise<void> {
    this.#stopped = true;
    clearTimeout(this.#timer);
    return this.#running ?? Promise.resolve();
  }

  async #loop(): Promise<void> {
    do {
      this.#again = false;
      const spec = this.#spec;
      if (!spec || this.#stopped) return;
      try {
        await this.#pass(spec);
      } catch (e) {
        this.#o.log.warn({ err: (e as Error).message }, 'Module identities not in step with the deployment; retrying');
        clearTimeout(this.#timer);
        this.#timer = setTimeout(() => void this.sync(), this.#o.retryMs ?? 10_000);
        return;
      }
    } while (this.#again);
  }

  async #pass(spec: EdgeDeploymentSpec): Promise<void> {
    const { registry, kube, namespace } = this.#o;
    const wanted = new Map<string, string>(); // identity → object name
    if (spec.systemModules.edgeHub) wanted.set('$edgeHub', EDGE_HUB_SERVICE);
    for (const name of Object.keys(spec.modules)) wanted.set(identityOf(name), toDnsLabel(name));
    const existing = new Map((await registry.listModules()).map((m) => [m.moduleId, m]));
    for (const [moduleId, objectName] of wanted) {
      const id = existing.get(moduleId) ?? (await registry.createModule(moduleId, { managedBy: MANAGED_BY_IOT_EDGE }));
      if (!existing.has(moduleId)) this.#o.log.info({ moduleId }, 'Created module identity');
      await this.#writeSecret(objectName, moduleId, id.generationId, id.primaryKey);
    }
    // Remove what the agent created for modules no longer deployed (never the system identities or foreign ones).
    for (const m of existing.values()) {
      if (wanted.has(m.moduleId) || m.managedBy !== MANAGED_BY_IOT_EDGE || m.moduleId === '$edgeAgent' || m.moduleId === '$edgeHub') continue;
      await registry.deleteModule(m.moduleId);
      this.#o.log.info({ moduleId: m.moduleId }, 'Deleted module identity of a removed module');
    }
    const secrets = await kube.list('v1', 'Secret', namespace, { labelSelector: `${IdentityLabels.component}=module-identity` });
    const keep = new Set([...wanted.values()].map(identitySecretName));
    for (const s of secrets) {
      const name = s.metadata?.name;
      if (!name || keep.has(name)) continue;
      try {
        await kube.delete('v1', 'Secret', namespace, name, s.metadata?.uid ? { uid: s.metadata.uid } : {});
      } catch (e) {
        if (!isNotFound(e)) throw e;
      }
    }
  }

  async #writeSecret(objectName: string, moduleId: string, generationId: string, key: string): Promise<void> {
    const { hubHostName, deviceId } = this.#o;
    const gateway = moduleId === '$edgeHub' || moduleId === '$edgeAgent' ? '' : `;GatewayHostName=${EDGE_HUB_SERVICE}`;
    const connectionString = `HostName=${hubHostName}${gateway};DeviceId=${deviceId};ModuleId=${moduleId};SharedAccessKey=${key}`;
    const b64 = (s: string) => Buffer.from(s).toString('base64');
    const secret: KubernetesObject & { type: string; data: Record<string, string> } = {
      apiVersion: 'v1',
      kind: 'Secret',
      metadata: {
        name: identitySecretName(objectName),
        namespace: this.#o.namespace,
        labels: { 'app.kubernetes.io/part-of': 'kedge', [IdentityLabels.component]: 'module-identity', [IdentityLabels.identityOf]: objectName },
        annotations: { 'kedge.io/module-id': moduleId },
      },
      type: 'Opaque',
      data: {
        [IdentitySecretKeys.moduleId]: b64(moduleId),
        [IdentitySecretKeys.generationId]: b64(generationId),
        [IdentitySecretKeys.key]: b64(key),
        [IdentitySecretKeys.workloadSecret]: b64(workloadSecretOf(moduleId, key)),
        [IdentitySecretKeys.connectionString]: b64(connectionString),
      },
    };
    await this.#o.kube.apply(secret, { fieldManager: IDENTITY_FIELD_MANAGER, force: true });
  }
}
