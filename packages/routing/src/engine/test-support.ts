/** Helpers for the engine's own unit tests (not exported from the package). */
import { parseEdgeHubDesired, type RouteSpec } from '../routes-config.js';
import { testMessage } from './message-store.contract.js';
import type { EdgeMessage } from './types.js';

/**
 * Waits until `cond()` holds, letting queued promise callbacks and I/O run between checks; fails after `rounds`
 * turns of the event loop. A condition wait, not a sleep: the fake clock does not move.
 */
export async function until(cond: () => boolean, what = 'condition', rounds = 2000): Promise<void> {
  for (let i = 0; i < rounds; i++) {
    if (cond()) return;
    await new Promise<void>((resolve) => setImmediate(resolve));
  }
  throw new Error(`timed out waiting for ${what}`);
}

/** Lets every queued promise callback run (a few event loop turns). */
export async function settle(rounds = 20): Promise<void> {
  for (let i = 0; i < rounds; i++) await new Promise<void>((resolve) => setImmediate(resolve));
}

/** Compiles `$edgeHub` routes or throws. */
export function routes(r: Record<string, unknown>, timeToLiveSecs?: number): RouteSpec[] {
  const res = parseEdgeHubDesired({ schemaVersion: '1.1', routes: r, ...(timeToLiveSecs !== undefined ? { storeAndForwardConfiguration: { timeToLiveSecs } } : {}) });
  if (!res.ok) throw new Error(JSON.stringify(res.error));
  return res.value;
}

/** A telemetry message from `module`'s `output`, JSON body, enqueued at `at`. */
export function moduleMessage(module: string, output: string, body: unknown, at: number): EdgeMessage {
  return testMessage(JSON.stringify(body), {
    id: `${module}-${JSON.stringify(body)}`,
    source: { deviceId: 'dev1', moduleId: module, output },
    enqueuedAt: at,
  });
}

export const text = (b: Uint8Array): string => new TextDecoder().decode(b);
