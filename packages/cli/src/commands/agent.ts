import { readFile } from 'node:fs/promises';
import type { Command } from 'commander';
import { stringify } from 'yaml';
import { edgeDeploymentCrd } from '@kedge/manifest';
import { untilStopSignal } from '../io.js';
// The agent, its Kubernetes access, pino and prom-client load when `agent` commands run, not with every `kedge` command.
const loadAgent = () => import('@kedge/agent');

interface RunOptions {
  namespace?: string;
  kubeconfig?: string;
  context?: string;
  policy?: string;
  workers: string;
  metricsPort: string;
  metricsHost: string;
  logLevel: string;
  hubConnectionStringFile?: string;
  hubCa?: string;
  hubMqttPort?: string;
  hubHttpsPort?: string;
  edgeDeployment?: string;
  leaderElect?: boolean;
  leaderLease: string;
  runtime: string;
  stateDir?: string;
  deviceId?: string;
  gatewayHost?: string;
  moduleCa?: string;
  workloadListen: string;
  workloadAdvertiseIp?: string;
  workloadService: string;
}

/** `host:port`, `[v6]:port` or `unix:/path` of `--workload-listen`, or `off`; undefined when malformed. */
export function parseWorkloadListen(text: string): { host: string; port: number } | { path: string } | null | undefined {
  if (text === 'off') return null;
  if (text.startsWith('unix:')) return text.length > 5 ? { path: text.slice(5) } : undefined;
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([^:[\]]+)):(\d{1,5})$/.exec(text);
  const port = Number(m?.[3]);
  const host = m?.[1] ?? m?.[2];
  return m && host && port <= 65535 ? { host, port } : undefined;
}

/** Where `kedge agent run` reads the device's connection string when no file is given (the Helm chart's Secret). */
const CONNECTION_STRING_ENV = 'KEDGE_DEVICE_CONNECTION_STRING';

