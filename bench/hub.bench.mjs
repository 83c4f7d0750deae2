// Hub benchmark: concurrent MQTT/TLS device connections held, QoS 1 1 KB telemetry ingested per second, twin
// reported-property updates per second and, beside ingest, the ingested telemetry read back through the Event
// Hubs-compatible endpoint (AMQP/TLS, one receiver per partition), on SQLite and on PostgreSQL. The hub runs in a child process (its own
// event loop and file-descriptor table); the load generator speaks raw MQTT (mqtt-packet over TLS) from this one.
// Ratios compare against peers measured the same way: a bare aedes broker over TLS with no auth and no
// persistence (connections, ingest), and raw better-sqlite3 / pg writes (storage).
//
//   node bench/hub.bench.mjs                 # both engines (PostgreSQL when its binaries are present)
//   KEDGE_BENCH_CONNECTIONS=2000 KEDGE_BENCH_SECONDS=5 node bench/hub.bench.mjs
import { fork } from 'node:child_process';
import { createHmac } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { request } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { connect as tlsConnect, createServer as createTlsServer } from 'node:tls';
import { clearTimeout, setTimeout } from 'node:timers';
import { fileURLToPath } from 'node:url';
import mqttPacket from 'mqtt-packet';

const root = fileURLToPath(new URL('..', import.meta.url));
const hubDist = join(root, 'packages/hub/dist');
const env = (k, d) => Number(process.env[k] ?? d);
const CONNECTIONS = env('KEDGE_BENCH_CONNECTIONS', 10_000);
const SECONDS = env('KEDGE_BENCH_SECONDS', 8);
const LOAD_CLIENTS = env('KEDGE_BENCH_LOAD_CLIENTS', 50);
const WINDOW = env('KEDGE_BENCH_WINDOW', 64);
const BODY = Buffer.alloc(1024, 'x');

// ---- child mode: run a hub (or the peer broker) and report its addresses ------------------------------------------
if (process.argv[2] === '--serve') {
  const cfg = JSON.parse(process.argv[3]);
  if (cfg.kind === 'hub') {
    const { startHub } = await import(join(hubDist, 'index.js'));
    const hub = await startHub(cfg.config);
    const cs = hub.connectionString();
    process.send({ ready: true, urls: hub.urls, ca: hub.ca, cs, eventHubs: { ...hub.eventHubs, cs: hub.eventHubsConnectionString() } });
    process.on('message', async (m) => {
      if (m === 'stop') {
        await hub.close();
        process.exit(0);
      }
    });
  } else {
    const { Aedes } = await import(join(root, 'node_modules/aedes/aedes.js'));
    const broker = await Aedes.createBroker({ concurrency: 1000 });
    const server = createTlsServer({ key: cfg.key, cert: cfg.cert }, (s) => broker.handle(s));
    server.listen(0, '127.0.0.1', () => process.send({ ready: true, port: server.address().port }));
    process.on('message', (m) => m === 'stop' && broker.close(() => process.exit(0)));
  }
  await new Promise(() => {});
}

// ---- load generator ---------------------------------------------------------------------------------------------
function serve(cfg) {
  const child = fork(fileURLToPath(import.meta.url), ['--serve', JSON.stringify(cfg)], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  return new Promise((resolve, reject) => {
    child.once('message', (m) => resolve({ ...m, stop: () => new Promise((r) => { child.once('exit', r); child.send('stop'); }) }));
    child.once('exit', (c) => reject(new Error(`server exited ${c}`)));
  });
}

const encode = (s) => encodeURIComponent(s).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);
function sas(audience, key) {
  const sr = encode(audience);
  const se = Math.floor(Date.now() / 1000) + 3600;
  const sig = createHmac('sha256', Buffer.from(key, 'base64')).update(`${sr}\n${se}`).digest('base64');
  return `SharedAccessSignature sr=${sr}&sig=${encodeURIComponent(sig)}&se=${se}`;
}

