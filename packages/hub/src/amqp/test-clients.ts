import rhea from 'rhea';
import type { AmqpError, Connection, EventContext } from 'rhea';
import { expect } from 'vitest';
import { createSasToken } from '@kedge/protocol';
import type { RunningHub } from '../hub.js';

/**
 * Raw rhea clients for the AMQP endpoint's tests: what the SDKs do underneath, with every refusal visible (the
 * SDKs retry and wrap them).
 */

type Hub = RunningHub & { host: string };
const now = (): number => Math.floor(Date.now() / 1000);

/** A raw rhea client connection to the hub's AMQP/TLS port (what the SDKs use underneath), opened. */
export async function amqpConnect(hub: Hub): Promise<Connection> {
  const conn = rhea.create_container().connect({ host: hub.host, port: 5671, transport: 'tls', ca: hub.ca, hostname: hub.host, reconnect: false });
  conn.on('error', () => undefined);
  conn.on('connection_error', () => undefined);
  conn.on('disconnected', () => undefined);
  await new Promise<void>((resolve, reject) => {
    conn.once('connection_open', () => resolve());
    conn.once('disconnected', (ctx: EventContext) => reject(ctx.error ?? new Error('disconnected')));
  });
  return conn;
}

/** CBS put-token on `conn`; resolves the reply's `status-code`. */
export function putToken(conn: Connection, audience: string, token: string, type = 'servicebus.windows.net:sastoken'): Promise<number> {
  const id = `pt-${Math.random()}`;
  return new Promise<number>((resolve) => {
    const receiver = conn.open_receiver({ source: { address: '$cbs' } });
    receiver.on('message', (ctx: EventContext) => {
      if (ctx.message?.correlation_id !== id) return;
      const props = (ctx.message.application_properties ?? {}) as Record<string, unknown>;
      resolve(Number(props['status-code']));
    });
    receiver.once('receiver_open', () => {
      const sender = conn.open_sender({ target: { address: '$cbs' } });
      sender.once('sendable', () => {
        sender.send({ to: '$cbs', reply_to: 'cbs', message_id: id, application_properties: { operation: 'put-token', type, name: audience }, body: token });
      });
    });
  });
}

/**
 * Opens a sending link to `address` and sends one message once it may: `accepted`, `rejected:<condition>` or,
 * when the hub detaches the link, `closed:<condition>`.
 */
export function sendOn(conn: Connection, address: string, message: rhea.Message): Promise<string> {
  return new Promise<string>((resolve) => {
    const sender = conn.open_sender({ target: { address } });
    let sent = false;
    sender.on('sender_error', () => undefined);
    sender.once('sender_close', (ctx: EventContext) => resolve(`closed:${(ctx.sender?.error as AmqpError | undefined)?.condition ?? ''}`));
    sender.on('sendable', () => {
      if (sent) return;
      sent = true;
      sender.send(message);
    });
    sender.once('accepted', () => resolve('accepted'));
    sender.once('rejected', (ctx: EventContext) => resolve(`rejected:${(ctx.delivery?.remote_state as { error?: AmqpError } | undefined)?.error?.condition ?? ''}`));
  });
}

/** Opens a receiving link from `address`: `open` once the hub attached it and kept it, or `closed:<condition>`. */
export function receiveFrom(conn: Connection, address: string): Promise<string> {
  return new Promise<string>((resolve) => {
    const receiver = conn.open_receiver({ source: { address } });
    receiver.on('receiver_error', () => undefined);
    receiver.once('receiver_close', (ctx: EventContext) => resolve(`closed:${(ctx.receiver?.error as AmqpError | undefined)?.condition ?? ''}`));
    // A refused attach is followed by its detach in the same read; the open is settled a turn later.
    receiver.once('receiver_open', () => setImmediate(() => resolve(receiver.is_closed() || !receiver.is_remote_open() ? 'closed:' : 'open')));
  });
}

/** The text of a received body (a data section, binary or string). */
export function bodyText(body: unknown): string {
  const content = (body as { content?: unknown } | undefined)?.content ?? body;
  return Buffer.isBuffer(content) ? content.toString('utf8') : String(content);
}

/** A connection holding the accepted token of `deviceId[/moduleId]` (signed with `key`), valid until `se`. */
export async function identityConnection(hub: Hub, identity: string, key: string, se = now() + 3600): Promise<Connection> {
  const conn = await amqpConnect(hub);
  const audience = `${hub.host}/devices/${identity.replace('/', '/modules/')}`;
  expect(await putToken(conn, audience, createSasToken({ audience, key, expirySeconds: se }))).toBe(200);
  return conn;
}

/** Opens a receiving link from `address`; resolves the condition it is detached with. */
export function detachOf(conn: Connection, address: string): Promise<string> {
  return new Promise<string>((resolve) => {
    const r = conn.open_receiver({ source: { address } });
    r.on('receiver_error', () => undefined);
    r.once('receiver_close', (ctx: EventContext) => resolve((ctx.receiver?.error as AmqpError | undefined)?.condition ?? ''));
  });
}

/** Opens a receiving link from `address`; resolves, once attached, the list its messages are collected in. */
export function collect(conn: Connection, address: string): Promise<rhea.Message[]> {
  const got: rhea.Message[] = [];
  return new Promise<rhea.Message[]>((resolve) => {
    const r = conn.open_receiver({ source: { address } });
    r.on('message', (ctx: EventContext) => {
      if (ctx.message) got.push(ctx.message);
    });
    r.once('receiver_open', () => resolve(got));
  });
}
