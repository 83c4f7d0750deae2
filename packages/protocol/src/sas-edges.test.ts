import { describe, expect, it } from 'vitest';
import {
  SAS_SKEW_SECONDS,
  computeSignature,
  createSasToken,
  encodeUriComponentStrict,
  generateKey,
  isValidKey,
  parseConnectionString,
  parseSasToken,
  verifySasToken,
} from './sas.js';
import type { SasToken } from './sas.js';

const KEY = Buffer.alloc(32, 7).toString('base64');
const NOW = 1_700_000_000;
// HMAC-SHA256(base64decode(KEY), "hub.example%2Fdevices%2Fd1\n1700000000"), computed once outside the code under test.
const VECTOR = 'LlXfXDTeqilmkgj8IorkGwu+95o4VIesFSN/fplM0io=';

function parsed(text: string): SasToken {
  const r = parseSasToken(text);
  if (!r.ok) throw new Error(`expected ${text} to parse, got ${r.error}`);
  return r.value;
}

describe('computeSignature and createSasToken', () => {
  it('sign the URL-encoded resource and the expiry, as the SDKs do', () => {
    expect(computeSignature(KEY, 'hub.example%2Fdevices%2Fd1', NOW)).toBe(VECTOR);
    expect(createSasToken({ audience: 'hub.example/devices/d1', key: KEY, expirySeconds: NOW })).toBe(
      `SharedAccessSignature sr=hub.example%2Fdevices%2Fd1&sig=${encodeURIComponent(VECTOR)}&se=${NOW}`,
    );
    expect(createSasToken({ audience: 'hub.example/devices/d1', key: KEY, expirySeconds: NOW, keyName: 'a b' })).toBe(
      `SharedAccessSignature sr=hub.example%2Fdevices%2Fd1&sig=${encodeURIComponent(VECTOR)}&skn=a%20b&se=${NOW}`,
    );
  });

  it("encode !'()* as the SDKs do", () => {
    expect(encodeUriComponentStrict("a!'()*/b")).toBe('a%21%27%28%29%2A%2Fb');
  });
});

describe('parseSasToken', () => {
  it('decodes sig and skn, keeps sr encoded, tolerates surrounding spaces and = inside values', () => {
    const t = parsed(`  SharedAccessSignature  sr=hub.example%2Fdevices%2Fd1&sig=${VECTOR}&skn=svc%20x&se=${NOW} `);
    expect(t).toEqual({ rawSr: 'hub.example%2Fdevices%2Fd1', audience: 'hub.example/devices/d1', sig: VECTOR, se: NOW, skn: 'svc x' });
    expect('skn' in parsed(`SharedAccessSignature sr=a&sig=b&se=1`)).toBe(false);
  });

  it('refuses every malformed shape', () => {
    for (const text of [
      '',
      'SharedAccessSignature',
      'SharedAccessSignaturesr=a&sig=b&se=1',
      'sharedaccesssignature sr=a&sig=b&se=1',
      'SharedAccessSignature sr=a&sig=b&se=1&junk',
      'SharedAccessSignature sr=a&sig=b&=x&se=1',
      'SharedAccessSignature sig=b&se=1',
      'SharedAccessSignature sr=a&se=1',
      'SharedAccessSignature sr=a&sig=b',
      'SharedAccessSignature sr=a&sig=b&se=',
      'SharedAccessSignature sr=a&sig=b&se=12a',
      'SharedAccessSignature sr=a&sig=b&se=a12',
      'SharedAccessSignature sr=a&sig=b&se=-1',
      'SharedAccessSignature sr=a&sig=b&se=1.5',
      'SharedAccessSignature sr=a&sig=%E0%A4%A&se=1',
      'SharedAccessSignature sr=a&sig=b&skn=%E0%A4%A&se=1',
    ]) {
      expect(parseSasToken(text), text).toEqual({ ok: false, error: 'malformed' });
    }
  });
});

