import rhea from 'rhea';
import type { Connection, Delivery, Receiver, Sender } from 'rhea';
import type { Identity, JsonObject } from '@kedge/protocol';
import { parseJsonBytes, userProperties } from '@kedge/protocol';
import type { Bus } from '../cluster/bus.js';
import { isHubError } from '../errors.js';
import type { Logger } from '../log.js';
import type { HubMetrics } from '../metrics.js';
import type { Methods } from '../methods/methods.js';
import type { Store } from '../storage/store.js';
import type { Twins } from '../twins/twins.js';
import { bodyBytes, idText } from './messages.js';
import type { IdentityNode } from './nodes.js';
import { identityKey, identityName } from './nodes.js';

/** The application properties of direct methods over AMQP (azure-iot-device-amqp `amqp_device_method_client.ts`). */
export const METHOD_NAME_PROPERTY = 'IoThub-methodname';
export const METHOD_STATUS_PROPERTY = 'IoThub-status';
/** The link property pairing a twin or methods request link with its reply link. */
const CHANNEL_PROPERTY = 'com.microsoft:channel-correlation-id';
/** Twin operations (message annotation `operation`) and resources (`resource`) of `amqp_twin_client.ts`. */
const REPORTED_RESOURCE = '/properties/reported';
const DESIRED_RESOURCE = '/notifications/twin/properties/desired';
/** Replies held for a twin reply link without credit; one more and the request is refused. */
const MAX_PENDING_REPLIES = 16;
/** Twin channels one connection may pair (the SDK opens one per identity). */
const MAX_CHANNELS_PER_CONNECTION = 8;

/**
 * A twin channel: the identity's request link (device → hub) and the hub's reply link (hub → device), paired by the
 * `com.microsoft:channel-correlation-id` both carry. Responses and desired-property patches go on the reply link.
 */
interface TwinChannel {
  readonly connection: Connection;
  readonly identity: Identity;
  readonly key: string;
  request: Receiver | undefined;
  reply: Sender | undefined;
  /** PUT `/notifications/twin/properties/desired` was accepted (DELETE undoes it). */
  desired: boolean;
  /** Replies waiting for credit on the reply link. */
  readonly pending: rhea.Message[];
}

/** Dependencies of {@link IdentityLinks}: the hub's twin and methods services and presence. */
export interface IdentityLinksDeps {
  readonly twins: Twins;
  readonly methods: Methods;
  readonly store: Store;
  readonly bus: Bus;
  readonly log: Logger;
  readonly metrics: HubMetrics;
  readonly replicaId: string;
}

/** What became of a message on an identity link: settle it so. */
type Outcome = { readonly accept: true } | { readonly accept: false; readonly condition: string; readonly description: string };
const ACCEPT: Outcome = { accept: true };
const refuse = (description: string, condition = 'amqp:invalid-field'): Outcome => ({ accept: false, condition, description });

/** The status and JSON body of a twin error reply, as the MQTT endpoint answers (`413` is IoT Hub's 400 there). */
function twinErrorReply(e: unknown): { status: number; body: string } {
  const status = isHubError(e) ? (e.status === 413 ? 400 : e.status) : 500;
  const message = isHubError(e) ? e.message : 'Internal error';
  return { status, body: JSON.stringify({ errorCode: status * 1000, message }) };
}

/** A remote attach's property, if it is a string. */
function linkProperty(link: Sender | Receiver, name: string): string | undefined {
  const props = (link as unknown as { remote: { attach?: { properties?: Record<string, unknown> } } }).remote.attach?.properties;
  const v = props?.[name];
  return typeof v === 'string' && v.length <= 256 ? v : undefined;
}

/**
 * The device and module side of the AMQP endpoint beyond telemetry and cloud-to-device messages: twin channels
 * (`/devices/{d}[/modules/{m}]/twin`), direct methods (`…/methods/devicebound`), module input links, and the
 * presence of AMQP identities (what routes a direct method to this replica). The endpoint authorizes every link
 * (the CBS grant of exactly that identity) before it reaches this class, and tells it when a link goes.
 *
 * Twin reads and writes go through the hub's {@link Twins} (the MQTT endpoint's rules and limits), methods through
 * its {@link Methods} (which matches each response to the identity that was called).
 */
