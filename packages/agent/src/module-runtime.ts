import type { EdgeDeploymentSpec, EdgeDeploymentStatus } from '@kedge/manifest';

/**
 * The `ModuleRuntime` port: what the agent's runtime-neutral core (twin sync, `$edgeAgent` reported properties,
 * direct methods) needs from whatever runs modules. Two implementations: Kubernetes (the EdgeDeployment and its
 * controller, `kubernetes-runtime.ts`) and local processes (`process-runtime.ts`). Both run the contract suite
 * `describeModuleRuntime` (`module-runtime.contract.ts`).
 */

/** Which lines of a module's log to return. Times are epoch milliseconds. */
export interface LogQuery {
  /** Only the last `tail` lines (after the other filters). */
  readonly tail?: number;
  readonly sinceMs?: number;
  readonly untilMs?: number;
}

/** One line of a module's output. `timeMs` is when the runtime saw it, when the runtime knows. */
export interface LogLine {
  readonly timeMs?: number;
  readonly text: string;
}

/** What runs now: the deployment the runtime holds, and its status in the EdgeDeployment status model. */
export interface RuntimeSnapshot {
  /** The deployment last applied, as stored (undefined: none yet). */
  readonly spec?: EdgeDeploymentSpec;
  /** Incremented by every applied change of the spec (an EdgeDeployment's `metadata.generation`). */
  readonly generation?: number;
  /** `observedGeneration`, conditions and `modules.<name>` (`ModuleStatusReport`), as {@link computeStatus} makes them. */
  readonly status?: EdgeDeploymentStatus;
}

/** The operations direct methods need: which modules are deployed, restart one, read its logs. */
export interface ModuleOperations {
  /** Names of the deployed modules (user modules and `edgeHub`), as in the spec. */
  moduleNames(): Promise<string[]>;
  /** Restarts a deployed module now. Throws {@link UnknownModuleError} for a module not deployed. */
  restart(name: string): Promise<void>;
  /**
   * The module's log lines, oldest first, filtered by `query`. No output yet: `[]`. The runtime may return lines
   * outside `since`/`until` when it cannot tell their times; callers filter again by time when they can.
   */
  logs(name: string, query: LogQuery): Promise<LogLine[]>;
}

/** A runtime of modules: the port. */
export interface ModuleRuntime extends ModuleOperations {
  /** `kubernetes` or `process`: for logs and `kedge check`. */
  readonly kind: string;
  /** Starts observing (and, for the process runtime, running what the state holds). Resolves once synced. */
  start(signal?: AbortSignal): Promise<void>;
  /** True once {@link start} has synced. */
  hasSynced(): boolean;
  /**
   * Makes `spec` the desired deployment (already validated by the caller) and returns the generation it was stored
   * as. Modules are started, updated and stopped asynchronously; {@link snapshot} and {@link onChange} tell when.
   */
  apply(spec: EdgeDeploymentSpec, signal?: AbortSignal): Promise<{ generation: number }>;
  /** What the runtime holds and observes now. Synchronous: from the runtime's cache. */
  snapshot(): RuntimeSnapshot;
  /** Calls `listener` after the snapshot may have changed; returns the unsubscribe function. */
  onChange(listener: () => void): () => void;
  /** Stops observing. The process runtime also stops its modules (SIGTERM, then SIGKILL after the grace period). */
  stop(): Promise<void>;
}

/** A module that is not part of the current deployment: an argument error for direct methods. */
export class UnknownModuleError extends Error {
  readonly code = 'EDGE_ERR_UNKNOWN_MODULE';
  constructor(name: string) {
    super(`Module '${name}' is not part of the current deployment`);
    this.name = 'UnknownModuleError';
  }
}
