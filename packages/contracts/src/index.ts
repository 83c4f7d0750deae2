export { ok, err } from './result.js';
export type { Result } from './result.js';
export { KedgeError, formatIssues } from './errors.js';
export type { Issue } from './errors.js';
export { FakeClock, monotonicClock, wallClock } from './clock.js';
export type { Clock, TimerHandle } from './clock.js';
