import { KedgeError } from '@kedge/contracts';

/** The edge hub's error codes; callers branch on `code`, never on the message. */
export const EdgeErrorCode = {
  /** The configuration failed validation. */
  Config: 'EDGE_ERR_CONFIG',
  /** The hub refused or failed a request the edge hub made (device scope, twin, method). */
  Upstream: 'EDGE_ERR_UPSTREAM',
  /** The hub is not reachable right now. */
  Offline: 'EDGE_ERR_OFFLINE',
  /** A request to the hub took too long. */
  Timeout: 'EDGE_ERR_TIMEOUT',
  /** The edge hub is shutting down. */
  Closed: 'EDGE_ERR_CLOSED',
} as const;
export type EdgeErrorCode = (typeof EdgeErrorCode)[keyof typeof EdgeErrorCode];

/** An expected edge hub failure with a stable {@link EdgeErrorCode}; `status` is the hub's HTTP/MQTT status when known. */
export class EdgeHubError extends KedgeError {
  declare readonly code: EdgeErrorCode;
  readonly status: number | undefined;
  constructor(code: EdgeErrorCode, message: string, options?: ErrorOptions & { status?: number }) {
    super(code, message, options);
    this.name = 'EdgeHubError';
    this.status = options?.status;
  }
}

export const isEdgeHubError = (e: unknown, code?: EdgeErrorCode): e is EdgeHubError =>
  e instanceof EdgeHubError && (code === undefined || e.code === code);
