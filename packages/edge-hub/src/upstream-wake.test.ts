import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseConnectionString } from '@kedge/protocol';
import { eventually } from '@kedge/testing';
import { EdgeHubMetrics } from './metrics.js';
import { provisionEdge, startTestHub, testLog } from './test-support/hub.js';
import type { TestEdge, TestHub } from './test-support/hub.js';
import { Need, UpstreamLink } from './upstream.js';

const EDGE = 'edge-wake';

// The probe's wake-up must also reach a connection that nobody needed at that moment: the `$upstream` executor
// acquires a module's connection for each batch and releases it after, so between batches it holds a backoff no one
// waits on. Woken, it forgets it; otherwise the next batch waits it out (the offline test saw 28 s of resume: the
// module connections' 15-30 s backoff).
describe('upstream link: the probe wakes a connection that is between two batches', () => {
  let t: TestHub;
  let edge: TestEdge;
  let link: UpstreamLink;

  beforeAll(async () => {
    t = await startTestHub();
    edge = await provisionEdge(t, EDGE, ['sensor']);
  }, 60_000);

  afterAll(async () => {
    link?.close();
    await t?.stop().catch(() => undefined);
  });

  it('connects at the next acquire once the probe is up, without waiting out the backoff', async () => {
    link = new UpstreamLink(
      {
        hostName: t.host,
        port: 8883,
        ca: t.hub.ca,
        edgeDeviceId: EDGE,
        edgeHubKey: parseConnectionString(edge.edgeHubConnectionString).get('SharedAccessKey') ?? '',
        // A module connection's first backoff is 10-20 s here; the probe's stays capped at 500 ms.
        reconnectMinMs: 20_000,
        reconnectMaxMs: 500,
        childReconnectMaxMs: 30_000,
        keepaliveSeconds: 60,
        tokenTtlSeconds: 3600,
        requestTimeoutMs: 10_000,
        idleMs: 60_000,
      },
      { desired: () => undefined, method: () => undefined, online: () => undefined },
      testLog(),
      new EdgeHubMetrics({ iothub: t.host, edgeDevice: EDGE }),
    );
    // 1. The hub is down; a batch needs the sensor's connection, which fails and backs off; the batch ends.
    await t.stop();
    const sensor = link.connection({ deviceId: EDGE, moduleId: 'sensor' });
    sensor.acquire(Need.Telemetry);
    await eventually(() => sensor.reconnect.outage.attempts === 1, { timeoutMs: 15_000, message: 'a failed attempt' });
    sensor.release(Need.Telemetry);
    // 2. The hub returns and the probe connects.
    await t.restart();
    link.self().acquire(Need.Self);
    await eventually(() => link.online, { timeoutMs: 15_000, message: 'probe connected' });
    // 3. The next batch needs it again: it connects now, not after its backoff.
    sensor.acquire(Need.Telemetry);
    await sensor.waitConnected(8000);
    // Opened by this acquire, or by the probe's wake-up if that ran just after it (load decides): never by its timer.
    expect(['need', 'wake']).toContain(sensor.reconnect.lastOpen?.cause);
    expect(sensor.reconnect.lastOpen?.probeWasUp).toBe(true);
    expect(sensor.reconnect.lastOutage?.maxDelayMs).toBeGreaterThanOrEqual(10_000);
  }, 90_000);
});
