import { describe, expect, it } from 'vitest';
import { composeLayers, validateLayer } from './layering.js';

// (A file of its own, not appended to layering.test.ts: the vitest runner reports no test locations, so an edited
// test file makes Stryker's incremental mode re-test every mutant its tests killed.)

// Issue 15: each rule of validateLayer with its exact outcome, and composeLayers' order and copies.
describe('validateLayer: rule by rule', () => {
  const errs = (input: unknown) => { const r = validateLayer(input); return r.ok ? [] : r.error.map((i) => `${i.path}: ${i.message}`); };

  it('finds the modulesContent in the three wrappings and refuses a document that has none', () => {
    const content = { m: { 'properties.desired.a': 1 } };
    for (const doc of [content, { modulesContent: content }, { content: { modulesContent: content } }]) {
      const r = validateLayer(doc);
      expect(r.ok && r.value).toEqual(content);
    }
    expect(errs([])).toEqual(['modulesContent: expected an object, got array']);
    expect(errs({ modulesContent: 5 })).toEqual(['modulesContent: expected an object, got number']);
    expect(errs({ content: { modulesContent: null } })).toEqual(['modulesContent: expected an object, got null']);
  });

  it('refuses a module entry that is not an object and keys that are not properties.desired[.<path>]', () => {
    expect(errs({ n: 5 })).toEqual(['n: expected an object of "properties.desired[.<path>]" keys, got number']);
    expect(errs({ m: { 'properties.desiredx': 1, tags: {} } })).toEqual([
      'm.properties.desiredx: layer keys are "properties.desired" or "properties.desired.<path>"',
      'm.tags: layer keys are "properties.desired" or "properties.desired.<path>"',
    ]);
  });

  it('refuses empty path segments anywhere, and a whole desired document that is not an object', () => {
    expect(errs({ m: { 'properties.desired.': 1 } })).toEqual(['m.properties.desired.: empty path segment']);
    expect(errs({ m: { 'properties.desired.a.': 1 } })).toEqual(['m.properties.desired.a.: empty path segment']);
    expect(errs({ m: { 'properties.desired': 5 } })).toEqual(['m.properties.desired: expected an object, got number']);
    expect(errs({ m: { 'properties.desired': { a: 1 }, 'properties.desired.b': 'x' } })).toEqual([]);
  });

  it('checks a module value at modules.<m> and systemModules.<m> only, as a system module under systemModules', () => {
    expect(errs({ $edgeAgent: { 'properties.desired.systemModules.edgeHub': { type: 'docker' } } })).toEqual(['$edgeAgent.properties.desired.systemModules.edgeHub.settings: required']);
    expect(errs({ $edgeAgent: { 'properties.desired.modules.m.settings': { image: 5 } } })).toEqual([]);
    expect(errs({ $edgeAgent: { 'properties.desired.systemModules': { x: 1 } } })).toEqual([]);
    expect(errs({ $edgeAgent: { 'properties.desired.modules': 5 } })).toEqual([]);
    expect(errs({ other: { 'properties.desired.modules.m': { type: 'docker' } } })).toEqual([]);
    // The module value's warnings are the module rules' (the known-properties list is for user modules).
    const sys = validateLayer({ $edgeAgent: { 'properties.desired.systemModules.edgeHub': { type: 'docker', settings: { image: 'h' }, bogus: 1 } } });
    expect(sys.warnings.map((w) => w.message)).toEqual(['unknown module property; ignored']);
    const user = validateLayer({ $edgeAgent: { 'properties.desired.modules.m': { type: 'docker', settings: { image: 'h' }, bogus: 1 } } });
    expect(user.warnings.map((w) => w.message)).toEqual([expect.stringContaining('(known: ') as unknown]);
  });

  it('checks a route value at routes.<r> only: a string or {"route": …} that compiles', () => {
    expect(errs({ $edgeHub: { 'properties.desired.routes.r': 'FROM /* INTO $upstream' } })).toEqual([]);
    expect(errs({ $edgeHub: { 'properties.desired.routes.r': { route: 'FROM /* INTO $upstream', priority: 1 } } })).toEqual([]);
    expect(errs({ $edgeHub: { 'properties.desired.routes.r': 5 } })).toEqual(['$edgeHub.properties.desired.routes.r: expected a route string or {"route": …}']);
    expect(errs({ $edgeHub: { 'properties.desired.routes.r': { route: 5 } } })).toEqual(['$edgeHub.properties.desired.routes.r: expected a route string or {"route": …}']);
    expect(errs({ $edgeHub: { 'properties.desired.routes.r': { route: 'FROM /* INTO' } } })).toEqual([expect.stringMatching(/^\$edgeHub\.properties\.desired\.routes\.r: line 1, column \d+: /) as unknown]);
    expect(errs({ $edgeHub: { 'properties.desired.routes.r.priority': 'x' } })).toEqual([]);
    expect(errs({ $edgeHub: { 'properties.desired.routes': 5 } })).toEqual([]);
    expect(errs({ other: { 'properties.desired.routes.r': 5 } })).toEqual([]);
  });

  it('returns the warnings with an accepted layer', () => {
    const r = validateLayer({ $edgeAgent: { 'properties.desired.modules.m': { type: 'docker', settings: { image: 'h', extra: 1 } } } });
    expect(r.ok).toBe(true);
    expect(r.warnings.map((w) => `${w.path}: ${w.message}`)).toEqual(['$edgeAgent.properties.desired.modules.m.settings.extra: unknown module setting; ignored']);
  });
});

