import rhea from 'rhea';
import type { AmqpError, Connection, Delivery, EventContext, Receiver, Sender } from 'rhea';
import { parseSasToken } from '@kedge/protocol';
import { writeFullPerformatives } from '../amqp/full-performatives.js';
import type { AmqpNodeHook, PutTokenReply } from '../amqp/hook.js';
import { Right, grants } from '../auth/policies.js';
import type { ServiceAuth } from '../auth/service-auth.js';
import type { Logger } from '../log.js';
import type { HubMetrics } from '../metrics.js';
import type { Store, TelemetryRecord } from '../storage/store.js';
import type { Telemetry } from '../telemetry/telemetry.js';
import type { SenderIdentity } from './events.js';
import { eventMessage } from './events.js';
import { serviceBusSignatureValid } from './sas.js';
import type { StartPosition } from './position.js';
import { FilterError, firstSequenceNumber, startPosition } from './position.js';

/** The request/response node of Event Hubs' management operations. */
export const MANAGEMENT_NODE = '$management';
/** The consumer group every Event Hub has. */
export const DEFAULT_CONSUMER_GROUP = '$Default';
/** Events read from the store per query (a link's credit bounds it further). */
const MAX_BATCH = 100;
/** Event Hubs' limit: concurrent readers of one partition in one consumer group. */
const MAX_READERS = 5;
/** Re-check for new events this often even without an append notification (a lost bus message). */
const POLL_MS = 1000;
/** Management requests answered per connection without reply credit before the connection is refused more. */
const MAX_PENDING_REPLIES = 16;
/** Identities whose generation id and credential type are remembered for the annotations, and for how long. */
const IDENTITY_CACHE_SIZE = 10_000;
const IDENTITY_CACHE_MS = 30_000;
const MAX_TIMER_MS = 2 ** 31 - 1;
/** Audiences one connection may hold tokens for (a client needs one per partition at most, or one for the hub). */
const MAX_TOKENS = 256;

/** Dependencies of the Event Hubs-compatible endpoint. */
export interface EventHubsDeps {
  readonly store: Store;
  readonly auth: ServiceAuth;
  readonly telemetry: Telemetry;
  readonly log: Logger;
  readonly metrics: HubMetrics;
  readonly hostNames: readonly string[];
  /** The Event Hub-compatible name (the connection string's `EntityPath`). */
  readonly name: string;
  readonly partitionCount: number;
  /** Consumer groups besides `$Default`. */
  readonly consumerGroups: readonly string[];
  /** When the partitions were created (ms epoch): the hub's `created_at`. */
  readonly createdAt: number;
  readonly nowSeconds?: () => number;
}

/** An accepted put-token: the path under the Event Hub it covers (lower case, `''` = the whole hub), until when. */
interface Grant {
  readonly scope: string;
  readonly expiresAtSeconds: number;
  timer: NodeJS.Timeout | undefined;
  readonly links: Set<Sender | Receiver>;
}

/** One receiver of a partition (the hub's sending link). */
interface Reader {
  readonly conn: Connection;
  readonly link: Sender;
  readonly group: string;
  readonly partition: number;
  readonly epoch: number | undefined;
  /** Asked for the partition's last enqueued event on each delivery (`trackLastEnqueuedEventProperties`). */
  readonly runtimeMetrics: boolean;
  /** The next sequence number to send; undefined until the start position is resolved. */
  next: number | undefined;
  busy: boolean;
  again: boolean;
  /** Deliveries handed to rhea that it has not written yet (it writes them on its next tick, credit permitting). */
  queued: Delivery[];
}

const notFound = (description: string): AmqpError => ({ condition: 'amqp:not-found', description });
const unauthorized = (description: string): AmqpError => ({ condition: 'amqp:unauthorized-access', description });

/** The remote attach of a link as rhea keeps it. */
type RemoteAttach = { source?: { filter?: unknown }; properties?: Record<string, unknown>; desired_capabilities?: unknown };
function remoteAttach(link: Sender | Receiver): RemoteAttach | undefined {
  return (link as unknown as { remote: { attach?: RemoteAttach } }).remote.attach;
}

/** The capability a receiver desires to get the partition's last enqueued event with each delivery. */
const RUNTIME_METRIC = 'com.microsoft:enable-receiver-runtime-metric';

