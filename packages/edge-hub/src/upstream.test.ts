import { describe, expect, it } from 'vitest';
import { parseEdgeHubConfig } from './config.js';
import { reconnectDelay } from './upstream.js';

describe('upstream reconnect backoff', () => {
  it('grows exponentially from the first delay and never waits longer than the cap', () => {
    const lowest = (a: number): number => reconnectDelay(a, 100, 500, () => 0);
    const highest = (a: number): number => reconnectDelay(a, 100, 500, () => 1);
    expect([0, 1, 2, 3, 10, 1000].map(lowest)).toEqual([50, 100, 200, 250, 250, 250]);
    expect([0, 1, 2, 3, 10, 1000].map(highest)).toEqual([100, 200, 400, 500, 500, 500]);
    for (let a = 0; a < 50; a++) {
      const d = reconnectDelay(a, 100, 500);
      expect(d).toBeGreaterThanOrEqual(Math.min(500, 100 * 2 ** a) / 2);
      expect(d).toBeLessThanOrEqual(500);
    }
  });

  it('keeps the probe (the edge hub connection) under a second by default, so draining resumes within one', () => {
    const c = parseEdgeHubConfig({ deviceId: 'e', hub: { hostName: 'h' }, edgeHubKey: 'a2V5' });
    expect(c.upstream.reconnectMaxMs).toBeLessThanOrEqual(500);
    expect(reconnectDelay(1e6, c.upstream.reconnectMinMs, c.upstream.reconnectMaxMs, () => 1)).toBeLessThanOrEqual(500);
    // The connections on behalf of modules back off further: the probe wakes them.
    expect(c.upstream.childReconnectMaxMs).toBeGreaterThan(c.upstream.reconnectMaxMs);
  });
});