export class IdentityLinks {
  readonly #d: IdentityLinksDeps;
  /** Twin channels by `connection-local key`, and each twin link's channel. */
  readonly #channels = new Map<Connection, Map<string, TwinChannel>>();
  readonly #channelOf = new Map<Sender | Receiver, TwinChannel>();
  /** Twin channels subscribed to desired patches, by identity (what a desired change looks up). */
  readonly #subscribed = new Map<string, Set<TwinChannel>>();
  /** The method request link (hub → identity) of each identity connected here; the latest attach wins. */
  readonly #methodLinks = new Map<string, Sender>();
  /** Every authorized link of each identity connected here (its presence lasts while it has one). */
  readonly #presence = new Map<string, { readonly identity: Identity; readonly links: Set<Sender | Receiver> }>();
  readonly #identityOf = new Map<Sender | Receiver, Identity>();

  constructor(deps: IdentityLinksDeps) {
    this.#d = deps;
  }

  /** Entries held in all of its maps: 0 once every link has gone (state lives as long as its links). */
  get size(): number {
    return this.#identityOf.size + this.#channels.size + this.#channelOf.size + this.#subscribed.size + this.#methodLinks.size + this.#presence.size;
  }

  /**
   * An authorized link of `node`'s identity opened. Returns an error description when it is refused (too many twin
   * channels on one connection); the caller then closes it.
   */
  attached(connection: Connection, link: Sender | Receiver, node: IdentityNode, hubSends: boolean): string | undefined {
    if (node.kind === 'twin') {
      const refused = this.#pairTwin(connection, link, node.identity, hubSends);
      if (refused) return refused;
    } else if (node.kind === 'methods' && hubSends) {
      this.#methodLinks.set(identityKey(node.identity), link as Sender);
    }
    this.#present(node.identity, link);
    this.#d.metrics.amqpIdentityState.set(this.size);
    return undefined;
  }

