import { readFile, statfs } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import type { Command } from 'commander';
import { agentRbac } from '@kedge/agent';
import { ClusterConfig, ClusterConfigError, HttpStatusError, KubeTransport, createKubeClient, type KubeClient, type KubernetesObject } from '@kedge/kube';
import { EdgeDeploymentResource } from '@kedge/manifest';
import { parseConnectionString } from '@kedge/protocol';
import { CREDENTIALS_SECRET } from './install.js';
import { HubOutcome, checkHubCredentials } from './check-hub.js';

/** One diagnosis: `fix` says what to do when it failed. */
export interface CheckResult {
  readonly check: string;
  readonly ok: boolean;
  readonly detail: string;
  readonly fix?: string;
}

interface CheckContext {
  readonly kube: KubeClient;
  readonly transport: KubeTransport;
  readonly namespace: string;
  readonly storePath: string;
  readonly hubAddress?: string;
  /** PEM of the hub's CA, trusted besides the system roots. */
  readonly hubCa?: string;
  readonly timeoutMs: number;
}

type Check = (ctx: CheckContext, state: { connectionString?: Map<string, string> }) => Promise<Omit<CheckResult, 'check'>>;

const MAX_SKEW_MS = 60_000;
const MIN_FREE_BYTES = 100 * 1024 * 1024;

