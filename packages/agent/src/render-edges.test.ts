import type { KubernetesObject, V1Deployment, V1LimitRange, V1NetworkPolicy, V1PersistentVolumeClaim, V1Secret, V1Service } from '@kubernetes/client-node';
import { describe, expect, it } from 'vitest';
import { parseEdgeDeploymentSpec, type EdgeDeploymentSpecInput } from '@kedge/manifest';
import { defaultPolicy, type DevicePolicyInput } from './policy.js';
import { imageRegistry, render, type RenderResult } from './render.js';

// The translation of each Docker createOptions field and Kubernetes option into the objects the controller
// applies, at its boundaries, with the warning or refusal (and its path) for what it cannot honour.

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

describe('imageRegistry', () => {
  it('is docker.io unless the first segment is a host', () => {
    expect(imageRegistry('ubuntu')).toBe('docker.io');
    expect(imageRegistry('ubuntu:22.04')).toBe('docker.io');
    expect(imageRegistry('library/ubuntu')).toBe('docker.io');
    expect(imageRegistry('Contoso.AzureCR.io/a/b:1')).toBe('contoso.azurecr.io');
    expect(imageRegistry('registry:5000/a')).toBe('registry:5000');
    expect(imageRegistry('localhost/a')).toBe('localhost');
    expect(imageRegistry('localhostx/a')).toBe('docker.io');
  });
});

describe('render: registry credentials', () => {
  it('normalizes the address, attaches the Secrets of the image\'s registry only, and skips a credential without a password', () => {
    const r = renderSpec({
      registryCredentials: {
        b: { address: 'HTTPS://Contoso.azurecr.io/v2/', username: 'u2', password: 'p2' },
        a: { address: 'contoso.azurecr.io', username: 'u1', password: 'p1' },
        s: { address: 'other.io', username: 'u', passwordSecretRef: { name: 'x', key: 'y' } },
        h: { address: 'http://docker.io', username: 'd', password: 'dp' },
      },
      modules: { m: mod({}, {}, 'contoso.azurecr.io/m:1'), n: mod({}, {}, 'other.io/n:1'), o: mod({}, {}, 'busybox') },
    });
    expect(r.objects.filter((o) => o.kind === 'Secret').map((o) => o.metadata?.name)).toEqual(['registry-a', 'registry-b', 'registry-h']);
    const b = find<V1Secret>(r, 'Secret', 'registry-b');
    expect(JSON.parse(Buffer.from(b.data?.['.dockerconfigjson'] ?? '', 'base64').toString())).toEqual({ auths: { 'contoso.azurecr.io': { username: 'u2', password: 'p2', auth: Buffer.from('u2:p2').toString('base64') } } });
    expect(b.metadata).toEqual({
      name: 'registry-b',
      namespace: 'dev-1',
      labels: { 'app.kubernetes.io/managed-by': 'kedge-agent', 'app.kubernetes.io/part-of': 'kedge', 'kedge.io/deployment': 'default', 'kedge.io/registry': 'b' },
      ownerReferences: [{ apiVersion: 'kedge.io/v1alpha1', kind: 'EdgeDeployment', name: 'default', uid: 'u-1', controller: true, blockOwnerDeletion: true }],
    });
    expect(find<V1Deployment>(r, 'Deployment', 'm').spec?.template.spec?.imagePullSecrets).toEqual([{ name: 'registry-a' }, { name: 'registry-b' }]);
    expect(find<V1Deployment>(r, 'Deployment', 'n').spec?.template.spec?.imagePullSecrets).toBeUndefined();
    expect(find<V1Deployment>(r, 'Deployment', 'o').spec?.template.spec?.imagePullSecrets).toEqual([{ name: 'registry-h' }]);
    expect(r.warnings).toContainEqual({ path: 'spec.registryCredentials.s', message: 'has no password; the Secret is not rendered' });
  });
});

