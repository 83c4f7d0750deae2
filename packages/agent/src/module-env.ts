import { createHmac } from 'node:crypto';
import type { V1EnvVar, V1Volume, V1VolumeMount } from '@kubernetes/client-node';
import type { DevicePolicy } from './policy.js';

/**
 * The Secret holding a module's identity. Keys: `moduleId`, `generationId` (the hub's), `sharedAccessKey`,
 * `workloadSecret` (the module's workload API credential, {@link workloadSecretOf}) and `connectionString`
 * (`HostName=…;GatewayHostName=edgehub;DeviceId=…;ModuleId=…;SharedAccessKey=…`, without `GatewayHostName` for the
 * edge hub itself, which connects straight to the hub). The workload API signs with `sharedAccessKey`; the
 * connection-string mode hands `connectionString` to the module as `EdgeHubConnectionString`.
 */
export const identitySecretName = (objectName: string): string => `kedge-identity-${objectName}`;

/** Keys of an identity Secret. */
export const IdentitySecretKeys = {
  moduleId: 'moduleId',
  generationId: 'generationId',
  key: 'sharedAccessKey',
  workloadSecret: 'workloadSecret',
  connectionString: 'connectionString',
} as const;
export type IdentitySecretKey = (typeof IdentitySecretKeys)[keyof typeof IdentitySecretKeys];

/**
 * A module's workload credential, what it receives as `IOTEDGE_MODULEGENERATIONID` and sends in the path of every
 * workload call. Derived from the module's own key (HMAC-SHA256, base64url), so it is stable across identity
 * passes and agent restarts without any stored state, changes when the key is regenerated, and is unknown to
 * every party that does not hold the key. It is not the hub's `generationId`, which any holder of the device's
 * credentials can read.
 */
export function workloadSecretOf(moduleId: string, sharedAccessKey: string): string {
  return createHmac('sha256', Buffer.from(sharedAccessKey, 'base64')).update(`kedge-workload-secret\n${moduleId}`, 'utf8').digest('base64url');
}

/** Where a module finds the CA of the edge hub's server certificate (`EdgeModuleCACertificateFile`). */
export const TRUST_BUNDLE_DIR = '/etc/kedge/trust-bundle';
/** Key of the trust-bundle ConfigMap (and file name under {@link TRUST_BUNDLE_DIR}). */
export const TRUST_BUNDLE_KEY = 'ca.pem';
const TRUST_BUNDLE_VOLUME = 'kedge-trust-bundle';

/** The edge hub's Service name, which modules use as IOTEDGE_GATEWAYHOSTNAME (as in Microsoft's preview). */
export const EDGE_HUB_SERVICE = 'edgehub';

/** `IOTEDGE_APIVERSION`: the newest workload API version aziot-edged serves (Python sends it; Node hard-codes 2018-06-28). */
export const WORKLOAD_API_VERSION = '2022-08-03';

/** Env var names the runtime injects into every module (IoT Edge's names, so the Azure SDKs find them). */
export const RuntimeEnv = {
  deviceId: 'IOTEDGE_DEVICEID',
  moduleId: 'IOTEDGE_MODULEID',
  gatewayHostName: 'IOTEDGE_GATEWAYHOSTNAME',
  hubHostName: 'IOTEDGE_IOTHUBHOSTNAME',
  authScheme: 'IOTEDGE_AUTHSCHEME',
  edgeDeviceHostName: 'EdgeDeviceHostName',
} as const;

/** Variable names of the identity a module receives (IoT Edge's names: the Azure SDKs read them). */
export const IdentityEnv = {
  generationId: 'IOTEDGE_MODULEGENERATIONID',
  workloadUri: 'IOTEDGE_WORKLOADURI',
  apiVersion: 'IOTEDGE_APIVERSION',
  connectionString: 'EdgeHubConnectionString',
  caFile: 'EdgeModuleCACertificateFile',
} as const;

/** How a module gets its identity: the policy's `moduleIdentity`. */
export type ModuleIdentityPolicy = NonNullable<DevicePolicy['moduleIdentity']>;

/** One variable of a module's runtime environment: a literal, or a key of the module's identity Secret (never copied). */
export type RuntimeEnvVar = { readonly name: string; readonly value: string } | { readonly name: string; readonly secretKey: IdentitySecretKey };

/** What {@link moduleRuntimeEnv} computes a module's runtime environment from. */
export interface ModuleEnvInput {
  /** The module's name in the manifest (`edgeHub`, `edgeAgent` for the system modules). */
  readonly moduleName: string;
  readonly deviceId: string;
  /** `IOTEDGE_IOTHUBHOSTNAME`; left out when absent (a controller without a hub link). */
  readonly hubHostName?: string | undefined;
  /** The name modules dial the edge hub by. @default {@link EDGE_HUB_SERVICE} */
  readonly gatewayHostName?: string;
  /** Absent: no identity variables (a controller without a hub link). */
  readonly identity?: ModuleIdentityPolicy | undefined;
}

