// Edge hub benchmark (issue 11): QoS 1, 1 KB payloads, MQTT over TLS on loopback, the store on with its default
// fsync policy (group commit: a PUBACK after the fdatasync that covers the message).
//   a. module → route → module: P publisher modules (each a window of W unacknowledged PUBLISHes, as a load
//      generator does) → a route → one sink module that PUBACKs every input: msg/s, PUBACK and end-to-end latency;
//      and the same at an offered 2,000 msg/s (open loop).
//   b. module → `$upstream` to a real Kedge hub in the same run (SQLite): msg/s acknowledged by the edge hub
//      (enqueue: durable in the store) and the rate the edge hub delivered to the hub meanwhile (on the hub's
//      PUBACKs); then, separately, with the hub stopped: N messages stored, the hub started again, time from the
//      hub listening to the first delivery (resume) and the drain rate.
//   c. the same pub/sub traffic through Debian's Mosquitto (fetched by bench/mosquitto.sh, run as it is configured
//      by Debian: `persistence true`, i.e. a snapshot every autosave_interval = 1800 s, no fsync per message), TLS
//      with the same certificate, P publishers → one subscriber: the ratio edge hub / Mosquitto.
// Every server runs in a process of its own (edge hub, hub, Mosquitto); this process is the load generator.
// A JSON result is written to bench/results/edge-hub-<time>.json (KEDGE_BENCH_OUT overrides).
//
//   node bench/edge-hub.bench.mjs
//   KEDGE_BENCH_SECONDS=5 KEDGE_BENCH_PUBLISHERS=8 KEDGE_BENCH_WINDOW=64 node bench/edge-hub.bench.mjs
//   KEDGE_BENCH_PROFILE=1 KEDGE_BENCH_CASES=routed …   # the edge hub child runs with --cpu-prof (bench/results/)
import { spawn, spawnSync, fork } from 'node:child_process';
import { createHmac } from 'node:crypto';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { createServer } from 'node:net';
import { cpus, loadavg, tmpdir, totalmem, userInfo } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { connect as tlsConnect } from 'node:tls';
import { fileURLToPath } from 'node:url';
import { crc32 } from 'node:zlib';
import mqttPacket from 'mqtt-packet';

const root = fileURLToPath(new URL('..', import.meta.url));
const env = (k, d) => Number(process.env[k] ?? d);
const SECONDS = env('KEDGE_BENCH_SECONDS', 5);
const PUBLISHERS = env('KEDGE_BENCH_PUBLISHERS', 8);
const WINDOW = env('KEDGE_BENCH_WINDOW', 64);
const RATE = env('KEDGE_BENCH_RATE', 2000);
const DRAIN = env('KEDGE_BENCH_DRAIN_MESSAGES', 20_000);
const PROFILE = process.env.KEDGE_BENCH_PROFILE === '1';
/** Which cases run (a comma list of routed, rate, upstream, outage, mosquitto); all by default. */
const CASES = new Set((process.env.KEDGE_BENCH_CASES ?? 'routed,rate,upstream,outage,restart,aedes,mosquitto').split(','));
/** Node/V8 flags of the edge hub process (e.g. `--max-semi-space-size=1 --lite-mode`); none by default. */
const EDGE_FLAGS = (process.env.KEDGE_BENCH_EDGE_FLAGS ?? '').split(' ').filter(Boolean);
const EDGE = 'bench-edge';
const SINK = 'sink';
const pubs = Array.from({ length: PUBLISHERS }, (_, i) => `p${i}`);
const BODY_BYTES = 1024;

