import { ApiException, HttpMethod, KubernetesObjectApi } from '@kubernetes/client-node';
import type { KubeConfig, KubernetesObject, ResponseContext } from '@kubernetes/client-node';
import { KubeApiError, KubeErrorCode, StatusReason, isNotFound, toKubeApiError } from './errors.js';

/** What discovery says about a kind. */
export interface ResourceInfo {
  readonly plural: string;
  readonly namespaced: boolean;
}

export interface RawRequest {
  readonly query?: Readonly<Record<string, string | undefined>>;
  readonly contentType?: string;
  readonly body?: unknown;
  readonly timeoutMs: number;
}

/**
 * client-node's `KubernetesObjectApi`, used for what it does well (auth, TLS, discovery cache) and bypassing what it
 * does badly for a controller:
 *
 * - Request bodies go out as plain `JSON.stringify`. The stock `patch()`/`create()` run them through
 *   `ObjectSerializer.serialize(obj, 'V1ConfigMap')`, which silently drops every field the 1.4.0 models do not know
 *   (fields newer than the client, misspelt fields) and every field whose JSON name differs from its TS name
 *   (`x-kubernetes-*`, `$ref`). With server-side apply a dropped field is a field we silently stop owning.
 * - Responses come back as the parsed JSON. The stock `processResponse` deserializes built-in kinds into model
 *   classes with `Date` timestamps, while watch events carry strings: an informer cache would mix both.
 * - Paths are built here rather than by `specUriPath`, which mutates its argument and lower-cases the whole path.
 */
export class DynamicApi extends KubernetesObjectApi {
  static create(kc: KubeConfig): DynamicApi {
    const api = kc.makeApiClient(DynamicApi);
    api.setDefaultNamespace(kc);
    return api;
  }

  /** Discovery lookup (cached by client-node per apiVersion). A kind the server does not serve is `NoKindMatch`. */
  async resourceInfo(apiVersion: string, kind: string): Promise<ResourceInfo> {
    let res;
    try {
      res = await this.resource(apiVersion, kind);
    } catch (e) {
      // A 404 here means the group/version is not served at all: the CRD is missing, not the object.
      if (!isNotFound(e)) throw toKubeApiError(e, { verb: 'discover', apiVersion, kind });
    }
    if (!res) {
      throw new KubeApiError({
        code: KubeErrorCode.NoKindMatch,
        status: 404,
        reason: StatusReason.NoKindMatch,
        message: `The server does not serve kind ${kind} in ${apiVersion}`,
        verb: 'discover',
        apiVersion,
        kind,
      });
    }
    return { plural: res.name, namespaced: res.namespaced };
  }

  /**
   * `/api[s]/<gv>/[namespaces/<ns>/]<plural>[/<name>[/<sub>]]`. A namespaced kind without a namespace gives the
   * all-namespaces collection; a namespace on a cluster-scoped kind is ignored.
   */
  async path(apiVersion: string, kind: string, namespace?: string, name?: string, subresource?: string): Promise<string> {
    const info = await this.resourceInfo(apiVersion, kind);
    const parts = [apiVersion.includes('/') ? '/apis' : '/api', apiVersion];
    if (info.namespaced && namespace) parts.push('namespaces', encodeURIComponent(namespace));
    else if (info.namespaced && name !== undefined) {
      throw new TypeError(`${kind} ${name} is namespaced but no namespace was given`);
    }
    parts.push(info.plural);
    if (name !== undefined) parts.push(encodeURIComponent(name));
    if (subresource !== undefined) parts.push(subresource);
    return parts.join('/');
  }

  /** Sends one request through client-node's auth and TLS; returns the parsed JSON body or throws `ApiException`. */
  async raw(method: HttpMethod, path: string, req: RawRequest): Promise<unknown> {
    const ctx = this.configuration.baseServer.makeRequestContext(path, method);
    ctx.setHeaderParam('Accept', 'application/json');
    for (const [k, v] of Object.entries(req.query ?? {})) if (v !== undefined) ctx.setQueryParam(k, v);
    if (req.body !== undefined) {
      ctx.setHeaderParam('Content-Type', req.contentType ?? 'application/json');
      ctx.setBody(JSON.stringify(req.body));
    }
    ctx.setSignal(AbortSignal.timeout(req.timeoutMs));
    return this.requestPromise<KubernetesObject>(ctx);
  }

  protected override async processResponse<T extends KubernetesObject>(response: ResponseContext): Promise<T> {
    const text = await response.body.text();
    let data: unknown = text;
    try {
      data = text === '' ? undefined : JSON.parse(text);
    } catch {
      // Not JSON (a proxy's HTML error page): keep the text for the error message.
    }
    if (response.httpStatusCode >= 200 && response.httpStatusCode <= 299) return data as T;
    throw new ApiException(response.httpStatusCode, 'Unsuccessful HTTP Request', data, response.headers);
  }
}

export { HttpMethod };
