import { X509Certificate } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { certificateCovers, issueCa, issueServerCertificate } from './pki.js';

describe('pki', () => {
  // Issued in each test, not at load time, so that mutation testing's per-test coverage sees who reaches it.
  const newRoot = () => issueCa('Kedge test CA', { years: 10 });
  it('issues a self-signed CA and a server certificate it verifies, covering DNS and IP names', () => {
    const root = newRoot();
    const ca = new X509Certificate(root.cert);
    expect(ca.ca).toBe(true);
    expect(ca.verify(ca.publicKey)).toBe(true);
    const server = issueServerCertificate(root, ['edge.local', '127.0.0.1', '::1'], { years: 2 });
    const x = new X509Certificate(server.cert);
    expect(x.ca).toBe(false);
    expect(x.verify(ca.publicKey)).toBe(true);
    expect(x.checkHost('edge.local')).toBe('edge.local');
    expect(x.checkIP('127.0.0.1')).toBe('127.0.0.1');
    expect(x.checkIP('::1')).toBe('::1');
    expect(certificateCovers(server.cert, ['edge.local', '127.0.0.1'])).toBe(true);
    expect(certificateCovers(server.cert, ['other.local'])).toBe(false);
  });
  it('treats a certificate close to expiry as not covering its names', () => {
    const root = newRoot();
    const server = issueServerCertificate(root, ['a.local'], { years: 1 });
    expect(certificateCovers(server.cert, ['a.local'], { now: Date.now() + 360 * 24 * 3600 * 1000 })).toBe(false);
  });
  it('issues an intermediate (per-device) CA under a parent that chains to it', () => {
    const root = newRoot();
    const device = issueCa('device-1 CA', { years: 5, parent: root });
    const x = new X509Certificate(device.cert);
    expect(x.ca).toBe(true);
    expect(x.verify(new X509Certificate(root.cert).publicKey)).toBe(true);
    expect(x.issuer).toContain('Kedge test CA');
    const leaf = new X509Certificate(issueServerCertificate(device, ['edgehub'], { years: 1 }).cert);
    expect(leaf.verify(x.publicKey)).toBe(true);
  });
});
