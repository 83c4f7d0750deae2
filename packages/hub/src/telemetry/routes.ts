import type { FastifyInstance } from 'fastify';
import { Right } from '../auth/policies.js';
import { hubError } from '../errors.js';
import type { Params, Query } from '../http.js';
import { authorize, objectBody, sendJson } from '../http.js';
import type { HubServices } from '../services.js';
import { telemetryJson } from './telemetry.js';

const CONSUMER = /^[A-Za-z0-9_.-]{1,64}$/;

function int(v: string | undefined, dflt: number, field: string): number {
  if (v === undefined || v === '') return dflt;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0) throw hubError('CLOUD_ERR_BAD_REQUEST', `${field} must be a non-negative integer`);
  return n;
}

/**
 * Kedge's telemetry API (IoT Hub serves telemetry over its Event Hubs endpoint instead):
 * - `GET /kedge/telemetry?from&limit&deviceId&moduleId`: stored messages, oldest first, with `next`.
 * - `GET /kedge/telemetry/stream?from&deviceId&moduleId&consumer`: Server-Sent Events, `id:` = offset, so
 *   `Last-Event-ID` resumes; with `consumer` the stream starts after that consumer's committed offset and commits
 *   as it sends (at-least-once: a reader that crashes mid-batch sees the batch again).
 * - `GET|PUT /kedge/consumers/{name}`: read or set a consumer's committed offset.
 */
export function telemetryRoutes(app: FastifyInstance, s: HubServices): void {
  app.get('/kedge/telemetry', async (req, reply) => {
    await authorize(s, req, Right.ServiceConnect);
    const q = req.query as Query;
    const limit = Math.min(int(q['limit'], 100, 'limit'), 1000);
    const msgs = await s.telemetry.read({
      from: int(q['from'], 0, 'from'),
      limit,
      ...(q['deviceId'] ? { deviceId: q['deviceId'] } : {}),
      ...(q['moduleId'] !== undefined ? { moduleId: q['moduleId'] } : {}),
    });
    const last = msgs[msgs.length - 1];
    const bounds = await s.telemetry.bounds();
    return sendJson(reply, 200, { messages: msgs.map(telemetryJson), next: last ? last.offset + 1 : int(q['from'], 0, 'from'), first: bounds.first, last: bounds.last });
  });

  app.get('/kedge/consumers/:name', async (req, reply) => {
    await authorize(s, req, Right.ServiceConnect);
    const { name = '' } = req.params as Params;
    const offset = await s.store.getConsumerOffset(name);
    if (offset === undefined) throw hubError('CLOUD_ERR_NOT_FOUND', `Consumer ${name} not found`);
    return sendJson(reply, 200, { name, offset });
  });

  app.put('/kedge/consumers/:name', async (req, reply) => {
    await authorize(s, req, Right.ServiceConnect);
    const { name = '' } = req.params as Params;
    if (!CONSUMER.test(name)) throw hubError('CLOUD_ERR_INVALID_ID', 'Consumer names are 1-64 letters, digits, "_", "." or "-"');
    const body = objectBody(req);
    const offset = body['offset'];
    if (typeof offset !== 'number' || !Number.isInteger(offset) || offset < 0) throw hubError('CLOUD_ERR_BAD_REQUEST', 'offset must be a non-negative integer');
    await s.store.setConsumerOffset(name, offset);
    return sendJson(reply, 200, { name, offset });
  });

  app.get('/kedge/telemetry/stream', async (req, reply) => {
    await authorize(s, req, Right.ServiceConnect);
    const q = req.query as Query;
    const consumer = q['consumer'];
    if (consumer !== undefined && !CONSUMER.test(consumer)) throw hubError('CLOUD_ERR_INVALID_ID', 'Invalid consumer name');
    const lastEventId = req.headers['last-event-id'];
    let from: number;
    if (typeof lastEventId === 'string' && lastEventId !== '') from = int(lastEventId, 0, 'Last-Event-ID') + 1;
    else if (q['from'] !== undefined && q['from'] !== 'end') from = int(q['from'], 0, 'from');
    else if (consumer !== undefined && (await s.store.getConsumerOffset(consumer)) !== undefined) from = ((await s.store.getConsumerOffset(consumer)) ?? 0) + 1;
    else from = q['from'] === 'end' ? (await s.telemetry.bounds()).last + 1 : 0;
    const filter = { ...(q['deviceId'] ? { deviceId: q['deviceId'] } : {}), ...(q['moduleId'] !== undefined ? { moduleId: q['moduleId'] } : {}) };

    reply.hijack();
    const res = reply.raw;
    res.writeHead(200, { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-cache', connection: 'keep-alive' });
    res.write(': kedge telemetry stream\n\n');
    let closed = false;
    let wake: (() => void) | undefined;
    const off = s.telemetry.onAppended(() => wake?.());
    const heartbeat = setInterval(() => res.write(': keep-alive\n\n'), 15_000);
    req.raw.on('close', () => {
      closed = true;
      wake?.();
    });
    try {
      while (!closed && s.isReady()) {
        const batch = await s.telemetry.read({ from, limit: 500, ...filter });
        if (batch.length === 0) {
          // Wait for an append (any replica) or a periodic re-check, whichever comes first.
          await new Promise<void>((resolve) => {
            const t = setTimeout(resolve, 1000);
            wake = () => {
              clearTimeout(t);
              resolve();
            };
          });
          wake = undefined;
          continue;
        }
        for (const m of batch) res.write(`id: ${m.offset}\nevent: message\ndata: ${JSON.stringify(telemetryJson(m))}\n\n`);
        from = (batch[batch.length - 1]?.offset ?? from) + 1;
        if (consumer !== undefined) await s.store.setConsumerOffset(consumer, from - 1);
      }
    } catch (e) {
      s.log.warn({ err: e }, 'Telemetry stream failed');
    } finally {
      off();
      clearInterval(heartbeat);
      res.end();
    }
  });
}
