import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Logger } from 'pino';
import { Registry, collectDefaultMetrics } from 'prom-client';
import { z } from 'zod';
import type { IotHubClient } from '@kedge/iothub-client';
import { createKubeClient, type ClusterConfig, type KubeClient, type KubernetesObject } from '@kedge/kube';
import { EdgeDeploymentResource, parseEdgeDeploymentSpec } from '@kedge/manifest';
import { parseConnectionString } from '@kedge/protocol';
import { startEdgeDeploymentController, type RunningController } from './controller.js';
import { loadOrCreateDeviceCa, type DeviceCa } from './device-ca.js';
import { EdgeHubReportStore } from './edgehub-report.js';
import { deviceRegistryClient, edgeAgentClient } from './hub-link.js';
import { ModuleIdentities } from './identities.js';
import { AgentMethods } from './methods.js';
import { Labels, MANAGED_BY, toDnsLabel } from './names.js';
import { TRUST_BUNDLE_KEY } from './module-env.js';
import { DevicePolicySchema, type DevicePolicy } from './policy.js';
import { TwinCache } from './twin-cache.js';
import { TwinSync } from './twin-sync.js';
import { WorkloadApi } from './workload.js';
import { DeployedWorkloadModules } from './workload-modules.js';

const DeviceConnectionString = z.string().refine((s) => {
  const cs = parseConnectionString(s);
  return Boolean(cs.get('HostName') && cs.get('DeviceId') && cs.get('SharedAccessKey')) && !cs.has('ModuleId');
}, 'must be a device connection string: HostName=…;DeviceId=…;SharedAccessKey=…');