describe('verifySasToken', () => {
  const token = parsed(createSasToken({ audience: 'hub.example/devices/d1', key: KEY, expirySeconds: NOW }));
  const opts = { audiences: ['hub.example/devices/d1'], keys: [KEY], nowSeconds: NOW };

  it('accepts up to exactly SAS_SKEW_SECONDS past expiry, not a second more', () => {
    expect(SAS_SKEW_SECONDS).toBe(300);
    expect(verifySasToken(token, { ...opts, nowSeconds: NOW + 300 })).toEqual({ ok: true, value: undefined });
    expect(verifySasToken(token, { ...opts, nowSeconds: NOW + 301 })).toEqual({ ok: false, error: 'expired' });
    expect(verifySasToken(token, { ...opts, nowSeconds: NOW - 10_000 })).toEqual({ ok: true, value: undefined });
  });

  it('matches the audience case-insensitively, ignoring trailing slashes only', () => {
    const t = (aud: string): SasToken => parsed(createSasToken({ audience: aud, key: KEY, expirySeconds: NOW }));
    expect(verifySasToken(t('HUB.example/devices/d1//'), opts).ok).toBe(true);
    expect(verifySasToken(t('hub.example/devices/d1'), { ...opts, audiences: ['other', 'HUB.EXAMPLE/devices/D1'] }).ok).toBe(true);
    for (const aud of ['/hub.example/devices/d1', 'hub.example//devices/d1', 'hub.example/devices/d1x', 'hub.example/devices', 'x']) {
      expect(verifySasToken(t(aud), opts), aud).toEqual({ ok: false, error: 'wrong-audience' });
    }
    expect(verifySasToken(token, { ...opts, audiences: [] })).toEqual({ ok: false, error: 'wrong-audience' });
  });

  it('tries every key slot, never matches an empty one, and refuses wrong-length signatures without throwing', () => {
    expect(verifySasToken(token, { ...opts, keys: [generateKey(), KEY] }).ok).toBe(true);
    expect(verifySasToken(token, { ...opts, keys: [] })).toEqual({ ok: false, error: 'bad-signature' });
    const emptyKeyed = parsed(createSasToken({ audience: 'hub.example/devices/d1', key: '', expirySeconds: NOW }));
    expect(verifySasToken(emptyKeyed, { ...opts, keys: ['', KEY] })).toEqual({ ok: false, error: 'bad-signature' });
    for (const sig of [VECTOR.slice(0, -1), `${VECTOR}A`, '', VECTOR.replace('L', 'M')]) {
      expect(verifySasToken({ ...token, sig }, opts), sig).toEqual({ ok: false, error: 'bad-signature' });
    }
  });

  it('refuses a signature over another expiry or resource', () => {
    expect(verifySasToken({ ...token, se: NOW + 1 }, opts)).toEqual({ ok: false, error: 'bad-signature' });
    expect(verifySasToken({ ...token, rawSr: 'hub.example/devices/d1' }, opts)).toEqual({ ok: false, error: 'bad-signature' });
  });
});

describe('keys and connection strings', () => {
  it('generates 32-byte base64 keys', () => {
    const k = generateKey();
    expect(Buffer.from(k, 'base64')).toHaveLength(32);
    expect(isValidKey(k)).toBe(true);
    expect(generateKey()).not.toBe(k);
  });

  it('accepts base64 keys of 16 to 64 bytes only', () => {
    const b64 = (n: number): string => Buffer.alloc(n, 1).toString('base64');
    expect([15, 16, 17, 64, 65].map((n) => isValidKey(b64(n)))).toEqual([false, true, true, true, false]);
    for (const bad of ['', `!${b64(32)}`, `${b64(32)}!`, `${b64(30)}===`, `${b64(32)} `, 'a-b_'.repeat(8)]) expect(isValidKey(bad), bad).toBe(false);
    expect(isValidKey('ab+/'.repeat(8))).toBe(true);
  });

  it('parses Key=Value;… connection strings, values may hold =, parts without a key skipped', () => {
    const m = parseConnectionString(' HostName = hub.example ;DeviceId=d1;SharedAccessKey=abc==;junk;=novalue;;');
    expect([...m]).toEqual([
      ['HostName', 'hub.example'],
      ['DeviceId', 'd1'],
      ['SharedAccessKey', 'abc=='],
    ]);
    expect(parseConnectionString('').size).toBe(0);
  });
});
