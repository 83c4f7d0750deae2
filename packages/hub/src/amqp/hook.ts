import type { Connection, EventContext, Receiver, Sender } from 'rhea';

/** The reply to a put-token: a CBS status code (200, 401, 403, …) and its description. */
export interface PutTokenReply {
  readonly status: number;
  readonly description: string;
}

/**
 * A service sharing the AMQP endpoint's listener (the Event Hubs-compatible endpoint): it serves the CBS audiences
 * and the link addresses it claims. The endpoint keeps the connection (frame guard, link cap, pre-authentication
 * deadline, `$cbs` itself) and hands the hook only what is its own.
 */
export interface AmqpNodeHook {
  /** True when a put-token's audience (the URL-decoded `name`, as sent) is the hook's. */
  ownsAudience(audience: string): boolean;
  /** Verifies a put-token for one of its audiences. */
  putToken(conn: Connection, audience: string, token: string): Promise<PutTokenReply>;
  /**
   * Offered each attach to an address the endpoint does not serve (`path`: the address without scheme and host).
   * True when the hook took the link (it opens or refuses it itself); it calls `authorized` when the link rests on
   * a valid token, which ends the connection's pre-authentication deadline.
   */
  attach(conn: Connection, link: Sender | Receiver, path: string, authorized: () => void): boolean;
  /** True when the message arrived on a link the hook took (it settles it). */
  message(ctx: EventContext): boolean;
  /** A link gained credit. */
  sendable(sender: Sender): void;
  /** A link closed. */
  detached(link: Sender | Receiver): void;
  /** A connection ended. */
  disconnected(conn: Connection): void;
}