const checks: Record<string, Check> = {
  crd: async ({ kube }) => {
    const crd = await kube.get<KubernetesObject & { status?: { conditions?: { type: string; status: string }[] } }>('apiextensions.k8s.io/v1', 'CustomResourceDefinition', undefined, `${EdgeDeploymentResource.plural}.${EdgeDeploymentResource.group}`);
    if (!crd) return { ok: false, detail: 'CRD edgedeployments.kedge.io is missing', fix: 'helm install kedge-crds deploy/helm/kedge-crds (or: kedge crds | kubectl apply -f -), as cluster admin' };
    const established = crd.status?.conditions?.some((c) => c.type === 'Established' && c.status === 'True');
    return established ? { ok: true, detail: 'edgedeployments.kedge.io established' } : { ok: false, detail: 'CRD not Established', fix: 'kubectl describe crd edgedeployments.kedge.io' };
  },
  credentials: async ({ kube, namespace }, state) => {
    const s = await kube.get<KubernetesObject & { data?: Record<string, string> }>('v1', 'Secret', namespace, CREDENTIALS_SECRET);
    const fix = `reinstall the device chart with --set connectionString=… (Secret ${CREDENTIALS_SECRET}, key connectionString)`;
    if (!s) return { ok: false, detail: `Secret ${CREDENTIALS_SECRET} is missing`, fix };
    const cs = parseConnectionString(Buffer.from(s.data?.['connectionString'] ?? '', 'base64').toString('utf8'));
    const key = cs.get('SharedAccessKey') ?? '';
    if (!cs.get('HostName') || !cs.get('DeviceId') || Buffer.from(key, 'base64').length < 16) {
      return { ok: false, detail: 'not a device connection string (HostName, DeviceId, SharedAccessKey)', fix };
    }
    state.connectionString = cs;
    return { ok: true, detail: `device ${cs.get('DeviceId') ?? ''} at ${cs.get('HostName') ?? ''}` };
  },
  rbac: async ({ transport, namespace, timeoutMs }) => {
    const user = `system:serviceaccount:${namespace}:kedge-agent`;
    const denied: string[] = [];
    const role = agentRbac(namespace)[1];
    for (const rule of role.rules ?? []) {
      for (const resource of rule.resources ?? []) {
        for (const verb of rule.verbs) {
          const [res, sub] = resource.split('/');
          const review = (await transport.request('POST', '/apis/authorization.k8s.io/v1/subjectaccessreviews', {
            timeoutMs,
            body: {
              apiVersion: 'authorization.k8s.io/v1',
              kind: 'SubjectAccessReview',
              spec: { user, groups: ['system:serviceaccounts', `system:serviceaccounts:${namespace}`], resourceAttributes: { namespace, verb, group: rule.apiGroups?.[0] ?? '', resource: res, ...(sub ? { subresource: sub } : {}) } },
            },
          })) as { status?: { allowed?: boolean } };
          if (!review.status?.allowed) denied.push(`${verb} ${resource}`);
        }
      }
    }
    return denied.length === 0
      ? { ok: true, detail: `${user} has every right the agent needs` }
      : { ok: false, detail: `${user} may not: ${denied.slice(0, 6).join(', ')}${denied.length > 6 ? ` (+${denied.length - 6})` : ''}`, fix: `kedge agent rbac -n ${namespace} | kubectl apply -f - (or reinstall the device chart)` };
  },
  agent: async ({ kube, namespace }) => {
    const d = await kube.get<KubernetesObject & { status?: { availableReplicas?: number }; spec?: { replicas?: number } }>('apps/v1', 'Deployment', namespace, 'kedge-agent');
    if (!d) return { ok: false, detail: 'Deployment kedge-agent is missing', fix: 'reinstall the device chart' };
    const available = d.status?.availableReplicas ?? 0;
    return available > 0 ? { ok: true, detail: `${available}/${d.spec?.replicas ?? 1} replicas available` } : { ok: false, detail: 'no agent replica available', fix: `kubectl -n ${namespace} describe deployment kedge-agent; kubectl -n ${namespace} logs deployment/kedge-agent` };
  },
  hub: async ({ hubAddress, hubCa, timeoutMs }, state) => {
    const cs = state.connectionString;
    if (!cs) return { ok: false, detail: 'no credentials to find the hub with', fix: 'fix the credentials check first' };
    const [addr, port] = hubAddress ? hubAddress.split(/:(?=\d+$)/) : [];
    const r = await checkHubCredentials({
      hostName: cs.get('HostName') ?? '',
      deviceId: cs.get('DeviceId') ?? '',
      sharedAccessKey: cs.get('SharedAccessKey') ?? '',
      ...(addr ? { address: addr } : {}),
      ...(port ? { port: Number(port) } : {}),
      ...(hubCa !== undefined ? { ca: hubCa } : {}),
      timeoutMs,
    });
    return { ok: r.outcome === HubOutcome.Ok, detail: r.outcome === HubOutcome.Ok ? r.detail : `${r.outcome}: ${r.detail}`, ...(r.fix ? { fix: r.fix } : {}) };
  },
  'edge-hub': async ({ kube, namespace }) => {
    const eds = await kube.list<KubernetesObject & { status?: { modules?: Record<string, { runtimeStatus?: string }> } }>(EdgeDeploymentResource.apiVersion, EdgeDeploymentResource.kind, namespace);
    const status = eds.map((e) => e.status?.modules?.['edgeHub']?.runtimeStatus).find((s) => s !== undefined);
    return status === 'running' ? { ok: true, detail: 'edgeHub running' } : { ok: false, detail: `edgeHub is ${status ?? 'not reported'}`, fix: `kubectl -n ${namespace} get edep -o yaml; kubectl -n ${namespace} logs deployment/edgehub` };
  },
  clock: async ({ transport, namespace, timeoutMs }) => {
    // Any answer carries the apiserver's Date header; a 404 for a name that cannot exist is the cheapest one.
    let date: string | undefined;
    const t0 = Date.now();
    try {
      await transport.request('GET', `/api/v1/namespaces/${encodeURIComponent(namespace)}/configmaps/kedge-check--clock`, { timeoutMs });
    } catch (e) {
      if (!(e instanceof HttpStatusError)) throw e;
      const h = e.headers['date'];
      date = Array.isArray(h) ? h[0] : h;
    }
    if (!date) return { ok: false, detail: 'the apiserver sent no Date header', fix: 'compare `date -u` with the cluster nodes by hand' };
    const skew = Date.parse(date) - (t0 + Date.now()) / 2;
    // The Date header has a 1 s resolution.
    return Math.abs(skew) <= MAX_SKEW_MS
      ? { ok: true, detail: `within ${Math.ceil(Math.abs(skew) / 1000) + 1} s of the apiserver` }
      : { ok: false, detail: `${Math.round(skew / 1000)} s off the apiserver`, fix: 'synchronise the clock (chrony/systemd-timesyncd): SAS tokens and certificates depend on it' };
  },
  disk: async ({ storePath }) => {
    const s = await statfs(storePath);
    const free = s.bavail * s.bsize;
    const share = s.blocks > 0 ? s.bavail / s.blocks : 0;
    const mib = Math.floor(free / 1024 / 1024);
    return free >= MIN_FREE_BYTES && share >= 0.1
      ? { ok: true, detail: `${mib} MiB free (${Math.round(share * 100)}%) at ${storePath}` }
      : { ok: false, detail: `only ${mib} MiB (${Math.round(share * 100)}%) free at ${storePath}`, fix: 'free space or grow the volume of the edge hub store' };
  },
};

