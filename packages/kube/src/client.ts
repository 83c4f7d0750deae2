import type { ClusterConfig } from './config.js';
import { isNotFound, toKubeApiError } from './errors.js';
import type { KubeErrorContext } from './errors.js';
import { KubeTransport } from './transport.js';
import type { KubernetesList, KubernetesObject } from './types.js';

/**
 * The one field manager Kedge applies with (docs/adr/0003-server-side-apply.md). A constant, never a library's
 * default: if two components applied under different managers they would fight over fields.
 */
export const FIELD_MANAGER = 'kedge-agent';

/** What every call takes: a caller's signal aborts the request (a reconcile's timeout must reach its I/O). */
export interface CallOptions {
  /**
   * Aborts the request (and a discovery lookup it waits for): the call rejects with a `KUBE_ERR_TIMEOUT`
   * {@link KubeApiError} at once instead of holding its caller until the request timeout.
   */
  readonly signal?: AbortSignal;
}

/** How a server-side apply is sent. */
export interface ApplyOptions extends CallOptions {
  /** Take ownership of fields another manager owns instead of failing with 409 Conflict. @default true */
  readonly force?: boolean;
  /** @default FIELD_MANAGER */
  readonly fieldManager?: string;
  /** Validate and run admission, persist nothing (`dryRun=All`). @default false */
  readonly dryRun?: boolean;
}

export interface ListOptions extends CallOptions {
  /** A label selector such as `app.kubernetes.io/managed-by=kedge-agent,kedge.io/deployment=d1`. */
  readonly labelSelector?: string;
  /**
   * Only `metadata` of each object (a `PartialObjectMetadataList`): enough to learn which names exist and who owns
   * them, at a fraction of the bytes. Items still get the requested `apiVersion`/`kind`. @default false
   */
  readonly metadataOnly?: boolean;
}

const METADATA_ONLY = 'application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1,application/json';

/** `DeleteOptions.propagationPolicy`. */
export const PropagationPolicy = {
  Background: 'Background',
  Foreground: 'Foreground',
  Orphan: 'Orphan',
} as const;
export type PropagationPolicy = (typeof PropagationPolicy)[keyof typeof PropagationPolicy];

export interface DeleteOptions extends CallOptions {
  /** Delete only if the object still has this uid (a same-named successor is left alone: 409 Conflict). */
  readonly uid?: string;
  /** Delete only if the object is still at this resourceVersion (409 Conflict otherwise). */
  readonly resourceVersion?: string;
  /** @default the kind's default (Background for most) */
  readonly propagationPolicy?: PropagationPolicy;
}

/**
 * The Kubernetes API port. Every method throws only {@link KubeApiError} (see the `is*` classifiers). Objects are
 * plain JSON as the apiserver sent it: timestamps are strings, list items carry `apiVersion` and `kind`.
 *
 * The type parameters of `get`/`list` are unchecked casts for the caller's convenience.
 */
export interface KubeClient {
  /**
   * Server-side apply (`PATCH`, `application/apply-patch+yaml`): `obj` is the complete desired state of the fields
   * this manager owns; fields it owned before and omits now are removed. Creates the object if it does not exist.
   * A `metadata.resourceVersion` in `obj` is an optimistic-lock precondition. Returns the object after apply.
   */
  apply<T extends KubernetesObject>(obj: T, opts?: ApplyOptions): Promise<T>;
  /**
   * Server-side apply to the `/status` subresource: only `status` (and the identifying metadata) of `obj` is used.
   * The kind must have a status subresource (404 otherwise). Separate field ownership from {@link apply}.
   */
  applyStatus<T extends KubernetesObject>(obj: T, opts?: ApplyOptions): Promise<T>;
  /** The object, or `undefined` if it does not exist (404 only; every other error is thrown). */
  get<T extends KubernetesObject = KubernetesObject>(
    apiVersion: string,
    kind: string,
    namespace: string | undefined,
    name: string,
    opts?: CallOptions,
  ): Promise<T | undefined>;
  /** All objects of a kind in `namespace` (all namespaces when `undefined`), following `continue` pages. */
  list<T extends KubernetesObject = KubernetesObject>(
    apiVersion: string,
    kind: string,
    namespace: string | undefined,
    opts?: ListOptions,
  ): Promise<T[]>;
  /**
   * Deletes an object, preconditioned on `uid`/`resourceVersion` when given. Resolves `true` when the apiserver
   * accepted the delete (the object may linger with finalizers), `false` when it was already gone (404).
   * A failed precondition is a 409 Conflict.
   */
  delete(
    apiVersion: string,
    kind: string,
    namespace: string | undefined,
    name: string,
    opts?: DeleteOptions,
  ): Promise<boolean>;
}

export interface KubeClientDeps {
  /** Client-side timeout of each request. @default 30_000 */
  readonly requestTimeoutMs?: number;
}

/** Page size of {@link KubeClient.list} and of informer lists. */
export const LIST_PAGE_SIZE = 500;

/**
 * Lists every page. Items get `apiVersion`/`kind` filled in: the apiserver omits them inside typed lists, while
 * watch events and single GETs carry them.
 * @internal shared with the informer
 */
