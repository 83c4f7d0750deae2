/**
 * Runs a hub in a child process, so a test can measure the hub's own memory and sockets (`/proc/<pid>`).
 * Started by {@link startHubProcess} under vite-node (workspace packages resolve from source, as in vitest);
 * reads its config as JSON from `KEDGE_HUB_CONFIG`, prints one `READY <json>` line, stops on SIGTERM.
 */
import pino from 'pino';
import { startHub } from '../hub.js';

const hub = await startHub(JSON.parse(process.env['KEDGE_HUB_CONFIG'] ?? '{}') as Parameters<typeof startHub>[0], {
  logger: pino({ level: process.env['KEDGE_TEST_LOG'] ?? 'silent' }),
});
process.stdout.write(`READY ${JSON.stringify({ urls: hub.urls, ca: hub.ca, connectionString: hub.connectionString() })}\n`);
process.once('SIGTERM', () => {
  void hub.close().then(() => process.exit(0));
});
