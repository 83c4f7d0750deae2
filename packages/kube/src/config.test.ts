import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { ClusterConfig, ClusterConfigError } from './config.js';

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

function tmp(files: Record<string, string> = {}): string {
  const dir = mkdtempSync(join(tmpdir(), 'kedge-kc-'));
  dirs.push(dir);
  for (const [name, text] of Object.entries(files)) writeFileSync(join(dir, name), text);
  return dir;
}

const b64 = (s: string) => Buffer.from(s).toString('base64');

const kubeconfig = (over: { users?: unknown[]; clusters?: unknown[]; contexts?: unknown[]; current?: string } = {}) =>
  stringify({
    apiVersion: 'v1',
    kind: 'Config',
    'current-context': over.current ?? 'dev',
    clusters: over.clusters ?? [
      { name: 'c1', cluster: { server: 'https://127.0.0.1:6443/', 'certificate-authority-data': b64('CA-PEM') } },
      { name: 'c2', cluster: { server: 'https://127.0.0.2:6443', 'insecure-skip-tls-verify': true, 'tls-server-name': 'api.local' } },
    ],
    users: over.users ?? [
      { name: 'admin', user: { 'client-certificate-data': b64('CERT'), 'client-key-data': b64('KEY') } },
      { name: 'bot', user: { token: 't0k', as: 'jane', 'as-groups': ['ops'] } },
    ],
    contexts: over.contexts ?? [
      { name: 'dev', context: { cluster: 'c1', user: 'admin', namespace: 'devns' } },
      { name: 'ci', context: { cluster: 'c2', user: 'bot' } },
    ],
  });

