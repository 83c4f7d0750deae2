import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseAllDocuments } from 'yaml';
import { pino } from 'pino';
import { agentRbac, DEFAULT_EDGE_DEPLOYMENT, resolveEdgeDeploymentName, toDnsLabel } from '@kedge/agent';
import { ClusterConfig, createKubeClient, type KubeClient, type KubernetesObject } from '@kedge/kube';
import { eventually, kubeconfigPathForTests } from '@kedge/testing';
import { registerCheckCommands } from './check.js';
import { captureOutput, inProcessKedge } from '../test-support/capture.js';

const captured = captureOutput();
const kedge = inProcessKedge(registerCheckCommands);

const repo = new URL('../../../../', import.meta.url).pathname;
const home = mkdtempSync(join(tmpdir(), 'kedge-helm-'));
let helm: string;
let kube: KubeClient;
const ns = `helm-dev-${Date.now().toString(36)}`;

/** Runs the pinned helm (testenv/helm.sh builds it from Go modules once, then it is cached) against the test cluster. */
const run = (...args: string[]): string =>
  execFileSync(helm, [...args, '--kubeconfig', kubeconfigPathForTests()], {
    cwd: repo,
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, HELM_CACHE_HOME: join(home, 'cache'), HELM_CONFIG_HOME: join(home, 'config'), HELM_DATA_HOME: join(home, 'data') },
  });

beforeAll(() => {
  helm = execFileSync('bash', [join(repo, 'testenv/helm.sh')], { encoding: 'utf8', timeout: 1_500_000 }).trim();
  kube = createKubeClient(ClusterConfig.fromFiles([kubeconfigPathForTests()]));
}, 1_600_000);
afterAll(async () => {
  try {
    run('uninstall', 'dev', '--namespace', 'default', '--wait');
  } catch {
    // Not installed (an earlier failure): nothing to remove.
  }
  await kube.delete('v1', 'Namespace', undefined, ns).catch(() => undefined);
  rmSync(home, { recursive: true, force: true });
});

// 33 bytes: base64 without padding, so helm's --set needs no escaping.
const connectionString = `HostName=hub.example.com;DeviceId=Dev-1;SharedAccessKey=${Buffer.alloc(33, 7).toString('base64')}`;
const deviceValues = ['--set', 'deviceId=Dev-1', '--set', `connectionString=${connectionString}`, '--set', `namespace.name=${ns}`];

