import { FakeClock as BaseFakeClock, wallClock } from '@kedge/contracts';
import type { Clock } from './types.js';

/** The engine's wall clock: `Date.now()` and `unref`'d timers (message expiry times are absolute). */
export const systemClock: Clock = wallClock;

/**
 * `@kedge/contracts`' manual test clock, starting at a wall-clock-like epoch (2026-01-01) because engine times are
 * absolute (a message's `enqueuedAt` and `expiresAt`).
 */
export class FakeClock extends BaseFakeClock {
  constructor(startMs = Date.UTC(2026, 0, 1)) {
    super(startMs);
  }
}
