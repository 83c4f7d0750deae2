import type { V1ConfigMap } from '@kubernetes/client-node';
import type { KubernetesObject } from './types.js';
import { beforeAll, describe, expect, it } from 'vitest';
import { FIELD_MANAGER, createKubeClient } from './client.js';
import type { KubeClient } from './client.js';
import { KubeApiError, KubeErrorCode, isConflict, isForbidden, isInvalid, isNoKindMatch, isNotFound, isTransient } from './errors.js';
import { WIDGET, createNamespace, ensureWidgetCrd, testClusterConfig } from './test-helpers.js';

type Widget = KubernetesObject & {
  spec?: { size?: number; color?: string; [k: string]: unknown };
  status?: { phase?: string; observedGeneration?: number };
};

const cm = (ns: string, name: string, data: Record<string, string>, extra: Partial<V1ConfigMap['metadata']> = {}): V1ConfigMap => ({
  apiVersion: 'v1',
  kind: 'ConfigMap',
  metadata: { name, namespace: ns, ...extra },
  data,
});

let client: KubeClient;

beforeAll(async () => {
  client = createKubeClient(testClusterConfig());
  await ensureWidgetCrd(client);
});

describe('KubeClient.apply (server-side apply)', () => {
  it('creates, then updates, and a no-op apply leaves the resourceVersion unchanged', async () => {
    const ns = await createNamespace(client, 'apply');
    const created = await client.apply(cm(ns, 'c1', { a: '1' }));
    expect(created.metadata?.uid).toBeTruthy();
    expect(created.data).toEqual({ a: '1' });
    // Plain JSON back, not client-node model classes: timestamps stay strings, like watch events.
    expect(typeof created.metadata?.creationTimestamp).toBe('string');
    expect(created.metadata?.managedFields?.map((f) => [f.manager, f.operation])).toEqual([[FIELD_MANAGER, 'Apply']]);

    const again = await client.apply(cm(ns, 'c1', { a: '1' }));
    expect(again.metadata?.resourceVersion).toBe(created.metadata?.resourceVersion);

    const updated = await client.apply(cm(ns, 'c1', { b: '2' }));
    expect(updated.metadata?.resourceVersion).not.toBe(created.metadata?.resourceVersion);
    // SSA semantics: a field this manager applied before and omits now is removed.
    expect(updated.data).toEqual({ b: '2' });
  });

  it('dry-run validates without persisting', async () => {
    const ns = await createNamespace(client, 'dryrun');
    const out = await client.apply(cm(ns, 'c1', { a: '1' }), { dryRun: true });
    expect(out.data).toEqual({ a: '1' });
    expect(await client.get('v1', 'ConfigMap', ns, 'c1')).toBeUndefined();
  });

  it('forces ownership of fields another manager owns by default, and conflicts with force=false', async () => {
    const ns = await createNamespace(client, 'force');
    await client.apply(cm(ns, 'c1', { a: 'theirs' }), { fieldManager: 'someone-else' });
    const err = await client.apply(cm(ns, 'c1', { a: 'ours' }), { force: false }).catch((e: unknown) => e);
    expect(isConflict(err)).toBe(true);
    const forced = await client.apply(cm(ns, 'c1', { a: 'ours' }));
    expect(forced.data).toEqual({ a: 'ours' });
  });

  it('sends fields client-node 1.4.0 models would drop (JSON names such as x-kubernetes-*, unknown fields)', async () => {
    const ns = await createNamespace(client, 'raw');
    const w = await client.apply<Widget>({
      apiVersion: WIDGET.apiVersion,
      kind: WIDGET.kind,
      metadata: { name: 'w1', namespace: ns },
      spec: { size: 1, extra: { nested: true } },
    });
    expect(w.spec).toEqual({ size: 1, extra: { nested: true } });
    const crd = await client.get<KubernetesObject & { spec: { versions: { schema: { openAPIV3Schema: { properties: { spec: Record<string, unknown> } } } }[] } }>(
      'apiextensions.k8s.io/v1',
      'CustomResourceDefinition',
      undefined,
      `${WIDGET.plural}.${WIDGET.group}`,
    );
    expect(crd?.spec.versions[0]?.schema.openAPIV3Schema.properties.spec['x-kubernetes-preserve-unknown-fields']).toBe(true);
  });
});