  #pairTwin(connection: Connection, link: Sender | Receiver, identity: Identity, hubSends: boolean): string | undefined {
    const perConn = this.#channels.get(connection) ?? new Map<string, TwinChannel>();
    const key = `${identityKey(identity)}\u0000${linkProperty(link, CHANNEL_PROPERTY) ?? ''}`;
    let channel = perConn.get(key);
    if (!channel) {
      if (perConn.size >= MAX_CHANNELS_PER_CONNECTION) return `At most ${MAX_CHANNELS_PER_CONNECTION} twin channels per connection`;
      channel = { connection, identity, key, request: undefined, reply: undefined, desired: false, pending: [] };
      perConn.set(key, channel);
      this.#channels.set(connection, perConn);
    }
    // A second link for the same side replaces the first (the SDK re-attaches after a detach).
    const previous = hubSends ? channel.reply : channel.request;
    if (previous && previous !== link) this.#channelOf.delete(previous);
    if (hubSends) channel.reply = link as Sender;
    else channel.request = link as Receiver;
    this.#channelOf.set(link, channel);
    if (hubSends) this.onSendable(link as Sender);
    return undefined;
  }

  #present(identity: Identity, link: Sender | Receiver): void {
    const key = identityKey(identity);
    this.#identityOf.set(link, identity);
    const p = this.#presence.get(key);
    if (p) {
      p.links.add(link);
      return;
    }
    this.#presence.set(key, { identity, links: new Set([link]) });
    // As an MQTT CONNECT does: this replica now holds the identity (direct methods are routed here) and any
    // connection of it on another replica is closed.
    void this.#d.store
      .setPresence({ deviceId: identity.deviceId, moduleId: identity.moduleId, replicaId: this.#d.replicaId, connectedAt: Date.now() })
      .then(() => this.#d.bus.publish({ type: 'kick', deviceId: identity.deviceId, moduleId: identity.moduleId, exceptReplica: this.#d.replicaId }))
      .catch((e: unknown) => this.#d.log.warn({ err: e, identity: identityName(identity) }, 'Failed to record presence'));
  }

  /** A link went (detached, refused later, its token expired, its connection closed). */
  forget(link: Sender | Receiver): void {
    const identity = this.#identityOf.get(link);
    if (!identity) return;
    this.#identityOf.delete(link);
    const key = identityKey(identity);
    if (this.#methodLinks.get(key) === link) this.#methodLinks.delete(key);
    const channel = this.#channelOf.get(link);
    if (channel) {
      this.#channelOf.delete(link);
      if (channel.reply === link) {
        channel.reply = undefined;
        channel.pending.length = 0;
      }
      if (channel.request === link) channel.request = undefined;
      if (!channel.reply && !channel.request) {
        this.#subscribe(channel, false);
        const perConn = this.#channels.get(channel.connection);
        perConn?.delete(channel.key);
        if (perConn?.size === 0) this.#channels.delete(channel.connection);
      }
    }
    const p = this.#presence.get(key);
    if (p?.links.delete(link) && p.links.size === 0) this.#absent(p.identity);
    this.#d.metrics.amqpIdentityState.set(this.size);
  }

  /** The identity's last link here went: it is no longer present on this replica. */
  #absent(identity: Identity): void {
    this.#presence.delete(identityKey(identity));
    void this.#d.store
      .clearPresence(identity.deviceId, identity.moduleId, this.#d.replicaId)
      .catch((e: unknown) => this.#d.log.warn({ err: e, identity: identityName(identity) }, 'Failed to clear presence'));
  }

  /** The links of `identity` held here. */
  linksOf(identity: Identity): Array<Sender | Receiver> {
    return [...(this.#presence.get(identityKey(identity))?.links ?? [])];
  }

  /** A message the identity sent on one of its twin or methods nodes. */
  async onMessage(link: Receiver, node: IdentityNode, message: rhea.Message): Promise<Outcome> {
    if (this.#identityOf.get(link) === undefined) return refuse('The token of this link expired', 'amqp:unauthorized-access');
    if (node.kind === 'twin') return this.#twinRequest(link, node.identity, message);
    if (node.kind === 'methods') return this.#methodResponse(node.identity, message);
    return refuse('No messages accepted on this link', 'amqp:not-allowed');
  }

  async #twinRequest(link: Receiver, identity: Identity, m: rhea.Message): Promise<Outcome> {
    const channel = this.#channelOf.get(link);
    if (!channel) return refuse('No twin channel', 'amqp:not-allowed');
    let correlationId: string | undefined;
    try {
      correlationId = idText(m.correlation_id, 'correlation id');
    } catch (e) {
      return refuse(e instanceof Error ? e.message : 'Malformed correlation id');
    }
    if (correlationId === undefined) return refuse('A twin request needs a correlation id');
    const annotations = (m.message_annotations ?? {}) as Record<string, unknown>;
    const operation = annotations['operation'];
    const resource = annotations['resource'];
    const reply = (status: number, body: string | undefined, version?: number): Outcome => {
      this.#sendTwin(channel, {
        // Echoed as the request carried it (the SDK matches replies by the very value it sent).
        correlation_id: m.correlation_id,
        message_annotations: { status: rhea.types.wrap_int(status), ...(version === undefined ? {} : { version: rhea.types.wrap_long(version) }) },
        body: body === undefined ? undefined : (rhea.message.data_section(Buffer.from(body, 'utf8')) as unknown),
      });
      return ACCEPT;
    };
    try {
      if (operation === 'GET' && (resource === undefined || resource === null || resource === '')) {
        const t = await this.#d.twins.get(identity.deviceId, identity.moduleId);
        return reply(200, JSON.stringify({ desired: t.desired, reported: t.reported }));
      }
      if (operation === 'PATCH' && resource === REPORTED_RESOURCE) {
        let patch: unknown;
        try {
          patch = parseJsonBytes(bodyBytes(m.body)); // strict UTF-8, null-prototype objects
        } catch {
          return reply(400, JSON.stringify({ errorCode: 400004, message: 'Malformed JSON' }));
        }
        const version = await this.#d.twins.patchReported(identity.deviceId, identity.moduleId, patch);
        this.#d.metrics.twinUpdates.inc({ side: 'reported' });
        return reply(204, undefined, version);
      }
      if ((operation === 'PUT' || operation === 'DELETE') && resource === DESIRED_RESOURCE) {
        this.#subscribe(channel, operation === 'PUT');
        return reply(200, undefined);
      }
      return reply(400, JSON.stringify({ errorCode: 400000, message: 'Unknown twin operation or resource' }));
    } catch (e) {
      if (!isHubError(e)) this.#d.log.error({ err: e }, 'AMQP twin request failed');
      const r = twinErrorReply(e);
      return reply(r.status, r.body);
    }
  }

  #subscribe(channel: TwinChannel, on: boolean): void {
    channel.desired = on;
    const key = identityKey(channel.identity);
    const set = this.#subscribed.get(key) ?? new Set<TwinChannel>();
    if (on) set.add(channel);
    else set.delete(channel);
    if (set.size > 0) this.#subscribed.set(key, set);
    else this.#subscribed.delete(key);
  }

  #sendTwin(channel: TwinChannel, message: rhea.Message): void {
    const s = channel.reply;
    if (s?.sendable() && channel.pending.length === 0) {
      s.send(message);
      return;
    }
    if (channel.pending.length >= MAX_PENDING_REPLIES) {
      // The identity keeps asking without taking its answers: its requests are not worth holding.
      this.#d.log.info({ identity: identityName(channel.identity) }, 'Dropped a twin reply: the reply link gives no credit');
      return;
    }
    channel.pending.push(message);
  }

  /** A hub link got credit: waiting twin replies go. */
  onSendable(sender: Sender): void {
    const channel = this.#channelOf.get(sender);
    if (channel?.reply !== sender) return;
    while (sender.sendable() && channel.pending.length > 0) {
      const next = channel.pending.shift();
      if (next) sender.send(next);
    }
  }

  /** A desired-properties change (bus event, any replica's): pushed on every subscribed twin channel of the identity. */
  onDesired(identity: Identity, patch: JsonObject): void {
    const channels = this.#subscribed.get(identityKey(identity));
    if (!channels) return;
    const version = typeof patch['$version'] === 'number' ? patch['$version'] : 0;
    const body = Buffer.from(JSON.stringify({ ...userProperties(patch), $version: version }), 'utf8');
    // No correlation id: the SDK takes a body without one as a desired-properties patch.
    for (const channel of channels) this.#sendTwin(channel, { body: rhea.message.data_section(body) as unknown });
  }

  /**
   * Sends a method request to an identity connected here over AMQP; false when it has no method link here (or the
   * link gives no credit). The method name travels as `IoThub-methodname`, the request id as the correlation id.
   */
  sendMethodRequest(deviceId: string, moduleId: string, methodName: string, rid: string, payload: Buffer): boolean {
    const link = this.#methodLinks.get(identityKey({ deviceId, moduleId }));
    if (!link?.is_open() || !link.sendable()) return false;
    link.send({ correlation_id: rid, application_properties: { [METHOD_NAME_PROPERTY]: methodName }, body: rhea.message.data_section(payload) as unknown });
    return true;
  }

  #methodResponse(identity: Identity, m: rhea.Message): Outcome {
    let rid: string | undefined;
    try {
      rid = idText(m.correlation_id, 'correlation id');
    } catch (e) {
      return refuse(e instanceof Error ? e.message : 'Malformed correlation id');
    }
    const app = (m.application_properties ?? {}) as Record<string, unknown>;
    const status = app[METHOD_STATUS_PROPERTY];
    if (rid === undefined) return refuse('A method response needs the request id as its correlation id');
    if (typeof status !== 'number' || !Number.isInteger(status) || status < 0 || status > 999) return refuse(`${METHOD_STATUS_PROPERTY} must be an integer status`);
    let body: Buffer;
    try {
      body = bodyBytes(m.body);
    } catch (e) {
      return refuse(e instanceof Error ? e.message : 'Malformed body');
    }
    // Matched by request id *and* by this identity: a response to another identity's call finds nothing.
    this.#d.methods.handleResponse(identity.deviceId, identity.moduleId, rid, status, body);
    return ACCEPT;
  }

  /** Settles `delivery` as `outcome` says. */
  static settle(delivery: Delivery, outcome: Outcome): void {
    if (outcome.accept) delivery.accept();
    else delivery.reject({ condition: outcome.condition, description: outcome.description });
  }
}
