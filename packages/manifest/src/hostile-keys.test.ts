import { describe, expect, it } from 'vitest';
import { IssueCollector } from './issues.js';
import { parseCreateOptions } from './create-options.js';
import { parseEdgeDeploymentSpec } from './spec.js';
import { validateManifest } from './validate.js';

/**
 * Keys named like `Object.prototype` members are ordinary data in a manifest (IoT Edge keeps them in dictionaries).
 * Manifests are built from JSON text, as the hub and CLI receive them: `JSON.parse` makes `__proto__` an own key.
 */
const protoBefore = Object.getOwnPropertyNames(Object.prototype).sort();

function manifestText(opts: { modules?: string; env?: string; routes?: string; twins?: string; credentials?: string; createOptions?: string } = {}): string {
  const module = (env: string, co: string) =>
    `{"type":"docker","status":"running","restartPolicy":"always","env":${env},"settings":{"image":"img:1","createOptions":${JSON.stringify(co)}}}`;
  const modules = opts.modules ?? `{"tempSensor":${module(opts.env ?? '{}', opts.createOptions ?? '')}}`;
  return `{"modulesContent":{
    "$edgeAgent":{"properties.desired":{"schemaVersion":"1.1",
      "runtime":{"type":"docker","settings":{"registryCredentials":${opts.credentials ?? '{}'}}},
      "systemModules":{"edgeAgent":{"type":"docker","settings":{"image":"agent:1"}},"edgeHub":{"type":"docker","status":"running","restartPolicy":"always","settings":{"image":"hub:1"}}},
      "modules":${modules}}},
    "$edgeHub":{"properties.desired":{"schemaVersion":"1.1","routes":${opts.routes ?? '{"upstream":"FROM /messages/* INTO $upstream"}'},"storeAndForwardConfiguration":{"timeToLiveSecs":7200}}}
    ${opts.twins ?? ''}}}`;
}

const mod = (env = '{}') => `{"type":"docker","env":${env},"settings":{"image":"img:1"}}`;

describe('validateManifest with hostile keys', () => {
  it('keeps modules named constructor, toString and hasOwnProperty as data', () => {
    const r = validateManifest(JSON.parse(manifestText({ modules: `{"constructor":${mod()},"toString":${mod()},"hasOwnProperty":${mod()}}` })));
    expect(r.ok).toBe(true);
    if (!r.ok) return;
    expect(Object.keys(r.manifest.spec.modules).sort()).toEqual(['constructor', 'hasOwnProperty', 'toString']);
    expect(r.manifest.spec.modules['toString']?.settings.image).toBe('img:1');
    expect(Object.keys(r.manifest.createOptions).sort()).toEqual(['$edgeAgent', '$edgeHub', 'constructor', 'hasOwnProperty', 'toString']);
    expect(Object.getOwnPropertyNames(Object.prototype).sort()).toEqual(protoBefore);
  });

  it('keeps env vars named constructor and toString as data', () => {
    const r = validateManifest(JSON.parse(manifestText({ env: '{"constructor":{"value":"a"},"toString":{"value":"b"}}' })));
    expect(r.ok).toBe(true);
    if (!r.ok) return;
    expect(Object.entries(r.manifest.spec.modules['tempSensor']?.env ?? {})).toEqual([['constructor', { value: 'a' }], ['toString', { value: 'b' }]]);
  });

  it('keeps module twins and routes named like Object.prototype members', () => {
    const r = validateManifest(
      JSON.parse(manifestText({ routes: '{"constructor":"FROM /messages/* INTO $upstream"}', twins: ',"toString":{"properties.desired":{"a":1}}' })),
    );
    expect(r.ok).toBe(true);
    if (!r.ok) return;
    expect(Object.keys(r.manifest.moduleTwins)).toEqual(['toString']);
    expect(Object.getOwnPropertyDescriptor(r.manifest.moduleTwins, 'toString')?.value).toEqual({ a: 1 });
    expect(Object.keys(r.manifest.spec.routes)).toEqual(['constructor']);
    expect(r.manifest.spec.routes['constructor']).toEqual({ route: 'FROM /messages/* INTO $upstream' });
  });

  // Decision: "__proto__" is refused, with an error naming the path, rather than kept: the EdgeDeployment resource is
  // re-validated by zod, whose records drop an own "__proto__" key, so it could never reach the cluster intact.
  it.each([
    ['a module', { modules: `{"__proto__":${mod()}}` }, '$edgeAgent.properties.desired.modules.__proto__'],
    ['an env var', { env: '{"__proto__":{"value":"x"}}' }, '$edgeAgent.properties.desired.modules.tempSensor.env.__proto__'],
    ['a route', { routes: '{"__proto__":"FROM /messages/* INTO $upstream","up":"FROM /messages/* INTO $upstream"}' }, '$edgeHub.properties.desired.routes.__proto__'],
    ['a module twin', { twins: ',"__proto__":{"properties.desired":{"a":1}}' }, '__proto__'],
    ['a registry credential', { credentials: '{"__proto__":{"address":"r.io","username":"u","password":"p"}}' }, '$edgeAgent.properties.desired.runtime.settings.registryCredentials.__proto__'],
  ])('refuses "__proto__" as %s with a clear error', (_what, opts, path) => {
    const r = validateManifest(JSON.parse(manifestText(opts)));
    expect(r.ok).toBe(false);
    if (r.ok) return;
    expect(r.error).toContainEqual({ path, message: expect.stringContaining('"__proto__" cannot be') as unknown });
    expect(Object.getOwnPropertyNames(Object.prototype).sort()).toEqual(protoBefore);
    expect(({} as Record<string, unknown>)['image']).toBeUndefined();
  });
});