describe('render: ports and Services', () => {
  it('reads port keys: protocol defaulting to TCP, any case, 1 to 65535, and warns about the rest', () => {
    const { c, r, warnings } = one({ ExposedPorts: { '1': {}, ' 65535/UDP ': {}, '80/sctp': {}, '0/tcp': {}, '65536': {}, '80/icmp': {}, '123456': {}, 'x': {} } });
    expect(c?.ports).toEqual([
      { containerPort: 1, protocol: 'TCP' },
      { containerPort: 80, protocol: 'SCTP' },
      { containerPort: 65535, protocol: 'UDP' },
    ]);
    for (const k of ['0/tcp', '65536', '80/icmp', '123456', 'x']) expect(warnings).toContain(`${P}: port "${k}" is not "<port>[/tcp|udp|sctp]"; ignored`);
    expect(find<V1Service>(r, 'Service', 'm').spec?.ports).toEqual([
      { name: 'exposed-1-tcp', port: 1, targetPort: 1, protocol: 'TCP' },
      { name: 'exposed-80-sctp', port: 80, targetPort: 80, protocol: 'SCTP' },
      { name: 'exposed-65535-udp', port: 65535, targetPort: 65535, protocol: 'UDP' },
    ]);
  });

  it('lists a port once per protocol, sorted by port then protocol', () => {
    const { c } = one({ ExposedPorts: { '53/udp': {}, '53/tcp': {}, '9/tcp': {} }, HostConfig: { PortBindings: { '53/udp': [{ HostPort: '53' }] } } });
    expect(c?.ports).toEqual([{ containerPort: 9, protocol: 'TCP' }, { containerPort: 53, protocol: 'TCP' }, { containerPort: 53, protocol: 'UDP' }]);
  });

  it('binds a host port: empty or absent means the container port; a bad one is skipped with a warning', () => {
    const { r, warnings } = one({ HostConfig: { PortBindings: { '80/tcp': [{ HostPort: '' }], '81/tcp': [{}], '82/tcp': [{ HostPort: 'x' }, { HostPort: '0' }, { HostPort: '65536' }, { HostPort: '65535' }], 'bad': [{ HostPort: '1' }] } } });
    expect(find<V1Service>(r, 'Service', 'm').spec?.ports).toEqual([
      { name: 'host-80-tcp', port: 80, targetPort: 80, protocol: 'TCP' },
      { name: 'host-81-tcp', port: 81, targetPort: 81, protocol: 'TCP' },
      { name: 'host-65535-tcp', port: 65535, targetPort: 82, protocol: 'TCP' },
    ]);
    for (const hp of ['"x"', '"0"', '"65536"']) expect(warnings).toContain(`${P}.HostConfig.PortBindings.82/tcp: HostPort ${hp} is not a port; binding ignored`);
  });

  it('warns about a HostIp other than the any-address', () => {
    const { warnings } = one({ HostConfig: { PortBindings: { '80/tcp': [{ HostPort: '80', HostIp: '0.0.0.0' }, { HostPort: '81', HostIp: '::' }, { HostPort: '82', HostIp: '' }, { HostPort: '83', HostIp: '127.0.0.1' }] } } });
    expect(warnings.filter((w) => w.includes('HostIp'))).toEqual([`${P}.HostConfig.PortBindings.80/tcp: HostIp 127.0.0.1 has no Kubernetes equivalent; the Service listens on all addresses`]);
  });

  it('lets a binding override an exposed port of the same service port, and renders the Service exactly', () => {
    const { r } = one({ Labels: { team: 'edge' }, ExposedPorts: { '8080/tcp': {} }, HostConfig: { PortBindings: { '80/tcp': [{ HostPort: '8080' }] } } }, { k8s: { serviceOptions: { annotations: { a: 'b' } } } }, { portBindingServiceType: 'NodePort' });
    expect(find<V1Service>(r, 'Service', 'm')).toEqual({
      apiVersion: 'v1',
      kind: 'Service',
      metadata: {
        name: 'm',
        namespace: 'dev-1',
        labels: { 'app.kubernetes.io/managed-by': 'kedge-agent', 'app.kubernetes.io/part-of': 'kedge', 'kedge.io/deployment': 'default', 'kedge.io/module': 'm' },
        annotations: { 'kedge.io/module-name': 'm', team: 'edge', a: 'b' },
        ownerReferences: [{ apiVersion: 'kedge.io/v1alpha1', kind: 'EdgeDeployment', name: 'default', uid: 'u-1', controller: true, blockOwnerDeletion: true }],
      },
      spec: { type: 'NodePort', selector: { 'kedge.io/deployment': 'default', 'kedge.io/module': 'm' }, ports: [{ name: 'host-8080-tcp', port: 8080, targetPort: 80, protocol: 'TCP' }] },
    });
  });

  it('keeps ClusterIP when every binding was skipped', () => {
    const { r } = one({ ExposedPorts: { '80/tcp': {} }, HostConfig: { PortBindings: { '81/tcp': [{ HostPort: 'x' }] } } }, {}, { portBindingServiceType: 'LoadBalancer' });
    expect(find<V1Service>(r, 'Service', 'm').spec?.type).toBe('ClusterIP');
  });
});

