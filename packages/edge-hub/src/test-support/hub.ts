/**
 * Test support: a real Kedge hub in-process (`startHub` from `@kedge/hub`, a devDependency: only tests import it),
 * an edge device provisioned in it, and the connection strings Microsoft's SDKs use against the edge hub.
 */
import { mkdtempSync } from 'node:fs';
import { request } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { HubClient, startHub } from '@kedge/hub';
import type { RunningHub } from '@kedge/hub';
import { createSasToken, parseConnectionString } from '@kedge/protocol';
import { freeLoopbackAddress as free } from '@kedge/testing';

export const testLog = (): pino.Logger => pino({ level: process.env['KEDGE_TEST_LOG'] ?? 'silent' });

/**
 * A loopback address (127.0.45.x–127.0.48.x) where every port in `ports` is free: the hub needs 443 (azure-iothub
 * always dials it) and 8883, and the Python SDK always dials 8883 of `GatewayHostName`, so each hub and each edge
 * hub under test gets an address of its own.
 */
export function freeLoopbackAddress(ports: readonly number[]): Promise<string> {
  return free(ports, { firstOctet: 45 });
}

/** A hub for a test, with a service client. */
export interface TestHub {
  readonly hub: RunningHub;
  readonly host: string;
  readonly client: HubClient;
  /** Stops the hub (its data dir stays, so it can be started again on the same address). */
  stop(): Promise<void>;
  /** Starts it again after {@link stop} (same address, same data). */
  restart(): Promise<void>;
}

export async function startTestHub(): Promise<TestHub> {
  const host = await freeLoopbackAddress([443, 8883]);
  const dataDir = mkdtempSync(join(tmpdir(), 'kedge-edge-test-hub-'));
  const start = (): Promise<RunningHub> =>
    startHub(
      {
        dataDir,
        hostName: host,
        service: { host, port: 443 },
        mqtt: { host, port: 8883 },
        deployments: { resyncSeconds: 3600 },
        telemetry: { retentionHours: 24, maxMessages: 1_000_000, maxMessageBytes: 256 * 1024, batchMaxMessages: 500, batchMaxDelayMs: 2, purgeIntervalSeconds: 3600 },
      },
      { logger: testLog() },
    );
  let hub = await start();
  const t: TestHub = {
    get hub() {
      return hub;
    },
    host,
    client: new HubClient({ connectionString: hub.connectionString(), ca: hub.ca }),
    stop: () => hub.close(),
    async restart() {
      hub = await start();
    },
  };
  return t;
}

type Json = Record<string, unknown>;
const keyIn = (record: unknown): string => ((record as { authentication?: { symmetricKey?: { primaryKey?: string } } }).authentication?.symmetricKey?.primaryKey ?? '');

/** An edge device with modules in the hub, and the keys to act as them. */
export interface TestEdge {
  readonly deviceId: string;
  readonly edgeHubConnectionString: string;
  readonly moduleKeys: Record<string, string>;
  readonly leafKeys: Record<string, string>;
}

/** A `PUT /devices/{id}` with fields HubClient does not send (a leaf device's `parentScopes`). */
function putDevice(t: TestHub, body: Json): Promise<Json> {
  const cs = parseConnectionString(t.hub.connectionString());
  const sas = createSasToken({ audience: t.host, key: cs.get('SharedAccessKey') ?? '', keyName: cs.get('SharedAccessKeyName') ?? '', expirySeconds: Math.floor(Date.now() / 1000) + 3600 });
  return new Promise((resolve, reject) => {
    const req = request(
      { host: t.host, port: 443, method: 'PUT', path: `/devices/${encodeURIComponent(String(body['deviceId']))}?api-version=2021-04-12`, ca: t.hub.ca, headers: { authorization: sas, 'content-type': 'application/json' } },
      (res) => {
        let text = '';
        res.setEncoding('utf8').on('data', (d: string) => (text += d));
        res.on('end', () => ((res.statusCode ?? 500) < 300 ? resolve(JSON.parse(text) as Json) : reject(new Error(`PUT device: ${res.statusCode} ${text}`))));
      },
    );
    req.on('error', reject);
    req.end(JSON.stringify(body));
  });
}

/** Creates an edge device with `modules` and leaf devices whose parent it is. */
export async function provisionEdge(t: TestHub, deviceId: string, modules: readonly string[], leaves: readonly string[] = []): Promise<TestEdge> {
  const edge = (await t.client.createDevice(deviceId, { edge: true })) as Json;
  const moduleKeys: Record<string, string> = {};
  for (const m of modules) moduleKeys[m] = keyIn(await t.client.createModule(deviceId, m));
  const leafKeys: Record<string, string> = {};
  for (const l of leaves) leafKeys[l] = keyIn(await putDevice(t, { deviceId: l, authentication: { type: 'sas' }, parentScopes: [edge['deviceScope']] }));
  const edgeHubKey = keyIn(await t.client.getModule(deviceId, '$edgeHub'));
  return { deviceId, edgeHubConnectionString: `HostName=${t.host};DeviceId=${deviceId};ModuleId=$edgeHub;SharedAccessKey=${edgeHubKey}`, moduleKeys, leafKeys };
}

/**
 * A deployment manifest with `routes` for the `$edgeHub` (route strings, or route objects with `priority` and
 * `timeToLiveSecs`) and desired properties per module.
 */
export function manifest(routes: Record<string, string | { route: string; priority?: number; timeToLiveSecs?: number }>, modules: readonly string[], moduleTwins: Record<string, Json> = {}): Json {
  const mods = Object.fromEntries(
    modules.map((m) => [m, { version: '1.0', type: 'docker', status: 'running', restartPolicy: 'always', settings: { image: `example/${m.toLowerCase()}:1.0`, createOptions: '{}' } }]),
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
      $edgeHub: { 'properties.desired': { schemaVersion: '1.1', routes, storeAndForwardConfiguration: { timeToLiveSecs: 7200 } } },
      ...Object.fromEntries(Object.entries(moduleTwins).map(([m, d]) => [m, { 'properties.desired': d }])),
    },
  };
}

