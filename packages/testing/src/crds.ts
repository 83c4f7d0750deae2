import { existsSync, readdirSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { request, type RequestOptions } from 'node:https';
import { join } from 'node:path';
import type { KubeConfig, V1CustomResourceDefinition } from '@kubernetes/client-node';
import { parseAllDocuments } from 'yaml';
import { readResponse } from './http.js';

/**
 * Server-side applies one CRD object (field manager `kedge-test`, force) as plain JSON, bypassing client-node's
 * ObjectSerializer, which drops `x-kubernetes-*` schema markers (their JSON names differ from the model's fields).
 */
export async function applyCrd(kc: KubeConfig, crd: V1CustomResourceDefinition, source = 'object'): Promise<void> {
  const name = crd.metadata?.name;
  if (!name) throw new Error(`${source}: CustomResourceDefinition without metadata.name`);
  const path = `/apis/apiextensions.k8s.io/v1/customresourcedefinitions/${name}?fieldManager=kedge-test&force=true`;
  const { status, body } = await rawRequest(kc, 'PATCH', path, JSON.stringify(crd), 'application/apply-patch+yaml');
  if (status < 200 || status >= 300) throw new Error(`applying CRD ${name} from ${source} failed: HTTP ${status}: ${body}`);
}

/**
 * Server-side applies every CRD found in `dir/*.yaml`; returns their names. A missing or empty dir is fine.
 * The body goes out as plain JSON: client-node's typed `ApiextensionsV1Api` runs it through its ObjectSerializer,
 * which silently drops `x-kubernetes-*` schema markers (their JSON names differ from the model's field names).
 */
export async function applyCrds(kc: KubeConfig, dir: string): Promise<string[]> {
  if (!existsSync(dir)) return [];
  const names: string[] = [];
  for (const file of readdirSync(dir).filter((f) => f.endsWith('.yaml') || f.endsWith('.yml')).sort()) {
    for (const doc of parseAllDocuments(await readFile(join(dir, file), 'utf8'))) {
      const crd = doc.toJS() as V1CustomResourceDefinition | null;
      if (!crd || crd.kind !== 'CustomResourceDefinition') continue;
      const name = crd.metadata?.name;
      if (!name) throw new Error(`${file}: CustomResourceDefinition without metadata.name`);
      await applyCrd(kc, crd, file);
      names.push(name);
    }
  }
  return names;
}

/** One HTTPS request to the apiserver with the kubeconfig's credentials; resolves with status and body text. */
async function rawRequest(kc: KubeConfig, method: string, path: string, body: string, contentType: string): Promise<{ status: number; body: string }> {
  const cluster = kc.getCurrentCluster();
  if (!cluster) throw new Error('kubeconfig has no current cluster');
  const url = new URL(path, cluster.server);
  const opts: RequestOptions = { method, hostname: url.hostname, port: url.port, path: `${url.pathname}${url.search}`, headers: { 'content-type': contentType, accept: 'application/json' } };
  await kc.applyToHTTPSOptions(opts);
  return readResponse(request(opts), body);
}
