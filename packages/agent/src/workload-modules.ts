import type { KubeClient, KubernetesObject } from '@kedge/kube';
import { EdgeDeploymentResource, parseEdgeDeploymentSpec } from '@kedge/manifest';
import { identityOf } from './identities.js';
import { EDGE_HUB_SERVICE, IdentitySecretKeys, identitySecretName } from './module-env.js';
import { toDnsLabel } from './names.js';
import type { WorkloadModule, WorkloadModules } from './workload.js';

export interface DeployedWorkloadModulesOptions {
  readonly kube: KubeClient;
  readonly namespace: string;
  /** The device's EdgeDeployment: only its modules are served. */
  readonly edgeDeploymentName: string;
}

type SecretObject = KubernetesObject & { data?: Record<string, string> };

const unb64 = (s: string | undefined): string | undefined => (s === undefined ? undefined : Buffer.from(s, 'base64').toString('utf8'));

/**
 * The names a device's edge hub may get a server certificate for: what modules dial (`IOTEDGE_GATEWAYHOSTNAME` is
 * the Service name) and the Service's cluster DNS names.
 */
export function edgeHubServerNames(namespace: string): string[] {
  return [EDGE_HUB_SERVICE, `${EDGE_HUB_SERVICE}.${namespace}`, `${EDGE_HUB_SERVICE}.${namespace}.svc`, `${EDGE_HUB_SERVICE}.${namespace}.svc.cluster.local`];
}

/**
 * The workload API's view of the device's modules, read fresh from the cluster on every request (a module signs
 * about once an hour, so there is no cache to go stale): a module is served only while it is in the device's
 * EdgeDeployment **and** its identity Secret (written by `ModuleIdentities`) names it. A removed module is refused
 * at once, before its identity is even deleted; `$edgeAgent` is never served (the agent signs for itself).
 */
export class DeployedWorkloadModules implements WorkloadModules {
  readonly #o: DeployedWorkloadModulesOptions;

  constructor(options: DeployedWorkloadModulesOptions) {
    this.#o = options;
  }

  async get(moduleId: string): Promise<WorkloadModule | undefined> {
    if (moduleId === '$edgeAgent' || moduleId.length === 0 || moduleId.length > 128) return undefined;
    const objectName = await this.#deployedObjectName(moduleId);
    if (objectName === undefined) return undefined;
    const secret = await this.#o.kube.get<SecretObject>('v1', 'Secret', this.#o.namespace, identitySecretName(objectName));
    const data = secret?.data;
    // Own-property reads only: the Secret's data is a plain JSON object from the apiserver.
    const own = (k: string): string | undefined => (data && Object.hasOwn(data, k) ? unb64(data[k]) : undefined);
    const key = own(IdentitySecretKeys.key);
    const workloadSecret = own(IdentitySecretKeys.workloadSecret);
    if (own(IdentitySecretKeys.moduleId) !== moduleId || !key || !workloadSecret) return undefined;
    return { key, secret: workloadSecret, ...(moduleId === '$edgeHub' ? { serverNames: edgeHubServerNames(this.#o.namespace) } : {}) };
  }

  /** The module's object name when the EdgeDeployment deploys it (system modules as `$edgeHub`), else undefined. */
  async #deployedObjectName(moduleId: string): Promise<string | undefined> {
    const ed = await this.#o.kube.get<KubernetesObject & { spec?: unknown }>(EdgeDeploymentResource.apiVersion, EdgeDeploymentResource.kind, this.#o.namespace, this.#o.edgeDeploymentName);
    const parsed = ed ? parseEdgeDeploymentSpec(ed.spec) : undefined;
    if (!parsed?.ok) return undefined;
    const spec = parsed.value.spec;
    if (moduleId === '$edgeHub') return spec.systemModules.edgeHub ? EDGE_HUB_SERVICE : undefined;
    const name = Object.keys(spec.modules).find((n) => identityOf(n) === moduleId);
    return name === undefined ? undefined : toDnsLabel(name);
  }
}
