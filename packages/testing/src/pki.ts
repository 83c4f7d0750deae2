import { execFile } from 'node:child_process';
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { chmod, mkdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

/** Absolute paths of the throwaway PKI of one control plane. Every key is mode 0600. */
export interface Pki {
  readonly dir: string;
  readonly caCert: string;
  readonly caKey: string;
  /** kube-apiserver serving certificate: SANs 127.0.0.1, localhost, kubernetes.default.svc, 10.0.0.1. */
  readonly apiserverCert: string;
  readonly apiserverKey: string;
  /** Serving certificate for kube-controller-manager, kube-scheduler and kwok: SANs 127.0.0.1 and localhost. */
  readonly componentCert: string;
  readonly componentKey: string;
  /** Client certificate CN=kedge-admin, O=system:masters. */
  readonly adminCert: string;
  readonly adminKey: string;
  /** Client certificate the apiserver presents to kwok's kubelet endpoint (O=system:masters). */
  readonly kubeletClientCert: string;
  readonly kubeletClientKey: string;
  /** Service-account token signing key pair (RSA 2048, PEM). */
  readonly saKey: string;
  readonly saPub: string;
}

async function openssl(cwd: string, args: string[]): Promise<void> {
  try {
    await run('openssl', args, { cwd });
  } catch (err) {
    const e = err as NodeJS.ErrnoException & { stderr?: string };
    if (e.code === 'ENOENT') {
      throw new Error('openssl was not found on PATH: the test control plane needs it to make its PKI (apt-get install openssl)', { cause: err });
    }
    throw new Error(`openssl ${args.slice(0, 2).join(' ')} failed: ${e.stderr ?? e.message}`, { cause: err });
  }
}

/**
 * Creates a CA and the leaf certificates of a test control plane in `dir` with the openssl CLI (node:crypto can
 * parse but not issue X.509 certificates). EC P-256 keys, valid for 7 days: the cluster is disposable.
 */
export async function createPki(dir: string): Promise<Pki> {
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const p = (n: string): string => join(dir, n);
  const ecReq = ['req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
  await openssl(dir, [
    ...ecReq, '-x509', '-keyout', 'ca.key', '-out', 'ca.crt', '-days', '7', '-subj', '/CN=kedge-test-ca',
    '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign',
  ]);
  // -set_serial instead of -CAcreateserial: the leaves are signed in parallel and would race on ca.srl.
  const sign = async (name: string, subject: string, ext: string): Promise<void> => {
    await openssl(dir, [...ecReq, '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', subject]);
    await writeFile(p(`${name}.ext`), ext);
    await openssl(dir, [
      'x509', '-req', '-in', `${name}.csr`, '-CA', 'ca.crt', '-CAkey', 'ca.key', '-set_serial', `0x${randomBytes(16).toString('hex')}`, '-days', '7',
      '-out', `${name}.crt`, '-extfile', `${name}.ext`,
    ]);
    await rm(p(`${name}.csr`));
    await rm(p(`${name}.ext`));
  };
  const server = 'extendedKeyUsage=serverAuth\nkeyUsage=critical,digitalSignature,keyEncipherment\n';
  const client = 'extendedKeyUsage=clientAuth\nkeyUsage=critical,digitalSignature,keyEncipherment\n';
  await Promise.all([
    sign('apiserver', '/CN=kube-apiserver',
      `subjectAltName=IP:127.0.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,IP:10.0.0.1\n${server}`),
    sign('component', '/CN=kedge-test-component', `subjectAltName=IP:127.0.0.1,DNS:localhost\n${server}`),
    sign('admin', '/O=system:masters/CN=kedge-admin', client),
    sign('kubelet-client', '/O=system:masters/CN=kube-apiserver-kubelet-client', client),
  ]);
  const sa = generateKeyPairSync('rsa', { modulusLength: 2048 });
  await writeFile(p('sa.key'), sa.privateKey.export({ type: 'pkcs8', format: 'pem' }));
  await writeFile(p('sa.pub'), sa.publicKey.export({ type: 'spki', format: 'pem' }));
  for (const k of ['ca.key', 'apiserver.key', 'component.key', 'admin.key', 'kubelet-client.key', 'sa.key']) {
    await chmod(p(k), 0o600);
  }
  return {
    dir,
    caCert: p('ca.crt'), caKey: p('ca.key'),
    apiserverCert: p('apiserver.crt'), apiserverKey: p('apiserver.key'),
    componentCert: p('component.crt'), componentKey: p('component.key'),
    adminCert: p('admin.crt'), adminKey: p('admin.key'),
    kubeletClientCert: p('kubelet-client.crt'), kubeletClientKey: p('kubelet-client.key'),
    saKey: p('sa.key'), saPub: p('sa.pub'),
  };
}
