import type { FastifyInstance } from 'fastify';
import { Right } from '../auth/policies.js';
import { hubError } from '../errors.js';
import type { Params, Query } from '../http.js';
import { authorize, hasIfMatch, ifMatch, objectBody, sendJson } from '../http.js';
import type { HubServices } from '../services.js';
import { isObject } from '@kedge/protocol';
import { etagOf } from './ids.js';

/** Device and module identity routes (`/devices…`); queries and statistics are in `query/routes.ts`. */
export function registryRoutes(app: FastifyInstance, s: HubServices): void {
  app.get('/devices', async (req, reply) => {
    await authorize(s, req, Right.RegistryRead);
    const q = req.query as Query;
    const top = Math.min(Math.max(Number(q['top'] ?? 1000) || 1000, 1), 1000);
    const devices = await s.store.listDevices({ limit: top });
    const out = await Promise.all(devices.map(async (d) => s.registry.deviceJson(d, await s.store.getPresence(d.deviceId, ''))));
    return sendJson(reply, 200, out);
  });

  app.get('/devices/:deviceId', async (req, reply) => {
    const { deviceId = '' } = req.params as Params;
    await authorize(s, req, Right.RegistryRead);
    const d = await s.store.getDevice(deviceId);
    if (!d) throw hubError('CLOUD_ERR_DEVICE_NOT_FOUND', `Device ${deviceId} not found`);
    return sendJson(reply, 200, s.registry.deviceJson(d, await s.store.getPresence(deviceId, '')), etagOf(d.etagVersion));
  });

  app.put('/devices/:deviceId', async (req, reply) => {
    const { deviceId = '' } = req.params as Params;
    await authorize(s, req, Right.RegistryWrite);
    const body = objectBody(req);
    // azure-iothub: create = PUT without If-Match, update = PUT with If-Match (`*` or an ETag).
    const d = hasIfMatch(req) ? await s.registry.updateDevice(deviceId, body, ifMatch(req)) : await s.registry.createDevice(deviceId, body);
    s.deployments.enqueue(deviceId);
    return sendJson(reply, 200, s.registry.deviceJson(d, await s.store.getPresence(deviceId, '')), etagOf(d.etagVersion));
  });

  app.delete('/devices/:deviceId', async (req, reply) => {
    const { deviceId = '' } = req.params as Params;
    await authorize(s, req, Right.RegistryWrite);
    await s.store.deleteDevice(deviceId, ifMatch(req));
    return reply.status(204).send();
  });

  app.get('/devices/:deviceId/modules', async (req, reply) => {
    const { deviceId = '' } = req.params as Params;
    await authorize(s, req, Right.RegistryRead, deviceId);
    await s.registry.requireDevice(deviceId);
    const mods = await s.store.listModules(deviceId);
    const out = await Promise.all(mods.map(async (m) => s.registry.moduleJson(m, await s.store.getPresence(deviceId, m.moduleId))));
    return sendJson(reply, 200, out);
  });

  app.get('/devices/:deviceId/modules/:moduleId', async (req, reply) => {
    const { deviceId = '', moduleId = '' } = req.params as Params;
    await authorize(s, req, Right.RegistryRead, deviceId);
    const m = await s.store.getModule(deviceId, moduleId);
    if (!m) throw hubError('CLOUD_ERR_MODULE_NOT_FOUND', `Module ${moduleId} not found on device ${deviceId}`);
    return sendJson(reply, 200, s.registry.moduleJson(m, await s.store.getPresence(deviceId, moduleId)), etagOf(m.etagVersion));
  });

  app.put('/devices/:deviceId/modules/:moduleId', async (req, reply) => {
    const { deviceId = '', moduleId = '' } = req.params as Params;
    await authorize(s, req, Right.RegistryWrite, deviceId);
    const body = objectBody(req);
    const m = hasIfMatch(req) ? await s.registry.updateModule(deviceId, moduleId, body, ifMatch(req)) : await s.registry.createModule(deviceId, moduleId, body);
    return sendJson(reply, 200, s.registry.moduleJson(m, await s.store.getPresence(deviceId, moduleId)), etagOf(m.etagVersion));
  });

  app.delete('/devices/:deviceId/modules/:moduleId', async (req, reply) => {
    const { deviceId = '', moduleId = '' } = req.params as Params;
    await authorize(s, req, Right.RegistryWrite, deviceId);
    await s.store.deleteModule(deviceId, moduleId, ifMatch(req));
    return reply.status(204).send();
  });

  // Bulk registry operations (`Registry.addDevices/updateDevices/removeDevices`).
  app.post('/devices', async (req, reply) => {
    await authorize(s, req, Right.RegistryWrite);
    if (!Array.isArray(req.body)) throw hubError('CLOUD_ERR_BAD_REQUEST', 'Bulk registry body must be an array');
    const errors: unknown[] = [];
    for (const item of req.body as unknown[]) {
      if (!isObject(item) || typeof item['id'] !== 'string') {
        errors.push({ deviceId: null, errorCode: 'ArgumentInvalid', errorStatus: 'Each entry needs an id' });
        continue;
      }
      const id = item['id'];
      try {
        const mode = (typeof item['importMode'] === 'string' ? item['importMode'] : 'create').toLowerCase();
        if (mode === 'create') await s.registry.createDevice(id, { ...item, deviceId: id });
        else if (mode === 'update' || mode === 'updateifmatchetag') await s.registry.updateDevice(id, item, undefined);
        else if (mode === 'delete' || mode === 'deleteifmatchetag') await s.store.deleteDevice(id, undefined);
        else throw hubError('CLOUD_ERR_BAD_REQUEST', `Unknown importMode '${mode}'`);
      } catch (e) {
        if (!(e instanceof Error && 'iotHubCode' in e)) throw e;
        errors.push({ deviceId: id, errorCode: (e as { iotHubCode: string }).iotHubCode, errorStatus: e.message });
      }
    }
    return sendJson(reply, errors.length === 0 ? 200 : 400, { isSuccessful: errors.length === 0, errors, warnings: [] });
  });
}
