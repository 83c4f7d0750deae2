import { createHmac } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Logger } from 'pino';
import { Registry, collectDefaultMetrics } from 'prom-client';
import { z } from 'zod';
import { DeviceRegistryClient, IotHubClient, IotHubErrorCode } from '@kedge/iothub-client';
import { createKubeClient, type ClusterConfig, type KubeClient, type KubernetesObject } from '@kedge/kube';
import { EdgeDeploymentResource, parseEdgeDeploymentSpec } from '@kedge/manifest';
import { parseConnectionString } from '@kedge/protocol';
import { startEdgeDeploymentController, type RunningController } from './controller.js';
import { ModuleIdentities } from './identities.js';
import { AgentMethods } from './methods.js';
import { toDnsLabel } from './names.js';
import { DevicePolicySchema, type DevicePolicy } from './policy.js';
import { TwinCache } from './twin-cache.js';
import { TwinSync } from './twin-sync.js';

const DeviceConnectionString = z.string().refine((s) => {
  const cs = parseConnectionString(s);
  return Boolean(cs.get('HostName') && cs.get('DeviceId') && cs.get('SharedAccessKey')) && !cs.has('ModuleId');
}, 'must be a device connection string: HostName=…;DeviceId=…;SharedAccessKey=…');

/** The agent's configuration. `kedge agent run` builds it from flags; {@link startAgent} validates it once. */
export const AgentConfigSchema = z.strictObject({
  /** The device's namespace. Required with `hub`; without it the controller watches every namespace. */
  namespace: z.string().min(1).optional(),
  policy: DevicePolicySchema.prefault({}),
  workers: z.number().int().positive().default(4),
  /** `/metrics`, `/healthz`, `/readyz` over plain HTTP; port 0 picks a free port, `null` turns it off. */
  metrics: z.strictObject({ port: z.number().int().min(0).max(65535).default(9600), host: z.string().default('127.0.0.1') }).nullable().prefault({}),
  /** The link to the hub; absent: the controller alone (EdgeDeployments written by hand or GitOps). */
  hub: z
    .strictObject({
      /** The edge device's own connection string (the agent connects as its `$edgeAgent` module). */
      connectionString: DeviceConnectionString,
      /** PEM of the CA the hub's certificate chains to; the system's CAs when absent. */
      ca: z.string().optional(),
      /** MQTT over TLS port. @default 8883 */
      mqttPort: z.number().int().min(1).max(65535).optional(),
      /** HTTPS service API port (module identities). @default 443 */
      servicePort: z.number().int().min(1).max(65535).optional(),
      /** Connect to this address instead of resolving HostName (TLS still checks HostName). */
      address: z.string().optional(),
      /** Reported-property changes within this window are sent as one patch. @default 500 */
      reportCoalesceMs: z.number().int().min(0).default(500),
      /** Reconnect backoff cap. @default 60_000 */
      maxBackoffMs: z.number().int().positive().default(60_000),
    })
    .optional(),
  /** The device's EdgeDeployment (twin sync writes it). @default the device id as a DNS label */
  edgeDeploymentName: z.string().min(1).optional(),
  resyncPeriodMs: z.number().int().positive().optional(),
  statusCoalesceMs: z.number().int().min(0).optional(),
  watchTimeoutSeconds: z.number().int().positive().optional(),
});
export type AgentConfig = z.output<typeof AgentConfigSchema>;
export type AgentConfigInput = z.input<typeof AgentConfigSchema>;

/** Thrown by {@link startAgent} for a configuration it cannot run with (every problem listed). */
export class AgentConfigError extends Error {
  readonly code = 'EDGE_ERR_AGENT_CONFIG';
  constructor(message: string) {
    super(message);
    this.name = 'AgentConfigError';
  }
}

/**
 * Leader election hook (Lease-based, from `@kedge/kube`): the agent does nothing until `acquire` resolves, and
 * stops when `lost` aborts (its process should then exit so that it restarts as a standby).
 */
export interface LeaderHook {
  acquire(signal: AbortSignal): Promise<void>;
  readonly lost: AbortSignal;
}

/** What {@link startAgent} needs besides the configuration. */
export interface StartAgentOptions {
  /** The cluster (`ClusterConfig.load()`). */
  readonly cluster: ClusterConfig;
  readonly log: Logger;
  /** Metrics registry; a new one with Node's process metrics when absent. */
  readonly registry?: Registry;
  readonly leader?: LeaderHook;
  /** Test hook: a KubeClient instead of one made from `cluster`. */
  readonly kube?: KubeClient;
}

