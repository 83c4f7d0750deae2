import type { FastifyReply, FastifyRequest } from 'fastify';
import type { Right } from './auth/policies.js';
import type { Principal } from './auth/service-auth.js';
import { hubError } from './errors.js';
import { parseIfMatch } from './registry/ids.js';
import type { HubServices } from './services.js';
import type { JsonObject } from '@kedge/protocol';
import { isObject } from '@kedge/protocol';

/** Authorizes a request with a policy right (and optionally the device's own token for `deviceScope`). */
export function authorize(s: HubServices, req: FastifyRequest, need: Right, deviceScope?: string): Promise<Principal> {
  return s.auth.authorize(req.headers.authorization, need, deviceScope);
}

/** The `If-Match` precondition as a version; an ETag this hub never issued can only fail. */
export function ifMatch(req: FastifyRequest): number | undefined {
  const h: unknown = req.headers['if-match'];
  const first: unknown = Array.isArray(h) ? h[0] : h;
  return parseIfMatch(typeof first === 'string' ? first : undefined);
}

/** True when the request carries a non-wildcard `If-Match`. */
export const hasIfMatch = (req: FastifyRequest): boolean => req.headers['if-match'] !== undefined;

/** The body as a JSON object or a 400. */
export function objectBody(req: FastifyRequest): JsonObject {
  if (!isObject(req.body)) throw hubError('CLOUD_ERR_BAD_REQUEST', 'Request body must be a JSON object');
  return req.body;
}

/** Sends JSON with an ETag header when the resource has one. */
export function sendJson(reply: FastifyReply, status: number, body: unknown, etag?: string): FastifyReply {
  if (etag !== undefined) void reply.header('etag', `"${etag}"`);
  return reply.status(status).type('application/json; charset=utf-8').send(JSON.stringify(body));
}

export type Params = Record<string, string>;
export type Query = Record<string, string | undefined>;
