import { X509Certificate } from 'node:crypto';
import { KubeTransport, isAlreadyExists, toKubeApiError, type CallOptions, type ClusterConfig, type KubeClient, type KubernetesObject } from '@kedge/kube';
import { issueCa, type CertificateAuthority } from '@kedge/protocol';

/** The device CA and what modules must trust. */
export interface DeviceCa {
  readonly ca: CertificateAuthority;
  /** PEM: the device CA, then its issuers (for an intermediate under a fleet CA). What `/trust-bundle` serves. */
  readonly trustBundle: string;
}

/** Secret that holds a device's CA (type `kubernetes.io/tls`, plus `ca.crt`: the trust bundle). */
export const DEVICE_CA_SECRET = 'kedge-device-ca';

export interface DeviceCaOptions {
  /** Issue the device CA under this CA (a fleet CA) instead of self-signing it. Used only when none exists yet. */
  readonly parent?: CertificateAuthority;
  /** @default 10 */
  readonly years?: number;
  /** @default `kedge device CA <namespace>` */
  readonly commonName?: string;
}

type SecretObject = KubernetesObject & { type?: string; data?: Record<string, string> };

const b64 = (s: string) => Buffer.from(s, 'utf8').toString('base64');
const unb64 = (s: string | undefined) => (s === undefined ? undefined : Buffer.from(s, 'base64').toString('utf8'));

function fromSecret(s: SecretObject): DeviceCa {
  const cert = unb64(s.data?.['tls.crt']);
  const key = unb64(s.data?.['tls.key']);
  const bundle = unb64(s.data?.['ca.crt']) ?? cert;
  if (!cert || !key || !bundle) throw new Error(`Secret ${DEVICE_CA_SECRET} lacks tls.crt, tls.key or ca.crt`);
  if (!new X509Certificate(cert).ca) throw new Error(`Secret ${DEVICE_CA_SECRET}: tls.crt is not a CA certificate`);
  return { ca: { cert, key }, trustBundle: bundle };
}

/**
 * The device's CA from Secret {@link DEVICE_CA_SECRET} in `namespace`, made on first use: issued under
 * `opts.parent` when given, else self-signed. Created with a create-only request, so two agent replicas starting
 * together agree on one CA (the loser reads the winner's). An existing Secret is never replaced: rotating the CA
 * is deleting it (modules then fetch the new trust bundle when they restart).
 */
export async function loadOrCreateDeviceCa(config: ClusterConfig, kube: KubeClient, namespace: string, opts: DeviceCaOptions = {}, call: CallOptions = {}): Promise<DeviceCa> {
  const existing = await kube.get<SecretObject>('v1', 'Secret', namespace, DEVICE_CA_SECRET, call);
  if (existing) return fromSecret(existing);
  const ca = issueCa(opts.commonName ?? `kedge device CA ${namespace}`, { years: opts.years ?? 10, ...(opts.parent ? { parent: opts.parent } : {}) });
  const trustBundle = opts.parent ? `${ca.cert.trim()}\n${opts.parent.cert.trim()}\n` : ca.cert;
  const secret: SecretObject = {
    apiVersion: 'v1',
    kind: 'Secret',
    type: 'kubernetes.io/tls',
    metadata: { name: DEVICE_CA_SECRET, namespace, labels: { 'app.kubernetes.io/part-of': 'kedge', 'app.kubernetes.io/component': 'device-ca' } },
    data: { 'tls.crt': b64(ca.cert), 'tls.key': b64(ca.key), 'ca.crt': b64(trustBundle) },
  };
  try {
    await KubeTransport.for(config).request('POST', `/api/v1/namespaces/${encodeURIComponent(namespace)}/secrets`, { body: secret, timeoutMs: 30_000, ...call });
    return { ca, trustBundle };
  } catch (e) {
    const err = toKubeApiError(e, { verb: 'create', apiVersion: 'v1', kind: 'Secret', namespace, name: DEVICE_CA_SECRET });
    if (!isAlreadyExists(err)) throw err;
    const winner = await kube.get<SecretObject>('v1', 'Secret', namespace, DEVICE_CA_SECRET, call);
    if (!winner) throw err;
    return fromSecret(winner);
  }
}