/** The workload API's port (unprivileged; the default `moduleIdentity.workloadUri` names it). */
export const WORKLOAD_PORT = 15580;
/** The Service modules reach the workload API by (`http://kedge-workload:15580`). */
export const WORKLOAD_SERVICE = 'kedge-workload';
/** The device's EdgeDeployment when the configuration names none (the Helm chart's name). */
export const DEFAULT_EDGE_DEPLOYMENT = 'default';
/** ConfigMap with the trust bundle (key `ca.pem`) for connection-string-mode modules. */
export const TRUST_BUNDLE_CONFIGMAP = 'kedge-trust-bundle';

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
  /**
   * The device's EdgeDeployment (twin sync writes it). @default `default` (the chart's name); an agent upgraded in a
   * namespace where an earlier agent wrote one named after the device id (and no `default`) keeps using that one.
   */
  edgeDeploymentName: z.string().min(1).optional(),
  /**
   * The workload API for the device's modules (with a hub link only; only the leader serves it). TCP `host`/`port`
   * or a unix socket `path`; `advertise`: the leader points the selector-less Service `service` at `address` (its pod
   * IP) with an EndpointSlice, so modules reach whichever replica leads. `null` turns it off.
   */
  workload: z
    .strictObject({
      host: z.string().min(1).default('127.0.0.1'),
      port: z.number().int().min(0).max(65535).default(WORKLOAD_PORT),
      path: z.string().min(1).optional(),
      advertise: z.strictObject({ service: z.string().min(1).default(WORKLOAD_SERVICE), address: z.string().min(1) }).optional(),
    })
    .nullable()
    .prefault({}),
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
  /** A standby's readiness: it takes part in the election (it has read the Lease). @default always */
  candidateReady?(): boolean;
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
  /** The workload API (with a hub link, unless configured off) and the device CA behind it. */
  readonly workload?: WorkloadApi;
  readonly deviceCa?: DeviceCa;
  /** The device's EdgeDeployment (with a hub link). */
  readonly edgeDeploymentName?: string;
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
  const cleanups: Array<() => Promise<void>> = [];
  const runCleanups = async (): Promise<void> => {
    for (const c of cleanups.reverse()) await c().catch((e: unknown) => log.warn({ err: (e as Error).message }, 'Error while stopping'));
    cleanups.length = 0;
  };

  // Health is served from the start, so that a standby has probes too: /healthz says the process is alive; /readyz
  // says a standby takes part in the election and a leader has synced its informers (and serves the workload API).
  let state: 'standby' | 'leading' | 'stopped' = options.leader ? 'standby' : 'leading';
  let leaderReady: () => boolean = () => false;
  const readiness = (): { ok: boolean; text: string } => {
    if (state === 'stopped') return { ok: false, text: 'stopping' };
    if (state === 'standby') return (options.leader?.candidateReady?.() ?? true) ? { ok: true, text: 'standby' } : { ok: false, text: 'standby: the Lease has not been read yet' };
    return leaderReady() ? { ok: true, text: 'ok' } : { ok: false, text: 'informers not synced' };
  };
  let server: Server | undefined;
  let url: string | undefined;
  if (config.metrics) {
    const srv = createServer((req, res) => {
      if (req.url === '/metrics') {
        void registry.metrics().then((m) => res.writeHead(200, { 'content-type': registry.contentType }).end(m), () => res.writeHead(500).end());
      } else if (req.url === '/healthz') res.writeHead(state === 'stopped' ? 503 : 200).end(state === 'stopped' ? 'stopping' : 'ok');
      else if (req.url === '/readyz') {
        const r = readiness();
        res.writeHead(r.ok ? 200 : 503).end(r.text);
      } else res.writeHead(404).end();
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
  if (options.leader) {
    log.info('Waiting for leadership');
    try {
      await options.leader.acquire(abort.signal);
    } catch (e) {
      server?.closeAllConnections();
      await runCleanups();
      throw e;
    }
    state = 'leading';
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
  const edgeHubReports = new EdgeHubReportStore();

  let controller: RunningController;
  try {
    controller = await startEdgeDeploymentController({
      config: cluster,
      ...(config.namespace ? { namespace: config.namespace } : {}),
      policy,
      log,
      registry,
      workers: config.workers,
      kube,
      edgeHubReports,
      ...(config.resyncPeriodMs !== undefined ? { resyncPeriodMs: config.resyncPeriodMs } : {}),
      ...(config.statusCoalesceMs !== undefined ? { statusCoalesceMs: config.statusCoalesceMs } : {}),
      ...(config.watchTimeoutSeconds !== undefined ? { watchTimeoutSeconds: config.watchTimeoutSeconds } : {}),
    });
  } catch (e) {
    server?.closeAllConnections();
    await runCleanups();
    throw e;
  }
  const ctl = controller;
  cleanups.push(() => ctl.stop());

  let twinSync: TwinSync | undefined;
  let client: IotHubClient | undefined;
  let workload: WorkloadApi | undefined;
  let deviceCa: DeviceCa | undefined;
  let edgeDeploymentName: string | undefined;
  try {
    if (config.hub && cs && config.namespace) {
      const hub = config.hub;
      const namespace = config.namespace;
      const name = config.edgeDeploymentName ?? (await resolveEdgeDeploymentName(kube, namespace, deviceId, log));
      edgeDeploymentName = name;
      const deviceKey = cs.get('SharedAccessKey') ?? '';
      const hubLog = log.child({ component: 'hub-link', deviceId });
      const devices = deviceRegistryClient(hub, hubHostName, deviceId, deviceKey);
      client = edgeAgentClient(hub, devices, hubHostName, deviceId, hubLog);
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
      if (config.workload) {
        const w = await startWorkload(config.workload, { cluster, kube, namespace, name, edgeHubReports, log: log.child({ component: 'workload' }), signal: abort.signal });
        workload = w.api;
        deviceCa = w.ca;
        cleanups.push(() => w.api.close());
      }
      await twinSync.start(abort.signal);
      client.start();
      log.info({ hubHostName, deviceId, namespace, edgeDeployment: name, workload: workload?.uri }, 'Started the hub link (connecting in the background)');
    }
  } catch (e) {
    server?.closeAllConnections();
    await runCleanups();
    throw e;
  }

  leaderReady = () => controller.informers.every((i) => i.hasSynced()) && (twinSync?.hasSynced() ?? true);
  const ready = leaderReady;

  let stopping: Promise<void> | undefined;
  let markStopped: () => void = () => undefined;
  const stopped = new Promise<void>((resolve) => {
    markStopped = resolve;
  });
  const stop = (): Promise<void> => {
    stopping ??= (async () => {
      state = 'stopped';
      abort.abort();
      server?.closeAllConnections();
      await runCleanups();
      markStopped();
    })();
    return stopping;
  };
  options.leader?.lost.addEventListener('abort', () => {
    log.warn('Lost leadership; stopping');
    void stop();
  });
  return {
    controller,
    ...(twinSync ? { twinSync } : {}),
    ...(client ? { client } : {}),
    ...(url ? { url } : {}),
    ...(workload ? { workload } : {}),
    ...(deviceCa ? { deviceCa } : {}),
    ...(edgeDeploymentName ? { edgeDeploymentName } : {}),
    ready,
    stopped,
    stop,
  };
}

/**
 * The EdgeDeployment an agent without `edgeDeploymentName` uses: {@link DEFAULT_EDGE_DEPLOYMENT}, unless only the
 * one an earlier agent named after the device id exists (an upgrade: renaming it would recreate every module).
 */
export async function resolveEdgeDeploymentName(kube: KubeClient, namespace: string, deviceId: string, log: Logger): Promise<string> {
  const legacy = toDnsLabel(deviceId);
  if (legacy === DEFAULT_EDGE_DEPLOYMENT) return DEFAULT_EDGE_DEPLOYMENT;
  const get = (n: string) => kube.get(EdgeDeploymentResource.apiVersion, EdgeDeploymentResource.kind, namespace, n);
  const [current, old] = await Promise.all([get(DEFAULT_EDGE_DEPLOYMENT), get(legacy)]);
  if (!old) return DEFAULT_EDGE_DEPLOYMENT;
  if (!current) {
    log.info({ edgeDeployment: legacy }, `Keeping EdgeDeployment ${legacy}, written by an earlier agent (pass --edge-deployment ${legacy} to make it explicit)`);
    return legacy;
  }
  log.warn({ edgeDeployment: DEFAULT_EDGE_DEPLOYMENT, stale: legacy }, `Using EdgeDeployment ${DEFAULT_EDGE_DEPLOYMENT}; ${legacy} was written by an earlier agent and is no longer updated (delete it: kubectl delete edep -n ${namespace} ${legacy})`);
  return DEFAULT_EDGE_DEPLOYMENT;
}

interface WorkloadContext {
  readonly cluster: ClusterConfig;
  readonly kube: KubeClient;
  readonly namespace: string;
  readonly name: string;
  readonly edgeHubReports: EdgeHubReportStore;
  readonly log: Logger;
  readonly signal: AbortSignal;
}

/**
 * The leader's workload API: the device CA (made on first start), the trust-bundle ConfigMap for connection-string
 * modules, the listener, and — when advertised — the EndpointSlice that points the workload Service at this pod.
 */
async function startWorkload(w: NonNullable<AgentConfig['workload']>, ctx: WorkloadContext): Promise<{ api: WorkloadApi; ca: DeviceCa }> {
  const { kube, namespace, log } = ctx;
  const ca = await loadOrCreateDeviceCa(ctx.cluster, kube, namespace, {}, { signal: ctx.signal });
  const labels = { [Labels.partOf]: 'kedge', [Labels.managedBy]: MANAGED_BY, 'app.kubernetes.io/component': 'workload' };
  await kube.apply(
    { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: TRUST_BUNDLE_CONFIGMAP, namespace, labels }, data: { [TRUST_BUNDLE_KEY]: ca.trustBundle } } as KubernetesObject,
    { fieldManager: 'kedge-agent', force: true },
  );
  const api = new WorkloadApi({ modules: new DeployedWorkloadModules({ kube, namespace, edgeDeploymentName: ctx.name }), ca: ca.ca, trustBundle: ca.trustBundle, namespace, edgeHubReports: ctx.edgeHubReports, log });
  const uri = await api.listen(w.path !== undefined ? { path: w.path } : { host: w.host, port: w.port });
  try {
    if (w.advertise) {
      const port = w.path !== undefined ? w.port : Number(new URL(uri).port);
      await kube.apply(
        {
          apiVersion: 'discovery.k8s.io/v1',
          kind: 'EndpointSlice',
          metadata: { name: w.advertise.service, namespace, labels: { ...labels, 'kubernetes.io/service-name': w.advertise.service, 'endpointslice.kubernetes.io/managed-by': 'kedge-agent.kedge.io' } },
          addressType: w.advertise.address.includes(':') ? 'IPv6' : 'IPv4',
          endpoints: [{ addresses: [w.advertise.address], conditions: { ready: true } }],
          ports: [{ name: 'workload', port, protocol: 'TCP' }],
        } as KubernetesObject,
        { fieldManager: 'kedge-agent', force: true },
      );
    }
  } catch (e) {
    await api.close();
    throw e;
  }
  log.info({ uri, advertised: w.advertise?.service }, 'Serving the workload API');
  return { api, ca };
}
