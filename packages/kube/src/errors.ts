import { KedgeError } from '@kedge/contracts';

/** Stable codes of {@link KubeApiError} (clients branch on the classifiers, or on these, never on the message). */
export const KubeErrorCode = {
  /** The apiserver answered with a non-2xx status; see `status` and `reason`. */
  Api: 'KUBE_ERR_API',
  /** No HTTP response: connection refused or reset, DNS, TLS. */
  Network: 'KUBE_ERR_NETWORK',
  /** The request was aborted by a client-side timeout. */
  Timeout: 'KUBE_ERR_TIMEOUT',
  /** Discovery does not know the apiVersion/kind (a CRD that is not installed): not the same as NotFound. */
  NoKindMatch: 'KUBE_ERR_NO_KIND_MATCH',
  /** Anything else (a bug, a malformed response). Never transient. */
  Unknown: 'KUBE_ERR_UNKNOWN',
} as const;
export type KubeErrorCode = (typeof KubeErrorCode)[keyof typeof KubeErrorCode];

/**
 * `metav1.StatusReason` values (k8s.io/apimachinery/pkg/apis/meta/v1/types.go), plus `NoKindMatch`, which is ours.
 */
export const StatusReason = {
  Unknown: '',
  Unauthorized: 'Unauthorized',
  Forbidden: 'Forbidden',
  NotFound: 'NotFound',
  AlreadyExists: 'AlreadyExists',
  Conflict: 'Conflict',
  Gone: 'Gone',
  Invalid: 'Invalid',
  ServerTimeout: 'ServerTimeout',
  Timeout: 'Timeout',
  TooManyRequests: 'TooManyRequests',
  BadRequest: 'BadRequest',
  MethodNotAllowed: 'MethodNotAllowed',
  NotAcceptable: 'NotAcceptable',
  RequestEntityTooLarge: 'RequestEntityTooLarge',
  UnsupportedMediaType: 'UnsupportedMediaType',
  InternalError: 'InternalError',
  Expired: 'Expired',
  ServiceUnavailable: 'ServiceUnavailable',
  NoKindMatch: 'NoKindMatch',
} as const;
export type StatusReason = (typeof StatusReason)[keyof typeof StatusReason];

const KNOWN_REASONS: ReadonlySet<string> = new Set(Object.values(StatusReason).filter((r) => r !== ''));

/** What a request was about; copied onto the error so logs and callers need not re-derive it. */
export interface KubeErrorContext {
  readonly verb?: string;
  readonly apiVersion?: string;
  readonly kind?: string;
  readonly namespace?: string;
  readonly name?: string;
}

export interface KubeApiErrorInit extends KubeErrorContext {
  readonly code: KubeErrorCode;
  /** HTTP status code; 0 when there was no HTTP response. */
  readonly status: number;
  readonly reason: string;
  readonly message: string;
  readonly retryAfterSeconds?: number;
  readonly cause?: unknown;
}

/**
 * A failed Kubernetes API call, classified once at the port's edge. `status` is the HTTP code (0: no response),
 * `reason` the `Status.reason` the apiserver sent (`''` when it sent none), `message` the `Status.message`.
 * Use {@link isNotFound} and friends to branch; they read `status`/`reason`, never the message.
 */
export class KubeApiError extends KedgeError {
  override readonly code: KubeErrorCode;
  readonly status: number;
  readonly reason: string;
  readonly verb: string | undefined;
  readonly apiVersion: string | undefined;
  readonly kind: string | undefined;
  readonly namespace: string | undefined;
  /**
   * The object's `metadata.name`. Not called `name`: that is `Error.name` (`'KubeApiError'`), which stack traces,
   * pino's error serializer and test runners read.
   */
  readonly objectName: string | undefined;
  /** From `Status.details.retryAfterSeconds` or the `Retry-After` header (429, 503). */
  readonly retryAfterSeconds: number | undefined;

