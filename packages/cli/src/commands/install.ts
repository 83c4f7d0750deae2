import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import type { Command } from 'commander';
import { stringify } from 'yaml';
import { edgeDeploymentCrd, EdgeDeploymentResource } from '@kedge/manifest';
import { agentRbac, DEFAULT_EDGE_DEPLOYMENT, WORKLOAD_PORT, WORKLOAD_SERVICE } from '@kedge/agent';

/** What one device's install is made of. Every field is a plain value or, for the Helm chart, a placeholder. */
export interface DeviceValues {
  readonly namespace: string;
  readonly deviceId: string;
  /** The device's connection string (`HostName=…;DeviceId=…;SharedAccessKey=…`): stored in a Secret only. */
  readonly connectionString: string;
  readonly agentImage: string;
  readonly edgeHubImage: string;
  /** Agent replicas; 2 or more run with leader election (one reconciles, the others stand by). */
  readonly replicas: number | string;
  /** Pod Security Standard level on the namespace (`restricted`, `baseline`, `privileged`). */
  readonly podSecurity: string;
}

/** Ports the agent serves: metrics/health, and the workload API (the leader only). */
export const AGENT_PORTS = { metrics: 9600, workload: WORKLOAD_PORT } as const;
/** Secret with the device's credentials, read by the agent as `KEDGE_DEVICE_CONNECTION_STRING`. */
export const CREDENTIALS_SECRET = 'kedge-device-credentials';

/**
 * The V8 flags of the agent's container command line (docs/agent.md, Memory): Node refuses `--lite-mode` in
 * `NODE_OPTIONS`, so they must be on the command line.
 */
export const AGENT_NODE_FLAGS = ['--lite-mode', '--max-semi-space-size=1', '--max-old-space-size=96'] as const;

type Obj = Record<string, unknown> & { kind: string };

/**
 * Everything one device needs in its namespace, in apply order: the namespace, the agent's ServiceAccount, Role
 * and RoleBinding (from {@link agentRbac}: the very Role `kedge agent rbac` prints), the credentials Secret, the
 * agent Deployment (with liveness and readiness probes), the workload Service modules sign through, and the
 * device's EdgeDeployment (named as the agent expects, {@link DEFAULT_EDGE_DEPLOYMENT}) holding the edge hub as its system
 * module (the cloud's `$edgeAgent` twin later fills in the modules).
 */
export function deviceObjects(v: DeviceValues): Obj[] {
  const labels = { 'app.kubernetes.io/part-of': 'kedge', 'app.kubernetes.io/name': 'kedge-agent', 'kedge.io/device-id': v.deviceId };
  const selector = { 'app.kubernetes.io/name': 'kedge-agent' };
  const ns: Obj = {
    apiVersion: 'v1',
    kind: 'Namespace',
    metadata: { name: v.namespace, labels: { 'app.kubernetes.io/part-of': 'kedge', 'pod-security.kubernetes.io/enforce': v.podSecurity } },
  };
  const rbac = agentRbac(v.namespace) as unknown as Obj[];
  const secret: Obj = {
    apiVersion: 'v1',
    kind: 'Secret',
    type: 'Opaque',
    metadata: { name: CREDENTIALS_SECRET, namespace: v.namespace, labels },
    stringData: { connectionString: v.connectionString },
  };
  const deployment: Obj = {
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: { name: 'kedge-agent', namespace: v.namespace, labels },
    spec: {
      replicas: v.replicas,
      selector: { matchLabels: selector },
      template: {
        metadata: { labels: { ...labels, ...selector } },
        spec: {
          serviceAccountName: 'kedge-agent',
          securityContext: { runAsNonRoot: true, runAsUser: 1000, runAsGroup: 1000, seccompProfile: { type: 'RuntimeDefault' } },
          containers: [
            {
              name: 'agent',
              image: v.agentImage,
              command: [
                'node',
                ...AGENT_NODE_FLAGS,
                '/app/packages/cli/dist/main.js',
                'agent',
                'run',
                '--namespace',
                v.namespace,
                '--leader-elect',
                '--metrics-host',
                '0.0.0.0',
                '--metrics-port',
                String(AGENT_PORTS.metrics),
                '--workload-listen',
                `0.0.0.0:${AGENT_PORTS.workload}`,
                // The leader points the workload Service at its own pod (an EndpointSlice): standbys do not sign.
                '--workload-advertise-ip',
                '$(POD_IP)',
                '--workload-service',
                WORKLOAD_SERVICE,
              ],
              env: [
                { name: 'KEDGE_DEVICE_CONNECTION_STRING', valueFrom: { secretKeyRef: { name: CREDENTIALS_SECRET, key: 'connectionString' } } },
                { name: 'POD_NAME', valueFrom: { fieldRef: { fieldPath: 'metadata.name' } } },
                { name: 'POD_IP', valueFrom: { fieldRef: { fieldPath: 'status.podIP' } } },
              ],
              ports: [
                { name: 'metrics', containerPort: AGENT_PORTS.metrics },
                { name: 'workload', containerPort: AGENT_PORTS.workload },
              ],
              // Standbys answer both (a standby is ready once it takes part in the election), so a rollout of 2+
              // replicas is not stalled by the replica that does not lead; traffic to the workload API goes only to
              // the leader through the Service's EndpointSlice, not through readiness.
              livenessProbe: { httpGet: { path: '/healthz', port: 'metrics' }, periodSeconds: 10, timeoutSeconds: 5, failureThreshold: 6 },
              readinessProbe: { httpGet: { path: '/readyz', port: 'metrics' }, periodSeconds: 5, timeoutSeconds: 5, failureThreshold: 3 },
              resources: { requests: { cpu: '50m', memory: '96Mi' }, limits: { memory: '160Mi' } },
              securityContext: { allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, capabilities: { drop: ['ALL'] } },
            },
          ],
        },
      },
    },
  };
  // No selector: the leading agent writes the EndpointSlice, so only the replica that signs receives requests.
  const workloadService: Obj = {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: { name: WORKLOAD_SERVICE, namespace: v.namespace, labels },
    spec: { type: 'ClusterIP', ports: [{ name: 'workload', port: AGENT_PORTS.workload, targetPort: AGENT_PORTS.workload, protocol: 'TCP' }] },
  };
  const edgeDeployment: Obj = {
    apiVersion: EdgeDeploymentResource.apiVersion,
    kind: EdgeDeploymentResource.kind,
    // The agent's default name: twin sync writes this very object.
    metadata: { name: DEFAULT_EDGE_DEPLOYMENT, namespace: v.namespace, labels },
    spec: {
      deviceId: v.deviceId,
      systemModules: {
        edgeHub: {
          type: 'docker',
          status: 'running',
          restartPolicy: 'always',
          settings: { image: v.edgeHubImage, createOptions: { HostConfig: { PortBindings: { '8883/tcp': [{ HostPort: '8883' }], '443/tcp': [{ HostPort: '443' }] } } } },
        },
      },
    },
  };
  return [ns, ...rbac, secret, deployment, workloadService, edgeDeployment];
}