/** A module's runtime environment and whether it needs the trust bundle as a file ({@link TRUST_BUNDLE_DIR}). */
export interface ModuleRuntimeEnv {
  readonly env: readonly RuntimeEnvVar[];
  readonly trustBundleFile: boolean;
}

/**
 * The environment the runtime gives a module (iotedge-protocols.md §4.1, §4.4), independent of how the module runs
 * (a Kubernetes Deployment, a process): pure, deterministic, in a fixed order. It overrides anything of the same
 * name in the manifest's env.
 *
 * - always: `IOTEDGE_DEVICEID`, `IOTEDGE_MODULEID` (`$edgeHub`, `$edgeAgent` for the system modules),
 *   `IOTEDGE_AUTHSCHEME=sasToken`, `IOTEDGE_IOTHUBHOSTNAME`, `IOTEDGE_GATEWAYHOSTNAME` (user modules),
 *   `EdgeDeviceHostName`;
 * - `workload` mode (IoT Edge's own): `IOTEDGE_WORKLOADURI`, `IOTEDGE_APIVERSION` and `IOTEDGE_MODULEGENERATIONID`
 *   (the module's workload secret, from its identity Secret), and nothing else of the identity, so
 *   `ModuleClient.fromEnvironment` / `create_from_edge_environment` sign through the workload API;
 * - `connectionString` mode (iotedgehubdev's): `EdgeHubConnectionString` (from the identity Secret) and
 *   `EdgeModuleCACertificateFile` (the trust bundle file), and no workload variables, so that no SDK picks the
 *   workload path (Python prefers it when every `IOTEDGE_*` variable is present);
 * - the edge hub gets its upstream `EdgeHubConnectionString` and, in both modes, the workload variables (its
 *   server certificate comes from the workload API); `edgeAgent` gets no identity.
 */
export function moduleRuntimeEnv(input: ModuleEnvInput): ModuleRuntimeEnv {
  const { moduleName, identity: mi } = input;
  const isHub = moduleName === 'edgeHub';
  const isAgent = moduleName === 'edgeAgent';
  const gateway = input.gatewayHostName ?? EDGE_HUB_SERVICE;
  const env: RuntimeEnvVar[] = [
    { name: RuntimeEnv.deviceId, value: input.deviceId },
    { name: RuntimeEnv.moduleId, value: isHub ? '$edgeHub' : isAgent ? '$edgeAgent' : moduleName },
    { name: RuntimeEnv.authScheme, value: 'sasToken' },
  ];
  if (input.hubHostName) env.push({ name: RuntimeEnv.hubHostName, value: input.hubHostName });
  if (!isHub && !isAgent) env.push({ name: RuntimeEnv.gatewayHostName, value: gateway });
  env.push({ name: RuntimeEnv.edgeDeviceHostName, value: gateway });
  if (!mi || isAgent) return { env, trustBundleFile: false };
  const workload = mi.mode === 'workload' || isHub;
  if (workload) {
    env.push(
      { name: IdentityEnv.workloadUri, value: mi.workloadUri },
      { name: IdentityEnv.apiVersion, value: WORKLOAD_API_VERSION },
      { name: IdentityEnv.generationId, secretKey: IdentitySecretKeys.workloadSecret },
    );
  }
  if (mi.mode === 'connectionString' || isHub) env.push({ name: IdentityEnv.connectionString, secretKey: IdentitySecretKeys.connectionString });
  if (mi.mode === 'workload' || isHub) return { env, trustBundleFile: false };
  env.push({ name: IdentityEnv.caFile, value: `${TRUST_BUNDLE_DIR}/${TRUST_BUNDLE_KEY}` });
  return { env, trustBundleFile: true };
}

/**
 * {@link moduleRuntimeEnv} as Kubernetes container env: identity Secret keys become `secretKeyRef`s to the module's
 * identity Secret (the key material is never copied into the Deployment), the trust bundle a ConfigMap volume. The
 * Secret reference is not optional: a pod waits for its identity rather than starting without one.
 */
export function kubernetesModuleEnv(
  input: ModuleEnvInput & { readonly objectName: string },
): { env: V1EnvVar[]; volumes: V1Volume[]; mounts: V1VolumeMount[] } {
  const r = moduleRuntimeEnv(input);
  const secret = identitySecretName(input.objectName);
  const env: V1EnvVar[] = r.env.map((v) => ('value' in v ? { name: v.name, value: v.value } : { name: v.name, valueFrom: { secretKeyRef: { name: secret, key: v.secretKey } } }));
  if (!r.trustBundleFile || !input.identity) return { env, volumes: [], mounts: [] };
  return {
    env,
    volumes: [{ name: TRUST_BUNDLE_VOLUME, configMap: { name: input.identity.trustBundleConfigMap, optional: true } }],
    mounts: [{ name: TRUST_BUNDLE_VOLUME, mountPath: TRUST_BUNDLE_DIR, readOnly: true }],
  };
}