// ---- child mode: a Kedge hub or an edge hub ---------------------------------------------------------------------
if (process.argv[2] === '--serve') {
  const cfg = JSON.parse(process.argv[3]);
  const pino = (await import(join(root, 'node_modules/pino/pino.js'))).default;
  const logger = pino({ level: process.env.KEDGE_BENCH_LOG ?? 'warn' }, pino.destination(2));
  if (cfg.kind === 'aedes') {
    // The ceiling for a Node broker here: bare aedes (its in-memory persistence, no auth, no routing, no store),
    // MQTT over TLS with the edge hub's certificate, the same generator.
    const { Aedes } = await import(join(root, 'node_modules/aedes/aedes.js'));
    const { createServer: createTlsServer } = await import('node:tls');
    const broker = await Aedes.createBroker({ concurrency: 1000 });
    const server = createTlsServer({ key: readFileSync(join(cfg.tlsDir, 'server.key')), cert: readFileSync(join(cfg.tlsDir, 'server.pem')) }, (socket) => {
      socket.setNoDelay(true);
      broker.handle(socket);
    });
    await new Promise((r) => server.listen(0, '127.0.0.1', r));
    process.send({ ready: true, port: server.address().port });
    process.on('message', (m) => {
      if (m.cmd === 'status') {
        const c = process.cpuUsage();
        process.send({ status: { cpuMs: (c.user + c.system) / 1000, rss: process.memoryUsage().rss } });
      } else if (m.cmd === 'exit') process.exit(0);
    });
  } else if (cfg.kind === 'hub') {
    const { startHub, HubClient } = await import(join(root, 'packages/hub/dist/index.js'));
    const config = {
      dataDir: cfg.dataDir,
      hostName: '127.0.0.1',
      service: { host: '127.0.0.1', port: cfg.httpsPort },
      mqtt: { host: '127.0.0.1', port: cfg.mqttPort },
      websocket: { host: '127.0.0.1', port: 0 },
      deployments: { resyncSeconds: 3600 },
      logLevel: 'warn',
    };
    let hub = await startHub(config, { logger });
    const client = new HubClient({ connectionString: hub.connectionString(), ca: hub.ca, port: cfg.httpsPort });
    const key = (r) => r.authentication.symmetricKey.primaryKey;
    await client.createDevice(EDGE, { edge: true });
    const moduleKeys = {};
    for (const m of cfg.modules) moduleKeys[m] = key(await client.createModule(EDGE, m));
    const edgeHubKey = key(await client.getModule(EDGE, '$edgeHub'));
    await client.applyContent(EDGE, manifest(cfg.routes, cfg.modules));
    process.send({ ready: true, ca: hub.ca, moduleKeys, edgeHubConnectionString: `HostName=127.0.0.1;DeviceId=${EDGE};ModuleId=$edgeHub;SharedAccessKey=${edgeHubKey}` });
    process.on('message', async (m) => {
      if (m === 'stop') {
        await hub.close();
        process.send({ stopped: true });
      } else if (m === 'start') {
        hub = await startHub(config, { logger });
        process.send({ started: true, at: Date.now() });
      } else if (m === 'exit') {
        await hub.close().catch(() => undefined);
        process.exit(0);
      }
    });
  } else {
    const { startEdgeHub } = await import(join(root, 'packages/edge-hub/dist/index.js'));
    const edge = await startEdgeHub(
      {
        connectionString: cfg.connectionString,
        hub: { ca: cfg.hubCa, mqttPort: cfg.hubMqttPort, httpsPort: cfg.hubHttpsPort },
        hostName: '127.0.0.1',
        dataDir: cfg.dataDir,
        mqtt: { host: '127.0.0.1', port: 0 },
        websocket: null,
        logLevel: 'warn',
      },
      { logger },
    );
    while (edge.router.routes.length < cfg.routeCount) await new Promise((r) => setTimeout(r, 20));
    const delivered = () => {
      const out = {};
      for (const ep of edge.router.status().endpoints) out[ep.id] = ep.queues.reduce((n, q) => n + q.delivered, 0);
      return out;
    };
    const { getHeapSpaceStatistics } = await import('node:v8');
    /** Where the RSS is: pages shared with the node binary and libraries (file-backed) and the process's own, and the young generation V8 keeps committed. */
    const memory = () => {
      const kb = (k) => Number(new RegExp(`^${k}:\\s+(\\d+) kB`, 'm').exec(readFileSync('/proc/self/smaps_rollup', 'utf8'))?.[1] ?? NaN) * 1024;
      const space = (n) => getHeapSpaceStatistics().find((x) => x.space_name === n);
      return { sharedFile: kb('Shared_Clean') + kb('Private_Clean'), privateDirty: kb('Private_Dirty'), newSpace: space('new_space')?.space_size ?? NaN, oldSpaceUsed: space('old_space')?.space_used_size ?? NaN };
    };
    const status = () => {
      const mem = process.memoryUsage();
      return { delivered: delivered(), rss: mem.rss, heapUsed: mem.heapUsed, memory: memory(), cpuMs: process.cpuUsage().user / 1000 + process.cpuUsage().system / 1000 };
    };
    process.send({ ready: true, mqttPort: Number(new URL(edge.urls.mqtt).port), ca: edge.ca });
    process.on('message', async (m) => {
      if (m.cmd === 'status') process.send({ status: status() });
      else if (m.cmd === 'gc') {
        for (let i = 0; i < 3; i++) globalThis.gc?.();
        process.send({ status: status() });
      } else if (m.cmd === 'watch') {
        // Reports the wall-clock time of the first delivery to `id` beyond `from`, then of reaching `to`.
        let first;
        const t0 = Date.now();
        for (;;) {
          const n = delivered()[m.id] ?? 0;
          if (first === undefined && n > m.from) first = Date.now();
          if (n >= m.to || Date.now() - t0 > m.timeoutMs) {
            process.send({ watched: { first, done: Date.now(), delivered: n } });
            return;
          }
          await new Promise((r) => setTimeout(r, 2));
        }
      } else if (m.cmd === 'exit') {
        await edge.close();
        process.exit(0);
      }
    });
  }
  await new Promise(() => {});
}

