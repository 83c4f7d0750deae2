import { randomUUID } from 'node:crypto';
import { isIP } from 'node:net';
import { gzipSync } from 'node:zlib';
import type { Logger } from 'pino';
import type { MethodResponse } from '@kedge/iothub-client';
import { isObject } from '@kedge/protocol';

/** edgeAgent's background task states (`BackgroundTaskRunStatus`); `Unknown` answers an id the agent does not know. */
export const TaskStatus = {
  NotStarted: 'NotStarted',
  Running: 'Running',
  Completed: 'Completed',
  Failed: 'Failed',
  Cancelled: 'Cancelled',
  Unknown: 'Unknown',
} as const;
export type TaskStatus = (typeof TaskStatus)[keyof typeof TaskStatus];

/** One module's logs as `GetModuleLogs` collects them (without encoding): text, or JSON entries. */
export interface CollectedLogs {
  readonly id: string;
  readonly payload: string | readonly unknown[];
}

/**
 * Collects the logs of the request's `items` (the same `{id, filter}` items `GetModuleLogs` takes) in the given
 * content type, at most `maxBytes` in all. Throws on bad items (an argument error) or when the logs are larger.
 * The runtime behind it (Kubernetes pods, local processes) is the collector's business.
 */
export type LogsCollector = (request: { readonly items: readonly unknown[]; readonly contentType: 'text' | 'json' }, maxBytes: number) => Promise<readonly CollectedLogs[]>;

/** A refused `UploadModuleLogs` request: answered 400. */
export class UploadRequestError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UploadRequestError';
  }
}

/** Bounds of the upload tasks. */
export const UploadLimits = {
  /** All logs of one task, before encoding. */
  maxTaskBytes: 16 * 1024 * 1024,
  /** Tasks waiting or running at once; more are refused with 429. */
  maxActiveTasks: 4,
  /** Finished tasks remembered for `GetTaskStatus` (oldest forgotten first). */
  maxRememberedTasks: 100,
  maxSasUrlLength: 4096,
  maxItems: 50,
} as const;

/** The `x-ms-version` of the Blob REST calls (Put Blob). */
const BLOB_API_VERSION = '2021-08-06';

interface Task {
  status: TaskStatus;
  message: string;
}

interface UploadRequest {
  readonly container: URL;
  readonly items: readonly unknown[];
  readonly encoding: 'none' | 'gzip';
  readonly contentType: 'text' | 'json';
}

export interface LogsUploadOptions {
  readonly collect: LogsCollector;
  /** The hub's host name: its first label is the `<iotHubName>` blob folder, as edgeAgent names it. */
  readonly hubHostName: string;
  readonly deviceId: string;
  readonly log: Logger;
  readonly now?: () => number;
  /** Deadline of each blob PUT. @default 60_000 */
  readonly requestTimeoutMs?: number;
  /** Waits before the second and third attempt of a PUT that failed transiently (network, 5xx). @default [1000, 2000] */
  readonly retryDelaysMs?: readonly number[];
}

const isLoopbackHost = (host: string): boolean => {
  const h = host.replace(/^\[|\]$/g, '');
  return h === 'localhost' || h === '::1' || (isIP(h) === 4 && h.startsWith('127.'));
};

/**
 * The container URL of a SAS URL, for logs: origin and path only, never the query (its `sig` is a credential).
 */
export function redactSasUrl(url: URL): string {
  return `${url.origin}${url.pathname}${url.search ? '?<sas>' : ''}`;
}