/** A minimal MQTT 3.1.1 client: connect, publish, count acks and responses. */
class RawClient {
  constructor(socket) {
    this.socket = socket;
    this.parser = mqttPacket.parser();
    this.handlers = new Set();
    socket.on('data', (d) => this.parser.parse(d));
    this.parser.on('packet', (p) => { for (const h of this.handlers) h(p); });
    socket.on('error', () => {});
  }
  static open({ host, port, ca, clientId, username, password }) {
    return new Promise((resolve, reject) => {
      const socket = tlsConnect({ host, port, ca, servername: undefined, rejectUnauthorized: !!ca }, () => {
        const c = new RawClient(socket);
        const onAck = (p) => {
          if (p.cmd !== 'connack') return;
          c.handlers.delete(onAck);
          if (p.returnCode === 0) resolve(c);
          else reject(new Error(`connack ${p.returnCode}`));
        };
        c.handlers.add(onAck);
        c.send({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clean: true, clientId, keepalive: 0, username, password: password && Buffer.from(password) });
      });
      socket.once('error', reject);
    });
  }
  send(p) { this.socket.write(mqttPacket.generate(p)); }
  close() { this.socket.destroy(); }
}

function post(hub, path, body) {
  const url = new URL(hub.urls.service);
  const key = /SharedAccessKey=([^;]+)/.exec(hub.cs)[1];
  const host = /HostName=([^;]+)/.exec(hub.cs)[1];
  const token = sas(host, key).replace(/&se=/, '&skn=iothubowner&se=');
  return new Promise((resolve, reject) => {
    const req = request({ host: url.hostname, port: url.port, path: `${path}?api-version=2021-04-12`, method: 'POST', ca: hub.ca, headers: { authorization: token, 'content-type': 'application/json' } }, (res) => {
      let t = '';
      res.on('data', (d) => (t += d));
      res.on('end', () => (res.statusCode < 300 ? resolve(t) : reject(new Error(`${res.statusCode} ${t.slice(0, 300)}`))));
    });
    req.on('error', reject);
    req.end(JSON.stringify(body));
  });
}

const KEY = Buffer.alloc(32, 7).toString('base64');
async function createDevices(hub, n) {
  for (let i = 0; i < n; i += 1000) {
    const batch = [];
    for (let j = i; j < Math.min(n, i + 1000); j++) batch.push({ id: `dev-${j}`, importMode: 'create', authentication: { type: 'sas', symmetricKey: { primaryKey: KEY, secondaryKey: KEY } } });
    await post(hub, '/devices', batch);
  }
}

const deviceLogin = (hub, id) => ({ clientId: id, username: `${hub.host}/${id}/?api-version=2021-04-12`, password: sas(`${hub.host}/devices/${id}`, KEY) });

async function holdConnections(target, n, login) {
  const clients = [];
  const t0 = performance.now();
  let next = 0;
  let failed = 0;
  const worker = async () => {
    while (next < n) {
      const i = next++;
      try { clients.push(await RawClient.open({ ...target, ...login(i) })); } catch { failed++; }
    }
  };
  await Promise.all(Array.from({ length: 100 }, worker));
  const secs = (performance.now() - t0) / 1000;
  return { held: clients.length, failed, secs, close: () => clients.forEach((c) => c.close()) };
}

async function ingest(target, clients, login) {
  const conns = await Promise.all(Array.from({ length: clients }, (_, i) => RawClient.open({ ...target, ...login(i) })));
  let acked = 0;
  let stop = false;
  const deadline = performance.now() + SECONDS * 1000;
  const t0 = performance.now();
  await Promise.all(conns.map((c, i) => new Promise((resolve) => {
    let mid = 0;
    let inflight = 0;
    const topic = target.topic(i);
    const pump = () => {
      while (!stop && inflight < WINDOW) {
        inflight++;
        mid = (mid % 65535) + 1;
        c.send({ cmd: 'publish', topic, payload: BODY, qos: 1, messageId: mid, retain: false, dup: false });
      }
      if (stop && inflight === 0) resolve();
    };
    c.handlers.add((p) => {
      if (p.cmd !== 'puback') return;
      inflight--;
      acked++;
      if (performance.now() > deadline) stop = true;
      pump();
    });
    pump();
  })));
  const secs = (performance.now() - t0) / 1000;
  conns.forEach((c) => c.close());
  return { rate: acked / secs, acked };
}

/**
 * Reads `expected` stored events back through the Event Hubs-compatible endpoint from the beginning, one rhea
 * receiver per partition with a credit window of 1,000 (what `EventHubConsumerClient` prefetches is 300).
 */
