/**
 * A loopback HTTP "apiserver" that answers discovery and never answers anything else: the hung apply a reconcile
 * timeout must cut short. A real apiserver cannot be made to hang one request on purpose; this stands in for it
 * (a frozen TCP proxy would stall discovery too). Test support, not exported from the package.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { ClusterConfig } from './config.js';

const DISCOVERY: Record<string, { name: string; kind: string; namespaced: boolean }[]> = {
  '/api/v1': [
    { name: 'configmaps', kind: 'ConfigMap', namespaced: true },
    { name: 'secrets', kind: 'Secret', namespaced: true },
    { name: 'serviceaccounts', kind: 'ServiceAccount', namespaced: true },
    { name: 'services', kind: 'Service', namespaced: true },
    { name: 'persistentvolumeclaims', kind: 'PersistentVolumeClaim', namespaced: true },
    { name: 'pods', kind: 'Pod', namespaced: true },
    { name: 'events', kind: 'Event', namespaced: true },
  ],
  '/apis/apps/v1': [{ name: 'deployments', kind: 'Deployment', namespaced: true }],
  '/apis/kedge.io/v1alpha1': [
    { name: 'edgedeployments', kind: 'EdgeDeployment', namespaced: true },
    { name: 'edgedeployments/status', kind: 'EdgeDeployment', namespaced: true },
  ],
  '/apis/coordination.k8s.io/v1': [{ name: 'leases', kind: 'Lease', namespaced: true }],
};

export interface StallServer {
  readonly config: ClusterConfig;
  /** Requests that reached the server and were left hanging (`METHOD path`), in arrival order. */
  readonly stalled: string[];
  /** Hanging requests whose client has since gone away (aborted). */
  readonly abandoned: () => number;
  /** Discovery paths that stall too (answered by default). */
  readonly stallDiscovery: Set<string>;
  close(): Promise<void>;
}

export async function startStallServer(): Promise<StallServer> {
  const stalled: string[] = [];
  let abandoned = 0;
  const open = new Set<http.ServerResponse>();
  const stallDiscovery = new Set<string>();
  const server = http.createServer((req, res) => {
    const path = new URL(req.url ?? '/', 'http://x').pathname;
    const resources = DISCOVERY[path];
    if (req.method === 'GET' && resources && !stallDiscovery.has(path)) {
      res.setHeader('Content-Type', 'application/json');
      res.end(JSON.stringify({ kind: 'APIResourceList', resources }));
      return;
    }
    stalled.push(`${req.method ?? ''} ${path}`);
    open.add(res);
    req.resume();
    res.on('close', () => {
      open.delete(res);
      abandoned++;
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    config: new ClusterConfig({ server: `http://127.0.0.1:${port}` }),
    stalled,
    abandoned: () => abandoned,
    stallDiscovery,
    async close() {
      for (const r of open) r.destroy();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
