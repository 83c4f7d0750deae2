import { describe, expect, it } from 'vitest';
import { backoffDelay, EXECUTOR_TRANSITIONS, ExecutorAction as A, ExecutorEvent as E, transition } from './executor-fsm.js';
import { ExecutorState as S } from './types.js';

describe('executor state machine', () => {
  it('has the Routing.Core shape: sending, failing with backoff, dead, revived', () => {
    expect(transition(S.Idle, E.Work)).toEqual({ next: S.Sending, action: A.Send });
    expect(transition(S.Sending, E.Drained)).toEqual({ next: S.Idle, action: A.None });
    expect(transition(S.Sending, E.Failed)).toEqual({ next: S.Failing, action: A.ScheduleRetry });
    expect(transition(S.Failing, E.TimerFired)).toEqual({ next: S.Sending, action: A.Send });
    expect(transition(S.Failing, E.Available)).toEqual({ next: S.Sending, action: A.CancelTimerAndSend });
    expect(transition(S.Sending, E.GaveUp)).toEqual({ next: S.Dead, action: A.ScheduleRevive });
    expect(transition(S.Dead, E.TimerFired)).toEqual({ next: S.Revived, action: A.Send });
    expect(transition(S.Dead, E.Available)).toEqual({ next: S.Revived, action: A.CancelTimerAndSend });
    expect(transition(S.Revived, E.Failed)).toEqual({ next: S.Dead, action: A.ScheduleRevive });
    expect(transition(S.Revived, E.Succeeded)).toEqual({ next: S.Sending, action: A.None });
  });

  it('ignores work while failing or dead (the timer sends it) and everything once closed', () => {
    expect(transition(S.Failing, E.Work)).toBeUndefined();
    expect(transition(S.Dead, E.Work)).toBeUndefined();
    for (const e of Object.values(E)) expect(transition(S.Closed, e)).toBeUndefined();
  });

  it('closes from every live state, stopping what is in flight', () => {
    for (const s of Object.values(S)) {
      if (s === S.Closed) continue;
      expect(EXECUTOR_TRANSITIONS[s][E.Close]).toEqual({ next: S.Closed, action: A.Stop });
    }
  });

  it('backs off exponentially up to the cap, with the jitter fraction random', () => {
    const o = { initialDelayMs: 1000, maxDelayMs: 10_000, jitter: 0.5 };
    expect([1, 2, 3, 4, 5, 6].map((n) => backoffDelay(n, o, () => 0))).toEqual([1000, 2000, 4000, 8000, 10_000, 10_000]);
    expect(backoffDelay(2, o, () => 0.999)).toBe(1001);
    expect(backoffDelay(1000, o, () => 0)).toBe(10_000);
  });
});