/** Runs the named checks in order; a check that throws is a failure with its error. */
export async function runChecks(ctx: CheckContext, names: readonly string[] = Object.keys(checks)): Promise<CheckResult[]> {
  const state: { connectionString?: Map<string, string> } = {};
  const out: CheckResult[] = [];
  for (const name of names) {
    const check = checks[name];
    if (!check) continue;
    try {
      out.push({ check: name, ...(await check(ctx, state)) });
    } catch (e) {
      out.push({ check: name, ok: false, detail: (e as Error).message.slice(0, 300), fix: 'see the detail; is the cluster reachable with these credentials?' });
    }
  }
  return out;
}

function table(results: readonly CheckResult[]): string {
  const w = Math.max(5, ...results.map((r) => r.check.length));
  const lines = [`${'CHECK'.padEnd(w)}  RESULT  DETAIL`];
  for (const r of results) {
    lines.push(`${r.check.padEnd(w)}  ${(r.ok ? 'ok' : 'FAIL').padEnd(6)}  ${r.detail}`);
    if (!r.ok && r.fix) lines.push(`${''.padEnd(w)}          fix: ${r.fix}`);
  }
  return `${lines.join('\n')}\n`;
}

/** Registers `kedge check`. */
export function registerCheckCommands(program: Command): void {
  program
    .command('check')
    .description('Diagnose an installed device: CRD, credentials, RBAC, agent, hub (reachable, trusted, accepts the credentials), edge hub, clock, disk (exit 1 on a failure)')
    .requiredOption('-n, --namespace <ns>', "the device's namespace")
    .option('--kubeconfig <file>', 'kubeconfig (default: $KUBECONFIG, the pod ServiceAccount, ~/.kube/config)')
    .option('--context <name>', 'kubeconfig context')
    .option('--store-path <dir>', 'where the edge hub store lives (disk space check)', tmpdir())
    .option('--hub-address <host:port>', 'dial the hub here instead of <HostName>:8883')
    .option('--hub-ca <file>', "the hub's CA certificate (PEM), trusted besides the system's roots")
    .option('--skip <checks>', `comma-separated checks to skip (${Object.keys(checks).join(', ')})`, '')
    .option('--json', 'print the results as JSON')
    .action(async (opts: { namespace: string; kubeconfig?: string; context?: string; storePath: string; hubAddress?: string; hubCa?: string; skip: string; json?: boolean }) => {
      let hubCa: string | undefined;
      try {
        hubCa = opts.hubCa === undefined ? undefined : await readFile(opts.hubCa, 'utf8');
      } catch (e) {
        process.stderr.write(`kedge check: cannot read --hub-ca ${opts.hubCa ?? ''} (${(e as NodeJS.ErrnoException).code ?? 'error'})\n`);
        process.exitCode = 2;
        return;
      }
      let config: ClusterConfig;
      try {
        config = ClusterConfig.load({ ...(opts.kubeconfig ? { kubeconfig: opts.kubeconfig } : {}), ...(opts.context ? { context: opts.context } : {}) });
      } catch (e) {
        if (!(e instanceof ClusterConfigError)) throw e;
        process.stderr.write(`kedge check: ${e.message}\n`);
        process.exitCode = 2;
        return;
      }
      const skip = new Set(opts.skip.split(',').map((s) => s.trim()).filter(Boolean));
      const results = await runChecks(
        { kube: createKubeClient(config, { requestTimeoutMs: 10_000 }), transport: KubeTransport.for(config), namespace: opts.namespace, storePath: opts.storePath, timeoutMs: 5_000, ...(opts.hubAddress ? { hubAddress: opts.hubAddress } : {}), ...(hubCa !== undefined ? { hubCa } : {}) },
        Object.keys(checks).filter((c) => !skip.has(c)),
      );
      process.stdout.write(opts.json ? `${JSON.stringify(results, null, 2)}\n` : table(results));
      if (results.some((r) => !r.ok)) process.exitCode = 1;
    });
}
