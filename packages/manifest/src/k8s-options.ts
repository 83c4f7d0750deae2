import { z } from 'zod';
import { parseJsonObjectSetting, splitChunks } from './chunks.js';
import type { IssueCollector, PathSegment } from './issues.js';
import { zodIssues } from './zod-issues.js';

/**
 * Kedge's Kubernetes section of a module: what IoT Edge users wrote under `createOptions["k8s-experimental"]`
 * for Microsoft's preview, plus what that preview lacked. In a manifest it travels as the JSON string
 * `settings.k8sOptions` (chunked like `createOptions`, see {@link K8S_OPTIONS}); the preview's section is read too,
 * and fields of `k8sOptions` win over it. In an EdgeDeployment it is the parsed object `modules.<m>.k8s`.
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

/**
 * The `settings` key that carries a module's Kubernetes options through a twin: a JSON **string**, split like
 * `createOptions` into `k8sOptions`, `k8sOptions01` … `k8sOptions99`. A string because twin keys may not contain `.`,
 * `$` or spaces, and Kubernetes keys do (`kubernetes.io/os`, `nvidia.com/gpu`), and because affinity nests deeper
 * than a twin's 10 levels. Beside `createOptions` because that is where edgeAgent's chunking lives and where tools
 * that split `createOptions` look.
 */
export const K8S_OPTIONS = 'k8sOptions';

/** Validates a Kubernetes options object (the parsed `k8sOptions`, or the converted preview section). */
export function validateKubernetesOptions(value: unknown, path: readonly PathSegment[], issues: IssueCollector): KubernetesOptions | undefined {
  const r = KubernetesOptionsSchema.safeParse(value, { reportInput: true });
  if (r.success) return r.data;
  for (const i of zodIssues(r.error, path)) issues.errors.push(i);
  return undefined;
}

/**
 * Parses the (reassembled) `settings.k8sOptions` text. `""` and `"null"` mean no options. Unknown keys and wrong
 * shapes are errors: unlike Docker's createOptions, nothing else reads this section, so a typo would only be lost.
 */
export function parseK8sOptions(text: string, path: readonly PathSegment[], issues: IssueCollector): { ok: true; value: KubernetesOptions | undefined } | { ok: false } {
  const parsed = parseJsonObjectSetting(text, path, issues);
  if (!parsed.ok || parsed.value === undefined) return parsed.ok ? { ok: true, value: undefined } : parsed;
  const raw = parsed.value;
  const value = validateKubernetesOptions(raw, path, issues);
  return value ? { ok: true, value } : { ok: false };
}

/** The `settings` entries that carry `options` through a twin: `{"k8sOptions": "…"}`, chunked when long. */
export function k8sOptionsSettings(options: KubernetesOptions): Record<string, string> {
  return splitChunks(JSON.stringify(options), K8S_OPTIONS);
}
