/**
 * A leader-election candidate in its own process, for leader.int.test.ts (run with vite-node). While it leads it
 * writes, every 50 ms, a fenced write: `isLeader()` right before it, recording when the check passed. Prints
 * `LEADING`, `STOPPED` and `LEADER <identity>` lines. SIGUSR2 stops it gracefully (the lease is released);
 * not SIGTERM or a closed stdin, which vite-node takes for itself.
 */
import { pino } from 'pino';
import { createKubeClient } from './client.js';
import { ClusterConfig } from './config.js';
import { LeaderElector } from './leader.js';

const env = (k: string): string => {
  const v = process.env[k];
  if (v === undefined) throw new Error(`${k} is required`);
  return v;
};
const config = ClusterConfig.fromFiles([env('LEADER_KUBECONFIG')]);
const kube = createKubeClient(config, { requestTimeoutMs: 2_000 });
const namespace = env('LEADER_NAMESPACE');
const identity = env('LEADER_IDENTITY');
const writes: Record<string, string> = {};
let seq = 0;
const stop = new AbortController();
// Timers of the kube clock are unref'd: this keeps the process alive until it is told to stop.
const keepAlive = setInterval(() => undefined, 1_000);
process.on('SIGUSR2', () => stop.abort());

const elector = new LeaderElector(config, {
  namespace,
  name: env('LEADER_LEASE'),
  identity,
  leaseDurationMs: Number(env('LEADER_DURATION_MS')),
  renewDeadlineMs: Number(env('LEADER_RENEW_MS')),
  retryPeriodMs: Number(env('LEADER_RETRY_MS')),
  log: pino({ level: process.env['KEDGE_TEST_LOG'] ?? 'silent' }, pino.destination(2)),
  onNewLeader: (id) => console.log(`LEADER ${id}`),
  onStartedLeading: async (signal) => {
    console.log('LEADING');
    while (!signal.aborted) {
      if (elector.isLeader()) {
        writes[String(seq++).padStart(6, '0')] = String(Date.now());
        try {
          await kube.apply({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: `writes-${identity}`, namespace }, data: writes }, { fieldManager: identity, signal });
        } catch {
          // A failed write is not a leadership question; the next round tries again.
        }
      }
      await new Promise((r) => setTimeout(r, 50));
    }
  },
  onStoppedLeading: () => console.log('STOPPED'),
});

while (!stop.signal.aborted) await elector.run(stop.signal);
clearInterval(keepAlive);
process.exit(0);
