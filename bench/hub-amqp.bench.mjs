// Hub AMQP device benchmark: what azure-iot-device-amqp does, measured on the wire with rhea (the SDK's own AMQP
// library) against a hub in a child process (SQLite): 1 KB telemetry accepted per second, twin reported-property
// PATCHes answered (204) per second, and direct methods per second (REST call -> AMQP device -> response -> REST
// reply); and cloud-to-device messages: a service link on `/messages/devicebound` (what azure-iothub's Client.send
// does) sending to every device, each device receiving on its own node and accepting (completing) each message:
// messages/s sent (accepted by the hub: durable in the queue) and delivered (accepted by the devices) in the same
// phase. Compare with `npm run bench -- hub` (the same over MQTT).
//
//   node bench/hub-amqp.bench.mjs
//   KEDGE_BENCH_LOAD_CLIENTS=20 KEDGE_BENCH_SECONDS=5 node bench/hub-amqp.bench.mjs
import { fork } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import rhea from 'rhea';

const root = fileURLToPath(new URL('..', import.meta.url));
const { HubClient, createSasToken, startHub } = await import(join(root, 'packages/hub/dist/index.js'));

// The hub runs in a child process of this script (its own event loop), built from dist: `--hub <config>`.
if (process.argv[2] === '--hub') {
  const pino = (await import('pino')).default;
  const running = await startHub(JSON.parse(process.argv[3]), { logger: pino({ level: 'warn' }) });
  process.send({ urls: running.urls, ca: running.ca, connectionString: running.connectionString() });
  process.once('message', () => void running.close().then(() => process.exit(0)));
  await new Promise(() => {});
}

