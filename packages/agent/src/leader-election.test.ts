import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ClusterConfig, LeadershipLostError, createKubeClient } from '@kedge/kube';
import { fencedKubeClient } from './leader-election.js';

let server: http.Server;
const seen: string[] = [];
let config: ClusterConfig;
beforeAll(async () => {
  // A loopback apiserver stand-in that records what reaches it and answers discovery and writes with `{}`.
  server = http.createServer((req, res) => {
    const path = new URL(req.url ?? '/', 'http://x').pathname;
    if (path !== '/api/v1') seen.push(`${req.method ?? ''} ${path}`);
    res.setHeader('Content-Type', 'application/json');
    res.end(path === '/api/v1' ? JSON.stringify({ resources: [{ name: 'configmaps', kind: 'ConfigMap', namespaced: true }] }) : '{}');
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  config = new ClusterConfig({ server: `http://127.0.0.1:${(server.address() as AddressInfo).port}` });
});
afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())));

describe('fencedKubeClient', () => {
  it('refuses every write while this replica is not the leader, before anything is sent; reads pass', async () => {
    let leader = false;
    const kube = fencedKubeClient(createKubeClient(config), () => leader);
    const cm = { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'c', namespace: 'n' } };
    await expect(kube.apply(cm)).rejects.toBeInstanceOf(LeadershipLostError);
    await expect(kube.applyStatus(cm)).rejects.toBeInstanceOf(LeadershipLostError);
    await expect(kube.delete('v1', 'ConfigMap', 'n', 'c')).rejects.toBeInstanceOf(LeadershipLostError);
    expect(seen).toEqual([]);
    await kube.get('v1', 'ConfigMap', 'n', 'c');
    expect(seen).toEqual(['GET /api/v1/namespaces/n/configmaps/c']);
    leader = true;
    await kube.apply(cm);
    expect(seen.at(-1)).toBe('PATCH /api/v1/namespaces/n/configmaps/c');
  });
});
