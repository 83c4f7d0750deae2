import { randomUUID } from 'node:crypto';
import type { Bus, BusEvent } from '../cluster/bus.js';
import { hubError, isHubError } from '../errors.js';
import type { Logger } from '../log.js';
import type { HubMetrics } from '../metrics.js';
import type { Store } from '../storage/store.js';
import type { Json } from '@kedge/protocol';
import { isObject } from '@kedge/protocol';

/** The part of the device endpoint (MQTT) that methods need. */
export interface MethodTransport {
  /** Sends a method request if the identity is connected here and subscribed to methods; false otherwise. */
  sendMethodRequest(deviceId: string, moduleId: string, methodName: string, rid: string, payload: Buffer): boolean;
}

/** A direct method call as the REST API receives it. */
export interface MethodCall {
  readonly methodName: string;
  readonly payload: Json;
  readonly responseTimeoutInSeconds: number;
  readonly connectTimeoutInSeconds: number;
}

export interface MethodResult {
  readonly status: number;
  readonly payload: Json;
}

/** Parses and bounds a method call body (timeouts 5–300 s as in IoT Hub; default 30 s). */
export function parseMethodCall(body: unknown): MethodCall {
  if (!isObject(body)) throw hubError('CLOUD_ERR_BAD_REQUEST', 'Method call must be a JSON object');
  const name = body['methodName'];
  if (typeof name !== 'string' || name.length === 0 || name.length > 128 || /[\s/#+$]/.test(name)) {
    throw hubError('CLOUD_ERR_BAD_REQUEST', 'methodName must be 1-128 characters without spaces, "/", "#", "+" or "$"');
  }
  const num = (v: Json | undefined, dflt: number, min: number, max: number, field: string): number => {
    if (v === undefined || v === null) return dflt;
    if (typeof v !== 'number' || !Number.isFinite(v) || v < min || v > max) throw hubError('CLOUD_ERR_BAD_REQUEST', `${field} must be between ${min} and ${max}`);
    return v;
  };
  return {
    methodName: name,
    payload: body['payload'] === undefined ? null : (body['payload']),
    responseTimeoutInSeconds: num(body['responseTimeoutInSeconds'], 30, 5, 300, 'responseTimeoutInSeconds'),
    connectTimeoutInSeconds: num(body['connectTimeoutInSeconds'], 0, 0, 300, 'connectTimeoutInSeconds'),
  };
}

interface Pending {
  readonly key: string;
  readonly resolve: (r: MethodResult) => void;
  readonly reject: (e: Error) => void;
  readonly timer: NodeJS.Timeout;
}

/**
 * Direct methods. A call is delivered to the replica that holds the device's connection (looked up in the presence
 * table): locally through the {@link MethodTransport}, elsewhere through the bus. Responses are matched by `$rid`
 * *and* by the identity that answers, so a device can never answer a call made to another device.
 */
export class Methods {
  readonly #store: Store;
  readonly #bus: Bus;
  readonly #replicaId: string;
  readonly #log: Logger;
  readonly #metrics: HubMetrics;
  #transport: MethodTransport | undefined;
  readonly #pending = new Map<string, Pending>();
  readonly #remote = new Map<string, Pending>();
  #seq = 0;
  #closing = false;
  readonly #unsubscribe: () => void;

  constructor(deps: { store: Store; bus: Bus; replicaId: string; log: Logger; metrics: HubMetrics }) {
    this.#store = deps.store;
    this.#bus = deps.bus;
    this.#replicaId = deps.replicaId;
    this.#log = deps.log;
    this.#metrics = deps.metrics;
    this.#unsubscribe = this.#bus.subscribe((e) => this.#onBus(e));
  }

  bindTransport(t: MethodTransport): void {
    this.#transport = t;
  }

  /** Invokes a method on a device or module; resolves with the device's status and payload. */
  async invoke(deviceId: string, moduleId: string, call: MethodCall): Promise<MethodResult> {
    if (this.#closing) throw hubError('CLOUD_ERR_SHUTTING_DOWN', 'The hub is shutting down');
    try {
      const r = await this.#route(deviceId, moduleId, call);
      this.#metrics.methodCalls.inc({ result: 'ok' });
      return r;
    } catch (e) {
      this.#metrics.methodCalls.inc({ result: isHubError(e) ? e.code : 'error' });
      throw e;
    }
  }

  async #route(deviceId: string, moduleId: string, call: MethodCall): Promise<MethodResult> {
    const presence = await this.#store.getPresence(deviceId, moduleId);
    const offline = (): Error => hubError('CLOUD_ERR_DEVICE_NOT_ONLINE', `${moduleId ? `Module ${deviceId}/${moduleId}` : `Device ${deviceId}`} is not online`);
    if (!presence) throw offline();
    const timeoutMs = call.responseTimeoutInSeconds * 1000;
    if (presence.replicaId === this.#replicaId) return this.invokeLocal(deviceId, moduleId, call.methodName, call.payload, timeoutMs);
    const callId = randomUUID();
    const result = new Promise<MethodResult>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#remote.delete(callId);
        reject(hubError('CLOUD_ERR_METHOD_TIMEOUT', `Timed out waiting for the response from ${deviceId}`));
      }, timeoutMs + 2000);
      this.#remote.set(callId, { key: callId, resolve, reject, timer });
    });
    await this.#bus.publish({
      type: 'method-request',
      callId,
      replyTo: this.#replicaId,
      targetReplica: presence.replicaId,
      deviceId,
      moduleId,
      methodName: call.methodName,
      payload: call.payload,
      timeoutMs,
    });
    return result;
  }

  /** Delivers to a connection held by this replica and waits for the answer. */
  invokeLocal(deviceId: string, moduleId: string, methodName: string, payload: Json, timeoutMs: number): Promise<MethodResult> {
    const rid = (++this.#seq).toString(16);
    const key = `${deviceId}\u0000${moduleId}\u0000${rid}`;
    return new Promise<MethodResult>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#pending.delete(key);
        reject(hubError('CLOUD_ERR_METHOD_TIMEOUT', `Timed out waiting for the response from ${deviceId}${moduleId ? `/${moduleId}` : ''}`));
      }, timeoutMs);
      this.#pending.set(key, { key, resolve, reject, timer });
      const sent = this.#transport?.sendMethodRequest(deviceId, moduleId, methodName, rid, Buffer.from(JSON.stringify(payload))) ?? false;
      if (!sent) {
        clearTimeout(timer);
        this.#pending.delete(key);
        reject(hubError('CLOUD_ERR_DEVICE_NOT_ONLINE', `${deviceId}${moduleId ? `/${moduleId}` : ''} is not connected or not subscribed to methods`));
      }
    });
  }

  /** Called by the device endpoint when `$iothub/methods/res/{status}/?$rid=` arrives from that identity. */
  handleResponse(deviceId: string, moduleId: string, rid: string, status: number, body: Buffer): void {
    const key = `${deviceId}\u0000${moduleId}\u0000${rid}`;
    const p = this.#pending.get(key);
    if (!p) {
      this.#log.debug({ deviceId, moduleId, rid }, 'Ignored method response with no pending call');
      return;
    }
    this.#pending.delete(key);
    clearTimeout(p.timer);
    let payload: Json = null;
    if (body.length > 0) {
      try {
        payload = JSON.parse(body.toString('utf8')) as Json;
      } catch {
        payload = body.toString('utf8');
      }
    }
    p.resolve({ status, payload });
  }

  #onBus(e: BusEvent): void {
    if (e.type === 'method-request' && e.targetReplica === this.#replicaId) {
      void this.invokeLocal(e.deviceId, e.moduleId, e.methodName, e.payload, e.timeoutMs).then(
        (r) => this.#bus.publish({ type: 'method-response', callId: e.callId, replyTo: e.replyTo, status: r.status, payload: r.payload }),
        (err: unknown) =>
          this.#bus.publish({
            type: 'method-response',
            callId: e.callId,
            replyTo: e.replyTo,
            status: 0,
            payload: null,
            error: isHubError(err) ? err.code : 'CLOUD_ERR_INTERNAL',
          }),
      ).catch((err: unknown) => this.#log.warn({ err }, 'Failed to publish a method response'));
    } else if (e.type === 'method-response' && e.replyTo === this.#replicaId) {
      const p = this.#remote.get(e.callId);
      if (!p) return;
      this.#remote.delete(e.callId);
      clearTimeout(p.timer);
      if (e.error === 'CLOUD_ERR_METHOD_TIMEOUT') p.reject(hubError('CLOUD_ERR_METHOD_TIMEOUT', 'Timed out waiting for the device response'));
      else if (e.error !== undefined) p.reject(hubError('CLOUD_ERR_DEVICE_NOT_ONLINE', 'The device is not online'));
      else p.resolve({ status: e.status, payload: e.payload });
    }
  }

  /** Fails every pending call (shutdown). */
  close(): void {
    this.#closing = true;
    this.#unsubscribe();
    for (const p of [...this.#pending.values(), ...this.#remote.values()]) {
      clearTimeout(p.timer);
      p.reject(hubError('CLOUD_ERR_SHUTTING_DOWN', 'The hub is shutting down'));
    }
    this.#pending.clear();
    this.#remote.clear();
  }
}
