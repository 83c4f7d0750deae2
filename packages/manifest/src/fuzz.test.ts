import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { composeLayers, validateLayer } from './layering.js';
import { parseCreateOptions } from './create-options.js';
import { IssueCollector } from './issues.js';
import { parseEdgeDeploymentSpec } from './spec.js';
import { validateManifest } from './validate.js';

// Documents shaped like manifests (so that the checks get deep), with arbitrary values anywhere.
const leaf = fc.oneof(fc.string(), fc.integer(), fc.double(), fc.boolean(), fc.constant(null));
const json = fc.letrec((tie) => ({
  value: fc.oneof({ depthSize: 'small' }, leaf, fc.array(tie('value'), { maxLength: 4 }), fc.dictionary(fc.oneof(fc.string(), fc.constantFrom('type', 'settings', 'image', 'createOptions', 'createOptions01', 'env', 'value', 'status', 'restartPolicy', 'k8s', 'routes', 'schemaVersion')), tie('value'), { maxKeys: 5 })),
})).value;
const manifestish = fc.record({
  modulesContent: fc.record({
    $edgeAgent: fc.record({ 'properties.desired': fc.record({ schemaVersion: fc.oneof(fc.constantFrom('1.0', '1.1', '2.0'), json), runtime: json, systemModules: fc.dictionary(fc.constantFrom('edgeAgent', 'edgeHub', 'x'), json), modules: fc.dictionary(fc.string(), json) }, { requiredKeys: [] }) }),
    $edgeHub: fc.record({ 'properties.desired': fc.record({ schemaVersion: fc.oneof(fc.constantFrom('1.0', '1.1', '1.3'), json), routes: fc.dictionary(fc.string(), fc.oneof(fc.string(), json)), storeAndForwardConfiguration: json }, { requiredKeys: [] }) }),
  }, { requiredKeys: [] }),
});

describe('manifest parsers never throw', () => {
  it('validateManifest on arbitrary JSON and manifest-shaped documents', () => {
    fc.assert(fc.property(fc.oneof(json, manifestish), (doc) => {
      const r = validateManifest(doc);
      expect(typeof r.ok).toBe('boolean');
      if (!r.ok) expect(r.error.length).toBeGreaterThan(0);
    }), { numRuns: 500 });
  });

  it('parseCreateOptions on arbitrary strings and objects', () => {
    fc.assert(fc.property(fc.oneof(fc.string(), fc.json(), json.filter((v): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v))), (src) => {
      parseCreateOptions(src, ['x'], new IssueCollector());
    }), { numRuns: 500 });
  });

  it('parseEdgeDeploymentSpec, validateLayer and composeLayers on arbitrary input', () => {
    fc.assert(fc.property(json, json, (a, b) => {
      parseEdgeDeploymentSpec(a);
      validateLayer(a);
      const asContent = (v: unknown) => (typeof v === 'object' && v !== null && !Array.isArray(v) ? (v as Record<string, Record<string, unknown>>) : {});
      composeLayers(asContent(a), [{ id: 'l', priority: 1, content: asContent(b) }]);
    }), { numRuns: 300 });
  });
});
