/**
 * Smoke suite for the test control plane: every behaviour the Kedge controller tests rely on, against the real
 * apiserver + kcm + scheduler + kwok started by the `cluster` project's global setup. Nothing here connects to
 * anything but the apiserver on 127.0.0.1 (ClusterIPs and pod IPs are asserted, never dialled).
 */
import {
  ApiextensionsV1Api, AppsV1Api, CoreV1Api, CustomObjectsApi, KubeConfig, RbacAuthorizationV1Api,
  type V1Pod, type V1PodTemplate,
} from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import {
  apiStatus, compactEtcd, createTestNamespace, etcdUrlForTests, eventually, getPodSummary, kubeConfigForTests, listPodSummaries, setFakePodLogs,
  simulateAnnotations, simulateLabels, watchWithRelist, withNamespace, type SimulateMode, type TestNamespace,
} from './index.js';

const kc = kubeConfigForTests(inject('kedgeKubeconfig'));
const core = kc.makeApiClient(CoreV1Api);
const apps = kc.makeApiClient(AppsV1Api);

function pod(name: string, mode?: SimulateMode, annotations: Record<string, string> = {}): V1Pod {
  return {
    metadata: { name, labels: { app: name, ...(mode ? simulateLabels(mode) : {}) }, annotations },
    spec: { containers: [{ name: 'main', image: 'registry.invalid/kedge/sim:1' }] },
  };
}

