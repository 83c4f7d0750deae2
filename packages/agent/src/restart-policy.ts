import type { RestartPolicy } from '@kedge/manifest';

/**
 * IoT Edge's restart policy (iotedge-protocols.md §5.3, edgeAgent's RestartPolicyManager), one copy for both
 * runtimes. The process runtime applies it directly; on Kubernetes the kubelet restarts containers with the same
 * back-off (10 s doubling to 5 min, reset after 10 minutes running) and the controller only parks modules whose
 * policy says not to restart them ({@link restartsAfterExit}).
 */

/** edgeAgent's `MaxRestartCount`: a module that keeps failing past this many restarts is `failed`, not `backoff`. */
export const MAX_RESTART_COUNT = 20;
/** edgeAgent's `CoolOffTimeUnitInSeconds`. */
export const BACKOFF_UNIT_MS = 10_000;
/** The longest cool-off before a restart. */
export const BACKOFF_MAX_MS = 300_000;
/** edgeAgent's `IntensiveCareTimeInMinutes`: a module running this long has its restart count cleared. */
export const HEALTHY_RESET_MS = 600_000;

/**
 * Whether a module that exited with `exitCode` is restarted under `policy`: always under `always`; under
 * `on-failure` and `on-unhealthy` only after a failure (a non-zero exit, or `unhealthy`); never under `never`.
 * An exit 0 is restarted only under `always`.
 */
export function restartsAfterExit(policy: RestartPolicy, exitCode: number | undefined, unhealthy = false): boolean {
  switch (policy) {
    case 'always':
      return true;
    case 'on-failure':
    case 'on-unhealthy':
      return unhealthy || exitCode !== 0;
    case 'never':
      return false;
  }
}

/** The cool-off before the next restart of a module restarted `restartCount` times: min(10 s · 2ⁿ, 300 s). */
export function backoffDelayMs(restartCount: number): number {
  const n = Math.max(0, Math.min(restartCount, 30));
  return Math.min(BACKOFF_UNIT_MS * 2 ** n, BACKOFF_MAX_MS);
}

/** What to do with a module that just exited. */
export type ExitDecision =
  /** Start it again at `atMs` (its last exit plus the cool-off). */
  | { readonly action: 'restart'; readonly atMs: number; readonly delayMs: number }
  /** Do not restart: the policy says so (`stopped` for exit 0, else `failed`), or it gave up after {@link MAX_RESTART_COUNT}. */
  | { readonly action: 'park'; readonly runtimeStatus: 'stopped' | 'failed'; readonly reason: 'policy' | 'gave-up' };

/**
 * The decision after an exit, from the policy, the exit code, how often the module was restarted and when it exited.
 * Pure: the process runtime schedules what this says.
 */
export function decideAfterExit(input: { readonly policy: RestartPolicy; readonly exitCode: number | undefined; readonly restartCount: number; readonly exitedAtMs: number }): ExitDecision {
  if (!restartsAfterExit(input.policy, input.exitCode)) return { action: 'park', runtimeStatus: input.exitCode === 0 ? 'stopped' : 'failed', reason: 'policy' };
  if (input.restartCount >= MAX_RESTART_COUNT) return { action: 'park', runtimeStatus: 'failed', reason: 'gave-up' };
  const delayMs = backoffDelayMs(input.restartCount);
  return { action: 'restart', atMs: input.exitedAtMs + delayMs, delayMs };
}
