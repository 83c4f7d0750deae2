import { X509Certificate } from 'node:crypto';
import forge from 'node-forge';
import { describe, expect, it } from 'vitest';
import { certificateCovers, issueCa, issueServerCertificate } from './pki.js';

// Each certificate's fields, read back two ways: node's X509Certificate and node-forge's parser (for the
// extensions' flags, which node does not expose).
const HOUR = 3600 * 1000;
const DAY = 24 * HOUR;
const YEAR = 365 * DAY;
const NOW = Date.UTC(2030, 0, 1);

function extensions(pem: string): Record<string, Record<string, unknown>> {
  const c = forge.pki.certificateFromPem(pem);
  return Object.fromEntries((c.extensions as { name: string }[]).map((e) => [e.name, e as Record<string, unknown>]));
}
const validity = (pem: string): [number, number] => {
  const x = new X509Certificate(pem);
  return [new Date(x.validFrom).getTime(), new Date(x.validTo).getTime()];
};

// Certificates are issued inside each test, not when the file loads: mutation testing's per-test coverage then
// knows which tests reach the issuing code (code run at load time counts as reached by none).
function chain() {
  const root = issueCa('Kedge root', { years: 10, now: NOW });
  const device = issueCa('device-7 CA', { years: 5, parent: root, now: NOW });
  const server = issueServerCertificate(device, ['edge.local', '127.0.0.1', '::1', '10.0.0.1.nip.io'], { years: 2, now: NOW });
  return { root, device, server };
}

describe('pki: what each certificate says', () => {

  it('a root CA: self-issued, CA and critical, signs certificates only, no path length, an hour back to years ahead', () => {
    const { root } = chain();
    const x = new X509Certificate(root.cert);
    expect(x.subject.split('\n').sort()).toEqual(['CN=Kedge root', 'O=Kedge']);
    expect(x.issuer).toBe(x.subject);
    expect(validity(root.cert)).toEqual([NOW - HOUR, NOW + 10 * YEAR]);
    const ext = extensions(root.cert);
    expect(ext['basicConstraints']).toMatchObject({ cA: true, critical: true });
    expect(ext['basicConstraints']?.['pathLenConstraint']).toBeUndefined();
    expect(ext['keyUsage']).toMatchObject({ keyCertSign: true, cRLSign: true, digitalSignature: false, keyEncipherment: false, critical: true });
    expect(ext['subjectKeyIdentifier']).toBeDefined();
    expect(ext['extKeyUsage']).toBeUndefined();
    expect(ext['subjectAltName']).toBeUndefined();
  });

  it('an intermediate CA: issued by its parent, path length 0 (no CA below it), critical', () => {
    const { root, device } = chain();
    const x = new X509Certificate(device.cert);
    expect(x.subject.split('\n').sort()).toEqual(['CN=device-7 CA', 'O=Kedge']);
    expect(x.issuer).toBe(new X509Certificate(root.cert).subject);
    expect(x.checkIssued(new X509Certificate(root.cert))).toBe(true);
    expect(validity(device.cert)).toEqual([NOW - HOUR, NOW + 5 * YEAR]);
    const ext = extensions(device.cert);
    expect(ext['basicConstraints']).toMatchObject({ cA: true, pathLenConstraint: 0, critical: true });
    expect(ext['keyUsage']).toMatchObject({ keyCertSign: true, cRLSign: true, digitalSignature: false, critical: true });
  });

  it('a server certificate: not a CA, TLS server use only, the first name as CN, DNS and IP names as such', () => {
    const { device, server } = chain();
    const x = new X509Certificate(server.cert);
    expect(x.subject.split('\n').sort()).toEqual(['CN=edge.local', 'O=Kedge']);
    expect(x.issuer).toBe(new X509Certificate(device.cert).subject);
    expect(x.ca).toBe(false);
    expect(validity(server.cert)).toEqual([NOW - HOUR, NOW + 2 * YEAR]);
    expect(x.keyUsage).toEqual(['1.3.6.1.5.5.7.3.1']);
    // A name that only starts or ends like an IPv4 address is a DNS name.
    expect(x.subjectAltName).toBe('DNS:edge.local, IP Address:127.0.0.1, IP Address:0:0:0:0:0:0:0:1, DNS:10.0.0.1.nip.io');
    const ext = extensions(server.cert);
    expect(ext['basicConstraints']).toMatchObject({ cA: false, critical: true });
    expect(ext['basicConstraints']?.['pathLenConstraint']).toBeUndefined();
    expect(ext['keyUsage']).toMatchObject({ digitalSignature: true, keyEncipherment: true, keyCertSign: false, cRLSign: false, critical: true });
    expect(ext['extKeyUsage']).toMatchObject({ serverAuth: true });
    expect(ext['subjectKeyIdentifier']).toBeDefined();
  });

  it('IPv4 literals of one to three digits per part are IP names; other dotted names are DNS names', () => {
    const root = issueCa('Kedge root', { years: 10, now: NOW });
    const c = issueServerCertificate(root, ['192.168.100.200', '1.2.3', 'x1.2.3.4', '1.2.3.4x', '1234.1.1.1'], { years: 1, now: NOW });
    expect(new X509Certificate(c.cert).subjectAltName).toBe('IP Address:192.168.100.200, DNS:1.2.3, DNS:x1.2.3.4, DNS:1.2.3.4x, DNS:1234.1.1.1');
  });

  it('no names: CN localhost and no subject alternative names', () => {
    const root = issueCa('Kedge root', { years: 10, now: NOW });
    const c = issueServerCertificate(root, [], { years: 1, now: NOW });
    const x = new X509Certificate(c.cert);
    expect(x.subject.split('\n').sort()).toEqual(['CN=localhost', 'O=Kedge']);
    expect(x.subjectAltName ?? '').toBe('');
  });

  it('without `now`, validity starts an hour before the present', () => {
    const before = Date.now();
    const ca = issueCa('now CA', { years: 1 });
    const c = issueServerCertificate(ca, ['a.local'], { years: 1 });
    const after = Date.now();
    for (const pem of [ca.cert, c.cert]) {
      const [from, to] = validity(pem);
      // X.509 times have whole seconds.
      expect(from).toBeGreaterThanOrEqual(Math.floor((before - HOUR) / 1000) * 1000);
      expect(from).toBeLessThanOrEqual(after - HOUR);
      expect(to - from).toBe(YEAR + HOUR);
    }
  });

  it('serial numbers: 16 bytes, positive (top bit clear), distinct', () => {
    const { root, device, server } = chain();
    const serials = [root, device, server, ...Array.from({ length: 6 }, () => issueCa('s', { years: 1, now: NOW }))].map(
      (c) => forge.pki.certificateFromPem(c.cert).serialNumber,
    );
    for (const s of serials) {
      // A leading zero byte is dropped by the encoding (DER integers are minimal): at most 16 bytes, then.
      expect(s).toMatch(/^([0-9a-f]{2}){1,16}$/);
      if (s.length === 32) expect(parseInt(s.slice(0, 2), 16)).toBeLessThan(0x80);
    }
    // Nine random serials all shorter than 16 bytes would mean the top byte is forced to zero.
    expect(serials.some((s) => s.length === 32)).toBe(true);
    expect(new Set(serials).size).toBe(serials.length);
  });
});

