/**
 * The controller runtime's clock is `@kedge/contracts`' (one Clock for every package). Its `systemClock` is the
 * monotonic one: work-queue delays, informer backoff and lease expiry must not jump when the system clock is set.
 */
export { FakeClock, monotonicClock as systemClock } from '@kedge/contracts';
export type { Clock, TimerHandle } from '@kedge/contracts';
