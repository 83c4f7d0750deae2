import type { KubernetesObject, V1Deployment, V1NetworkPolicy, V1PersistentVolumeClaim, V1Service } from '@kubernetes/client-node';
import { describe, expect, it } from 'vitest';
import { parseEdgeDeploymentSpec, type EdgeDeploymentSpecInput } from '@kedge/manifest';
import { defaultPolicy, type DevicePolicyInput } from './policy.js';
import { render, type RenderResult } from './render.js';

// Issue 15: render behaviours the survivors of the full mutation run showed unpinned (a file of its own: the vitest
// runner reports no test locations, so an edit to a test file makes Stryker re-test every mutant its tests killed).

const owner = { name: 'default', namespace: 'dev-1', uid: 'u-1' };
const P = 'spec.modules.m.settings.createOptions';

function renderSpec(spec: EdgeDeploymentSpecInput, policy: DevicePolicyInput = {}, extra: { available?: ReadonlySet<string>; parked?: ReadonlyMap<string, number | undefined> } = {}): RenderResult {
  const parsed = parseEdgeDeploymentSpec(spec);
  if (!parsed.ok) throw new Error(parsed.error.map((i) => `${i.path}: ${i.message}`).join('\n'));
  return render({ owner, deviceId: 'dev-1', parsed: parsed.value, policy: defaultPolicy(policy), ...extra });
}
const mod = (createOptions: Record<string, unknown> = {}, extra: Record<string, unknown> = {}, image = 'm:1') => ({ type: 'docker' as const, settings: { image, createOptions }, ...extra });
/** Renders one module `m` with these createOptions (and module fields), returning the result and its Deployment. */
function one(createOptions: Record<string, unknown>, extra: Record<string, unknown> = {}, policy: DevicePolicyInput = {}) {
  const r = renderSpec({ modules: { m: mod(createOptions, extra) } }, policy);
  const d = find<V1Deployment>(r, 'Deployment', 'm');
  return { r, d, c: d.spec?.template.spec?.containers[0], pod: d.spec?.template.spec, warnings: r.warnings.map((w) => `${w.path}: ${w.message}`), errors: r.errors.map((e) => `${e.path}: ${e.message}`) };
}
const find = <T extends KubernetesObject>(r: RenderResult, kind: string, name: string): T => {
  const o = r.objects.find((x) => x.kind === kind && x.metadata?.name === name);
  if (!o) throw new Error(`no ${kind}/${name} in ${r.objects.map((x) => `${x.kind}/${x.metadata?.name}`).join(', ')}`);
  return o as T;
};

