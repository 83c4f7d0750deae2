import { KedgeError } from '@kedge/contracts';

/**
 * The hub's error catalogue (fastify `lib/errors.js` style). Each entry has a stable Kedge code (`CLOUD_ERR_*`,
 * what Kedge clients branch on), the HTTP status and the IoT Hub `ErrorCode` that `azure-iothub` parses out of
 * `{"Message":"ErrorCode:<code>;<text>"}`.
 */
export const CloudErrors = {
  CLOUD_ERR_BAD_REQUEST: { status: 400, iotHubCode: 'ArgumentInvalid' },
  CLOUD_ERR_MALFORMED_JSON: { status: 400, iotHubCode: 'ArgumentInvalid' },
  CLOUD_ERR_INVALID_MANIFEST: { status: 400, iotHubCode: 'ArgumentInvalid' },
  CLOUD_ERR_INVALID_ID: { status: 400, iotHubCode: 'ArgumentInvalid' },
  CLOUD_ERR_TWIN_TOO_LARGE: { status: 400, iotHubCode: 'MessageTooLarge' },
  CLOUD_ERR_UNAUTHORIZED: { status: 401, iotHubCode: 'IotHubUnauthorizedAccess' },
  CLOUD_ERR_FORBIDDEN: { status: 401, iotHubCode: 'IotHubUnauthorizedAccess' },
  CLOUD_ERR_DEVICE_NOT_FOUND: { status: 404, iotHubCode: 'DeviceNotFound' },
  CLOUD_ERR_MODULE_NOT_FOUND: { status: 404, iotHubCode: 'ModuleNotFound' },
  CLOUD_ERR_CONFIGURATION_NOT_FOUND: { status: 404, iotHubCode: 'ConfigurationNotFound' },
  CLOUD_ERR_DEVICE_NOT_ONLINE: { status: 404, iotHubCode: 'DeviceNotOnline' },
  CLOUD_ERR_NOT_FOUND: { status: 404, iotHubCode: 'NotFound' },
  CLOUD_ERR_DEVICE_EXISTS: { status: 409, iotHubCode: 'DeviceAlreadyExists' },
  CLOUD_ERR_MODULE_EXISTS: { status: 409, iotHubCode: 'ModuleAlreadyExistsOnDevice' },
  CLOUD_ERR_CONFIGURATION_EXISTS: { status: 409, iotHubCode: 'ConfigurationAlreadyExists' },
  CLOUD_ERR_PRECONDITION_FAILED: { status: 412, iotHubCode: 'PreconditionFailed' },
  CLOUD_ERR_TOO_MANY_CONFIGURATIONS: { status: 403, iotHubCode: 'IotHubQuotaExceeded' },
  CLOUD_ERR_PAYLOAD_TOO_LARGE: { status: 413, iotHubCode: 'MessageTooLarge' },
  CLOUD_ERR_QUEUE_FULL: { status: 403, iotHubCode: 'DeviceMaximumQueueDepthExceeded' },
  CLOUD_ERR_METHOD_TIMEOUT: { status: 504, iotHubCode: 'GatewayTimeout' },
  CLOUD_ERR_SHUTTING_DOWN: { status: 503, iotHubCode: 'ServiceUnavailable' },
  CLOUD_ERR_INTERNAL: { status: 500, iotHubCode: 'ServerError' },
} as const;
export type CloudErrorCode = keyof typeof CloudErrors;

/** An expected hub failure: carries its catalogue code, HTTP status and IoT Hub error code. */
export class HubError extends KedgeError {
  readonly status: number;
  readonly iotHubCode: string;
  declare readonly code: CloudErrorCode;
  constructor(code: CloudErrorCode, message: string, options?: ErrorOptions) {
    super(code, message, options);
    this.name = 'HubError';
    this.status = CloudErrors[code].status;
    this.iotHubCode = CloudErrors[code].iotHubCode;
  }
}

/** Builds a {@link HubError}; the one way hub code raises an expected failure. */
export const hubError = (code: CloudErrorCode, message: string, cause?: unknown): HubError =>
  new HubError(code, message, cause === undefined ? undefined : { cause });

/** True when `e` is a {@link HubError} with the given code. */
export const isHubError = (e: unknown, code?: CloudErrorCode): e is HubError =>
  e instanceof HubError && (code === undefined || e.code === code);

/**
 * The IoT Hub error body. `Message` follows `ErrorCode:<code>;<text>` (what azure-iothub parses); `code` and
 * `message` are Kedge's own fields so Kedge clients never parse text.
 */
export function errorBody(e: HubError, trackingId: string): Record<string, string> {
  return {
    Message: `ErrorCode:${e.iotHubCode};${e.message}`,
    ExceptionMessage: `Tracking ID:${trackingId}-TimeStamp:${new Date().toISOString()}`,
    code: e.code,
    message: e.message,
  };
}