function manifest(routes, modules) {
  const mods = Object.fromEntries(modules.map((m) => [m, { version: '1.0', type: 'docker', status: 'running', restartPolicy: 'always', settings: { image: `example/${m}:1.0`, createOptions: '{}' } }]));
  return {
    modulesContent: {
      $edgeAgent: {
        'properties.desired': {
          schemaVersion: '1.1',
          runtime: { type: 'docker', settings: { minDockerVersion: 'v1.25' } },
          systemModules: {
            edgeAgent: { type: 'docker', settings: { image: 'ghcr.io/kedge-io/edge-agent:0.1', createOptions: '{}' } },
            edgeHub: { type: 'docker', status: 'running', restartPolicy: 'always', settings: { image: 'ghcr.io/kedge-io/edge-hub:0.1', createOptions: '{}' } },
          },
          modules: mods,
        },
      },
      $edgeHub: { 'properties.desired': { schemaVersion: '1.1', routes, storeAndForwardConfiguration: { timeToLiveSecs: 7200 } } },
    },
  };
}

// ---- load generator ---------------------------------------------------------------------------------------------
function serve(cfg, execArgv = []) {
  const child = fork(fileURLToPath(import.meta.url), ['--serve', JSON.stringify(cfg)], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'], execArgv: ['--expose-gc', ...execArgv] });
  const ask = (msg, key) =>
    new Promise((resolve, reject) => {
      const onMsg = (m) => {
        if (m && m[key] !== undefined) {
          child.off('message', onMsg);
          child.off('exit', onExit);
          resolve(m);
        }
      };
      const onExit = (c) => reject(new Error(`${cfg.kind} exited ${c}`));
      child.on('message', onMsg);
      child.once('exit', onExit);
      if (msg !== undefined) child.send(msg);
    });
  return ask(undefined, 'ready').then((m) => ({
    ...m,
    pid: child.pid,
    ask,
    exit: () => new Promise((r) => { child.once('exit', r); child.send(cfg.kind === 'hub' ? 'exit' : { cmd: 'exit' }); }),
  }));
}

function freePort() {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

const encode = (s) => encodeURIComponent(s).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);
function sas(audience, key) {
  const sr = encode(audience);
  const se = Math.floor(Date.now() / 1000) + 3600;
  const sig = createHmac('sha256', Buffer.from(key, 'base64')).update(`${sr}\n${se}`).digest('base64');
  return `SharedAccessSignature sr=${sr}&sig=${encodeURIComponent(sig)}&se=${se}`;
}

/** A minimal MQTT 3.1.1 client over TLS: QoS 1 publish with a window, PUBACKs what it receives. */
class RawClient {
  #socket;
  #parser = mqttPacket.parser();
  #nextId = 1;
  /** messageId → [send time, resolve] */
  #inflight = new Map();
  onMessage = () => {};
  static open({ port, ca, clientId, username, password, clean = true }) {
    return new Promise((resolve, reject) => {
      const socket = tlsConnect({ host: '127.0.0.1', port, ca, servername: 'localhost', checkServerIdentity: () => undefined }, () => {
        socket.setNoDelay(true);
        const c = new RawClient(socket);
        c.#parser.once('packet', (p) => (p.cmd === 'connack' && p.returnCode === 0 ? resolve(c) : reject(new Error(`connack ${p.returnCode}`))));
        socket.write(mqttPacket.generate({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clean, clientId, keepalive: 0, username, password: password && Buffer.from(password) }));
      });
      socket.once('error', reject);
    });
  }
  constructor(socket) {
    this.#socket = socket;
    socket.on('data', (d) => this.#parser.parse(d));
    socket.on('error', () => {});
    this.#parser.on('packet', (p) => {
      if (p.cmd === 'puback') {
        const f = this.#inflight.get(p.messageId);
        this.#inflight.delete(p.messageId);
        f?.();
      } else if (p.cmd === 'publish') {
        if (p.qos === 1) this.#socket.write(mqttPacket.generate({ cmd: 'puback', messageId: p.messageId }));
        this.onMessage(p);
      } else if (p.cmd === 'suback') this.onSuback?.(p);
    });
  }
  subscribe(topic) {
    return new Promise((resolve, reject) => {
      this.onSuback = (p) => (p.granted[0] === 1 ? resolve() : reject(new Error(`suback ${p.granted[0]}`)));
      this.#socket.write(mqttPacket.generate({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic, qos: 1 }] }));
    });
  }
  /** QoS 1 publish; resolves on PUBACK. */
  publish(topic, payload) {
    let id = this.#nextId;
    this.#nextId = id === 65535 ? 1 : id + 1;
    return new Promise((resolve) => {
      this.#inflight.set(id, resolve);
      this.#socket.write(mqttPacket.generate({ cmd: 'publish', topic, payload, qos: 1, messageId: id, retain: false, dup: false }));
    });
  }
  close() {
    this.#socket.destroy();
  }
}

function percentile(sorted, p) {
  return sorted.length === 0 ? NaN : sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}

/** A 1 KB payload carrying the publisher, its sequence number and the send time (performance.now, this process). */
function payload(pub, seq) {
  const b = Buffer.alloc(BODY_BYTES, 0x20);
  b.write(`{"p":${pub},"s":${seq},"t":${performance.now().toFixed(3)},"x":"`, 0);
  b.write('"}', BODY_BYTES - 2);
  return b;
}
const sentAt = (buf) => Number(/"t":([0-9.]+)/.exec(buf.toString('latin1', 0, 64))?.[1]);

