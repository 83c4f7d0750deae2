import type { FastifyInstance } from 'fastify';
import { Right } from '../auth/policies.js';
import { compileDeviceQuery, type QueryTwin } from '../deployments/routing-port.js';
import { queryView } from '../deployments/deployments.js';
import { hubError } from '../errors.js';
import type { Params, Query } from '../http.js';
import { authorize, hasIfMatch, ifMatch, objectBody, sendJson } from '../http.js';
import type { HubServices } from '../services.js';
import type { TwinRecord } from '../storage/store.js';
import { isObject } from '@kedge/protocol';
import { etagOf } from './ids.js';

/** Device and module identity routes (`/devices…`), statistics and twin queries. */
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

  app.get('/statistics/devices', async (req, reply) => {
    await authorize(s, req, Right.RegistryRead);
    const c = await s.store.countDevices();
    return sendJson(reply, 200, { totalDeviceCount: c.total, enabledDeviceCount: c.enabled, disabledDeviceCount: c.total - c.enabled });
  });

  // Twin queries: `SELECT * FROM devices[.modules] [WHERE …]`, paged with x-ms-max-item-count / x-ms-continuation.
  app.post('/devices/query', async (req, reply) => {
    await authorize(s, req, Right.RegistryRead);
    const body = objectBody(req);
    const text = body['query'];
    if (typeof text !== 'string') throw hubError('CLOUD_ERR_BAD_REQUEST', 'query is required');
    const q = compileDeviceQuery(text);
    if (!q.ok) throw hubError('CLOUD_ERR_BAD_REQUEST', `query: ${q.error.message} (line ${q.error.line}, column ${q.error.column})`);
    const max = Math.min(Math.max(Number(req.headers['x-ms-max-item-count'] ?? 100) || 100, 1), 1000);
    const cont = req.headers['x-ms-continuation'];
    let after = typeof cont === 'string' && cont !== '' ? Buffer.from(cont, 'base64').toString('utf8') : undefined;
    const out: unknown[] = [];
    let next: string | undefined;
    while (out.length < max) {
      const page = await s.store.listDeviceTwins({ limit: 200, ...(after === undefined ? {} : { after }) });
      if (page.length === 0) break;
      for (const t of page) {
        const device = await s.store.getDevice(t.deviceId);
        const iotEdge = device?.iotEdge ?? false;
        const candidates: TwinRecord[] = q.value.collection === 'devices' ? [t] : await s.store.listModuleTwins(t.deviceId);
        for (const c of candidates) {
          const view: QueryTwin = queryView(c, iotEdge);
          if (q.value(view)) out.push(s.twins.toJson(c, device, await s.store.getPresence(c.deviceId, c.moduleId)));
        }
        after = t.deviceId;
        if (out.length >= max) {
          next = Buffer.from(after).toString('base64');
          break;
        }
      }
    }
    if (next !== undefined) void reply.header('x-ms-continuation', next);
    void reply.header('x-ms-item-type', 'Twin');
    return sendJson(reply, 200, out);
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