describe('render: volumes', () => {
  it('warns about a malformed bind and skips it', () => {
    const { warnings, c } = one({ HostConfig: { Binds: ['data', ':/x', 'data:rel', 'data:/ok:ro,z'] } });
    expect(warnings).toEqual([
      `${P}.HostConfig.Binds[0]: "data" is not "<source>:<target>[:ro]"; ignored`,
      `${P}.HostConfig.Binds[1]: ":/x" is not "<source>:<target>[:ro]"; ignored`,
      `${P}.HostConfig.Binds[2]: "data:rel" is not "<source>:<target>[:ro]"; ignored`,
    ]);
    expect(c?.volumeMounts).toEqual([{ name: 'data-data', mountPath: '/ok', readOnly: true }]);
  });

  it('reads "rw" and other modes as read-write', () => {
    expect(one({ HostConfig: { Binds: ['v:/v:rw', 'w:/w:z'] } }).c?.volumeMounts).toEqual([{ name: 'data-v', mountPath: '/v' }, { name: 'data-w', mountPath: '/w' }]);
  });

  it('renders a PVC once per named volume, with the module\'s persistence over the policy\'s', () => {
    const r = renderSpec({
      modules: {
        m: mod({ HostConfig: { Binds: ['shared:/a'] } }, { k8s: { persistence: { storageClassName: 'fast', size: '2Gi', accessModes: ['ReadWriteMany'] } } }),
        n: mod({ HostConfig: { Binds: ['shared:/b', 'Other_Vol:/c'] } }),
      },
    }, { storageClassName: 'slow' });
    expect(r.objects.filter((o) => o.kind === 'PersistentVolumeClaim').map((o) => o.metadata?.name)).toEqual(['data-other-vol-' + (find<V1Deployment>(r, 'Deployment', 'n').spec?.template.spec?.volumes?.[0]?.name ?? '').slice(-8), 'data-shared']);
    const pvc = find<V1PersistentVolumeClaim>(r, 'PersistentVolumeClaim', 'data-shared');
    expect(pvc).toEqual({
      apiVersion: 'v1',
      kind: 'PersistentVolumeClaim',
      metadata: {
        name: 'data-shared',
        namespace: 'dev-1',
        labels: { 'app.kubernetes.io/managed-by': 'kedge-agent', 'app.kubernetes.io/part-of': 'kedge', 'kedge.io/deployment': 'default', 'kedge.io/volume': 'shared' },
        annotations: { 'kedge.io/volume-name': 'shared' },
        ownerReferences: [{ apiVersion: 'kedge.io/v1alpha1', kind: 'EdgeDeployment', name: 'default', uid: 'u-1', controller: true, blockOwnerDeletion: true }],
      },
      spec: { accessModes: ['ReadWriteMany'], resources: { requests: { storage: '2Gi' } }, storageClassName: 'fast' },
    });
    // The first module to name it shapes the claim; a ReadWriteMany claim keeps RollingUpdate, the policy's RWO does not.
    expect(find<V1Deployment>(r, 'Deployment', 'm').spec?.strategy).toBeUndefined();
    expect(find<V1Deployment>(r, 'Deployment', 'n').spec?.strategy).toEqual({ type: 'Recreate' });
    expect(find<V1PersistentVolumeClaim>(renderSpec({ modules: { m: mod({ HostConfig: { Binds: ['v:/v'] } }) } }), 'PersistentVolumeClaim', 'data-v').spec).toEqual({ accessModes: ['ReadWriteOnce'], resources: { requests: { storage: '1Gi' } } });
  });

  it('switches to Recreate for a ReadWriteOncePod claim', () => {
    expect(one({ HostConfig: { Binds: ['v:/v'] } }, {}, { pvcAccessMode: 'ReadWriteOncePod' }).d.spec?.strategy).toEqual({ type: 'Recreate' });
  });

  it('mounts a read-only named volume read-only on the claim too', () => {
    const { pod } = one({ HostConfig: { Binds: ['v:/v:ro'] } });
    expect(pod?.volumes).toEqual([{ name: 'data-v', persistentVolumeClaim: { claimName: 'data-v', readOnly: true } }]);
  });

  it('lets read-write win when one target is mounted twice', () => {
    expect(one({ HostConfig: { Binds: ['a:/t:ro', 'b:/t'] } }).c?.volumeMounts).toEqual([{ name: 'data-b', mountPath: '/t' }]);
    expect(one({ HostConfig: { Binds: ['a:/t', 'b:/t:ro'] } }).c?.volumeMounts).toEqual([{ name: 'data-a', mountPath: '/t' }]);
    expect(one({ HostConfig: { Binds: ['a:/t:ro', 'b:/t:ro'] } }).c?.volumeMounts).toEqual([{ name: 'data-a', mountPath: '/t', readOnly: true }]);
  });

  it('reads Mounts: volume and bind in any case, needs Type, Source and Target, refuses other types', () => {
    const { warnings, c, pod } = one({ HostConfig: { Mounts: [{ Type: 'VOLUME', Source: 'v', Target: '/v' }, { Type: 'Bind', Source: '/h', Target: '/h', ReadOnly: true }, { Type: 'tmpfs', Source: 'x', Target: '/t' }, { Type: 'volume', Source: 'v' }, { Source: 'v', Target: '/x' }, { Type: 'volume', Target: '/x' }] } }, {}, { allowHostPaths: true });
    expect(warnings).toEqual([
      `${P}.HostConfig.Mounts[2].Type: mount type "tmpfs" is not supported on Kubernetes; ignored`,
      `${P}.HostConfig.Mounts[3]: a mount needs Type, Source and Target; ignored`,
      `${P}.HostConfig.Mounts[4]: a mount needs Type, Source and Target; ignored`,
      `${P}.HostConfig.Mounts[5]: a mount needs Type, Source and Target; ignored`,
    ]);
    expect(c?.volumeMounts).toEqual([{ name: expect.stringMatching(/^host-h-[0-9a-f]{8}$/) as unknown, mountPath: '/h', readOnly: true }, { name: 'data-v', mountPath: '/v' }]);
    expect(pod?.volumes?.find((v) => v.hostPath)?.hostPath).toEqual({ path: '/h', type: 'DirectoryOrCreate' });
  });

  it('refuses a bind mount and a device where host paths are not allowed', () => {
    const { errors } = one({ HostConfig: { Mounts: [{ Type: 'bind', Source: '/h', Target: '/h' }], Devices: [{ PathOnHost: '/dev/ttyS0' }] } });
    expect(errors).toEqual([
      `${P}.HostConfig.Mounts[0]: host path "/h" is not allowed by this device's policy (allowHostPaths: false); use a named volume or ask the device operator`,
      `${P}.HostConfig.Devices[0]: host path "/dev/ttyS0" is not allowed by this device's policy (allowHostPaths: false); use a named volume or ask the device operator`,
    ]);
  });

  it('maps devices to character-device host paths, warning when the module is not privileged', () => {
    const { c, pod, warnings } = one({ HostConfig: { Devices: [{ PathOnHost: '/dev/ttyUSB0', PathInContainer: '/dev/tty0' }, { PathOnHost: '/dev/i2c-1' }, { PathInContainer: '/dev/none' }] } }, {}, { allowHostPaths: true });
    expect(pod?.volumes?.map((v) => v.hostPath)).toEqual([{ path: '/dev/i2c-1', type: 'CharDevice' }, { path: '/dev/ttyUSB0', type: 'CharDevice' }]);
    expect(c?.volumeMounts?.map((v) => v.mountPath)).toEqual(['/dev/i2c-1', '/dev/tty0']);
    const msg = 'device mounted as a hostPath; without Privileged the container may lack cgroup access to it (prefer a device plugin)';
    expect(warnings).toEqual([`${P}.HostConfig.Devices[0]: ${msg}`, `${P}.HostConfig.Devices[1]: ${msg}`]);
    expect(one({ HostConfig: { Privileged: true, Devices: [{ PathOnHost: '/dev/x' }] } }, {}, { allowHostPaths: true }).warnings).toEqual([]);
  });
});

