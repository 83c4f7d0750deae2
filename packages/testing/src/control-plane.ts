import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { readFileSync } from 'node:fs';
import { request } from 'node:https';
import { get as httpGet } from 'node:http';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { ApiextensionsV1Api, CoreV1Api, KubeConfig, StorageV1Api, type V1CustomResourceDefinition } from '@kubernetes/client-node';
import { parse } from 'yaml';
import { kwokModuleDir, repoRoot, resolveBinDir } from './binaries.js';
import { applyCrd } from './crds.js';
import { readResponse } from './http.js';
import { buildKwokConfig, criLog } from './kwok-config.js';
import { createPki, type Pki } from './pki.js';
import { isAlive, killNow, spawnLogged, stopProcess, type ProcessRecord, type SpawnedProcess } from './process.js';

/** Name of the kubeconfig context the harness writes; `KUBECONFIG` is only reused when its context has this name. */
export const TEST_CONTEXT = 'kedge-test';
/** File in the cluster directory that records what `stop`/`cluster:down` may kill. */
export const STATE_FILE = 'cluster.json';

export interface ControlPlaneOptions {
  /** Directory with etcd, kube-apiserver, kube-controller-manager, kube-scheduler, kwok. @default resolveBinDir() */
  binDir?: string;
  /** Directory for PKI, data, logs and the kubeconfig; created if absent and removed by `stop()`. @default a fresh mkdtemp under os.tmpdir() */
  dir?: string;
  /** Number of fake (kwok) nodes, named `kwok-node-<i>`. @default 1 */
  nodes?: number;
  /** Deadline for the whole start-up, readiness included. @default 180_000 */
  readyTimeoutMs?: number;
  /** Progress messages (one line each). @default no output */
  onProgress?: (message: string) => void;
  /**
   * `true` leaves the processes running when this Node process exits (the `cluster:up` CLI). Otherwise an exit hook
   * SIGKILLs them if `stop()` was never called, so a crashed test run leaks nothing.
   * @default false
   */
  detached?: boolean;
}

/** A running control plane. Everything listens on 127.0.0.1 on ports chosen at start. */
export interface ControlPlane {
  /** Absolute path of a kubeconfig (admin client certificate, group system:masters, context `kedge-test`). */
  readonly kubeconfigPath: string;
  readonly kubeConfig: KubeConfig;
  /** `https://127.0.0.1:<port>` */
  readonly server: string;
  /** `http://127.0.0.1:<port>` (etcd v3 JSON gateway; e.g. `/v3/kv/compaction`). */
  readonly etcdUrl: string;
  readonly dir: string;
  readonly nodeNames: readonly string[];
  readonly processes: readonly ProcessRecord[];
  /** Milliseconds from the call to "every node Ready, default ServiceAccount present". */
  readonly startupMs: number;
  /** Stops exactly the processes this control plane started (by pid/process group), waits for them, removes `dir`. */
  stop(): Promise<void>;
}

/** What {@link STATE_FILE} holds. */
export interface ClusterState {
  readonly version: 1;
  readonly kubeconfigPath: string;
  readonly server: string;
  readonly etcdUrl: string;
  readonly processes: ProcessRecord[];
  readonly ownerPid: number;
}

const STOP_ORDER = ['kwok', 'kube-scheduler', 'kube-controller-manager', 'kube-apiserver', 'etcd'];

/** Reserves `n` distinct free TCP ports on 127.0.0.1 (all listeners are held open together, then released). */
export async function freePorts(n: number): Promise<number[]> {
  const servers: Server[] = [];
  try {
    for (let i = 0; i < n; i++) {
      const s = createServer();
      servers.push(s);
      await new Promise<void>((resolve, reject) => {
        s.once('error', reject);
        s.listen(0, '127.0.0.1', () => resolve());
      });
    }
    return servers.map((s) => {
      const a = s.address();
      if (a === null || typeof a === 'string') throw new Error('unexpected listener address');
      return a.port;
    });
  } finally {
    await Promise.all(servers.map((s) => new Promise<void>((resolve) => s.close(() => resolve()))));
  }
}

