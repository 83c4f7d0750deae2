import { z } from 'zod';
import { EdgeDeploymentSpecSchema } from './schema.js';

/** API group, version and names of Kedge's custom resources. */
export const EdgeDeploymentResource = {
  group: 'kedge.io',
  version: 'v1alpha1',
  apiVersion: 'kedge.io/v1alpha1',
  kind: 'EdgeDeployment',
  listKind: 'EdgeDeploymentList',
  plural: 'edgedeployments',
  singular: 'edgedeployment',
  shortNames: ['edep'],
} as const;

/** Per-module runtime status values reported in `status.modules.<m>.runtimeStatus` (as edgeAgent reports them). */
export const RuntimeStatuses = ['running', 'backoff', 'failed', 'stopped', 'unknown', 'pending'] as const;
export type RuntimeStatus = (typeof RuntimeStatuses)[number];

export const ConditionSchema = z.strictObject({
  type: z.string(),
  status: z.enum(['True', 'False', 'Unknown']),
  reason: z.string(),
  message: z.string(),
  observedGeneration: z.number().int().optional(),
  lastTransitionTime: z.string(),
});
export type Condition = z.infer<typeof ConditionSchema>;

export const ModuleStatusSchema = z.strictObject({
  runtimeStatus: z.enum(RuntimeStatuses),
  description: z.string().optional(),
  desiredStatus: z.enum(['running', 'stopped']).optional(),
  image: z.string().optional(),
  version: z.string().optional(),
  restartCount: z.number().int().default(0),
  exitCode: z.number().int().optional(),
  lastStartTimeUtc: z.string().optional(),
  lastExitTimeUtc: z.string().optional(),
  readyReplicas: z.number().int().optional(),
  /** Names of the Kubernetes objects that carry this module. */
  deployment: z.string().optional(),
  /**
   * Set when the module exited and its restartPolicy says not to restart it (`never`, or exit code 0 under
   * `on-failure`/`on-unhealthy`): the digest of the module spec it exited with. The module stays scaled to 0 until
   * its spec changes.
   */
  parkedSpec: z.string().optional(),
});
export type ModuleStatusReport = z.infer<typeof ModuleStatusSchema>;

export const EdgeDeploymentStatusSchema = z.strictObject({
  observedGeneration: z.number().int().optional(),
  /** `Pending`, `Progressing`, `Ready`, `Degraded` or `Invalid`. */
  phase: z.string().optional(),
  modulesDesired: z.number().int().optional(),
  modulesReady: z.number().int().optional(),
  conditions: z.array(ConditionSchema).optional(),
  modules: z.record(z.string(), ModuleStatusSchema).optional(),
});
export type EdgeDeploymentStatus = z.infer<typeof EdgeDeploymentStatusSchema>;

type JsonSchema = Record<string, unknown>;

/**
 * Turns zod's JSON Schema into a Kubernetes *structural* schema: no `$schema`, `propertyNames`, `const` or
 * `additionalProperties: false`; `x-kubernetes-*` markers (set with `.meta()`) win over `type`/`anyOf`; every
 * node has a `type`.
 */
export function toStructural(node: unknown): JsonSchema {
  if (typeof node !== 'object' || node === null) return {};
  const n = { ...(node as JsonSchema) };
  delete n.$schema;
  delete n.propertyNames;
  delete n.id;
  if (n['x-kubernetes-int-or-string'] === true) {
    return { 'x-kubernetes-int-or-string': true, ...(typeof n.description === 'string' ? { description: n.description } : {}) };
  }
  if (n['x-kubernetes-preserve-unknown-fields'] === true) {
    const props = n.properties as Record<string, unknown> | undefined;
    return {
      type: 'object',
      'x-kubernetes-preserve-unknown-fields': true,
      ...(props ? { properties: mapValues(props, toStructural) } : {}),
      ...(Array.isArray(n.required) ? { required: n.required } : {}),
      ...(typeof n.description === 'string' ? { description: n.description } : {}),
    };
  }
  if ('const' in n) {
    n.enum = [n.const];
    delete n.const;
  }
  // JSON Schema 2020 writes exclusive bounds as numbers; OpenAPI v3 (and the apiserver) wants booleans.
  for (const [ex, bound] of [['exclusiveMinimum', 'minimum'], ['exclusiveMaximum', 'maximum']] as const) {
    if (typeof n[ex] === 'number') {
      n[bound] = n[ex];
      n[ex] = true;
    }
  }
  if (n.additionalProperties === false) delete n.additionalProperties;
  else if (typeof n.additionalProperties === 'object' && n.additionalProperties !== null) {
    n.additionalProperties = toStructural(n.additionalProperties);
    if (n.properties) delete n.additionalProperties;
  }
  if (n.properties) n.properties = mapValues(n.properties as Record<string, unknown>, toStructural);
  if (n.items) n.items = toStructural(n.items);
  if (n.type === 'integer' && typeof n.maximum === 'number' && n.maximum > Number.MAX_SAFE_INTEGER) delete n.maximum;
  if (n.type === undefined && (n.properties || n.additionalProperties)) n.type = 'object';
  if (n.type === undefined) return { 'x-kubernetes-preserve-unknown-fields': true };
  return n;
}

function mapValues(o: Record<string, unknown>, f: (v: unknown) => JsonSchema): JsonSchema {
  return Object.fromEntries(Object.entries(o).map(([k, v]) => [k, f(v)]));
}

/** The OpenAPI v3 schema of the EdgeDeployment resource, generated from the core's zod schemas. */
export function edgeDeploymentOpenApiSchema(): JsonSchema {
  const spec = toStructural(z.toJSONSchema(EdgeDeploymentSpecSchema, { io: 'input', unrepresentable: 'any' }));
  const status = toStructural(z.toJSONSchema(EdgeDeploymentStatusSchema, { io: 'input', unrepresentable: 'any' }));
  return {
    type: 'object',
    required: ['spec'],
    properties: {
      apiVersion: { type: 'string' },
      kind: { type: 'string' },
      metadata: { type: 'object' },
      spec,
      status,
    },
  };
}

/** The `edgedeployments.kedge.io` CustomResourceDefinition, ready to apply. Deterministic. */
export function edgeDeploymentCrd(): Record<string, unknown> {
  const r = EdgeDeploymentResource;
  return {
    apiVersion: 'apiextensions.k8s.io/v1',
    kind: 'CustomResourceDefinition',
    metadata: { name: `${r.plural}.${r.group}`, labels: { 'app.kubernetes.io/part-of': 'kedge' } },
    spec: {
      group: r.group,
      scope: 'Namespaced',
      names: { kind: r.kind, listKind: r.listKind, plural: r.plural, singular: r.singular, shortNames: [...r.shortNames], categories: ['kedge'] },
      versions: [
        {
          name: r.version,
          served: true,
          storage: true,
          subresources: { status: {} },
          additionalPrinterColumns: [
            { name: 'Desired', type: 'integer', jsonPath: '.status.modulesDesired', description: 'Modules desired to run' },
            { name: 'Ready', type: 'integer', jsonPath: '.status.modulesReady', description: 'Modules running and ready' },
            { name: 'Phase', type: 'string', jsonPath: '.status.phase' },
            { name: 'Age', type: 'date', jsonPath: '.metadata.creationTimestamp' },
          ],
          schema: { openAPIV3Schema: edgeDeploymentOpenApiSchema() },
        },
      ],
    },
  };
}