/** Registers `kedge agent run|rbac` and `kedge crds`. */
export function registerClusterCommands(program: Command): void {
  program
    .command('crds')
    .description("Print Kedge's CustomResourceDefinitions (YAML) for `kubectl apply -f -`")
    .action(() => {
      process.stdout.write(stringify(edgeDeploymentCrd()));
    });
  const agent = program.command('agent').description('The edge agent: runs a device\'s modules, as Kubernetes objects (EdgeDeployments) or as local processes (--runtime process)');
  agent
    .command('rbac')
    .description("Print the namespaced ServiceAccount, Role and RoleBinding the agent needs in a device's namespace")
    .requiredOption('-n, --namespace <ns>', "the device's namespace")
    .action(async (opts: { namespace: string }) => {
      const { agentRbac } = await loadAgent();
      process.stdout.write(agentRbac(opts.namespace).map((o) => stringify(o)).join('---\n'));
    });
  agent
    .command('run')
    .description('Run the edge agent (EdgeDeployment controller and, with a device connection string, the hub link) until SIGINT/SIGTERM')
    .option('-n, --namespace <ns>', "the device's namespace (default: all namespaces; required with a hub link)")
    .option('--kubeconfig <file>', 'kubeconfig (default: $KUBECONFIG, else the pod\'s ServiceAccount in a cluster, else ~/.kube/config)')
    .option('--context <name>', 'kubeconfig context (default: its current-context)')
    .option('--policy <file>', 'device policy (JSON or YAML), see docs/agent.md')
    .option('--hub-connection-string-file <file>', `the edge device's connection string (default: $${CONNECTION_STRING_ENV}; neither: no hub link)`)
    .option('--hub-ca <file>', "PEM of the CA of the hub's certificate (default: the system's)")
    .option('--hub-mqtt-port <port>', "the hub's MQTT over TLS port (default 8883)")
    .option('--hub-https-port <port>', "the hub's HTTPS port, module identities (default 443; `kedge hub` listens on 8443)")
    .option('--edge-deployment <name>', "the device's EdgeDeployment (default: `default`, or the device id where an earlier agent wrote that one)")
    .option('--leader-elect', 'run as one of several replicas: only the holder of the Lease works (needs --namespace)')
    .option('--leader-lease <name>', 'the Lease replicas compete for', 'kedge-agent')
    .option('--workload-listen <addr>', 'workload API for the modules (with a hub link): host:port, unix:/path or off', '127.0.0.1:15580')
    .option('--workload-advertise-ip <ip>', 'point the workload Service at this address (the pod IP) while leading')
    .option('--workload-service <name>', 'the selector-less Service modules reach the workload API by', 'kedge-workload')
    .option('--workers <n>', 'reconcile workers', '4')
    .option('--metrics-port <port>', 'port for /metrics, /healthz and /readyz (0: off)', '9600')
    .option('--metrics-host <host>', 'address for /metrics', '127.0.0.1')
    .option('--log-level <level>', 'pino log level', 'info')
    .option('--runtime <runtime>', 'where modules run: kubernetes (an EdgeDeployment per device) or process (local child processes)', 'kubernetes')
    .option('--state-dir <dir>', 'process runtime: the state directory (deployment, twin cache, module pids)')
    .option('--device-id <id>', 'process runtime without a hub link: the device id modules are given')
    .option('--gateway-host <host>', 'process runtime: IOTEDGE_GATEWAYHOSTNAME of modules (where the edge hub listens)', 'localhost')
    .option('--module-ca <file>', "process runtime: PEM of the edge hub's CA, given to modules as EdgeModuleCACertificateFile")
    .action(async (opts: RunOptions) => {
      const [{ ClusterConfig, ClusterConfigError, createKubeClient }, { pino }, { AgentConfigError, startAgent, leaseLeader, fencedKubeClient }] = await Promise.all([import('@kedge/kube'), import('pino'), loadAgent()]);
      const fail = (message: string) => {
        process.stderr.write(`kedge agent: ${message}\n`);
        process.exitCode = 2;
      };
      const log = pino({ level: opts.logLevel, redact: ['*.password', '*.token', '*.data', '*.connectionString', '*.sharedAccessKey'] });
      let policyInput: unknown = {};
      if (opts.policy) {
        const text = await readFile(opts.policy, 'utf8');
        const { parse } = await import('yaml');
        policyInput = parse(text) as unknown;
      }
      const { DevicePolicySchema } = await loadAgent();
      const policy = DevicePolicySchema.safeParse(policyInput ?? {});
      if (!policy.success) return fail(`invalid policy ${opts.policy ?? ''}: ${policy.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')}`);
      let connectionString = process.env[CONNECTION_STRING_ENV];
      let ca: string | undefined;
      try {
        if (opts.hubConnectionStringFile) connectionString = (await readFile(opts.hubConnectionStringFile, 'utf8')).trim();
        if (opts.hubCa) ca = await readFile(opts.hubCa, 'utf8');
      } catch (e) {
        return fail(`cannot read ${(e as { path?: string }).path ?? 'a file'}: ${(e as { code?: string }).code ?? 'error'}`);
      }
      const hubPorts: { mqttPort?: number; servicePort?: number } = {};
      for (const [flag, value, key] of [['--hub-mqtt-port', opts.hubMqttPort, 'mqttPort'], ['--hub-https-port', opts.hubHttpsPort, 'servicePort']] as const) {
        if (value === undefined) continue;
        const n = Number(value);
        if (!Number.isInteger(n) || n < 1 || n > 65535) return fail(`invalid ${flag} ${value}`);
        hubPorts[key] = n;
      }
      const port = Number(opts.metricsPort);
      if (opts.runtime !== 'kubernetes' && opts.runtime !== 'process') return fail(`--runtime must be kubernetes or process, not ${JSON.stringify(opts.runtime)}`);
      if (opts.runtime === 'process') {
        if (!opts.stateDir) return fail('--runtime process needs --state-dir <dir> (where the deployment, twin cache and module pids are kept)');
        const { startProcessAgent } = await loadAgent();
        let agentRun;
        try {
          agentRun = await startProcessAgent(
            {
              stateDir: opts.stateDir,
              ...(opts.deviceId ? { deviceId: opts.deviceId } : {}),
              gatewayHostName: opts.gatewayHost ?? 'localhost',
              ...(opts.moduleCa ? { moduleCaFile: opts.moduleCa } : {}),
              metrics: port > 0 ? { port, host: opts.metricsHost } : null,
              ...(connectionString ? { hub: { connectionString, ...(ca ? { ca } : {}), ...hubPorts } } : {}),
            },
            { log },
          );
        } catch (e) {
          if (e instanceof AgentConfigError) return fail(e.message);
          throw e;
        }
        log.info({ runtime: 'process', stateDir: opts.stateDir, metrics: agentRun.url, hub: connectionString !== undefined }, 'Started the edge agent');
        // Module processes and timers do not hold the event loop (they are unref'd): the agent waits for its signal.
        const keepAlive = setInterval(() => undefined, 1 << 30);
        await Promise.race([agentRun.stopped, untilStopSignal()]);
        log.info('Stopping the edge agent and its modules');
        await agentRun.stop();
        clearInterval(keepAlive);
        return;
      }
      let cluster;
      try {
        cluster = ClusterConfig.load({ ...(opts.kubeconfig ? { kubeconfig: opts.kubeconfig } : {}), ...(opts.context ? { context: opts.context } : {}) });
      } catch (e) {
        if (!(e instanceof ClusterConfigError)) throw e;
        return fail(e.message);
      }
      const workloadListen = parseWorkloadListen(opts.workloadListen);
      if (workloadListen === undefined) return fail(`--workload-listen must be host:port, unix:/path or off (got ${opts.workloadListen})`);
      const workload =
        workloadListen === null
          ? null
          : { ...workloadListen, ...(opts.workloadAdvertiseIp ? { advertise: { service: opts.workloadService, address: opts.workloadAdvertiseIp } } : {}) };
      if (opts.leaderElect && !opts.namespace) return fail('--leader-elect needs --namespace (the Lease lives in the device namespace)');
      const leader = opts.leaderElect && opts.namespace ? leaseLeader(cluster, { namespace: opts.namespace, lease: opts.leaderLease, log }) : undefined;
      let running;
      try {
        running = await startAgent(
          {
            ...(opts.namespace ? { namespace: opts.namespace } : {}),
            policy: policy.data,
            workers: Number(opts.workers),
            metrics: port > 0 ? { port, host: opts.metricsHost } : null,
            ...(connectionString ? { hub: { connectionString, ...(ca ? { ca } : {}), ...hubPorts } } : {}),
            ...(opts.edgeDeployment ? { edgeDeploymentName: opts.edgeDeployment } : {}),
            workload,
          },
          // With leader election every write passes the fencing check first.
          { cluster, log, ...(leader ? { leader, kube: fencedKubeClient(createKubeClient(cluster), () => leader.elector.isLeader()) } : {}) },
        );
      } catch (e) {
        await leader?.stop();
        if (e instanceof AgentConfigError) return fail(e.message);
        throw e;
      }
      log.info({ namespace: opts.namespace ?? '(all)', metrics: running.url, hub: connectionString !== undefined }, 'Started the edge agent');
      await Promise.race([
        running.stopped,
        new Promise<void>((resolve) => {
          process.once('SIGINT', resolve);
          process.once('SIGTERM', resolve);
        }),
      ]);
      log.info('Stopping the edge agent');
      await running.stop();
      await leader?.stop();
    });
}
