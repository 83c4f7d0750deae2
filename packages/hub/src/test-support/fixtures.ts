import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { startHub } from '../hub.js';
import type { HubConfigInput } from '../config.js';
import type { RunningHub } from '../hub.js';
import { freeLoopbackAddress } from './loopback.js';

/** A valid single-device manifest with the given modules (image per module). */
export function manifest(modules: Record<string, string>, moduleTwins: Record<string, Record<string, unknown>> = {}): Record<string, unknown> {
  const mods = Object.fromEntries(
    Object.entries(modules).map(([name, image]) => [
      name,
      { version: '1.0', type: 'docker', status: 'running', restartPolicy: 'always', settings: { image, createOptions: '{}' } },
    ]),
  );
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
      $edgeHub: {
        'properties.desired': {
          schemaVersion: '1.1',
          routes: { upstream: 'FROM /messages/* INTO $upstream' },
          storeAndForwardConfiguration: { timeToLiveSecs: 7200 },
        },
      },
      ...Object.fromEntries(Object.entries(moduleTwins).map(([m, d]) => [m, { 'properties.desired': d }])),
    },
  };
}

/** Starts a hub for a test on a free loopback address (ports 443/8883/5671), quiet logs, temp data dir. */
export async function startTestHub(
  opts: { db?: string; replicaId?: string; host?: string; dataDir?: string; logger?: pino.Logger; c2d?: HubConfigInput['c2d']; deviceLimits?: HubConfigInput['deviceLimits']; eventHubs?: HubConfigInput['eventHubs'] } = {},
): Promise<RunningHub & { host: string; dataDir: string }> {
  const host = opts.host ?? (await freeLoopbackAddress([443, 8883, 5671]));
  const dataDir = opts.dataDir ?? mkdtempSync(join(tmpdir(), 'kedge-hub-'));
  const hub = await startHub(
    {
      dataDir,
      hostName: host,
      service: { host, port: 443 },
      mqtt: { host, port: 8883 },
      amqp: { host, port: 5671 },
      ...(opts.db ? { db: opts.db } : {}),
      ...(opts.replicaId ? { replicaId: opts.replicaId } : {}),
      ...(opts.c2d ? { c2d: opts.c2d } : {}),
      ...(opts.deviceLimits ? { deviceLimits: opts.deviceLimits } : {}),
      ...(opts.eventHubs ? { eventHubs: opts.eventHubs } : {}),
      deployments: { resyncSeconds: 3600 },
      telemetry: { retentionHours: 24, maxMessages: 100_000, maxMessageBytes: 256 * 1024, batchMaxMessages: 500, batchMaxDelayMs: 2, purgeIntervalSeconds: 3600 },
    },
    { logger: opts.logger ?? pino({ level: process.env['KEDGE_TEST_LOG'] ?? 'silent' }) },
  );
  return Object.assign(hub, { host, dataDir });
}
