export {
  FailureKind,
  EngineErrorCode,
  EngineError,
  UnknownQueueError,
  StoreFullError,
  StoreClosedError,
  ExecutorState,
} from './types.js';
export type {
  EdgeMessage,
  StoredMessage,
  InvalidMessage,
  SinkResult,
  Endpoint,
  EndpointHooks,
  BatchContext,
  EndpointFactory,
  Checkpointer,
  QueueStats,
  MessageStoreStats,
  MessageStore,
  Clock,
  TimerHandle,
  EngineLogger,
  QueueStatus,
  EndpointStatus,
  RouterStatus,
  Delivery,
  RouteOutcome,
  RetryOptions,
  ExecutorOptions,
  RouterOptions,
} from './types.js';
export { systemClock, FakeClock } from './clock.js';
export { queueName, parseQueueName } from './queue-name.js';
export { ExecutorEvent, ExecutorAction, EXECUTOR_TRANSITIONS, transition, backoffDelay } from './executor-fsm.js';
export type { Transition } from './executor-fsm.js';
export { EndpointExecutor } from './endpoint-executor.js';
export type { EndpointExecutorDeps } from './endpoint-executor.js';
export { Router } from './router.js';
export { MemoryMessageStore, expiryOf } from './memory-store.js';
export { RecordingEndpoint, FailingEndpoint, PartialFailureEndpoint, StalledEndpoint, RevivableEndpoint } from './fake-endpoints.js';
export { describeMessageStore, testMessage, assertSameMessage } from './message-store.contract.js';
export type { SuiteApi, MessageStoreHarness, MessageStoreFactory } from './message-store.contract.js';
