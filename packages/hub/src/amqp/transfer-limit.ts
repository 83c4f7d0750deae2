import type { Connection, Receiver } from 'rhea';

/** The parts of rhea's (1.0) internals a transfer frame passes through; rhea publishes no hook for them. */
interface TransferFrame {
  readonly channel: number;
  readonly performative: { readonly handle?: number; readonly delivery_id?: number | null };
  readonly payload?: Buffer;
}
interface IncompleteDelivery {
  readonly id: number;
  data?: Buffer;
  settled: boolean;
}
interface RheaConnectionInternals {
  on_transfer(frame: TransferFrame): void;
  remote_channel_map: Record<number, { remote: { handles: Record<number, Receiver & { _incomplete?: IncompleteDelivery }> } } | undefined>;
}

/**
 * Bounds the total size of one message on every receiving link of `conn`: rhea (1.0) concatenates the frames of a
 * multi-frame transfer until `more` is false, with no limit of its own (it announces the `max-message-size` it is
 * given in `attach` but never checks it). Each incoming transfer frame is checked against `limit()` *before* rhea
 * appends it: the link of a message that would outgrow it is handed to `refuse` (which detaches it with
 * `amqp:link:message-size-exceeded` [AMQP 1.0 2.8.15]); the partial message is dropped, and so are the rest of its
 * frames still in flight. Frames themselves are bounded earlier, by the frame guard.
 *
 * `destroy` is called instead when the very first frame of a delivery is over the limit (the frame guard makes this
 * impossible when frame and message limits agree): rhea numbers deliveries per session, so a dropped first frame
 * would break its numbering.
 */
export function boundTransfers(conn: Connection, limit: () => number, refuse: (link: Receiver, bytes: number) => void, destroy: () => void): void {
  const c = conn as unknown as RheaConnectionInternals;
  const deliver = c.on_transfer.bind(c);
  /** Refused links and the delivery id of the message refused on each. */
  const refused = new WeakMap<Receiver, number>();
  c.on_transfer = (frame: TransferFrame): void => {
    const handle = frame.performative.handle;
    const link = handle === undefined ? undefined : c.remote_channel_map[frame.channel]?.remote.handles[handle];
    if (link) {
      const refusedId = refused.get(link);
      if (refusedId !== undefined) {
        // The remainder of a refused message, sent before the peer saw the detach (continuation frames carry the
        // same delivery id or none [AMQP 1.0 2.7.5]). A new message on the detaching link goes to rhea as usual.
        const id = frame.performative.delivery_id;
        if (id === undefined || id === null || id === refusedId) return;
        refused.delete(link);
      }
      const partial = link._incomplete;
      const bytes = (partial?.data?.length ?? 0) + (frame.payload?.length ?? 0);
      if (bytes > limit()) {
        if (!partial) {
          destroy();
          return;
        }
        refused.set(link, partial.id);
        // As rhea does for a delivery whose link detaches mid-transfer: settled, so its buffers let it go.
        partial.settled = true;
        partial.data = undefined;
        link._incomplete = undefined;
        refuse(link, bytes);
        return;
      }
    }
    deliver(frame);
  };
}
