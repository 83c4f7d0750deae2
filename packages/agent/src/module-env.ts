import type { V1EnvVar, V1Volume, V1VolumeMount } from '@kubernetes/client-node';
import type { DevicePolicy } from './policy.js';

/**
 * The Secret holding a module's identity. Keys: `moduleId`, `generationId`, `sharedAccessKey` and
 * `connectionString` (`HostName=…;GatewayHostName=edgehub;DeviceId=…;ModuleId=…;SharedAccessKey=…`, without
 * `GatewayHostName` for the edge hub itself, which connects straight to the hub). The workload API signs with
 * `sharedAccessKey`; the connection-string mode hands `connectionString` to the module as `EdgeHubConnectionString`.
 */
export const identitySecretName = (objectName: string): string => `kedge-identity-${objectName}`;

/** Keys of an identity Secret. */
export const IdentitySecretKeys = { moduleId: 'moduleId', generationId: 'generationId', key: 'sharedAccessKey', connectionString: 'connectionString' } as const;

/** Where a module finds the CA of the edge hub's server certificate (`EdgeModuleCACertificateFile`). */
export const TRUST_BUNDLE_DIR = '/etc/kedge/trust-bundle';
const TRUST_BUNDLE_VOLUME = 'kedge-trust-bundle';

/** Variable names of the identity a module receives (IoT Edge's names: the Azure SDKs read them). */
export const IdentityEnv = {
  generationId: 'IOTEDGE_MODULEGENERATIONID',
  workloadUri: 'IOTEDGE_WORKLOADURI',
  connectionString: 'EdgeHubConnectionString',
  caFile: 'EdgeModuleCACertificateFile',
} as const;

/**
 * The identity part of a module's environment (iotedge-protocols.md §4.1, §4.4), by the device policy's
 * `moduleIdentity`: the generation id and key material come from the module's identity Secret by reference (never
 * copied into the Deployment), the CA from the trust-bundle ConfigMap. Nothing when the policy has no
 * `moduleIdentity`. The Secret reference is not optional: a pod waits for its identity rather than starting
 * without one.
 */
export function identityEnv(moduleName: string, objectName: string, policy: DevicePolicy): { env: V1EnvVar[]; volumes: V1Volume[]; mounts: V1VolumeMount[] } {
  const mi = policy.moduleIdentity;
  if (!mi || moduleName === 'edgeAgent') return { env: [], volumes: [], mounts: [] };
  const secret = identitySecretName(objectName);
  const ref = (key: string): V1EnvVar['valueFrom'] => ({ secretKeyRef: { name: secret, key } });
  const env: V1EnvVar[] = [
    { name: IdentityEnv.generationId, valueFrom: ref(IdentitySecretKeys.generationId) },
    { name: IdentityEnv.workloadUri, value: mi.workloadUri },
  ];
  // The edge hub gets its own upstream connection string; its CA is the hub's, not the trust bundle.
  if (mi.mode === 'connectionString' || moduleName === 'edgeHub') env.push({ name: IdentityEnv.connectionString, valueFrom: ref(IdentitySecretKeys.connectionString) });
  if (moduleName === 'edgeHub') return { env, volumes: [], mounts: [] };
  env.push({ name: IdentityEnv.caFile, value: `${TRUST_BUNDLE_DIR}/ca.pem` });
  return {
    env,
    volumes: [{ name: TRUST_BUNDLE_VOLUME, configMap: { name: mi.trustBundleConfigMap, optional: true } }],
    mounts: [{ name: TRUST_BUNDLE_VOLUME, mountPath: TRUST_BUNDLE_DIR, readOnly: true }],
  };
}
