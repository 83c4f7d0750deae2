import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { resolve } from 'node:path';
import type { Logger } from 'pino';
import { collectDefaultMetrics, Registry } from 'prom-client';
import { z } from 'zod';
import type { Clock } from '@kedge/contracts';
import type { IotHubClient } from '@kedge/iothub-client';
import { isObject, parseConnectionString } from '@kedge/protocol';
import { MANAGED_BY_IOT_EDGE, identityOf } from './identities.js';
import { deviceRegistryClient, edgeAgentClient } from './hub-link.js';
import { AgentMethods } from './methods.js';
import { workloadSecretOf, type IdentitySecretKey } from './module-env.js';
import type { ModuleEntry } from './modules.js';
import { ProcessRuntime } from './process-runtime.js';
import { readJsonFile, writeFileAtomic } from './process-state.js';
import { AgentConfigError, AgentConfigSchema } from './start-agent.js';
import { FileTwinCache } from './twin-cache.js';
import { TwinSync } from './twin-sync.js';

/** Module keys kept for restarts while the hub is unreachable. */
const IDENTITIES_FILE = 'identities.json';

/** The configuration of the agent on the process runtime (`kedge agent run --runtime process`). */
export const ProcessAgentConfigSchema = z.strictObject({
  /** The state directory: the deployment, the twin cache, the pids of module processes. */
  stateDir: z.string().min(1),
  /** The device id when there is no hub link (else the connection string's). @default 'local' */
  deviceId: z.string().min(1).optional(),
  /** The hub link, as for Kubernetes; absent: run the deployment the state directory holds. */
  hub: AgentConfigSchema.shape.hub,
  /** `IOTEDGE_GATEWAYHOSTNAME` of modules: the edge hub's host name. @default 'localhost' */
  gatewayHostName: z.string().min(1).optional(),
  /** A PEM file of the edge hub's CA, given to modules as `EdgeModuleCACertificateFile`. */
  moduleCaFile: z.string().min(1).optional(),
  /** Between SIGTERM and SIGKILL when a module stops. @default 10_000 */
  stopGraceMs: z.number().int().min(0).optional(),
  metrics: AgentConfigSchema.shape.metrics,
});
export type ProcessAgentConfigInput = z.input<typeof ProcessAgentConfigSchema>;

/** What {@link startProcessAgent} needs besides the configuration. */
export interface StartProcessAgentOptions {
  readonly log: Logger;
  readonly registry?: Registry;
  /** Test hook: the runtime's clock (back-off timers). */
  readonly clock?: Clock;
}

/** A running agent on the process runtime. */
export interface RunningProcessAgent {
  readonly runtime: ProcessRuntime;
  readonly twinSync?: TwinSync;
  readonly client?: IotHubClient;
  readonly url?: string;
  ready(): boolean;
  readonly stopped: Promise<void>;
  /** Stops the hub link and every module process (SIGTERM, then SIGKILL after the grace period). */
  stop(): Promise<void>;
}

/**
 * The agent's composition root on the process runtime: no cluster. Modules run as supervised local processes
 * ({@link ProcessRuntime}) from the state directory's last deployment; with a hub link the desired state comes from
 * the `$edgeAgent` twin (cached in the state directory for autonomy offline), module identities are created in the
 * hub and given to modules as `EdgeHubConnectionString`, and what runs is reported with the same code as on
 * Kubernetes. Direct methods (`RestartModule`, `GetModuleLogs`, `ping`) act on the processes.
 */