/** YAML documents for `kubectl apply -f -`. */
export function toYaml(objects: readonly object[]): string {
  return objects.map((o) => stringify(o, { lineWidth: 0 })).join('---\n');
}

/** Helm expressions the chart substitutes for each {@link DeviceValues} field. */
const HELM: Record<keyof DeviceValues, string> = {
  namespace: '{{ include "kedge-device.namespace" . }}',
  deviceId: '{{ required "deviceId is required" .Values.deviceId | quote }}',
  connectionString: '{{ required "connectionString is required" .Values.connectionString | quote }}',
  agentImage: '{{ printf "%s:%s" .Values.agent.image.repository .Values.agent.image.tag | quote }}',
  edgeHubImage: '{{ printf "%s:%s" .Values.edgeHub.image.repository .Values.edgeHub.image.tag | quote }}',
  replicas: '{{ .Values.agent.replicas }}',
  podSecurity: '{{ .Values.namespace.podSecurity | quote }}',
};

const GENERATED = '# Generated by `npm run gen:helm` from the code that renders it (packages/cli/src/commands/install.ts); do not edit.\n';

/**
 * The two Helm charts, as files under `deploy/helm/`: `kedge-crds` (the CRD, from the same zod schemas as
 * `kedge crds`) and `kedge-device` (from {@link deviceObjects} with Helm expressions as values). Generated, never
 * hand-edited, so chart, `kedge install` and `kedge agent rbac` cannot drift.
 */
