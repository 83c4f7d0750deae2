import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { parseAllDocuments } from 'yaml';
import { parseWorkloadListen, registerClusterCommands } from './agent.js';
import { captureOutput, inProcessKedge } from '../test-support/capture.js';

const dir = mkdtempSync(join(tmpdir(), 'kedge-agent-cli-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const captured = captureOutput();

const kedge = inProcessKedge(registerClusterCommands);

describe('kedge agent', () => {
  it('rbac prints the ServiceAccount, Role and RoleBinding for one namespace, nothing cluster-wide', async () => {
    expect(await kedge('agent', 'rbac', '-n', 'factory-1')).toBe(0);
    const docs = parseAllDocuments(captured.out).map((d) => d.toJS() as { kind: string; metadata: { namespace?: string } });
    expect(docs.map((d) => d.kind).sort()).toEqual(['Role', 'RoleBinding', 'ServiceAccount']);
    expect(docs.every((d) => d.metadata.namespace === 'factory-1')).toBe(true);
  });

  it('run refuses an unusable kubeconfig before starting, saying what is wrong and where (exit 2)', async () => {
    expect(await kedge('agent', 'run', '--kubeconfig', join(dir, 'missing'), '--metrics-port', '0')).toBe(2);
    expect(captured.err).toMatch(/^kedge agent: kubeconfig .*missing: cannot read it/);

    captured.reset();
    const kc = join(dir, 'kc.yaml');
    writeFileSync(kc, 'current-context: a\ncontexts: [{name: a, context: {cluster: c, user: u}}]\nclusters: [{name: c, cluster: {server: "https://127.0.0.1:1"}}]\nusers: [{name: u, user: {token: t}}]\n');
    expect(await kedge('agent', 'run', '--kubeconfig', kc, '--context', 'prod', '--metrics-port', '0')).toBe(2);
    expect(captured.err).toMatch(/context "prod" not found \(contexts: a\)/);
  });

  it('--workload-listen takes host:port, [v6]:port, unix:/path or off, and refuses anything else (exit 2)', async () => {
    expect(parseWorkloadListen('0.0.0.0:15580')).toEqual({ host: '0.0.0.0', port: 15580 });
    expect(parseWorkloadListen('[::1]:0')).toEqual({ host: '::1', port: 0 });
    expect(parseWorkloadListen('unix:/run/kedge/workload.sock')).toEqual({ path: '/run/kedge/workload.sock' });
    expect(parseWorkloadListen('off')).toBeNull();
    for (const bad of ['15580', 'host:', 'host:99999', 'unix:', '::1:80']) expect(parseWorkloadListen(bad)).toBeUndefined();
    const kc = join(dir, 'kc-workload.yaml');
    writeFileSync(kc, 'current-context: a\ncontexts: [{name: a, context: {cluster: c, user: u}}]\nclusters: [{name: c, cluster: {server: "https://127.0.0.1:1"}}]\nusers: [{name: u, user: {token: t}}]\n');
    captured.reset();
    expect(await kedge('agent', 'run', '--kubeconfig', kc, '--metrics-port', '0', '--workload-listen', 'everywhere')).toBe(2);
    expect(captured.err).toMatch(/--workload-listen must be host:port, unix:\/path or off \(got everywhere\)/);
  });

  it('run --runtime process needs a state directory, and --runtime knows two runtimes (exit 2)', async () => {
    expect(await kedge('agent', 'run', '--runtime', 'process', '--metrics-port', '0')).toBe(2);
    expect(captured.err).toBe('kedge agent: --runtime process needs --state-dir <dir> (where the deployment, twin cache and module pids are kept)\n');
    captured.reset();
    expect(await kedge('agent', 'run', '--runtime', 'docker', '--metrics-port', '0')).toBe(2);
    expect(captured.err).toBe('kedge agent: --runtime must be kubernetes or process, not "docker"\n');
  });

  it('run refuses an invalid device policy (exit 2)', async () => {
    const policy = join(dir, 'policy.yaml');
    writeFileSync(policy, 'allowHostPaths: maybe\n');
    expect(await kedge('agent', 'run', '--policy', policy, '--metrics-port', '0')).toBe(2);
    expect(captured.err).toMatch(/invalid policy .*policy\.yaml: allowHostPaths/);
  });

  it('run refuses a hub link without a namespace, and a connection string that is not a device one (exit 2)', async () => {
    const kc = join(dir, 'kc-hub.yaml');
    writeFileSync(kc, 'current-context: a\ncontexts: [{name: a, context: {cluster: c, user: u}}]\nclusters: [{name: c, cluster: {server: "https://127.0.0.1:1"}}]\nusers: [{name: u, user: {token: t}}]\n');
    const cs = join(dir, 'device.cs');
    writeFileSync(cs, 'HostName=hub.example;DeviceId=d1;SharedAccessKey=AAAA\n');
    expect(await kedge('agent', 'run', '--kubeconfig', kc, '--hub-connection-string-file', cs, '--metrics-port', '0')).toBe(2);
    expect(captured.err).toMatch(/namespace is required with hub/);
    captured.reset();
    writeFileSync(cs, 'HostName=hub.example;DeviceId=d1;ModuleId=m;SharedAccessKey=AAAA\n');
    expect(await kedge('agent', 'run', '--kubeconfig', kc, '-n', 'd1', '--hub-connection-string-file', cs, '--metrics-port', '0')).toBe(2);
    expect(captured.err).toMatch(/hub\.connectionString: must be a device connection string/);
  });
});