/** Checks an `UploadModuleLogs` payload; throws {@link UploadRequestError} with what is wrong (never the SAS). */
export function parseUploadRequest(payload: unknown): UploadRequest {
  const usage = 'UploadModuleLogs needs {"schemaVersion":"1.0","sasUrl":"<container SAS URL>","items":[{"id":"<module regex>","filter":{…}}],"encoding":"none|gzip","contentType":"text|json"}';
  if (!isObject(payload)) throw new UploadRequestError(usage);
  const sas = payload['sasUrl'];
  if (typeof sas !== 'string' || sas === '') throw new UploadRequestError(`sasUrl is missing. ${usage}`);
  if (sas.length > UploadLimits.maxSasUrlLength) throw new UploadRequestError(`sasUrl is longer than ${UploadLimits.maxSasUrlLength} characters`);
  let container: URL;
  try {
    container = new URL(sas);
  } catch {
    throw new UploadRequestError('sasUrl is not a URL');
  }
  // Plain HTTP would send the signature in clear: only to a storage emulator on this machine (Azurite).
  if (container.protocol !== 'https:' && !(container.protocol === 'http:' && isLoopbackHost(container.hostname))) {
    throw new UploadRequestError('sasUrl must be an https URL (http only on loopback, for a storage emulator)');
  }
  if (container.username !== '' || container.password !== '') throw new UploadRequestError('sasUrl must not carry user credentials');
  if (!container.searchParams.has('sig')) throw new UploadRequestError('sasUrl has no SAS signature (sig): give a container SAS URL with write permission');
  const items = payload['items'];
  if (!Array.isArray(items) || items.length === 0 || items.length > UploadLimits.maxItems) throw new UploadRequestError(`items must hold 1 to ${UploadLimits.maxItems} {"id","filter"} entries`);
  const encoding = payload['encoding'] ?? 'none';
  const contentType = payload['contentType'] ?? 'text';
  if (encoding !== 'none' && encoding !== 'gzip') throw new UploadRequestError('encoding must be "none" or "gzip"');
  if (contentType !== 'text' && contentType !== 'json') throw new UploadRequestError('contentType must be "text" or "json"');
  return { container, items, encoding, contentType };
}

/** edgeAgent's blob name: `<iotHubName>/<deviceId>/<moduleId>-<yyyy-MM-dd--HH-mm-ss>.<gz|json|log>`. */
export function logsBlobName(o: { hubHostName: string; deviceId: string; moduleId: string; encoding: 'none' | 'gzip'; contentType: 'text' | 'json'; nowMs: number }): string {
  const iso = new Date(o.nowMs).toISOString();
  const stamp = `${iso.slice(0, 10)}--${iso.slice(11, 19).replace(/:/g, '-')}`;
  const ext = o.encoding === 'gzip' ? 'gz' : o.contentType === 'json' ? 'json' : 'log';
  return `${o.hubHostName.split('.')[0] ?? o.hubHostName}/${o.deviceId}/${o.moduleId}-${stamp}.${ext}`;
}

/** A failed Put Blob: `status` is the HTTP status (0: no answer), `code` Azure's `x-ms-error-code` or the socket error. */
class BlobUploadError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
  ) {
    super(status === 0 ? code : `${status} ${code}`);
    this.name = 'BlobUploadError';
  }
  get transient(): boolean {
    return this.status === 0 || this.status >= 500 || this.status === 408;
  }
}

/**
 * edgeAgent's `UploadModuleLogs` and its `GetTaskStatus` (IoT Edge's `LogsUploadRequestHandler`): the request is
 * checked at once (400 with the reason), answered `{status: "NotStarted", message: "", correlationId}`, and runs in
 * the background: it collects the same logs `GetModuleLogs` would, then puts one block blob per module into the SAS
 * URL's container, named as edgeAgent names them, gzip-compressed with `encoding: "gzip"` (`Content-Encoding: gzip`).
 * `GetTaskStatus` reports `Running`, `Completed`, or `Failed` with the reason (an Azure error code such as
 * `AuthenticationFailed`, a network error). Bounded: {@link UploadLimits}. The SAS URL is never logged or reported.
 */
export class LogsUploadTasks {
  readonly #o: LogsUploadOptions;
  readonly #tasks = new Map<string, Task>();

  constructor(options: LogsUploadOptions) {
    this.#o = options;
  }

