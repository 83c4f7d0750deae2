import { z } from 'zod';

/**
 * Kedge's Kubernetes section of a module: what IoT Edge users wrote under `createOptions["k8s-experimental"]`
 * for Microsoft's preview, plus what that preview lacked. It is accepted both there and as the first-class field
 * `$edgeAgent.properties.desired.modules.<m>.k8s`; when both are given, fields of the first-class one win.
 *
 * Kubernetes sub-objects (affinity, tolerations, security contexts, volumes) are checked for their shape here and
 * passed to the API server as given, which validates them in full.
 */

/** A Kubernetes resource quantity (`500m`, `1Gi`, `2`), as a string or a number. */
export const QuantitySchema = z
  .union([z.string().regex(/^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+|[numkMGTPE]|[KMGTPE]i)?$/, 'not a Kubernetes quantity (e.g. 500m, 128Mi, 2)'), z.number().nonnegative()])
  .meta({ 'x-kubernetes-int-or-string': true });

/** Any JSON object, validated by the API server (kept opaque in the CRD schema). */
const OpaqueObject = z.record(z.string(), z.unknown()).meta({ 'x-kubernetes-preserve-unknown-fields': true });

export const ResourceRequirementsSchema = z.strictObject({
  limits: z.record(z.string(), QuantitySchema).optional(),
  requests: z.record(z.string(), QuantitySchema).optional(),
});

export const TolerationSchema = z.strictObject({
  key: z.string().optional(),
  operator: z.enum(['Exists', 'Equal']).optional(),
  value: z.string().optional(),
  effect: z.enum(['NoSchedule', 'PreferNoSchedule', 'NoExecute']).optional(),
  tolerationSeconds: z.number().int().optional(),
});

const VolumeMountSchema = z.strictObject({
  name: z.string().min(1),
  mountPath: z.string().min(1),
  readOnly: z.boolean().optional(),
  subPath: z.string().optional(),
  mountPropagation: z.enum(['None', 'HostToContainer', 'Bidirectional']).optional(),
});
export type VolumeMount = z.infer<typeof VolumeMountSchema>;

/** One extra pod volume with its mounts into the module container (the preview's `k8s-experimental.volumes`). */
export const VolumeWithMountsSchema = z.strictObject({
  volume: z.looseObject({ name: z.string().min(1) }).meta({ 'x-kubernetes-preserve-unknown-fields': true }),
  volumeMounts: z.array(VolumeMountSchema).default([]),
});

export const ServiceTypes = ['ClusterIP', 'NodePort', 'LoadBalancer'] as const;
export type ServiceType = (typeof ServiceTypes)[number];

export const ServiceOptionsSchema = z.strictObject({
  /** Service type for ports from `PortBindings`; ports only from `ExposedPorts` always get ClusterIP. */
  type: z.enum(ServiceTypes).optional(),
  loadBalancerIP: z.string().optional(),
  annotations: z.record(z.string(), z.string()).optional(),
});

export const StrategySchema = z.strictObject({
  type: z.enum(['Recreate', 'RollingUpdate']),
  rollingUpdate: z
    .strictObject({ maxSurge: QuantitySchema.optional(), maxUnavailable: QuantitySchema.optional() })
    .optional(),
});

export const PersistenceSchema = z.strictObject({
  /** StorageClass for PVCs made from named volumes; `""` binds to pre-created PVs. @default the device policy's */
  storageClassName: z.string().optional(),
  /** Size of PVCs made from named volumes. @default the device policy's (1Gi) */
  size: QuantitySchema.optional(),
  accessModes: z.array(z.enum(['ReadWriteOnce', 'ReadOnlyMany', 'ReadWriteMany', 'ReadWriteOncePod'])).optional(),
});

/** The Kubernetes options of one module. Every field is optional. */
export const KubernetesOptionsSchema = z.strictObject({
  resources: ResourceRequirementsSchema.optional(),
  nodeSelector: z.record(z.string(), z.string()).optional(),
  tolerations: z.array(TolerationSchema).optional(),
  affinity: OpaqueObject.optional(),
  /** Pod-level security context (`V1PodSecurityContext`). */
  securityContext: OpaqueObject.optional(),
  /** Container-level security context (`V1SecurityContext`), merged over what createOptions implies. */
  containerSecurityContext: OpaqueObject.optional(),
  volumes: z.array(VolumeWithMountsSchema).optional(),
  serviceOptions: ServiceOptionsSchema.optional(),
  strategy: StrategySchema.optional(),
  priorityClassName: z.string().optional(),
  persistence: PersistenceSchema.optional(),
  /** Extra pod labels and annotations. */
  podLabels: z.record(z.string(), z.string()).optional(),
  podAnnotations: z.record(z.string(), z.string()).optional(),
});
export type KubernetesOptions = z.infer<typeof KubernetesOptionsSchema>;

/** Keys of the preview's `k8s-experimental` section, which it matched case-insensitively. */
export const K8S_EXPERIMENTAL_KEYS = ['nodeSelector', 'resources', 'volumes', 'securityContext', 'serviceOptions', 'strategy'] as const;
