import { createServer } from 'node:http';
import { readFile } from 'node:fs/promises';
import type { Command } from 'commander';
import { stringify } from 'yaml';
import { edgeDeploymentCrd } from '@kedge/manifest';
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
}

/** Registers `kedge agent run|rbac` and `kedge crds`. */
export function registerClusterCommands(program: Command): void {
  program
    .command('crds')
    .description("Print Kedge's CustomResourceDefinitions (YAML) for `kubectl apply -f -`")
    .action(() => {
      process.stdout.write(stringify(edgeDeploymentCrd()));
    });
  const agent = program.command('agent').description('The edge agent: reconciles EdgeDeployments into Kubernetes objects');
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
    .description('Run the EdgeDeployment controller until SIGINT/SIGTERM')
    .option('-n, --namespace <ns>', "watch only this device's namespace (default: all namespaces)")
    .option('--kubeconfig <file>', 'kubeconfig (default: $KUBECONFIG, else the pod\'s ServiceAccount in a cluster, else ~/.kube/config)')
    .option('--context <name>', 'kubeconfig context (default: its current-context)')
    .option('--policy <file>', 'device policy (JSON or YAML), see docs/agent.md')
    .option('--workers <n>', 'reconcile workers', '4')
    .option('--metrics-port <port>', 'port for /metrics and /healthz (0: off)', '9600')
    .option('--metrics-host <host>', 'address for /metrics', '127.0.0.1')
    .option('--log-level <level>', 'pino log level', 'info')
    .action(async (opts: RunOptions) => {
      const [{ ClusterConfig, ClusterConfigError }, { pino }, { Registry, collectDefaultMetrics }, { DevicePolicySchema, startEdgeDeploymentController }] = await Promise.all([
        import('@kedge/kube'),
        import('pino'),
        import('prom-client'),
        loadAgent(),
      ]);
      const log = pino({ level: opts.logLevel, redact: ['*.password', '*.token', '*.data'] });
      let policyInput: unknown = {};
      if (opts.policy) {
        const text = await readFile(opts.policy, 'utf8');
        const { parse } = await import('yaml');
        policyInput = parse(text) as unknown;
      }
      const policy = DevicePolicySchema.safeParse(policyInput ?? {});
      if (!policy.success) {
        process.stderr.write(`kedge agent: invalid policy ${opts.policy ?? ''}: ${policy.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')}\n`);
        process.exitCode = 2;
        return;
      }
      let config;
      try {
        config = ClusterConfig.load({ ...(opts.kubeconfig ? { kubeconfig: opts.kubeconfig } : {}), ...(opts.context ? { context: opts.context } : {}) });
      } catch (e) {
        if (!(e instanceof ClusterConfigError)) throw e;
        process.stderr.write(`kedge agent: ${e.message}\n`);
        process.exitCode = 2;
        return;
      }
      const registry = new Registry();
      collectDefaultMetrics({ register: registry });
      const running = await startEdgeDeploymentController({
        config,
        ...(opts.namespace ? { namespace: opts.namespace } : {}),
        policy: policy.data,
        log,
        registry,
        workers: Number(opts.workers),
      });
      const port = Number(opts.metricsPort);
      const server = port > 0
        ? createServer((req, res) => {
            if (req.url === '/metrics') {
              void registry.metrics().then((m) => res.writeHead(200, { 'content-type': registry.contentType }).end(m));
            } else if (req.url === '/healthz' || req.url === '/readyz') res.writeHead(200).end('ok');
            else res.writeHead(404).end();
          }).listen(port, opts.metricsHost)
        : undefined;
      log.info({ namespace: opts.namespace ?? '(all)', metricsPort: port }, 'Started EdgeDeployment controller');
      await new Promise<void>((resolve) => {
        process.once('SIGINT', resolve);
        process.once('SIGTERM', resolve);
      });
      log.info('Stopping EdgeDeployment controller');
      server?.close();
      await running.stop();
    });
}
