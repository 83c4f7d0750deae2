import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import type { Result } from '@kedge/contracts';
import { err, ok } from '@kedge/contracts';

/** Clock skew tolerated when checking a token's expiry (IoT Hub and edgeHub allow 5 minutes). */
export const SAS_SKEW_SECONDS = 300;

/** A parsed `SharedAccessSignature sr=…&sig=…&se=…[&skn=…]` token. `rawSr` is kept URL-encoded: it is what was signed. */
export interface SasToken {
  readonly rawSr: string;
  readonly audience: string;
  readonly sig: string;
  readonly se: number;
  readonly skn?: string;
}

/** Reasons a token is refused; stable strings, logged and mapped to 401. */
export const SasRejection = {
  Malformed: 'malformed',
  Expired: 'expired',
  WrongAudience: 'wrong-audience',
  BadSignature: 'bad-signature',
} as const;
export type SasRejection = (typeof SasRejection)[keyof typeof SasRejection];

/** `encodeURIComponent` plus `!'()*`, as the Azure SDKs encode the resource URI. */
export const encodeUriComponentStrict = (s: string): string =>
  encodeURIComponent(s).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);

/** Parses a SAS token; field order does not matter (Node emits `sr, sig, skn, se`). Never throws. */
export function parseSasToken(text: string): Result<SasToken, SasRejection> {
  const trimmed = text.trim();
  const prefix = 'SharedAccessSignature ';
  if (!trimmed.startsWith(prefix)) return err(SasRejection.Malformed);
  const fields = new Map<string, string>();
  for (const part of trimmed.slice(prefix.length).trim().split('&')) {
    const eq = part.indexOf('=');
    if (eq <= 0) return err(SasRejection.Malformed);
    fields.set(part.slice(0, eq), part.slice(eq + 1));
  }
  const rawSr = fields.get('sr');
  const sig = fields.get('sig');
  const se = fields.get('se');
  if (rawSr === undefined || sig === undefined || se === undefined || !/^\d+$/.test(se)) return err(SasRejection.Malformed);
  try {
    const skn = fields.get('skn');
    return ok({
      rawSr,
      audience: decodeURIComponent(rawSr),
      sig: decodeURIComponent(sig),
      se: Number(se),
      ...(skn === undefined ? {} : { skn: decodeURIComponent(skn) }),
    });
  } catch {
    return err(SasRejection.Malformed);
  }
}

/** base64(HMAC-SHA256(base64decode(key), rawSr + "\n" + se)). */
export function computeSignature(base64Key: string, rawSr: string, se: number): string {
  return createHmac('sha256', Buffer.from(base64Key, 'base64')).update(`${rawSr}\n${se}`, 'utf8').digest('base64');
}

function sameSignature(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}

/**
 * Checks expiry (with {@link SAS_SKEW_SECONDS}), that the audience is one of `audiences` (case-insensitive, a
 * trailing `/` ignored) and that the signature matches one of `keys` (constant-time).
 */
export function verifySasToken(
  token: SasToken,
  opts: { audiences: readonly string[]; keys: readonly string[]; nowSeconds: number },
): Result<void, SasRejection> {
  if (token.se + SAS_SKEW_SECONDS < opts.nowSeconds) return err(SasRejection.Expired);
  const aud = token.audience.replace(/\/+$/, '').toLowerCase();
  if (!opts.audiences.some((a) => a.toLowerCase() === aud)) return err(SasRejection.WrongAudience);
  for (const key of opts.keys) {
    if (key !== '' && sameSignature(computeSignature(key, token.rawSr, token.se), token.sig)) return ok(undefined);
  }
  return err(SasRejection.BadSignature);
}

/** Builds a SAS token the way the Azure SDKs do. */
export function createSasToken(opts: { audience: string; key: string; expirySeconds: number; keyName?: string }): string {
  const sr = encodeUriComponentStrict(opts.audience);
  const sig = encodeURIComponent(computeSignature(opts.key, sr, opts.expirySeconds));
  const skn = opts.keyName === undefined ? '' : `&skn=${encodeURIComponent(opts.keyName)}`;
  return `SharedAccessSignature sr=${sr}&sig=${sig}${skn}&se=${opts.expirySeconds}`;
}

/** A new 32-byte symmetric key, base64 (what IoT Hub generates for empty keys). */
export const generateKey = (): string => randomBytes(32).toString('base64');

/** True for a base64 string that decodes to 16–64 bytes (IoT Hub's accepted key sizes). */
export function isValidKey(key: string): boolean {
  if (!/^[A-Za-z0-9+/]+={0,2}$/.test(key)) return false;
  const n = Buffer.from(key, 'base64').length;
  return n >= 16 && n <= 64;
}

/** Parses `Key=Value;Key=Value` connection strings (values may contain `=`). */
export function parseConnectionString(text: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const part of text.split(';')) {
    const eq = part.indexOf('=');
    if (eq > 0) out.set(part.slice(0, eq).trim(), part.slice(eq + 1).trim());
  }
  return out;
}