async function eventHubsRead(hub, expected) {
  const { default: rhea } = await import('rhea');
  const fields = Object.fromEntries(hub.eventHubs.cs.split(';').map((kv) => [kv.slice(0, kv.indexOf('=')), kv.slice(kv.indexOf('=') + 1)]));
  const audience = `sb://${hub.host}/${hub.eventHubs.name}`;
  const sr = encode(audience);
  const se = Math.floor(Date.now() / 1000) + 3600;
  // Service Bus SAS: the HMAC key is the key's text, not its base64 bytes.
  const sig = createHmac('sha256', Buffer.from(fields.SharedAccessKey, 'utf8')).update(`${sr}\n${se}`).digest('base64');
  const token = `SharedAccessSignature sr=${sr}&sig=${encodeURIComponent(sig)}&se=${se}&skn=${fields.SharedAccessKeyName}`;
  const conn = rhea.create_container().connect({ host: hub.host, port: Number(new URL(hub.urls.amqp).port), transport: 'tls', ca: hub.ca, hostname: hub.host, reconnect: false });
  await new Promise((resolve, reject) => { conn.once('connection_open', resolve); conn.once('disconnected', (c) => reject(c.error ?? new Error('disconnected'))); });
  await new Promise((resolve, reject) => {
    const replies = conn.open_receiver({ source: { address: '$cbs' } });
    replies.on('message', (c) => (Number(c.message.application_properties['status-code']) === 200 ? resolve() : reject(new Error('put-token refused'))));
    replies.once('receiver_open', () => {
      const s = conn.open_sender({ target: { address: '$cbs' } });
      s.once('sendable', () => s.send({ to: '$cbs', reply_to: 'cbs', message_id: 'pt', application_properties: { operation: 'put-token', type: 'servicebus.windows.net:sastoken', name: audience }, body: token }));
    });
  });
  let got = 0;
  const t0 = performance.now();
  await new Promise((resolve) => {
    const deadline = setTimeout(resolve, 120_000);
    for (let p = 0; p < hub.eventHubs.partitionCount; p++) {
      const r = conn.open_receiver({ source: { address: `${hub.eventHubs.name}/ConsumerGroups/$Default/Partitions/${p}`, filter: { 'apache.org:selector-filter:string': rhea.types.wrap_described("amqp.annotation.x-opt-offset > '-1'", 0x468c00000004) } }, credit_window: 1000 });
      r.on('message', () => {
        if (++got >= expected) {
          clearTimeout(deadline);
          resolve();
        }
      });
    }
  });
  const secs = (performance.now() - t0) / 1000;
  conn.close();
  return { rate: got / secs, read: got };
}

async function twinUpdates(hub, clients) {
  const target = { host: hub.host, port: hub.mqttPort, ca: hub.ca };
  const conns = await Promise.all(Array.from({ length: clients }, (_, i) => RawClient.open({ ...target, ...deviceLogin(hub, `dev-${i}`) })));
  await Promise.all(conns.map((c) => new Promise((resolve) => {
    c.handlers.add((p) => p.cmd === 'suback' && resolve());
    c.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: '$iothub/twin/res/#', qos: 0 }] });
  })));
  let done = 0;
  let stop = false;
  const deadline = performance.now() + SECONDS * 1000;
  const t0 = performance.now();
  const window = Math.max(1, Math.floor(WINDOW / 8));
  await Promise.all(conns.map((c) => new Promise((resolve) => {
    let rid = 0;
    let inflight = 0;
    const pump = () => {
      while (!stop && inflight < window) {
        inflight++;
        rid++;
        c.send({ cmd: 'publish', topic: `$iothub/twin/PATCH/properties/reported/?$rid=${rid}`, payload: JSON.stringify({ temperature: rid % 50, seq: rid }), qos: 0, retain: false, dup: false });
      }
      if (stop && inflight === 0) resolve();
    };
    c.handlers.add((p) => {
      if (p.cmd !== 'publish' || !p.topic.startsWith('$iothub/twin/res/')) return;
      inflight--;
      if (p.topic.startsWith('$iothub/twin/res/204/')) done++;
      if (performance.now() > deadline) stop = true;
      pump();
    });
    pump();
  })));
  const secs = (performance.now() - t0) / 1000;
  conns.forEach((c) => c.close());
  return { rate: done / secs };
}

