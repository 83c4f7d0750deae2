// EdgeDeployment controller benchmark, against a real control plane (etcd + kube-apiserver + kcm + scheduler + kwok)
// started by the test harness. For 1 device × 10 modules and 100 devices × 10 modules it measures:
//   (a) the time from creating the EdgeDeployments to every module pod Running, with `kedge agent run` (a separate
//       process, so its RSS can be read from /proc) reconciling them;
//   (b) the time for the very same objects (rendered by the controller's own render()) applied directly by one
//       client with server-side apply, to every pod Running;
// and prints (a)/(b). Targets: ratio ≤ 1.5, controller RSS < 100 MB at 100 devices.
// Sub-second cases are repeated (KEDGE_BENCH_ROUNDS, default 5 below 10 devices, else 1) and the medians compared:
// one sample of a 0.3 s apply varies by ±25%.
// Usage: npm run bench -- controller   (KEDGE_BENCH_DEVICES=1,100 to choose sizes)
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { setTimeout as delay } from 'node:timers/promises';
import { performance } from 'node:perf_hooks';
import { CoreV1Api, CustomObjectsApi } from '@kubernetes/client-node';
import { applyCrds, startControlPlane } from '../packages/testing/dist/index.js';
import { ClusterConfig, createKubeClient } from '../packages/kube/dist/index.js';
import { parseEdgeDeploymentSpec } from '../packages/manifest/dist/index.js';
import { defaultPolicy, render } from '../packages/agent/dist/index.js';

const root = fileURLToPath(new URL('..', import.meta.url));
const sizes = (process.env.KEDGE_BENCH_DEVICES ?? '1,100').split(',').map(Number);
const MODULES = 10;

const spec = (d) => ({
  deviceId: `bench-${d}`,
  modules: Object.fromEntries(
    Array.from({ length: MODULES }, (_, i) => [`module${i}`, { type: 'docker', settings: { image: `registry.example/m${i}:1.0`, createOptions: { Env: [`N=${i}`], ExposedPorts: { [`${8000 + i}/tcp`]: {} } } } }]),
  ),
  routes: { up: { route: 'FROM /messages/* INTO $upstream' } },
});

async function runningPods(core, prefix) {
  // resourceVersion 0: served from the apiserver's watch cache, so polling does not load etcd (or skew the result).
  const pods = await core.listPodForAllNamespaces({ labelSelector: 'app.kubernetes.io/managed-by=kedge-agent', resourceVersion: '0' });
  return pods.items.filter((p) => p.metadata?.namespace?.startsWith(prefix) && p.status?.phase === 'Running' && !p.metadata?.deletionTimestamp).length;
}

async function waitRunning(core, prefix, want, deadlineMs = 900_000) {
  const end = Date.now() + deadlineMs;
  for (;;) {
    const n = await runningPods(core, prefix);
    if (n >= want) return;
    if (Date.now() > end) throw new Error(`only ${n}/${want} pods Running after ${deadlineMs} ms`);
    // Fine polling for small cases (the list is served from the watch cache), coarse for large ones.
    await delay(want > 100 ? 1000 : 20);
  }
}

async function createNamespaces(core, prefix, n) {
  await Promise.all(Array.from({ length: n }, (_, i) => core.createNamespace({ body: { metadata: { name: `${prefix}${i}` } } })));
  // Pods need the namespace's default ServiceAccount (ServiceAccount admission).
  for (let i = 0; i < n; i++) {
    for (;;) {
      try { await core.readNamespacedServiceAccount({ name: 'default', namespace: `${prefix}${i}` }); break; } catch { await delay(100); }
    }
  }
}

function rssMb(pid) {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) / 1024 : NaN;
}

