import { describe, expect, it } from 'vitest';
import { RestartPolicies } from '@kedge/manifest';
import { backoffDelayMs, decideAfterExit, restartsAfterExit } from './restart-policy.js';

describe('IoT Edge restart policy', () => {
  it('restarts by policy and exit code (an exit 0 only under always)', () => {
    const table = RestartPolicies.map((p) => [p, restartsAfterExit(p, 0), restartsAfterExit(p, 1), restartsAfterExit(p, 1, true)]);
    expect(table).toEqual([
      ['never', false, false, false],
      ['on-failure', false, true, true],
      ['on-unhealthy', false, true, true],
      ['always', true, true, true],
    ]);
  });

  it('cools off min(10·2ⁿ, 300) s', () => {
    expect([0, 1, 2, 3, 4, 5, 6, 20, 1000].map(backoffDelayMs)).toEqual([10_000, 20_000, 40_000, 80_000, 160_000, 300_000, 300_000, 300_000, 300_000]);
  });

  it('decides restart at exit + cool-off, park by policy, give up after 20 restarts', () => {
    expect(decideAfterExit({ policy: 'always', exitCode: 1, restartCount: 2, exitedAtMs: 1000 })).toEqual({ action: 'restart', atMs: 41_000, delayMs: 40_000 });
    expect(decideAfterExit({ policy: 'on-failure', exitCode: 0, restartCount: 0, exitedAtMs: 0 })).toEqual({ action: 'park', runtimeStatus: 'stopped', reason: 'policy' });
    expect(decideAfterExit({ policy: 'never', exitCode: 9, restartCount: 0, exitedAtMs: 0 })).toEqual({ action: 'park', runtimeStatus: 'failed', reason: 'policy' });
    expect(decideAfterExit({ policy: 'always', exitCode: 0, restartCount: 20, exitedAtMs: 0 })).toEqual({ action: 'park', runtimeStatus: 'failed', reason: 'gave-up' });
    expect(decideAfterExit({ policy: 'always', exitCode: 0, restartCount: 19, exitedAtMs: 0 }).action).toBe('restart');
  });
});
