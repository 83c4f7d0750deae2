// The edge hub's durable store (@kedge/edge-store): 1 KB messages, default fsync policy (group commit) unless noted.
//   1. closed loop: N concurrent writers, each awaiting its add before the next: messages/s, add latency p50/p99,
//      adds per fdatasync;
//   2. open loop at a fixed rate (2,000 msg/s, the latency target): add latency p50/p99;
//   3. the engine end to end: Router.route() → store → executor → an endpoint that accepts everything, with the
//      checkpoints committed: routed messages/s and route() latency (the time a broker would wait to PUBACK).
// Run after `npm run build`:  node bench/edge-store.bench.mjs   (BENCH_MS sets each case's duration, default 3000)
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { TextEncoder } from 'node:util';
import { openMessageStore } from '../packages/edge-store/dist/index.js';
import { parseEdgeHubDesired, RecordingEndpoint, Router } from '../packages/routing/dist/index.js';

const BUDGET_MS = Number(process.env.BENCH_MS ?? 3000);
const fmt = (n) => n.toLocaleString('en-US', { maximumFractionDigits: 0 });
const ms = (n) => n.toFixed(2);

function message(i) {
  const properties = Object.create(null);
  properties.seq = String(i);
  const systemProperties = Object.create(null);
  systemProperties.messageId = `m-${i}`;
  systemProperties.contentType = 'application/json';
  systemProperties.contentEncoding = 'utf-8';
  return {
    id: `id-${i}`,
    body: BODY,
    properties,
    systemProperties,
    source: { deviceId: 'edge-1', moduleId: 'sensor', output: 'telemetry' },
    enqueuedAt: Date.now(),
  };
}
const BODY = new TextEncoder().encode(JSON.stringify({ t: 21.5, note: 'x'.repeat(1000) }).slice(0, 1024));

function percentile(sorted, p) {
  return sorted.length === 0 ? NaN : sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}

async function withStore(opts, fn) {
  const dir = await mkdtemp(join(tmpdir(), 'kedge-bench-store-'));
  const store = await openMessageStore(dir, opts);
  try {
    return await fn(store);
  } finally {
    await store.close();
    await rm(dir, { recursive: true, force: true });
  }
}

/** N writers in a closed loop on one queue, a consumer committing behind them so segments get reclaimed. */
async function closedLoop(concurrency, opts = {}) {
  return withStore(opts, async (store) => {
    await store.addQueue('q');
    const cp = await store.checkpointer('q');
    const lat = [];
    let n = 0;
    let stop = false;
    const f0 = store.stats().fsyncs;
    const start = performance.now();
    const deadline = start + BUDGET_MS;
    async function writer() {
      while (!stop) {
        const t = performance.now();
        const s = await store.add('q', message(n++), 3600);
        lat.push(performance.now() - t);
        if (s.offset % 1000n === 0n) await cp.commit(s.offset - 1n);
        if (performance.now() > deadline) stop = true;
      }
    }
    await Promise.all(Array.from({ length: concurrency }, writer));
    const secs = (performance.now() - start) / 1000;
    lat.sort((a, b) => a - b);
    const fsyncs = store.stats().fsyncs - f0;
    return { rate: lat.length / secs, p50: percentile(lat, 50), p99: percentile(lat, 99), perSync: fsyncs ? lat.length / fsyncs : NaN };
  });
}

/** Adds at a fixed rate (timer ticks of 1 ms, several adds per tick when late), measuring each add's latency. */
async function openLoop(rate, opts = {}) {
  return withStore(opts, async (store) => {
    await store.addQueue('q');
    const lat = [];
    const pending = [];
    const start = performance.now();
    let sent = 0;
    while (performance.now() - start < BUDGET_MS) {
      const due = Math.floor(((performance.now() - start) / 1000) * rate);
      while (sent < due) {
        const t = performance.now();
        pending.push(store.add('q', message(sent++), 3600).then(() => lat.push(performance.now() - t)));
      }
      await new Promise((r) => setTimeout(r, 1));
    }
    await Promise.all(pending);
    lat.sort((a, b) => a - b);
    return { rate: sent / (BUDGET_MS / 1000), p50: percentile(lat, 50), p99: percentile(lat, 99) };
  });
}

