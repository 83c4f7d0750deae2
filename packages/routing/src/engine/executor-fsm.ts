import { ExecutorState } from './types.js';

/** What happens to an endpoint executor (Routing.Core `EndpointExecutorFsm` commands). */
export const ExecutorEvent = {
  /** Messages were stored for the endpoint. */
  Work: 'work',
  /** The endpoint reported its destination reachable again (`EndpointHooks.available`). */
  Available: 'available',
  /** A batch was handled with nothing left to retry. */
  Succeeded: 'succeeded',
  /** A batch left messages to retry, and retries remain. */
  Failed: 'failed',
  /** A batch left messages to retry, and the retry budget is spent. */
  GaveUp: 'gaveUp',
  /** The pump found nothing to send. */
  Drained: 'drained',
  /** The backoff or revive timer fired. */
  TimerFired: 'timerFired',
  Close: 'close',
} as const;
export type ExecutorEvent = (typeof ExecutorEvent)[keyof typeof ExecutorEvent];

/** The side effect of a transition, carried out by the executor. */
export const ExecutorAction = {
  None: 'none',
  /** Run the pump (send the pending retry batch first, then read the queues, highest priority first). */
  Send: 'send',
  /** Cancel the pending timer, then {@link Send}. */
  CancelTimerAndSend: 'cancelTimerAndSend',
  /** Arm the jittered exponential backoff timer. */
  ScheduleRetry: 'scheduleRetry',
  /** Arm the revive timer. */
  ScheduleRevive: 'scheduleRevive',
  /** Abort the send in flight, cancel timers. */
  Stop: 'stop',
} as const;
export type ExecutorAction = (typeof ExecutorAction)[keyof typeof ExecutorAction];

/** One row of the table: the next state and the action to run. */
export interface Transition {
  readonly next: ExecutorState;
  readonly action: ExecutorAction;
}

const S = ExecutorState;
const E = ExecutorEvent;
const A = ExecutorAction;
const t = (next: ExecutorState, action: ExecutorAction): Transition => Object.freeze({ next, action });
const stop = t(S.Closed, A.Stop);

/**
 * The executor's explicit state machine: `(state, event) → (next, action)`. A pair missing from the table is not
 * a valid transition: {@link transition} returns undefined and the executor ignores the event (e.g. a late
 * `Work` while failing: the retry timer will send it). Sending and revived keep their pump running, so `Work` is
 * absorbed there; failing and dead wait for their timer or for `Available`.
 */
export const EXECUTOR_TRANSITIONS: Readonly<Record<ExecutorState, Readonly<Partial<Record<ExecutorEvent, Transition>>>>> = Object.freeze({
  [S.Idle]: { [E.Work]: t(S.Sending, A.Send), [E.Available]: t(S.Sending, A.Send), [E.Close]: stop },
  [S.Sending]: {
    [E.Work]: t(S.Sending, A.None),
    [E.Available]: t(S.Sending, A.None),
    [E.Succeeded]: t(S.Sending, A.None),
    [E.Drained]: t(S.Idle, A.None),
    [E.Failed]: t(S.Failing, A.ScheduleRetry),
    [E.GaveUp]: t(S.Dead, A.ScheduleRevive),
    [E.Close]: stop,
  },
  [S.Failing]: {
    [E.TimerFired]: t(S.Sending, A.Send),
    [E.Available]: t(S.Sending, A.CancelTimerAndSend),
    [E.Close]: stop,
  },
  [S.Dead]: {
    [E.TimerFired]: t(S.Revived, A.Send),
    [E.Available]: t(S.Revived, A.CancelTimerAndSend),
    [E.Close]: stop,
  },
  [S.Revived]: {
    [E.Work]: t(S.Revived, A.None),
    [E.Available]: t(S.Revived, A.None),
    [E.Succeeded]: t(S.Sending, A.None),
    [E.Drained]: t(S.Idle, A.None),
    // One probe only: a revived executor that fails again is dead for another revive period.
    [E.Failed]: t(S.Dead, A.ScheduleRevive),
    [E.GaveUp]: t(S.Dead, A.ScheduleRevive),
    [E.Close]: stop,
  },
  [S.Closed]: {},
});

/** Looks up `(state, event)`; undefined when the event does not apply in that state. */
export function transition(state: ExecutorState, event: ExecutorEvent): Transition | undefined {
  return EXECUTOR_TRANSITIONS[state][event];
}

/**
 * The backoff before retry number `attempt` (1-based): `min(max, initial × 2^(attempt−1))`, of which a `jitter`
 * fraction is random (`random()` in [0, 1)), so executors that failed together do not retry together.
 */
export function backoffDelay(attempt: number, opts: { initialDelayMs: number; maxDelayMs: number; jitter: number }, random: () => number): number {
  const exp = Math.min(opts.maxDelayMs, opts.initialDelayMs * 2 ** Math.min(60, Math.max(0, attempt - 1)));
  return Math.round(exp * (1 - opts.jitter * random()));
}
