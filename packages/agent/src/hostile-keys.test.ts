import type { ModuleSpec } from '@kedge/manifest';
import { describe, expect, it } from 'vitest';
import type { RenderedModule } from './render.js';
import { edgeAgentReported } from './reported.js';
import { computeStatus } from './status.js';

/** Module names are user keys; a status or report keyed by them must keep `__proto__`, `constructor` … as data. */
const protoBefore = Object.getOwnPropertyNames(Object.prototype).sort();
const names = ['__proto__', 'constructor', 'toString', 'hasOwnProperty'];

const rendered = (name: string): RenderedModule => ({
  name, objectName: `m-${names.indexOf(name)}`, system: false, desiredStatus: 'running', startupOrder: 1, replicas: 1, image: 'img:1', restartPolicy: 'always', specDigest: 'abc',
});
const spec: ModuleSpec = { type: 'docker', status: 'running', restartPolicy: 'always', imagePullPolicy: 'on-create', env: {}, settings: { image: 'img:1', createOptions: {} } };

describe('hostile module names', () => {
  it('computeStatus reports every module, __proto__ included, and reads only own entries of the previous status', () => {
    // A previous status as read from the API server: an ordinary object without these modules.
    const previous = JSON.parse('{"observedGeneration":1,"phase":"Ready","conditions":[],"modules":{}}') as Parameters<typeof computeStatus>[0]['previous'];
    const s = computeStatus({ generation: 2, now: '2026-01-01T00:00:00Z', previous, modules: names.map(rendered) });
    expect(Object.keys(s.modules ?? {}).sort()).toEqual([...names].sort());
    const wire = JSON.parse(JSON.stringify(s.modules)) as object;
    expect(Object.getOwnPropertyDescriptor(wire, '__proto__')?.value).toMatchObject({ runtimeStatus: 'pending' });
    expect(s.modulesDesired).toBe(4);
    expect(Object.getOwnPropertyNames(Object.prototype).sort()).toEqual(protoBefore);
  });

  it('edgeAgentReported reports every module, __proto__ included, as "not observed" when its status is absent', () => {
    const modules = JSON.parse(`{${names.map((n) => `"${n}":${JSON.stringify(spec)}`).join(',')}}`) as Record<string, ModuleSpec>;
    const status = JSON.parse('{"observedGeneration":1,"modules":{}}') as Parameters<typeof edgeAgentReported>[0]['status'];
    const r = edgeAgentReported({ spec: { modules }, status, generation: 1, startedAt: '2026-01-01T00:00:00Z' });
    const reported = JSON.parse(JSON.stringify(r.modules)) as Record<string, { statusDescription: string }>;
    expect(Object.keys(reported).sort()).toEqual([...names].sort());
    for (const n of names) expect(Object.getOwnPropertyDescriptor(reported, n)?.value).toMatchObject({ statusDescription: 'Not observed yet', runtimeStatus: 'unknown' });
    expect(Object.getOwnPropertyNames(Object.prototype).sort()).toEqual(protoBefore);
  });
});