/** Router + store + executor + an accepting endpoint; `concurrency` route() calls in flight, as many publishers would. */
async function routed(concurrency, opts = {}) {
  return withStore(opts, async (store) => {
    const endpoints = [];
    const router = new Router({
      store,
      endpoints: (sink) => {
        const e = new RecordingEndpoint(sink.kind === 'upstream' ? '$upstream' : `/modules/${sink.module}/inputs/${sink.input}`);
        // Keep memory flat: the bench only needs the count.
        e.process = (batch) => {
          e.count = (e.count ?? 0) + batch.length;
          return Promise.resolve({ succeeded: batch, failed: [], invalid: [] });
        };
        endpoints.push(e);
        return e;
      },
    });
    const specs = parseEdgeHubDesired({
      schemaVersion: '1.1',
      routes: { toB: 'FROM /messages/modules/sensor/outputs/* WHERE $body.t > 20 INTO BrokeredEndpoint("/modules/b/inputs/in")' },
    });
    if (!specs.ok) throw new Error(JSON.stringify(specs.error));
    await router.replaceRoutes(specs.value);
    const lat = [];
    let n = 0;
    let stop = false;
    const start = performance.now();
    const deadline = start + BUDGET_MS;
    async function publisher() {
      while (!stop) {
        const t = performance.now();
        await router.route(message(n++));
        lat.push(performance.now() - t);
        if (performance.now() > deadline) stop = true;
      }
    }
    await Promise.all(Array.from({ length: concurrency }, publisher));
    const secs = (performance.now() - start) / 1000;
    const drainStart = performance.now();
    while ((endpoints[0]?.count ?? 0) < lat.length && performance.now() - drainStart < 30_000) await new Promise((r) => setTimeout(r, 5));
    const delivered = endpoints[0]?.count ?? 0;
    await router.close();
    lat.sort((a, b) => a - b);
    return { rate: lat.length / secs, p50: percentile(lat, 50), p99: percentile(lat, 99), delivered, routed: lat.length };
  });
}

console.log(`edge-store: 1 KB messages, ${BUDGET_MS} ms per case, store in ${tmpdir()}`);
console.log('\nclosed loop (concurrent writers, group commit unless noted)');
console.log('case                         msg/s   add p50 ms  add p99 ms  adds/fsync');
for (const [label, c, opts] of [
  ['group,    64 writers', 64, {}],
  ['group,   256 writers', 256, {}],
  ['group,  1024 writers', 1024, {}],
  ['always,   64 writers', 64, { fsync: 'always' }],
  ['interval:10, 256 writers', 256, { fsync: 'interval:10' }],
]) {
  const r = await closedLoop(c, opts);
  console.log(`${label.padEnd(26)} ${fmt(r.rate).padStart(8)} ${ms(r.p50).padStart(11)} ${ms(r.p99).padStart(11)} ${Number.isNaN(r.perSync) ? '         -' : r.perSync.toFixed(1).padStart(11)}`);
}
console.log('\nopen loop (fixed rate, group commit)');
for (const rate of [2000, 10000]) {
  const r = await openLoop(rate);
  console.log(`${fmt(rate).padStart(6)} msg/s offered: ${fmt(r.rate)} msg/s, add p50 ${ms(r.p50)} ms, p99 ${ms(r.p99)} ms`);
}
console.log('\nrouted end to end (Router → store → executor → endpoint, group commit)');
for (const c of [256, 1024]) {
  const r = await routed(c);
  console.log(`${String(c).padStart(5)} publishers: ${fmt(r.rate)} msg/s routed, route() p50 ${ms(r.p50)} ms, p99 ${ms(r.p99)} ms, delivered ${fmt(r.delivered)}/${fmt(r.routed)}`);
}