/**
 * Drives `publishers` (each a [client, topic]) against one `sink` (or none): closed loop (`rate` undefined: each
 * publisher keeps WINDOW PUBLISHes unacknowledged) or open loop (`rate` msg/s in total, paced in 1 ms ticks).
 */
async function drive({ publishers, sink, seconds = SECONDS, rate, count }) {
  const ackLat = [];
  const e2eLat = [];
  let received = 0;
  if (sink) {
    sink.onMessage = (p) => {
      received++;
      const t = sentAt(p.payload);
      if (t) e2eLat.push(performance.now() - t);
    };
  }
  let sent = 0;
  let acked = 0;
  const cpu0 = process.cpuUsage();
  const start = performance.now();
  const end = start + seconds * 1000;
  const inflight = new Set();
  const one = (i) => {
    const [client, topic] = publishers[i];
    const t = performance.now();
    const p = client.publish(topic, payload(i, sent++)).then(() => {
      ackLat.push(performance.now() - t);
      acked++;
      inflight.delete(p);
    });
    inflight.add(p);
    return p;
  };
  if (rate === undefined) {
    const perPublisher = count === undefined ? Infinity : Math.ceil(count / publishers.length);
    await Promise.all(
      publishers.map(async (_, i) => {
        let mine = 0;
        const lanes = Array.from({ length: WINDOW }, async () => {
          while (performance.now() < end && mine < perPublisher) {
            mine++;
            await one(i);
          }
        });
        await Promise.all(lanes);
      }),
    );
  } else {
    let due = 0;
    while (performance.now() < end) {
      due = Math.floor(((performance.now() - start) / 1000) * rate);
      while (sent < due) one(sent % publishers.length);
      await new Promise((r) => setTimeout(r, 1));
    }
    await Promise.all(inflight);
  }
  const secs = (performance.now() - start) / 1000;
  // With a sink the rate is what was delivered: until the last acknowledged message arrived (a backlog the router
  // builds while publishers are acknowledged faster than it delivers counts against it).
  // A broker that drops what it acknowledged (Mosquitto past max_queued_messages) stops short: when nothing has
  // arrived for 2 s the rest counts as lost.
  let rateSecs = secs;
  if (sink) {
    let lastAt = performance.now();
    let seen = received;
    while (received < acked && performance.now() - lastAt < 2000) {
      await new Promise((r) => setTimeout(r, 2));
      if (received !== seen) [seen, lastAt] = [received, performance.now()];
    }
    rateSecs = (lastAt - start) / 1000;
    sink.onMessage = () => {};
  }
  ackLat.sort((a, b) => a - b);
  e2eLat.sort((a, b) => a - b);
  const cpu = process.cpuUsage(cpu0);
  return {
    seconds: Number(secs.toFixed(2)),
    sent,
    acked,
    received,
    ...(sink ? { lost: acked - received } : {}),
    msgPerSec: Math.round((sink ? Math.min(acked, received) : acked) / rateSecs),
    pubackP50Ms: round(percentile(ackLat, 50)),
    pubackP99Ms: round(percentile(ackLat, 99)),
    ...(sink ? { e2eP50Ms: round(percentile(e2eLat, 50)), e2eP99Ms: round(percentile(e2eLat, 99)) } : {}),
    // The load generator shares the machine with the server under test: its own CPU per message, and its share of
    // one core over the case (near 100 % it, not the server, sets the pace).
    generatorCpuUsPerMsg: Math.round((cpu.user + cpu.system) / Math.max(1, acked)),
    generatorCorePct: Math.round((100 * (cpu.user + cpu.system)) / ((performance.now() - start) * 1000)),
  };
}
const round = (n) => (Number.isFinite(n) ? Number(n.toFixed(2)) : null);
const mb = (n) => Number((n / 2 ** 20).toFixed(1));

// ---- the run ----------------------------------------------------------------------------------------------------
/**
 * How fast this machine is right now: µs for a fixed piece of work (JSON.stringify + CRC-32 of a 1 KB message).
 * On a loaded, shared machine it grows with the load, and every number here with it: compare runs by it.
 */
function calibrate() {
  const body = Buffer.alloc(BODY_BYTES, 0x61);
  const meta = { i: 'id', p: ['seq', '1'], s: ['contentType', 'application/json', 'outputName', 'routed'], src: { deviceId: EDGE, moduleId: 'p0' } };
  const n = 20_000;
  const t = performance.now();
  for (let i = 0; i < n; i++) crc32(Buffer.concat([Buffer.from(JSON.stringify(meta)), body]));
  return Number((((performance.now() - t) * 1000) / n).toFixed(2));
}
const machine = { calibrationUsBefore: calibrate(), cpus: cpus().length, cpuModel: cpus()[0]?.model, memGiB: Number((totalmem() / 2 ** 30).toFixed(1)), node: process.version, loadavgBefore: loadavg().map((x) => Number(x.toFixed(2))) };
console.log(`edge-hub: ${PUBLISHERS} publishers × window ${WINDOW}, QoS 1, ${BODY_BYTES} B, ${SECONDS} s per case, MQTT over TLS on loopback; load average ${machine.loadavgBefore.join(' ')} on ${machine.cpus} CPUs; calibration ${machine.calibrationUsBefore} µs`);

