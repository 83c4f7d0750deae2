import type { V1Role, V1RoleBinding, V1ServiceAccount } from '@kubernetes/client-node';
import { EdgeDeploymentResource } from '@kedge/manifest';
import { Labels, MANAGED_BY } from './names.js';

/**
 * The least privilege the agent needs in its device's namespace: a namespaced Role (no ClusterRole, no
 * cluster-wide write). Kinds for namespace hardening are included; drop them if hardening is off.
 */
export function agentRbac(namespace: string, serviceAccount = 'kedge-agent'): [V1ServiceAccount, V1Role, V1RoleBinding] {
  const labels = { [Labels.partOf]: 'kedge', [Labels.name]: 'kedge-agent', [Labels.managedBy]: MANAGED_BY };
  const rw = ['get', 'list', 'watch', 'create', 'update', 'patch', 'delete'];
  const role: V1Role = {
    apiVersion: 'rbac.authorization.k8s.io/v1',
    kind: 'Role',
    metadata: { name: 'kedge-agent', namespace, labels },
    rules: [
      { apiGroups: [EdgeDeploymentResource.group], resources: [EdgeDeploymentResource.plural], verbs: ['get', 'list', 'watch', 'create', 'update', 'patch'] },
      { apiGroups: [EdgeDeploymentResource.group], resources: [`${EdgeDeploymentResource.plural}/status`], verbs: ['get', 'update', 'patch'] },
      { apiGroups: ['apps'], resources: ['deployments'], verbs: rw },
      { apiGroups: [''], resources: ['services', 'serviceaccounts', 'persistentvolumeclaims', 'secrets'], verbs: rw },
      { apiGroups: [''], resources: ['pods', 'pods/log'], verbs: ['get', 'list', 'watch'] },
      // The RestartModule direct method deletes a module's pod (its Deployment starts a new one).
      { apiGroups: [''], resources: ['pods'], verbs: ['delete'] },
      { apiGroups: [''], resources: ['events'], verbs: ['create', 'patch'] },
      { apiGroups: ['networking.k8s.io'], resources: ['networkpolicies'], verbs: rw },
      { apiGroups: [''], resources: ['resourcequotas', 'limitranges'], verbs: rw },
      // The trust bundle for connection-string modules (ConfigMap `kedge-trust-bundle`).
      { apiGroups: [''], resources: ['configmaps'], verbs: ['get', 'list', 'watch', 'create', 'update', 'patch'] },
      // The leader points the workload Service (`kedge-workload`, no selector) at its own pod.
      { apiGroups: ['discovery.k8s.io'], resources: ['endpointslices'], verbs: ['get', 'list', 'watch', 'create', 'update', 'patch'] },
      // Leader election between agent replicas (one Lease, `kedge-agent`).
      { apiGroups: ['coordination.k8s.io'], resources: ['leases'], verbs: ['get', 'create', 'update'] },
    ],
  };
  const binding: V1RoleBinding = {
    apiVersion: 'rbac.authorization.k8s.io/v1',
    kind: 'RoleBinding',
    metadata: { name: 'kedge-agent', namespace, labels },
    roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: 'kedge-agent' },
    subjects: [{ kind: 'ServiceAccount', name: serviceAccount, namespace }],
  };
  const sa: V1ServiceAccount = { apiVersion: 'v1', kind: 'ServiceAccount', metadata: { name: serviceAccount, namespace, labels } };
  return [sa, role, binding];
}