  constructor(init: KubeApiErrorInit) {
    super(init.code, init.message, init.cause === undefined ? undefined : { cause: init.cause });
    this.name = 'KubeApiError';
    this.code = init.code;
    this.status = init.status;
    this.reason = init.reason;
    this.verb = init.verb;
    this.apiVersion = init.apiVersion;
    this.kind = init.kind;
    this.namespace = init.namespace;
    this.objectName = init.name;
    this.retryAfterSeconds = init.retryAfterSeconds;
  }
}

type StatusBody = {
  kind?: unknown;
  message?: unknown;
  reason?: unknown;
  code?: unknown;
  details?: { name?: unknown; kind?: unknown; retryAfterSeconds?: unknown };
};

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null;
}

function parseBody(body: unknown): StatusBody | undefined {
  if (typeof body === 'string') {
    try {
      const parsed: unknown = JSON.parse(body);
      return isRecord(parsed) ? parsed : undefined;
    } catch {
      return undefined;
    }
  }
  return isRecord(body) ? body : undefined;
}

function str(v: unknown): string | undefined {
  return typeof v === 'string' && v !== '' ? v : undefined;
}

function headerRetryAfter(headers: unknown): number | undefined {
  if (!isRecord(headers)) return undefined;
  const v = headers['retry-after'] ?? headers['Retry-After'];
  const n = typeof v === 'string' ? Number(v) : NaN;
  return Number.isFinite(n) ? n : undefined;
}

/** Node error codes that mean "no usable connection": always worth retrying. */
const NETWORK_CODES: ReadonlySet<string> = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ECONNABORTED',
  'EPIPE',
  'ETIMEDOUT',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ENOTFOUND',
  'EAI_AGAIN',
  'ERR_STREAM_PREMATURE_CLOSE',
  'UND_ERR_SOCKET',
]);

/**
 * Converts anything a request can throw into a {@link KubeApiError}: an `HttpStatusError` (`statusCode` + the
 * Status body), an `AbortError`/`TimeoutError`, a Node network error (`code` such as `ECONNRESET`), or anything
 * else. Idempotent.
 */
export function toKubeApiError(e: unknown, ctx: KubeErrorContext = {}): KubeApiError {
  if (e instanceof KubeApiError) return e;
  const base = { ...ctx, cause: e };
  if (isRecord(e)) {
    // A DOMException (AbortError) has a numeric `code` too, which is not an HTTP status: only `statusCode` counts.
    const httpCode = typeof e['statusCode'] === 'number' ? e['statusCode'] : undefined;
    if (httpCode !== undefined && httpCode >= 100 && httpCode < 600) {
      const body = parseBody(e['body']);
      const status = body?.kind === 'Status' ? body : undefined;
      const retry = status?.details?.retryAfterSeconds;
      return new KubeApiError({
        ...base,
        code: KubeErrorCode.Api,
        status: httpCode,
        reason: str(status?.reason) ?? StatusReason.Unknown,
        // Without a Status (a proxy's HTML error page) the start of the body says more than the bare code.
        message: str(status?.message) ?? (typeof e['body'] === 'string' && e['body'].trim() ? `HTTP ${httpCode}: ${e['body'].trim().slice(0, 200)}` : `HTTP ${httpCode}`),
        kind: ctx.kind ?? str(status?.details?.kind),
        name: ctx.name ?? str(status?.details?.name),
        retryAfterSeconds: typeof retry === 'number' ? retry : headerRetryAfter(e['headers']),
      });
    }
    const name = e instanceof Error ? e.name : undefined;
    const message = e instanceof Error ? e.message : JSON.stringify(e);
    if (name === 'AbortError' || name === 'TimeoutError') {
      return new KubeApiError({ ...base, code: KubeErrorCode.Timeout, status: 0, reason: StatusReason.Timeout, message });
    }
    const sysCode = str(e['code']) ?? (isRecord(e['cause']) ? str(e['cause']['code']) : undefined);
    if ((sysCode !== undefined && NETWORK_CODES.has(sysCode))) {
      return new KubeApiError({ ...base, code: KubeErrorCode.Network, status: 0, reason: StatusReason.Unknown, message });
    }
    return new KubeApiError({ ...base, code: KubeErrorCode.Unknown, status: 0, reason: StatusReason.Unknown, message });
  }
  return new KubeApiError({ ...base, code: KubeErrorCode.Unknown, status: 0, reason: StatusReason.Unknown, message: String(e) });
}

