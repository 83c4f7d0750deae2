import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { edgeDeploymentCrd, edgeDeploymentOpenApiSchema } from './crd.js';

/** Every schema node must be structural: a type (or an x-kubernetes marker), no $schema/propertyNames/const/anyOf. */
function assertStructural(node: unknown, path: string): void {
  if (typeof node !== 'object' || node === null) return;
  const n = node as Record<string, unknown>;
  for (const bad of ['$schema', 'propertyNames', 'const', 'anyOf', 'oneOf', 'allOf']) expect(n[bad], `${path}.${bad}`).toBeUndefined();
  if (!n['x-kubernetes-int-or-string'] && !n['x-kubernetes-preserve-unknown-fields']) expect(n.type, `${path}: type`).toBeTypeOf('string');
  for (const ex of ['exclusiveMinimum', 'exclusiveMaximum']) if (ex in n) expect(n[ex], `${path}.${ex}`).toBeTypeOf('boolean');
  if (n.properties && n.additionalProperties) throw new Error(`${path}: properties and additionalProperties together`);
  for (const [k, v] of Object.entries((n.properties as Record<string, unknown> | undefined) ?? {})) assertStructural(v, `${path}.${k}`);
  if (n.items) assertStructural(n.items, `${path}[]`);
  if (typeof n.additionalProperties === 'object') assertStructural(n.additionalProperties, `${path}.*`);
}

describe('EdgeDeployment CRD', () => {
  it('has a structural schema generated from the manifest schemas', () => {
    const schema = edgeDeploymentOpenApiSchema();
    assertStructural(schema, 'openAPIV3Schema');
    const spec = (schema.properties as Record<string, Record<string, unknown>>).spec ?? {};
    const modules = (spec.properties as Record<string, Record<string, unknown>>).modules ?? {};
    const mod = modules.additionalProperties as Record<string, Record<string, Record<string, unknown>>>;
    expect(mod.properties?.restartPolicy?.enum).toEqual(['never', 'on-failure', 'on-unhealthy', 'always']);
    expect(mod.properties?.settings?.required).toEqual(['image']);
  });

  it('is committed up to date in deploy/crds (regenerate with `npm run gen:crds`)', () => {
    const file = parse(readFileSync(new URL('../../../deploy/crds/edgedeployments.kedge.io.yaml', import.meta.url), 'utf8')) as unknown;
    expect(file).toEqual(edgeDeploymentCrd());
  });
});
