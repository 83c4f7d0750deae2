import { stringify } from 'yaml';
import { formatIssues } from '@kedge/contracts';
import { EdgeDeploymentResource, parseEdgeDeploymentSpec, validateManifest } from '@kedge/manifest';
import { loadDocument } from '../io.js';

interface RenderOptions {
  namespace: string;
  device: string;
  output: string;
  name: string;
  allowHostPaths: boolean;
  storageClass?: string;
  pvcSize: string;
  portBindingServiceType: string;
}

/**
 * `kedge manifest render`: the EdgeDeployment for a manifest and every object the controller would apply for it,
 * with the controller's own rendering code and a placeholder owner uid (the real one exists only in a cluster).
 */
export async function renderCommandAction(file: string, opts: RenderOptions): Promise<void> {
  if (opts.output !== 'json' && opts.output !== 'yaml') {
    process.stderr.write(`kedge manifest render: --output must be json or yaml, got "${opts.output}"\n`);
    process.exitCode = 2;
    return;
  }
  const doc = await loadDocument(file);
  if (!doc) return;
  const v = validateManifest(doc.value);
  if (!v.ok) {
    process.stdout.write(`${formatIssues(v.error)}\n`);
    process.exitCode = 1;
    return;
  }
  const { defaultPolicy, render } = await import('@kedge/agent');
  const policy = defaultPolicy({
    allowHostPaths: opts.allowHostPaths,
    pvcSize: opts.pvcSize,
    portBindingServiceType: opts.portBindingServiceType as 'ClusterIP' | 'NodePort' | 'LoadBalancer',
    ...(opts.storageClass !== undefined ? { storageClassName: opts.storageClass } : {}),
  });
  const spec = { ...v.manifest.spec, deviceId: opts.device };
  const edgeDeployment = {
    apiVersion: EdgeDeploymentResource.apiVersion,
    kind: EdgeDeploymentResource.kind,
    metadata: { name: opts.name, namespace: opts.namespace },
    spec,
  };
  const parsed = parseEdgeDeploymentSpec(JSON.parse(JSON.stringify(spec)));
  if (!parsed.ok) {
    process.stdout.write(`${formatIssues(parsed.error)}\n`);
    process.exitCode = 1;
    return;
  }
  const owner = { name: opts.name, namespace: opts.namespace, uid: '00000000-0000-0000-0000-000000000000' };
  const r = render({ owner, deviceId: opts.device, parsed: parsed.value, policy });
  for (const w of r.warnings) process.stderr.write(`warning: ${w.path}: ${w.message}\n`);
  if (r.errors.length) {
    process.stdout.write(`${formatIssues(r.errors)}\n`);
    process.exitCode = 1;
    return;
  }
  const list = { apiVersion: 'v1', kind: 'List', items: [edgeDeployment, ...r.objects] };
  process.stdout.write(opts.output === 'json' ? `${JSON.stringify(list, null, 2)}\n` : stringify(list));
}
