import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createKubeClient } from './client.js';
import type { KubeClient } from './client.js';
import { ClusterConfig } from './config.js';
import { isNoKindMatch, isUnauthorized, toKubeApiError } from './errors.js';
import { createNamespace, eventually, testClusterConfig } from './test-helpers.js';
import { KubeTransport } from './transport.js';

let admin: KubeClient;
let ns: string;
let dir: string;

beforeAll(async () => {
  admin = createKubeClient(testClusterConfig());
  ns = await createNamespace(admin, 'auth');
  await admin.apply({ apiVersion: 'v1', kind: 'ServiceAccount', metadata: { name: 'robot', namespace: ns } });
  dir = mkdtempSync(join(tmpdir(), 'kedge-auth-'));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** A real bound ServiceAccount token from the TokenRequest API. */
async function saToken(): Promise<string> {
  const t = KubeTransport.for(testClusterConfig());
  const res = (await t.request('POST', `/api/v1/namespaces/${ns}/serviceaccounts/robot/token`, {
    body: { apiVersion: 'authentication.k8s.io/v1', kind: 'TokenRequest', spec: { expirationSeconds: 3600 } },
    timeoutMs: 10_000,
  })) as { status: { token: string } };
  return res.status.token;
}

/** Who the apiserver thinks `config` is (SelfSubjectReview: allowed for every authenticated user). */
async function whoami(config: ClusterConfig): Promise<string> {
  const res = (await KubeTransport.for(config).request('POST', '/apis/authentication.k8s.io/v1/selfsubjectreviews', {
    body: { apiVersion: 'authentication.k8s.io/v1', kind: 'SelfSubjectReview' },
    timeoutMs: 10_000,
  })) as { status: { userInfo: { username: string } } };
  return res.status.userInfo.username;
}

/** The admin's server and CA, with no client certificate: only what a token user has. */
function tokenUser(auth: { token?: string; tokenFile?: string; exec?: ClusterConfig['exec'] }): ClusterConfig {
  const base = testClusterConfig();
  return new ClusterConfig({ server: base.server, ...(base.ca !== undefined ? { ca: base.ca } : {}), ...auth });
}

describe('KubeTransport authentication', () => {
  it('sends a bearer token', async () => {
    expect(await whoami(tokenUser({ token: await saToken() }))).toBe(`system:serviceaccount:${ns}:robot`);
  });

  it('re-reads a token file after a 401, so a rotated token is picked up without a restart', async () => {
    const file = join(dir, 'token');
    writeFileSync(file, 'not-a-valid-token\n');
    const config = tokenUser({ tokenFile: file });
    const err = await whoami(config).catch((e: unknown) => toKubeApiError(e));
    expect(isUnauthorized(err)).toBe(true);
    // The kubelet rotates the projected token in place; the very next request uses it.
    writeFileSync(file, `${await saToken()}\n`);
    expect(await whoami(config)).toBe(`system:serviceaccount:${ns}:robot`);
  });

  it('runs an exec credential plugin with KUBERNETES_EXEC_INFO, caches its token and refreshes it on 401', async () => {
    const good = await saToken();
    const calls = join(dir, 'calls');
    writeFileSync(calls, '');
    const plugin = join(dir, 'plugin.sh');
    // First call: a token the apiserver rejects; later calls: the real one. Every call logs its exec info.
    writeFileSync(
      plugin,
      `#!/bin/sh\necho "$KUBERNETES_EXEC_INFO" >> "${calls}"\n` +
        `if [ "$(wc -l < "${calls}")" -le 1 ]; then TOKEN=stale; else TOKEN="$GOOD"; fi\n` +
        `printf '{"apiVersion":"client.authentication.k8s.io/v1","kind":"ExecCredential","status":{"token":"%s"}}' "$TOKEN"\n`,
    );
    chmodSync(plugin, 0o755);
    const config = tokenUser({
      exec: { apiVersion: 'client.authentication.k8s.io/v1', command: plugin, args: [], env: [{ name: 'GOOD', value: good }], provideClusterInfo: true, baseDir: dir },
    });
    expect(await whoami(config)).toBe(`system:serviceaccount:${ns}:robot`);
    expect(await whoami(config)).toBe(`system:serviceaccount:${ns}:robot`);
    const infos = readFileSync(calls, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { kind: string; spec: { interactive: boolean; cluster?: { server: string } } });
    expect(infos).toHaveLength(2); // the stale token, then one fresh token that is reused
    expect(infos[0]).toMatchObject({ kind: 'ExecCredential', spec: { interactive: false, cluster: { server: config.server } } });
  });

  it('reports a failing exec plugin with its output', async () => {
    const plugin = join(dir, 'broken.sh');
    writeFileSync(plugin, '#!/bin/sh\necho "login expired, run: cloud auth login" >&2\nexit 3\n');
    chmodSync(plugin, 0o755);
    const config = tokenUser({ exec: { apiVersion: 'client.authentication.k8s.io/v1', command: plugin, args: [], env: [], provideClusterInfo: false, baseDir: dir } });
    await expect(whoami(config)).rejects.toThrow(/exec credential plugin .*broken\.sh failed.*login expired, run: cloud auth login/);
  });
});

describe('KubeTransport discovery', () => {
  it('finds a kind whose CRD is installed after a first miss', async () => {
    const t = KubeTransport.for(testClusterConfig());
    const miss = await t.resourceInfo('kubetest.kedge.io/v1', 'Gadget').catch((e: unknown) => e);
    expect(isNoKindMatch(miss)).toBe(true);
    await admin.apply({
      apiVersion: 'apiextensions.k8s.io/v1',
      kind: 'CustomResourceDefinition',
      metadata: { name: 'gadgets.kubetest.kedge.io' },
      spec: {
        group: 'kubetest.kedge.io',
        scope: 'Cluster',
        names: { plural: 'gadgets', singular: 'gadget', kind: 'Gadget' },
        versions: [{ name: 'v1', served: true, storage: true, schema: { openAPIV3Schema: { type: 'object', 'x-kubernetes-preserve-unknown-fields': true } } }],
      },
    });
    await eventually(async () => expect(await t.resourceInfo('kubetest.kedge.io/v1', 'Gadget')).toEqual({ plural: 'gadgets', namespaced: false }));
    expect(await t.path('kubetest.kedge.io/v1', 'Gadget', 'ignored-for-cluster-scope', 'g1')).toBe('/apis/kubetest.kedge.io/v1/gadgets/g1');
  });
});