  /** Starts an upload; the method answer carries its correlation id. */
  start(payload: unknown): MethodResponse {
    let req: UploadRequest;
    try {
      req = parseUploadRequest(payload);
    } catch (e) {
      if (e instanceof UploadRequestError) return { status: 400, payload: { message: e.message } };
      throw e;
    }
    const active = [...this.#tasks.values()].filter((t) => t.status === TaskStatus.NotStarted || t.status === TaskStatus.Running).length;
    if (active >= UploadLimits.maxActiveTasks) {
      return { status: 429, payload: { message: `${active} log uploads are in progress: wait for one to finish (GetTaskStatus) and try again` } };
    }
    const correlationId = randomUUID();
    const task: Task = { status: TaskStatus.NotStarted, message: '' };
    this.#tasks.set(correlationId, task);
    this.#forgetOld();
    setImmediate(() => void this.#run(correlationId, task, req));
    return { status: 200, payload: { status: task.status, message: task.message, correlationId } };
  }

  /** `GetTaskStatus`: `{status, message, correlationId}`; an unknown id is `Unknown`. */
  status(payload: unknown): MethodResponse {
    if (!isObject(payload) || typeof payload['correlationId'] !== 'string' || payload['correlationId'].length > 128) {
      return { status: 400, payload: { message: 'GetTaskStatus needs {"schemaVersion":"1.0","correlationId":"<id>"}' } };
    }
    const id = payload['correlationId'];
    const t = this.#tasks.get(id);
    return { status: 200, payload: { status: t?.status ?? TaskStatus.Unknown, message: t?.message ?? `No task with correlationId ${id}`, correlationId: id } };
  }

  #forgetOld(): void {
    let excess = this.#tasks.size - UploadLimits.maxRememberedTasks;
    // Map order is insertion order: the oldest finished tasks go first; running ones stay.
    for (const [id, t] of this.#tasks) {
      if (excess <= 0) break;
      if (t.status === TaskStatus.Completed || t.status === TaskStatus.Failed || t.status === TaskStatus.Cancelled) {
        this.#tasks.delete(id);
        excess--;
      }
    }
  }

  async #run(correlationId: string, task: Task, req: UploadRequest): Promise<void> {
    const log = this.#o.log.child({ correlationId, container: redactSasUrl(req.container) });
    task.status = TaskStatus.Running;
    try {
      const logs = await this.#o.collect({ items: req.items, contentType: req.contentType }, UploadLimits.maxTaskBytes);
      const nowMs = this.#o.now?.() ?? Date.now();
      for (const l of logs) {
        const name = logsBlobName({ hubHostName: this.#o.hubHostName, deviceId: this.#o.deviceId, moduleId: l.id, encoding: req.encoding, contentType: req.contentType, nowMs });
        const text = typeof l.payload === 'string' ? l.payload : JSON.stringify(l.payload);
        const body = req.encoding === 'gzip' ? gzipSync(Buffer.from(text, 'utf8')) : Buffer.from(text, 'utf8');
        try {
          await this.#putWithRetries(req, name, body);
        } catch (e) {
          throw new Error(`Uploading ${name} failed: ${(e as Error).message}`, { cause: e });
        }
        log.info({ blob: name, bytes: body.length }, 'Uploaded module logs');
      }
      task.status = TaskStatus.Completed;
      task.message = logs.length === 0 ? 'No module matched the items' : `Uploaded ${logs.length} blob(s): ${logs.map((l) => l.id).join(', ')}`;
    } catch (e) {
      task.status = TaskStatus.Failed;
      task.message = (e as Error).message.slice(0, 1000);
      log.warn({ err: task.message }, 'UploadModuleLogs failed');
    }
  }

  async #putWithRetries(req: UploadRequest, blobName: string, body: Buffer): Promise<void> {
    const delays = this.#o.retryDelaysMs ?? [1000, 2000];
    for (let attempt = 0; ; attempt++) {
      try {
        await this.#put(req, blobName, body);
        return;
      } catch (e) {
        const delay = delays[attempt];
        if (!(e instanceof BlobUploadError) || !e.transient || delay === undefined) throw e;
        await new Promise((r) => setTimeout(r, delay));
      }
    }
  }

  /** Azure Blob "Put Blob": one request, a block blob; 201 on success. */
  async #put(req: UploadRequest, blobName: string, body: Buffer): Promise<void> {
    const url = new URL(req.container.href);
    url.pathname = `${url.pathname.replace(/\/+$/, '')}/${blobName.split('/').map(encodeURIComponent).join('/')}`;
    let res: Response;
    try {
      res = await fetch(url, {
        method: 'PUT',
        headers: {
          'x-ms-blob-type': 'BlockBlob',
          'x-ms-version': BLOB_API_VERSION,
          'content-type': req.contentType === 'json' ? 'application/json' : 'text/plain; charset=utf-8',
          ...(req.encoding === 'gzip' ? { 'x-ms-blob-content-encoding': 'gzip' } : {}),
        },
        body,
        redirect: 'error',
        signal: AbortSignal.timeout(this.#o.requestTimeoutMs ?? 60_000),
      });
    } catch (e) {
      // fetch's own message is "fetch failed"; the socket's code says what went wrong. Never the URL (it holds the SAS).
      const cause = (e as { cause?: { code?: unknown } }).cause;
      const code = (e as Error).name === 'TimeoutError' ? 'no answer within the deadline' : typeof cause?.code === 'string' ? cause.code : 'the storage account could not be reached';
      throw new BlobUploadError(0, code);
    }
    await res.arrayBuffer().catch(() => undefined);
    if (res.status !== 201) throw new BlobUploadError(res.status, res.headers.get('x-ms-error-code')?.slice(0, 100) ?? res.statusText);
  }
}