export function helmCharts(version = '0.1.0'): Record<string, string> {
  const placeholders = Object.fromEntries(Object.keys(HELM).map((k) => [k, `@@${k}@@`])) as unknown as DeviceValues;
  const objects = deviceObjects(placeholders);
  const templates: Record<string, string> = {};
  for (const o of objects) {
    const meta = o['metadata'] as { name: string };
    let text = stringify(o, { lineWidth: 0 });
    // A placeholder alone in a scalar (quoted or not) becomes the bare expression; inside a longer string (the
    // `--workload-listen` argument) it is spliced in.
    for (const [k, expr] of Object.entries(HELM)) {
      text = text.replace(new RegExp(`(["']?)@@${k}@@\\1`, 'g'), () => expr);
    }
    const file = `${o.kind.toLowerCase()}-${meta.name.replace(/[^a-z0-9-]/g, '')}.yaml`;
    templates[file] = o.kind === 'Namespace' ? `{{- if .Values.namespace.create }}\n${text}{{- end }}\n` : text;
  }
  const crd = stringify(edgeDeploymentCrd(), { lineWidth: 0 });
  if (crd.includes('{{')) throw new Error('The CRD contains "{{", which Helm would read as a template');
  const device = 'deploy/helm/kedge-device';
  const files: Record<string, string> = {
    'deploy/helm/kedge-crds/Chart.yaml': `${GENERATED}apiVersion: v2\nname: kedge-crds\ndescription: Kedge's CustomResourceDefinitions, installed once per cluster\ntype: application\nversion: ${version}\nappVersion: "${version}"\n`,
    'deploy/helm/kedge-crds/templates/edgedeployments.kedge.io.yaml': `${GENERATED}${crd}`,
    [`${device}/Chart.yaml`]: `${GENERATED}apiVersion: v2\nname: kedge-device\ndescription: One Kedge edge device - its namespace, agent, least-privilege RBAC, credentials and edge hub\ntype: application\nversion: ${version}\nappVersion: "${version}"\n`,
    [`${device}/values.yaml`]: `${GENERATED}${stringify({
      deviceId: '',
      connectionString: '',
      namespace: { name: '', create: true, podSecurity: 'baseline' },
      agent: { replicas: 2, image: { repository: 'ghcr.io/kedge/agent', tag: version } },
      edgeHub: { image: { repository: 'ghcr.io/kedge/edge-hub', tag: version } },
    })}`,
    [`${device}/templates/_helpers.tpl`]: `{{/* ${GENERATED.slice(2).trim()} */}}\n{{- define "kedge-device.namespace" -}}\n{{- default .Release.Namespace .Values.namespace.name -}}\n{{- end -}}\n`,
  };
  for (const [f, text] of Object.entries(templates)) files[`${device}/templates/${f}`] = f.endsWith('.yaml') && !text.startsWith('{{') ? `${GENERATED}${text}` : text;
  return files;
}

interface InstallOptions {
  device: string;
  namespace?: string;
  connectionString?: string;
  agentImage: string;
  edgeHubImage: string;
  replicas: string;
  podSecurity: string;
  crds?: boolean;
}

/** Registers `kedge install` (plain manifests for one device) and `kedge install helm` (writes the charts). */
export function registerInstallCommands(program: Command): void {
  const install = program
    .command('install')
    .description("Print everything one device needs (namespace, agent, RBAC, credentials, edge hub) as YAML for `kubectl apply -f -`")
    .option('--device <id>', 'the device id')
    .option('-n, --namespace <ns>', "the device's namespace (default: the device id)")
    .option('--connection-string <cs>', "the device's connection string (default: $KEDGE_DEVICE_CONNECTION_STRING)")
    .option('--agent-image <image>', 'agent image', 'ghcr.io/kedge/agent:0.1.0')
    .option('--edge-hub-image <image>', 'edge hub image', 'ghcr.io/kedge/edge-hub:0.1.0')
    .option('--replicas <n>', 'agent replicas (2+: leader election)', '2')
    .option('--pod-security <level>', 'Pod Security Standard enforced on the namespace', 'baseline')
    .option('--crds', 'include the CRDs (a cluster-admin step, once per cluster)')
    .action((opts: InstallOptions) => {
      const cs = opts.connectionString ?? process.env['KEDGE_DEVICE_CONNECTION_STRING'];
      if (!opts.device || !cs) {
        process.stderr.write('kedge install: --device and --connection-string (or $KEDGE_DEVICE_CONNECTION_STRING) are required\n');
        process.exitCode = 2;
        return;
      }
      const replicas = Number(opts.replicas);
      if (!Number.isInteger(replicas) || replicas < 1) {
        process.stderr.write(`kedge install: --replicas must be a positive integer (got ${opts.replicas})\n`);
        process.exitCode = 2;
        return;
      }
      const objects = deviceObjects({
        namespace: opts.namespace ?? opts.device.toLowerCase(),
        deviceId: opts.device,
        connectionString: cs,
        agentImage: opts.agentImage,
        edgeHubImage: opts.edgeHubImage,
        replicas,
        podSecurity: opts.podSecurity,
      });
      process.stdout.write(toYaml(opts.crds ? [edgeDeploymentCrd(), ...objects] : objects));
    });
  install
    .command('helm')
    .description('Write the Helm charts (deploy/helm/kedge-crds, deploy/helm/kedge-device) under a directory')
    .option('--root <dir>', 'repository root to write deploy/helm/ into', '.')
    .option('--check', 'write nothing; exit 1 if the files there differ from what the code generates')
    .action(async (opts: { root: string; check?: boolean }) => {
      const stale: string[] = [];
      for (const [path, text] of Object.entries(helmCharts())) {
        const file = join(opts.root, path);
        if (opts.check) {
          const current = await readFile(file, 'utf8').catch(() => undefined);
          if (current !== text) stale.push(path);
          continue;
        }
        await mkdir(dirname(file), { recursive: true });
        await writeFile(file, text);
      }
      if (stale.length) {
        process.stderr.write(`kedge install helm: stale, run \`npm run gen:helm\`: ${stale.join(', ')}\n`);
        process.exitCode = 1;
      }
    });
}
