declare const timerBrand: unique symbol;
/** An opaque timer handle returned by {@link Clock.setTimeout}. */
export type TimerHandle = { readonly [timerBrand]: true };

/**
 * Time source, injected everywhere time matters (work queues, informers, leases, the edge hub's executors and TTLs)
 * so tests drive time with {@link FakeClock} instead of sleeping.
 */
export interface Clock {
  /** Milliseconds: since the Unix epoch for {@link wallClock}, an arbitrary origin for {@link monotonicClock}. */
  now(): number;
  /** Runs `fn` once after `ms`. Real timers are `unref`'d: a pending timer never keeps the process alive. */
  setTimeout(fn: () => void, ms: number): TimerHandle;
  clearTimeout(handle: TimerHandle): void;
}

const realTimers = {
  setTimeout: (fn: () => void, ms: number): TimerHandle => {
    const t = setTimeout(fn, ms);
    t.unref();
    return t as unknown as TimerHandle;
  },
  clearTimeout: (handle: TimerHandle): void => clearTimeout(handle as unknown as ReturnType<typeof setTimeout>),
};

/** Wall time (`Date.now()`): for timestamps that are stored or compared across processes, such as message expiry. */
export const wallClock: Clock = { now: () => Date.now(), ...realTimers };

/**
 * Monotonic time (`performance.now()`): only differences are meaningful, and they never jump when the system clock is
 * set. For timeouts, backoff and lease expiry observed by this process.
 */
export const monotonicClock: Clock = { now: () => performance.now(), ...realTimers };

type FakeTimer = { readonly id: number; readonly at: number; readonly fn: () => void };

/**
 * A manual clock for tests: time moves only through {@link FakeClock.advance}, which fires due timers in order of due
 * time (then creation order), including timers they schedule, as long as those fall inside the advanced window.
 */
export class FakeClock implements Clock {
  #now: number;
  #nextId = 1;
  #timers: FakeTimer[] = [];

  /** @param startMs the initial `now()` @default 0 */
  constructor(startMs = 0) {
    this.#now = startMs;
  }

  now(): number {
    return this.#now;
  }

  setTimeout(fn: () => void, ms: number): TimerHandle {
    const timer: FakeTimer = { id: this.#nextId++, at: this.#now + Math.max(0, ms), fn };
    this.#timers.push(timer);
    return timer.id as unknown as TimerHandle;
  }

  clearTimeout(handle: TimerHandle): void {
    this.#timers = this.#timers.filter((t) => t.id !== (handle as unknown as number));
  }

  /** Number of timers not yet fired. */
  pending(): number {
    return this.#timers.length;
  }

  /** Due time of the earliest pending timer, or undefined. */
  nextDue(): number | undefined {
    let min: number | undefined;
    for (const t of this.#timers) if (min === undefined || t.at < min) min = t.at;
    return min;
  }

  /** Moves time forward by `ms`, firing every timer that becomes due. */
  advance(ms: number): void {
    const target = this.#now + ms;
    for (;;) {
      const due = this.#timers.filter((t) => t.at <= target).sort((a, b) => a.at - b.at || a.id - b.id)[0];
      if (!due) break;
      this.#timers = this.#timers.filter((t) => t !== due);
      this.#now = Math.max(this.#now, due.at);
      due.fn();
    }
    this.#now = target;
  }
}