describe('ClusterConfig.fromKubeconfig', () => {
  it('resolves the current context: server, CA, client certificate, namespace', () => {
    const c = ClusterConfig.fromKubeconfig(kubeconfig(), { source: 'kc.yaml' });
    expect(c).toMatchObject({ server: 'https://127.0.0.1:6443', ca: 'CA-PEM', cert: 'CERT', key: 'KEY', namespace: 'devns', insecureSkipTlsVerify: false });
    expect(c.token).toBeUndefined();
    expect(c.source).toBe('kubeconfig kc.yaml (context dev)');
  });

  it('uses another context when asked: token, impersonation, TLS options', () => {
    const c = ClusterConfig.fromKubeconfig(kubeconfig(), { context: 'ci' });
    expect(c).toMatchObject({ server: 'https://127.0.0.2:6443', token: 't0k', insecureSkipTlsVerify: true, tlsServerName: 'api.local', impersonate: { user: 'jane', groups: ['ops'] } });
    expect(c.cert).toBeUndefined();
    expect(c.namespace).toBeUndefined();
  });

  it('reads certificate files and token files relative to the kubeconfig, exec commands too', () => {
    const dir = tmp({ 'ca.crt': 'FILE-CA', 'me.crt': 'FILE-CERT', 'me.key': 'FILE-KEY' });
    const text = kubeconfig({
      clusters: [{ name: 'c1', cluster: { server: 'https://127.0.0.1:6443', 'certificate-authority': 'ca.crt' } }],
      users: [
        { name: 'admin', user: { 'client-certificate': 'me.crt', 'client-key': join(dir, 'me.key'), tokenFile: 'tok' } },
        { name: 'plug', user: { exec: { apiVersion: 'client.authentication.k8s.io/v1', command: './bin/login', args: ['--x'], env: [{ name: 'A', value: 'b' }] } } },
      ],
      contexts: [
        { name: 'dev', context: { cluster: 'c1', user: 'admin' } },
        { name: 'plug', context: { cluster: 'c1', user: 'plug' } },
      ],
    });
    writeFileSync(join(dir, 'config'), text);
    const c = ClusterConfig.fromFiles([join(dir, 'config')]);
    expect(c).toMatchObject({ ca: 'FILE-CA', cert: 'FILE-CERT', key: 'FILE-KEY', tokenFile: join(dir, 'tok') });
    const p = ClusterConfig.fromFiles([join(dir, 'config')], { context: 'plug' });
    expect(p.exec).toEqual({ apiVersion: 'client.authentication.k8s.io/v1', command: './bin/login', args: ['--x'], env: [{ name: 'A', value: 'b' }], provideClusterInfo: false, baseDir: dir });
  });

  it('merges several files as kubectl does: the first definition of a name and the first current-context win', () => {
    const a = tmp({
      a: stringify({ 'current-context': 'x', contexts: [{ name: 'x', context: { cluster: 'shared', user: 'u' } }], users: [{ name: 'u', user: { token: 'from-a' } }] }),
      b: stringify({
        'current-context': 'y',
        clusters: [{ name: 'shared', cluster: { server: 'https://127.0.0.9:1' } }],
        users: [{ name: 'u', user: { token: 'from-b' } }],
        contexts: [{ name: 'y', context: { cluster: 'shared', user: 'u' } }],
      }),
      empty: '',
    });
    const c = ClusterConfig.fromFiles([join(a, 'a'), join(a, 'empty'), join(a, 'b')]);
    expect(c).toMatchObject({ server: 'https://127.0.0.9:1', token: 'from-a' });
  });

  it.each([
    ['a missing context, listing the ones there are', { current: 'nope' }, /context "nope" not found \(contexts: dev, ci\)/],
    ['a context naming an unknown cluster, with where', { contexts: [{ name: 'dev', context: { cluster: 'gone', user: 'admin' } }] }, /contexts\[0\]: cluster "gone" of context "dev" not found/],
    ['a context naming an unknown user', { contexts: [{ name: 'dev', context: { cluster: 'c1', user: 'ghost' } }] }, /user "ghost" of context "dev" not found/],
    ['a removed auth-provider', { users: [{ name: 'admin', user: { 'auth-provider': { name: 'gcp' } } }] }, /users\[0\]\.user\.auth-provider: auth-provider "gcp" was removed.*exec credential plugin/],
    ['basic auth', { users: [{ name: 'admin', user: { username: 'a', password: 'b' } }] }, /users\[0\]\.user\.username: basic authentication was removed/],
    ['a certificate without its key', { users: [{ name: 'admin', user: { 'client-certificate-data': b64('CERT') } }] }, /client certificate needs its key/],
    ['data that is not base64', { users: [{ name: 'admin', user: { 'client-certificate-data': 'not base64!', 'client-key-data': b64('K') } }] }, /users\[0\]\.user\.client-certificate-data: not base64/],
    ['a proxy', { clusters: [{ name: 'c1', cluster: { server: 'https://127.0.0.1:1', 'proxy-url': 'http://proxy:3128' } }] }, /clusters\[0\]\.cluster\.proxy-url: proxies are not supported/],
    ['a server that is not a URL', { clusters: [{ name: 'c1', cluster: { server: '127.0.0.1:6443' } }] }, /server "127.0.0.1:6443" is not a URL/],
    ['a wrongly typed field, with its path', { clusters: [{ name: 'c1', cluster: { server: 'https://x', 'insecure-skip-tls-verify': 'yes' } }] }, /clusters\.0\.cluster\.insecure-skip-tls-verify:/],
  ])('rejects %s with a message saying what and where', (_what, over, message) => {
    expect(() => ClusterConfig.fromKubeconfig(kubeconfig(over), { source: 'kc.yaml' })).toThrow(ClusterConfigError);
    expect(() => ClusterConfig.fromKubeconfig(kubeconfig(over), { source: 'kc.yaml' })).toThrow(message);
  });

  it('rejects invalid YAML, a missing current-context and an unreadable file', () => {
    expect(() => ClusterConfig.fromKubeconfig('clusters: [', { source: 'bad.yaml' })).toThrow(/kubeconfig bad.yaml: not valid YAML/);
    expect(() => ClusterConfig.fromKubeconfig(stringify({ contexts: [] }))).toThrow(/no current-context set/);
    expect(() => ClusterConfig.fromFiles(['/nonexistent/kubeconfig'])).toThrow(/kubeconfig \/nonexistent\/kubeconfig: cannot read it/);
    const dir = tmp();
    const missingCa = kubeconfig({ clusters: [{ name: 'c1', cluster: { server: 'https://x', 'certificate-authority': 'ca.crt' } }] });
    expect(() => ClusterConfig.fromKubeconfig(missingCa, { baseDir: dir, source: 'kc' })).toThrow(/clusters\[0\]\.cluster\.certificate-authority: cannot read .*ca\.crt/);
  });
});

