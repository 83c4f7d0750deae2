/**
 * The IoT Edge route language: route and condition compiler, evaluator, `$edgeHub` route configuration, and the IoT
 * Hub twin-query subset used by automatic deployments. Pure code: no I/O.
 */
export { compileRoute, normalizeSource, sinkKey, formatSink } from './route.js';
export type { CompiledRoute, RouteSink, RouteSource } from './route.js';
export { compileCondition } from './condition.js';
export type { CompiledCondition, ConditionOptions } from './condition.js';
export type { TriBool } from './condition/values.js';
export { RouteErrorCode, MAX_EXPRESSION_DEPTH, MAX_NESTING } from './errors.js';
export type { RouteCompileError } from './errors.js';
export { messageSourcePath } from './message.js';
export type { RouteMessage, MessageSource, JsonValue } from './message.js';
export { messageFromJson } from './message-json.js';
export {
  parseRoutes,
  parseEdgeHubDesired,
  parseRouteLines,
  unwrapEdgeHubDesired,
  checkRouteName,
  describeRouteError,
  ROUTE_NAME,
  EDGE_HUB_DESIRED_PATH,
  DEFAULT_PRIORITY,
  DEFAULT_TIME_TO_LIVE_SECS,
} from './routes-config.js';
export type { RouteSpec } from './routes-config.js';
export { Evaluator } from './evaluator.js';
export type { MatchedRoute } from './evaluator.js';
export { compileTargetCondition, compileDeviceQuery, QueryShape, MAX_TOP } from './query/twin-query.js';
export type { TwinDocument, TwinPredicate, DeviceQuery } from './query/twin-query.js';
export { AggregateFn } from './query/select.js';
export type { Aggregation, QueryRow, SelectItem } from './query/select.js';