/** A running agent. */
export interface RunningAgent {
  readonly controller: RunningController;
  /** Present with a hub link. */
  readonly twinSync?: TwinSync;
  readonly client?: IotHubClient;
  /** `http://host:port` of /metrics, /healthz, /readyz when served. */
  readonly url?: string;
  /** Ready: every informer (controller and twin sync) has synced. */
  ready(): boolean;
  /** Resolves when the agent stopped (by {@link stop} or lost leadership). */
  readonly stopped: Promise<void>;
  stop(): Promise<void>;
}

/**
 * The agent's composition root: validates the configuration, waits for leadership (when a hook is given), starts
 * the EdgeDeployment controller and — with a hub link — the `$edgeAgent` MQTT connection (its key fetched with the
 * device's credentials, kept in memory only), twin sync, module identities and direct methods, and serves
 * metrics and health. Does not wait for the hub: the device runs from its EdgeDeployment while the hub is away.
 */
export async function startAgent(input: AgentConfigInput, options: StartAgentOptions): Promise<RunningAgent> {
  const parsed = AgentConfigSchema.safeParse(input);
  if (!parsed.success) throw new AgentConfigError(`Invalid agent configuration: ${parsed.error.issues.map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`).join('; ')}`);
  const config = parsed.data;
  if (config.hub && !config.namespace) throw new AgentConfigError('Invalid agent configuration: namespace is required with hub (one device, one namespace)');
  const { cluster, log } = options;
  const registry = options.registry ?? new Registry();
  if (!options.registry) collectDefaultMetrics({ register: registry });
  const kube = options.kube ?? createKubeClient(cluster);
  const abort = new AbortController();
  if (options.leader) {
    log.info('Waiting for leadership');
    await options.leader.acquire(abort.signal);
    log.info('Leading');
  }

  const cs = config.hub ? parseConnectionString(config.hub.connectionString) : undefined;
  const hubHostName = cs?.get('HostName') ?? '';
  const deviceId = cs?.get('DeviceId') ?? '';
  const policy: DevicePolicy = cs
    ? {
        ...config.policy,
        hubHostName: config.policy.hubHostName ?? hubHostName,
        moduleIdentity: config.policy.moduleIdentity ?? DevicePolicySchema.shape.moduleIdentity.unwrap().parse({}),
      }
    : config.policy;

  const controller = await startEdgeDeploymentController({
    config: cluster,
    ...(config.namespace ? { namespace: config.namespace } : {}),
    policy,
    log,
    registry,
    workers: config.workers,
    kube,
    ...(config.resyncPeriodMs !== undefined ? { resyncPeriodMs: config.resyncPeriodMs } : {}),
    ...(config.statusCoalesceMs !== undefined ? { statusCoalesceMs: config.statusCoalesceMs } : {}),
    ...(config.watchTimeoutSeconds !== undefined ? { watchTimeoutSeconds: config.watchTimeoutSeconds } : {}),
  });
  const cleanups: Array<() => Promise<void>> = [() => controller.stop()];

  let twinSync: TwinSync | undefined;
  let client: IotHubClient | undefined;
  try {
    if (config.hub && cs && config.namespace) {
      const hub = config.hub;
      const namespace = config.namespace;
      const name = config.edgeDeploymentName ?? toDnsLabel(deviceId);
      const deviceKey = cs.get('SharedAccessKey') ?? '';
      const hubLog = log.child({ component: 'hub-link', deviceId });
      const devices = new DeviceRegistryClient({
        hostName: hubHostName,
        deviceId,
        sharedAccessKey: deviceKey,
        ...(hub.servicePort !== undefined ? { port: hub.servicePort } : {}),
        ...(hub.address !== undefined ? { address: hub.address } : {}),
        ...(hub.ca !== undefined ? { ca: hub.ca } : {}),
      });
      // The agent is the device's $edgeAgent module: its key comes from the hub with the device's credentials when
      // a connection is made (never stored), and is fetched again after the hub refused it.
      let agentKey: string | undefined;
      const signer = async (data: string): Promise<string> => {
        agentKey ??= (await devices.getModule('$edgeAgent'))?.primaryKey;
        if (!agentKey) throw new Error(`Device ${deviceId} has no $edgeAgent module identity (is it an edge device?)`);
        return createHmac('sha256', Buffer.from(agentKey, 'base64')).update(data, 'utf8').digest('base64');
      };
      client = new IotHubClient({
        hostName: hubHostName,
        deviceId,
        moduleId: '$edgeAgent',
        signer,
        ...(hub.address !== undefined || hub.mqttPort !== undefined ? { gatewayHostName: hub.address ?? hubHostName } : {}),
        ...(hub.mqttPort !== undefined ? { port: hub.mqttPort } : {}),
        ...(hub.ca !== undefined ? { ca: hub.ca } : {}),
        backoff: { maxMs: hub.maxBackoffMs },
        userAgent: 'kedge-agent/0.1',
        log: hubLog,
      });
      client.on('disconnected', (info) => {
        if (info.error?.code === IotHubErrorCode.Unauthorized) agentKey = undefined;
      });
      const identities = new ModuleIdentities({ registry: devices, kube, namespace, hubHostName, deviceId, log: hubLog.child({ component: 'identities' }) });
      const methods = new AgentMethods({ kube, cluster, namespace, name, deviceId, hubHostName, log: hubLog.child({ component: 'methods' }) });
      client.onMethod(methods.handle);
      twinSync = new TwinSync({
        client,
        kube,
        cluster,
        namespace,
        name,
        deviceId,
        cache: new TwinCache(kube, namespace),
        log: hubLog.child({ component: 'twin-sync' }),
        reportCoalesceMs: hub.reportCoalesceMs,
        onSpecWritten: (spec) => void identities.sync(spec),
      });
      // After every (re)connection, bring identities in step with what the EdgeDeployment holds.
      client.on('connected', () => {
        void kube
          .get<KubernetesObject & { spec?: unknown }>(EdgeDeploymentResource.apiVersion, EdgeDeploymentResource.kind, namespace, name)
          .then((ed) => {
            const p = ed ? parseEdgeDeploymentSpec(ed.spec) : undefined;
            if (p?.ok) void identities.sync(p.value.spec);
          })
          .catch((e: unknown) => hubLog.warn({ err: (e as Error).message }, 'Could not read the EdgeDeployment for module identities'));
      });
      const ts = twinSync;
      const c = client;
      cleanups.push(() => ts.stop(), () => c.close(), () => identities.stop());
      await twinSync.start(abort.signal);
      client.start();
      log.info({ hubHostName, deviceId, namespace, edgeDeployment: name }, 'Started the hub link (connecting in the background)');
    }
  } catch (e) {
    for (const c of cleanups.reverse()) await c().catch(() => undefined);
    throw e;
  }

  const ready = () => controller.informers.every((i) => i.hasSynced()) && (twinSync?.hasSynced() ?? true);
  let server: Server | undefined;
  let url: string | undefined;
  if (config.metrics) {
    const srv = createServer((req, res) => {
      if (req.url === '/metrics') {
        void registry.metrics().then((m) => res.writeHead(200, { 'content-type': registry.contentType }).end(m), () => res.writeHead(500).end());
      } else if (req.url === '/healthz') res.writeHead(200).end('ok');
      else if (req.url === '/readyz') res.writeHead(ready() ? 200 : 503).end(ready() ? 'ok' : 'informers not synced');
      else res.writeHead(404).end();
    });
    server = srv;
    await new Promise<void>((resolve, reject) => {
      srv.once('error', reject);
      srv.listen(config.metrics?.port ?? 0, config.metrics?.host, () => resolve());
    });
    const a = srv.address() as AddressInfo;
    url = `http://${a.address.includes(':') ? `[${a.address}]` : a.address}:${a.port}`;
    cleanups.push(() => new Promise<void>((resolve) => srv.close(() => resolve())));
  }

  let stopping: Promise<void> | undefined;
  let markStopped: () => void = () => undefined;
  const stopped = new Promise<void>((resolve) => {
    markStopped = resolve;
  });
  const stop = (): Promise<void> => {
    stopping ??= (async () => {
      abort.abort();
      server?.closeAllConnections();
      for (const c of cleanups.reverse()) await c().catch((e: unknown) => log.warn({ err: (e as Error).message }, 'Error while stopping'));
      markStopped();
    })();
    return stopping;
  };
  options.leader?.lost.addEventListener('abort', () => {
    log.warn('Lost leadership; stopping');
    void stop();
  });
  return { controller, ...(twinSync ? { twinSync } : {}), ...(client ? { client } : {}), ...(url ? { url } : {}), ready, stopped, stop };
}