function classify(e: unknown): KubeApiError | undefined {
  if (e instanceof KubeApiError) return e;
  if (!isRecord(e)) return undefined;
  return toKubeApiError(e);
}

/**
 * Mirrors apimachinery's `reasonAndCodeForError`: the Status reason decides; the HTTP code is consulted only when
 * the apiserver sent no reason we know (so a 409 `AlreadyExists` is not a `Conflict`).
 */
function matches(e: unknown, reasons: readonly string[], code: number): boolean {
  const k = classify(e);
  if (!k || k.code !== KubeErrorCode.Api) return false;
  if (reasons.includes(k.reason)) return true;
  return !KNOWN_REASONS.has(k.reason) && k.status === code;
}

/** 404 NotFound. A kind unknown to discovery ({@link isNoKindMatch}) is not "not found". */
export const isNotFound = (e: unknown): boolean => matches(e, [StatusReason.NotFound], 404);
/** 409 Conflict: optimistic-lock (resourceVersion/uid precondition) failure. Not AlreadyExists. */
export const isConflict = (e: unknown): boolean => matches(e, [StatusReason.Conflict], 409);
/** 409 AlreadyExists. */
export const isAlreadyExists = (e: unknown): boolean => matches(e, [StatusReason.AlreadyExists], -1);
/** 403 Forbidden (RBAC or admission). */
export const isForbidden = (e: unknown): boolean => matches(e, [StatusReason.Forbidden], 403);
/** 401 Unauthorized. */
export const isUnauthorized = (e: unknown): boolean => matches(e, [StatusReason.Unauthorized], 401);
/** 422 Invalid: the object failed validation; retrying the same request cannot succeed. */
export const isInvalid = (e: unknown): boolean => matches(e, [StatusReason.Invalid], 422);
/** 410 Gone / Expired: the resourceVersion or continue token is too old. */
export const isGone = (e: unknown): boolean => matches(e, [StatusReason.Gone, StatusReason.Expired], 410);
/** The apiserver does not serve this apiVersion/kind (e.g. the CRD is not installed yet). */
export const isNoKindMatch = (e: unknown): boolean => classify(e)?.code === KubeErrorCode.NoKindMatch;

const TRANSIENT_REASONS: ReadonlySet<string> = new Set([
  StatusReason.TooManyRequests,
  StatusReason.ServerTimeout,
  StatusReason.Timeout,
  StatusReason.InternalError,
  StatusReason.ServiceUnavailable,
]);

/** Worth retrying unchanged: 429, 5xx, a client-side timeout, or no HTTP response at all. */
export function isTransient(e: unknown): boolean {
  const k = classify(e);
  if (!k) return false;
  switch (k.code) {
    case KubeErrorCode.Network:
    case KubeErrorCode.Timeout:
      return true;
    case KubeErrorCode.Api:
      return k.status === 429 || k.status >= 500 || TRANSIENT_REASONS.has(k.reason);
    default:
      return false;
  }
}

/**
 * A reconcile error that retrying cannot fix (invalid spec, a kind that will never exist). The controller logs and
 * counts it and never requeues the key (controller-runtime `reconcile.TerminalError`); the next change to the
 * object triggers a fresh reconcile.
 */
export class TerminalError extends KedgeError {
  constructor(message: string, options?: ErrorOptions & { code?: string }) {
    super(options?.code ?? 'KUBE_ERR_TERMINAL', message, options);
    this.name = 'TerminalError';
  }
}

/** True for a {@link TerminalError} anywhere in the `cause` chain. */
export function isTerminal(e: unknown): boolean {
  for (let cur: unknown = e, depth = 0; isRecord(cur) && depth < 16; cur = cur['cause'], depth++) {
    if (cur instanceof TerminalError) return true;
  }
  return false;
}
