import type { FastifyInstance } from 'fastify';
import { Right } from '../auth/policies.js';
import { hubError } from '../errors.js';
import type { Params } from '../http.js';
import { authorize, hasIfMatch, ifMatch, sendJson } from '../http.js';
import { etagOf } from '../registry/ids.js';
import type { HubServices } from '../services.js';

/** Single-device deployment and automatic deployment (configuration) routes. */
export function deploymentRoutes(app: FastifyInstance, s: HubServices): void {
  app.post('/devices/:deviceId/applyConfigurationContent', async (req, reply) => {
    const { deviceId = '' } = req.params as Params;
    await authorize(s, req, Right.RegistryWrite);
    await s.deployments.applyContent(deviceId, req.body);
    return reply.status(204).send();
  });

  app.get('/configurations', async (req, reply) => {
    await authorize(s, req, Right.RegistryRead);
    const all = await s.store.listConfigurations();
    return sendJson(reply, 200, await Promise.all(all.map((c) => s.deployments.configurationJson(c))));
  });

  app.get('/configurations/:id', async (req, reply) => {
    const { id = '' } = req.params as Params;
    await authorize(s, req, Right.RegistryRead);
    const c = await s.store.getConfiguration(id);
    if (!c) throw hubError('CLOUD_ERR_CONFIGURATION_NOT_FOUND', `Configuration ${id} not found`);
    return sendJson(reply, 200, await s.deployments.configurationJson(c), etagOf(c.etagVersion));
  });

  app.put('/configurations/:id', async (req, reply) => {
    const { id = '' } = req.params as Params;
    await authorize(s, req, Right.RegistryWrite);
    const c = hasIfMatch(req) ? await s.deployments.updateConfiguration(id, req.body, ifMatch(req)) : await s.deployments.createConfiguration(id, req.body);
    return sendJson(reply, 200, await s.deployments.configurationJson(c), etagOf(c.etagVersion));
  });

  app.delete('/configurations/:id', async (req, reply) => {
    const { id = '' } = req.params as Params;
    await authorize(s, req, Right.RegistryWrite);
    await s.deployments.deleteConfiguration(id, ifMatch(req));
    return reply.status(204).send();
  });
}
