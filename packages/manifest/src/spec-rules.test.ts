import { describe, expect, it } from 'vitest';
import { parseEdgeDeploymentSpec } from './spec.js';

// Every rule of parseEdgeDeploymentSpec has a case that passes and one that fails, with the exact path it names.

const mod = (extra: Record<string, unknown> = {}): Record<string, unknown> => ({ type: 'docker', settings: { image: 'img:1' }, ...extra });

function errors(input: unknown): { path: string; message: string }[] {
  const r = parseEdgeDeploymentSpec(input);
  return r.ok ? [] : r.error.map((i) => ({ path: i.path, message: i.message }));
}

describe('parseEdgeDeploymentSpec: accepted specs', () => {
  it('accepts an empty spec and applies the schema defaults', () => {
    const r = parseEdgeDeploymentSpec({});
    expect(r.ok).toBe(true);
    if (!r.ok) return;
    expect(r.value.spec).toEqual({
      agentSchemaVersion: '1.1',
      hubSchemaVersion: '1.1',
      systemModules: {},
      modules: {},
      registryCredentials: {},
      routes: {},
      storeAndForward: { timeToLiveSecs: 7200 },
    });
    expect(r.value.createOptions).toEqual({});
    expect(r.value.warnings).toEqual([]);
  });

  it('parses the createOptions of system and user modules, keyed by module name, and returns their warnings', () => {
    const r = parseEdgeDeploymentSpec({
      systemModules: { edgeAgent: mod(), edgeHub: mod({ settings: { image: 'hub:1', createOptions: { HostConfig: { PortBindings: { '8883/tcp': [{ HostPort: '8883' }] } } } } }) },
      modules: { sensor: mod({ settings: { image: 's:1', createOptions: { Env: ['A=1'], Bogus: 1 } } }) },
    });
    expect(r.ok).toBe(true);
    if (!r.ok) return;
    expect(Object.keys(r.value.createOptions).sort()).toEqual(['edgeAgent', 'edgeHub', 'sensor']);
    expect(r.value.createOptions.edgeAgent).toEqual({});
    expect(r.value.createOptions.edgeHub?.HostConfig?.PortBindings?.['8883/tcp']).toEqual([{ HostPort: '8883' }]);
    expect(r.value.createOptions.sensor?.Env).toEqual(['A=1']);
    expect(r.value.warnings).toEqual([{ path: 'spec.modules.sensor.settings.createOptions.Bogus', message: expect.stringContaining('unknown createOptions field') as unknown }]);
  });

  it('accepts a system module given as undefined (the schema keeps the key) and parses nothing for it', () => {
    const r = parseEdgeDeploymentSpec({ systemModules: { edgeAgent: undefined, edgeHub: mod() } });
    expect(r.ok).toBe(true);
    expect(r.ok && Object.keys(r.value.createOptions)).toEqual(['edgeHub']);
  });

  it('does not check system module names against the user module rules', () => {
    expect(errors({ systemModules: { edgeAgent: mod(), edgeHub: mod() } })).toEqual([]);
  });

  it('accepts a registry credential with a password or with a secret reference', () => {
    expect(errors({ registryCredentials: { a: { address: 'r.io', username: 'u', password: 'p' } } })).toEqual([]);
    expect(errors({ registryCredentials: { b: { address: 'r.io', username: 'u', passwordSecretRef: { name: 's', key: 'k' } } } })).toEqual([]);
  });

  it('accepts well-formed routes and keeps them', () => {
    const r = parseEdgeDeploymentSpec({ routes: { up: { route: 'FROM /messages/* INTO $upstream', priority: 0 } } });
    expect(r.ok && r.value.spec.routes).toEqual({ up: { route: 'FROM /messages/* INTO $upstream', priority: 0 } });
  });
});