describe('render: env, user, resources', () => {
  it('skips env entries that are not NAME=value or whose name Kubernetes refuses', () => {
    const { c, warnings } = one({ Env: ['=x', 'A=', '1BAD=v', 'ok.name-1=v', 'noequals'] }, { env: { 'b c': { value: '1' } } });
    const env = Object.fromEntries((c?.env ?? []).map((e) => [e.name, e.value]));
    expect(env).toMatchObject({ A: '', 'ok.name-1': 'v' });
    expect(Object.keys(env)).not.toContain('1BAD');
    expect(warnings).toEqual([
      `${P}.Env[0]: "=x" is not NAME=value; skipped`,
      `${P}.Env[2]: env name "1BAD" is not valid in Kubernetes; skipped`,
      `${P}.Env[4]: "noequals" is not NAME=value; skipped`,
      'spec.modules.m.env.b c: env name "b c" is not valid in Kubernetes; skipped',
    ]);
  });

  it('maps User: uid, uid:gid, root; a name is left to the image with a warning', () => {
    expect(one({ User: '1000' }).c?.securityContext).toEqual({ runAsUser: 1000 });
    expect(one({ User: '0:5' }).c?.securityContext).toEqual({ runAsUser: 0, runAsGroup: 5 });
    expect(one({ User: 'root' }).c?.securityContext).toEqual({ runAsUser: 0 });
    expect(one({ User: '' }).c?.securityContext).toBeUndefined();
    const named = one({ User: 'bob' });
    expect(named.c?.securityContext).toBeUndefined();
    expect(named.warnings).toEqual([`${P}.User: user name "bob" cannot be resolved on Kubernetes (use a numeric uid[:gid]); the image's default user runs`]);
    expect(one({ User: '1000:x' }).c?.securityContext).toBeUndefined();
  });

  it('maps memory and CPU limits, positive values only, at least 1m of CPU', () => {
    expect(one({ HostConfig: { Memory: 0, MemoryReservation: 0, NanoCpus: 0 } }).c?.resources).toBeUndefined();
    expect(one({ HostConfig: { Memory: 1.7, MemoryReservation: 1 } }).c?.resources).toEqual({ limits: { memory: '1' }, requests: { memory: '1' } });
    expect(one({ HostConfig: { NanoCpus: 1 } }).c?.resources).toEqual({ limits: { cpu: '1m' } });
    expect(one({ HostConfig: { NanoCpus: 1_500_000 } }).c?.resources).toEqual({ limits: { cpu: '2m' } });
    expect(one({ HostConfig: { CpuQuota: 50_000 } }).c?.resources).toEqual({ limits: { cpu: '500m' } });
    expect(one({ HostConfig: { CpuQuota: 50_000, CpuPeriod: 0 } }).c?.resources).toEqual({ limits: { cpu: '500m' } });
    expect(one({ HostConfig: { CpuQuota: 50_000, CpuPeriod: 200_000 } }).c?.resources).toEqual({ limits: { cpu: '250m' } });
    expect(one({ HostConfig: { CpuQuota: 1, CpuPeriod: 1_000_000 } }).c?.resources).toEqual({ limits: { cpu: '1m' } });
    expect(one({ HostConfig: { CpuQuota: 0 } }).c?.resources).toBeUndefined();
    // NanoCpus wins over CpuQuota.
    expect(one({ HostConfig: { NanoCpus: 2_000_000_000, CpuQuota: 50_000 } }).c?.resources).toEqual({ limits: { cpu: '2000m' } });
  });

  it('lets the Kubernetes section override and add limits and requests', () => {
    expect(one({ HostConfig: { Memory: 100 } }, { k8s: { resources: { limits: { memory: '1Gi' }, requests: { cpu: 0.5 } } } }).c?.resources).toEqual({ limits: { memory: '1Gi' }, requests: { cpu: '0.5' } });
  });
});

