import Fastify, { LogController } from 'fastify';
import { AmqpEndpoint } from './amqp/endpoint.js';
import { c2dRoutes } from './c2d/routes.js';
import type { FastifyError, FastifyInstance } from 'fastify';
import { deploymentRoutes } from './deployments/routes.js';
import { eventHubsRoutes } from './eventhubs/routes.js';
import type { HubError} from './errors.js';
import { errorBody, hubError, isHubError } from './errors.js';
import { methodRoutes } from './methods/routes.js';
import { queryRoutes } from './query/routes.js';
import { testQueryRoutes } from './query/test-queries.js';
import { assertDeviceId, assertModuleId, MAX_ID_LENGTH } from './registry/ids.js';
import { Registry as IdentityRegistry } from './registry/registry.js';
import { registryRoutes } from './registry/routes.js';
import { scopeRoutes } from './scope/routes.js';
import type { HubServices } from './services.js';
import { telemetryRoutes } from './telemetry/routes.js';
import { twinRoutes } from './twins/routes.js';
import { parseJsonBytes } from '@kedge/protocol';

/** Options of {@link build}. */
export interface BuildOptions {
  readonly services: HubServices;
  /** TLS for the listener; omitted in `inject()` tests and for the plain ops listener. */
  readonly https?: { readonly key: string; readonly cert: string };
  /** Serve only health and metrics (the plain-HTTP ops listener). */
  readonly opsOnly?: boolean;
  /** Largest accepted request body. @default 1 MiB */
  readonly bodyLimit?: number;
}

/** Maps anything thrown in a route to a {@link HubError} (fastify's own parse/limit errors included). */
function classify(e: unknown): HubError {
  if (isHubError(e)) return e;
  const fe = e as Partial<FastifyError>;
  if (fe.code === 'FST_ERR_CTP_BODY_TOO_LARGE') return hubError('CLOUD_ERR_PAYLOAD_TOO_LARGE', 'Request body too large');
  if (fe.code === 'FST_ERR_CTP_INVALID_MEDIA_TYPE') return hubError('CLOUD_ERR_BAD_REQUEST', 'Unsupported content type; send application/json');
  if (typeof fe.statusCode === 'number' && fe.statusCode >= 400 && fe.statusCode < 500) return hubError('CLOUD_ERR_BAD_REQUEST', fe.message ?? 'Bad request');
  return hubError('CLOUD_ERR_INTERNAL', 'Internal error', e);
}

/**
 * Builds the hub's HTTP app (IoT Hub service REST + Kedge extensions + health + metrics) without listening, so
 * tests can `inject()` (fastify `docs/Guides/Testing.md`). Every error leaves as IoT Hub's error body.
 */
