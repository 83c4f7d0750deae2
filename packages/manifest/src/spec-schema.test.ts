import { describe, expect, it } from 'vitest';
import { parseEdgeDeploymentSpec } from './spec.js';

// The EdgeDeployment schema field by field, through parseEdgeDeploymentSpec (a file of its own beside
// spec-rules.test.ts: see layering-rules.test.ts).

const mod = (extra: Record<string, unknown> = {}): Record<string, unknown> => ({ type: 'docker', settings: { image: 'img:1' }, ...extra });

function errors(input: unknown): { path: string; message: string }[] {
  const r = parseEdgeDeploymentSpec(input);
  return r.ok ? [] : r.error.map((i) => ({ path: i.path, message: i.message }));
}

describe('parseEdgeDeploymentSpec: the schema field by field', () => {
  const one = (m: Record<string, unknown>) => errors({ modules: { a: mod(m) } });

  it('applies the module defaults', () => {
    const r = parseEdgeDeploymentSpec({ modules: { a: mod() } });
    expect(r.ok && r.value.spec.modules.a).toStrictEqual({ type: 'docker', status: 'running', restartPolicy: 'always', imagePullPolicy: 'on-create', env: {}, settings: { image: 'img:1', createOptions: {} } });
  });

  it('accepts every status, restart policy and pull policy, and refuses others', () => {
    for (const status of ['running', 'stopped']) expect(one({ status })).toEqual([]);
    for (const restartPolicy of ['never', 'on-failure', 'on-unhealthy', 'always']) expect(one({ restartPolicy })).toEqual([]);
    for (const imagePullPolicy of ['on-create', 'never']) expect(one({ imagePullPolicy })).toEqual([]);
    expect(one({ status: 'paused' })).toEqual([{ path: 'spec.modules.a.status', message: 'must be one of "running", "stopped", got "paused"' }]);
    expect(one({ restartPolicy: 'sometimes' })).toEqual([{ path: 'spec.modules.a.restartPolicy', message: 'must be one of "never", "on-failure", "on-unhealthy", "always", got "sometimes"' }]);
    expect(one({ imagePullPolicy: 'always' })).toEqual([{ path: 'spec.modules.a.imagePullPolicy', message: 'must be one of "on-create", "never", got "always"' }]);
    expect(one({ type: 'rkt' })).toEqual([{ path: 'spec.modules.a.type', message: 'must be one of "docker", got "rkt"' }]);
  });

  it('takes startupOrder from 0 to 4294967295, integers only', () => {
    for (const startupOrder of [0, 4294967295]) expect(one({ startupOrder })).toEqual([]);
    expect(one({ startupOrder: -1 })).toEqual([{ path: 'spec.modules.a.startupOrder', message: 'must be at least 0' }]);
    expect(one({ startupOrder: 4294967296 })).toEqual([{ path: 'spec.modules.a.startupOrder', message: 'must be at most 4294967295' }]);
    expect(one({ startupOrder: 1.5 })).toEqual([{ path: 'spec.modules.a.startupOrder', message: 'expected int, got number' }]);
  });

  it('needs an image that is not blank, env values that are strings', () => {
    expect(one({ settings: { image: ' ' } })).toEqual([{ path: 'spec.modules.a.settings.image', message: 'image must not be empty or whitespace' }]);
    expect(one({ settings: { image: 'i', digest: 1 } })).toEqual([{ path: 'spec.modules.a.settings.digest', message: 'expected string, got number' }]);
    expect(one({ env: { A: { value: 1 } } })).toEqual([{ path: 'spec.modules.a.env.A.value', message: 'expected string, got number' }]);
    expect(one({ env: { A: { value: 'x', other: 1 } } })).toEqual([{ path: 'spec.modules.a.env.A', message: 'unknown field "other"' }]);
  });

  it('needs registry credential fields that are not blank, and a complete secret reference', () => {
    const cred = (c: Record<string, unknown>) => errors({ registryCredentials: { r: { address: 'r.io', username: 'u', password: 'p', ...c } } });
    expect(cred({ address: ' ' })).toEqual([{ path: 'spec.registryCredentials.r.address', message: 'address must not be empty or whitespace' }]);
    expect(cred({ username: '' })).toEqual([{ path: 'spec.registryCredentials.r.username', message: 'username must not be empty or whitespace' }]);
    expect(cred({ password: '\t' })).toEqual([{ path: 'spec.registryCredentials.r.password', message: 'password must not be empty or whitespace' }]);
    expect(cred({ password: undefined, passwordSecretRef: { name: '', key: 'k' } })).toEqual([{ path: 'spec.registryCredentials.r.passwordSecretRef.name', message: 'must not be empty' }]);
    expect(cred({ password: undefined, passwordSecretRef: { name: 'n', key: '' } })).toEqual([{ path: 'spec.registryCredentials.r.passwordSecretRef.key', message: 'must not be empty' }]);
  });

  it('takes route priorities 0 to 9 and TTLs of 0 or more, integers only, and a non-empty route', () => {
    const route = (r: Record<string, unknown>) => errors({ routes: { r: { route: 'FROM /* INTO $upstream', ...r } } });
    for (const priority of [0, 9]) expect(route({ priority })).toEqual([]);
    expect(route({ priority: -1 })).toEqual([{ path: 'spec.routes.r.priority', message: 'must be at least 0' }]);
    expect(route({ priority: 1.5 })).toEqual([{ path: 'spec.routes.r.priority', message: 'expected int, got number' }]);
    expect(route({ timeToLiveSecs: 0 })).toEqual([]);
    expect(route({ timeToLiveSecs: -1 })).toEqual([{ path: 'spec.routes.r.timeToLiveSecs', message: 'must be at least 0' }]);
    expect(route({ timeToLiveSecs: 0.5 })).toEqual([{ path: 'spec.routes.r.timeToLiveSecs', message: 'expected int, got number' }]);
    expect(route({ route: '' })).toEqual([{ path: 'spec.routes.r.route', message: 'must not be empty' }]);
  });

  it('takes any integer store-and-forward TTL (negative: never expire) and a positive size', () => {
    const r = parseEdgeDeploymentSpec({ storeAndForward: { timeToLiveSecs: -1, maxSizeBytes: 1 } });
    expect(r.ok && r.value.spec.storeAndForward).toEqual({ timeToLiveSecs: -1, maxSizeBytes: 1 });
    const d = parseEdgeDeploymentSpec({ storeAndForward: {} });
    expect(d.ok && d.value.spec.storeAndForward).toEqual({ timeToLiveSecs: 7200 });
    expect(errors({ storeAndForward: { maxSizeBytes: 0 } })).toEqual([{ path: 'spec.storeAndForward.maxSizeBytes', message: 'must be greater than 0' }]);
    expect(errors({ storeAndForward: { timeToLiveSecs: 1.5 } })).toEqual([{ path: 'spec.storeAndForward.timeToLiveSecs', message: 'expected int, got number' }]);
  });

  it('keeps the informational fields and the schema versions as given', () => {
    const r = parseEdgeDeploymentSpec({ deviceId: 'd', manifestVersion: '7', agentSchemaVersion: '1.0', hubSchemaVersion: '1.2' });
    expect(r.ok && r.value.spec).toMatchObject({ deviceId: 'd', manifestVersion: '7', agentSchemaVersion: '1.0', hubSchemaVersion: '1.2' });
    expect(errors({ unknown: 1 })).toEqual([{ path: 'spec', message: 'unknown field "unknown"' }]);
    expect(errors({ systemModules: { edgeX: mod() } })).toEqual([{ path: 'spec.systemModules', message: 'unknown field "edgeX"' }]);
  });
});