describe('render: the pod and the container', () => {
  it('pins the image to a digest, replacing one already in the reference', () => {
    expect(one({}, { settings: { image: 'm:1', digest: 'sha256:abc' } }).c?.image).toBe('m:1@sha256:abc');
    expect(one({}, { settings: { image: 'm:1@sha256:old', digest: 'sha256:new' } }).c?.image).toBe('m:1@sha256:new');
    expect(one({}, { settings: { image: 'm:1@sha256:old' } }).c?.image).toBe('m:1@sha256:old');
  });

  it('refuses host IPC or PID as it refuses privileged, and warns about networks Kubernetes has no equal of', () => {
    const msg = `${P}.HostConfig: Privileged and host network/IPC/PID are not allowed by this device's policy (allowPrivileged: false)`;
    for (const hc of [{ IpcMode: 'host' }, { PidMode: 'host' }, { NetworkMode: 'host' }]) expect(one({ HostConfig: hc }, {}, { allowPrivileged: false }).errors).toEqual([msg]);
    expect(one({ HostConfig: { IpcMode: 'shareable', PidMode: 'container:x', NetworkMode: 'bridge' } }, {}, { allowPrivileged: false }).errors).toEqual([]);
    for (const n of ['default', 'bridge', 'azure-iot-edge', 'host']) expect(one({ HostConfig: { NetworkMode: n } }).warnings).toEqual([]);
    expect(one({ HostConfig: { NetworkMode: 'mynet' } }).warnings).toEqual([`${P}.HostConfig.NetworkMode: network "mynet" has no Kubernetes equivalent (only "host" does; Docker treats "Host" as a user network); pod networking is used`]);
    const { pod } = one({ HostConfig: { IpcMode: 'shareable', PidMode: 'container:x', NetworkMode: 'bridge' } });
    expect(pod?.hostIPC).toBeUndefined();
    expect(pod?.hostPID).toBeUndefined();
    expect(pod?.hostNetwork).toBeUndefined();
  });

  it('maps capabilities, only the lists given', () => {
    expect(one({ HostConfig: { CapAdd: ['NET_ADMIN'] } }).c?.securityContext).toEqual({ capabilities: { add: ['NET_ADMIN'] } });
    expect(one({ HostConfig: { CapDrop: ['ALL'] } }).c?.securityContext).toEqual({ capabilities: { drop: ['ALL'] } });
    expect(one({ HostConfig: { CapAdd: [], CapDrop: [], Privileged: false, ReadonlyRootfs: false } }).c?.securityContext).toBeUndefined();
  });

  it('merges the container security context of the Kubernetes section over what createOptions implies', () => {
    expect(one({ User: '1', HostConfig: { Privileged: true } }, { k8s: { containerSecurityContext: { runAsUser: 2, allowPrivilegeEscalation: false } } }).c?.securityContext).toEqual({ runAsUser: 2, privileged: true, allowPrivilegeEscalation: false });
  });

  it('renders a bare module exactly', () => {
    const { d } = one({});
    expect(d).toEqual({
      apiVersion: 'apps/v1',
      kind: 'Deployment',
      metadata: {
        name: 'm',
        namespace: 'dev-1',
        labels: { 'app.kubernetes.io/managed-by': 'kedge-agent', 'app.kubernetes.io/part-of': 'kedge', 'kedge.io/deployment': 'default', 'kedge.io/module': 'm' },
        annotations: { 'kedge.io/module-name': 'm', 'kedge.io/device-id': 'dev-1' },
        ownerReferences: [{ apiVersion: 'kedge.io/v1alpha1', kind: 'EdgeDeployment', name: 'default', uid: 'u-1', controller: true, blockOwnerDeletion: true }],
      },
      spec: {
        replicas: 1,
        revisionHistoryLimit: 3,
        selector: { matchLabels: { 'kedge.io/deployment': 'default', 'kedge.io/module': 'm' } },
        template: {
          metadata: {
            labels: { 'app.kubernetes.io/managed-by': 'kedge-agent', 'app.kubernetes.io/part-of': 'kedge', 'kedge.io/deployment': 'default', 'kedge.io/module': 'm' },
            annotations: { 'kedge.io/module-name': 'm', 'kedge.io/device-id': 'dev-1', 'kedge.io/restart-policy': 'always' },
          },
          spec: {
            serviceAccountName: 'm',
            automountServiceAccountToken: false,
            restartPolicy: 'Always',
            containers: [{ name: 'm', image: 'm:1', imagePullPolicy: 'IfNotPresent', env: d.spec?.template.spec?.containers[0]?.env }],
          },
        },
      },
    });
    expect(Object.keys(d.spec?.template.spec?.containers[0] ?? {})).toEqual(['name', 'image', 'imagePullPolicy', 'env']);
  });

  it('sets the hostname only when it is a DNS label', () => {
    expect(one({ Hostname: 'gateway' }).pod?.hostname).toBe('gateway');
    const bad = one({ Hostname: 'Gate_Way' });
    expect(bad.pod?.hostname).toBeUndefined();
    expect(bad.warnings).toEqual([`${P}.Hostname: "Gate_Way" is not a DNS label; the pod keeps its generated hostname`]);
  });

  it('groups ExtraHosts by address, split at the first colon as Docker does, and warns about what cannot be a hostAlias', () => {
    const { pod, warnings } = one({ HostConfig: { ExtraHosts: ['a:10.0.0.1', 'b:10.0.0.2', 'c:10.0.0.1', 'v6:fe80::1', 'gw:host-gateway', ':10.0.0.3', 'noaddress', 'x:'] } });
    expect(pod?.hostAliases).toEqual([{ ip: '10.0.0.1', hostnames: ['a', 'c'] }, { ip: '10.0.0.2', hostnames: ['b'] }, { ip: 'fe80::1', hostnames: ['v6'] }]);
    expect(warnings).toEqual(['gw:host-gateway', ':10.0.0.3', 'noaddress', 'x:'].map((h, i) => `${P}.HostConfig.ExtraHosts[${i + 4}]: "${h}" cannot be mapped to a hostAlias; ignored`));
  });

  it('maps Dns and DnsSearch, each only when given', () => {
    expect(one({ HostConfig: { Dns: ['10.0.0.53'] } }).pod?.dnsConfig).toEqual({ nameservers: ['10.0.0.53'] });
    expect(one({ HostConfig: { DnsSearch: ['corp'] } }).pod?.dnsConfig).toEqual({ searches: ['corp'] });
    expect(one({ HostConfig: { Dns: [], DnsSearch: [] } }).pod?.dnsConfig).toBeUndefined();
  });

  it('maps sysctls into the pod security context, under the Kubernetes section\'s', () => {
    expect(one({ HostConfig: { Sysctls: { 'net.core.somaxconn': '1024' } } }, { k8s: { securityContext: { fsGroup: 2 } } }).pod?.securityContext).toEqual({ sysctls: [{ name: 'net.core.somaxconn', value: '1024' }], fsGroup: 2 });
    expect(one({ HostConfig: { Sysctls: {} } }).pod?.securityContext).toBeUndefined();
  });

  it('puts Docker labels, pod annotations and the module version on the pod', () => {
    const { d } = one({ Labels: { 'kedge.io/module-name': 'spoof', team: 'a' } }, { version: '1.2', k8s: { podAnnotations: { note: 'x' }, podLabels: { tier: 'edge', 'kedge.io/module': 'spoof' } } });
    expect(d.spec?.template.metadata).toEqual({
      labels: { tier: 'edge', 'app.kubernetes.io/managed-by': 'kedge-agent', 'app.kubernetes.io/part-of': 'kedge', 'kedge.io/deployment': 'default', 'kedge.io/module': 'm' },
      annotations: { 'kedge.io/module-name': 'm', team: 'a', note: 'x', 'kedge.io/device-id': 'dev-1', 'kedge.io/restart-policy': 'always', 'kedge.io/module-version': '1.2' },
    });
  });
});

