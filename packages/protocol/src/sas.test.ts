import { describe, expect, it } from 'vitest';
import { computeSignature, createSasToken, generateKey, parseSasToken, verifySasToken } from './sas.js';

describe('SAS tokens', () => {
  const key = generateKey();
  const now = 1_700_000_000;

  it('verifies what the SDKs produce, in any field order, with a 5-minute skew', () => {
    const t = createSasToken({ audience: 'hub.example/devices/d1', key, expirySeconds: now + 60 });
    const p = parseSasToken(t);
    expect(p.ok && p.value.audience).toBe('hub.example/devices/d1');
    if (!p.ok) return;
    expect(verifySasToken(p.value, { audiences: ['hub.example/devices/d1'], keys: [key], nowSeconds: now }).ok).toBe(true);
    expect(verifySasToken(p.value, { audiences: ['HUB.example/devices/D1'], keys: [key], nowSeconds: now + 60 + 299 }).ok).toBe(true);
    const reordered = `SharedAccessSignature se=${now + 60}&sig=${encodeURIComponent(computeSignature(key, p.value.rawSr, now + 60))}&sr=${p.value.rawSr}`;
    const r = parseSasToken(reordered);
    expect(r.ok && verifySasToken(r.value, { audiences: ['hub.example/devices/d1'], keys: [key], nowSeconds: now }).ok).toBe(true);
  });

  it('refuses expired, foreign and forged tokens', () => {
    const t = parseSasToken(createSasToken({ audience: 'hub.example/devices/d1', key, expirySeconds: now }));
    if (!t.ok) throw new Error('parse');
    expect(verifySasToken(t.value, { audiences: ['hub.example/devices/d1'], keys: [key], nowSeconds: now + 301 })).toEqual({ ok: false, error: 'expired' });
    expect(verifySasToken(t.value, { audiences: ['hub.example/devices/d2'], keys: [key], nowSeconds: now })).toEqual({ ok: false, error: 'wrong-audience' });
    expect(verifySasToken(t.value, { audiences: ['hub.example/devices/d1'], keys: [generateKey()], nowSeconds: now })).toEqual({ ok: false, error: 'bad-signature' });
    expect(parseSasToken('SharedAccessSignature sr=x&sig=y').ok).toBe(false);
    expect(parseSasToken('Bearer abc').ok).toBe(false);
    expect(parseSasToken('SharedAccessSignature sr=%E0%A4%A&sig=y&se=1').ok).toBe(false);
  });
});
