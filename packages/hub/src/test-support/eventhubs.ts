/**
 * Clients of the Event Hubs-compatible endpoint for tests: Microsoft's `@azure/event-hubs` (over WebSockets, the
 * one transport whose TLS options its public API takes), `azure-eventhub` for Python (over AMQP/TLS, trusting the
 * CA by `connection_verify`) and raw rhea links for what the SDKs never send (bad tokens, filters, credit).
 */
import { writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { EventHubConsumerClient } from '@azure/event-hubs';
import type { EventPosition, LastEnqueuedEventProperties, PartitionContext, ReceivedEventData } from '@azure/event-hubs';
import rhea from 'rhea';
import type { AmqpError, Connection, EventContext, Receiver } from 'rhea';
import WebSocket from 'ws';
import { runPython } from '@kedge/testing';
import { createServiceBusSasToken } from './eventhubs-sas.js';
import { eventually } from './eventually.js';

/** `@azure/event-hubs`' consumer over WebSockets (`wss://{host}:443/$servicebus/websocket`) trusting `ca`. */
export function consumerFor(connectionString: string, ca: string, group = '$Default', opts: { endpoint?: string } = {}): EventHubConsumerClient {
  class TrustingWebSocket extends WebSocket {
    constructor(url: string, protocols: string[], options: Record<string, unknown>) {
      super(url, protocols, { ...options, ca });
    }
  }
  return new EventHubConsumerClient(group, connectionString, {
    webSocketOptions: { webSocket: TrustingWebSocket as never },
    retryOptions: { maxRetries: 1, timeoutInMs: 10_000 },
    ...(opts.endpoint ? { customEndpointAddress: opts.endpoint } : {}),
  });
}

/** An event as the tests compare it. */
export interface SeenEvent {
  readonly partition: string;
  readonly event: ReceivedEventData;
  /** With `trackLastEnqueued`: the partition's last enqueued event as the batch's context reported it. */
  readonly lastEnqueued?: LastEnqueuedEventProperties;
}

/**
 * Subscribes `client` to one partition (or all) from `position` and resolves once `count` events arrived (all of
 * them, in arrival order); rejects on the SDK's first error.
 */
export async function receive(client: EventHubConsumerClient, count: number, position: EventPosition, partition?: string, opts: { trackLastEnqueued?: boolean } = {}): Promise<SeenEvent[]> {
  const seen: SeenEvent[] = [];
  let sub: { close(): Promise<void> } | undefined;
  try {
    return await new Promise<SeenEvent[]>((resolve, reject) => {
      const handlers = {
        processEvents: (events: ReceivedEventData[], ctx: PartitionContext): Promise<void> => {
          for (const event of events) seen.push({ partition: ctx.partitionId, event, ...(opts.trackLastEnqueued ? { lastEnqueued: { ...ctx.lastEnqueuedEventProperties } } : {}) });
          if (seen.length >= count) resolve(seen);
          return Promise.resolve();
        },
        processError: (e: Error): Promise<void> => {
          reject(e);
          return Promise.resolve();
        },
      };
      const options = { startPosition: position, maxBatchSize: 50, maxWaitTimeInSeconds: 1, trackLastEnqueuedEventProperties: opts.trackLastEnqueued === true };
      sub = partition === undefined ? client.subscribe(handlers, options) : client.subscribe(partition, handlers, options);
    });
  } finally {
    await sub?.close();
  }
}

/**
 * Resolves what `live` (a receiver started at the end) gets while `send(i)` sends message i, 0, 1, 2, …, until it
 * has one: the receiver's attach may land after the first sends, so sending goes on until it sees one.
 */
export async function receiveWhileSending(live: Promise<SeenEvent[]>, send: (i: number) => Promise<unknown>, what: string): Promise<SeenEvent[]> {
  let i = 0;
  let stop = false;
  const sending = eventually(
    async () => {
      if (stop) return true;
      await send(i++);
      return false;
    },
    { timeoutMs: 30_000, what },
  );
  const got = await live.finally(() => {
    stop = true;
  });
  await sending;
  return got;
}

/** The Python consumer's result: the hub's and the partition's properties, and the events it read. */
export interface PythonRead {
  readonly hub: { readonly name: string; readonly partition_ids: string[] };
  readonly partition: Record<string, unknown>;
  readonly events: { partition: string; offset: string; sequence_number: number; body: string; properties: Record<string, string>; system: Record<string, unknown> }[];
}

const PYTHON_READER = String.raw`
import json, os, threading
from azure.eventhub import EventHubConsumerClient

def text(v):
    return v.decode("utf-8") if isinstance(v, bytes) else v

client = EventHubConsumerClient.from_connection_string(
    os.environ["EH_CS"], consumer_group=os.environ["EH_GROUP"], connection_verify=os.environ["EH_CA"], retry_total=1)
partition = os.environ["EH_PARTITION"]
want = int(os.environ["EH_COUNT"])
start = os.environ["EH_START"]
out = {"hub": None, "partition": None, "events": []}
with client:
    props = client.get_eventhub_properties()
    out["hub"] = {"name": props["eventhub_name"], "partition_ids": props["partition_ids"]}
    p = client.get_partition_properties(partition)
    out["partition"] = {k: (v.isoformat() if hasattr(v, "isoformat") else v) for k, v in p.items()}
    done = threading.Event()
    def on_event(ctx, ev):
        out["events"].append({
            "partition": ctx.partition_id, "offset": ev.offset, "sequence_number": ev.sequence_number,
            "body": ev.body_as_str(), "properties": {text(k): text(v) for k, v in (ev.properties or {}).items()},
            "system": {text(k): (v if isinstance(v, (int, float)) else text(v)) for k, v in ev.system_properties.items()},
        })
        if len(out["events"]) >= want:
            done.set()
    threading.Thread(target=lambda: client.receive(on_event=on_event, partition_id=partition, starting_position=start), daemon=True).start()
    done.wait(float(os.environ["EH_TIMEOUT"]))
print(json.dumps(out))
`;

/** Reads `count` events of `partition` from `start` (`"-1"`, an offset) with Python's `azure-eventhub`. */
export async function readWithPython(opts: { connectionString: string; ca: string; group: string; partition: string; count: number; start: string }): Promise<PythonRead> {
  const caFile = join(tmpdir(), `kedge-eh-ca-${process.pid}-${Math.random().toString(36).slice(2)}.pem`);
  writeFileSync(caFile, opts.ca);
  const r = await runPython(PYTHON_READER, {
    env: { EH_CS: opts.connectionString, EH_CA: caFile, EH_GROUP: opts.group, EH_PARTITION: opts.partition, EH_COUNT: String(opts.count), EH_START: opts.start, EH_TIMEOUT: '40' },
    timeoutMs: 90_000,
  });
  if (r.code !== 0) throw new Error(`azure-eventhub reader failed (${String(r.code)}):\n${r.stderr.slice(-4000)}`);
  return JSON.parse(r.stdout.trim().split('\n').pop() ?? '{}') as PythonRead;
}

/** A raw rhea connection to the hub's AMQP/TLS port. */
export async function rawConnect(host: string, ca: string): Promise<Connection> {
  const conn = rhea.create_container().connect({ host, port: 5671, transport: 'tls', ca, hostname: host, reconnect: false });
  for (const ev of ['error', 'connection_error', 'disconnected', 'receiver_error', 'sender_error']) conn.on(ev, () => undefined);
  await new Promise<void>((resolve, reject) => {
    conn.once('connection_open', () => resolve());
    conn.once('disconnected', (ctx: EventContext) => reject(ctx.error ?? new Error('disconnected')));
  });
  return conn;
}

/** CBS put-token on `conn`; resolves the reply's status code. */
export function putToken(conn: Connection, audience: string, token: string): Promise<number> {
  const id = `pt-${Math.random()}`;
  return new Promise<number>((resolve) => {
    const receiver = conn.open_receiver({ source: { address: '$cbs' } });
    receiver.on('message', (ctx: EventContext) => {
      if (ctx.message?.correlation_id !== id) return;
      resolve(Number((ctx.message.application_properties as Record<string, unknown> | undefined)?.['status-code']));
    });
    receiver.once('receiver_open', () => {
      const sender = conn.open_sender({ target: { address: '$cbs' } });
      sender.once('sendable', () => {
        sender.send({ to: '$cbs', reply_to: 'cbs', message_id: id, application_properties: { operation: 'put-token', type: 'servicebus.windows.net:sastoken', name: audience }, body: token });
      });
    });
  });
}

/**
 * A request/response client on one pair of links (`$cbs` put-token, `$management` READ): `request` resolves the
 * reply's status code and body. Unlike {@link putToken}, it opens its links once.
 */
export async function requestClient(conn: Connection, node: '$cbs' | '$management'): Promise<{ request(props: Record<string, unknown>, body?: unknown): Promise<{ status: number; body: unknown }> }> {
  const waiting = new Map<string, (r: { status: number; body: unknown }) => void>();
  const replyTo = `${node}-replies-${Math.random().toString(36).slice(2)}`;
  const receiver = conn.open_receiver({ source: { address: node }, target: { address: replyTo } });
  receiver.on('message', (ctx: EventContext) => {
    const id = String(ctx.message?.correlation_id);
    const status = Number((ctx.message?.application_properties as Record<string, unknown> | undefined)?.['status-code']);
    waiting.get(id)?.({ status, body: ctx.message?.body });
    waiting.delete(id);
  });
  const sender = conn.open_sender({ target: { address: node } });
  await new Promise<void>((resolve) => sender.once('sendable', () => resolve()));
  let n = 0;
  return {
    request: (props, body) =>
      new Promise((resolve) => {
        const id = `r-${n++}`;
        waiting.set(id, resolve);
        sender.send({ to: node, reply_to: replyTo, message_id: id, application_properties: props, body: body ?? null });
      }),
  };
}

/** A Service Bus-signed token for `audience` with a policy's key. */
export function policyToken(audience: string, policy: { name: string; key: string }, ttlSeconds = 3600): string {
  return createServiceBusSasToken({ audience, keyName: policy.name, key: policy.key, expirySeconds: Math.floor(Date.now() / 1000) + ttlSeconds });
}

/** A receiving link the test drives by hand: what arrived, how it ended. */
export interface RawReceiver {
  readonly link: Receiver;
  readonly messages: rhea.Message[];
  /** `open` once attached and kept, `closed:<condition>` once the hub detached it. */
  readonly state: () => string;
}

/** Opens a receiver from `address` with `filter` text (undefined: none), `credit` given up front, optional owner level. */
export function rawReceiver(conn: Connection, address: string, opts: { filter?: string; credit?: number; epoch?: number } = {}): RawReceiver {
  const messages: rhea.Message[] = [];
  let state = 'attaching';
  const link = conn.open_receiver({
    source: {
      address,
      ...(opts.filter === undefined ? {} : { filter: { 'apache.org:selector-filter:string': rhea.types.wrap_described(opts.filter, 0x468c00000004) } }),
    },
    credit_window: 0,
    autoaccept: true,
    ...(opts.epoch === undefined ? {} : { properties: { 'com.microsoft:epoch': rhea.types.wrap_long(opts.epoch) } }),
  });
  link.on('message', (ctx: EventContext) => {
    if (ctx.message) messages.push(ctx.message);
  });
  link.once('receiver_open', () => {
    if (state === 'attaching') state = 'open';
    if (opts.credit) link.add_credit(opts.credit);
  });
  link.once('receiver_close', (ctx: EventContext) => {
    state = `closed:${(ctx.receiver?.error as AmqpError | undefined)?.condition ?? ''}`;
  });
  return { link, messages, state: () => state };
}
