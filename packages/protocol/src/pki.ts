import { generateKeyPairSync, randomBytes, X509Certificate } from 'node:crypto';
import { createRequire } from 'node:module';
import type Forge from 'node-forge';

/**
 * node-forge, loaded the first time a certificate is issued: a process that only reuses its certificates (a device
 * restarting) never loads it, which keeps about 8 MiB out of its memory.
 */
let forgeModule: typeof Forge | undefined;
const forge = (): typeof Forge => (forgeModule ??= createRequire(import.meta.url)('node-forge') as typeof Forge);

/** A PEM certificate and its PEM (PKCS#8) private key. */
export interface IssuedCertificate {
  readonly cert: string;
  readonly key: string;
}

/** A CA able to issue certificates: its certificate and private key (PEM). */
export type CertificateAuthority = IssuedCertificate;

function rsaKeyPair(): { privatePem: string; publicPem: string } {
  const { privateKey, publicKey } = generateKeyPairSync('rsa', {
    modulusLength: 2048,
    privateKeyEncoding: { type: 'pkcs8', format: 'pem' },
    publicKeyEncoding: { type: 'spki', format: 'pem' },
  });
  return { privatePem: privateKey, publicPem: publicKey };
}

function serial(): string {
  // Positive 16-byte serial (top bit cleared), as RFC 5280 requires.
  const b = randomBytes(16);
  b[0] = (b[0] ?? 0) & 0x7f;
  return b.toString('hex');
}

/** IPv4 dotted quad or IPv6 literal (a SAN of type IP rather than DNS). Kept here: node:net is I/O, this is pure. */
const isIP = (n: string): boolean => /^(\d{1,3}\.){3}\d{1,3}$/.test(n) || n.includes(':');

const YEAR_MS = 365 * 24 * 3600 * 1000;

function issue(opts: {
  subjectCn: string;
  publicPem: string;
  signerKeyPem: string;
  issuer?: Forge.pki.Certificate;
  isCa: boolean;
  altNames?: readonly string[];
  years: number;
  now: number;
  /** For a CA: the largest number of intermediate CAs below it (`pathLenConstraint`). */
  pathLen?: number;
}): string {
  const cert = forge().pki.createCertificate();
  cert.publicKey = forge().pki.publicKeyFromPem(opts.publicPem);
  cert.serialNumber = serial();
  // One hour back, so a client whose clock runs a little behind still accepts a certificate issued just now.
  cert.validity.notBefore = new Date(opts.now - 60 * 60 * 1000);
  cert.validity.notAfter = new Date(opts.now + opts.years * YEAR_MS);
  const subject = [{ name: 'commonName', value: opts.subjectCn }, { name: 'organizationName', value: 'Kedge' }];
  cert.setSubject(subject);
  cert.setIssuer(opts.issuer ? opts.issuer.subject.attributes : subject);
  const ext: object[] = [
    opts.isCa && opts.pathLen !== undefined
      ? { name: 'basicConstraints', cA: true, pathLenConstraint: opts.pathLen, critical: true }
      : { name: 'basicConstraints', cA: opts.isCa, critical: true },
    opts.isCa
      ? { name: 'keyUsage', keyCertSign: true, cRLSign: true, critical: true }
      : { name: 'keyUsage', digitalSignature: true, keyEncipherment: true, critical: true },
    { name: 'subjectKeyIdentifier' },
  ];
  if (!opts.isCa) {
    ext.push({ name: 'extKeyUsage', serverAuth: true });
    ext.push({
      name: 'subjectAltName',
      altNames: (opts.altNames ?? []).map((n) => (isIP(n) ? { type: 7, ip: n } : { type: 2, value: n })),
    });
  }
  cert.setExtensions(ext);
  cert.sign(forge().pki.privateKeyFromPem(opts.signerKeyPem), forge().md.sha256.create());
  return forge().pki.certificateToPem(cert);
}

/**
 * A new RSA-2048 CA named `commonName`, valid for `years` (self-signed, or issued by `parent` as an intermediate,
 * e.g. a per-device CA under a fleet CA). Pure: nothing is written anywhere.
 */
export function issueCa(commonName: string, opts: { years: number; parent?: CertificateAuthority; now?: number }): CertificateAuthority {
  const kp = rsaKeyPair();
  const now = opts.now ?? Date.now();
  const cert = opts.parent
    ? issue({ subjectCn: commonName, publicPem: kp.publicPem, signerKeyPem: opts.parent.key, issuer: forge().pki.certificateFromPem(opts.parent.cert), isCa: true, pathLen: 0, years: opts.years, now })
    : issue({ subjectCn: commonName, publicPem: kp.publicPem, signerKeyPem: kp.privatePem, isCa: true, years: opts.years, now });
  return { cert, key: kp.privatePem };
}

/**
 * A TLS server certificate for `names` (DNS names and IP addresses; the first is the common name), issued by `ca`
 * and valid for `years`.
 */
export function issueServerCertificate(ca: CertificateAuthority, names: readonly string[], opts: { years: number; now?: number }): IssuedCertificate {
  const kp = rsaKeyPair();
  const cert = issue({
    subjectCn: names[0] ?? 'localhost',
    publicPem: kp.publicPem,
    signerKeyPem: ca.key,
    issuer: forge().pki.certificateFromPem(ca.cert),
    isCa: false,
    altNames: names,
    years: opts.years,
    now: opts.now ?? Date.now(),
  });
  return { cert, key: kp.privatePem };
}

/** True when `certPem` names every one of `names` and stays valid for at least `minValidMs` after `now`. */
export function certificateCovers(certPem: string, names: readonly string[], opts: { now?: number; minValidMs?: number } = {}): boolean {
  const x = new X509Certificate(certPem);
  const now = opts.now ?? Date.now();
  if (new Date(x.validTo).getTime() < now + (opts.minValidMs ?? 7 * 24 * 3600 * 1000)) return false;
  return names.every((n) => (isIP(n) ? x.checkIP(n) !== undefined : x.checkHost(n) !== undefined));
}