describe('render: health checks', () => {
  const probe = (hc: unknown, extra: Record<string, unknown> = {}) => one({ Healthcheck: hc }, extra);

  it('needs a Test of strings with a known kind and a command', () => {
    for (const [hc, msg] of [
      [{}, 'expected ["CMD", …], ["CMD-SHELL", "…"] or ["NONE"]; no health check'],
      [{ Test: [] }, 'expected ["CMD", …], ["CMD-SHELL", "…"] or ["NONE"]; no health check'],
      [{ Test: ['CMD', 1] }, 'expected ["CMD", …], ["CMD-SHELL", "…"] or ["NONE"]; no health check'],
      [{ Test: ['EXEC', 'x'] }, '"EXEC" is not CMD, CMD-SHELL or NONE; no health check'],
      [{ Test: ['CMD'] }, '"CMD" is not CMD, CMD-SHELL or NONE; no health check'],
    ] as const) {
      const r = probe(hc);
      expect(r.c?.readinessProbe, JSON.stringify(hc)).toBeUndefined();
      expect(r.warnings).toEqual([`${P}.Healthcheck.Test: ${msg}`]);
    }
    expect(probe(null).warnings).toEqual([]);
    expect(probe({ Test: ['NONE'] }).warnings).toEqual([]);
  });

  it('joins a CMD-SHELL command into one shell argument', () => {
    expect(probe({ Test: ['CMD-SHELL', 'a', 'b'] }).c?.readinessProbe?.exec).toEqual({ command: ['/bin/sh', '-c', 'a b'] });
  });

  it('converts nanoseconds to whole seconds, at least 1, and uses Docker\'s defaults for what is not positive', () => {
    expect(probe({ Test: ['CMD', 'x'], Interval: 1, Timeout: 1_600_000_000, Retries: 2.6, StartPeriod: 400_000_000 }).c?.readinessProbe).toEqual({ exec: { command: ['x'] }, periodSeconds: 1, timeoutSeconds: 2, failureThreshold: 3, initialDelaySeconds: 1 });
    expect(probe({ Test: ['CMD', 'x'], Interval: 0, Timeout: -1, Retries: 0, StartPeriod: 0 }).c?.readinessProbe).toEqual({ exec: { command: ['x'] }, periodSeconds: 30, timeoutSeconds: 30, failureThreshold: 3 });
    expect(probe({ Test: ['CMD', 'x'], Interval: '5', Retries: '2' }).c?.readinessProbe).toEqual({ exec: { command: ['x'] }, periodSeconds: 30, timeoutSeconds: 30, failureThreshold: 3 });
  });

  it('adds a liveness probe under always and on-unhealthy, not under on-failure or never', () => {
    const hc = { Test: ['CMD', 'x'] };
    expect(probe(hc).c?.livenessProbe).toBeDefined();
    expect(probe(hc, { restartPolicy: 'on-unhealthy' }).c?.livenessProbe).toBeDefined();
    expect(probe(hc, { restartPolicy: 'on-failure' }).c?.livenessProbe).toBeUndefined();
    expect(probe(hc, { restartPolicy: 'never' }).c?.livenessProbe).toBeUndefined();
  });
});

