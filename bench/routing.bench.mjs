// Route evaluation throughput: 1, 10 and 100 routes over a ~1 KB JSON message, and a single `$body` comparison,
// each against a hand-written JS baseline run in the same process. Run after `npm run build`:
//   node bench/routing.bench.mjs
import { TextDecoder, TextEncoder } from 'node:util';
import { compileCondition, Evaluator, messageFromJson, parseRoutes } from '../packages/routing/dist/index.js';

const BUDGET_MS = Number(process.env.BENCH_MS ?? 400);

/** Runs `fn` in batches until the time budget is spent; returns operations per second. */
function measure(fn, batch = 1000) {
  for (let i = 0; i < batch * 5; i++) fn(i); // warm-up
  let ops = 0;
  const start = process.hrtime.bigint();
  const deadline = start + BigInt(BUDGET_MS) * 1_000_000n;
  let now = start;
  while (now < deadline) {
    for (let i = 0; i < batch; i++) fn(i);
    ops += batch;
    now = process.hrtime.bigint();
  }
  return ops / (Number(now - start) / 1e9);
}

const fmt = (n) => n.toLocaleString('en-US', { maximumFractionDigits: 0 });

// A ~1 KB telemetry body.
const payload = {
  machine: { temperature: 72.5, pressure: 1.8, rpm: 1450, status: 'running', serial: 'SN-0042-XYZ' },
  ambient: { temperature: 21.3, humidity: 44 },
  timeCreated: 'recorded at shift start',
  readings: Array.from({ length: 20 }, (_v, i) => ({ t: i, v: Math.round(Math.sin(i) * 1000) / 10 })),
  tags: ['line-3', 'plant-7', 'zone-b'],
  note: 'x'.repeat(420),
};
const bodyText = JSON.stringify(payload);
const bodyBytes = new TextEncoder().encode(bodyText);
const messageJson = {
  source: { deviceId: 'edge-1', moduleId: 'sensor', output: 'telemetry' },
  properties: { alert: 'false', site: 'plant-7' },
  contentType: 'application/json',
  contentEncoding: 'utf-8',
  bodyBase64: Buffer.from(bodyBytes).toString('base64'),
};
const built = messageFromJson(messageJson);
if (!built.ok) throw new Error(JSON.stringify(built.error));
const message = built.value;

const CONDITIONS = [
  '$body.machine.temperature > 70',
  "$body.machine.status = 'running' AND $body.machine.rpm >= 1000",
  "alert = 'true'",
  '$body.ambient.humidity < 30 OR $body.ambient.temperature > 35',
  "site = 'plant-7' AND $connectionModuleId = 'sensor'",
  'as_number(alert) = 1',
  "starts_with($body.machine.serial, 'SN-')",
  '$body.readings[3].v > 0',
  "NOT IS_DEFINED($body.machine.fault) OR $body.machine.fault = 'none'",
  'abs($body.machine.pressure - 2) < 0.5',
];

function routesOf(n) {
  const routes = {};
  for (let i = 0; i < n; i++) {
    const sink = i % 3 === 0 ? '$upstream' : `BrokeredEndpoint("/modules/m${i % 7}/inputs/in")`;
    routes[`r${i}`] = { route: `FROM /messages/modules/sensor/* WHERE ${CONDITIONS[i % CONDITIONS.length]} INTO ${sink}`, priority: i % 10 };
  }
  const r = parseRoutes({ schemaVersion: '1.1', routes });
  if (!r.ok) throw new Error(JSON.stringify(r.error));
  return r.value;
}

// Hand-written baseline: what a developer would write for the same 10 conditions on a parsed body.
const baselineChecks = [
  (b) => b.machine.temperature > 70,
  (b) => b.machine.status === 'running' && b.machine.rpm >= 1000,
  (_b, p) => p.alert === 'true',
  (b) => b.ambient.humidity < 30 || b.ambient.temperature > 35,
  (_b, p, m) => p.site === 'plant-7' && m.moduleId === 'sensor',
  (_b, p) => Number(p.alert) === 1,
  (b) => b.machine.serial.startsWith('SN-'),
  (b) => b.readings[3].v > 0,
  (b) => b.machine.fault === undefined || b.machine.fault === 'none',
  (b) => Math.abs(b.machine.pressure - 2) < 0.5,
];
const decoder = new TextDecoder();

console.log(`routing: ${bodyBytes.length}-byte JSON body, ${BUDGET_MS} ms per measurement`);
console.log('');
console.log('routes | kedge msgs/s (body cached) | routes x msgs/s | kedge msgs/s (fresh msg, parse incl.) | baseline msgs/s (parse incl.) | ratio');
for (const n of [1, 10, 100]) {
  const evaluator = new Evaluator(routesOf(n));
  const cached = measure(() => evaluator.evaluate(message), n >= 100 ? 100 : 1000);
  const fresh = measure(() => evaluator.evaluate({ ...message }), 100);
  const checks = Array.from({ length: n }, (_v, i) => baselineChecks[i % baselineChecks.length]);
  const baseline = measure(() => {
    const body = JSON.parse(decoder.decode(bodyBytes));
    const props = messageJson.properties;
    let hits = 0;
    for (const c of checks) if (c(body, props, messageJson.source)) hits++;
    return hits;
  }, 100);
  console.log(`${String(n).padStart(6)} | ${fmt(cached).padStart(26)} | ${fmt(cached * n).padStart(13)} | ${fmt(fresh).padStart(37)} | ${fmt(baseline).padStart(29)} | ${(fresh / baseline).toFixed(2)}x`);
}

console.log('');
const single = compileCondition('$body.machine.temperature > 70');
if (!single.ok) throw new Error(single.error.message);
const cond = single.value;
const parsedBody = JSON.parse(bodyText);
const kedgeSingle = measure(() => cond.evaluate(message), 10_000);
const handSingle = measure(() => parsedBody.machine.temperature > 70, 10_000);
const kedgeFresh = measure(() => cond.evaluate({ ...message }), 100);
const handFresh = measure(() => JSON.parse(decoder.decode(bodyBytes)).machine.temperature > 70, 100);
console.log(`single $body comparison, body cached:  kedge ${fmt(kedgeSingle)} eval/s   hand-written ${fmt(handSingle)} eval/s   ratio ${(kedgeSingle / handSingle).toFixed(3)}x   (target >= 1,000,000 eval/s: ${kedgeSingle >= 1e6 ? 'met' : 'NOT met'})`);
console.log(`single $body comparison, parse incl.:  kedge ${fmt(kedgeFresh)} eval/s   JSON.parse+compare ${fmt(handFresh)} eval/s   ratio ${(kedgeFresh / handFresh).toFixed(2)}x`);