// ---- storage peers ----------------------------------------------------------------------------------------------
async function sqlitePeer(dir) {
  const { default: Database } = await import(join(root, 'node_modules/better-sqlite3/lib/index.js'));
  const db = new Database(join(dir, 'peer.db'));
  db.pragma('journal_mode = WAL');
  db.pragma('synchronous = NORMAL');
  db.exec('CREATE TABLE t (seq INTEGER PRIMARY KEY AUTOINCREMENT, device_id TEXT, body BLOB); CREATE TABLE tw (id TEXT PRIMARY KEY, doc TEXT)');
  const ins = db.prepare('INSERT INTO t (device_id, body) VALUES (?, ?)');
  const batch = db.transaction((n) => { for (let i = 0; i < n; i++) ins.run('d', BODY); });
  let n = 0;
  const t0 = performance.now();
  while (performance.now() - t0 < 2000) { batch(500); n += 500; }
  const insertRate = n / ((performance.now() - t0) / 1000);
  db.prepare('INSERT INTO tw VALUES (?, ?)').run('d', '{}');
  const get = db.prepare('SELECT doc FROM tw WHERE id = ?');
  const put = db.prepare('UPDATE tw SET doc = ? WHERE id = ?');
  const rmw = db.transaction((i) => { const d = JSON.parse(get.get('d').doc); d.t = i; put.run(JSON.stringify(d), 'd'); });
  let m = 0;
  const t1 = performance.now();
  while (performance.now() - t1 < 2000) rmw(m++);
  const twinRate = m / ((performance.now() - t1) / 1000);
  db.close();
  return { insertRate, twinRate };
}

async function pgPeer(url) {
  const { default: pg } = await import(join(root, 'node_modules/pg/lib/index.js'));
  const pool = new pg.Pool({ connectionString: url, max: 10 });
  await pool.query('CREATE TABLE IF NOT EXISTS peer_t (seq bigserial primary key, device_id text, body bytea); CREATE TABLE IF NOT EXISTS peer_tw (id text primary key, doc text)');
  let n = 0;
  const t0 = performance.now();
  const rows = 500;
  const params = Array.from({ length: rows }, (_, i) => `($${2 * i + 1}, $${2 * i + 2})`).join(',');
  const values = Array.from({ length: rows }, () => ['d', BODY]).flat();
  await Promise.all(Array.from({ length: 4 }, async () => {
    while (performance.now() - t0 < 2000) { await pool.query(`INSERT INTO peer_t (device_id, body) VALUES ${params}`, values); n += rows; }
  }));
  const insertRate = n / ((performance.now() - t0) / 1000);
  for (let i = 0; i < 50; i++) await pool.query('INSERT INTO peer_tw VALUES ($1, $2) ON CONFLICT DO NOTHING', [`d${i}`, '{}']);
  let m = 0;
  const t1 = performance.now();
  await Promise.all(Array.from({ length: 10 }, async (_, w) => {
    while (performance.now() - t1 < 2000) {
      const c = await pool.connect();
      try {
        await c.query('BEGIN');
        const r = await c.query('SELECT doc FROM peer_tw WHERE id = $1 FOR UPDATE', [`d${w}`]);
        const d = JSON.parse(r.rows[0].doc); d.t = m;
        await c.query('UPDATE peer_tw SET doc = $1 WHERE id = $2', [JSON.stringify(d), `d${w}`]);
        await c.query('COMMIT');
        m++;
      } finally { c.release(); }
    }
  }));
  const twinRate = m / ((performance.now() - t1) / 1000);
  await pool.end();
  return { insertRate, twinRate };
}

// ---- run --------------------------------------------------------------------------------------------------------
const fmt = (n) => Math.round(n).toLocaleString('en-US');
const results = [];