describe('render: what the survivors showed unpinned', () => {
  it('accepts HostPort 1, the lowest port', () => {
    const { r, warnings } = one({ HostConfig: { PortBindings: { '80/tcp': [{ HostPort: '1' }] } } });
    expect(warnings).toEqual([]);
    expect(find<V1Service>(r, 'Service', 'm').spec?.ports).toEqual([{ name: 'host-1-tcp', port: 1, targetPort: 80, protocol: 'TCP' }]);
  });

  it('passes the spec\'s own warnings through', () => {
    const r = renderSpec({ modules: { m: mod({ Bogus: 1 }) } });
    expect(r.warnings).toContainEqual({ path: 'spec.modules.m.settings.createOptions.Bogus', message: expect.stringContaining('unknown createOptions field') as unknown });
  });

  it('leaves out the version, the storage class and the version annotation when there are none', () => {
    const { r, d } = one({ HostConfig: { Binds: ['v:/v'] } });
    expect('version' in (r.modules[0] ?? {})).toBe(false);
    expect(Object.keys(find<V1PersistentVolumeClaim>(r, 'PersistentVolumeClaim', 'data-v').spec ?? {})).toEqual(['accessModes', 'resources']);
    expect(Object.keys(d.spec?.template.metadata?.annotations ?? {})).not.toContain('kedge.io/module-version');
  });

  it('recreates when any one of the access modes is ReadWriteOnce', () => {
    expect(one({ HostConfig: { Binds: ['v:/v'] } }, { k8s: { persistence: { accessModes: ['ReadWriteMany', 'ReadWriteOnce'] } } }).d.spec?.strategy).toEqual({ type: 'Recreate' });
  });

  it('mounts a bind read-write unless it says ReadOnly, and devices read-write', () => {
    const { c } = one({ HostConfig: { Mounts: [{ Type: 'bind', Source: '/h', Target: '/h' }], Devices: [{ PathOnHost: '/dev/x' }] } }, {}, { allowHostPaths: true });
    expect(c?.volumeMounts?.map((v) => [v.mountPath, v.readOnly])).toEqual([['/dev/x', undefined], ['/h', undefined]]);
    expect(c?.volumeMounts?.every((v) => !('readOnly' in v))).toBe(true);
  });

  it('reads an empty User as none, and a user whose name ends in digits as a name', () => {
    expect(one({ User: '' }).warnings).toEqual([]);
    const u = one({ User: 'u1000' });
    expect(u.c?.securityContext).toBeUndefined();
    expect(u.warnings).toEqual([`${P}.User: user name "u1000" cannot be resolved on Kubernetes (use a numeric uid[:gid]); the image's default user runs`]);
  });

  it('uses the default CPU period for a negative one', () => {
    expect(one({ HostConfig: { CpuQuota: 50_000, CpuPeriod: -1 } }).c?.resources).toEqual({ limits: { cpu: '500m' } });
  });

  it('gives each environment variable once: the runtime\'s over the module\'s of the same name', () => {
    const { c } = one({ Env: ['IOTEDGE_MODULEID=spoof', 'A=1'] }, { env: { IOTEDGE_DEVICEID: { value: 'spoof' } } });
    const names = (c?.env ?? []).map((e) => e.name);
    expect(names.length).toBe(new Set(names).size);
    expect(c?.env).toContainEqual({ name: 'IOTEDGE_MODULEID', value: 'm' });
    expect(c?.env).toContainEqual({ name: 'IOTEDGE_DEVICEID', value: 'dev-1' });
    expect(c?.env).toContainEqual({ name: 'A', value: '1' });
  });

  it('starts the probe at once when there is no start period', () => {
    expect(one({ Healthcheck: { Test: ['CMD', 'x'] } }).c?.readinessProbe).not.toHaveProperty('initialDelaySeconds');
  });

  it('renders the API versions of Secrets, policies, quotas and limit ranges', () => {
    const r = renderSpec(
      { registryCredentials: { a: { address: 'r.io', username: 'u', password: 'p' } }, modules: { m: mod() } },
      { hardening: { networkPolicy: true, resourceQuota: { pods: 1 }, limitRange: {} } },
    );
    expect(r.objects.map((o) => `${o.apiVersion} ${o.kind}`)).toEqual([
      'v1 Secret', 'v1 ServiceAccount', 'apps/v1 Deployment', 'networking.k8s.io/v1 NetworkPolicy', 'networking.k8s.io/v1 NetworkPolicy', 'v1 ResourceQuota', 'v1 LimitRange',
    ]);
  });

  it('opens the edge hub\'s ports, not another module\'s, when both have Services', () => {
    const r = renderSpec({ systemModules: { edgeHub: mod({ HostConfig: { PortBindings: { '8883/tcp': [{}] } } }) }, modules: { a: mod({ ExposedPorts: { '1234/tcp': {} } }) } }, { hardening: { networkPolicy: true } });
    expect(find<V1NetworkPolicy>(r, 'NetworkPolicy', 'kedge-allow-edgehub').spec?.ingress).toEqual([{ ports: [{ port: 8883, protocol: 'TCP' }] }]);
    const first = renderSpec({ systemModules: { edgeHub: mod({ HostConfig: { PortBindings: { '8883/tcp': [{}] } } }) }, modules: { '0a': mod({ ExposedPorts: { '1234/tcp': {} } }) } }, { hardening: { networkPolicy: true } });
    expect(find<V1NetworkPolicy>(first, 'NetworkPolicy', 'kedge-allow-edgehub').spec?.ingress).toEqual([{ ports: [{ port: 8883, protocol: 'TCP' }] }]);
  });
});