describe('KubeClient.applyStatus', () => {
  it('writes only the status subresource, with its own field ownership', async () => {
    const ns = await createNamespace(client, 'status');
    const id = { apiVersion: WIDGET.apiVersion, kind: WIDGET.kind, metadata: { name: 'w1', namespace: ns } };
    // status in a main-resource apply is ignored by the apiserver when the kind has a status subresource.
    const created = await client.apply<Widget>({ ...id, spec: { size: 1 }, status: { phase: 'Ignored' } });
    expect(created.status).toBeUndefined();
    expect(created.metadata?.generation).toBe(1);

    const withStatus = await client.applyStatus<Widget>({ ...id, status: { phase: 'Ready', observedGeneration: 1 } });
    expect(withStatus.status).toEqual({ phase: 'Ready', observedGeneration: 1 });
    expect(withStatus.spec).toEqual({ size: 1 });
    expect(withStatus.metadata?.generation).toBe(1); // status writes do not bump generation
    const managedFields = (withStatus.metadata as { managedFields?: { manager: string; operation: string; subresource?: string }[] }).managedFields;
    const managers = managedFields?.map((f) => [f.manager, f.operation, f.subresource ?? '']);
    expect(managers).toEqual(expect.arrayContaining([[FIELD_MANAGER, 'Apply', ''], [FIELD_MANAGER, 'Apply', 'status']]));

    // A later spec apply (without status) keeps the status: the two are owned separately.
    const respec = await client.apply<Widget>({ ...id, spec: { size: 2 } });
    expect(respec.status).toEqual({ phase: 'Ready', observedGeneration: 1 });
    expect(respec.metadata?.generation).toBe(2);

    // A no-op status apply does not write.
    const noop = await client.applyStatus<Widget>({ ...id, status: { phase: 'Ready', observedGeneration: 1 } });
    expect(noop.metadata?.resourceVersion).toBe(respec.metadata?.resourceVersion);
  });

  it('is a 404 on a kind without a status subresource', async () => {
    const ns = await createNamespace(client, 'nostatus');
    await client.apply(cm(ns, 'c1', { a: '1' }));
    const err = await client.applyStatus({ ...cm(ns, 'c1', {}), status: { x: 1 } } as KubernetesObject).catch((e: unknown) => e);
    expect(isNotFound(err)).toBe(true);
  });
});

