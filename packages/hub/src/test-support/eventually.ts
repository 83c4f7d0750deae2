/**
 * Polls `probe` until it returns a value other than `undefined`/`false` (or stops throwing), or fails after
 * `timeoutMs` with the last error. Tests wait for conditions with deadlines, never with sleeps.
 */
export async function eventually<T>(probe: () => Promise<T | undefined | false> | T | undefined | false, opts: { timeoutMs?: number; what?: string } = {}): Promise<T> {
  const deadline = Date.now() + (opts.timeoutMs ?? 15_000);
  let last: unknown;
  let delay = 10;
  for (;;) {
    try {
      const v = await probe();
      if (v !== undefined && v !== false) return v;
      last = undefined;
    } catch (e) {
      last = e;
    }
    if (Date.now() > deadline) {
      throw new Error(`Timed out waiting for ${opts.what ?? 'condition'}${last instanceof Error ? `: ${last.message}` : ''}`, { cause: last });
    }
    await new Promise((r) => setTimeout(r, delay));
    delay = Math.min(delay * 2, 200);
  }
}
