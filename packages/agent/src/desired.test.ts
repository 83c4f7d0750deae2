import { describe, expect, it } from 'vitest';
import type { JsonObject } from '@kedge/protocol';
import { checkAgentDesired, mergeDesired } from './desired.js';
import { desiredStatus, edgeAgentReported } from './reported.js';

const agentDesired = (modules: Record<string, unknown>, extra: Record<string, unknown> = {}): JsonObject => ({
  schemaVersion: '1.1',
  runtime: { type: 'docker', settings: { minDockerVersion: 'v1.25' } },
  systemModules: {
    edgeAgent: { type: 'docker', settings: { image: 'kedge/agent:0.1', createOptions: '' } },
    edgeHub: { type: 'docker', status: 'running', restartPolicy: 'always', settings: { image: 'kedge/hub:0.1', createOptions: '' } },
  },
  modules,
  ...extra,
}) as JsonObject;
const sensor = { version: '1.0', type: 'docker', status: 'running', restartPolicy: 'always', settings: { image: 'sensor:1', createOptions: '{"HostConfig":{"Memory":1000000}}' } };

describe('$edgeAgent desired properties', () => {
  it('turns a valid document into the EdgeDeployment fields the twin owns', () => {
    const r = checkAgentDesired({ ...agentDesired({ sensor }), $version: 4 });
    expect(r.ok).toBe(true);
    if (!r.ok) return;
    expect(Object.keys(r.spec.modules)).toEqual(['sensor']);
    expect(r.spec.modules['sensor']?.settings.createOptions).toEqual({ HostConfig: { Memory: 1000000 } });
    expect(r.spec.systemModules.edgeHub?.settings.image).toBe('kedge/hub:0.1');
    expect(r.spec).not.toHaveProperty('routes');
  });

  it("refuses with IoT Edge's status codes", () => {
    expect(checkAgentDesired({ $version: 1 })).toMatchObject({ ok: false, status: { code: 417 } });
    expect(checkAgentDesired(agentDesired({ sensor }, { schemaVersion: '2.0' }))).toMatchObject({ ok: false, status: { code: 412 } });
    const bad = checkAgentDesired(agentDesired({ sensor: { ...sensor, restartPolicy: 'sometimes' } }));
    expect(bad).toMatchObject({ ok: false, status: { code: 400 } });
    if (!bad.ok) expect(bad.status.description).toMatch(/^Error while parsing desired properties - .*sensor.*restartPolicy/);
    const poisoned = JSON.parse('{"schemaVersion":"1.1","modules":{"__proto__":{"x":1}}}') as Record<string, never>;
    expect(checkAgentDesired(poisoned)).toMatchObject({ ok: false, status: { code: 400, description: expect.stringContaining('__proto__') as unknown } });
  });

  it('merges patches as JSON merge patches without touching prototypes', () => {
    const doc = agentDesired({ sensor, other: sensor });
    const next = mergeDesired(doc, JSON.parse('{"$version":5,"modules":{"other":null,"sensor":{"version":"2.0"},"__proto__":{"polluted":true}}}') as Record<string, never>);
    expect(Object.keys(next['modules'] as object).sort()).toEqual(['__proto__', 'sensor']);
    expect((next['modules'] as Record<string, { version: string; settings: unknown }>)['sensor']?.version).toBe('2.0');
    expect(({} as Record<string, unknown>)['polluted']).toBeUndefined();
    expect(next).not.toHaveProperty('$version');
    expect(doc['modules']).toHaveProperty('other');
    expect(checkAgentDesired(next)).toMatchObject({ ok: false, status: { code: 400 } });
  });
});

describe('$edgeAgent reported properties', () => {
  const spec = checkAgentDesired(agentDesired({ sensor }));
  if (!spec.ok) throw new Error('fixture');
  const status = {
    observedGeneration: 3,
    phase: 'Ready',
    conditions: [{ type: 'SpecValid', status: 'True' as const, reason: 'Valid', message: '', lastTransitionTime: '2026-01-01T00:00:00Z' }],
    modules: {
      sensor: { runtimeStatus: 'backoff' as const, description: 'Module in back-off: CrashLoopBackOff', restartCount: 4, exitCode: 1, lastStartTimeUtc: '2026-01-01T00:00:01Z', lastExitTimeUtc: '2026-01-01T00:00:02Z' },
      edgeHub: { runtimeStatus: 'pending' as const, restartCount: 0 },
    },
  };

  it("follows IoT Edge's schema, from the EdgeDeployment's status", () => {
    const r = edgeAgentReported({ spec: spec.spec, status, generation: 3, last: { version: 7, generation: 3 }, startedAt: '2026-01-01T00:00:00Z' });
    expect(r).toMatchObject({
      schemaVersion: '1.0',
      lastDesiredVersion: 7,
      lastDesiredStatus: { code: 200, description: '' },
      runtime: { type: 'docker' },
      systemModules: { edgeAgent: { runtimeStatus: 'running' }, edgeHub: { runtimeStatus: 'unknown', status: 'running' } },
      modules: {
        sensor: {
          version: '1.0', status: 'running', restartPolicy: 'always', runtimeStatus: 'backoff', restartCount: 4, exitCode: 1,
          lastStartTimeUtc: '2026-01-01T00:00:01Z', lastExitTimeUtc: '2026-01-01T00:00:02Z', settings: { image: 'sensor:1', createOptions: '{"HostConfig":{"Memory":1000000}}' },
        },
      },
    });
  });

  it('says 406 until the controller observed the written generation, 500 when it refused it, and the refusal itself', () => {
    expect(desiredStatus({ status: { ...status, observedGeneration: 2 }, last: { version: 7, generation: 3 }, startedAt: '' }).code).toBe(406);
    const refused = { ...status, conditions: [{ type: 'SpecValid', status: 'False' as const, reason: 'PolicyViolation', message: 'no host paths', lastTransitionTime: '' }] };
    expect(desiredStatus({ status: refused, last: { version: 7, generation: 3 }, startedAt: '' })).toEqual({ code: 500, description: 'PolicyViolation: no host paths' });
    expect(desiredStatus({ last: { version: 8, refused: { code: 412, description: 'x' } }, startedAt: '' })).toEqual({ code: 412, description: 'x' });
    expect(desiredStatus({ startedAt: '' }).code).toBe(417);
  });
});