describe('render: what it cannot honour', () => {
  it('warns about each unsupported option, with its own message, and not about what is absent or harmless', () => {
    const { warnings } = one({ StopSignal: 'SIGINT', NetworkingConfig: {}, HostConfig: { MemorySwap: -1, CpuShares: 512, DeviceRequests: [{}], RestartPolicy: {}, LogConfig: {}, ShmSize: 1 } });
    expect(warnings).toEqual([
      `${P}.HostConfig.MemorySwap: swap limits have no Kubernetes equivalent; ignored`,
      `${P}.HostConfig.CpuShares: CPU shares are ignored; set resources.requests.cpu in settings.k8sOptions`,
      `${P}.HostConfig.DeviceRequests: GPU requests are ignored; set resources.limits in settings.k8sOptions (e.g. "nvidia.com/gpu": 1) with a device plugin`,
      `${P}.HostConfig.RestartPolicy: Docker's restart policy is ignored; the module's restartPolicy applies`,
      `${P}.HostConfig.LogConfig: log drivers are ignored; the kubelet manages container logs`,
      `${P}.HostConfig.ShmSize: shared-memory size is ignored; mount an emptyDir with medium Memory at /dev/shm via volumes in settings.k8sOptions`,
      `${P}.NetworkingConfig: Docker networks are ignored; modules reach each other by module name through Services`,
      `${P}.StopSignal: stop signals are ignored; Kubernetes sends SIGTERM`,
    ]);
    expect(one({ HostConfig: { MemorySwap: 0, DeviceRequests: [] } }).warnings).toEqual([]);
    expect(one({ NetworkingConfig: {}, HostConfig: { NetworkMode: 'host' } }).warnings).toEqual([]);
  });
});

describe('render: module bookkeeping', () => {
  it('parks modules with 0 replicas and their exit code when known', () => {
    const r = renderSpec({ modules: { a: mod(), b: mod(), c: mod({}, { version: '3' }) } }, {}, { parked: new Map([['a', 2], ['b', undefined]]) });
    const byName = Object.fromEntries(r.modules.map((m) => [m.name, m]));
    expect(byName.a).toMatchObject({ replicas: 0, parked: true, parkedExitCode: 2 });
    expect(byName.b).toMatchObject({ replicas: 0, parked: true });
    expect(byName.b && 'parkedExitCode' in byName.b).toBe(false);
    expect(byName.c).toEqual({ name: 'c', objectName: 'c', system: false, desiredStatus: 'running', startupOrder: 4294967295, replicas: 1, specDigest: byName.c?.specDigest, image: 'm:1', version: '3', restartPolicy: 'always' });
    expect(Object.keys(byName.a ?? {})).not.toContain('waitingFor');
  });

  it('renders a ServiceAccount per module that mounts no token', () => {
    const r = renderSpec({ modules: { m: mod() } });
    expect(find(r, 'ServiceAccount', 'm')).toEqual({
      apiVersion: 'v1',
      kind: 'ServiceAccount',
      metadata: {
        name: 'm',
        namespace: 'dev-1',
        labels: { 'app.kubernetes.io/managed-by': 'kedge-agent', 'app.kubernetes.io/part-of': 'kedge', 'kedge.io/deployment': 'default', 'kedge.io/module': 'm' },
        annotations: { 'kedge.io/module-name': 'm', 'kedge.io/device-id': 'dev-1' },
        ownerReferences: [{ apiVersion: 'kedge.io/v1alpha1', kind: 'EdgeDeployment', name: 'default', uid: 'u-1', controller: true, blockOwnerDeletion: true }],
      },
      automountServiceAccountToken: false,
    });
  });

  it('gives names that differ only in what Kubernetes refuses distinct objects, not a collision', () => {
    const r = renderSpec({ systemModules: { edgeHub: mod() }, modules: { 'a.b': mod(), a_b: mod(), EdgeHub: mod() } });
    expect(r.errors).toEqual([]);
    expect(new Set(r.modules.map((m) => m.objectName)).size).toBe(4);
  });

  it('reports a collision with its path and reason, naming the module that took the name first', () => {
    const r = renderSpec({ systemModules: { edgeHub: mod() }, modules: { edgehub: mod() } });
    expect(r.errors).toEqual([{ path: 'spec.modules.edgehub', reason: 'NameCollision', message: 'maps to the Kubernetes name "edgehub", which module "edgeHub" already uses; rename one of them' }]);
  });
});