const fetched = spawnSync('bash', [join(root, 'bench/mosquitto.sh')], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] });
const fetchedVars = Object.fromEntries((fetched.stdout ?? '').split('\n').filter((l) => l.includes('=')).map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]));
if (fetched.status !== 0 || !fetchedVars.BIN) {
  console.error('edge-hub bench: could not fetch Debian\'s mosquitto (bench/mosquitto.sh failed, see above); the Mosquitto comparison is part of this benchmark, so it stops here.');
  process.exit(1);
}

const work = mkdtempSync(join(tmpdir(), 'kedge-bench-edge-hub-'));
/**
 * The disk under the store: fdatasync latency of 64 KiB appends inside a preallocated file (what a group commit
 * does), 200 times. Its p99 is a floor for any p99 that waits for a durable PUBACK.
 */
async function diskProbe(dir) {
  const fh = await open(join(dir, 'probe'), 'w');
  try {
    await fh.write(Buffer.alloc(16 * 2 ** 20), 0, 16 * 2 ** 20, 0);
    await fh.sync();
    const lat = [];
    const b = Buffer.alloc(64 * 1024, 1);
    for (let i = 0; i < 200; i++) {
      await fh.write(b, 0, b.length, i * b.length);
      const t = performance.now();
      await fh.datasync();
      lat.push(performance.now() - t);
    }
    lat.sort((x, y) => x - y);
    return { p50Ms: round(percentile(lat, 50)), p99Ms: round(percentile(lat, 99)), maxMs: round(lat[lat.length - 1]) };
  } finally {
    await fh.close();
    rmSync(join(dir, 'probe'), { force: true });
  }
}
machine.fdatasync = await diskProbe(work);
console.log(`disk: fdatasync of a 64 KiB append p50 ${machine.fdatasync.p50Ms} ms, p99 ${machine.fdatasync.p99Ms} ms, max ${machine.fdatasync.maxMs} ms`);
const resultsDir = join(root, 'bench/results');
mkdirSync(resultsDir, { recursive: true });
const children = [];
let mosquitto;
let line;
const result = { bench: 'edge-hub', at: new Date().toISOString(), machine, load: { publishers: PUBLISHERS, window: WINDOW, payloadBytes: BODY_BYTES, qos: 1, seconds: SECONDS, openLoopRate: RATE, tls: true, fsync: 'group', edgeHubFlags: EDGE_FLAGS } };
try {
  const routes = {};
  for (const p of pubs) {
    routes[`${p}ToSink`] = `FROM /messages/modules/${p}/outputs/routed INTO BrokeredEndpoint("/modules/${SINK}/inputs/in")`;
    routes[`${p}Up`] = `FROM /messages/modules/${p}/outputs/up INTO $upstream`;
  }
  const [hubHttpsPort, hubMqttPort] = [await freePort(), await freePort()];
  const hub = await serve({ kind: 'hub', dataDir: join(work, 'hub'), httpsPort: hubHttpsPort, mqttPort: hubMqttPort, modules: [...pubs, SINK], routes });
  children.push(hub);
  const edgeDir = join(work, 'edge');
  const edge = await serve(
    { kind: 'edge', dataDir: edgeDir, connectionString: hub.edgeHubConnectionString, hubCa: hub.ca, hubMqttPort, hubHttpsPort, routeCount: Object.keys(routes).length },
    [...EDGE_FLAGS, ...(PROFILE ? ['--cpu-prof', `--cpu-prof-dir=${resultsDir}`] : [])],
  );
  children.push(edge);
  const status = async () => (await edge.ask({ cmd: 'status' }, 'status')).status;

  const login = (m) => ({
    port: edge.mqttPort,
    ca: edge.ca,
    clientId: `${EDGE}/${m}`,
    username: `127.0.0.1/${EDGE}/${m}/?api-version=2021-04-12`,
    password: sas(`127.0.0.1/devices/${EDGE}/modules/${m}`, hub.moduleKeys[m]),
  });
  const sink = await RawClient.open({ ...login(SINK), clean: false });
  await sink.subscribe(`devices/${EDGE}/modules/${SINK}/inputs/#`);
  const clients = await Promise.all(pubs.map((p) => RawClient.open(login(p))));
  const edgeTopic = (i, output) => [clients[i], `devices/${EDGE}/modules/${pubs[i]}/messages/events/%24.on=${output}&%24.ct=application%2Fjson&%24.ce=utf-8`];
  const routed = pubs.map((_, i) => edgeTopic(i, 'routed'));
  const upstream = pubs.map((_, i) => edgeTopic(i, 'up'));

  const idle = (await edge.ask({ cmd: 'gc' }, 'status')).status;
  result.edgeHub = { rssIdleStartMiB: mb(idle.rss), heapIdleStartMiB: mb(idle.heapUsed), rssIdleStartParts: Object.fromEntries(Object.entries(idle.memory).map(([k, v]) => [`${k}MiB`, mb(v)])) };
  // Warm-up (JIT, TLS sessions, store segments), not measured.
  await drive({ publishers: routed, sink, seconds: 1 });

  console.log('\ncase                                   msg/s   PUBACK p50/p99 ms   end-to-end p50/p99 ms   server CPU µs/msg   generator µs/msg (% of a core)');
  line = (label, r) =>
    console.log(`${label.padEnd(36)} ${String(r.msgPerSec).padStart(8)}   ${`${r.pubackP50Ms} / ${r.pubackP99Ms}`.padStart(17)}   ${(r.e2eP50Ms === undefined ? '-' : `${r.e2eP50Ms} / ${r.e2eP99Ms}`).padStart(17)}   ${String(r.edgeHubCpuUsPerMsg ?? r.serverCpuUsPerMsg ?? r.mosquittoCpuUsPerMsg ?? '-').padStart(17)}   ${`${r.generatorCpuUsPerMsg} (${r.generatorCorePct} %)`.padStart(14)}`);
  /** Runs a case, adding the edge hub's CPU time per acknowledged message (µs; the machine's load shows in it). */
  const measured = async (opts) => {
    const c0 = (await status()).cpuMs;
    const r = await drive(opts);
    r.edgeHubCpuUsPerMsg = Math.round((((await status()).cpuMs - c0) * 1000) / Math.max(1, r.acked));
    return r;
  };
  if (CASES.has('routed')) {
    result.edgeHub.routed = await measured({ publishers: routed, sink });
    line('a. edge hub module→route→module', result.edgeHub.routed);
    if (result.edgeHub.routed.lost > 0) console.log(`   the edge hub acknowledged ${result.edgeHub.routed.lost} messages not delivered within 2 s of the last one`);
  }
  if (CASES.has('rate')) {
    result.edgeHub.routedAtRate = await measured({ publishers: routed, sink, rate: RATE });
    line(`a. same, offered ${RATE} msg/s`, result.edgeHub.routedAtRate);
  }
  if (CASES.has('upstream')) {
    const up0 = (await status()).delivered.$upstream ?? 0;
    const t0 = performance.now();
    result.edgeHub.upstream = await measured({ publishers: upstream });
    const up1 = (await status()).delivered.$upstream ?? 0;
    result.edgeHub.upstream.deliveredToHubPerSec = Math.round((up1 - up0) / ((performance.now() - t0) / 1000));
    line('b. edge hub module→$upstream (enqueue)', result.edgeHub.upstream);
    // Let the backlog of b drain before the outage.
    await edge.ask({ cmd: 'watch', id: '$upstream', from: 0, to: up0 + result.edgeHub.upstream.acked, timeoutMs: 120_000 }, 'watched');
  }
  if (CASES.has('outage')) {
    // Outage: hub stopped, DRAIN messages stored, hub started; resume and drain rate measured by the edge hub child.
    await hub.ask('stop', 'stopped');
    const stored = await drive({ publishers: upstream, count: DRAIN, seconds: 120 });
    const before = (await status()).delivered.$upstream ?? 0;
    const watching = edge.ask({ cmd: 'watch', id: '$upstream', from: before, to: before + stored.acked, timeoutMs: 180_000 }, 'watched');
    const started = await hub.ask('start', 'started');
    const w = (await watching).watched;
    result.edgeHub.outage = {
      stored: stored.acked,
      storeRatePerSec: stored.msgPerSec,
      resumeMs: w.first === undefined ? null : w.first - started.at,
      drainPerSec: w.first === undefined ? null : Math.round((w.delivered - before) / Math.max(0.001, (w.done - w.first) / 1000)),
      delivered: w.delivered - before,
    };
    console.log(`b. outage: ${stored.acked} stored at ${stored.msgPerSec} msg/s; hub back → first delivery ${result.edgeHub.outage.resumeMs} ms; drained ${result.edgeHub.outage.delivered} at ${result.edgeHub.outage.drainPerSec} msg/s`);
  }

  const after = (await edge.ask({ cmd: 'gc' }, 'status')).status;
  result.edgeHub.rssIdleAfterMiB = mb(after.rss);
  for (const c of [sink, ...clients]) c.close();
  // Idle again after a restart on the same data: a device's usual start (its CA and server certificate exist; the
  // first start generates them, and that heap growth stays in the first start's RSS).
  if (CASES.has('restart')) {
    await edge.exit();
    children.splice(children.indexOf(edge), 1);
    const again = await serve({ kind: 'edge', dataDir: edgeDir, connectionString: hub.edgeHubConnectionString, hubCa: hub.ca, hubMqttPort, hubHttpsPort, routeCount: Object.keys(routes).length }, EDGE_FLAGS);
    children.push(again);
    const relogin = (m) => ({ ...login(m), port: again.mqttPort });
    const s2 = await RawClient.open({ ...relogin(SINK), clean: false });
    await s2.subscribe(`devices/${EDGE}/modules/${SINK}/inputs/#`);
    const c2 = await Promise.all(pubs.map((p) => RawClient.open(relogin(p))));
    const st = (await again.ask({ cmd: 'gc' }, 'status')).status;
    result.edgeHub.rssIdleRestartMiB = mb(st.rss);
    result.edgeHub.heapIdleRestartMiB = mb(st.heapUsed);
    for (const c of [s2, ...c2]) c.close();
  }

  // ---- bare aedes: the Node ceiling ----
  if (CASES.has('aedes')) {
    const peer = await serve({ kind: 'aedes', tlsDir: join(edgeDir, 'tls') }, EDGE_FLAGS);
    children.push(peer);
    const login = (id, clean = true) => ({ port: peer.port, ca: edge.ca, clientId: id, clean });
    const aSink = await RawClient.open(login('sink', false));
    await aSink.subscribe('bench/#');
    const aClients = await Promise.all(pubs.map((p) => RawClient.open(login(p))));
    const aPubs = pubs.map((p, i) => [aClients[i], `bench/${p}`]);
    await drive({ publishers: aPubs, sink: aSink, seconds: 1 });
    const cpuMs = async () => (await peer.ask({ cmd: 'status' }, 'status')).status.cpuMs;
    const c0 = await cpuMs();
    const r = await drive({ publishers: aPubs, sink: aSink });
    r.serverCpuUsPerMsg = Math.round(((await cpuMs()) - c0) * 1000 / Math.max(1, r.acked));
    r.rssMiB = mb((await peer.ask({ cmd: 'status' }, 'status')).status.rss);
    result.aedes = { what: 'bare aedes 1.2 (in-memory persistence, no auth, routing or store), same TLS and generator', pubsub: r };
    line('d. bare aedes pub/sub (ceiling)', r);
    for (const c of [aSink, ...aClients]) c.close();
  }

  // ---- Mosquitto ----
  if (CASES.has('mosquitto')) {
    const mqPort = await freePort();
    const mqDir = join(work, 'mosquitto');
    mkdirSync(mqDir, { recursive: true });
    const conf = join(mqDir, 'mosquitto.conf');
    for (const f of ['server.pem', 'server.key']) copyFileSync(join(edgeDir, 'tls', f), join(mqDir, f));
    // Debian's /etc/mosquitto/mosquitto.conf: `persistence true` (autosave_interval stays 1800 s); here a TLS
    // listener on loopback with the edge hub's certificate, anonymous clients, no log file.
    writeFileSync(
      conf,
      [
        `persistence true`,
        `persistence_location ${mqDir}/`,
        `log_dest stderr`,
        `log_type error`,
        `listener ${mqPort} 127.0.0.1`,
        `allow_anonymous true`,
        `certfile ${join(mqDir, 'server.pem')}`,
        `keyfile ${join(mqDir, 'server.key')}`,
        // Run as whoever runs the bench (as root, mosquitto would otherwise switch to a "mosquitto" user).
        `user ${userInfo().username}`,
        '',
      ].join('\n'),
    );
    mosquitto = spawn(fetchedVars.BIN, ['-c', conf], { env: { ...process.env, LD_LIBRARY_PATH: fetchedVars.LIB }, stdio: ['ignore', 'inherit', 'inherit'] });
    const mqLogin = (id, clean = true) => ({ port: mqPort, ca: edge.ca, clientId: id, clean });
    let mqSink;
    for (let i = 0; !mqSink; i++) {
      mqSink = await RawClient.open(mqLogin('sink', false)).catch((e) => {
        if (i > 200 || mosquitto.exitCode !== null) throw new Error(`mosquitto did not start: ${e.message}`);
        return new Promise((r) => setTimeout(r, 25)).then(() => undefined);
      });
    }
    await mqSink.subscribe('bench/#');
    const mqClients = await Promise.all(pubs.map((p) => RawClient.open(mqLogin(p))));
    const mqPubs = pubs.map((p, i) => [mqClients[i], `bench/${p}`]);
    await drive({ publishers: mqPubs, sink: mqSink, seconds: 1 });
    const version = spawnSync(fetchedVars.BIN, ['-h'], { env: { ...process.env, LD_LIBRARY_PATH: fetchedVars.LIB }, encoding: 'utf8' }).stdout.split('\n')[0];
    result.mosquitto = { version, persistence: 'Debian default: persistence true, autosave_interval 1800 s (no fsync per message); max_queued_messages 1000 per client (the default: more is dropped)' };
    // CPU time of the mosquitto process (utime + stime, clock ticks of 10 ms) per delivered message.
    const mqCpuMs = () => readFileSync(`/proc/${mosquitto.pid}/stat`, 'utf8').split(') ')[1].split(' ').slice(11, 13).reduce((n, x) => n + Number(x) * 10, 0);
    const mq0 = mqCpuMs();
    result.mosquitto.pubsub = await drive({ publishers: mqPubs, sink: mqSink });
    result.mosquitto.pubsub.mosquittoCpuUsPerMsg = Math.round(((mqCpuMs() - mq0) * 1000) / Math.max(1, result.mosquitto.pubsub.acked));
    line('c. Mosquitto pub/sub', result.mosquitto.pubsub);
    if (result.mosquitto.pubsub.lost > 0) console.log(`   Mosquitto acknowledged ${result.mosquitto.pubsub.lost} messages it never delivered (max_queued_messages)`);
    result.mosquitto.pubsubAtRate = await drive({ publishers: mqPubs, sink: mqSink, rate: RATE });
    line(`c. same, offered ${RATE} msg/s`, result.mosquitto.pubsubAtRate);
    result.mosquitto.rssMiB = mb(Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${mosquitto.pid}/status`, 'utf8'))?.[1] ?? NaN) * 1024);
    for (const c of [mqSink, ...mqClients]) c.close();

  }
  const e = result.edgeHub;
  const ratio = e.routed && result.mosquitto ? e.routed.msgPerSec / result.mosquitto.pubsub.msgPerSec : undefined;
  if (ratio !== undefined) result.ratioRoutedToMosquitto = Number(ratio.toFixed(2));
  if (result.aedes && result.mosquitto) result.ratioAedesToMosquitto = Number((result.aedes.pubsub.msgPerSec / result.mosquitto.pubsub.msgPerSec).toFixed(2));
  machine.loadavgAfter = loadavg().map((x) => Number(x.toFixed(2)));
  machine.calibrationUsAfter = calibrate();
  const targets = {
    routedMsgPerSec: [e.routed?.msgPerSec, '>= 20000', (v) => v >= 20_000],
    ratioToMosquitto: [result.ratioRoutedToMosquitto, '>= 0.7', (v) => v >= 0.7],
    p99At2000Ms: [e.routedAtRate?.e2eP99Ms, '< 20', (v) => v < 20],
    rssIdleMiB: [e.rssIdleStartMiB, '< 60', (v) => v < 60],
    resumeMs: [e.outage?.resumeMs, '< 1000', (v) => v !== null && v < 1000],
  };
  result.targets = Object.fromEntries(Object.entries(targets).filter(([, [v]]) => v !== undefined).map(([k, [value, target, ok]]) => [k, { value, target, met: ok(value) }]));
  if (ratio !== undefined) console.log(`\nedge hub / Mosquitto (routed vs pub/sub msg/s): ${result.ratioRoutedToMosquitto}`);
  if (result.ratioAedesToMosquitto !== undefined) console.log(`bare aedes / Mosquitto (pub/sub, no store): ${result.ratioAedesToMosquitto}`);
  const parts = e.rssIdleStartParts;
  // The floor: an empty Node process of the same binary, measured the same way.
  const empty = spawnSync(process.execPath, ['-e', "setTimeout(() => { const t = require('fs').readFileSync('/proc/self/smaps_rollup', 'utf8'); const kb = (k) => Number(new RegExp('^' + k + ':\\\\s+(\\\\d+) kB', 'm').exec(t)[1]) * 1024; console.log(JSON.stringify({ rss: process.memoryUsage().rss, sharedFile: kb('Shared_Clean') + kb('Private_Clean'), privateDirty: kb('Private_Dirty') })); }, 200)"], { encoding: 'utf8' });
  if (empty.status === 0) {
    const n = JSON.parse(empty.stdout);
    result.nodeEmpty = { rssMiB: mb(n.rss), sharedFileMiB: mb(n.sharedFile), privateDirtyMiB: mb(n.privateDirty) };
    console.log(`an empty node process: ${result.nodeEmpty.rssMiB} MiB RSS (${result.nodeEmpty.sharedFileMiB} file-backed + ${result.nodeEmpty.privateDirtyMiB} its own)`);
  }
  if (parts) console.log(`edge hub RSS idle at start: ${parts.sharedFileMiB} MiB file-backed (the node binary and libraries, shared with other processes) + ${parts.privateDirtyMiB} MiB its own (V8 old space ${parts.oldSpaceUsedMiB} MiB used, young generation ${parts.newSpaceMiB} MiB committed)`);
  console.log(`edge hub RSS idle: ${e.rssIdleStartMiB} MiB at (first) start, ${e.rssIdleAfterMiB} MiB after the run${e.rssIdleRestartMiB === undefined ? '' : `, ${e.rssIdleRestartMiB} MiB after a restart`}${result.mosquitto ? `; Mosquitto RSS ${result.mosquitto.rssMiB} MiB` : ''}`);
  if (e.upstream) console.log(`$upstream delivered to the hub during b: ${e.upstream.deliveredToHubPerSec} msg/s`);
  console.log('\ntarget                    value      target    met');
  for (const [k, t] of Object.entries(result.targets)) console.log(`${k.padEnd(24)} ${String(t.value).padStart(8)}   ${t.target.padEnd(9)} ${t.met ? 'yes' : 'NO'}`);
  console.log(`load average after: ${machine.loadavgAfter.join(' ')}; calibration ${machine.calibrationUsAfter} µs`);
  const out = process.env.KEDGE_BENCH_OUT ?? join(resultsDir, `edge-hub-${result.at.replace(/[:.]/g, '-')}.json`);
  writeFileSync(out, `${JSON.stringify(result, null, 2)}\n`);
  console.log(`result: ${out}`);
} finally {
  if (mosquitto && mosquitto.exitCode === null) {
    const gone = new Promise((r) => mosquitto.once('exit', r));
    mosquitto.kill('SIGTERM');
    await gone;
  }
  for (const c of children.reverse()) await c.exit().catch(() => undefined);
  rmSync(work, { recursive: true, force: true });
}
