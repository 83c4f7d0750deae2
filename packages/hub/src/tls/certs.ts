import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { certificateCovers, issueCa, issueServerCertificate } from '@kedge/protocol';
import { ensurePrivateDir, tightenFile, writePrivateFile } from '../storage/files.js';

/** PEM material for the hub's TLS listeners. `ca` is what clients must trust. */
export interface TlsMaterial {
  readonly ca: string;
  readonly cert: string;
  readonly key: string;
}

const FILES = { ca: 'ca.pem', caKey: 'ca-key.pem', cert: 'server.pem', key: 'server-key.pem' } as const;

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
    const issued = issueCa('Kedge hub CA', { years: 10 });
    ca = issued.cert;
    caKey = issued.key;
    writePrivateFile(path(FILES.caKey), caKey);
    writeFileSync(path(FILES.ca), ca, { mode: 0o644 });
  }
  if (existsSync(path(FILES.cert)) && existsSync(path(FILES.key))) {
    const cert = readFileSync(path(FILES.cert), 'utf8');
    if (certificateCovers(cert, names)) return { ca, cert, key: readFileSync(path(FILES.key), 'utf8') };
  }
  const { cert, key } = issueServerCertificate({ cert: ca, key: caKey }, names, { years: 2 });
  writePrivateFile(path(FILES.key), key);
  writeFileSync(path(FILES.cert), cert, { mode: 0o644 });
  return { ca, cert, key };
}