describe('certificateCovers', () => {
  const notAfter = NOW + YEAR;
  const issued = () => {
    const root = issueCa('covers CA', { years: 10, now: NOW });
    return { root, c: issueServerCertificate(root, ['edge.local', '127.0.0.1'], { years: 1, now: NOW }) };
  };

  it('needs every name: DNS by host, IP by address', () => {
    const { c } = issued();
    expect(certificateCovers(c.cert, ['edge.local', '127.0.0.1'], { now: NOW })).toBe(true);
    expect(certificateCovers(c.cert, ['127.0.0.1'], { now: NOW })).toBe(true);
    expect(certificateCovers(c.cert, [], { now: NOW })).toBe(true);
    expect(certificateCovers(c.cert, ['edge.local', 'other.local'], { now: NOW })).toBe(false);
    expect(certificateCovers(c.cert, ['edge.local', '127.0.0.2'], { now: NOW })).toBe(false);
    expect(certificateCovers(c.cert, ['::1'], { now: NOW })).toBe(false);
  });

  it('the default margin is 7 days: exactly 7 days left covers, a millisecond less does not', () => {
    const { c } = issued();
    expect(certificateCovers(c.cert, ['edge.local'], { now: notAfter - 7 * DAY })).toBe(true);
    expect(certificateCovers(c.cert, ['edge.local'], { now: notAfter - 7 * DAY + 1 })).toBe(false);
  });

  it('a given margin: exactly that much left covers, a millisecond less does not; an expired one never', () => {
    const { c } = issued();
    expect(certificateCovers(c.cert, ['edge.local'], { now: NOW, minValidMs: notAfter - NOW })).toBe(true);
    expect(certificateCovers(c.cert, ['edge.local'], { now: NOW, minValidMs: notAfter - NOW + 1 })).toBe(false);
    expect(certificateCovers(c.cert, ['edge.local'], { now: notAfter, minValidMs: 0 })).toBe(true);
    expect(certificateCovers(c.cert, ['edge.local'], { now: notAfter + 1, minValidMs: 0 })).toBe(false);
  });

  it('without `now`, measures from the present', () => {
    const { root } = issued();
    const fresh = issueServerCertificate(root, ['edge.local'], { years: 1 });
    expect(certificateCovers(fresh.cert, ['edge.local'])).toBe(true);
    expect(certificateCovers(fresh.cert, ['edge.local'], { minValidMs: YEAR })).toBe(false);
  });
});