/** True when the attach desires `capability` (one symbol or an array of them). */
function desires(link: Sender | Receiver, capability: string): boolean {
  const c = remoteAttach(link)?.desired_capabilities;
  return c === capability || (Array.isArray(c) && c.includes(capability));
}

/**
 * The credit of a reader's link not yet spent. rhea counts a delivery against the link's credit only when it writes
 * the transfer (on its next tick), and a delivery queued beyond the credit holds up every later one of the session
 * (the CBS replies too): deliveries still queued are subtracted here.
 */
function unspentCredit(r: { readonly link: Sender; queued: Delivery[] }): number {
  const written = (r.link as unknown as { session: { outgoing: { next_pending_delivery: number } } }).session.outgoing.next_pending_delivery;
  // Delivery ids grow in send order: the written ones are at the front.
  let i = 0;
  while (i < r.queued.length && (r.queued[i] as unknown as { id: number }).id < written) i++;
  if (i > 0) r.queued.splice(0, i);
  return (r.link as unknown as { credit: number }).credit - r.queued.length;
}

/** The owner level (`com.microsoft:epoch`) a receiver asked for, if any. */
function epochOf(link: Sender): number | undefined {
  const v = remoteAttach(link)?.properties?.['com.microsoft:epoch'];
  if (typeof v === 'number' && Number.isSafeInteger(v)) return v;
  if (typeof v === 'bigint') return Number(v);
  return undefined;
}

/**
 * IoT Hub's built-in `messages/events` endpoint, as Event Hubs serves it to `EventHubConsumerClient`: receivers on
 * `{name}/ConsumerGroups/{group}/Partitions/{p}` read the hub's stored telemetry of that partition from the
 * position their selector filter asks, then live; `$management` answers READ of the hub and of a partition. It
 * runs on the AMQP endpoint's listener ({@link AmqpNodeHook}): CBS audiences `sb://{host}/{name}…` with a shared
 * access policy token that has ServiceConnect (a device token is refused), links resting on such a token and
 * detached when it expires.
 *
 * Consumer groups keep no server-side state (as on Event Hubs: offsets are the client's). Sequence numbers are
 * the store's (per partition, no holes, stable across restarts and replicas). Owner levels (epochs) and the
 * five-readers limit are enforced per replica.
 */
export class EventHubsEndpoint implements AmqpNodeHook {
  readonly #d: EventHubsDeps;
  readonly #groups: ReadonlySet<string>;
  readonly #grants = new Map<Connection, Map<string, Grant>>();
  readonly #readers = new Map<Sender, Reader>();
  /** Management request links (the hub receives on them) and reply links (it sends on them), per connection. */
  readonly #mgmtRequests = new Set<Receiver>();
  readonly #mgmtReplies = new Map<Connection, Set<Sender>>();
  readonly #pendingReplies = new Map<Connection, rhea.Message[]>();
  readonly #identities = new Map<string, { readonly at: number; readonly identity: SenderIdentity | undefined }>();
  readonly #unsubscribe: () => void;
  readonly #poll: NodeJS.Timeout;
  #closed = false;

  constructor(deps: EventHubsDeps) {
    this.#d = deps;
    // azure-eventhub's pyamqp cannot read truncated performatives (see writeFullPerformatives).
    writeFullPerformatives();
    this.#groups = new Set([DEFAULT_CONSUMER_GROUP, ...deps.consumerGroups].map((g) => g.toLowerCase()));
    this.#unsubscribe = deps.telemetry.onAppended(() => this.#wakeAll());
    this.#poll = setInterval(() => this.#wakeAll(), POLL_MS);
    this.#poll.unref();
  }

  /** The Event Hubs connection string of a shared access policy (`Endpoint=sb://{host}/;…;EntityPath={name}`). */
  static connectionString(opts: { host: string; amqpPort: number | undefined; name: string; policy: string; key: string }): string {
    const port = opts.amqpPort === undefined || opts.amqpPort === 5671 ? '' : `:${opts.amqpPort}`;
    const host = opts.host.includes(':') ? `[${opts.host}]` : opts.host;
    return `Endpoint=sb://${host}${port}/;SharedAccessKeyName=${opts.policy};SharedAccessKey=${opts.key};EntityPath=${opts.name}`;
  }

