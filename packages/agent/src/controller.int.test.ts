import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AppsV1Api, CoreV1Api, CustomObjectsApi, type KubeConfig, type V1Deployment } from '@kubernetes/client-node';
import { pino } from 'pino';
import { Registry } from 'prom-client';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ClusterConfig, createKubeClient } from '@kedge/kube';
import type { EdgeDeploymentStatus } from '@kedge/manifest';
import { createTestNamespace, eventually, kubeConfigForTests, kubeconfigPathForTests, type TestNamespace } from '@kedge/testing';
import { startEdgeDeploymentController, type RunningController } from './controller.js';
import { defaultPolicy } from './policy.js';

const GROUP = 'kedge.io';
const VERSION = 'v1alpha1';
const PLURAL = 'edgedeployments';
const log = pino({ level: process.env.KEDGE_TEST_LOG ?? 'silent' });

let kc: KubeConfig;
let config: ClusterConfig;
let apps: AppsV1Api;
let core: CoreV1Api;
let custom: CustomObjectsApi;
const namespaces: TestNamespace[] = [];
const controllers: RunningController[] = [];

beforeAll(() => {
  kc = kubeConfigForTests();
  config = ClusterConfig.fromFiles([kubeconfigPathForTests()]);
  apps = kc.makeApiClient(AppsV1Api);
  core = kc.makeApiClient(CoreV1Api);
  custom = kc.makeApiClient(CustomObjectsApi);
});
afterAll(async () => {
  for (const c of controllers) await c.stop();
  for (const n of namespaces) await n.cleanup();
});

async function namespace(prefix: string): Promise<string> {
  const ns = await createTestNamespace(kc, prefix);
  namespaces.push(ns);
  return ns.name;
}

async function start(ns: string, extra: Partial<Parameters<typeof startEdgeDeploymentController>[0]> = {}): Promise<RunningController> {
  const c = await startEdgeDeploymentController({ config, namespace: ns, policy: defaultPolicy(), log, registry: new Registry(), workers: 2, ...extra });
  controllers.push(c);
  return c;
}

async function stop(c: RunningController): Promise<void> {
  await c.stop();
  controllers.splice(controllers.indexOf(c), 1);
}

const mod = (image: string, extra: Record<string, unknown> = {}, createOptions: Record<string, unknown> = {}) => ({ type: 'docker' as const, settings: { image, createOptions }, ...extra });

async function putEdgeDeployment(ns: string, spec: Record<string, unknown>, name = 'default'): Promise<void> {
  const body = { apiVersion: `${GROUP}/${VERSION}`, kind: 'EdgeDeployment', metadata: { name, namespace: ns }, spec };
  // The controller writes status concurrently, which moves the resourceVersion: retry a stale replace (409).
  for (let attempt = 0; ; attempt++) {
    try {
      const existing = (await custom.getNamespacedCustomObject({ group: GROUP, version: VERSION, namespace: ns, plural: PLURAL, name })) as { metadata: { resourceVersion: string } };
      await custom.replaceNamespacedCustomObject({ group: GROUP, version: VERSION, namespace: ns, plural: PLURAL, name, body: { ...body, metadata: { ...body.metadata, resourceVersion: existing.metadata.resourceVersion } } });
      return;
    } catch (e) {
      const code = (e as { code?: number }).code;
      if (code === 409 && attempt < 10) continue;
      if (code !== 404) throw e;
      await custom.createNamespacedCustomObject({ group: GROUP, version: VERSION, namespace: ns, plural: PLURAL, body });
      return;
    }
  }
}

async function statusOf(ns: string, name = 'default'): Promise<EdgeDeploymentStatus & { generation: number }> {
  const o = (await custom.getNamespacedCustomObject({ group: GROUP, version: VERSION, namespace: ns, plural: PLURAL, name })) as { metadata: { generation: number }; status?: EdgeDeploymentStatus };
  return { ...(o.status ?? {}), generation: o.metadata.generation };
}

const condition = (s: EdgeDeploymentStatus, type: string) => s.conditions?.find((c) => c.type === type);
const deployment = (ns: string, name: string) => apps.readNamespacedDeployment({ name, namespace: ns });