export function build(opts: BuildOptions): FastifyInstance {
  const s = opts.services;
  const app = Fastify({
    loggerInstance: s.log.child({ component: 'http' }),
    logController: new LogController({ disableRequestLogging: true }),
    bodyLimit: opts.bodyLimit ?? 1024 * 1024,
    routerOptions: {
      // azure-iothub's registry.list() calls `GET /devices/`.
      ignoreTrailingSlash: true,
      // Path parameters arrive percent-encoded: a 128-character id may take three times as many characters.
      maxParamLength: 3 * MAX_ID_LENGTH,
    },
    ...(opts.https ? { https: { key: opts.https.key, cert: opts.https.cert, minVersion: 'TLSv1.2' as const } } : {}),
  }) as unknown as FastifyInstance;

  // JSON with IoT Hub semantics: an empty body is "no body" (azure-iothub sends a JSON content type on DELETE).
  // Objects are parsed with a null prototype: clients choose the keys (`__proto__`, `constructor`, …).
  app.removeContentTypeParser('application/json');
  app.addContentTypeParser('application/json', { parseAs: 'buffer' }, (_req, body, done) => {
    const bytes = typeof body === 'string' ? Buffer.from(body, 'utf8') : body;
    if (/^[\t\n\r ]*$/.test(bytes.toString('latin1'))) {
      done(null, undefined);
      return;
    }
    try {
      done(null, parseJsonBytes(bytes));
    } catch (e) {
      // TypeError: not UTF-8 (a replacement character would silently change the data); SyntaxError: not JSON.
      const why = e instanceof SyntaxError ? e.message : 'not valid UTF-8';
      done(hubError('CLOUD_ERR_MALFORMED_JSON', `Malformed JSON body: ${why}`), undefined);
    }
  });

  // Device and module ids in the path follow the same rules on every route (one place, before authorization).
  app.addHook('onRequest', (req, _reply, done) => {
    const p = req.params as Partial<Record<string, string>>;
    try {
      if (p['deviceId'] !== undefined) assertDeviceId(p['deviceId']);
      if (p['moduleId'] !== undefined) assertModuleId(p['moduleId']);
    } catch (e) {
      done(e as Error);
      return;
    }
    done();
  });

  app.setErrorHandler((e, req, reply) => {
    const he = classify(e);
    // Only an unexpected failure is an error (with its stack); a method timeout or a shutdown is an expected
    // degradation: a warning with its code, no stack.
    if (he.code === 'CLOUD_ERR_INTERNAL') req.log.error({ err: e, url: req.url, method: req.method }, 'Request failed');
    else if (he.status >= 500) req.log.warn({ code: he.code, url: req.url, method: req.method, reason: he.message }, 'Request failed');
    else req.log.debug({ code: he.code, url: req.url }, 'Request refused');
    void reply
      .status(he.status)
      .header('iothub-errorcode', he.iotHubCode)
      .type('application/json; charset=utf-8')
      .send(JSON.stringify(errorBody(he, IdentityRegistry.trackingId())));
  });
  app.setNotFoundHandler((req, reply) => {
    const he = hubError('CLOUD_ERR_NOT_FOUND', `No route for ${req.method} ${req.url.split('?')[0] ?? ''}`);
    void reply.status(404).type('application/json; charset=utf-8').send(JSON.stringify(errorBody(he, IdentityRegistry.trackingId())));
  });
  app.addHook('onResponse', (_req, reply, done) => {
    s.metrics.httpRequests.inc({ status: `${Math.floor(reply.statusCode / 100)}xx` });
    done();
  });

  app.get('/health/live', async (_req, reply) => reply.send({ status: 'ok' }));
  app.get('/health/ready', async (_req, reply) => {
    if (!s.isReady()) return reply.status(503).send({ status: 'shutting-down' });
    try {
      await s.store.ping();
      return await reply.send({ status: 'ok' });
    } catch {
      return reply.status(503).send({ status: 'database-unavailable' });
    }
  });
  app.get('/metrics', async (_req, reply) => reply.type(s.metrics.registry.contentType).send(await s.metrics.registry.metrics()));
  if (opts.opsOnly === true) return app;

  registryRoutes(app, s);
  queryRoutes(app, s);
  testQueryRoutes(app, s);
  scopeRoutes(app, s);
  twinRoutes(app, s);
  methodRoutes(app, s);
  deploymentRoutes(app, s);
  telemetryRoutes(app, s);
  c2dRoutes(app, s);
  eventHubsRoutes(app, s);

  const { gateway, amqp } = s;
  if (gateway || amqp) {
    app.server.on('upgrade', (req, socket, head) => {
      const path = (req.url ?? '').split('?')[0];
      // Event Hubs clients (`EventHubConsumerClient` over WebSockets) dial `/$servicebus/websocket`: AMQP only.
      if (path === '/$servicebus/websocket' && amqp && AmqpEndpoint.wantsAmqp(req)) amqp.handleUpgrade(req, socket, head);
      else if (path !== '/$iothub/websocket') socket.destroy();
      // One path, two protocols: the WebSocket subprotocol (`AMQPWSB10` or `mqtt`) chooses.
      else if (amqp && AmqpEndpoint.wantsAmqp(req)) amqp.handleUpgrade(req, socket, head);
      else if (gateway) gateway.handleUpgrade(req, socket, head);
      else socket.destroy();
    });
  }
  return app;
}
