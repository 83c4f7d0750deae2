import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { parseAllDocuments } from 'yaml';
import { agentRbac } from '@kedge/agent';
import { registerInstallCommands } from './install.js';
import { captureOutput, inProcessKedge } from '../test-support/capture.js';

const captured = captureOutput();
const kedge = inProcessKedge(registerInstallCommands);
const repo = new URL('../../../../', import.meta.url).pathname;
const dir = mkdtempSync(join(tmpdir(), 'kedge-install-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

type Doc = { kind: string; metadata: { name: string; namespace?: string; labels?: Record<string, string> }; rules?: unknown; spec?: Record<string, unknown>; stringData?: Record<string, string> };

describe('kedge install', () => {
  it('prints one device: namespace, the Role of `kedge agent rbac`, credentials Secret, agent with the V8 flags, edge hub', async () => {
    expect(await kedge('install', '--device', 'Line-4', '-n', 'line-4', '--connection-string', 'HostName=h;DeviceId=Line-4;SharedAccessKey=a2V5')).toBe(0);
    const docs = parseAllDocuments(captured.out).map((d) => d.toJS() as Doc);
    expect(docs.map((d) => `${d.kind}/${d.metadata.name}`)).toEqual([
      'Namespace/line-4', 'ServiceAccount/kedge-agent', 'Role/kedge-agent', 'RoleBinding/kedge-agent', 'Secret/kedge-device-credentials', 'Deployment/kedge-agent', 'Service/kedge-workload', 'EdgeDeployment/default',
    ]);
    expect(docs.filter((d) => d.kind !== 'Namespace').every((d) => d.metadata.namespace === 'line-4')).toBe(true);
    expect(docs.find((d) => d.kind === 'Role')?.rules).toEqual(agentRbac('line-4')[1].rules);
    expect(docs.find((d) => d.kind === 'Secret')?.stringData).toEqual({ connectionString: 'HostName=h;DeviceId=Line-4;SharedAccessKey=a2V5' });
    const command = (docs.find((d) => d.kind === 'Deployment')?.spec as { template: { spec: { containers: { command: string[] }[] } } }).template.spec.containers[0]?.command ?? [];
    expect(command.slice(0, 4)).toEqual(['node', '--lite-mode', '--max-semi-space-size=1', '--max-old-space-size=96']);
    expect(JSON.stringify(docs.find((d) => d.kind === 'EdgeDeployment')?.spec)).toContain('"edgeHub"');
    // The leader serves the workload API and advertises its pod IP; both replicas have probes.
    expect(command.join(' ')).toContain('--workload-listen 0.0.0.0:15580 --workload-advertise-ip $(POD_IP) --workload-service kedge-workload');
    const agentContainer = (docs.find((d) => d.kind === 'Deployment')?.spec as { template: { spec: { containers: Record<string, unknown>[] } } }).template.spec.containers[0];
    expect(agentContainer).toMatchObject({ livenessProbe: { httpGet: { path: '/healthz', port: 'metrics' } }, readinessProbe: { httpGet: { path: '/readyz', port: 'metrics' } } });
    expect(docs.find((d) => d.kind === 'Service')?.spec).toEqual({ type: 'ClusterIP', ports: [{ name: 'workload', port: 15580, targetPort: 15580, protocol: 'TCP' }] });
  });

  it('refuses without a device or credentials (exit 2)', async () => {
    expect(await kedge('install', '--device', 'd1')).toBe(2);
    expect(captured.err).toMatch(/--connection-string/);
  });

  it('the committed Helm charts are exactly what the code generates (run `npm run gen:helm` after a change)', async () => {
    expect(await kedge('install', 'helm', '--check', '--root', repo)).toBe(0);
  });

  it('--check fails on a stale chart and names the file', async () => {
    expect(await kedge('install', 'helm', '--root', dir)).toBe(0);
    writeFileSync(join(dir, 'deploy/helm/kedge-device/templates/role-kedge-agent.yaml'), 'edited by hand\n');
    expect(await kedge('install', 'helm', '--check', '--root', dir)).toBe(1);
    expect(captured.err).toContain('deploy/helm/kedge-device/templates/role-kedge-agent.yaml');
  });
});
