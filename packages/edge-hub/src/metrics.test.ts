import { mkdtempSync } from 'node:fs';
import { get } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Message, ModuleClient } from 'azure-iot-device';
import type { Twin } from 'azure-iot-device';
import { Mqtt } from 'azure-iot-device-mqtt';
import { connectAsync } from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createSasToken } from '@kedge/protocol';
import { eventually } from '@kedge/testing';
import { startEdgeHub } from './edge-hub.js';
import type { RunningEdgeHub } from './edge-hub.js';
import { freeLoopbackAddress, manifest, provisionEdge, startTestHub, testLog } from './test-support/hub.js';
import type { TestEdge, TestHub } from './test-support/hub.js';

const EDGE = 'edge-metrics';
const MODULES = ['modA', 'modB', 'modC'];
const ROUTES = {
  toB: { route: 'FROM /messages/modules/modA/outputs/o1 INTO BrokeredEndpoint("/modules/modB/inputs/i1")', priority: 1 },
  up: { route: 'FROM /messages/modules/modA/outputs/up INTO $upstream', priority: 3 },
  // modC never connects: its messages wait, then expire after a second.
  expiring: { route: 'FROM /messages/modules/modA/outputs/exp INTO BrokeredEndpoint("/modules/modC/inputs/x")', priority: 2, timeToLiveSecs: 1 },
};

interface Sample {
  readonly name: string;
  readonly labels: Record<string, string>;
  readonly value: number;
}

/** Parses Prometheus text exposition (format 0.0.4) into samples. */
function parseExposition(text: string): Sample[] {
  const out: Sample[] = [];
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!m) throw new Error(`unparsable exposition line: ${line}`);
    const labels: Record<string, string> = {};
    for (const l of (m[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) labels[l[1] ?? ''] = (l[2] ?? '').replace(/\\(.)/g, '$1');
    out.push({ name: m[1] ?? '', labels, value: Number(m[3]) });
  }
  return out;
}

