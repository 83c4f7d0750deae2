/**
 * Test support: an edge hub in a process of its own, so a test can `kill -9` it. The configuration is the JSON in
 * `KEDGE_EDGE_HUB_CONFIG`. Prints `ready {json}` on stdout once started (the metrics URL); answers every `status`
 * line on stdin with `status {json}` (route count, `router.status()`, the upstream reconnect backoff); SIGTERM or the end of stdin (the test
 * process is gone) closes it gracefully. Logs at `KEDGE_TEST_LOG` (default warn) to stderr or `KEDGE_TEST_LOG_FILE`.
 */
import { createInterface } from 'node:readline';
import pino from 'pino';
import { startEdgeHub } from '../edge-hub.js';
import type { EdgeHubConfigInput } from '../config.js';

const config = JSON.parse(process.env['KEDGE_EDGE_HUB_CONFIG'] ?? '{}') as EdgeHubConfigInput;
// KEDGE_TEST_LOG_FILE: the log goes (appended) to that file instead of stderr, kept across a kill -9 and restart.
const logFile = process.env['KEDGE_TEST_LOG_FILE'];
const logger = pino({ level: process.env['KEDGE_TEST_LOG'] ?? 'warn' }, pino.destination(logFile ? { dest: logFile, append: true, sync: true } : 2));
const hub = await startEdgeHub(config, { logger });
const bigints = (_k: string, v: unknown): unknown => (typeof v === 'bigint' ? v.toString() : v);
process.stdout.write(`ready ${JSON.stringify({ metrics: hub.urls.metrics, mqtt: hub.urls.mqtt })}\n`);
let closing = false;
const stop = (): void => {
  if (closing) return;
  closing = true;
  void hub.close().then(() => process.exit(0));
};
createInterface({ input: process.stdin })
  .on('line', (line) => {
    if (line.trim() === 'status') process.stdout.write(`status ${JSON.stringify({ routes: hub.router.routes.length, status: hub.router.status(), upstream: hub.upstream.status() }, bigints)}\n`);
  })
  // stdin ends when the test process is gone: do not outlive it.
  .on('close', stop);
process.once('SIGTERM', stop);
