import { describe, expect, it } from 'vitest';
import { composeLayers, validateLayer } from './layering.js';
import type { ModulesContent } from './validate.js';

const base: ModulesContent = {
  $edgeAgent: { 'properties.desired': { schemaVersion: '1.1', modules: { sensor: { type: 'docker', settings: { image: 'sensor:1' } } } } },
  $edgeHub: { 'properties.desired': { schemaVersion: '1.1', routes: { up: 'FROM /messages/* INTO $upstream' } } },
  sensor: { 'properties.desired': { interval: 5, nested: { a: 1, b: 2 } } },
};

describe('composeLayers', () => {
  it('returns the base when there are no layers, without sharing objects with it', () => {
    const out = composeLayers(base, []);
    expect(out).toEqual(base);
    (out.sensor?.['properties.desired'] as { interval: number }).interval = 99;
    expect((base.sensor?.['properties.desired'] as { interval: number }).interval).toBe(5);
  });

  it('adds a module and a route through dotted paths', () => {
    const out = composeLayers(base, [
      {
        id: 'monitoring',
        priority: 10,
        content: {
          $edgeAgent: { 'properties.desired.modules.collector': { type: 'docker', settings: { image: 'collector:1' } } },
          $edgeHub: { 'properties.desired.routes.metrics': 'FROM /messages/modules/collector/* INTO $upstream' },
          collector: { 'properties.desired': { scrape: true } },
        },
      },
    ]);
    const agent = out.$edgeAgent?.['properties.desired'] as { modules: Record<string, unknown> };
    expect(Object.keys(agent.modules).sort()).toEqual(['collector', 'sensor']);
    expect((out.$edgeHub?.['properties.desired'] as { routes: Record<string, string> }).routes).toEqual({
      up: 'FROM /messages/* INTO $upstream',
      metrics: 'FROM /messages/modules/collector/* INTO $upstream',
    });
    expect(out.collector).toEqual({ 'properties.desired': { scrape: true } });
  });

  it('lets the higher priority win on the same path, whatever the input order', () => {
    const low = { id: 'low', priority: 5, content: { sensor: { 'properties.desired.interval': 10 } } };
    const high = { id: 'high', priority: 20, content: { sensor: { 'properties.desired.interval': 1 } } };
    for (const layers of [[low, high], [high, low]]) {
      expect((composeLayers(base, layers).sensor?.['properties.desired'] as { interval: number }).interval).toBe(1);
    }
  });

  it('replaces the subtree at a path (no deep merge) and creates missing parents', () => {
    const out = composeLayers(base, [{ id: 'l', priority: 1, content: { sensor: { 'properties.desired.nested': { c: 3 }, 'properties.desired.x.y.z': true } } }]);
    expect(out.sensor?.['properties.desired']).toEqual({ interval: 5, nested: { c: 3 }, x: { y: { z: true } } });
  });

  it('replaces the whole desired document for a plain properties.desired key, then applies same-layer paths', () => {
    const out = composeLayers(base, [{ id: 'l', priority: 1, content: { sensor: { 'properties.desired.extra': 1, 'properties.desired': { fresh: true } } } }]);
    expect(out.sensor?.['properties.desired']).toEqual({ fresh: true, extra: 1 });
  });

  it('works without a base', () => {
    expect(composeLayers(undefined, [{ id: 'l', priority: 1, content: { m: { 'properties.desired.a': 1 } } }])).toEqual({ m: { 'properties.desired': { a: 1 } } });
  });

  it('treats __proto__ and other prototype names as ordinary module names and path segments', () => {
    const content = JSON.parse(
      '{"__proto__": {"properties.desired.polluted": 1}, "m": {"properties.desired.__proto__.polluted": 2, "properties.desired.constructor.prototype.x": 3}}',
    ) as ModulesContent;
    const out = composeLayers(undefined, [{ id: 'l', priority: 1, content }]);
    expect(({} as Record<string, unknown>)['polluted']).toBeUndefined();
    expect(JSON.stringify(out)).toBe(
      '{"__proto__":{"properties.desired":{"polluted":1}},"m":{"properties.desired":{"__proto__":{"polluted":2},"constructor":{"prototype":{"x":3}}}}}',
    );
  });
});

describe('validateLayer', () => {
  it('accepts layered keys and checks module and route values by path', () => {
    expect(validateLayer({ content: { modulesContent: { $edgeAgent: { 'properties.desired.modules.m': { type: 'docker', settings: { image: 'm' } } } } } }).ok).toBe(true);
    const bad = validateLayer({
      $edgeAgent: { 'properties.desired.modules.m': { type: 'docker', settings: {} } },
      $edgeHub: { 'properties.desired.routes.r': 'FROM nowhere INTO $upstream' },
      m: { settings: {} },
    });
    expect(bad.ok).toBe(false);
    if (bad.ok) return;
    const lines = bad.error.map((i) => `${i.path}: ${i.message}`);
    expect(lines).toContain('$edgeAgent.properties.desired.modules.m.settings.image: required');
    expect(lines.some((l) => l.startsWith('$edgeHub.properties.desired.routes.r: ') && /line 1, column \d+/.test(l))).toBe(true);
    expect(lines).toContain('m.settings: layer keys are "properties.desired" or "properties.desired.<path>"');
  });

  it('rejects empty path segments and non-objects', () => {
    const r = validateLayer({ m: { 'properties.desired..a': 1 }, n: 5 });
    expect(r.ok ? [] : r.error.map((i) => i.path)).toEqual(['m.properties.desired..a', 'n']);
    expect(validateLayer('x').ok).toBe(false);
  });

  it('refuses what a twin cannot hold: a "$" or space in a path segment, unsafe keys in a value', () => {
    const msgs = (input: unknown) => { const r = validateLayer(input); return r.ok ? [] : r.error.map((i) => `${i.path}: ${i.message}`); };
    expect(msgs({ m: { 'properties.desired.a b': 1 } })).toEqual(['m.properties.desired.a b: path segment "a b" cannot be a twin key (no "$" or spaces)']);
    expect(msgs({ m: { 'properties.desired.x$': 1 } })).toEqual(['m.properties.desired.x$: path segment "x$" cannot be a twin key (no "$" or spaces)']);
    expect(msgs({ $edgeAgent: { 'properties.desired.modules.filter': { type: 'docker', settings: { image: 'f:1' }, k8s: { nodeSelector: { 'kubernetes.io/os': 'linux' } } } } })).toEqual([
      '$edgeAgent.properties.desired.modules.filter.k8s.nodeSelector.kubernetes.io/os: IoT Hub refuses this in a twin: keys must be non-empty and cannot contain ".", "$", spaces or control characters',
    ]);
    expect(validateLayer({ $edgeAgent: { 'properties.desired.modules.filter': { type: 'docker', settings: { image: 'f:1', k8sOptions: '{"nodeSelector":{"kubernetes.io/os":"linux"}}' } } } }).ok).toBe(true);
  });
});