/** Last `lines` lines of a log file, for error messages. */
export function tailLog(file: string, lines = 30): string {
  try {
    return readFileSync(file, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
  } catch {
    return '(no log)';
  }
}

interface Tls {
  ca: Buffer;
  cert: Buffer;
  key: Buffer;
}

function httpsStatus(url: string, tls: Tls): Promise<{ status: number; body: string }> {
  return readResponse(request(url, { ...tls, timeout: 5_000, agent: false }));
}

function httpStatus(url: string): Promise<{ status: number; body: string }> {
  return readResponse(httpGet(url, { timeout: 5_000, agent: false }));
}

function kubeconfigYaml(server: string, pki: { ca: Buffer; cert: Buffer; key: Buffer }, clusterName: string): string {
  const b64 = (b: Buffer): string => b.toString('base64');
  return [
    'apiVersion: v1',
    'kind: Config',
    'clusters:',
    `- name: ${clusterName}`,
    '  cluster:',
    `    server: ${server}`,
    `    certificate-authority-data: ${b64(pki.ca)}`,
    'users:',
    '- name: kedge-admin',
    '  user:',
    `    client-certificate-data: ${b64(pki.cert)}`,
    `    client-key-data: ${b64(pki.key)}`,
    'contexts:',
    `- name: ${TEST_CONTEXT}`,
    `  context: {cluster: ${clusterName}, user: kedge-admin, namespace: default}`,
    `current-context: ${TEST_CONTEXT}`,
    '',
  ].join('\n');
}

/**
 * Starts a real control plane on loopback: etcd, kube-apiserver, kube-controller-manager, kube-scheduler and kwok
 * (fake nodes and pod lifecycles), with a throwaway PKI. Resolves once the apiserver is ready, every fake node is
 * Ready and the `default` ServiceAccount exists; rejects (after stopping whatever it started) on any failure, with
 * the tail of the failing component's log. Several control planes can run side by side.
 * @throws MissingBinariesError before starting anything if a binary is missing.
 */
export async function startControlPlane(options: ControlPlaneOptions = {}): Promise<ControlPlane> {
  const t0 = Date.now();
  const progress = options.onProgress ?? ((): void => undefined);
  const binDir = options.binDir ?? resolveBinDir();
  const kwokDir = kwokModuleDir();
  const deadline = t0 + (options.readyTimeoutMs ?? 180_000);
  const dir = options.dir ?? (await mkdtemp(join(tmpdir(), 'kedge-cp-')));
  await mkdir(join(dir, 'logs'), { recursive: true, mode: 0o700 });
  const procs: SpawnedProcess[] = [];
  const state = (): ClusterState => ({
    version: 1, kubeconfigPath: join(dir, 'kubeconfig'), server, etcdUrl, processes: procs.map(record), ownerPid: process.pid,
  });
  const record = (p: SpawnedProcess): ProcessRecord => ({ name: p.name, pid: p.pid, startTicks: p.startTicks, logFile: p.logFile });
  const exitHook = (): void => procs.forEach(killNow);
  if (!options.detached) process.on('exit', exitHook);

  const [etcdPort, etcdPeerPort, apiPort, kcmPort, schedPort, kwokPort] = (await freePorts(6)) as [number, number, number, number, number, number];
  const server = `https://127.0.0.1:${apiPort}`;
  const etcdUrl = `http://127.0.0.1:${etcdPort}`;
  const nodeNames = Array.from({ length: options.nodes ?? 1 }, (_, i) => `kwok-node-${i}`);

  let stopped: Promise<void> | undefined;
  const stop = (): Promise<void> => {
    stopped ??= (async () => {
      const byOrder = [...procs].sort((a, b) => STOP_ORDER.indexOf(a.name) - STOP_ORDER.indexOf(b.name));
      // kwok, the scheduler and kcm only talk to the apiserver: stop them together, then the apiserver, then etcd.
      const clients = byOrder.filter((p) => p.name !== 'kube-apiserver' && p.name !== 'etcd');
      await Promise.all(clients.map((p) => stopProcess(p)));
      for (const p of byOrder.filter((x) => !clients.includes(x))) await stopProcess(p);
      if (!options.detached) process.off('exit', exitHook);
      await rm(dir, { recursive: true, force: true });
    })();
    return stopped;
  };

  const start = async (name: string, args: string[]): Promise<SpawnedProcess> => {
    const p = spawnLogged(name, join(binDir, name), args, join(dir, 'logs', `${name}.log`));
    procs.push(p);
    await writeFile(join(dir, STATE_FILE), JSON.stringify(state(), null, 2));
    return p;
  };

  /** Polls `check` until it returns true; fails at the deadline or as soon as a started process has exited. */
  const waitFor = async (what: string, check: () => Promise<boolean>): Promise<void> => {
    let lastErr: unknown;
    for (let attempt = 0; ; attempt++) {
      const dead = procs.find((p) => p.hasExited());
      if (dead) throw new Error(`${dead.name} exited while waiting for ${what}; last log lines:\n${tailLog(dead.logFile)}`);
      try {
        if (await check()) return;
      } catch (err) {
        lastErr = err;
      }
      if (Date.now() > deadline) {
        const logs = procs.map((p) => `--- ${p.name} (${p.logFile})\n${tailLog(p.logFile, 15)}`).join('\n');
        throw new Error(`timed out waiting for ${what} (last error: ${String(lastErr)})\n${logs}`, { cause: lastErr });
      }
      await delay(Math.min(50 * 2 ** attempt, 500));
    }
  };

  try {
    progress(`control plane in ${dir} (binaries: ${binDir})`);
    const pki: Pki = await createPki(join(dir, 'pki'));
    const tls: Tls = { ca: await readFile(pki.caCert), cert: await readFile(pki.adminCert), key: await readFile(pki.adminKey) };
    const kubeconfigPath = join(dir, 'kubeconfig');
    await writeFile(kubeconfigPath, kubeconfigYaml(server, tls, `kedge-test-${randomBytes(3).toString('hex')}`), { mode: 0o600 });
    const adminKc = kubeconfigPath;

    const defaultLog = join(dir, 'kwok', 'default.log');
    await mkdir(join(dir, 'kwok'), { recursive: true });
    await writeFile(defaultLog, criLog(['kedge fake container log: this pod runs on a kwok node', 'no process is running behind it']));
    await writeFile(join(dir, 'kwok', 'kwok.yaml'), buildKwokConfig({
      kwokModuleDir: kwokDir, kedgeStagesDir: join(repoRoot(), 'testenv', 'kwok-stages'), defaultLogFile: defaultLog,
    }));

    progress('starting etcd');
    await start('etcd', [
      '--name=kedge-test', `--data-dir=${join(dir, 'etcd')}`,
      `--listen-client-urls=${etcdUrl}`, `--advertise-client-urls=${etcdUrl}`,
      `--listen-peer-urls=http://127.0.0.1:${etcdPeerPort}`, `--initial-advertise-peer-urls=http://127.0.0.1:${etcdPeerPort}`,
      `--initial-cluster=kedge-test=http://127.0.0.1:${etcdPeerPort}`,
      '--unsafe-no-fsync=true', '--quota-backend-bytes=2147483648', '--snapshot-count=10000', '--log-level=warn',
    ]);
    await waitFor('etcd /health', async () => {
      const r = await httpStatus(`${etcdUrl}/health`);
      return r.status === 200 && r.body.includes('"true"');
    });

    progress('starting kube-apiserver');
    await start('kube-apiserver', [
      `--etcd-servers=${etcdUrl}`,
      '--bind-address=127.0.0.1', '--advertise-address=127.0.0.1', `--secure-port=${apiPort}`,
      `--tls-cert-file=${pki.apiserverCert}`, `--tls-private-key-file=${pki.apiserverKey}`,
      `--client-ca-file=${pki.caCert}`,
      `--service-account-issuer=${server}`, `--service-account-key-file=${pki.saPub}`,
      `--service-account-signing-key-file=${pki.saKey}`,
      '--service-cluster-ip-range=10.0.0.0/16', // room for the controller benchmark's 2,000 Services
      '--authorization-mode=Node,RBAC', '--allow-privileged=true',
      // A loopback address is not a valid Endpoints address; kwokctl passes the same flag.
      '--endpoint-reconciler-type=none',
      // pods/log, exec and port-forward go to kwok's kubelet endpoint: node InternalIP 127.0.0.1, port = kwok's.
      `--kubelet-client-certificate=${pki.kubeletClientCert}`, `--kubelet-client-key=${pki.kubeletClientKey}`,
      `--kubelet-certificate-authority=${pki.caCert}`, '--kubelet-preferred-address-types=InternalIP',
      `--cert-dir=${join(dir, 'apiserver-certs')}`, '--profiling=false',
      // PodTemplates (unused by Kedge) bypass the watch cache, so a test can compact etcd and get a genuine
      // 410 Gone for an old resourceVersion; every other resource keeps the normal cached watch path.
      '--watch-cache-sizes=podtemplates#0',
    ]);
    await waitFor('kube-apiserver /readyz', async () => (await httpsStatus(`${server}/readyz`, tls)).status === 200);

    const kc = new KubeConfig();
    kc.loadFromFile(kubeconfigPath);
    const core = kc.makeApiClient(CoreV1Api);

    progress('installing the kwok Logs CRD and the kwok-volume StorageClass');
    const logsCrd = parse(await readFile(join(kwokDir, 'kustomize', 'crd', 'bases', 'kwok.x-k8s.io_logs.yaml'), 'utf8')) as V1CustomResourceDefinition;
    await applyCrd(kc, logsCrd, 'kwok.x-k8s.io_logs.yaml');
    await kc.makeApiClient(StorageV1Api).createStorageClass({
      body: {
        metadata: { name: 'kwok-volume', annotations: { 'storageclass.kubernetes.io/is-default-class': 'true' } },
        provisioner: 'kwok.x-k8s.io/volume', reclaimPolicy: 'Delete', volumeBindingMode: 'Immediate',
      },
    });
    await waitForCrdsEstablished(kc, [logsCrd.metadata?.name ?? 'logs.kwok.x-k8s.io'], deadline);

    const componentCommon = [
      `--kubeconfig=${adminKc}`, `--authentication-kubeconfig=${adminKc}`, `--authorization-kubeconfig=${adminKc}`,
      '--bind-address=127.0.0.1', '--leader-elect=false',
      // Above the default 20 QPS: a benchmark with 1,000 pods should measure Kedge, not the ReplicaSet controller.
      '--kube-api-qps=200', '--kube-api-burst=400',
      `--tls-cert-file=${pki.componentCert}`, `--tls-private-key-file=${pki.componentKey}`,
    ];
    progress('starting kube-controller-manager, kube-scheduler, kwok');
    await start('kube-controller-manager', [
      ...componentCommon, `--secure-port=${kcmPort}`,
      `--service-account-private-key-file=${pki.saKey}`, `--root-ca-file=${pki.caCert}`,
      `--cluster-signing-cert-file=${pki.caCert}`, `--cluster-signing-key-file=${pki.caKey}`,
      // '*' = every default controller, garbage collector and namespace deletion included.
      '--controllers=*', '--use-service-account-credentials=false', '--profiling=false',
    ]);
    await start('kube-scheduler', [...componentCommon, `--secure-port=${schedPort}`, '--profiling=false']);
    await start('kwok', [
      `--kubeconfig=${adminKc}`, `--config=${join(dir, 'kwok', 'kwok.yaml')}`,
      '--manage-all-nodes=true', '--cidr=127.100.0.0/16', '--node-ip=127.0.0.1',
      `--node-port=${kwokPort}`, `--server-address=127.0.0.1:${kwokPort}`,
      `--tls-cert-file=${pki.componentCert}`, `--tls-private-key-file=${pki.componentKey}`,
      '--node-lease-duration-seconds=40', '--enable-crds=Logs',
    ]);

    for (const name of nodeNames) {
      await core.createNode({
        body: {
          metadata: {
            name,
            annotations: { 'node.alpha.kubernetes.io/ttl': '0', 'kwok.x-k8s.io/node': 'fake' },
            labels: { 'kubernetes.io/hostname': name, 'kubernetes.io/os': 'linux', 'kubernetes.io/arch': 'amd64', type: 'kwok' },
          },
          status: {
            capacity: { cpu: '32', memory: '256Gi', pods: '110' },
            allocatable: { cpu: '32', memory: '256Gi', pods: '110' },
          },
        },
      });
    }
    await waitFor('kwok /healthz', async () => (await httpStatus(`http://127.0.0.1:${kwokPort}/healthz`)).status === 200);
    await waitFor('kube-scheduler /healthz', async () => (await httpsStatus(`https://127.0.0.1:${schedPort}/healthz`, tls)).status === 200);
    await waitFor('kube-controller-manager /healthz', async () => (await httpsStatus(`https://127.0.0.1:${kcmPort}/healthz`, tls)).status === 200);
    await waitFor(`node(s) ${nodeNames.join(', ')} Ready`, async () => {
      const nodes = await core.listNode();
      return nodeNames.every((n) => {
        const node = nodes.items.find((x) => x.metadata?.name === n);
        return node?.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True') === true;
      });
    });
    await waitFor('default ServiceAccount (kube-controller-manager)', async () => {
      await core.readNamespacedServiceAccount({ name: 'default', namespace: 'default' });
      return true;
    });
    const startupMs = Date.now() - t0;
    progress(`ready in ${(startupMs / 1000).toFixed(1)}s: ${server}`);
    return { kubeconfigPath, kubeConfig: kc, server, etcdUrl, dir, nodeNames, processes: procs.map(record), startupMs, stop };
  } catch (err) {
    await stop().catch(() => undefined);
    throw err;
  }
}

/** Polls until every named CRD has condition Established=True, or throws at `deadline` (epoch ms). */
export async function waitForCrdsEstablished(kc: KubeConfig, names: readonly string[], deadline: number): Promise<void> {
  const api = kc.makeApiClient(ApiextensionsV1Api);
  for (const name of names) {
    for (let attempt = 0; ; attempt++) {
      const crd = await api.readCustomResourceDefinition({ name });
      if (crd.status?.conditions?.some((c) => c.type === 'Established' && c.status === 'True')) break;
      if (Date.now() > deadline) throw new Error(`CRD ${name} not Established before the deadline`);
      await delay(Math.min(50 * 2 ** attempt, 500));
    }
  }
}

/**
 * Stops the processes recorded in `<dir>/cluster.json` (only those: pid + start time, process group) and removes
 * `dir`. Used by `cluster:down`, which runs in a different Node process than `cluster:up`.
 * @returns the names of the processes that were still running.
 */
export async function stopRecordedCluster(dir: string): Promise<string[]> {
  const st = JSON.parse(await readFile(join(dir, STATE_FILE), 'utf8')) as ClusterState;
  const running = st.processes.filter((p) => isAlive(p));
  const order = [...running].sort((a, b) => STOP_ORDER.indexOf(a.name) - STOP_ORDER.indexOf(b.name));
  for (const p of order) await stopProcess(p);
  await rm(dir, { recursive: true, force: true });
  return running.map((p) => p.name);
}

/**
 * Compacts etcd's history up to its current revision (through etcd's JSON gateway on 127.0.0.1), so any watch
 * from an older resourceVersion that reaches etcd gets `410 Gone`. Returns the compacted revision.
 */
export async function compactEtcd(etcdUrl: string): Promise<number> {
  const post = async (path: string, body: unknown): Promise<unknown> => {
    const res = await fetch(`${etcdUrl}${path}`, { method: 'POST', body: JSON.stringify(body) });
    if (!res.ok) throw new Error(`etcd ${path}: HTTP ${res.status} ${await res.text()}`);
    return res.json();
  };
  const status = (await post('/v3/maintenance/status', {})) as { header?: { revision?: string } };
  const revision = Number(status.header?.revision);
  if (!Number.isFinite(revision) || revision <= 0) throw new Error(`etcd returned no revision: ${JSON.stringify(status)}`);
  await post('/v3/kv/compaction', { revision: String(revision), physical: true });
  return revision;
}
