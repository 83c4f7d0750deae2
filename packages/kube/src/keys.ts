import type { KubernetesObject } from './types.js';

/**
 * What a reconcile is about: only a namespaced name, never the object (controller-runtime `reconcile.Request`).
 * The reconciler re-reads the cache, so it always sees the latest state. `namespace` is `''` for cluster-scoped
 * objects.
 */
export type ObjectKey = { readonly namespace: string; readonly name: string };

/** Work-queue key: `namespace/name`, or just `name` for cluster-scoped objects (client-go `MetaNamespaceKeyFunc`). */
export function formatKey(key: ObjectKey): string {
  return key.namespace ? `${key.namespace}/${key.name}` : key.name;
}

/** The key of an object; throws if it has no `metadata.name` (an object from the apiserver always has one). */
export function objectKey(obj: KubernetesObject): ObjectKey {
  const name = obj.metadata?.name;
  if (!name) throw new TypeError(`Object of kind ${obj.kind ?? '?'} has no metadata.name`);
  return { namespace: obj.metadata?.namespace ?? '', name };
}

/** Inverse of {@link formatKey}. Namespaces and names cannot contain `/`, so the first `/` splits them. */
export function parseKey(key: string): ObjectKey {
  const i = key.indexOf('/');
  return i < 0 ? { namespace: '', name: key } : { namespace: key.slice(0, i), name: key.slice(i + 1) };
}
