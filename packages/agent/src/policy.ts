import { z } from 'zod';
import { QuantitySchema } from '@kedge/manifest';

/**
 * What a device's operator allows and prefers, independent of the manifest (which comes from the cloud).
 * Set per agent installation (Helm values / `kedge agent` flags), never by the manifest itself.
 */
export const DevicePolicySchema = z.strictObject({
  /** Allow host bind mounts (`HostConfig.Binds` host paths, `Mounts` of type bind, `Devices`) as hostPath volumes. @default false */
  allowHostPaths: z.boolean().default(false),
  /** Allow `Privileged`, host network/IPC/PID. @default true (IoT Edge modules commonly need it) */
  allowPrivileged: z.boolean().default(true),
  /** StorageClass for PVCs made from named volumes; undefined uses the cluster default. */
  storageClassName: z.string().optional(),
  /** Size of PVCs made from named volumes. @default "1Gi" */
  pvcSize: QuantitySchema.default('1Gi'),
  /** Access mode of those PVCs. @default ReadWriteOnce (what local-path provisioners support) */
  pvcAccessMode: z.enum(['ReadWriteOnce', 'ReadWriteMany', 'ReadWriteOncePod']).default('ReadWriteOnce'),
  /** Service type for ports from `PortBindings` when the module does not choose one. @default ClusterIP */
  portBindingServiceType: z.enum(['ClusterIP', 'NodePort', 'LoadBalancer']).default('ClusterIP'),
  /** Hub host name given to modules as IOTEDGE_IOTHUBHOSTNAME. */
  hubHostName: z.string().optional(),
  /**
   * How modules get their identity (Secrets written by the agent's module identities, `identities.ts`). Absent: no
   * identity variables are rendered (a controller without a hub link; with one, the agent fills in the default).
   * `workload` (the default, IoT Edge's own mode): the `IOTEDGE_*` variables, the module signs its tokens and
   * fetches the trust bundle through the workload API at `workloadUri`, and its key never enters its pod.
   * `connectionString` (iotedgehubdev's mode): `EdgeHubConnectionString` from the module's identity Secret and
   * `EdgeModuleCACertificateFile` from the trust-bundle ConfigMap, for modules that cannot reach the workload API.
   */
  moduleIdentity: z
    .strictObject({
      mode: z.enum(['connectionString', 'workload']).default('workload'),
      workloadUri: z.string().default('http://kedge-workload:15580'),
      /** ConfigMap (key `ca.pem`) with the CA that issued the edge hub's server certificate. */
      trustBundleConfigMap: z.string().default('kedge-trust-bundle'),
    })
    .optional(),
  /** Render the edgeAgent system module as a Deployment. @default false: the agent is installed by Helm, not by itself */
  manageEdgeAgent: z.boolean().default(false),
  /** Namespace hardening applied with the modules. */
  hardening: z
    .strictObject({
      /** A default-deny NetworkPolicy that admits only traffic inside the namespace to the edge hub's ports. */
      networkPolicy: z.boolean().default(false),
      resourceQuota: z.record(z.string(), QuantitySchema).optional(),
      limitRange: z
        .strictObject({ defaultLimits: z.record(z.string(), QuantitySchema).optional(), defaultRequests: z.record(z.string(), QuantitySchema).optional() })
        .optional(),
      /** Pod Security Standard level for the namespace labels (applied by the installer, not the controller). */
      podSecurity: z.enum(['privileged', 'baseline', 'restricted']).optional(),
    })
    .default({ networkPolicy: false }),
});
export type DevicePolicy = z.infer<typeof DevicePolicySchema>;
export type DevicePolicyInput = z.input<typeof DevicePolicySchema>;

/** The default policy. */
export function defaultPolicy(overrides: DevicePolicyInput = {}): DevicePolicy {
  return DevicePolicySchema.parse(overrides);
}
