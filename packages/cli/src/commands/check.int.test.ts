import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { HubClient, startHub, type RunningHub } from '@kedge/hub';
import { ClusterConfig, createKubeClient, type KubeClient } from '@kedge/kube';
import { createTestNamespace, kubeConfigForTests, kubeconfigPathForTests, type TestNamespace } from '@kedge/testing';
import { registerCheckCommands } from './check.js';
import { CREDENTIALS_SECRET } from './install.js';
import { captureOutput, inProcessKedge } from '../test-support/capture.js';

// `kedge check` on the real control plane, reading the device's credentials Secret, against a real hub on loopback.

const captured = captureOutput();
const kedge = inProcessKedge(registerCheckCommands);
const dir = mkdtempSync(join(tmpdir(), 'kedge-check-'));
let hub: RunningHub;
let kube: KubeClient;
let ns: TestNamespace;
let mqtt = '';

async function credentials(connectionString: string): Promise<void> {
  await kube.apply({ apiVersion: 'v1', kind: 'Secret', metadata: { name: CREDENTIALS_SECRET, namespace: ns.name }, data: { connectionString: Buffer.from(connectionString).toString('base64') } } as never);
}

async function hubCheck(): Promise<{ code: number; hub: { ok: boolean; detail: string; fix?: string } | undefined }> {
  captured.reset();
  const code = await kedge('check', '-n', ns.name, '--kubeconfig', kubeconfigPathForTests(), '--json', '--skip', 'rbac,agent,edge-hub,disk', '--hub-address', mqtt, '--hub-ca', join(dir, 'ca.pem'));
  const results = JSON.parse(captured.out) as Array<{ check: string; ok: boolean; detail: string; fix?: string }>;
  return { code, hub: results.find((r) => r.check === 'hub') };
}

beforeAll(async () => {
  hub = await startHub({ dataDir: join(dir, 'data'), hostName: '127.0.0.1', service: { host: '127.0.0.1', port: 0 }, mqtt: { host: '127.0.0.1', port: 0 }, deployments: { resyncSeconds: 3600 }, logLevel: 'silent' });
  writeFileSync(join(dir, 'ca.pem'), hub.ca);
  mqtt = `127.0.0.1:${new URL(hub.urls.mqtt).port}`;
  kube = createKubeClient(ClusterConfig.fromFiles([kubeconfigPathForTests()]));
  ns = await createTestNamespace(kubeConfigForTests(), 'check');
});
afterAll(async () => {
  await ns?.cleanup();
  await hub?.close();
});

describe('kedge check -n <ns>: the hub check with the credentials of the installed device', () => {
  it('passes when the hub accepts them, fails with what to do when the key is wrong', async () => {
    const service = new HubClient({ connectionString: hub.connectionString(), ca: hub.ca, port: Number(new URL(hub.urls.service).port) });
    const d = (await service.createDevice('factory-7', { edge: true })) as { authentication: { symmetricKey: { primaryKey: string } } };
    await credentials(`HostName=127.0.0.1;DeviceId=factory-7;SharedAccessKey=${d.authentication.symmetricKey.primaryKey}`);
    const ok = await hubCheck();
    expect(ok.hub).toEqual({ check: 'hub', ok: true, detail: `device factory-7 authenticated at ${mqtt} over verified TLS; twin read (desired $version 1)` });
    expect(ok.code).toBe(0);

    await credentials(`HostName=127.0.0.1;DeviceId=factory-7;SharedAccessKey=${Buffer.alloc(32, 3).toString('base64')}`);
    const refused = await hubCheck();
    expect(refused.code).toBe(1);
    expect(refused.hub?.ok).toBe(false);
    expect(refused.hub?.detail).toMatch(/^key-refused: the hub refused the SAS token of device factory-7 \(CONNACK 4\)/);
    expect(refused.hub?.fix).toContain('kedge devices show factory-7');
  });
});