describe('test control plane', () => {
  let ns: TestNamespace;
  beforeAll(async () => {
    ns = await createTestNamespace(kc, 'smoke');
  });
  afterAll(async () => {
    await ns.cleanup();
  });

  it('is a real Kubernetes 1.36 apiserver on loopback with a Ready fake node', async () => {
    expect(kc.getCurrentCluster()?.server).toMatch(/^https:\/\/127\.0\.0\.1:\d+$/);
    const nodes = await core.listNode();
    expect(nodes.items.length).toBeGreaterThan(0);
    for (const n of nodes.items) {
      expect(n.status?.conditions?.find((c) => c.type === 'Ready')?.status).toBe('True');
      // The apiserver reaches kwok's kubelet endpoint through the node's InternalIP: it must be loopback.
      expect(n.status?.addresses?.find((a) => a.type === 'InternalIP')?.address).toBe('127.0.0.1');
    }
  });

  it('creates a CRD and a custom resource', async () => {
    const ext = kc.makeApiClient(ApiextensionsV1Api);
    const group = `smoke${Date.now().toString(36)}.kedge.io`;
    const name = `widgets.${group}`;
    await ext.createCustomResourceDefinition({
      body: {
        metadata: { name },
        spec: {
          group, scope: 'Namespaced',
          names: { plural: 'widgets', singular: 'widget', kind: 'Widget' },
          versions: [{
            name: 'v1', served: true, storage: true, subresources: { status: {} },
            schema: { openAPIV3Schema: { type: 'object', properties: { spec: { type: 'object', properties: { size: { type: 'integer' } } }, status: { type: 'object', x_kubernetes_preserve_unknown_fields: true } } } },
          }],
        },
      },
    });
    try {
      await eventually(async () => {
        const crd = await ext.readCustomResourceDefinition({ name });
        return crd.status?.conditions?.some((c) => c.type === 'Established' && c.status === 'True') === true;
      });
      const co = kc.makeApiClient(CustomObjectsApi);
      const created = (await eventually(() => co.createNamespacedCustomObject({
        group, version: 'v1', namespace: ns.name, plural: 'widgets',
        body: { apiVersion: `${group}/v1`, kind: 'Widget', metadata: { name: 'w1' }, spec: { size: 3 } },
      }))) as { metadata: { uid: string }; spec: { size: number } };
      expect(created.spec.size).toBe(3);
      // Structural schema pruning and validation are real: a string size is rejected with 422.
      const bad = await co.createNamespacedCustomObject({
        group, version: 'v1', namespace: ns.name, plural: 'widgets',
        body: { apiVersion: `${group}/v1`, kind: 'Widget', metadata: { name: 'w2' }, spec: { size: 'big' } },
      }).then(() => undefined, (err: unknown) => apiStatus(err));
      expect(bad).toBe(422);
    } finally {
      await ext.deleteCustomResourceDefinition({ name });
    }
  });

  it('runs a Deployment: ReplicaSet, scheduling, Running/Ready pod, status; garbage collection', async () => {
    await apps.createNamespacedDeployment({
      namespace: ns.name,
      body: {
        metadata: { name: 'web' },
        spec: {
          replicas: 2, selector: { matchLabels: { app: 'web' } },
          template: { metadata: { labels: { app: 'web' } }, spec: { containers: [{ name: 'web', image: 'registry.invalid/web:1' }] } },
        },
      },
    });
    const dep = await eventually(async () => {
      const d = await apps.readNamespacedDeployment({ name: 'web', namespace: ns.name });
      expect(d.status?.readyReplicas).toBe(2);
      expect(d.status?.availableReplicas).toBe(2);
      return d;
    });
    expect(dep.status?.observedGeneration).toBe(dep.metadata?.generation);
    const pods = await listPodSummaries(kc, ns.name, 'app=web');
    expect(pods).toHaveLength(2);
    for (const p of pods) {
      expect(p).toMatchObject({ phase: 'Running', ready: true, nodeName: expect.stringMatching(/^kwok-node-/) as unknown });
      expect(p.podIP).toMatch(/^127\./); // kwok --cidr=127.100.0.0/16: even a pod IP is loopback
      expect(p.containers[0]).toMatchObject({ state: 'running', ready: true, restartCount: 0 });
    }
    // The garbage collector deletes the ReplicaSet and the pods (kwok's pod-delete stage plays the kubelet).
    await apps.deleteNamespacedDeployment({ name: 'web', namespace: ns.name, body: { propagationPolicy: 'Foreground' } });
    await eventually(async () => expect(await listPodSummaries(kc, ns.name, 'app=web')).toHaveLength(0));
  });

  it('simulates CrashLoopBackOff with a growing restartCount', async () => {
    await core.createNamespacedPod({ namespace: ns.name, body: pod('crasher', 'crashloop', simulateAnnotations({ exitCode: 137 })) });
    const first = await eventually(async () => {
      const s = await getPodSummary(kc, ns.name, 'crasher');
      expect(s.containers[0]?.restartCount).toBeGreaterThanOrEqual(1);
      return s;
    });
    expect(first).toMatchObject({ phase: 'Running', ready: false });
    expect(first.containers[0]).toMatchObject({ state: 'waiting', reason: 'CrashLoopBackOff', exitCode: 137 });
    const n = first.containers[0]?.restartCount ?? 0;
    await eventually(async () => {
      expect((await getPodSummary(kc, ns.name, 'crasher')).containers[0]?.restartCount).toBeGreaterThan(n + 1);
    });
  });

  it('simulates a failed pod and a pod stuck in Pending', async () => {
    await core.createNamespacedPod({ namespace: ns.name, body: pod('failer', 'fail', simulateAnnotations({ exitCode: 3, reason: 'Error' })) });
    await core.createNamespacedPod({ namespace: ns.name, body: pod('stuck', 'pending', simulateAnnotations({ reason: 'ImagePullBackOff' })) });
    const failed = await eventually(async () => {
      const s = await getPodSummary(kc, ns.name, 'failer');
      expect(s.phase).toBe('Failed');
      return s;
    });
    expect(failed.containers[0]).toMatchObject({ state: 'terminated', exitCode: 3, reason: 'Error', ready: false });
    const stuck = await eventually(async () => {
      const s = await getPodSummary(kc, ns.name, 'stuck');
      expect(s.containers[0]?.reason).toBe('ImagePullBackOff');
      return s;
    });
    expect(stuck).toMatchObject({ phase: 'Pending', ready: false, nodeName: 'kwok-node-0' });
  });

  it('allocates a ClusterIP for a Service and binds a PVC (never dialled)', async () => {
    const svc = await core.createNamespacedService({
      namespace: ns.name,
      body: { metadata: { name: 'svc' }, spec: { selector: { app: 'x' }, ports: [{ port: 80, targetPort: 8080 }] } },
    });
    expect(svc.spec?.clusterIP).toMatch(/^10\.0\.\d+\.\d+$/); // --service-cluster-ip-range=10.0.0.0/16
    await core.createNamespacedPersistentVolumeClaim({
      namespace: ns.name,
      body: { metadata: { name: 'data' }, spec: { accessModes: ['ReadWriteOnce'], resources: { requests: { storage: '1Gi' } } } },
    });
    const pvc = await eventually(async () => {
      const c = await core.readNamespacedPersistentVolumeClaim({ name: 'data', namespace: ns.name });
      expect(c.status?.phase).toBe('Bound'); // default StorageClass kwok-volume + kwok's pvc-provision stage
      return c;
    });
    expect(pvc.spec?.storageClassName).toBe('kwok-volume');
  });

  it('enforces RBAC: a ServiceAccount token is denied in another namespace', async () => {
    const rbac = kc.makeApiClient(RbacAuthorizationV1Api);
    await core.createNamespacedServiceAccount({ namespace: ns.name, body: { metadata: { name: 'reader' } } });
    await rbac.createNamespacedRole({
      namespace: ns.name,
      body: { metadata: { name: 'cm-reader' }, rules: [{ apiGroups: [''], resources: ['configmaps'], verbs: ['get', 'list'] }] },
    });
    await rbac.createNamespacedRoleBinding({
      namespace: ns.name,
      body: {
        metadata: { name: 'cm-reader' },
        roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: 'cm-reader' },
        subjects: [{ kind: 'ServiceAccount', name: 'reader', namespace: ns.name }],
      },
    });
    const tr = await core.createNamespacedServiceAccountToken({
      name: 'reader', namespace: ns.name, body: { spec: { audiences: [], expirationSeconds: 600 } },
    });
    const token = tr.status?.token;
    expect(token).toBeTruthy();
    const saKc = new KubeConfig();
    const cluster = kc.getCurrentCluster();
    if (!cluster) throw new Error('no cluster in kubeconfig');
    saKc.loadFromOptions({
      clusters: [cluster], users: [{ name: 'reader', token }],
      contexts: [{ name: 'reader', cluster: cluster.name, user: 'reader' }], currentContext: 'reader',
    });
    const saCore = saKc.makeApiClient(CoreV1Api);
    await eventually(() => saCore.listNamespacedConfigMap({ namespace: ns.name })); // allowed by the RoleBinding
    await withNamespace(kc, async (other) => {
      const status = await saCore.listNamespacedConfigMap({ namespace: other }).then(() => 200, (err: unknown) => apiStatus(err));
      expect(status).toBe(403);
    }, 'smoke-other');
  });

  it('serves pod logs through pods/log from kwok on 127.0.0.1', async () => {
    await core.createNamespacedPod({ namespace: ns.name, body: pod('talker') });
    await core.createNamespacedPod({ namespace: ns.name, body: pod('plain') });
    await eventually(async () => expect((await getPodSummary(kc, ns.name, 'talker')).phase).toBe('Running'));
    await eventually(async () => expect((await getPodSummary(kc, ns.name, 'plain')).phase).toBe('Running'));
    // Every pod serves the cluster's default fake log...
    const plain = await core.readNamespacedPodLog({ name: 'plain', namespace: ns.name, container: 'main' });
    expect(plain).toContain('kedge fake container log');
    // ...unless a kwok Logs object gives it its own lines.
    await setFakePodLogs(kc, { namespace: ns.name, pod: 'talker', lines: ['temperature 21.5', 'temperature 21.7'] });
    await eventually(async () => {
      expect(await core.readNamespacedPodLog({ name: 'talker', namespace: ns.name, container: 'main' })).toBe('temperature 21.5\ntemperature 21.7\n');
    });
    const tail = await core.readNamespacedPodLog({ name: 'talker', namespace: ns.name, container: 'main', tailLines: 1 });
    expect(tail).toBe('temperature 21.7\n');
  });

  it('recovers a watch from 410 Gone (etcd compaction) by relisting and rewatching', async () => {
    // PodTemplates bypass the apiserver's watch cache (see control-plane.ts), so this watch is served by etcd.
    const tpl = (name: string): V1PodTemplate => ({
      metadata: { name }, template: { spec: { containers: [{ name: 'c', image: 'registry.invalid/x:1' }] } },
    });
    await core.createNamespacedPodTemplate({ namespace: ns.name, body: tpl('before') });
    const oldRv = (await core.listNamespacedPodTemplate({ namespace: ns.name })).metadata?.resourceVersion;
    expect(oldRv).toBeTruthy();
    // 1. Move history at least two revisions past oldRv (a watch from oldRv starts at oldRv+1, and compacting at
    //    revision R keeps R), then 2. compact etcd: the events after oldRv are gone for good.
    for (const v of ['1', '2']) {
      await core.patchNamespacedPodTemplate({
        name: 'before', namespace: ns.name, body: [{ op: 'add', path: '/metadata/labels', value: { v } }],
      });
    }
    await compactEtcd(etcdUrlForTests(inject('kedgeKubeconfig')));
    const seen = new Set<string>();
    const listed: string[][] = [];
    // 3. Watching from oldRv gets 410; the helper relists and rewatches from the list's resourceVersion.
    const w = watchWithRelist<V1PodTemplate>(kc, {
      path: `/api/v1/namespaces/${ns.name}/podtemplates`,
      list: () => core.listNamespacedPodTemplate({ namespace: ns.name }),
      resourceVersion: oldRv,
      onList: (items) => listed.push(items.map((i) => `${i.metadata?.name}:${i.metadata?.labels?.v ?? '1'}`)),
      onEvent: (type, obj) => seen.add(`${type}:${obj.metadata?.name}`),
    });
    try {
      await eventually(() => expect(w.gone).toBe(1));
      await eventually(() => expect(listed).toEqual([['before:2']])); // the relist is the new truth
      // 4. The new watch delivers events again.
      await core.createNamespacedPodTemplate({ namespace: ns.name, body: tpl('after') });
      await eventually(() => expect(seen.has('ADDED:after')).toBe(true));
      expect(w.gone).toBe(1);
      expect(w.lists).toBe(1);
    } finally {
      w.stop();
    }
  });
});
