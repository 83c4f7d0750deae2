import { generateKeyPairSync, randomBytes, X509Certificate } from 'node:crypto';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { join } from 'node:path';
import forge from 'node-forge';
import { ensurePrivateDir, tightenFile, writePrivateFile } from '../storage/files.js';

/** PEM material for the hub's TLS listeners. `ca` is what clients must trust. */
export interface TlsMaterial {
  readonly ca: string;
  readonly cert: string;
  readonly key: string;
}

const FILES = { ca: 'ca.pem', caKey: 'ca-key.pem', cert: 'server.pem', key: 'server-key.pem' } as const;

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

function issue(opts: {
  subjectCn: string;
  publicPem: string;
  signerKeyPem: string;
  issuer?: forge.pki.Certificate;
  isCa: boolean;
  altNames?: readonly string[];
  years: number;
}): string {
  const cert = forge.pki.createCertificate();
  cert.publicKey = forge.pki.publicKeyFromPem(opts.publicPem);
  cert.serialNumber = serial();
  const now = new Date();
  cert.validity.notBefore = new Date(now.getTime() - 60 * 60 * 1000);
  cert.validity.notAfter = new Date(now.getTime() + opts.years * 365 * 24 * 3600 * 1000);
  const subject = [{ name: 'commonName', value: opts.subjectCn }, { name: 'organizationName', value: 'Kedge' }];
  cert.setSubject(subject);
  cert.setIssuer(opts.issuer ? opts.issuer.subject.attributes : subject);
  const ext: object[] = [
    { name: 'basicConstraints', cA: opts.isCa, critical: true },
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
  cert.sign(forge.pki.privateKeyFromPem(opts.signerKeyPem), forge.md.sha256.create());
  return forge.pki.certificateToPem(cert);
}

function covers(certPem: string, names: readonly string[]): boolean {
  const x = new X509Certificate(certPem);
  if (new Date(x.validTo).getTime() < Date.now() + 7 * 24 * 3600 * 1000) return false;
  return names.every((n) => (isIP(n) ? x.checkIP(n) !== undefined : x.checkHost(n) !== undefined));
}

/**
 * Loads the hub's CA and server certificate from `dir`, generating them on first start: a 10-year RSA-2048 CA
 * ("Kedge hub CA") and a 2-year server certificate for `names` (DNS names and IP addresses). The server certificate
 * is re-issued (same CA) when it no longer covers every name or is about to expire, so clients keep trusting it.
 * `dir` is 0700 and the private keys 0600, also when they already existed with wider modes.
 */
export function ensureCertificates(dir: string, names: readonly string[]): TlsMaterial {
  ensurePrivateDir(dir);
  const path = (f: string): string => join(dir, f);
  // Private keys are 0600 even when an older release (or a copy) left them wider.
  tightenFile(path(FILES.caKey));
  tightenFile(path(FILES.key));
  let ca: string;
  let caKey: string;
  if (existsSync(path(FILES.ca)) && existsSync(path(FILES.caKey))) {
    ca = readFileSync(path(FILES.ca), 'utf8');
    caKey = readFileSync(path(FILES.caKey), 'utf8');
  } else {
    const kp = rsaKeyPair();
    caKey = kp.privatePem;
    ca = issue({ subjectCn: 'Kedge hub CA', publicPem: kp.publicPem, signerKeyPem: caKey, isCa: true, years: 10 });
    writePrivateFile(path(FILES.caKey), caKey);
    writeFileSync(path(FILES.ca), ca, { mode: 0o644 });
  }
  if (existsSync(path(FILES.cert)) && existsSync(path(FILES.key))) {
    const cert = readFileSync(path(FILES.cert), 'utf8');
    if (covers(cert, names)) return { ca, cert, key: readFileSync(path(FILES.key), 'utf8') };
  }
  const kp = rsaKeyPair();
  const cert = issue({
    subjectCn: names[0] ?? 'localhost',
    publicPem: kp.publicPem,
    signerKeyPem: caKey,
    issuer: forge.pki.certificateFromPem(ca),
    isCa: false,
    altNames: names,
    years: 2,
  });
  writePrivateFile(path(FILES.key), kp.privatePem);
  writeFileSync(path(FILES.cert), cert, { mode: 0o644 });
  return { ca, cert, key: kp.privatePem };
}