describe('parseCreateOptions with hostile keys', () => {
  it('keeps labels, sysctls, port bindings and volume keys named __proto__ or constructor as data', () => {
    const text = JSON.stringify({
      Labels: JSON.parse('{"__proto__":"a","constructor":"b"}') as unknown,
      HostConfig: { Sysctls: JSON.parse('{"__proto__":"1"}') as unknown, PortBindings: JSON.parse('{"__proto__":[{"HostPort":"80"}]}') as unknown },
    });
    const issues = new IssueCollector();
    const r = parseCreateOptions(text, ['co'], issues);
    expect(issues.errors).toEqual([]);
    expect(Object.entries(r?.options.Labels ?? {})).toEqual([['__proto__', 'a'], ['constructor', 'b']]);
    expect(Object.entries(r?.options.HostConfig?.Sysctls ?? {})).toEqual([['__proto__', '1']]);
    expect(Object.entries(r?.options.HostConfig?.PortBindings ?? {})).toEqual([['__proto__', [{ HostPort: '80' }]]]);
    expect(Object.getPrototypeOf(r?.options.Labels)).toBeNull();
    expect(Object.getOwnPropertyNames(Object.prototype).sort()).toEqual(protoBefore);
  });
});

describe('parseEdgeDeploymentSpec with hostile keys', () => {
  const m = '{"type":"docker","settings":{"image":"img:1"}}';
  it('refuses "__proto__" names, which zod would drop silently, and keeps constructor as data', () => {
    const r = parseEdgeDeploymentSpec(JSON.parse(`{"modules":{"__proto__":${m},"x":{"type":"docker","env":{"__proto__":{"value":"v"}},"settings":{"image":"i"}}},"routes":{"__proto__":{"route":"FROM /* INTO $upstream"}}}`));
    expect(r.ok ? [] : r.error.map((i) => i.path)).toEqual(['spec.modules.__proto__', 'spec.routes.__proto__', 'spec.modules.x.env.__proto__']);
    const ok = parseEdgeDeploymentSpec(JSON.parse(`{"modules":{"constructor":${m}}}`));
    expect(ok.ok && Object.keys(ok.value.spec.modules)).toEqual(['constructor']);
    expect(Object.getOwnPropertyNames(Object.prototype).sort()).toEqual(protoBefore);
  });
});
