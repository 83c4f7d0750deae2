import { typeName, type IssueCollector, type PathSegment } from './issues.js';

/**
 * edgeAgent's `ChunkedProperty` convention: a long JSON string in a module's `settings` is split over `<base>`,
 * `<base>01` … `<base>99`, because IoT Hub tooling keeps twin string values to 512 characters. Kedge uses it for
 * `createOptions` (as IoT Edge does), for `k8sOptions` (the module's Kubernetes options) and for `processOptions`
 * (the module's process form).
 */
export type ChunkedSetting = 'createOptions' | 'k8sOptions' | 'processOptions';

/** The length IoT Edge's tooling splits chunked settings at. */
export const CHUNK_LENGTH = 512;

/** The key names of a chunked setting, in order: `createOptions`, `createOptions01`, … `createOptions99`. */
export function chunkKey(i: number, base: ChunkedSetting = 'createOptions'): string {
  return i === 0 ? base : `${base}${String(i).padStart(2, '0')}`;
}

/** True for `base` and its chunk keys in any letter case (`createOptions`, `CREATEOPTIONS07`, `createoptions123`). */
export function isChunkKey(key: string, base: ChunkedSetting): boolean {
  return new RegExp(`^${base}\\d*$`, 'i').test(key);
}

/**
 * Reassembles a chunked setting exactly as edgeAgent does: keys are matched case-insensitively and must be
 * contiguous from `<base>` on; each must be a string. Returns the text (`undefined` when absent) or records an error
 * and returns `null`.
 */
export function joinChunks(
  settings: Record<string, unknown>,
  base: ChunkedSetting,
  path: readonly PathSegment[],
  issues: IssueCollector,
): string | undefined | null {
  const chunks = new Map<number, { key: string; value: unknown }>();
  for (const [key, value] of Object.entries(settings)) {
    if (!isChunkKey(key, base)) continue;
    const digits = key.slice(base.length);
    const n = digits === '' ? 0 : Number(digits);
    if ((digits !== '' && digits.length !== 2) || (digits !== '' && n === 0)) {
      issues.error([...path, key], `${base} chunk keys are ${chunkKey(0, base)}, ${chunkKey(1, base)} … ${chunkKey(99, base)}`);
      return null;
    }
    if (chunks.has(n)) {
      issues.error([...path, key], `given twice (chunk keys are matched regardless of letter case, as edgeAgent does)`);
      return null;
    }
    chunks.set(n, { key, value });
  }
  if (chunks.size === 0) return undefined;
  let text = '';
  for (let i = 0; i < chunks.size; i++) {
    const c = chunks.get(i);
    if (!c) {
      const found = [...chunks.values()].map((x) => x.key).join(', ');
      issues.error([...path, chunkKey(i, base)], `missing: ${base} chunks must be contiguous (found ${found})`);
      return null;
    }
    if (typeof c.value !== 'string') {
      issues.error([...path, c.key], `expected a JSON string, got ${typeName(c.value)}`);
      return null;
    }
    if (c.value.length > CHUNK_LENGTH && chunks.size > 1) issues.warn([...path, c.key], `chunk is ${c.value.length} characters; IoT Hub twins keep string values to ${CHUNK_LENGTH}`);
    text += c.value;
  }
  return text;
}

/**
 * Splits a JSON text into the settings keys of a chunked setting (`{"k8sOptions": "…", "k8sOptions01": "…"}`), each
 * at most {@link CHUNK_LENGTH} characters: the inverse of {@link joinChunks}. At most 100 chunks.
 */
export function splitChunks(text: string, base: ChunkedSetting): Record<string, string> {
  const out: Record<string, string> = {};
  const n = Math.max(1, Math.ceil(text.length / CHUNK_LENGTH));
  if (n > 100) throw new RangeError(`${base} of ${text.length} characters needs more than 100 chunks of ${CHUNK_LENGTH}`);
  for (let i = 0; i < n; i++) out[chunkKey(i, base)] = text.slice(i * CHUNK_LENGTH, (i + 1) * CHUNK_LENGTH);
  return out;
}

/**
 * Parses the (reassembled) text of a JSON-object setting (`k8sOptions`, `processOptions`): `""` and `"null"` mean
 * absent (`value` undefined); invalid JSON and anything but an object are errors at `path` (`expected` describes
 * the object in the message). The object is JSON.parse's own: callers validate it with their schema.
 */
export function parseJsonObjectSetting(
  text: string,
  path: readonly PathSegment[],
  issues: IssueCollector,
  expected = 'a JSON object',
): { ok: true; value: Record<string, unknown> | undefined } | { ok: false } {
  const trimmed = text.trim();
  if (trimmed === '' || trimmed === 'null') return { ok: true, value: undefined };
  let raw: unknown;
  try {
    raw = JSON.parse(trimmed);
  } catch (e) {
    issues.error(path, `not valid JSON: ${(e as Error).message}`);
    return { ok: false };
  }
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
    issues.error(path, `must be ${expected}, got ${typeName(raw)}`);
    return { ok: false };
  }
  return { ok: true, value: raw as Record<string, unknown> };
}