describe('ClusterConfig.inCluster and load', () => {
  const sa = () => tmp({ 'ca.crt': 'SA-CA', token: 'sa-token', namespace: 'device-7\n' });

  it('reads the mounted ServiceAccount; the token stays a file (it rotates)', () => {
    const dir = sa();
    const c = ClusterConfig.inCluster({ dir, env: { KUBERNETES_SERVICE_HOST: '127.0.0.1', KUBERNETES_SERVICE_PORT: '443' } });
    expect(c).toMatchObject({ server: 'https://127.0.0.1:443', ca: 'SA-CA', tokenFile: join(dir, 'token'), namespace: 'device-7', source: 'in-cluster' });
    expect(c.token).toBeUndefined();
    expect(ClusterConfig.inCluster({ dir, env: { KUBERNETES_SERVICE_HOST: '::1', KUBERNETES_SERVICE_PORT: '443' } }).server).toBe('https://[::1]:443');
  });

  it('says why in-cluster configuration is impossible', () => {
    expect(() => ClusterConfig.inCluster({ dir: sa(), env: {} })).toThrow(/KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT must be set/);
    const noToken = tmp({ 'ca.crt': 'x' });
    expect(() => ClusterConfig.inCluster({ dir: noToken, env: { KUBERNETES_SERVICE_HOST: 'h', KUBERNETES_SERVICE_PORT: '1' } })).toThrow(/cannot read .*token.*ServiceAccount token mounted/);
  });

  it('prefers an explicit kubeconfig, then $KUBECONFIG (a list), then the pod', () => {
    const dir = tmp({ explicit: kubeconfig({ current: 'ci' }), listed: kubeconfig() });
    const inPod = { KUBERNETES_SERVICE_HOST: '127.0.0.1', KUBERNETES_SERVICE_PORT: '443' };
    expect(ClusterConfig.load({ kubeconfig: join(dir, 'explicit'), env: { ...inPod, KUBECONFIG: join(dir, 'listed') } }).server).toBe('https://127.0.0.2:6443');
    expect(ClusterConfig.load({ env: { ...inPod, KUBECONFIG: `${join(dir, 'missing')}:${join(dir, 'listed')}` } }).namespace).toBe('devns');
    expect(() => ClusterConfig.load({ env: { KUBECONFIG: join(dir, 'missing') } })).toThrow(/\$KUBECONFIG names no existing file/);
    expect(ClusterConfig.load({ env: { KUBECONFIG: join(dir, 'listed') }, context: 'ci' }).token).toBe('t0k');
    // In a pod without $KUBECONFIG: the ServiceAccount (its files are not at the default path here, so it says so).
    expect(() => ClusterConfig.load({ env: inPod })).toThrow(/in-cluster: cannot read \/var\/run\/secrets/);
  });

  it('makes derived copies without touching the original', () => {
    const c = ClusterConfig.fromKubeconfig(kubeconfig());
    const d = c.with({ server: 'https://127.0.0.1:1', impersonate: { user: 'system:serviceaccount:ns:agent' } });
    expect(d).toMatchObject({ server: 'https://127.0.0.1:1', ca: 'CA-PEM', cert: 'CERT', impersonate: { user: 'system:serviceaccount:ns:agent' } });
    expect(c).toMatchObject({ server: 'https://127.0.0.1:6443', impersonate: undefined });
  });
});
