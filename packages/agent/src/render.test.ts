import type { KubernetesObject, V1Deployment, V1PersistentVolumeClaim, V1Secret, V1Service, V1LimitRange } from '@kubernetes/client-node';
import { describe, expect, it } from 'vitest';
import { parseEdgeDeploymentSpec, validateManifest, type EdgeDeploymentSpecInput } from '@kedge/manifest';
import { readFileSync } from 'node:fs';
import { defaultPolicy, type DevicePolicyInput } from './policy.js';
import { render, type RenderResult } from './render.js';

const owner = { name: 'default', namespace: 'dev-1', uid: '1111-2222' };

function renderSpec(spec: EdgeDeploymentSpecInput, policy: DevicePolicyInput = {}, available?: ReadonlySet<string>): RenderResult {
  const parsed = parseEdgeDeploymentSpec(spec);
  if (!parsed.ok) throw new Error(parsed.error.map((i) => `${i.path}: ${i.message}`).join('\n'));
  return render({ owner, deviceId: 'dev-1', parsed: parsed.value, policy: defaultPolicy(policy), ...(available ? { available } : {}) });
}

const mod = (image: string, createOptions: Record<string, unknown> = {}, extra: Record<string, unknown> = {}) => ({ type: 'docker' as const, settings: { image, createOptions }, ...extra });
const find = <T extends KubernetesObject>(r: RenderResult, kind: string, name: string): T => {
  const o = r.objects.find((x) => x.kind === kind && x.metadata?.name === name);
  if (!o) throw new Error(`no ${kind}/${name} in ${r.objects.map((x) => `${x.kind}/${x.metadata?.name}`).join(', ')}`);
  return o as T;
};
const container = (d: V1Deployment) => d.spec?.template.spec?.containers[0];

