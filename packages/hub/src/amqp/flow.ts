import type { Receiver } from 'rhea';

/** rhea (1.0) keeps its automatic flow controller as listeners on this internal emitter; it has no API to drop it. */
interface RheaReceiverInternals {
  readonly observers: { removeAllListeners(event: string): void };
  readonly credit: number;
}

/**
 * Credit given back on settlement instead of on arrival: rhea's `credit_window` tops a link's credit up as messages
 * *arrive*, so a peer can keep any number of messages waiting for the store. Here at most `window` messages of
 * `receiver` are unsettled at a time [AMQP 1.0 2.6.7]: call `settled()` once per message the hub has accepted or
 * rejected. `overrun()` is true when the peer sent more than its credit allowed (rhea delivers those anyway): the
 * caller detaches the link.
 *
 * Call on `receiver_open`, after rhea's controller issued its initial credit.
 */
export function creditOnSettlement(receiver: Receiver, window: number): { received(): boolean; settled(): void } {
  const internals = receiver as unknown as RheaReceiverInternals;
  internals.observers.removeAllListeners('message');
  internals.observers.removeAllListeners('receiver_open');
  if (internals.credit < window) receiver.add_credit(window - internals.credit);
  let unsettled = 0;
  return {
    received: () => ++unsettled <= window,
    settled: () => {
      unsettled--;
      // Given back in quarters of the window, as rhea's own controller does: one flow frame per message is waste.
      const room = window - unsettled - internals.credit;
      if (room >= window / 4 && receiver.is_open()) receiver.add_credit(room);
    },
  };
}