// kwok nodes hold 110 pods each, like real kubelets: enough nodes for both runs of every size.
const roundsFor = (n) => Number(process.env.KEDGE_BENCH_ROUNDS ?? (n < 10 ? 5 : 1));
const nodes = Math.ceil((2 * MODULES * sizes.reduce((a, n) => a + n * roundsFor(n), 0)) / 100) + 1;
const cp = await startControlPlane({ nodes, onProgress: (m) => console.log(`[cluster] ${m}`) });
// The CRD first (as the test setup applies it), then the agent; timing starts once its caches have synced.
await applyCrds(cp.kubeConfig, `${root}deploy/crds`);
const metricsPort = 20000 + (process.pid % 20000);
// The V8 flags the agent runs with on devices (docs/agent.md, "Memory"): no optimizing compiler, small heaps.
const agentFlags = (process.env.KEDGE_AGENT_NODE_FLAGS ?? '--lite-mode --max-semi-space-size=1 --max-old-space-size=96').split(' ').filter(Boolean);
console.log(`agent node flags: ${agentFlags.join(' ') || '(none)'}`);
const agent = spawn(process.execPath, [...agentFlags, `${root}packages/cli/dist/main.js`, 'agent', 'run', '--kubeconfig', cp.kubeconfigPath, '--metrics-port', String(metricsPort), '--workers', '4', '--log-level', 'error'], { stdio: ['ignore', 'inherit', 'inherit'] });
const stopAll = async () => {
  agent.kill('SIGTERM');
  await cp.stop();
};
process.once('SIGINT', () => void stopAll().then(() => process.exit(130)));
process.once('SIGTERM', () => void stopAll().then(() => process.exit(143)));
for (const end = Date.now() + 60_000; ; await delay(100)) {
  const ok = await fetch(`http://127.0.0.1:${metricsPort}/healthz`).then((r) => r.ok, () => false);
  if (ok) break;
  if (Date.now() > end) throw new Error('the agent did not become ready within 60 s');
}
try {
  const kc = cp.kubeConfig;
  const core = kc.makeApiClient(CoreV1Api);
  const custom = kc.makeApiClient(CustomObjectsApi);
  const kube = createKubeClient(ClusterConfig.fromFiles([cp.kubeconfigPath]));
  // Warm-up: the apiserver takes a moment before watches of a just-created CRD deliver events; time the controller,
  // not that. An empty EdgeDeployment whose status the agent writes proves the whole pipeline is live.
  await createNamespaces(core, 'warmup-', 1);
  await custom.createNamespacedCustomObject({ group: 'kedge.io', version: 'v1alpha1', namespace: 'warmup-0', plural: 'edgedeployments', body: { apiVersion: 'kedge.io/v1alpha1', kind: 'EdgeDeployment', metadata: { name: 'default' }, spec: {} } });
  for (const end = Date.now() + 60_000; ; await delay(100)) {
    const ed = await custom.getNamespacedCustomObject({ group: 'kedge.io', version: 'v1alpha1', namespace: 'warmup-0', plural: 'edgedeployments', name: 'default' });
    if (ed.status?.observedGeneration) break;
    if (Date.now() > end) throw new Error('the agent did not reconcile the warm-up EdgeDeployment within 60 s');
  }
  const results = [];
  const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
  for (const n of sizes) {
    const rounds = roundsFor(n);
    const ctl = [];
    const dir = [];
    let rss = 0;
    let peak = 0;
    let heapMb = NaN;
    for (let r = 0; r < rounds; r++) {
      const viaController = async () => {
        // (a) through the controller
        const pa = `ctl${n}-${r}-`;
        await createNamespaces(core, pa, n);
        const t0 = performance.now();
        await Promise.all(Array.from({ length: n }, (_, i) => custom.createNamespacedCustomObject({ group: 'kedge.io', version: 'v1alpha1', namespace: `${pa}${i}`, plural: 'edgedeployments', body: { apiVersion: 'kedge.io/v1alpha1', kind: 'EdgeDeployment', metadata: { name: 'default' }, spec: spec(i) } })));
        const sampler = setInterval(() => { peak = Math.max(peak, rssMb(agent.pid)); }, 250);
        await waitRunning(core, pa, n * MODULES);
        ctl.push(performance.now() - t0);
        // Steady state: statuses settle, then the controller idles with every object in its caches.
        await delay(rounds > 1 ? 2_000 : 10_000);
        clearInterval(sampler);
        rss = rssMb(agent.pid);
        peak = Math.max(peak, rss);
        const metrics = await fetch(`http://127.0.0.1:${metricsPort}/metrics`).then((res) => res.text());
        heapMb = Number(/^nodejs_heap_size_used_bytes (\S+)$/m.exec(metrics)?.[1] ?? NaN) / 1048576;
      };
      const direct = async () => {
        // (b) the same objects, applied directly with server-side apply by one client
        const pb = `dir${n}-${r}-`;
        await createNamespaces(core, pb, n);
        const objects = [];
        for (let i = 0; i < n; i++) {
          const parsed = parseEdgeDeploymentSpec(spec(i));
          if (!parsed.ok) throw new Error(JSON.stringify(parsed.error));
          const rendered = render({ owner: { name: 'default', namespace: `${pb}${i}`, uid: 'x' }, deviceId: `bench-${i}`, parsed: parsed.value, policy: defaultPolicy() });
          // No owner to point at: the direct client owns its objects itself.
          for (const o of rendered.objects) objects.push({ ...o, metadata: { ...o.metadata, ownerReferences: undefined } });
        }
        const t1 = performance.now();
        for (const o of objects) await kube.apply(o, { fieldManager: 'bench-direct' });
        await waitRunning(core, pb, n * MODULES);
        dir.push(performance.now() - t1);
        await delay(rounds > 1 ? 2_000 : 0); // settle, as after (a)
      };
      // Alternate which goes first, so neither always runs on a cluster warmed (or loaded) by the other.
      if (r % 2 === 0) { await viaController(); await direct(); } else { await direct(); await viaController(); }
    }
    const controllerMs = median(ctl);
    const directMs = median(dir);
    const ratios = ctl.map((c, i) => c / dir[i]);
    results.push({ devices: n, modules: n * MODULES, rounds, controllerMs, directMs, ratio: controllerMs / directMs, controllerRssMb: rss, controllerPeakRssMb: peak, controllerHeapUsedMb: heapMb });
    const spread = rounds > 1 ? ` (median of ${rounds}; per-round ratios ${ratios.map((x) => x.toFixed(2)).join(' ')})` : '';
    console.log(`${n} device(s) × ${MODULES} modules: controller ${(controllerMs / 1000).toFixed(2)} s, direct SSA ${(directMs / 1000).toFixed(2)} s, ratio ${(controllerMs / directMs).toFixed(2)} (target ≤ 1.5)${spread}, controller RSS ${rss.toFixed(0)} MB steady, ${peak.toFixed(0)} MB peak (target < 100 MB), JS heap in use ${heapMb.toFixed(0)} MB`);
  }
  console.table(results.map((r) => ({ ...r, controllerMs: Math.round(r.controllerMs), directMs: Math.round(r.directMs), ratio: Number(r.ratio.toFixed(2)), controllerRssMb: Math.round(r.controllerRssMb), controllerPeakRssMb: Math.round(r.controllerPeakRssMb), controllerHeapUsedMb: Math.round(r.controllerHeapUsedMb) })));
} finally {
  agent.kill('SIGTERM');
  await new Promise((r) => agent.once('exit', r));
  await cp.stop();
}