describe('KubeClient errors are classified', () => {
  it('get: undefined on 404 only; a kind the server does not serve is NoKindMatch, not NotFound', async () => {
    const ns = await createNamespace(client, 'get');
    expect(await client.get('v1', 'ConfigMap', ns, 'missing')).toBeUndefined();
    const err = await client.get('nope.kedge.io/v1', 'Thing', ns, 'x').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(KubeApiError);
    expect(isNoKindMatch(err)).toBe(true);
    expect(isNotFound(err)).toBe(false);
    const err2 = await client.get(WIDGET.apiVersion, 'NoSuchKind', ns, 'x').catch((e: unknown) => e);
    expect(isNoKindMatch(err2)).toBe(true);
  });

  it('409 Conflict from a resourceVersion precondition', async () => {
    const ns = await createNamespace(client, 'conflict');
    const c1 = await client.apply(cm(ns, 'c1', { a: '1' }));
    await client.apply(cm(ns, 'c1', { a: '2' }));
    const err = await client.apply(cm(ns, 'c1', { a: '3' }, { resourceVersion: c1.metadata?.resourceVersion })).catch((e: unknown) => e);
    expect(isConflict(err)).toBe(true);
    expect(err).toMatchObject({ status: 409, reason: 'Conflict', kind: 'ConfigMap', namespace: ns, objectName: 'c1' });
    expect(isTransient(err)).toBe(false);
  });

  it('422 Invalid, with the Status message', async () => {
    const ns = await createNamespace(client, 'invalid');
    const err = await client.apply(cm(ns, 'Not_A_Dns_Name', {})).catch((e: unknown) => e);
    expect(isInvalid(err)).toBe(true);
    expect((err as KubeApiError).message).toContain('metadata.name: Invalid value');
    const err2 = await client
      .apply<Widget>({ apiVersion: WIDGET.apiVersion, kind: WIDGET.kind, metadata: { name: 'w', namespace: ns }, spec: { size: -1 } })
      .catch((e: unknown) => e);
    expect(isInvalid(err2)).toBe(true);
  });

  it('403 Forbidden for a ServiceAccount without RBAC (user impersonation)', async () => {
    const ns = await createNamespace(client, 'forbidden');
    const sa = createKubeClient(testClusterConfig().with({ impersonate: { user: `system:serviceaccount:${ns}:nobody` } }));
    const getErr = await sa.get('v1', 'ConfigMap', ns, 'c1').catch((e: unknown) => e);
    expect(isForbidden(getErr)).toBe(true);
    expect(isNotFound(getErr)).toBe(false); // the create-storm bug: a 403 must never look like "not there"
    const applyErr = await sa.apply(cm(ns, 'c1', { a: '1' })).catch((e: unknown) => e);
    expect(isForbidden(applyErr)).toBe(true);
  });

  it('a connection refused is a transient network error', async () => {
    const dead = createKubeClient(testClusterConfig().with({ server: 'https://127.0.0.1:1' }), { requestTimeoutMs: 5000 });
    const err = await dead.get('v1', 'ConfigMap', 'default', 'x').catch((e: unknown) => e);
    expect(err).toMatchObject({ code: KubeErrorCode.Network, status: 0 });
    expect(isTransient(err)).toBe(true);
  });
});

describe('KubeClient.list and delete', () => {
  it('lists with a label selector; items carry apiVersion and kind', async () => {
    const ns = await createNamespace(client, 'list');
    await client.apply(cm(ns, 'a', {}, { labels: { team: 'x' } }));
    await client.apply(cm(ns, 'b', {}, { labels: { team: 'y' } }));
    const items = await client.list('v1', 'ConfigMap', ns, { labelSelector: 'team=x' });
    expect(items.map((i) => [i.apiVersion, i.kind, i.metadata?.name])).toEqual([['v1', 'ConfigMap', 'a']]);
    expect((await client.list('v1', 'ConfigMap', ns)).length).toBeGreaterThanOrEqual(2);
  });

  it('lists metadata only when asked: names, labels and owners, no data', async () => {
    const ns = await createNamespace(client, 'meta');
    await client.apply(cm(ns, 'a', { secret: 'value' }, { labels: { team: 'x' } }));
    const [full] = await client.list<V1ConfigMap>('v1', 'ConfigMap', ns, { labelSelector: 'team=x' });
    const [meta] = await client.list<V1ConfigMap>('v1', 'ConfigMap', ns, { labelSelector: 'team=x', metadataOnly: true });
    expect(full?.data).toEqual({ secret: 'value' });
    expect(meta).toMatchObject({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'a', labels: { team: 'x' }, uid: full?.metadata?.uid } });
    expect(meta?.data).toBeUndefined();
  });

  it('deletes with a uid precondition: a mismatch is a Conflict, a missing object is fine', async () => {
    const ns = await createNamespace(client, 'delete');
    const c1 = await client.apply(cm(ns, 'c1', {}));
    const err = await client.delete('v1', 'ConfigMap', ns, 'c1', { uid: '00000000-0000-0000-0000-000000000000' }).catch((e: unknown) => e);
    expect(isConflict(err)).toBe(true);
    expect(await client.get('v1', 'ConfigMap', ns, 'c1')).toBeDefined();
    expect(await client.delete('v1', 'ConfigMap', ns, 'c1', { uid: c1.metadata?.uid, propagationPolicy: 'Background' })).toBe(true);
    expect(await client.get('v1', 'ConfigMap', ns, 'c1')).toBeUndefined();
    expect(await client.delete('v1', 'ConfigMap', ns, 'c1', { uid: c1.metadata?.uid })).toBe(false);
  });
});
