import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { pino } from 'pino';
import { createKubeClient } from './client.js';
import type { KubeClient } from './client.js';
import { Controller } from './controller.js';
import { KubeErrorCode, toKubeApiError } from './errors.js';
import { startStallServer, type StallServer } from './test-stall-server.js';

let server: StallServer;
let kube: KubeClient;
const cm = { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'c', namespace: 'n' } };

beforeAll(async () => {
  server = await startStallServer();
  // A request timeout far beyond the test's: only the caller's signal can end these calls in time.
  kube = createKubeClient(server.config, { requestTimeoutMs: 600_000 });
});
afterAll(() => server.close());

/** Runs `call` with a signal that aborts after `ms`; returns the error and how long the call took. */
async function abortedAfter(ms: number, call: (signal: AbortSignal) => Promise<unknown>): Promise<{ error: unknown; elapsed: number }> {
  const t0 = Date.now();
  const error = await call(AbortSignal.timeout(ms)).then(
    () => undefined,
    (e: unknown) => e,
  );
  return { error, elapsed: Date.now() - t0 };
}

describe('KubeClient calls take the caller signal', () => {
  it.each([
    ['apply', (signal: AbortSignal) => kube.apply(cm, { signal })],
    ['applyStatus', (signal: AbortSignal) => kube.applyStatus(cm, { signal })],
    ['get', (signal: AbortSignal) => kube.get('v1', 'ConfigMap', 'n', 'c', { signal })],
    ['list', (signal: AbortSignal) => kube.list('v1', 'ConfigMap', 'n', { signal })],
    ['delete', (signal: AbortSignal) => kube.delete('v1', 'ConfigMap', 'n', 'c', { signal })],
  ])('%s of a hung request rejects with KUBE_ERR_TIMEOUT when the signal aborts, and drops the request', async (_verb, call) => {
    const before = server.abandoned();
    const { error, elapsed } = await abortedAfter(150, call);
    expect(toKubeApiError(error).code).toBe(KubeErrorCode.Timeout);
    expect(elapsed).toBeLessThan(5_000);
    // The connection of the aborted request is closed: the server sees its client go.
    await expect.poll(() => server.abandoned(), { timeout: 5_000 }).toBeGreaterThan(before);
  });

  it('a signal also ends the wait for a hung discovery lookup', async () => {
    server.stallDiscovery.add('/apis/apps/v1');
    try {
      const { error, elapsed } = await abortedAfter(150, (signal) =>
        kube.apply({ apiVersion: 'apps/v1', kind: 'Deployment', metadata: { name: 'd', namespace: 'n' } }, { signal }),
      );
      expect(toKubeApiError(error).code).toBe(KubeErrorCode.Timeout);
      expect(elapsed).toBeLessThan(5_000);
    } finally {
      server.stallDiscovery.delete('/apis/apps/v1');
    }
  });
});

describe('Controller reconcile timeout', () => {
  it('reaches a hung apply through ctx.signal, so the key is released and retried', async () => {
    const attempts: number[] = [];
    const controller = new Controller({
      name: 'stall',
      log: pino({ level: 'silent' }),
      reconcileTimeoutMs: 200,
      backoff: { baseDelayMs: 5, maxDelayMs: 50 },
      reconciler: {
        reconcile: async (ctx) => {
          attempts.push(Date.now());
          await kube.apply(cm, { signal: ctx.signal });
          return {};
        },
      },
    });
    const stop = new AbortController();
    expect(await controller.start(stop.signal)).toBe(true);
    const stalledBefore = server.stalled.length;
    controller.enqueue({ namespace: 'n', name: 'c' });
    // Without the signal, the first apply would hold the key for the 10-minute request timeout: one attempt only.
    await expect.poll(() => attempts.length, { timeout: 10_000 }).toBeGreaterThanOrEqual(3);
    expect(server.stalled.length - stalledBefore).toBeGreaterThanOrEqual(3);
    stop.abort();
    await controller.stop();
  });
});
