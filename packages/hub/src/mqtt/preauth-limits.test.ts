import { once } from 'node:events';
import { mkdtempSync } from 'node:fs';
import { connect as netConnect } from 'node:net';
import type { Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect as tlsConnect } from 'node:tls';
import type { TLSSocket } from 'node:tls';
import { Message } from 'azure-iot-device';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import type { ChildHub } from '../test-support/child-hub.js';
import { startHubProcess } from '../test-support/child-hub.js';
import { eventually } from '../test-support/eventually.js';
import { freeLoopbackAddress } from '../test-support/loopback.js';
import { deviceClientFor, registryFor } from '../test-support/sdk.js';

const MB = 1024 * 1024;
const CONNECT_TIMEOUT_MS = 1500;
const PER_ADDRESS = 30;

/** MQTT Remaining Length encoding [MQTT-2.2.3]. */
function varint(n: number): Buffer {
  const out: number[] = [];
  let x = n;
  do {
    let b = x % 128;
    x = Math.floor(x / 128);
    if (x > 0) b |= 0x80;
    out.push(b);
  } while (x > 0);
  return Buffer.from(out);
}

/** A well-formed MQTT 3.1.1 CONNECT for `clientId` with user name and password. */
function connectPacket(clientId: string, username: string, password: string): Buffer {
  const str = (s: string): Buffer => {
    const b = Buffer.from(s);
    return Buffer.concat([Buffer.from([b.length >> 8, b.length & 0xff]), b]);
  };
  const body = Buffer.concat([str('MQTT'), Buffer.from([4, 0xc2, 0, 60]), str(clientId), str(username), str(password)]);
  return Buffer.concat([Buffer.from([0x10]), varint(body.length), body]);
}

function closed(s: Socket | WebSocket): Promise<void> {
  return new Promise((resolve) => {
    s.once('close', () => resolve());
    s.on('error', () => undefined);
  });
}

/** Sends a CONNECT header claiming `claimed` bytes, then junk as fast as the hub takes it; returns bytes sent. */
async function floodTls(host: string, port: number, claimed: number, limit: number): Promise<number> {
  const s: TLSSocket = tlsConnect({ host, port, rejectUnauthorized: false });
  s.on('error', () => undefined);
  await once(s, 'secureConnect');
  const gone = closed(s);
  let isClosed = false;
  void gone.then(() => {
    isClosed = true;
  });
  s.write(Buffer.concat([Buffer.from([0x10]), varint(claimed)]));
  const chunk = Buffer.alloc(64 * 1024, 0x41);
  let sent = 0;
  while (!isClosed && sent < limit) {
    const ok = s.write(chunk);
    sent += chunk.length;
    if (!ok) await Promise.race([once(s, 'drain').catch(() => undefined), gone]);
  }
  s.destroy();
  return sent;
}

/**
 * An attacker's view of the MQTT endpoint before authentication, against a hub in a child process (so its RSS and
 * open sockets are its own): oversized CONNECT headers, sockets that never start TLS, byte-by-byte CONNECTs.
 */
