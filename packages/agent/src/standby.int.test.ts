import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { pino } from 'pino';
import { Registry as Metrics } from 'prom-client';
import { ClusterConfig, createKubeClient } from '@kedge/kube';
import { createTestNamespace, eventually, kubeConfigForTests, kubeconfigPathForTests, type TestNamespace } from '@kedge/testing';
import { fencedKubeClient, leaseLeader, type LeaseLeader } from './leader-election.js';
import { startAgent, type RunningAgent } from './start-agent.js';

// Two replicas on the real control plane, as the chart runs them: the standby answers its probes (so the chart can
// have them without stalling a rollout), and becomes ready as the leader once it takes over.

const log = pino({ level: process.env['KEDGE_TEST_LOG'] ?? 'silent' });
let ns: TestNamespace;
let cluster: ClusterConfig;
const replicas: Array<{ agent: Promise<RunningAgent>; leader: LeaseLeader }> = [];

const probe = async (base: string, path: string): Promise<{ status: number; text: string }> => {
  const res = await fetch(`${base}${path}`);
  return { status: res.status, text: await res.text() };
};

/** One replica; its HTTP port is fixed up front so the test can probe it before startAgent resolves (it resolves once leading). */
function replica(identity: string, port: number): { agent: Promise<RunningAgent>; leader: LeaseLeader } {
  const leader = leaseLeader(cluster, { namespace: ns.name, identity, log, leaseDurationMs: 3000, renewDeadlineMs: 2000, retryPeriodMs: 500 });
  const agent = startAgent(
    { namespace: ns.name, metrics: { host: '127.0.0.1', port }, statusCoalesceMs: 50, workers: 1 },
    { cluster, log, registry: new Metrics(), leader, kube: fencedKubeClient(createKubeClient(cluster), () => leader.elector.isLeader()) },
  );
  const r = { agent, leader };
  replicas.push(r);
  return r;
}

async function freePort(): Promise<number> {
  const { createServer } = await import('node:net');
  return new Promise((resolve) => {
    const s = createServer().listen(0, '127.0.0.1', () => {
      const { port } = s.address() as { port: number };
      s.close(() => resolve(port));
    });
  });
}

beforeAll(async () => {
  ns = await createTestNamespace(kubeConfigForTests(), 'standby');
  cluster = ClusterConfig.fromFiles([kubeconfigPathForTests()]);
});

afterAll(async () => {
  for (const r of replicas) {
    await r.leader.stop();
    await (await r.agent.catch(() => undefined))?.stop();
  }
  await ns?.cleanup();
});

describe('agent replicas', () => {
  it('a standby serves /healthz and /readyz; it becomes the ready leader when the leader goes', async () => {
    const [pa, pb] = [await freePort(), await freePort()];
    const a = replica('replica-a', pa);
    const leaderA = await a.agent;
    await eventually(async () => expect(await probe(`http://127.0.0.1:${pa}`, '/readyz')).toEqual({ status: 200, text: 'ok' }), { timeoutMs: 30_000 });

    const b = replica('replica-b', pb);
    const base = `http://127.0.0.1:${pb}`;
    // The standby: alive, and ready once it has read the Lease (it can take over), while another replica leads.
    await eventually(async () => expect(await probe(base, '/readyz')).toEqual({ status: 200, text: 'standby' }), { timeoutMs: 30_000 });
    expect(await probe(base, '/healthz')).toEqual({ status: 200, text: 'ok' });
    expect(b.leader.elector.leader).toBe('replica-a');
    const metrics = await probe(base, '/metrics');
    expect(metrics.status).toBe(200);

    // The leader stops gracefully (releases the Lease): the standby takes over and reports ready as the leader.
    await leaderA.stop();
    await a.leader.stop();
    const leaderB = await b.agent;
    expect(b.leader.elector.leader).toBe('replica-b');
    await eventually(async () => expect(await probe(base, '/readyz')).toEqual({ status: 200, text: 'ok' }), { timeoutMs: 30_000 });
    expect(leaderB.ready()).toBe(true);
  });
});
