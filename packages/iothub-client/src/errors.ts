/** Stable codes of {@link IotHubClientError}; classify by these, never by message. */
export const IotHubErrorCode = {
  /** No deadline-bound answer (twin request, PUBACK, HTTP response, CONNACK). */
  Timeout: 'IOTHUB_ERR_TIMEOUT',
  /** The request needs a connection and there is none right now (the client keeps reconnecting). */
  NotConnected: 'IOTHUB_ERR_NOT_CONNECTED',
  /** The connection dropped while the request was in flight; it may or may not have been applied. */
  Disconnected: 'IOTHUB_ERR_DISCONNECTED',
  /** The hub refused the credentials (CONNACK 4/5, HTTP 401/403). */
  Unauthorized: 'IOTHUB_ERR_UNAUTHORIZED',
  /** The hub answered with an error status (`status`, and `iotHubCode` when the body names one). */
  Rejected: 'IOTHUB_ERR_REJECTED',
  /** The hub's answer could not be read (bad JSON, oversized body). */
  BadResponse: 'IOTHUB_ERR_BAD_RESPONSE',
  /** The client was closed. */
  Closed: 'IOTHUB_ERR_CLOSED',
  /** Transport failure (DNS, TCP, TLS). */
  Network: 'IOTHUB_ERR_NETWORK',
} as const;
export type IotHubErrorCode = (typeof IotHubErrorCode)[keyof typeof IotHubErrorCode];

/** The only error type `@kedge/iothub-client` rejects with. */
export class IotHubClientError extends Error {
  readonly code: IotHubErrorCode;
  /** HTTP-like status of a hub answer (twin response, REST status), when there was one. */
  readonly status: number | undefined;
  /** IoT Hub's error code from the body (`ErrorCode:DeviceNotFound;…` → `DeviceNotFound`), when given. */
  readonly iotHubCode: string | undefined;
  constructor(code: IotHubErrorCode, message: string, opts: { status?: number; iotHubCode?: string; cause?: unknown } = {}) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.name = 'IotHubClientError';
    this.code = code;
    this.status = opts.status;
    this.iotHubCode = opts.iotHubCode;
  }
}

/** True for errors after which retrying the same request later can succeed. */
export function isRetriable(e: unknown): boolean {
  if (!(e instanceof IotHubClientError)) return false;
  if (e.code === IotHubErrorCode.Rejected) return e.status === undefined || e.status === 429 || e.status >= 500;
  return e.code !== IotHubErrorCode.Closed && e.code !== IotHubErrorCode.BadResponse;
}
