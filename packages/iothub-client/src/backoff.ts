/** Exponential backoff with jitter between reconnect attempts. */
export interface BackoffOptions {
  /** First delay. @default 1000 */
  readonly initialMs?: number;
  /** Cap. @default 60_000 */
  readonly maxMs?: number;
}

/**
 * The delay before reconnect attempt `attempt` (1-based): "equal jitter", half of `min(max, initial·2^(attempt-1))`
 * fixed plus up to the other half at random, so that a fleet of devices losing the hub at once does not come back
 * in lock step, and no delay collapses to 0.
 */
export function backoffDelay(attempt: number, opts: BackoffOptions = {}, random: () => number = Math.random): number {
  const initial = opts.initialMs ?? 1000;
  const max = opts.maxMs ?? 60_000;
  const base = Math.min(max, initial * 2 ** Math.min(Math.max(attempt - 1, 0), 30));
  return Math.round(base / 2 + random() * (base / 2));
}