describe('render', () => {
  it('is deterministic', () => {
    const spec = { modules: { a: mod('a:1', { ExposedPorts: { '80/tcp': {} } }), b: mod('b:1') } };
    expect(JSON.stringify(renderSpec(spec))).toBe(JSON.stringify(renderSpec(spec)));
  });

  it('renders a Deployment, a ServiceAccount and owner references for each module', () => {
    const r = renderSpec({ modules: { sensor: mod('mcr.microsoft.com/sensor:1.5') } });
    const d = find<V1Deployment>(r, 'Deployment', 'sensor');
    expect(d.metadata?.ownerReferences).toEqual([{ apiVersion: 'kedge.io/v1alpha1', kind: 'EdgeDeployment', name: 'default', uid: '1111-2222', controller: true, blockOwnerDeletion: true }]);
    expect(d.metadata?.labels).toMatchObject({ 'app.kubernetes.io/managed-by': 'kedge-agent', 'kedge.io/deployment': 'default', 'kedge.io/module': 'sensor' });
    expect(d.spec?.replicas).toBe(1);
    expect(d.spec?.selector.matchLabels).toEqual({ 'kedge.io/deployment': 'default', 'kedge.io/module': 'sensor' });
    expect(container(d)).toMatchObject({ name: 'sensor', image: 'mcr.microsoft.com/sensor:1.5', imagePullPolicy: 'IfNotPresent' });
    expect(d.spec?.template.spec?.serviceAccountName).toBe('sensor');
    expect(find(r, 'ServiceAccount', 'sensor').metadata?.ownerReferences?.[0]?.uid).toBe('1111-2222');
    // No Service without ports.
    expect(r.objects.some((o) => o.kind === 'Service')).toBe(false);
  });

  it('gives stopped modules 0 replicas', () => {
    const r = renderSpec({ modules: { s: mod('s', {}, { status: 'stopped' }) } });
    expect(find<V1Deployment>(r, 'Deployment', 's').spec?.replicas).toBe(0);
  });

  it('maps imagePullPolicy never to Never', () => {
    const r = renderSpec({ modules: { s: mod('s', {}, { imagePullPolicy: 'never' }) } });
    expect(container(find<V1Deployment>(r, 'Deployment', 's'))?.imagePullPolicy).toBe('Never');
  });

  it('makes stable DNS-1123 names and keeps the original name in an annotation', () => {
    const r = renderSpec({ modules: { My_Module: mod('x'), 'camera-capture': mod('y') } });
    const names = r.objects.filter((o) => o.kind === 'Deployment').map((o) => o.metadata?.name);
    expect(names).toContain('camera-capture');
    const odd = names.find((n) => n?.startsWith('my-module-'));
    expect(odd).toMatch(/^my-module-[0-9a-f]{8}$/);
    expect(find<V1Deployment>(r, 'Deployment', odd ?? '').metadata?.annotations?.['kedge.io/module-name']).toBe('My_Module');
    expect(renderSpec({ modules: { My_Module: mod('x') } }).modules[0]?.objectName).toBe(odd);
  });

  it('detects name collisions instead of overwriting', () => {
    const r = renderSpec({ systemModules: { edgeHub: mod('hub') }, modules: { edgehub: mod('x') } });
    expect(r.errors.map((e) => e.message).join()).toContain('maps to the Kubernetes name "edgehub", which module "edgeHub" already uses');
  });

  it('translates Entrypoint, Cmd, WorkingDir, User, Privileged, CapAdd, limits and labels', () => {
    const r = renderSpec({
      modules: {
        m: mod('m', {
          Entrypoint: ['/bin/app'],
          Cmd: ['--verbose', '--port=1'],
          WorkingDir: '/work',
          User: '1000:2000',
          Labels: { 'com.example/team': 'edge' },
          HostConfig: { Privileged: true, CapAdd: ['NET_ADMIN'], CapDrop: ['MKNOD'], Memory: 134217728, MemoryReservation: 67108864, NanoCpus: 500000000, ReadonlyRootfs: true },
        }),
      },
    });
    const d = find<V1Deployment>(r, 'Deployment', 'm');
    expect(container(d)).toMatchObject({
      command: ['/bin/app'],
      args: ['--verbose', '--port=1'],
      workingDir: '/work',
      securityContext: { runAsUser: 1000, runAsGroup: 2000, privileged: true, capabilities: { add: ['NET_ADMIN'], drop: ['MKNOD'] }, readOnlyRootFilesystem: true },
      resources: { limits: { memory: '134217728', cpu: '500m' }, requests: { memory: '67108864' } },
    });
    expect(d.spec?.template.metadata?.annotations?.['com.example/team']).toBe('edge');
  });

  it('accepts Cmd and Entrypoint given as strings', () => {
    const r = renderSpec({ modules: { m: mod('m', { Cmd: 'serve', Entrypoint: 'app' }) } });
    expect(container(find<V1Deployment>(r, 'Deployment', 'm'))).toMatchObject({ command: ['app'], args: ['serve'] });
  });

  it('merges env: createOptions.Env, then the env section, then the runtime identity', () => {
    const r = renderSpec({ modules: { m: mod('m', { Env: ['A=1', 'B=x=y', 'BROKEN'] }, { env: { A: { value: '2' }, 'Logging:LogLevel': { value: 'Debug' }, IOTEDGE_DEVICEID: { value: 'spoof' } } }) } });
    const env = Object.fromEntries((container(find<V1Deployment>(r, 'Deployment', 'm'))?.env ?? []).map((e) => [e.name, e.value]));
    expect(env).toMatchObject({ A: '2', B: 'x=y', Logging__LogLevel: 'Debug', IOTEDGE_DEVICEID: 'dev-1', IOTEDGE_MODULEID: 'm', IOTEDGE_GATEWAYHOSTNAME: 'edgehub' });
    expect(env.BROKEN).toBeUndefined();
    expect(r.warnings.map((w) => w.message).join('\n')).toMatch(/"BROKEN" is not NAME=value/);
    expect(r.warnings.map((w) => w.message).join('\n')).toMatch(/written as "Logging__LogLevel"/);
  });

  it('exposes ExposedPorts through a ClusterIP Service and PortBindings with the policy type', () => {
    const r = renderSpec({ modules: { web: mod('w', { ExposedPorts: { '80/tcp': {}, '5000/udp': {} }, HostConfig: { PortBindings: { '8080/tcp': [{ HostPort: '18080' }] } } }) } }, { portBindingServiceType: 'NodePort' });
    const svc = find<V1Service>(r, 'Service', 'web');
    expect(svc.spec?.type).toBe('NodePort');
    expect(svc.spec?.ports).toEqual([
      { name: 'exposed-80-tcp', port: 80, targetPort: 80, protocol: 'TCP' },
      { name: 'exposed-5000-udp', port: 5000, targetPort: 5000, protocol: 'UDP' },
      { name: 'host-18080-tcp', port: 18080, targetPort: 8080, protocol: 'TCP' },
    ]);
    expect(container(find<V1Deployment>(r, 'Deployment', 'web'))?.ports).toEqual([
      { containerPort: 80, protocol: 'TCP' },
      { containerPort: 5000, protocol: 'UDP' },
      { containerPort: 8080, protocol: 'TCP' },
    ]);
    const only = renderSpec({ modules: { web: mod('w', { ExposedPorts: { '80/tcp': {} } }) } }, { portBindingServiceType: 'NodePort' });
    expect(find<V1Service>(only, 'Service', 'web').spec?.type).toBe('ClusterIP');
  });

  it('lets the module choose the Service type', () => {
    const r = renderSpec({ modules: { web: mod('w', { HostConfig: { PortBindings: { '80/tcp': [{ HostPort: '8082' }] } } }, { k8s: { serviceOptions: { type: 'LoadBalancer', loadBalancerIP: '127.0.0.9' } } }) } });
    expect(find<V1Service>(r, 'Service', 'web').spec).toMatchObject({ type: 'LoadBalancer', loadBalancerIP: '127.0.0.9' });
  });

  it('turns named volumes into PVCs (never 0Mi) and switches to Recreate for ReadWriteOnce', () => {
    const r = renderSpec(
      { modules: { db: mod('db', { HostConfig: { Binds: ['dbdata:/var/lib/db'], Mounts: [{ Type: 'volume', Source: 'logs', Target: '/logs', ReadOnly: true }] } }) } },
      { storageClassName: 'local-path', pvcSize: '5Gi' },
    );
    const pvc = find<V1PersistentVolumeClaim>(r, 'PersistentVolumeClaim', 'data-dbdata');
    expect(pvc.spec).toEqual({ accessModes: ['ReadWriteOnce'], resources: { requests: { storage: '5Gi' } }, storageClassName: 'local-path' });
    const d = find<V1Deployment>(r, 'Deployment', 'db');
    expect(d.spec?.strategy).toEqual({ type: 'Recreate' });
    expect(container(d)?.volumeMounts).toEqual([
      { name: 'data-logs', mountPath: '/logs', readOnly: true },
      { name: 'data-dbdata', mountPath: '/var/lib/db' },
    ]);
    expect(find<V1PersistentVolumeClaim>(renderSpec({ modules: { db: mod('db', { HostConfig: { Binds: ['v:/v'] } }) } }), 'PersistentVolumeClaim', 'data-v').spec?.resources?.requests?.storage).toBe('1Gi');
  });

  it('keeps RollingUpdate when volumes can be shared, or when the module sets a strategy', () => {
    const rwx = renderSpec({ modules: { db: mod('db', { HostConfig: { Binds: ['v:/v'] } }) } }, { pvcAccessMode: 'ReadWriteMany' });
    expect(find<V1Deployment>(rwx, 'Deployment', 'db').spec?.strategy).toBeUndefined();
    const own = renderSpec({ modules: { db: mod('db', { HostConfig: { Binds: ['v:/v'] } }, { k8s: { strategy: { type: 'RollingUpdate' } } }) } });
    expect(find<V1Deployment>(own, 'Deployment', 'db').spec?.strategy).toEqual({ type: 'RollingUpdate' });
  });

  it('maps host binds to hostPath only where the device policy allows it', () => {
    const spec = { modules: { m: mod('m', { HostConfig: { Binds: ['/var/run/docker.sock:/var/run/docker.sock', '/etc/cfg:/cfg:ro'] } }) } };
    const denied = renderSpec(spec);
    expect(denied.errors.map((e) => `${e.path}: ${e.message}`)[0]).toContain('spec.modules.m.settings.createOptions.HostConfig.Binds[0]: host path "/var/run/docker.sock" is not allowed');
    const allowed = renderSpec(spec, { allowHostPaths: true });
    expect(allowed.errors).toEqual([]);
    const d = find<V1Deployment>(allowed, 'Deployment', 'm');
    expect(d.spec?.template.spec?.volumes?.map((v) => v.hostPath)).toEqual(expect.arrayContaining([{ path: '/etc/cfg', type: 'DirectoryOrCreate' }]));
    expect(container(d)?.volumeMounts).toContainEqual(expect.objectContaining({ mountPath: '/cfg', readOnly: true }));
  });

  it('refuses privileged modules when the policy forbids them', () => {
    const r = renderSpec({ modules: { m: mod('m', { HostConfig: { Privileged: true } }) } }, { allowPrivileged: false });
    expect(r.errors[0]?.message).toContain('allowPrivileged: false');
  });

  it('turns registry credentials into dockerconfigjson Secrets used by matching images', () => {
    const r = renderSpec({
      registryCredentials: { acr: { address: 'https://contoso.azurecr.io', username: 'u', password: 'p' } },
      modules: { a: mod('contoso.azurecr.io/a:1'), b: mod('docker.io/library/b:1') },
    });
    const secret = find<V1Secret>(r, 'Secret', 'registry-acr');
    expect(secret.type).toBe('kubernetes.io/dockerconfigjson');
    expect(JSON.parse(Buffer.from(secret.data?.['.dockerconfigjson'] ?? '', 'base64').toString())).toEqual({ auths: { 'contoso.azurecr.io': { username: 'u', password: 'p', auth: Buffer.from('u:p').toString('base64') } } });
    expect(find<V1Deployment>(r, 'Deployment', 'a').spec?.template.spec?.imagePullSecrets).toEqual([{ name: 'registry-acr' }]);
    expect(find<V1Deployment>(r, 'Deployment', 'b').spec?.template.spec?.imagePullSecrets).toBeUndefined();
  });

  it('applies the Kubernetes section', () => {
    const r = renderSpec({
      modules: {
        m: mod('m', {}, {
          k8s: {
            resources: { limits: { 'nvidia.com/gpu': 1 } },
            nodeSelector: { accelerator: 'gpu' },
            tolerations: [{ key: 'edge', operator: 'Exists', effect: 'NoSchedule' }],
            affinity: { nodeAffinity: {} },
            securityContext: { runAsNonRoot: true },
            volumes: [{ volume: { name: 'cfg', configMap: { name: 'cfg' } }, volumeMounts: [{ name: 'cfg', mountPath: '/etc/cfg', readOnly: true }] }],
            priorityClassName: 'edge-critical',
          },
        }),
      },
    });
    const spec = find<V1Deployment>(r, 'Deployment', 'm').spec?.template.spec;
    expect(spec).toMatchObject({
      nodeSelector: { accelerator: 'gpu' },
      tolerations: [{ key: 'edge', operator: 'Exists', effect: 'NoSchedule' }],
      affinity: { nodeAffinity: {} },
      securityContext: { runAsNonRoot: true },
      priorityClassName: 'edge-critical',
      volumes: [{ name: 'cfg', configMap: { name: 'cfg' } }],
    });
    expect(spec?.containers[0]?.resources).toEqual({ limits: { 'nvidia.com/gpu': '1' } });
  });

  it('maps host network, IPC and PID', () => {
    const r = renderSpec({ modules: { m: mod('m', { HostConfig: { NetworkMode: 'host', IpcMode: 'host', PidMode: 'host' } }) } });
    expect(find<V1Deployment>(r, 'Deployment', 'm').spec?.template.spec).toMatchObject({ hostNetwork: true, dnsPolicy: 'ClusterFirstWithHostNet', hostIPC: true, hostPID: true });
  });

  it('warns about every option it cannot honour', () => {
    const r = renderSpec({ modules: { m: mod('m', { NetworkingConfig: {}, HostConfig: { NetworkMode: 'Host', LogConfig: { Type: 'json-file' }, DeviceRequests: [{ Count: -1 }], RestartPolicy: { Name: 'always' }, MemorySwap: 1 } }) } });
    const paths = r.warnings.map((w) => w.path);
    for (const f of ['NetworkingConfig', 'HostConfig.NetworkMode', 'HostConfig.LogConfig', 'HostConfig.DeviceRequests', 'HostConfig.RestartPolicy', 'HostConfig.MemorySwap']) {
      expect(paths).toContain(`spec.modules.m.settings.createOptions.${f}`);
    }
  });

  it('turns a Docker health check into probes: liveness only where IoT Edge restarts unhealthy modules', () => {
    const hc = { Test: ['CMD-SHELL', 'curl -f http://localhost/ || exit 1'], Interval: 10_000_000_000, Timeout: 2_000_000_000, Retries: 5, StartPeriod: 15_000_000_000 };
    const probe = { exec: { command: ['/bin/sh', '-c', 'curl -f http://localhost/ || exit 1'] }, periodSeconds: 10, timeoutSeconds: 2, failureThreshold: 5, initialDelaySeconds: 15 };
    const r = renderSpec({ modules: { a: mod('a', { Healthcheck: hc }, { restartPolicy: 'on-unhealthy' }), n: mod('n', { Healthcheck: { Test: ['CMD', 'check'] } }, { restartPolicy: 'never' }), x: mod('x', { Healthcheck: { Test: ['NONE'] } }) } });
    expect(container(find<V1Deployment>(r, 'Deployment', 'a'))).toMatchObject({ livenessProbe: probe, readinessProbe: probe });
    const n = container(find<V1Deployment>(r, 'Deployment', 'n'));
    expect(n?.readinessProbe).toEqual({ exec: { command: ['check'] }, periodSeconds: 30, timeoutSeconds: 30, failureThreshold: 3 });
    expect(n?.livenessProbe).toBeUndefined();
    expect(container(find<V1Deployment>(r, 'Deployment', 'x'))?.readinessProbe).toBeUndefined();
    expect(renderSpec({ modules: { b: mod('b', { Healthcheck: { Test: 'curl' } }) } }).warnings.map((w) => w.path)).toContain('spec.modules.b.settings.createOptions.Healthcheck.Test');
  });

  it('holds modules back until lower startupOrder modules are available', () => {
    const spec = { systemModules: { edgeHub: mod('hub', {}, { startupOrder: 0 }) }, modules: { a: mod('a', {}, { startupOrder: 1 }), b: mod('b', {}, { startupOrder: 2 }), c: mod('c') } };
    const replicas = (r: RenderResult) => Object.fromEntries(r.modules.map((m) => [m.name, m.replicas]));
    expect(replicas(renderSpec(spec, {}, new Set()))).toEqual({ edgeHub: 1, a: 0, b: 0, c: 0 });
    expect(replicas(renderSpec(spec, {}, new Set(['edgeHub'])))).toEqual({ edgeHub: 1, a: 1, b: 0, c: 0 });
    expect(replicas(renderSpec(spec, {}, new Set(['edgeHub', 'a', 'b'])))).toEqual({ edgeHub: 1, a: 1, b: 1, c: 1 });
    expect(renderSpec(spec, {}, new Set(['edgeHub'])).modules.find((m) => m.name === 'b')?.waitingFor).toEqual(['a']);
    // A dry run renders everything as desired.
    expect(replicas(renderSpec(spec))).toEqual({ edgeHub: 1, a: 1, b: 1, c: 1 });
  });

  it('does not render the edgeAgent unless the policy says so, and names the edge hub "edgehub"', () => {
    const spec = { systemModules: { edgeAgent: mod('agent'), edgeHub: mod('hub', { HostConfig: { PortBindings: { '8883/tcp': [{ HostPort: '8883' }] } } }) } };
    const r = renderSpec(spec);
    expect(r.objects.filter((o) => o.kind === 'Deployment').map((o) => o.metadata?.name)).toEqual(['edgehub']);
    const env = container(find<V1Deployment>(r, 'Deployment', 'edgehub'))?.env ?? [];
    expect(env).toContainEqual({ name: 'IOTEDGE_MODULEID', value: '$edgeHub' });
    expect(env.some((e) => e.name === 'IOTEDGE_GATEWAYHOSTNAME')).toBe(false);
    expect(renderSpec(spec, { manageEdgeAgent: true }).objects.some((o) => o.kind === 'Deployment' && o.metadata?.name === 'edgeagent')).toBe(true);
  });

  it('injects workload mode: IOTEDGE_* variables, the workload secret by secretKeyRef, never key material in the spec', () => {
    const spec = { systemModules: { edgeHub: mod('hub') }, modules: { filter: mod('filter:1') } };
    const policy = { hubHostName: 'hub.example.com', moduleIdentity: { mode: 'workload' as const } };
    const r = renderSpec(spec, policy);
    const d = find<V1Deployment>(r, 'Deployment', 'filter');
    const env = container(d)?.env ?? [];
    expect(env).toContainEqual({ name: 'IOTEDGE_MODULEGENERATIONID', valueFrom: { secretKeyRef: { name: 'kedge-identity-filter', key: 'workloadSecret' } } });
    expect(env).toContainEqual({ name: 'IOTEDGE_WORKLOADURI', value: 'http://kedge-workload:15580' });
    expect(env).toContainEqual({ name: 'IOTEDGE_APIVERSION', value: '2022-08-03' });
    expect(env).toContainEqual({ name: 'IOTEDGE_GATEWAYHOSTNAME', value: 'edgehub' });
    expect(env.some((e) => e.name === 'EdgeHubConnectionString' || e.name === 'EdgeModuleCACertificateFile')).toBe(false);
    expect(d.spec?.template.spec?.volumes ?? []).toEqual([]);
    // Only references: no value in the rendered objects comes from a Secret.
    expect(JSON.stringify(r.objects)).not.toMatch(/SharedAccessKey=/);
    // The same spec renders byte-identical Deployments (no churn on reconcile).
    expect(JSON.stringify(renderSpec(spec, policy).objects)).toBe(JSON.stringify(r.objects));
    const hubEnv = container(find<V1Deployment>(r, 'Deployment', 'edgehub'))?.env ?? [];
    expect(hubEnv).toContainEqual({ name: 'EdgeHubConnectionString', valueFrom: { secretKeyRef: { name: 'kedge-identity-edgehub', key: 'connectionString' } } });
  });

  it('connection-string mode mounts the trust bundle and references the connection string', () => {
    const r = renderSpec({ modules: { filter: mod('filter:1') } }, { moduleIdentity: { mode: 'connectionString' } });
    const d = find<V1Deployment>(r, 'Deployment', 'filter');
    const env = container(d)?.env ?? [];
    expect(env).toContainEqual({ name: 'EdgeHubConnectionString', valueFrom: { secretKeyRef: { name: 'kedge-identity-filter', key: 'connectionString' } } });
    expect(env.some((e) => e.name === 'IOTEDGE_WORKLOADURI')).toBe(false);
    expect(d.spec?.template.spec?.volumes).toEqual([{ name: 'kedge-trust-bundle', configMap: { name: 'kedge-trust-bundle', optional: true } }]);
  });

  it('renders namespace hardening when the policy asks for it', () => {
    const spec = { systemModules: { edgeHub: mod('hub', { HostConfig: { PortBindings: { '8883/tcp': [{ HostPort: '8883' }] } } }) } };
    const r = renderSpec(spec, { hardening: { networkPolicy: true, resourceQuota: { pods: 20 }, limitRange: { defaultLimits: { memory: '256Mi' } } } });
    expect(find(r, 'NetworkPolicy', 'kedge-allow-edgehub')).toMatchObject({ spec: { ingress: [{ ports: [{ port: 8883, protocol: 'TCP' }] }] } });
    expect(find(r, 'NetworkPolicy', 'kedge-default-deny')).toMatchObject({ spec: { policyTypes: ['Ingress'], ingress: [] } });
    expect(find(r, 'ResourceQuota', 'kedge-quota')).toMatchObject({ spec: { hard: { pods: '20' } } });
    expect(find<V1LimitRange>(r, 'LimitRange', 'kedge-limits').spec?.limits[0]).toEqual({ type: 'Container', default: { memory: '256Mi' } });
  });

  it('renders the sample manifest end to end', () => {
    const doc = JSON.parse(readFileSync(new URL('../../../examples/simulated-temperature.json', import.meta.url), 'utf8')) as unknown;
    const v = validateManifest(doc);
    expect(v.ok).toBe(true);
    if (!v.ok) return;
    const r = renderSpec(v.manifest.spec);
    expect(r.errors).toEqual([]);
    expect(r.objects.map((o) => `${o.kind}/${o.metadata?.name}`)).toEqual([
      'Secret/registry-contoso',
      'ServiceAccount/edgehub',
      'ServiceAccount/simulatedtemperaturesensor-' + (r.modules.find((m) => m.name === 'SimulatedTemperatureSensor')?.objectName.slice(-8) ?? ''),
      'ServiceAccount/filter',
      'PersistentVolumeClaim/data-filter-state',
      'Service/edgehub',
      'Service/filter',
      'Deployment/edgehub',
      'Deployment/' + (r.modules.find((m) => m.name === 'SimulatedTemperatureSensor')?.objectName ?? ''),
      'Deployment/filter',
    ]);
    // settings.k8sOptions, a JSON string in the manifest, reaches the pod with its dotted keys intact.
    const filter = find<V1Deployment>(r, 'Deployment', 'filter');
    expect(filter.spec?.template.spec?.nodeSelector).toEqual({ 'kubernetes.io/os': 'linux' });
    expect(container(filter)?.resources?.requests).toEqual({ cpu: '50m', memory: '64Mi' });
  });

  it('renders the stateful example: chunked k8sOptions (persistence, tolerations, affinity) and the preview section', () => {
    const doc = JSON.parse(readFileSync(new URL('../../../examples/stateful-module.json', import.meta.url), 'utf8')) as unknown;
    const v = validateManifest(doc);
    if (!v.ok) throw new Error(JSON.stringify(v.error));
    const r = renderSpec(v.manifest.spec);
    expect(r.errors).toEqual([]);
    const pvc = find<V1PersistentVolumeClaim>(r, 'PersistentVolumeClaim', 'data-historian-data');
    expect(pvc.spec).toMatchObject({ storageClassName: 'local-path', accessModes: ['ReadWriteOnce'], resources: { requests: { storage: '5Gi' } } });
    const pod = find<V1Deployment>(r, 'Deployment', 'historian').spec?.template;
    expect(pod?.spec?.tolerations).toEqual([{ key: 'node-role.kubernetes.io/edge', operator: 'Exists', effect: 'NoSchedule' }]);
    expect(pod?.spec?.affinity?.nodeAffinity?.requiredDuringSchedulingIgnoredDuringExecution?.nodeSelectorTerms[0]?.matchExpressions?.[0]?.key).toBe('kubernetes.io/arch');
    expect(pod?.spec?.priorityClassName).toBe('edge-critical');
    expect(pod?.spec?.securityContext).toMatchObject({ runAsNonRoot: true, runAsUser: 1000, fsGroup: 1000 });
    expect(pod?.metadata?.labels?.['contoso.com/team']).toBe('historian');
    const publisher = find<V1Deployment>(r, 'Deployment', r.modules.find((m) => m.name === 'opcPublisher')?.objectName ?? '');
    expect(publisher.spec?.template.spec?.nodeSelector).toEqual({ 'kubernetes.io/os': 'linux' });
    expect(container(publisher)?.resources?.limits).toEqual({ memory: '256Mi' });
  });
});
