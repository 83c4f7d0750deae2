import type { FastifyInstance } from 'fastify';
import { Right } from '../auth/policies.js';
import { hubError } from '../errors.js';
import { authorize, sendJson } from '../http.js';
import type { HubServices } from '../services.js';

/**
 * `GET /kedge/eventhubs` (ServiceConnect): the Event Hubs-compatible endpoint — name, endpoint, partitions,
 * consumer groups — and the connection string of the policy that signed the request (IoT Hub's "built-in endpoints"
 * view; the caller already holds that policy's key, so no other secret is revealed).
 */
export function eventHubsRoutes(app: FastifyInstance, s: HubServices): void {
  app.get('/kedge/eventhubs', async (req, reply) => {
    const principal = await authorize(s, req, Right.ServiceConnect);
    const info = s.eventHubs?.info();
    if (!info) throw hubError('CLOUD_ERR_NOT_FOUND', 'This hub runs no Event Hubs-compatible endpoint');
    const connectionString = principal.kind === 'policy' ? s.eventHubs?.connectionString(principal.name) : undefined;
    return sendJson(reply, 200, { ...info, ...(connectionString ? { connectionString } : {}) });
  });
}