describe('hub device endpoint before authentication', () => {
  let hub: ChildHub;
  let host: string;
  let mqttPort: number;
  let servicePort: number;

  beforeAll(async () => {
    host = await freeLoopbackAddress();
    hub = await startHubProcess({
      dataDir: mkdtempSync(join(tmpdir(), 'kedge-preauth-')),
      hostName: host,
      service: { host, port: 443 },
      mqtt: { host, port: 8883 },
      deployments: { resyncSeconds: 3600 },
      deviceLimits: { connectTimeoutMs: CONNECT_TIMEOUT_MS, maxConnectBytes: 8192, maxPendingConnections: 1000, maxPendingPerAddress: PER_ADDRESS },
    });
    mqttPort = Number(new URL(hub.urls.mqtt).port);
    servicePort = Number(new URL(hub.urls.service).port || 443);
    await registryFor(hub.connectionString, hub.ca).create({ deviceId: 'legit' });
  }, 120_000);

  afterAll(async () => {
    await hub?.stop();
  });

  async function legitDeviceWorks(websocket: boolean): Promise<void> {
    const d = await registryFor(hub.connectionString, hub.ca).get('legit');
    const key = d.responseBody.authentication?.symmetricKey?.primaryKey ?? '';
    const client = await deviceClientFor(`HostName=${host};DeviceId=legit;SharedAccessKey=${key}`, hub.ca, { websocket });
    await client.open();
    try {
      await client.sendEvent(new Message(`still-here-${websocket ? 'ws' : 'tls'}`));
    } finally {
      await client.close();
    }
  }

  it('drops CONNECTs that claim 64–200 MB without buffering them', async () => {
    await legitDeviceWorks(false);
    const before = hub.rss();
    const sent = await Promise.all([64, 128, 200].map((m) => floodTls(host, mqttPort, m * MB, 40 * MB)));
    // The hub closes each connection on the fixed header: the attacker gets rid of little more than socket buffers.
    for (const n of sent) expect(n).toBeLessThan(8 * MB);
    expect(hub.rss() - before).toBeLessThan(40 * MB);
    await legitDeviceWorks(false);
  });

  it('drops an oversized CONNECT over WebSockets', async () => {
    const ws = new WebSocket(`wss://${host}:${servicePort}/$iothub/websocket`, 'mqtt', { rejectUnauthorized: false });
    const gone = closed(ws);
    await once(ws, 'open');
    ws.send(Buffer.concat([Buffer.from([0x10]), varint(200 * MB), Buffer.alloc(60 * 1024, 0x41)]));
    let sent = 0;
    let isClosed = false;
    void gone.then(() => {
      isClosed = true;
    });
    while (!isClosed && sent < 40 * MB) {
      ws.send(Buffer.alloc(60 * 1024, 0x41));
      sent += 60 * 1024;
      await eventually(() => isClosed || ws.bufferedAmount < MB, { what: 'websocket drain' });
    }
    await gone;
    expect(sent).toBeLessThan(8 * MB);
    await legitDeviceWorks(true);
  });

  it('closes sockets that never start TLS, caps them per address, and frees them all', async () => {
    const baseline = hub.sockets();
    const started = Date.now();
    const idle = [...Array<number>(PER_ADDRESS + 10)].map((_, i) => netConnect({ host, port: i % 2 === 0 ? mqttPort : servicePort }));
    const closedAt = await Promise.all(idle.map((s) => closed(s).then(() => Date.now() - started)));
    // Over the per-address cap: refused at once; the rest: closed at the deadline, not left open.
    expect(closedAt.filter((t) => t < CONNECT_TIMEOUT_MS / 2).length).toBeGreaterThanOrEqual(10);
    expect(Math.max(...closedAt)).toBeLessThan(CONNECT_TIMEOUT_MS + 5000);
    await eventually(() => hub.sockets() <= baseline, { what: 'hub sockets back to baseline' });
    await legitDeviceWorks(false);
  });

  it('closes slowloris CONNECTs at the deadline', async () => {
    const baseline = hub.sockets();
    const packet = connectPacket('legit', `${host}/legit/?api-version=2021-04-12`, 'SharedAccessSignature sr=x&sig=y&se=9999999999');
    const sockets = await Promise.all(
      [...Array<number>(10)].map(async () => {
        const s = tlsConnect({ host, port: mqttPort, rejectUnauthorized: false });
        s.on('error', () => undefined);
        await once(s, 'secureConnect');
        return s;
      }),
    );
    const started = Date.now();
    const gone = sockets.map((s) => closed(s).then(() => Date.now() - started));
    let i = 0;
    const drip = setInterval(() => {
      for (const s of sockets) if (!s.destroyed) s.write(packet.subarray(i, i + 1));
      i++;
    }, 100);
    try {
      const times = await Promise.all(gone);
      expect(i).toBeLessThan(packet.length);
      expect(Math.max(...times)).toBeLessThan(CONNECT_TIMEOUT_MS + 5000);
    } finally {
      clearInterval(drip);
    }
    await eventually(() => hub.sockets() <= baseline, { what: 'hub sockets back to baseline' });
    await legitDeviceWorks(false);
  });
});