export async function listAll(
  api: KubeTransport,
  apiVersion: string,
  kind: string,
  namespace: string | undefined,
  labelSelector: string | undefined,
  timeoutMs: number,
  metadataOnly = false,
  signal?: AbortSignal,
): Promise<{ items: KubernetesObject[]; resourceVersion: string }> {
  const path = await api.path(apiVersion, kind, namespace, undefined, undefined, signal);
  const items: KubernetesObject[] = [];
  let resourceVersion = '';
  let cont: string | undefined;
  do {
    const page = (await api.request('GET', path, {
      query: { labelSelector, limit: String(LIST_PAGE_SIZE), continue: cont },
      timeoutMs,
      ...(signal ? { signal } : {}),
      ...(metadataOnly ? { accept: METADATA_ONLY } : {}),
    })) as Partial<KubernetesList>;
    for (const item of page.items ?? []) items.push({ ...item, apiVersion, kind });
    // Every page of one paginated list is served from the same snapshot; the last page's RV is that snapshot's.
    resourceVersion = page.metadata?.resourceVersion ?? resourceVersion;
    cont = page.metadata?.continue || undefined;
  } while (cont);
  return { items, resourceVersion };
}

function identify(obj: KubernetesObject): Required<Pick<KubeErrorContext, 'apiVersion' | 'kind' | 'name'>> & { namespace: string | undefined } {
  const { apiVersion, kind } = obj;
  const name = obj.metadata?.name;
  if (!apiVersion || !kind || !name) {
    throw new TypeError(`An applied object needs apiVersion, kind and metadata.name (got ${apiVersion}/${kind} ${name})`);
  }
  return { apiVersion, kind, name, namespace: obj.metadata?.namespace };
}

class ApiKubeClient implements KubeClient {
  readonly #api: KubeTransport;
  readonly #timeoutMs: number;

  constructor(api: KubeTransport, timeoutMs: number) {
    this.#api = api;
    this.#timeoutMs = timeoutMs;
  }

  apply<T extends KubernetesObject>(obj: T, opts: ApplyOptions = {}): Promise<T> {
    return this.#apply(obj, opts, undefined);
  }

  applyStatus<T extends KubernetesObject>(obj: T, opts: ApplyOptions = {}): Promise<T> {
    return this.#apply(obj, opts, 'status');
  }

  async #apply<T extends KubernetesObject>(obj: T, opts: ApplyOptions, subresource: 'status' | undefined): Promise<T> {
    let ctx: KubeErrorContext = { verb: subresource ? 'apply-status' : 'apply' };
    try {
      const id = identify(obj);
      ctx = { ...ctx, ...id };
      const path = await this.#api.path(id.apiVersion, id.kind, id.namespace, id.name, subresource, opts.signal);
      return (await this.#api.request('PATCH', path, {
        query: {
          fieldManager: opts.fieldManager ?? FIELD_MANAGER,
          force: String(opts.force ?? true),
          dryRun: opts.dryRun ? 'All' : undefined,
        },
        // JSON is YAML, and the apiserver accepts it under the apply content type.
        contentType: 'application/apply-patch+yaml',
        body: obj,
        timeoutMs: this.#timeoutMs,
        ...(opts.signal ? { signal: opts.signal } : {}),
      })) as T;
    } catch (e) {
      throw toKubeApiError(e, ctx);
    }
  }

  async get<T extends KubernetesObject = KubernetesObject>(
    apiVersion: string,
    kind: string,
    namespace: string | undefined,
    name: string,
    opts: CallOptions = {},
  ): Promise<T | undefined> {
    const ctx = { verb: 'get', apiVersion, kind, namespace, name };
    try {
      const path = await this.#api.path(apiVersion, kind, namespace, name, undefined, opts.signal);
      return (await this.#api.request('GET', path, { timeoutMs: this.#timeoutMs, ...(opts.signal ? { signal: opts.signal } : {}) })) as T;
    } catch (e) {
      const k = toKubeApiError(e, ctx);
      if (isNotFound(k)) return undefined;
      throw k;
    }
  }

  async list<T extends KubernetesObject = KubernetesObject>(
    apiVersion: string,
    kind: string,
    namespace: string | undefined,
    opts: ListOptions = {},
  ): Promise<T[]> {
    try {
      const { items } = await listAll(this.#api, apiVersion, kind, namespace, opts.labelSelector, this.#timeoutMs, opts.metadataOnly, opts.signal);
      return items as T[];
    } catch (e) {
      throw toKubeApiError(e, { verb: 'list', apiVersion, kind, namespace });
    }
  }

  async delete(
    apiVersion: string,
    kind: string,
    namespace: string | undefined,
    name: string,
    opts: DeleteOptions = {},
  ): Promise<boolean> {
    const ctx = { verb: 'delete', apiVersion, kind, namespace, name };
    try {
      const path = await this.#api.path(apiVersion, kind, namespace, name, undefined, opts.signal);
      const preconditions =
        opts.uid !== undefined || opts.resourceVersion !== undefined
          ? { uid: opts.uid, resourceVersion: opts.resourceVersion }
          : undefined;
      await this.#api.request('DELETE', path, {
        body: { apiVersion: 'v1', kind: 'DeleteOptions', preconditions, propagationPolicy: opts.propagationPolicy },
        timeoutMs: this.#timeoutMs,
        ...(opts.signal ? { signal: opts.signal } : {}),
      });
      return true;
    } catch (e) {
      const k = toKubeApiError(e, ctx);
      if (isNotFound(k)) return false;
      throw k;
    }
  }
}

/** A {@link KubeClient} for the cluster and credentials of `config`. */
export function createKubeClient(config: ClusterConfig, deps: KubeClientDeps = {}): KubeClient {
  return new ApiKubeClient(KubeTransport.for(config), deps.requestTimeoutMs ?? 30_000);
}