  #now(): number {
    return this.#d.nowSeconds?.() ?? Math.floor(Date.now() / 1000);
  }

  /**
   * The scope of an audience under this Event Hub (`''` for the hub itself, else the lower-case rest of the path,
   * `/consumergroups/$default/partitions/0`), or undefined when it is not one of its audiences.
   */
  #scopeOf(audience: string): string | undefined {
    const m = /^sb:\/\/([^/]+)\/([^/]+)(\/.*)?$/i.exec(audience.replace(/\/+$/, ''));
    if (!m) return undefined;
    const host = (m[1] ?? '').replace(/:\d+$/, '').replace(/^\[(.*)\]$/, '$1').toLowerCase();
    if (!this.#d.hostNames.some((h) => h.toLowerCase() === host)) return undefined;
    if ((m[2] ?? '').toLowerCase() !== this.#d.name.toLowerCase()) return undefined;
    return (m[3] ?? '').toLowerCase();
  }

  /** The partition a partition id names (`0`…`count-1`), if it is one. */
  #partition(id: string): number | undefined {
    const n = Number(id);
    return /^\d{1,4}$/.test(id) && n < this.#d.partitionCount ? n : undefined;
  }

  /** Entries held for connections, links and tokens (0 once no client is connected): what must not leak. */
  get size(): number {
    let n = this.#readers.size + this.#mgmtRequests.size + this.#pendingReplies.size;
    for (const g of this.#grants.values()) n += g.size;
    for (const r of this.#mgmtReplies.values()) n += r.size;
    return n;
  }

  #gauge(): void {
    this.#d.metrics.eventHubsState.set(this.size);
  }

  ownsAudience(audience: string): boolean {
    return this.#scopeOf(audience) !== undefined;
  }

  putToken(conn: Connection, audience: string, token: string): Promise<PutTokenReply> {
    return Promise.resolve(this.#putToken(conn, audience, token));
  }

  #putToken(conn: Connection, audience: string, token: string): PutTokenReply {
    const scope = this.#scopeOf(audience);
    if (scope === undefined) return { status: 404, description: 'Unknown audience' };
    const reason = this.#verify(token, scope);
    if (reason !== undefined) {
      this.#d.log.info({ audience: audience.slice(0, 300), reason: reason.description }, 'Refused Event Hubs token');
      return reason;
    }
    const se = parseSasToken(token);
    if (!se.ok) return { status: 401, description: 'Malformed SAS token' };
    let grants = this.#grants.get(conn);
    if (!grants) this.#grants.set(conn, (grants = new Map<string, Grant>()));
    const previous = grants.get(scope);
    // One token per audience; a connection naming ever more audiences is not a client, it is filling memory.
    if (!previous && grants.size >= MAX_TOKENS) return { status: 403, description: `At most ${MAX_TOKENS} audiences per connection` };
    if (previous?.timer) clearTimeout(previous.timer);
    const grant: Grant = { scope, expiresAtSeconds: se.value.se, timer: undefined, links: previous?.links ?? new Set() };
    grants.set(scope, grant);
    this.#armExpiry(conn, grant);
    this.#gauge();
    return { status: 200, description: 'OK' };
  }

  /**
   * Checks a token for `scope`: a shared access policy's (`skn`) with ServiceConnect, not expired, signed for an
   * audience of this Event Hub that covers `scope`. Undefined when it is good, else the CBS refusal.
   */
  #verify(token: string, scope: string): PutTokenReply | undefined {
    const parsed = parseSasToken(token);
    if (!parsed.ok) return { status: 401, description: 'Malformed SAS token' };
    const t = parsed.value;
    // No skew in the token's favour: a token past `se` authorizes nothing.
    if (t.se <= this.#now()) return { status: 401, description: 'Token expired' };
    if (t.skn === undefined) return { status: 401, description: 'The Event Hubs endpoint needs a shared access policy token (a device token cannot read it)' };
    const policy = this.#d.auth.policy(t.skn);
    if (!policy) return { status: 401, description: 'Unknown shared access policy' };
    const tokenScope = this.#scopeOf(t.audience);
    if (tokenScope === undefined || !(scope === tokenScope || scope.startsWith(`${tokenScope}/`))) return { status: 401, description: 'The token is not for this audience' };
    if (!serviceBusSignatureValid(t, [policy.primaryKey, policy.secondaryKey])) return { status: 401, description: 'Token refused: bad signature' };
    if (!grants(policy.rights, Right.ServiceConnect)) return { status: 403, description: `Policy ${policy.name} lacks the ServiceConnect right` };
    return undefined;
  }

  /** The live grant of `conn` covering `scope`, if any. */
  #grantFor(conn: Connection, scope: string): Grant | undefined {
    for (const g of this.#grants.get(conn)?.values() ?? []) {
      if (g.expiresAtSeconds > this.#now() && (g.scope === '' || scope === g.scope || scope.startsWith(`${g.scope}/`))) return g;
    }
    return undefined;
  }

  #armExpiry(conn: Connection, grant: Grant): void {
    const ms = grant.expiresAtSeconds * 1000 - Date.now();
    grant.timer = setTimeout(
      () => {
        if (grant.expiresAtSeconds * 1000 > Date.now()) {
          this.#armExpiry(conn, grant);
          return;
        }
        const grants = this.#grants.get(conn);
        if (grants?.get(grant.scope) !== grant) return;
        grants.delete(grant.scope);
        this.#gauge();
        for (const link of grant.links) {
          // A link another live token covers stays.
          if (this.#grantFor(conn, this.#linkScope(link)) !== undefined) continue;
          this.#forget(link);
          link.close(unauthorized('The token of this link expired'));
        }
      },
      Math.max(0, Math.min(ms, MAX_TIMER_MS)),
    );
    grant.timer.unref();
  }

  #linkScope(link: Sender | Receiver): string {
    const r = this.#readers.get(link as Sender);
    return r ? `/consumergroups/${r.group}/partitions/${r.partition}` : `/${MANAGEMENT_NODE}`;
  }

  attach(conn: Connection, link: Sender | Receiver, path: string, authorized: () => void): boolean {
    const p = path.replace(/^\/+/, '');
    if (p.toLowerCase() === MANAGEMENT_NODE) return this.#attachManagement(conn, link, authorized);
    const m = /^([^/]+)\/ConsumerGroups\/([^/]+)\/Partitions\/([^/]+)\/?$/i.exec(p);
    if (!m) return false;
    if (link.is_receiver()) {
      link.close({ condition: 'amqp:not-implemented', description: 'This endpoint only serves receivers (IoT Hub telemetry is sent by devices)' });
      return true;
    }
    const sender = link as Sender;
    if ((m[1] ?? '').toLowerCase() !== this.#d.name.toLowerCase()) {
      sender.close(notFound(`No Event Hub ${(m[1] ?? '').slice(0, 100)}`));
      return true;
    }
    const group = (m[2] ?? '').toLowerCase();
    const partitionText = m[3] ?? '';
    const partition = this.#partition(partitionText);
    const scope = `/consumergroups/${group}/partitions/${partitionText.toLowerCase()}`;
    const grant = this.#grantFor(conn, scope);
    if (!grant) {
      sender.close(unauthorized('Reading needs a shared access policy token with ServiceConnect for this audience (put-token on $cbs first)'));
      return true;
    }
    if (!this.#groups.has(group)) {
      sender.close(notFound(`No consumer group ${(m[2] ?? '').slice(0, 100)}`));
      return true;
    }
    if (partition === undefined) {
      sender.close(notFound(`No partition ${partitionText.slice(0, 20)} (partitions 0-${this.#d.partitionCount - 1})`));
      return true;
    }
    let position: StartPosition;
    try {
      position = startPosition(remoteAttach(sender)?.source?.filter);
    } catch (e) {
      if (!(e instanceof FilterError)) throw e;
      sender.close({ condition: 'amqp:invalid-field', description: e.message });
      return true;
    }
    const epoch = epochOf(sender);
    const refusal = this.#admitOwner(group, partition, epoch);
    if (refusal) {
      sender.close(refusal);
      return true;
    }
    grant.links.add(sender);
    authorized();
    const runtimeMetrics = desires(sender, RUNTIME_METRIC);
    const reader: Reader = { conn, link: sender, group, partition, epoch, runtimeMetrics, next: undefined, busy: false, again: false, queued: [] };
    this.#readers.set(sender, reader);
    this.#gauge();
    this.#resolveStart(reader, position).then(
      (next) => {
        reader.next = next;
        this.#pump(reader);
      },
      (err: unknown) => {
        this.#d.log.warn({ err, partition }, 'Failed to position an Event Hubs receiver');
        this.#forget(sender);
        sender.close({ condition: 'amqp:internal-error', description: 'The start position could not be read' });
      },
    );
    return true;
  }

  /**
   * Event Hubs' owner levels on one partition of one group: a receiver with an owner level disconnects those with a
   * lower one or none; one below an existing owner level, or without one while an owner holds the partition, is
   * refused; at most {@link MAX_READERS} readers without one.
   */
  #admitOwner(group: string, partition: number, epoch: number | undefined): AmqpError | undefined {
    const peers = [...this.#readers.values()].filter((r) => r.group === group && r.partition === partition);
    const owner = Math.max(-1, ...peers.map((r) => r.epoch ?? -1));
    if (epoch === undefined) {
      if (owner >= 0) return { condition: 'amqp:link:stolen', description: `A receiver with owner level ${owner} holds this partition` };
      if (peers.length >= MAX_READERS) return { condition: 'amqp:resource-limit-exceeded', description: `At most ${MAX_READERS} readers per partition and consumer group` };
      return undefined;
    }
    if (epoch < owner) return { condition: 'amqp:link:stolen', description: `A receiver with the higher owner level ${owner} holds this partition` };
    for (const r of peers) {
      if ((r.epoch ?? -1) < epoch) {
        this.#forget(r.link);
        r.link.close({ condition: 'amqp:link:stolen', description: `A receiver with the higher owner level ${epoch} took this partition` });
      }
    }
    return undefined;
  }

  async #resolveStart(r: Reader, p: StartPosition): Promise<number> {
    if (p.kind === 'sequence') return firstSequenceNumber(p);
    const info = await this.#d.store.getPartition(r.partition);
    const end = (info?.lastSequenceNumber ?? -1) + 1;
    if (p.kind === 'latest') return end;
    return (await this.#d.store.partitionSeqAfter(r.partition, p.inclusive ? p.afterMs - 1 : p.afterMs)) ?? end;
  }

  #wakeAll(): void {
    for (const r of this.#readers.values()) if (!r.busy && r.link.sendable() && unspentCredit(r) > 0) this.#pump(r);
  }

  /** Sends stored events from `r.next` while the link has credit, in store batches of at most {@link MAX_BATCH}. */
  #pump(r: Reader): void {
    if (r.next === undefined || this.#closed || !this.#readers.has(r.link)) return;
    if (r.busy) {
      r.again = true;
      return;
    }
    if (!r.link.sendable() || unspentCredit(r) <= 0) return;
    r.busy = true;
    r.again = false;
    this.#sendBatch(r).then(
      (more) => {
        r.busy = false;
        if (more || r.again) this.#pump(r);
      },
      (err: unknown) => {
        r.busy = false;
        this.#d.log.warn({ err, partition: r.partition }, 'Failed to read an Event Hubs partition');
      },
    );
  }

  /** One batch within the link's unspent credit; true when it was full and credit is left (read again at once). */
  async #sendBatch(r: Reader): Promise<boolean> {
    const from = r.next ?? 0;
    const limit = Math.min(MAX_BATCH, unspentCredit(r));
    if (limit <= 0) return false;
    const batch = await this.#d.store.readPartition({ partition: r.partition, fromSeq: from, limit });
    const runtime = r.runtimeMetrics && batch.length > 0 ? await this.#runtimeInfo(r.partition) : undefined;
    for (const m of batch) {
      if (m.sequenceNumber === undefined) return false;
      const identity = this.#cachedIdentity(m) ?? (await this.#identity(m));
      if (!this.#readers.has(r.link) || !r.link.sendable() || unspentCredit(r) <= 0) return false;
      const event = eventMessage({ ...m, sequenceNumber: m.sequenceNumber }, identity ?? undefined);
      r.queued.push(r.link.send(runtime ? { ...event, delivery_annotations: runtime } : event));
      this.#d.metrics.eventHubsEvents.inc();
      r.next = m.sequenceNumber + 1;
    }
    return batch.length === limit && unspentCredit(r) > 0;
  }

  /** The partition's last enqueued event, as delivery annotations [Event Hubs receiver runtime metrics]. */
  async #runtimeInfo(partition: number): Promise<Record<string, unknown>> {
    const info = await this.#d.store.getPartition(partition);
    const last = info?.lastSequenceNumber ?? -1;
    return {
      last_enqueued_sequence_number: rhea.types.wrap_long(last),
      last_enqueued_offset: String(last),
      last_enqueued_time_utc: new Date(info?.lastEnqueuedTime ?? 0),
      runtime_info_retrieval_time_utc: new Date(),
    };
  }

  /** The cached identity of `m`'s sender, `null` when known to be gone, undefined when it must be looked up. */
  #cachedIdentity(m: TelemetryRecord): SenderIdentity | null | undefined {
    const hit = this.#identities.get(`${m.deviceId}/${m.moduleId}`);
    return hit && Date.now() - hit.at < IDENTITY_CACHE_MS ? (hit.identity ?? null) : undefined;
  }

  /** The sending identity's generation id and credential type (cached: IoT Hub stamps them at ingest). */
  async #identity(m: TelemetryRecord): Promise<SenderIdentity | undefined> {
    const key = `${m.deviceId}/${m.moduleId}`;
    const hit = this.#identities.get(key);
    if (hit && Date.now() - hit.at < IDENTITY_CACHE_MS) return hit.identity;
    const record = m.moduleId ? await this.#d.store.getModule(m.deviceId, m.moduleId) : await this.#d.store.getDevice(m.deviceId);
    const identity = record ? { generationId: record.generationId, authType: record.auth.type } : undefined;
    if (this.#identities.size >= IDENTITY_CACHE_SIZE) this.#identities.clear();
    this.#identities.set(key, { at: Date.now(), identity });
    return identity;
  }

  #attachManagement(conn: Connection, link: Sender | Receiver, authorized: () => void): boolean {
    const grant = this.#grantFor(conn, `/${MANAGEMENT_NODE}`);
    if (!grant) {
      link.close(unauthorized('The management node needs a shared access policy token with ServiceConnect (put-token on $cbs first)'));
      return true;
    }
    grant.links.add(link);
    authorized();
    // Requests get credit from the connection's window (the AMQP endpoint's `credit_window`).
    if (link.is_receiver()) this.#mgmtRequests.add(link as Receiver);
    else {
      let replies = this.#mgmtReplies.get(conn);
      if (!replies) this.#mgmtReplies.set(conn, (replies = new Set()));
      replies.add(link as Sender);
      this.#flushReplies(conn);
    }
    this.#gauge();
    return true;
  }

  message(ctx: EventContext): boolean {
    const link = ctx.receiver;
    if (!link || !this.#mgmtRequests.has(link)) return false;
    const delivery = ctx.delivery;
    const m = ctx.message;
    if (!delivery || !m) return true;
    delivery.accept();
    const pending = this.#pendingReplies.get(ctx.connection) ?? [];
    if (pending.length >= MAX_PENDING_REPLIES) {
      link.close({ condition: 'amqp:resource-limit-exceeded', description: 'Too many management requests without reply credit' });
      return true;
    }
    this.#manage(ctx.connection, m).then(
      ({ status, description, body }) => {
        const reply: rhea.Message = {
          ...(typeof m.reply_to === 'string' ? { to: m.reply_to } : {}),
          ...(m.message_id === undefined ? {} : { correlation_id: m.message_id }),
          application_properties: { 'status-code': rhea.types.wrap_int(status), 'status-description': description },
          body: body ?? null,
        };
        this.#pendingReplies.set(ctx.connection, [...(this.#pendingReplies.get(ctx.connection) ?? []), reply]);
        this.#flushReplies(ctx.connection);
      },
      (err: unknown) => this.#d.log.warn({ err }, 'Event Hubs management request failed'),
    );
    return true;
  }

  /** Sends waiting replies, each on the reply link its request named (`reply_to`), else on any. */
  #flushReplies(conn: Connection): void {
    const pending = this.#pendingReplies.get(conn);
    const links = [...(this.#mgmtReplies.get(conn) ?? [])];
    if (!pending || links.length === 0) return;
    while (pending.length > 0) {
      const next = pending[0];
      const target = links.find((l) => (l as unknown as { remote: { attach?: { target?: { address?: unknown } } } }).remote.attach?.target?.address === next?.to) ?? links[0];
      if (!next || !target?.sendable()) return;
      pending.shift();
      target.send(next);
    }
  }

  /** A `$management` request [Event Hubs: READ of `com.microsoft:eventhub` / `com.microsoft:partition`]. */
  async #manage(conn: Connection, m: rhea.Message): Promise<{ status: number; description: string; body?: unknown }> {
    const props = (m.application_properties ?? {}) as Record<string, unknown>;
    const text = (v: unknown): string | undefined => (typeof v === 'string' ? v : Buffer.isBuffer(v) ? v.toString('utf8') : undefined);
    const token = text(props['security_token']);
    // The request's own token (what the SDKs send), else the connection's grant for `$management`.
    if (token !== undefined) {
      const refused = token.length > 4096 ? { status: 401, description: 'Malformed SAS token' } : this.#verify(token, `/${MANAGEMENT_NODE}`);
      if (refused) return refused;
    } else if (!this.#grantFor(conn, `/${MANAGEMENT_NODE}`)) return { status: 401, description: 'Unauthorized' };
    if (text(props['operation']) !== 'READ') return { status: 400, description: 'Only the READ operation is supported' };
    const name = text(props['name']);
    if (name?.toLowerCase() !== this.#d.name.toLowerCase()) return { status: 404, description: `No Event Hub ${(name ?? '').slice(0, 100)}` };
    const type = text(props['type']);
    if (type === 'com.microsoft:eventhub') {
      return {
        status: 200,
        description: 'OK',
        body: {
          name: this.#d.name,
          type: 'com.microsoft:eventhub',
          created_at: new Date(this.#d.createdAt),
          partition_count: rhea.types.wrap_int(this.#d.partitionCount),
          partition_ids: rhea.types.wrap_array(
            Array.from({ length: this.#d.partitionCount }, (_, i) => String(i)),
            0xa1,
            undefined,
          ),
        },
      };
    }
    if (type === 'com.microsoft:partition') {
      const partitionText = text(props['partition']) ?? '';
      const partition = this.#partition(partitionText);
      if (partition === undefined) return { status: 404, description: `No partition ${partitionText.slice(0, 20)}` };
      const info = await this.#d.store.getPartition(partition);
      const last = info?.lastSequenceNumber ?? -1;
      const begin = info?.beginSequenceNumber ?? -1;
      return {
        status: 200,
        description: 'OK',
        body: {
          name: this.#d.name,
          type: 'com.microsoft:partition',
          partition: String(partition),
          // Empty after retention: the next one to come; never written: -1 (as Event Hubs reports a new partition).
          begin_sequence_number: rhea.types.wrap_long(begin !== -1 ? begin : last === -1 ? -1 : last + 1),
          last_enqueued_sequence_number: rhea.types.wrap_long(last),
          last_enqueued_offset: String(last),
          last_enqueued_time_utc: new Date(info?.lastEnqueuedTime ?? 0),
          is_partition_empty: begin === -1,
        },
      };
    }
    return { status: 400, description: 'The type must be com.microsoft:eventhub or com.microsoft:partition' };
  }

  sendable(sender: Sender): void {
    const r = this.#readers.get(sender);
    if (r) this.#pump(r);
    else if (this.#mgmtReplies.get(sender.connection)?.has(sender)) this.#flushReplies(sender.connection);
  }

  /** Drops a link from every table (it is closing or closed). */
  #forget(link: Sender | Receiver): void {
    this.#readers.delete(link as Sender);
    this.#mgmtRequests.delete(link as Receiver);
    const conn = link.connection;
    this.#mgmtReplies.get(conn)?.delete(link as Sender);
    for (const g of this.#grants.get(conn)?.values() ?? []) g.links.delete(link);
    this.#gauge();
  }

  detached(link: Sender | Receiver): void {
    this.#forget(link);
  }

  disconnected(conn: Connection): void {
    for (const g of this.#grants.get(conn)?.values() ?? []) {
      if (g.timer) clearTimeout(g.timer);
      for (const l of g.links) this.#forget(l);
    }
    for (const [link, r] of this.#readers) if (r.conn === conn) this.#readers.delete(link);
    this.#grants.delete(conn);
    this.#mgmtReplies.delete(conn);
    this.#pendingReplies.delete(conn);
    this.#gauge();
  }

  /** Stops the live readers (the AMQP endpoint closes the connections). */
  close(): void {
    this.#closed = true;
    this.#unsubscribe();
    clearInterval(this.#poll);
    for (const grants of this.#grants.values()) for (const g of grants.values()) if (g.timer) clearTimeout(g.timer);
  }
}