describe('composeLayers: order and copies', () => {
  const desired = (c: Record<string, Record<string, unknown>>, m: string) => c[m]?.['properties.desired'];

  it('applies equal priorities in the given order, the later winning', () => {
    const a = { id: 'a', priority: 5, content: { m: { 'properties.desired.x': 'a' } } };
    const b = { id: 'b', priority: 5, content: { m: { 'properties.desired.x': 'b' } } };
    expect(desired(composeLayers(undefined, [a, b]), 'm')).toEqual({ x: 'b' });
    expect(desired(composeLayers(undefined, [b, a]), 'm')).toEqual({ x: 'a' });
    const low = { id: 'l', priority: 1, content: { m: { 'properties.desired.x': 'low' } } };
    expect(desired(composeLayers(undefined, [b, low, a]), 'm')).toEqual({ x: 'a' });
  });

  it('reads a base entry without a desired object as empty, and skips layer entries that are not objects', () => {
    const out = composeLayers({ m: { 'properties.desired': 5 }, n: 7 as never }, [{ id: 'l', priority: 1, content: { k: 5 as never, m: { 'properties.desired.a': 1, other: 2 } } }]);
    expect(out).toEqual({ m: { 'properties.desired': { a: 1 } }, n: { 'properties.desired': {} } });
  });

  it('replaces a whole document that is not an object by an empty one, and walks through a non-object to set a path', () => {
    const out = composeLayers({ m: { 'properties.desired': { a: 5 } } }, [
      { id: 'l', priority: 1, content: { m: { 'properties.desired.a.b': 1 }, n: { 'properties.desired': 'x' } } },
    ]);
    expect(out).toEqual({ m: { 'properties.desired': { a: { b: 1 } } }, n: { 'properties.desired': {} } });
  });

  it('does not share objects with the layers', () => {
    const value = { deep: { x: 1 } };
    const out = composeLayers(undefined, [{ id: 'l', priority: 1, content: { m: { 'properties.desired.v': value, 'properties.desired': { w: value } } } }]);
    const d = desired(out, 'm') as { v: { deep: { x: number } }; w: { deep: { x: number } } };
    d.v.deep.x = 2;
    d.w.deep.x = 3;
    expect(value.deep.x).toBe(1);
  });
});
