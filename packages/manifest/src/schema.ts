import { z } from 'zod';
import { KubernetesOptionsSchema } from './k8s-options.js';
import { ProcessOptionsSchema } from './process-options.js';

/**
 * The normalized desired state of one edge device: what `validateManifest` produces from an IoT Edge manifest and
 * what the `EdgeDeployment` custom resource's `spec` holds. These zod schemas are the single source of the
 * TypeScript types, of runtime validation (the controller re-validates every spec it reads) and of the CRD's
 * OpenAPI schema (`edgeDeploymentCrd()`).
 */

export const ModuleStatuses = ['running', 'stopped'] as const;
export type ModuleStatus = (typeof ModuleStatuses)[number];

export const RestartPolicies = ['never', 'on-failure', 'on-unhealthy', 'always'] as const;
export type RestartPolicy = (typeof RestartPolicies)[number];

export const ImagePullPolicies = ['on-create', 'never'] as const;
export type ImagePullPolicy = (typeof ImagePullPolicies)[number];

/** IoT Edge's default `startupOrder`: modules without one start last. */
export const DEFAULT_STARTUP_ORDER = 4294967295;

const nonBlank = (what: string) => z.string().regex(/\S/, `${what} must not be empty or whitespace`);

export const EnvVarSchema = z.strictObject({ value: z.string() });

export const ModuleSettingsSchema = z.strictObject({
  /** `repository[:tag]`; the tag defaults to `latest`. */
  image: nonBlank('image'),
  /** Docker `ContainerCreate` options, already reassembled from chunks and parsed. @default {} */
  createOptions: z
    .record(z.string(), z.unknown())
    .default({})
    .meta({ 'x-kubernetes-preserve-unknown-fields': true, description: 'Docker ContainerCreate options: the chunks of the manifest\'s JSON string joined and parsed.' }),
  digest: z.string().optional(),
});

export const ModuleSpecSchema = z.strictObject({
  type: z.literal('docker'),
  /** Free user string; a change means a module update. */
  version: z.string().optional(),
  status: z.enum(ModuleStatuses).default('running'),
  restartPolicy: z.enum(RestartPolicies).default('always'),
  /** Lower starts first. @default 4294967295 */
  startupOrder: z.number().int().min(0).max(DEFAULT_STARTUP_ORDER).optional(),
  imagePullPolicy: z.enum(ImagePullPolicies).default('on-create'),
  env: z.record(z.string(), EnvVarSchema).default({}),
  settings: ModuleSettingsSchema,
  /**
   * Kedge's Kubernetes options, parsed: a manifest's `settings.k8sOptions` JSON string (chunks joined) merged over the
   * preview's `createOptions["k8s-experimental"]`. An object here: a custom resource may hold keys a twin may not.
   */
  k8s: KubernetesOptionsSchema.optional().meta({
    description: "Kubernetes options of the module: in a manifest the JSON string settings.k8sOptions (chunked like createOptions) merged over createOptions[\"k8s-experimental\"]; parsed here.",
  }),
  /**
   * The module's process form for the agent's process runtime, parsed: a manifest's `settings.processOptions` JSON
   * string (chunks joined). Ignored on Kubernetes, which runs the image.
   */
  process: ProcessOptionsSchema.optional().meta({
    description: 'Process form of the module (process runtime): in a manifest the JSON string settings.processOptions (chunked like createOptions); parsed here.',
  }),
});
export type ModuleSpec = z.infer<typeof ModuleSpecSchema>;

export const SecretKeyRefSchema = z.strictObject({ name: z.string().min(1), key: z.string().min(1) });

export const RegistryCredentialSchema = z.strictObject({
  address: nonBlank('address'),
  username: nonBlank('username'),
  /** Inline password, as in IoT Edge manifests. Prefer `passwordSecretRef` in hand-written resources. */
  password: nonBlank('password').optional(),
  passwordSecretRef: SecretKeyRefSchema.optional(),
});
export type RegistryCredential = z.infer<typeof RegistryCredentialSchema>;

/** IoT Edge's default route priority: below every explicit priority 0–9. */
export const DEFAULT_ROUTE_PRIORITY = 2000000000;

export const RouteSpecSchema = z.strictObject({
  route: z.string().min(1),
  /** 0 (highest) … 9; absent means below every explicit priority. */
  priority: z.number().int().min(0).max(9).optional(),
  /** 0 or absent: the store-and-forward TTL applies. */
  timeToLiveSecs: z.number().int().min(0).optional(),
});
export type RouteSpec = z.infer<typeof RouteSpecSchema>;

export const StoreAndForwardSchema = z.strictObject({
  /** Negative means messages never expire. @default 7200 */
  timeToLiveSecs: z.number().int().default(7200),
  maxSizeBytes: z.number().int().positive().optional(),
});

export const EdgeDeploymentSpecSchema = z.strictObject({
  /** The device this namespace belongs to (informational; the namespace is the identity). */
  deviceId: z.string().optional(),
  /** Where the spec came from, e.g. the `$edgeAgent` twin `$version` or a configuration id. */
  manifestVersion: z.string().optional(),
  agentSchemaVersion: z.string().default('1.1'),
  hubSchemaVersion: z.string().default('1.1'),
  systemModules: z.strictObject({ edgeAgent: ModuleSpecSchema.optional(), edgeHub: ModuleSpecSchema.optional() }).default({}),
  modules: z.record(z.string(), ModuleSpecSchema).default({}),
  registryCredentials: z.record(z.string(), RegistryCredentialSchema).default({}),
  routes: z.record(z.string(), RouteSpecSchema).default({}),
  storeAndForward: StoreAndForwardSchema.default({ timeToLiveSecs: 7200 }),
});
export type EdgeDeploymentSpec = z.infer<typeof EdgeDeploymentSpecSchema>;
/** The spec as written (defaults not yet applied). */
export type EdgeDeploymentSpecInput = z.input<typeof EdgeDeploymentSpecSchema>;
