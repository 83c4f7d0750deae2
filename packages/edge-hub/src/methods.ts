import { randomBytes } from 'node:crypto';
import type { Identity } from '@kedge/protocol';
import { identityKey } from './identities.js';
import type { Logger } from './log.js';
import type { EdgeHubMetrics } from './metrics.js';

/** How a local direct method call ended. */
export type MethodOutcome =
  /** The target answered: its status and raw payload (the bytes of its `$iothub/methods/res/{status}` publish). */
  | { readonly kind: 'answered'; readonly status: number; readonly payload: Buffer }
  /** The target was not connected and subscribed to methods within the connect timeout. */
  | { readonly kind: 'not-connected' }
  /** The target did not answer within the response timeout. */
  | { readonly kind: 'timeout' }
  /** The edge hub is shutting down. */
  | { readonly kind: 'closed' };

/** A call to make. Timeouts in milliseconds; `connectTimeoutMs` 0 means "connected now or not at all". */
export interface MethodCall {
  readonly caller: Identity;
  readonly target: Identity;
  readonly methodName: string;
  /** The request body the target receives (JSON text, possibly empty). */
  readonly payload: Buffer;
  readonly responseTimeoutMs: number;
  readonly connectTimeoutMs: number;
}

/** What {@link LocalMethods} needs of the broker. */
export interface MethodSender {
  /** Publishes `$iothub/methods/POST/{name}/?$rid={rid}` to `id` if it is connected and subscribed to methods. */
  sendMethodRequest(id: Identity, methodName: string, rid: string, payload: Buffer): boolean;
}

interface Pending {
  readonly key: string;
  settle(outcome: MethodOutcome): void;
}

/**
 * Direct method calls between clients of this edge hub (module → module, module → leaf device), as edgeHub's
 * `InvokeMethodHandler`: the request goes to the target over its MQTT method subscription with a request id of
 * our own, and the target's `$iothub/methods/res/{status}/?$rid=` publish with that id (from that target, no other)
 * settles the call. Responses with other ids belong to calls from the hub and are not consumed here.
 */
export class LocalMethods {
  readonly #sender: MethodSender;
  readonly #log: Logger;
  readonly #metrics: EdgeHubMetrics;
  /** Calls waiting for a response, by `{target key}\n{rid}`. */
  readonly #pending = new Map<string, Pending>();
  /** Calls waiting for their target to subscribe to methods, by target key. */
  readonly #waiting = new Map<string, Set<() => void>>();
  #closed = false;

  constructor(deps: { sender: MethodSender; log: Logger; metrics: EdgeHubMetrics }) {
    this.#sender = deps.sender;
    this.#log = deps.log;
    this.#metrics = deps.metrics;
  }

  /** Calls a method on a client of this edge hub; never rejects. */
  async invoke(call: MethodCall): Promise<MethodOutcome> {
    const from = identityKey(call.caller.deviceId, call.caller.moduleId);
    const to = identityKey(call.target.deviceId, call.target.moduleId);
    this.#metrics.methods.inc({ from, to });
    const started = process.hrtime.bigint();
    const outcome = await this.#invoke(call, to);
    this.#metrics.methodDuration.observe({ from, to }, Number(process.hrtime.bigint() - started) / 1e9);
    this.#log.debug({ from, to, method: call.methodName.slice(0, 100), outcome: outcome.kind }, 'Local direct method call');
    return outcome;
  }

  async #invoke(call: MethodCall, to: string): Promise<MethodOutcome> {
    if (this.#closed) return { kind: 'closed' };
    // A random request id: the target cannot guess another call's id, and it never collides with the hub's.
    const rid = `kedge-${randomBytes(12).toString('hex')}`;
    const key = `${to}\n${rid}`;
    return new Promise<MethodOutcome>((resolve) => {
      let timer: NodeJS.Timeout | undefined;
      let unwait: (() => void) | undefined;
      const settle = (outcome: MethodOutcome): void => {
        if (timer) clearTimeout(timer);
        unwait?.();
        this.#pending.delete(key);
        resolve(outcome);
      };
      const send = (): boolean => {
        this.#pending.set(key, { key, settle });
        if (!this.#sender.sendMethodRequest(call.target, call.methodName, rid, call.payload)) {
          this.#pending.delete(key);
          return false;
        }
        unwait?.();
        unwait = undefined;
        if (timer) clearTimeout(timer);
        timer = setTimeout(() => settle({ kind: 'timeout' }), call.responseTimeoutMs);
        return true;
      };
      if (send()) return;
      if (call.connectTimeoutMs <= 0) {
        settle({ kind: 'not-connected' });
        return;
      }
      // Wait for the target to subscribe to methods (edgeHub's connectTimeoutInSeconds), then send once.
      const waiters = this.#waiting.get(to) ?? new Set<() => void>();
      this.#waiting.set(to, waiters);
      const wake = (): void => {
        if (this.#closed) settle({ kind: 'closed' });
        else send();
      };
      waiters.add(wake);
      unwait = () => {
        waiters.delete(wake);
        if (waiters.size === 0 && this.#waiting.get(to) === waiters) this.#waiting.delete(to);
      };
      timer = setTimeout(() => settle({ kind: 'not-connected' }), call.connectTimeoutMs);
    });
  }

  /**
   * A method response from `id`. True when it answered one of our calls (then it must not go upstream); false when
   * the request id is not one of ours for that identity.
   */
  response(id: Identity, rid: string, status: number, payload: Buffer): boolean {
    const p = this.#pending.get(`${identityKey(id.deviceId, id.moduleId)}\n${rid}`);
    if (!p) return false;
    p.settle({ kind: 'answered', status, payload });
    return true;
  }

  /** `id` subscribed to methods: calls waiting for it are sent now. */
  available(id: Identity): void {
    const waiters = this.#waiting.get(identityKey(id.deviceId, id.moduleId));
    if (!waiters) return;
    for (const wake of [...waiters]) wake();
  }

  /** Calls in flight (waiting for a response or for their target). */
  get inFlight(): number {
    let n = this.#pending.size;
    for (const w of this.#waiting.values()) n += w.size;
    return n;
  }

  /** Settles every call in flight as `closed`; later calls end `closed` at once. */
  close(): void {
    this.#closed = true;
    for (const p of [...this.#pending.values()]) p.settle({ kind: 'closed' });
    for (const waiters of [...this.#waiting.values()]) for (const wake of [...waiters]) wake();
  }
}