describe('render: hardening', () => {
  it('allows ingress to the edge hub on its container ports, with TCP by default', () => {
    const r = renderSpec({ systemModules: { edgeHub: mod({ HostConfig: { PortBindings: { '8883/tcp': [{ HostPort: '18883' }], '5671/tcp': [{}] } } }) } }, { hardening: { networkPolicy: true } });
    const hub = find<V1NetworkPolicy>(r, 'NetworkPolicy', 'kedge-allow-edgehub');
    expect(hub.spec).toEqual({
      podSelector: { matchLabels: { 'kedge.io/deployment': 'default', 'kedge.io/module': 'edgehub' } },
      policyTypes: ['Ingress'],
      ingress: [{ ports: [{ port: 5671, protocol: 'TCP' }, { port: 8883, protocol: 'TCP' }] }],
    });
    expect(hub.metadata).toEqual({ name: 'kedge-allow-edgehub', namespace: 'dev-1', labels: { 'app.kubernetes.io/managed-by': 'kedge-agent', 'app.kubernetes.io/part-of': 'kedge', 'kedge.io/deployment': 'default' }, ownerReferences: [{ apiVersion: 'kedge.io/v1alpha1', kind: 'EdgeDeployment', name: 'default', uid: 'u-1', controller: true, blockOwnerDeletion: true }] });
    expect(find<V1NetworkPolicy>(r, 'NetworkPolicy', 'kedge-default-deny').spec?.podSelector).toEqual({ matchLabels: { 'kedge.io/deployment': 'default' } });
  });

  it('allows no port to an edge hub that is not deployed or has none', () => {
    const none = renderSpec({ modules: { m: mod({ ExposedPorts: { '80/tcp': {} } }) } }, { hardening: { networkPolicy: true } });
    expect(find<V1NetworkPolicy>(none, 'NetworkPolicy', 'kedge-allow-edgehub').spec?.ingress).toEqual([{ ports: [] }]);
    const portless = renderSpec({ systemModules: { edgeHub: mod() } }, { hardening: { networkPolicy: true } });
    expect(find<V1NetworkPolicy>(portless, 'NetworkPolicy', 'kedge-allow-edgehub').spec?.ingress).toEqual([{ ports: [] }]);
  });

  it('renders nothing without hardening, and each part only when asked', () => {
    expect(renderSpec({ modules: { m: mod() } }).objects.map((o) => o.kind)).toEqual(['ServiceAccount', 'Deployment']);
    const q = renderSpec({ modules: { m: mod() } }, { hardening: { resourceQuota: { 'limits.memory': '1Gi', pods: 3 } } });
    expect(q.objects.map((o) => o.kind)).toEqual(['ServiceAccount', 'Deployment', 'ResourceQuota']);
    expect(find(q, 'ResourceQuota', 'kedge-quota')).toMatchObject({ spec: { hard: { 'limits.memory': '1Gi', pods: '3' } } });
    const l = renderSpec({ modules: { m: mod() } }, { hardening: { limitRange: { defaultRequests: { cpu: 0.1 } } } });
    expect(find<V1LimitRange>(l, 'LimitRange', 'kedge-limits').spec?.limits).toEqual([{ type: 'Container', defaultRequest: { cpu: '0.1' } }]);
    const both = renderSpec({ modules: { m: mod() } }, { hardening: { limitRange: { defaultLimits: { memory: '1Gi' }, defaultRequests: { memory: '512Mi' } } } });
    expect(find<V1LimitRange>(both, 'LimitRange', 'kedge-limits').spec?.limits).toEqual([{ type: 'Container', default: { memory: '1Gi' }, defaultRequest: { memory: '512Mi' } }]);
    expect(find<V1LimitRange>(renderSpec({ modules: {} }, { hardening: { limitRange: {} } }), 'LimitRange', 'kedge-limits').spec?.limits).toEqual([{ type: 'Container' }]);
  });
});