describe('edge hub /metrics after real traffic', () => {
  let t: TestHub;
  let edge: TestEdge;
  let edgeHub: RunningEdgeHub;
  let edgeHost = '';
  const closables: Array<{ close(): Promise<unknown> }> = [];
  const received: string[] = [];
  let modA: ModuleClient | undefined;
  let sentBytes = 0;

  const open = async (m: string): Promise<ModuleClient> => {
    const c = ModuleClient.fromConnectionString(`HostName=${t.host};GatewayHostName=${edgeHost};DeviceId=${EDGE};ModuleId=${m};SharedAccessKey=${edge.moduleKeys[m] ?? ''}`, Mqtt);
    await c.setOptions({ ca: edgeHub.ca });
    await c.open();
    closables.push(c);
    return c;
  };
  const scrape = (): Promise<Sample[]> =>
    new Promise((resolve, reject) => {
      get(edgeHub.urls.metrics ?? '', (res) => {
        let text = '';
        res.setEncoding('utf8').on('data', (d: string) => (text += d));
        res.on('end', () => {
          if (res.statusCode !== 200 || !String(res.headers['content-type']).startsWith('text/plain')) reject(new Error(`GET /metrics: ${res.statusCode} ${res.headers['content-type']}`));
          else resolve(parseExposition(text));
        });
      }).on('error', reject);
    });
  /** The value of the one sample `name` whose labels include `labels` (0 when there is none). */
  const value = (samples: Sample[], name: string, labels: Record<string, string> = {}): number => {
    const hits = samples.filter((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v));
    if (hits.length > 1) throw new Error(`${name} ${JSON.stringify(labels)} matches ${hits.length} series`);
    return hits[0]?.value ?? 0;
  };
  const send = (c: ModuleClient, output: string, body: unknown): Promise<unknown> => {
    const msg = new Message(JSON.stringify(body));
    sentBytes += Buffer.byteLength(JSON.stringify(body));
    msg.contentType = 'application/json';
    msg.contentEncoding = 'utf-8';
    return c.sendOutputEvent(output, msg);
  };

  beforeAll(async () => {
    t = await startTestHub();
    edge = await provisionEdge(t, EDGE, MODULES);
    await t.client.applyContent(EDGE, manifest(ROUTES, MODULES));
    edgeHost = await freeLoopbackAddress([8883]);
    edgeHub = await startEdgeHub(
      {
        connectionString: edge.edgeHubConnectionString,
        hub: { ca: t.hub.ca },
        hostName: edgeHost,
        dataDir: mkdtempSync(join(tmpdir(), 'kedge-edge-metrics-')),
        mqtt: { host: edgeHost, port: 8883 },
        websocket: null,
        metrics: { host: '127.0.0.1', port: 0 },
        logLevel: 'silent',
      },
      { logger: testLog() },
    );
    await eventually(() => edgeHub.router.routes.length === Object.keys(ROUTES).length, { timeoutMs: 20_000 });
  }, 120_000);

  afterAll(async () => {
    for (const c of closables.reverse()) await c.close().catch(() => undefined);
    await edgeHub?.close();
    await t?.stop();
  });

  it('counts received, sent (per route, endpoint and priority), unrouted and TTL-expired messages, with IoT Edge labels', async () => {
    const b = await open('modB');
    b.on('inputMessage', (input: string, msg: Message) => {
      received.push(input);
      void b.complete(msg);
    });
    const a = await open('modA');
    modA = a;
    for (let i = 0; i < 3; i++) await send(a, 'o1', { i });
    for (let i = 0; i < 2; i++) await send(a, 'up', { i });
    await send(a, 'nowhere', { lost: true });
    for (let i = 0; i < 2; i++) await send(a, 'exp', { i });
    await eventually(() => received.length === 3, { timeoutMs: 20_000 });
    await eventually(async () => (await t.client.readTelemetry({ deviceId: EDGE })).messages.length === 2, { timeoutMs: 20_000 });

    // Sent counters move when the destination acknowledges; the expired messages are dropped on a later retry.
    const s = await eventually(
      async () => {
        const now = await scrape();
        const done =
          value(now, 'edgehub_messages_sent_total', { to: 'upstream' }) === 2 &&
          value(now, 'edgehub_messages_dropped_total', { reason: 'ttl_expiry', from: `${EDGE}/modA` }) === 2;
        return done ? now : false;
      },
      { timeoutMs: 30_000, intervalMs: 200 },
    );
    const A = `${EDGE}/modA`;
    const B = `${EDGE}/modB`;
    expect(value(s, 'edgehub_messages_received_total', { id: A, route_output: 'o1' })).toBe(3);
    expect(value(s, 'edgehub_messages_received_total', { id: A, route_output: 'up' })).toBe(2);
    expect(value(s, 'edgehub_messages_received_total', { id: A, route_output: 'nowhere' })).toBe(1);
    expect(value(s, 'edgehub_messages_received_total', { id: A, route_output: 'exp' })).toBe(2);
    expect(value(s, 'edgehub_messages_sent_total', { from: A, to: B, from_route_output: 'o1', to_route_input: 'i1', priority: '1' })).toBe(3);
    expect(value(s, 'edgehub_messages_sent_total', { from: A, to: 'upstream', from_route_output: 'up', to_route_input: '', priority: '3' })).toBe(2);
    expect(value(s, 'edgehub_messages_sent_total', { to: `${EDGE}/modC` })).toBe(0);
    expect(value(s, 'edgehub_messages_dropped_total', { reason: 'no_route', from: A, from_route_output: 'nowhere' })).toBe(1);
    // The executor dropped them, so the sender is known.
    expect(value(s, 'edgehub_messages_dropped_total', { reason: 'ttl_expiry', from: A, from_route_output: 'exp' })).toBe(2);
    expect(value(s, 'edgehub_messages_dropped_total', { reason: 'quota_eviction' })).toBe(0);
    expect(value(s, 'edgehub_queue_length', { endpoint: '/modules/modC/inputs/x', priority: '2' })).toBe(0);
    expect(value(s, 'edgehub_queue_length', { endpoint: '/modules/modB/inputs/i1', priority: '1' })).toBe(0);
    // Summaries: one observation per delivered message, six quantiles each.
    expect(value(s, 'edgehub_message_send_duration_seconds_count', { from: A, to: B, from_route_output: 'o1', to_route_input: 'i1' })).toBe(3);
    expect(value(s, 'edgehub_message_process_duration_seconds_count', { from: A, to: 'upstream', priority: '3' })).toBe(2);
    expect(s.filter((x) => x.name === 'edgehub_message_send_duration_seconds' && x.labels['to'] === B).map((x) => x.labels['quantile'])).toEqual(['0.5', '0.9', '0.95', '0.99', '0.999', '0.9999']);
    expect(value(s, 'edgehub_message_size_bytes_count', { id: A })).toBe(8);
    expect(value(s, 'edgehub_message_size_bytes_sum', { id: A })).toBe(sentBytes);
    expect(value(s, 'edgehub_connected_clients')).toBe(2);
    expect(value(s, 'edgehub_client_connect_success_total', { id: A })).toBe(1);
    // Every series carries IoT Edge's common labels.
    const instance = s[0]?.labels['instance_number'] ?? '';
    expect(instance).toMatch(/^[0-9a-f-]{36}$/);
    for (const x of s) expect([x.labels['iothub'], x.labels['edge_device'], x.labels['instance_number']]).toEqual([t.host, EDGE, instance]);
  });

  it('counts twin reads and reported patches with their durations, and refused connections by reason', async () => {
    const A = `${EDGE}/modA`;
    const before = await scrape();
    const twin: Twin = await (modA as ModuleClient).getTwin();
    await new Promise<void>((resolve, reject) =>
      (twin.properties.reported as unknown as { update(p: unknown, cb: (e?: Error) => void): void }).update({ state: 'ok' }, (e) => (e ? reject(e) : resolve())),
    );
    // A CONNECT with a token signed by the wrong key.
    await expect(
      connectAsync(`mqtts://${edgeHost}:8883`, {
        clientId: `${EDGE}/modC`,
        username: `${t.host}/${EDGE}/modC/?api-version=2021-04-12`,
        password: createSasToken({ audience: `${t.host}/devices/${EDGE}/modules/modC`, key: Buffer.alloc(32, 1).toString('base64'), expirySeconds: Math.floor(Date.now() / 1000) + 600 }),
        protocolVersion: 4,
        reconnectPeriod: 0,
        ca: edgeHub.ca,
      }),
    ).rejects.toThrow();
    const after = await scrape();
    const delta = (name: string, labels: Record<string, string>): number => value(after, name, labels) - value(before, name, labels);
    expect(delta('edgehub_gettwin_total', { source: A })).toBe(1);
    expect(delta('edgehub_gettwin_duration_seconds_count', { source: A })).toBe(1);
    expect(delta('edgehub_reported_properties_total', { id: A, target: 'upstream' })).toBe(1);
    expect(delta('edgehub_reported_properties_update_duration_seconds_count', { id: A, target: 'upstream' })).toBe(1);
    expect(delta('edgehub_client_connect_failed_total', { id: `${EDGE}/modC`, reason: 'bad_credentials' })).toBe(1);
    expect(value(after, 'edgehub_connected_clients')).toBe(2);
  });
});