describe('the Helm charts', () => {
  it('render: a device needs its id and credentials; the Role is the one `kedge agent rbac` prints', () => {
    expect(() => run('template', 'dev', 'deploy/helm/kedge-device')).toThrow(/deviceId is required/);
    const docs = parseAllDocuments(run('template', 'dev', 'deploy/helm/kedge-device', ...deviceValues)).map((d) => d.toJS() as KubernetesObject & { rules?: unknown });
    expect(docs.map((d) => d.kind).sort()).toEqual(['Deployment', 'EdgeDeployment', 'Namespace', 'Role', 'RoleBinding', 'Secret', 'Service', 'ServiceAccount']);
    expect(docs.find((d) => d.kind === 'Role')?.rules).toEqual(agentRbac(ns)[1].rules);
    const crd = parseAllDocuments(run('template', 'crds', 'deploy/helm/kedge-crds')).map((d) => d.toJS() as KubernetesObject);
    expect(crd.map((d) => `${d.kind}/${d.metadata?.name}`)).toEqual(['CustomResourceDefinition/edgedeployments.kedge.io']);
  });

  it('install into the control plane: the CRD chart takes over the CRD, the device chart creates its objects', async () => {
    // The test cluster already has the CRD (from deploy/crds): the chart adopts it instead of failing.
    run('upgrade', '--install', 'kedge-crds', 'deploy/helm/kedge-crds', '--namespace', 'default', '--take-ownership');
    run('install', 'dev', 'deploy/helm/kedge-device', '--namespace', 'default', ...deviceValues, '--set', 'agent.replicas=2');
    const namespace = await kube.get('v1', 'Namespace', undefined, ns);
    expect(namespace?.metadata?.labels?.['pod-security.kubernetes.io/enforce']).toBe('baseline');
    const role = await kube.get<KubernetesObject & { rules?: unknown }>('rbac.authorization.k8s.io/v1', 'Role', ns, 'kedge-agent');
    expect(role?.rules).toEqual(agentRbac(ns)[1].rules);
    const secret = await kube.get<KubernetesObject & { data?: Record<string, string> }>('v1', 'Secret', ns, 'kedge-device-credentials');
    expect(Buffer.from(secret?.data?.['connectionString'] ?? '', 'base64').toString()).toBe(connectionString);
    const d = await kube.get<KubernetesObject & { spec: { replicas: number; template: { spec: { containers: { command: string[] }[] } } } }>('apps/v1', 'Deployment', ns, 'kedge-agent');
    expect(d?.spec.replicas).toBe(2);
    expect(d?.spec.template.spec.containers[0]?.command.slice(0, 4)).toEqual(['node', '--lite-mode', '--max-semi-space-size=1', '--max-old-space-size=96']);
    const ed = await kube.get<KubernetesObject & { spec: { deviceId: string; systemModules: Record<string, unknown> } }>('kedge.io/v1alpha1', 'EdgeDeployment', ns, 'default');
    expect(ed?.spec.deviceId).toBe('Dev-1');
    expect(Object.keys(ed?.spec.systemModules ?? {})).toEqual(['edgeHub']);
    // Chart and agent agree: the agent (no --edge-deployment in the chart) writes the chart's EdgeDeployment, not
    // one named after the device id (which used to leave the chart's edge hub and the twin's modules apart).
    expect(toDnsLabel('Dev-1')).not.toBe(DEFAULT_EDGE_DEPLOYMENT);
    expect(await resolveEdgeDeploymentName(kube, ns, 'Dev-1', pino({ level: 'silent' }))).toBe('default');
    expect((await kube.get('v1', 'Service', ns, 'kedge-workload'))?.metadata?.name).toBe('kedge-workload');
    const probes = d?.spec.template.spec.containers[0] as unknown as { livenessProbe?: unknown; readinessProbe?: unknown };
    expect(probes.livenessProbe).toMatchObject({ httpGet: { path: '/healthz' } });
    expect(probes.readinessProbe).toMatchObject({ httpGet: { path: '/readyz' } });
    expect(run('list', '--namespace', 'default', '-q').split('\n')).toEqual(expect.arrayContaining(['dev', 'kedge-crds']));
  });

  it('kedge check passes on the installed device and fails clearly, saying what to do, when its Role is removed', async () => {
    // hub: the chart's connection string names a hub that does not exist here; edge-hub: kwok simulates pods, so
    // no agent really runs to report the edge hub's status. Both are exercised by the failing run below.
    const check = (...extra: string[]) => kedge('check', '-n', ns, '--kubeconfig', kubeconfigPathForTests(), '--json', ...extra);
    const results = async (...extra: string[]) => {
      const code = await check(...extra);
      return { code, results: JSON.parse(captured.out) as { check: string; ok: boolean; detail: string; fix?: string }[] };
    };
    await eventually(async () => {
      captured.reset();
      const r = await results('--skip', 'hub,edge-hub');
      expect(r.results.filter((x) => !x.ok)).toEqual([]);
      expect(r.code).toBe(0);
    }, { timeoutMs: 60_000 });
    expect(captured.out).toContain('"check": "rbac"');

    await kube.delete('rbac.authorization.k8s.io/v1', 'Role', ns, 'kedge-agent');
    captured.reset();
    const broken = await results('--hub-address', '127.0.0.1:1');
    expect(broken.code).toBe(1);
    const byName = new Map(broken.results.map((x) => [x.check, x]));
    expect(byName.get('rbac')).toMatchObject({ ok: false, fix: `kedge agent rbac -n ${ns} | kubectl apply -f - (or reinstall the device chart)` });
    expect(byName.get('rbac')?.detail).toContain('may not');
    expect(byName.get('hub')).toMatchObject({ ok: false, detail: expect.stringContaining('ECONNREFUSED') });
    expect(byName.get('crd')?.ok).toBe(true);
    // The table form says the same for a person.
    captured.reset();
    expect(await kedge('check', '-n', ns, '--kubeconfig', kubeconfigPathForTests(), '--skip', 'hub,edge-hub')).toBe(1);
    expect(captured.out).toMatch(/rbac\s+FAIL\s+system:serviceaccount/);
    expect(captured.out).toContain('fix: kedge agent rbac');
  });
});