export async function startProcessAgent(input: ProcessAgentConfigInput, options: StartProcessAgentOptions): Promise<RunningProcessAgent> {
  const parsed = ProcessAgentConfigSchema.safeParse(input);
  if (!parsed.success) throw new AgentConfigError(`Invalid agent configuration: ${parsed.error.issues.map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`).join('; ')}`);
  const config = parsed.data;
  const { log } = options;
  const registry = options.registry ?? new Registry();
  if (!options.registry) collectDefaultMetrics({ register: registry });
  const stateDir = resolve(config.stateDir);
  const cs = config.hub ? parseConnectionString(config.hub.connectionString) : undefined;
  const hubHostName = cs?.get('HostName');
  const deviceId = cs?.get('DeviceId') ?? config.deviceId ?? 'local';
  const gateway = config.gatewayHostName ?? 'localhost';

  const hub = config.hub;
  const devices = hub && cs ? deviceRegistryClient(hub, hubHostName ?? '', deviceId, cs.get('SharedAccessKey') ?? '') : undefined;
  // A module's identity: created in the hub (managedBy IotEdge) when it first starts. Its key is also kept in the
  // state directory (identities.json, 0600), used only while the hub cannot be reached, so that modules restarted
  // offline still reach the edge hub. No workload API runs beside the process runtime (yet): modules get connection
  // strings (iotedgehubdev's mode).
  const savedKeys = await readJsonFile(stateDir, IDENTITIES_FILE);
  const keys = new Map<string, string>(isObject(savedKeys) ? Object.entries(savedKeys).filter((e): e is [string, string] => typeof e[1] === 'string') : []);
  let keysWrite = Promise.resolve();
  const identityValues = devices
    ? async (e: ModuleEntry): Promise<Partial<Record<IdentitySecretKey, string>>> => {
        const id = identityOf(e.name);
        let key: string | undefined;
        try {
          key = ((await devices.getModule(id)) ?? (await devices.createModule(id, { managedBy: MANAGED_BY_IOT_EDGE }))).primaryKey;
          if (key && keys.get(id) !== key) {
            keys.set(id, key);
            const text = JSON.stringify(Object.fromEntries(keys));
            keysWrite = keysWrite.then(() => writeFileAtomic(stateDir, IDENTITIES_FILE, text));
            await keysWrite;
          }
        } catch (err) {
          key = keys.get(id);
          if (!key) throw err;
          log.warn({ module: e.name, err: (err as Error).message }, 'Could not reach the hub for the module identity; using the one kept in the state directory');
        }
        if (!key) throw new Error(`Module identity ${id} has no key`);
        const gatewayPart = e.name === 'edgeHub' ? '' : `;GatewayHostName=${gateway}`;
        return {
          moduleId: id,
          sharedAccessKey: key,
          workloadSecret: workloadSecretOf(id, key),
          connectionString: `HostName=${hubHostName ?? ''};DeviceId=${deviceId};ModuleId=${id};SharedAccessKey=${key}${gatewayPart}`,
        };
      }
    : undefined;

  const runtime = new ProcessRuntime({
    stateDir,
    deviceId,
    log: log.child({ component: 'process-runtime' }),
    gatewayHostName: gateway,
    ...(hubHostName ? { hubHostName } : {}),
    ...(identityValues ? { identityValues, identity: { mode: 'connectionString' as const, workloadUri: '', trustBundleConfigMap: '' } } : {}),
    ...(config.moduleCaFile ? { trustBundleFile: resolve(config.moduleCaFile) } : {}),
    ...(config.stopGraceMs !== undefined ? { stopGraceMs: config.stopGraceMs } : {}),
    ...(options.clock ? { clock: options.clock } : {}),
  });
  await runtime.start();
  const cleanups: Array<() => Promise<void>> = [() => runtime.stop()];

  let twinSync: TwinSync | undefined;
  let client: IotHubClient | undefined;
  try {
    if (hub && cs && devices) {
      const hubLog = log.child({ component: 'hub-link', deviceId });
      client = edgeAgentClient(hub, devices, hubHostName ?? '', deviceId, hubLog);
      const methods = new AgentMethods({ runtime, deviceId, ...(hubHostName ? { hubHostName } : {}), log: hubLog.child({ component: 'methods' }) });
      client.onMethod(methods.handle);
      twinSync = new TwinSync({ client, runtime, deviceId, cache: new FileTwinCache(stateDir), log: hubLog.child({ component: 'twin-sync' }), reportCoalesceMs: hub.reportCoalesceMs });
      const ts = twinSync;
      const c = client;
      cleanups.push(() => ts.stop(), () => c.close());
      await twinSync.start();
      client.start();
      log.info({ hubHostName, deviceId, stateDir }, 'Started the hub link (connecting in the background)');
    }
  } catch (e) {
    for (const c of cleanups.reverse()) await c().catch(() => undefined);
    throw e;
  }

  const ready = () => runtime.hasSynced() && (twinSync?.hasSynced() ?? true);
  let server: Server | undefined;
  let url: string | undefined;
  if (config.metrics) {
    const srv = createServer((req, res) => {
      if (req.url === '/metrics') {
        void registry.metrics().then((m) => res.writeHead(200, { 'content-type': registry.contentType }).end(m), () => res.writeHead(500).end());
      } else if (req.url === '/healthz') res.writeHead(200).end('ok');
      else if (req.url === '/readyz') res.writeHead(ready() ? 200 : 503).end(ready() ? 'ok' : 'not synced');
      else res.writeHead(404).end();
    });
    server = srv;
    await new Promise<void>((res, rej) => {
      srv.once('error', rej);
      srv.listen(config.metrics?.port ?? 0, config.metrics?.host, () => res());
    });
    const a = srv.address() as AddressInfo;
    url = `http://${a.address.includes(':') ? `[${a.address}]` : a.address}:${a.port}`;
    cleanups.push(() => new Promise<void>((res) => srv.close(() => res())));
  }

  let stopping: Promise<void> | undefined;
  let markStopped: () => void = () => undefined;
  const stopped = new Promise<void>((res) => {
    markStopped = res;
  });
  const stop = (): Promise<void> => {
    stopping ??= (async () => {
      server?.closeAllConnections();
      for (const c of cleanups.reverse()) await c().catch((e: unknown) => log.warn({ err: (e as Error).message }, 'Error while stopping'));
      markStopped();
    })();
    return stopping;
  };
  return { runtime, ...(twinSync ? { twinSync } : {}), ...(client ? { client } : {}), ...(url ? { url } : {}), ready, stopped, stop };
}