describe('parseEdgeDeploymentSpec: refused specs', () => {
  it('refuses what is not an object, with the path spec', () => {
    for (const v of [null, 'x', 1, []]) {
      const e = errors(v);
      expect(e.length).toBeGreaterThan(0);
      expect(e[0]?.path).toBe('spec');
    }
  });

  it('reports schema errors under spec with the full path', () => {
    expect(errors({ modules: { a: { type: 'docker' } } })).toEqual([{ path: 'spec.modules.a.settings', message: 'required' }]);
    expect(errors({ routes: { r: { route: 'FROM /* INTO $upstream', priority: 10 } } })).toEqual([{ path: 'spec.routes.r.priority', message: 'must be at most 9' }]);
  });

  it.each([
    ['', 'module name must not be empty'],
    ['$sys', 'module names starting with "$" are reserved for system modules'],
    ['a b', "module name may only contain letters, digits and -:.+%_#*?!(),=@;$'"],
    ['m'.repeat(129), 'module name is longer than 128 characters'],
  ])('refuses the user module name %j at its path', (name, message) => {
    expect(errors({ modules: { [name]: mod() } })).toEqual([{ path: `spec.modules.${name}`, message }]);
  });

  it('accepts a user module name of 128 characters', () => {
    expect(errors({ modules: { ['m'.repeat(128)]: mod() } })).toEqual([]);
  });

  it.each(['edgeAgent', 'edgeHub'])('refuses the system module %s under modules', (name) => {
    expect(errors({ modules: { [name]: mod() } })).toEqual([{ path: `spec.modules.${name}`, message: `"${name}" is a system module; put it under spec.systemModules` }]);
  });

  it('reports a createOptions error at the module settings path', () => {
    expect(errors({ modules: { a: mod({ settings: { image: 'i', createOptions: { 'k8s-experimental': 1 } } }) } })).toEqual([
      { path: 'spec.modules.a.settings.createOptions.k8s-experimental', message: 'expected an object, got number' },
    ]);
    expect(errors({ systemModules: { edgeHub: mod({ settings: { image: 'i', createOptions: { 'k8s-experimental': [] } } }) } })).toEqual([
      { path: 'spec.systemModules.edgeHub.settings.createOptions.k8s-experimental', message: 'expected an object, got array' },
    ]);
  });

  it('refuses a route that does not compile, and a bad route name, each at its path', () => {
    expect(errors({ routes: { 'a b': { route: 'FROM /* INTO $upstream' } } })).toEqual([
      { path: 'spec.routes.a b', message: expect.stringContaining('route name "a b"') as unknown },
    ]);
    expect(errors({ routes: { r: { route: 'FROM /* INTO' } } })).toEqual([{ path: 'spec.routes.r.route', message: expect.any(String) as unknown }]);
  });

  it('refuses a registry credential without a password or a secret reference', () => {
    expect(errors({ registryCredentials: { c: { address: 'r.io', username: 'u' } } })).toEqual([
      { path: 'spec.registryCredentials.c', message: 'needs password or passwordSecretRef' },
    ]);
  });

  it('reports every error of a spec, not only the first', () => {
    expect(errors({ modules: { $x: mod() }, routes: { r: { route: 'nope' } }, registryCredentials: { c: { address: 'r.io', username: 'u' } } }).map((e) => e.path)).toEqual([
      'spec.modules.$x',
      'spec.routes.r.route',
      'spec.registryCredentials.c',
    ]);
  });

  it.each([
    ['modules', `{"modules":{"__proto__":{"type":"docker","settings":{"image":"i"}}}}`, 'spec.modules.__proto__'],
    ['routes', `{"routes":{"__proto__":{"route":"FROM /* INTO $upstream"}}}`, 'spec.routes.__proto__'],
    ['registryCredentials', `{"registryCredentials":{"__proto__":{"address":"r","username":"u","password":"p"}}}`, 'spec.registryCredentials.__proto__'],
    ['a module env', `{"modules":{"m":{"type":"docker","env":{"__proto__":{"value":"v"}},"settings":{"image":"i"}}}}`, 'spec.modules.m.env.__proto__'],
    ['a system module env', `{"systemModules":{"edgeHub":{"type":"docker","env":{"__proto__":{"value":"v"}},"settings":{"image":"i"}}}}`, 'spec.systemModules.edgeHub.env.__proto__'],
  ])('refuses "__proto__" in %s, before the schema drops it', (_what, text, path) => {
    expect(errors(JSON.parse(text))).toEqual([
      { path, message: '"__proto__" cannot be a name here: the EdgeDeployment resource cannot carry a key of that name' },
    ]);
  });

  it('looks for "__proto__" only where it is a key of an object', () => {
    // A modules value that is not an object, or a module that is not one, is the schema's to refuse.
    expect(errors({ modules: 'x' }).map((e) => e.path)).toEqual(['spec.modules']);
    expect(errors({ modules: { m: 'x' } }).map((e) => e.path)).toEqual(['spec.modules.m']);
    expect(errors({ systemModules: { edgeHub: mod({ env: 'x' }) } }).map((e) => e.path)).toEqual(['spec.systemModules.edgeHub.env']);
  });
});