function startHubProcess(config) {
  const child = fork(fileURLToPath(import.meta.url), ['--hub', JSON.stringify(config)], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  return new Promise((resolve, reject) => {
    child.once('exit', (code) => reject(new Error(`the hub exited (${code})`)));
    child.once('message', (ready) => resolve({ ...ready, stop: () => new Promise((done) => { child.removeAllListeners('exit'); child.once('exit', done); child.send('stop'); }) }));
  });
}
const env = (k, d) => Number(process.env[k] ?? d);
const CLIENTS = env('KEDGE_BENCH_LOAD_CLIENTS', 50);
const SECONDS = env('KEDGE_BENCH_SECONDS', 8);
const WINDOW = env('KEDGE_BENCH_WINDOW', 64);
const TWIN_WINDOW = env('KEDGE_BENCH_TWIN_WINDOW', 8);
const METHOD_CONCURRENCY = env('KEDGE_BENCH_METHOD_CONCURRENCY', 50);
const BODY = Buffer.alloc(1024, 'x');
/** Stay under the hub's default maxPendingPerDevice (50) per device. */
const C2D_PENDING = env('KEDGE_BENCH_C2D_PENDING', 40);
const fmt = (n) => Math.round(n).toLocaleString('en-US');

/** One device's AMQP connection with its CBS token accepted. */
function connectDevice(host, port, ca, deviceId, key) {
  const audience = `${host}/devices/${deviceId}`;
  return connectWithToken(host, port, ca, audience, createSasToken({ audience, key, expirySeconds: Math.floor(Date.now() / 1000) + 3600 }));
}

/** An AMQP connection with `token` accepted for `audience` on `$cbs`. */
function connectWithToken(host, port, ca, audience, token) {
  const conn = rhea.create_container().connect({ host, port, transport: 'tls', ca, hostname: host, reconnect: false, idle_time_out: 0 });
  conn.on('error', () => {});
  conn.on('disconnected', () => {});
  return new Promise((resolve, reject) => {
    conn.once('connection_open', () => {
      const reply = conn.open_receiver({ source: { address: '$cbs' } });
      reply.on('message', (ctx) => {
        const status = Number(ctx.message.application_properties?.['status-code']);
        if (status === 200) resolve(conn);
        else reject(new Error(`put-token ${status}`));
      });
      reply.once('receiver_open', () => {
        const s = conn.open_sender({ target: { address: '$cbs' } });
        s.once('sendable', () => s.send({ to: '$cbs', reply_to: 'cbs', message_id: 'pt', application_properties: { operation: 'put-token', type: 'servicebus.windows.net:sastoken', name: audience }, body: token }));
      });
    });
    conn.once('disconnected', (ctx) => reject(ctx.error ?? new Error('disconnected')));
  });
}

/** Runs `start(i, count)` on every connection for SECONDS; `count()` is called per completed operation. */
async function phase(conns, start) {
  let done = 0;
  const t0 = performance.now();
  const deadline = t0 + SECONDS * 1000;
  await Promise.all(conns.map((c, i) => new Promise((resolve) => start(c, i, () => { done++; return performance.now() < deadline; }, resolve))));
  return done / ((performance.now() - t0) / 1000);
}

/** Telemetry: a window of unsettled 1 KB messages per link; each accept frees a slot. */
const telemetry = (c, i, count, finished) => {
  const s = c.open_sender({ target: { address: `/devices/dev-${i}/messages/events` }, autosettle: true });
  let inflight = 0;
  let running = true;
  const pump = () => {
    while (running && inflight < WINDOW && s.sendable()) {
      inflight++;
      s.send({ body: rhea.message.data_section(BODY), application_properties: { k: 'v' } });
    }
    if (!running && inflight === 0) finished();
  };
  s.on('accepted', () => {
    inflight--;
    running = count() && running;
    pump();
  });
  s.on('sendable', pump);
};

/** Twin: PATCH /properties/reported with a window of requests, counted on their 204 replies. */
const twin = (c, i, count, finished) => {
  const address = `/devices/dev-${i}/twin`;
  const r = c.open_receiver({ source: { address } });
  let inflight = 0;
  let seq = 0;
  let running = true;
  let s;
  const pump = () => {
    while (running && inflight < TWIN_WINDOW && s.sendable()) {
      inflight++;
      seq++;
      s.send({ correlation_id: `r${seq}`, message_annotations: { operation: 'PATCH', resource: '/properties/reported' }, body: rhea.message.data_section(Buffer.from(JSON.stringify({ temperature: seq % 50, seq }))) });
    }
    if (!running && inflight === 0) finished();
  };
  r.on('message', (ctx) => {
    if (Number(ctx.message.message_annotations?.status) !== 204) throw new Error(`twin status ${ctx.message.message_annotations?.status}`);
    inflight--;
    running = count() && running;
    pump();
  });
  r.once('receiver_open', () => {
    s = c.open_sender({ target: { address } });
    s.on('sendable', pump);
  });
};

/** A device answering every method request on its methods node. */
function answerMethods(c, i) {
  const address = `/devices/dev-${i}/methods/devicebound`;
  return new Promise((resolve) => {
    const s = c.open_sender({ target: { address } });
    const r = c.open_receiver({ source: { address } });
    r.on('message', (ctx) => s.send({ correlation_id: ctx.message.correlation_id, application_properties: { 'IoThub-status': rhea.types.wrap_int(200) }, body: rhea.message.data_section(Buffer.from('{"ok":true}')) }));
    r.once('receiver_open', resolve);
  });
}

async function methods(api) {
  let done = 0;
  const t0 = performance.now();
  const deadline = t0 + SECONDS * 1000;
  await Promise.all(Array.from({ length: METHOD_CONCURRENCY }, async (_, w) => {
    for (let n = 0; performance.now() < deadline; n++) {
      const r = await api.invoke(`dev-${(w + n) % CLIENTS}`, undefined, 'ping', { n }, 30);
      if (r.status !== 200) throw new Error(`method status ${r.status}`);
      done++;
    }
  }));
  return done / ((performance.now() - t0) / 1000);
}

/**
 * Cloud-to-device: the service sends to every device round robin, keeping each device's queue under IoT Hub's
 * 50 pending (C2D_PENDING); devices accept what they receive. Counts hub accepts (sent) and device receipts.
 */
async function cloudToDevice(service, conns) {
  const pending = new Array(conns.length).fill(0);
  let sent = 0;
  let delivered = 0;
  let running = true;
  const t0 = performance.now();
  const deadline = t0 + SECONDS * 1000;
  await Promise.all(conns.map((c, i) => new Promise((resolve) => {
    const r = c.open_receiver({ source: { address: `/devices/dev-${i}/messages/devicebound` }, autoaccept: true, credit_window: 10 });
    r.on('message', () => {
      pending[i]--;
      if (performance.now() < deadline) delivered++;
      pump();
    });
    r.once('receiver_open', resolve);
  })));
  const s = service.open_sender({ target: { address: '/messages/devicebound' } });
  let next = 0;
  let unsettled = 0;
  let ids = 0;
  const pump = () => {
    if (!running) return;
    for (let tries = 0; tries < conns.length && unsettled < WINDOW && s.sendable(); tries++) {
      const i = next;
      next = (next + 1) % conns.length;
      if (pending[i] >= C2D_PENDING) continue;
      pending[i]++;
      unsettled++;
      s.send({ to: `/devices/dev-${i}/messages/devicebound`, message_id: `m${++ids}`, application_properties: { 'iothub-ack': 'none' }, body: rhea.message.data_section(BODY) });
    }
  };
  s.on('accepted', () => {
    unsettled--;
    if (performance.now() < deadline) sent++;
    pump();
  });
  s.on('rejected', (ctx) => {
    throw new Error(`C2D send rejected: ${JSON.stringify(ctx.delivery.remote_state?.error ?? {})}`);
  });
  s.on('sendable', pump);
  await new Promise((r) => setTimeout(r, SECONDS * 1000)); // the phase's length (a benchmark window, not a test sync)
  running = false;
  const seconds = (performance.now() - t0) / 1000;
  return { sent: sent / seconds, delivered: delivered / seconds };
}

const dataDir = mkdtempSync(join(tmpdir(), 'kedge-bench-amqp-'));
const host = '127.0.0.1';
const hub = await startHubProcess({ dataDir, hostName: host, service: { host, port: 0 }, mqtt: { host, port: 0 }, amqp: { host, port: 0 }, deployments: { resyncSeconds: 3600 } });
try {
  const service = new URL(hub.urls.service);
  const api = new HubClient({ connectionString: hub.connectionString, port: Number(service.port), ca: hub.ca });
  const amqpPort = Number(new URL(hub.urls.amqp).port);
  const keys = [];
  for (let i = 0; i < CLIENTS; i++) {
    const d = await api.createDevice(`dev-${i}`);
    keys.push(d.authentication.symmetricKey.primaryKey);
  }
  const conns = await Promise.all(keys.map((key, i) => connectDevice(host, amqpPort, hub.ca, `dev-${i}`, key)));
  const ingest = await phase(conns, telemetry);
  const twins = await phase(conns, twin);
  await Promise.all(conns.map(answerMethods));
  const calls = await methods(api);
  const policy = Object.fromEntries(hub.connectionString.split(';').map((kv) => [kv.slice(0, kv.indexOf('=')), kv.slice(kv.indexOf('=') + 1)]));
  const serviceConn = await connectWithToken(host, amqpPort, hub.ca, host, createSasToken({ audience: host, key: policy.SharedAccessKey, keyName: policy.SharedAccessKeyName, expirySeconds: Math.floor(Date.now() / 1000) + 3600 }));
  const c2d = await cloudToDevice(serviceConn, conns);
  serviceConn.close();
  for (const c of conns) c.close();
  console.log('\n| engine | AMQP telemetry msg/s (1 KB, accepted) | AMQP twin reported updates/s | direct methods/s (REST -> AMQP -> REST) | C2D msg/s sent (stored) | C2D msg/s delivered (AMQP devices) |');
  console.log('|---|---|---|---|---|---|');
  console.log(`| SQLite | ${fmt(ingest)} | ${fmt(twins)} | ${fmt(calls)} | ${fmt(c2d.sent)} | ${fmt(c2d.delivered)} |`);
  console.log(`(clients=${CLIENTS}, window=${WINDOW}, twin window=${TWIN_WINDOW}, method concurrency=${METHOD_CONCURRENCY}, ${SECONDS} s per phase)`);
} finally {
  await hub.stop();
  rmSync(dataDir, { recursive: true, force: true });
}