async function runEngine(name, db, peer) {
  const dataDir = mkdtempSync(join(tmpdir(), 'kedge-bench-'));
  const host = '127.0.0.1';
  const hub = await serve({
    kind: 'hub',
    config: { dataDir, hostName: host, service: { host, port: 0 }, mqtt: { host, port: 0 }, amqp: { host, port: 0 }, logLevel: 'warn', ...(db ? { db } : {}), deployments: { resyncSeconds: 3600 } },
  });
  hub.host = host;
  hub.mqttPort = Number(new URL(hub.urls.mqtt).port);
  try {
    await createDevices(hub, Math.max(CONNECTIONS, LOAD_CLIENTS));
    const target = { host, port: hub.mqttPort, ca: hub.ca };
    const conn = await holdConnections(target, CONNECTIONS, (i) => deviceLogin(hub, `dev-${i}`));
    conn.close();
    const ing = await ingest({ ...target, topic: (i) => `devices/dev-${i}/messages/events/k=v` }, LOAD_CLIENTS, (i) => deviceLogin(hub, `dev-${i}`));
    const eh = await eventHubsRead(hub, ing.acked);
    const tw = await twinUpdates(hub, LOAD_CLIENTS);
    const storage = await peer();
    results.push({ name, conn, ing, eh, tw, storage });
    console.log(`${name}: held ${fmt(conn.held)}/${fmt(CONNECTIONS)} connections (${conn.failed} failed) in ${conn.secs.toFixed(1)} s; ` +
      `ingest ${fmt(ing.rate)} msg/s QoS1 1 KB; Event Hubs read ${fmt(eh.rate)} events/s (${fmt(eh.read)}/${fmt(ing.acked)}); twin updates ${fmt(tw.rate)}/s`);
    console.log(`  storage peer (${name} raw): ${fmt(storage.insertRate)} inserts/s, ${fmt(storage.twinRate)} JSON read-modify-writes/s -> ` +
      `hub ingest at ${(ing.rate / storage.insertRate * 100).toFixed(1)}% of raw inserts, twins at ${(tw.rate / storage.twinRate * 100).toFixed(1)}% of raw RMW`);
  } finally {
    await hub.stop();
    rmSync(dataDir, { recursive: true, force: true });
  }
}

// Peer broker: bare aedes over TLS, same certificate shape (RSA 2048), no auth, no persistence.
{
  const { ensureCertificates } = await import(join(hubDist, 'tls/certs.js'));
  const dir = mkdtempSync(join(tmpdir(), 'kedge-bench-peer-'));
  const tls = ensureCertificates(dir, ['127.0.0.1']);
  const peer = await serve({ kind: 'peer', key: tls.key, cert: tls.cert });
  const target = { host: '127.0.0.1', port: peer.port, ca: tls.ca };
  const conn = await holdConnections(target, CONNECTIONS, (i) => ({ clientId: `p-${i}` }));
  conn.close();
  const ing = await ingest({ ...target, topic: (i) => `devices/p-${i}/messages/events/k=v` }, LOAD_CLIENTS, (i) => ({ clientId: `q-${i}` }));
  await peer.stop();
  rmSync(dir, { recursive: true, force: true });
  console.log(`peer aedes (TLS, no auth, no persistence): held ${fmt(conn.held)} connections in ${conn.secs.toFixed(1)} s; ingest ${fmt(ing.rate)} msg/s`);
  results.push({ name: 'peer', conn, ing });
}

await runEngine('SQLite', undefined, () => sqlitePeer(mkdtempSync(join(tmpdir(), 'kedge-bench-sqlite-'))));

const { PG_BIN, postgresAvailable, startTestPostgres } = await import(join(hubDist, 'test-support/postgres.js'));
if (postgresAvailable()) {
  const pg = await startTestPostgres();
  try {
    await runEngine('PostgreSQL', pg.url, () => pgPeer(pg.url));
  } finally {
    await pg.stop();
  }
} else {
  console.log(`PostgreSQL: skipped (no binaries in ${PG_BIN})`);
}

const peer = results.find((r) => r.name === 'peer');
console.log('\n| engine | connections held | connect time (s) | ingest msg/s (QoS1, 1 KB) | vs bare aedes | Event Hubs read events/s | twin updates/s |');
console.log('|---|---|---|---|---|---|---|');
for (const r of results) {
  console.log(`| ${r.name} | ${fmt(r.conn.held)} | ${r.conn.secs.toFixed(1)} | ${fmt(r.ing.rate)} | ${peer ? `${(r.ing.rate / peer.ing.rate * 100).toFixed(0)}%` : '-'} | ${r.eh ? fmt(r.eh.rate) : '-'} | ${r.tw ? fmt(r.tw.rate) : '-'} |`);
}
console.log(`targets: 10,000 connections, 20,000 msg/s, 2,000 twin updates/s (connections=${CONNECTIONS}, load clients=${LOAD_CLIENTS}, window=${WINDOW}, ${SECONDS} s per phase)`);