describe('EdgeDeployment controller against a real control plane', () => {
  it('translates modules into Deployments, Services, ServiceAccounts, PVCs and Secrets, and reports them running', async () => {
    const ns = await namespace('translate');
    await start(ns);
    await putEdgeDeployment(ns, {
      deviceId: 'factory-1',
      registryCredentials: { acr: { address: 'contoso.azurecr.io', username: 'u', password: 'p' } },
      systemModules: { edgeHub: mod('ghcr.io/kedge-io/edge-hub:0.1', { startupOrder: 0 }, { HostConfig: { PortBindings: { '8883/tcp': [{ HostPort: '8883' }] } } }) },
      modules: {
        SimulatedTemperatureSensor: mod('contoso.azurecr.io/sensor:1.0', { env: { SendInterval: { value: '5' } } }, { HostConfig: { Memory: 134217728 } }),
        filter: mod('contoso.azurecr.io/filter:1.0', {}, { ExposedPorts: { '9600/tcp': {} }, HostConfig: { Binds: ['filterstate:/state'] } }),
      },
      routes: { up: { route: 'FROM /messages/* INTO $upstream' } },
    });
    const s = await eventually(async () => {
      const st = await statusOf(ns);
      expect(st.phase).toBe('Ready');
      return st;
    }, { timeoutMs: 90_000, message: 'EdgeDeployment Ready' });
    expect(s.observedGeneration).toBe(s.generation);
    expect(s.modulesDesired).toBe(3);
    expect(s.modulesReady).toBe(3);
    expect(s.modules?.filter).toMatchObject({ runtimeStatus: 'running', image: 'contoso.azurecr.io/filter:1.0', restartCount: 0 });
    expect(condition(s, 'SpecValid')?.status).toBe('True');
    expect(condition(s, 'Ready')?.status).toBe('True');

    const filter = await deployment(ns, 'filter');
    expect(filter.metadata?.ownerReferences?.[0]).toMatchObject({ kind: 'EdgeDeployment', name: 'default', controller: true });
    expect(filter.spec?.strategy?.type).toBe('Recreate');
    expect(filter.spec?.template.spec?.imagePullSecrets).toEqual([{ name: 'registry-acr' }]);
    const pvc = await core.readNamespacedPersistentVolumeClaim({ name: 'data-filterstate', namespace: ns });
    expect(pvc.spec?.resources?.requests?.storage).toBe('1Gi');
    const svc = await core.readNamespacedService({ name: 'filter', namespace: ns });
    expect(svc.spec?.ports?.[0]).toMatchObject({ port: 9600, targetPort: 9600 });
    expect((await core.readNamespacedService({ name: 'edgehub', namespace: ns })).spec?.ports?.[0]?.port).toBe(8883);
    expect((await core.readNamespacedSecret({ name: 'registry-acr', namespace: ns })).type).toBe('kubernetes.io/dockerconfigjson');
    await core.readNamespacedServiceAccount({ name: 'filter', namespace: ns });
    const sensorName = Object.values(s.modules ?? {}).find((m) => m.image?.includes('sensor'))?.deployment ?? '';
    const sensor = await deployment(ns, sensorName);
    expect(sensor.spec?.template.spec?.containers[0]?.resources?.limits?.memory).toBe('134217728');
    expect(sensor.spec?.template.spec?.containers[0]?.env).toContainEqual({ name: 'SendInterval', value: '5' });
  });

  it('rolls out an image change, scales a stopped module to 0 and prunes a removed one', async () => {
    const ns = await namespace('update');
    await start(ns);
    await putEdgeDeployment(ns, { modules: { a: mod('a:1'), b: mod('b:1'), c: mod('c:1') } });
    await eventually(async () => expect((await statusOf(ns)).phase).toBe('Ready'), { timeoutMs: 60_000 });

    await putEdgeDeployment(ns, { modules: { a: mod('a:2'), b: mod('b:1', { status: 'stopped' }) } });
    await eventually(async () => {
      const a = await deployment(ns, 'a');
      expect(a.spec?.template.spec?.containers[0]?.image).toBe('a:2');
      expect((await deployment(ns, 'b')).spec?.replicas).toBe(0);
      await expect(deployment(ns, 'c')).rejects.toMatchObject({ code: 404 });
      const st = await statusOf(ns);
      expect(st.observedGeneration).toBe(st.generation);
      expect(st.modules?.b?.runtimeStatus).toBe('stopped');
      expect(st.modules?.a).toMatchObject({ runtimeStatus: 'running', image: 'a:2' });
      expect(st.modules?.c).toBeUndefined();
      expect(st.phase).toBe('Ready');
    }, { timeoutMs: 90_000, message: 'update applied' });
    // The new pod runs the new image.
    await eventually(async () => {
      const pods = await core.listNamespacedPod({ namespace: ns, labelSelector: 'kedge.io/module=a' });
      expect(pods.items.filter((p) => p.status?.phase === 'Running').map((p) => p.spec?.containers[0]?.image)).toEqual(['a:2']);
    }, { timeoutMs: 60_000 });
  });

  it('reports CrashLoopBackOff and Pending pods', async () => {
    const ns = await namespace('status');
    await start(ns);
    await putEdgeDeployment(ns, {
      modules: {
        crashy: mod('crashy:1', { k8s: { podLabels: { 'kedge.io/simulate': 'crashloop' }, podAnnotations: { 'kedge.io/simulate-exit-code': '3' } } }),
        stuck: mod('stuck:1', { k8s: { podLabels: { 'kedge.io/simulate': 'pending' } } }),
        fine: mod('fine:1'),
      },
    });
    const s = await eventually(async () => {
      const st = await statusOf(ns);
      expect(st.modules?.crashy?.runtimeStatus).toBe('backoff');
      expect(st.modules?.crashy?.restartCount).toBeGreaterThan(0);
      expect(st.modules?.stuck?.runtimeStatus).toBe('pending');
      expect(st.modules?.fine?.runtimeStatus).toBe('running');
      return st;
    }, { timeoutMs: 120_000, message: 'crashloop/pending reported' });
    expect(s.modules?.crashy?.description).toContain('CrashLoopBackOff');
    expect(s.modules?.crashy?.exitCode).toBe(3);
    expect(s.phase).toBe('Degraded');
    expect(condition(s, 'Ready')).toMatchObject({ status: 'False', reason: 'ModulesFailing' });
  });

  it('honours restartPolicy: never and on-failure stop a module that exited, until the module changes', async () => {
    const ns = await namespace('restart-policy');
    await start(ns);
    const crash = (code: string) => ({ podLabels: { 'kedge.io/simulate': 'crashloop' }, podAnnotations: { 'kedge.io/simulate-exit-code': code } });
    await putEdgeDeployment(ns, {
      modules: {
        once: mod('once:1', { restartPolicy: 'never', k8s: crash('3') }),
        clean: mod('clean:1', { restartPolicy: 'on-failure', k8s: crash('0') }),
        flaky: mod('flaky:1', { restartPolicy: 'on-failure', k8s: crash('1') }),
      },
    });
    const s = await eventually(async () => {
      const st = await statusOf(ns);
      expect(st.modules?.once).toMatchObject({ runtimeStatus: 'failed', exitCode: 3 });
      expect(st.modules?.clean).toMatchObject({ runtimeStatus: 'stopped', exitCode: 0 });
      // kwok restarts a crash-looping container every second: past 20 restarts edgeAgent's rule reports failed.
      expect(['backoff', 'failed']).toContain(st.modules?.flaky?.runtimeStatus);
      expect((await deployment(ns, 'once')).spec?.replicas).toBe(0);
      expect((await deployment(ns, 'clean')).spec?.replicas).toBe(0);
      expect((await deployment(ns, 'flaky')).spec?.replicas).toBe(1);
      return st;
    }, { timeoutMs: 90_000, message: 'restart policies applied' });
    expect(s.modules?.once?.parkedSpec).toMatch(/^[0-9a-f]{16}$/);
    expect(s.modules?.once?.description).toContain('not restarted (restartPolicy: never)');
    // A new version of the module runs again.
    await putEdgeDeployment(ns, { modules: { once: mod('once:2', { restartPolicy: 'never' }), clean: mod('clean:1', { restartPolicy: 'on-failure', k8s: crash('0') }) } });
    await eventually(async () => {
      expect((await deployment(ns, 'once')).spec?.replicas).toBe(1);
      const st = await statusOf(ns);
      expect(st.modules?.once).toMatchObject({ runtimeStatus: 'running', image: 'once:2' });
      expect(st.modules?.once?.parkedSpec).toBeUndefined();
      expect(st.modules?.clean?.runtimeStatus).toBe('stopped');
    }, { timeoutMs: 60_000 });
  });

  it('rejects an invalid spec with the exact reason and leaves the running objects alone', async () => {
    const ns = await namespace('invalid');
    await start(ns);
    await putEdgeDeployment(ns, { modules: { a: mod('a:1') } });
    await eventually(async () => expect((await statusOf(ns)).phase).toBe('Ready'), { timeoutMs: 60_000 });
    const before = await deployment(ns, 'a');
    // Schema-valid for the apiserver, invalid for Kedge: a route that does not compile, a host path the policy forbids.
    await putEdgeDeployment(ns, { modules: { a: mod('a:2', {}, { HostConfig: { Binds: ['/etc:/host-etc'] } }) }, routes: { bad: { route: 'FROM * INTO $upstream' } } });
    const s = await eventually(async () => {
      const st = await statusOf(ns);
      expect(condition(st, 'SpecValid')?.status).toBe('False');
      return st;
    }, { timeoutMs: 30_000 });
    expect(condition(s, 'SpecValid')?.message).toContain('spec.routes.bad.route');
    expect(s.phase).toBe('Invalid');
    expect(s.modules?.a?.runtimeStatus).toBe('running');
    const after = await deployment(ns, 'a');
    expect(after.metadata?.resourceVersion).toBe(before.metadata?.resourceVersion);
    expect(after.spec?.template.spec?.containers[0]?.image).toBe('a:1');

    await putEdgeDeployment(ns, { modules: { a: mod('a:1', {}, { HostConfig: { Binds: ['/etc:/host-etc'] } }) } });
    const p = await eventually(async () => {
      const st = await statusOf(ns);
      expect(condition(st, 'SpecValid')?.reason).toBe('PolicyViolation');
      return st;
    }, { timeoutMs: 30_000 });
    expect(condition(p, 'SpecValid')?.message).toContain('host path "/etc" is not allowed');
    // What `kubectl describe edep` shows: a Warning Event per rejection, with the exact reason, about this resource.
    await eventually(async () => {
      const events = (await core.listNamespacedEvent({ namespace: ns })).items.filter((e) => e.involvedObject.kind === 'EdgeDeployment');
      expect(events.map((e) => [e.type, e.reason])).toEqual(expect.arrayContaining([['Normal', 'Ready'], ['Warning', 'InvalidSpec'], ['Warning', 'PolicyViolation']]));
      expect(events.find((e) => e.reason === 'InvalidSpec')?.message).toContain('spec.routes.bad.route');
    });
  });

  it('refuses to take over an object it does not own', async () => {
    const ns = await namespace('collision');
    await apps.createNamespacedDeployment({
      namespace: ns,
      body: { metadata: { name: 'a' }, spec: { replicas: 1, selector: { matchLabels: { app: 'mine' } }, template: { metadata: { labels: { app: 'mine' } }, spec: { containers: [{ name: 'x', image: 'users-own:1' }] } } } },
    });
    await start(ns);
    await putEdgeDeployment(ns, { modules: { a: mod('a:1') } });
    const s = await eventually(async () => {
      const st = await statusOf(ns);
      expect(condition(st, 'SpecValid')?.reason).toBe('NameCollision');
      return st;
    }, { timeoutMs: 30_000 });
    expect(condition(s, 'SpecValid')?.message).toContain('Deployment/a already exists and is not managed by this EdgeDeployment');
    expect((await deployment(ns, 'a')).spec?.template.spec?.containers[0]?.image).toBe('users-own:1');
  });

  it('starts modules in startupOrder', async () => {
    const ns = await namespace('order');
    await start(ns);
    await putEdgeDeployment(ns, { modules: { first: mod('first:1', { startupOrder: 1, k8s: { podLabels: { 'kedge.io/simulate': 'pending' } } }), second: mod('second:1', { startupOrder: 2 }) } });
    await eventually(async () => {
      const st = await statusOf(ns);
      expect(st.modules?.second?.runtimeStatus).toBe('pending');
      expect(st.modules?.second?.description).toContain('Waiting for first');
    }, { timeoutMs: 30_000 });
    expect((await deployment(ns, 'second')).spec?.replicas).toBe(0);
    // Once the first module can run, the second follows.
    await putEdgeDeployment(ns, { modules: { first: mod('first:1', { startupOrder: 1 }), second: mod('second:1', { startupOrder: 2 }) } });
    await eventually(async () => expect((await statusOf(ns)).phase).toBe('Ready'), { timeoutMs: 90_000 });
    expect((await deployment(ns, 'second')).spec?.replicas).toBe(1);
  });

  it('keeps two devices in two namespaces apart', async () => {
    const ns1 = await namespace('dev-a');
    const ns2 = await namespace('dev-b');
    await start(ns1);
    await start(ns2);
    await putEdgeDeployment(ns1, { modules: { m: mod('one:1') } });
    await putEdgeDeployment(ns2, { modules: { m: mod('two:1'), n: mod('n:1') } });
    await eventually(async () => {
      expect((await statusOf(ns1)).phase).toBe('Ready');
      expect((await statusOf(ns2)).phase).toBe('Ready');
    }, { timeoutMs: 90_000 });
    await putEdgeDeployment(ns2, { modules: { m: mod('two:2') } });
    await eventually(async () => {
      await expect(deployment(ns2, 'n')).rejects.toMatchObject({ code: 404 });
      expect((await deployment(ns2, 'm')).spec?.template.spec?.containers[0]?.image).toBe('two:2');
    }, { timeoutMs: 60_000 });
    expect((await deployment(ns1, 'm')).spec?.template.spec?.containers[0]?.image).toBe('one:1');
    expect((await statusOf(ns1)).modulesDesired).toBe(1);
  });

  it('keeps applying after its watches are closed by the server, and heals a deleted child', async () => {
    const ns = await namespace('watch');
    // The apiserver ends every watch after 1 s: the informers must reconnect over and over without losing events.
    await start(ns, { watchTimeoutSeconds: 1, resyncPeriodMs: 3_000 });
    await putEdgeDeployment(ns, { modules: { m: mod('m:1') } });
    await eventually(async () => expect((await statusOf(ns)).phase).toBe('Ready'), { timeoutMs: 60_000 });
    for (const tag of ['2', '3', '4']) {
      await putEdgeDeployment(ns, { modules: { m: mod(`m:${tag}`) } });
      await eventually(async () => expect((await deployment(ns, 'm')).spec?.template.spec?.containers[0]?.image).toBe(`m:${tag}`), { timeoutMs: 30_000 });
    }
    // A child deleted behind the controller's back comes back (delete event or periodic resync).
    await core.deleteNamespacedService({ name: 'm', namespace: ns }).catch(() => undefined);
    await apps.deleteNamespacedDeployment({ name: 'm', namespace: ns });
    await eventually(async () => expect((await deployment(ns, 'm')).spec?.template.spec?.containers[0]?.image).toBe('m:4'), { timeoutMs: 30_000 });
  });

  it('takes back a hand edit of a field it owns', async () => {
    const ns = await namespace('drift');
    await start(ns);
    await putEdgeDeployment(ns, { modules: { m: mod('m:1') } });
    await eventually(async () => expect((await statusOf(ns)).phase).toBe('Ready'), { timeoutMs: 60_000 });
    await apps.patchNamespacedDeployment({ name: 'm', namespace: ns, body: [{ op: 'replace', path: '/spec/replicas', value: 3 }] });
    await apps.patchNamespacedDeployment({ name: 'm', namespace: ns, body: [{ op: 'replace', path: '/spec/template/spec/containers/0/image', value: 'evil:1' }] });
    await eventually(async () => {
      const d = await deployment(ns, 'm');
      expect(d.spec?.replicas).toBe(1);
      expect(d.spec?.template.spec?.containers[0]?.image).toBe('m:1');
    }, { timeoutMs: 30_000, message: 'drift corrected' });
  });

  it('changes nothing when restarted', async () => {
    const ns = await namespace('restart');
    const first = await start(ns);
    await putEdgeDeployment(ns, { modules: { a: mod('a:1', {}, { ExposedPorts: { '80/tcp': {} }, HostConfig: { Binds: ['v:/v'] } }), b: mod('b:1') } });
    await eventually(async () => expect((await statusOf(ns)).phase).toBe('Ready'), { timeoutMs: 60_000 });
    await stop(first);
    const snapshot = async () => {
      const ds = (await apps.listNamespacedDeployment({ namespace: ns })).items;
      const ss = (await core.listNamespacedService({ namespace: ns })).items;
      const ps = (await core.listNamespacedPersistentVolumeClaim({ namespace: ns })).items;
      const ed = (await custom.getNamespacedCustomObject({ group: GROUP, version: VERSION, namespace: ns, plural: PLURAL, name: 'default' })) as { metadata: { resourceVersion: string } };
      return { objects: [...ds, ...ss, ...ps].map((o) => `${o.metadata?.name}@${o.metadata?.resourceVersion}`).sort(), ed: ed.metadata.resourceVersion };
    };
    const before = await snapshot();
    const registry = new Registry();
    await start(ns, { registry });
    // Wait until the new controller has reconciled the EdgeDeployment at least once, successfully.
    await eventually(async () => {
      const m = await registry.getSingleMetricAsString('kedge_controller_reconcile_total');
      expect(m).toMatch(/result="success"[^\n]* [1-9]/);
    }, { timeoutMs: 30_000 });
    expect(await snapshot()).toEqual(before);
    const d: V1Deployment = await deployment(ns, 'a');
    expect(d.metadata?.managedFields?.filter((f) => f.manager === 'kedge-agent').length).toBe(1);
  });

  it('works with nothing but the namespaced Role it ships', async () => {
    const ns = await namespace('rbac');
    const { agentRbac } = await import('./rbac.js');
    const admin = createKubeClient(config);
    for (const o of agentRbac(ns)) await admin.apply(o);
    // Authenticate exactly as the agent does in its pod: a ServiceAccount token (TokenRequest API), mounted as
    // files and read by ClusterConfig.inCluster() — no admin certificate, no impersonation.
    const tokenRequest = await core.createNamespacedServiceAccountToken({
      name: 'kedge-agent',
      namespace: ns,
      body: { spec: { audiences: [], expirationSeconds: 3600 } },
    });
    const dir = await mkdtemp(join(tmpdir(), 'kedge-sa-'));
    try {
      await writeFile(join(dir, 'token'), tokenRequest.status?.token ?? '');
      await writeFile(join(dir, 'ca.crt'), config.ca ?? '');
      await writeFile(join(dir, 'namespace'), ns);
      const url = new URL(config.server);
      const inCluster = ClusterConfig.inCluster({ dir, env: { KUBERNETES_SERVICE_HOST: url.hostname, KUBERNETES_SERVICE_PORT: url.port } });
      expect(inCluster).toMatchObject({ namespace: ns, cert: undefined, impersonate: undefined });
      await start(ns, { config: inCluster });
      await putEdgeDeployment(ns, { modules: { a: mod('a:1', {}, { ExposedPorts: { '80/tcp': {} }, HostConfig: { Binds: ['v:/v'] } }) } });
      await eventually(async () => expect((await statusOf(ns)).phase).toBe('Ready'), { timeoutMs: 60_000 });
      // The Role covers Events too (written in the background, so a missing permission would only be logged).
      await eventually(async () => {
        const events = (await core.listNamespacedEvent({ namespace: ns })).items;
        expect(events.find((e) => e.involvedObject.kind === 'EdgeDeployment' && e.reason === 'Ready')?.source?.component).toBe('kedge-agent');
      });
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

