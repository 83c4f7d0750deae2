import type { FastifyInstance } from 'fastify';
import { Right } from '../auth/policies.js';
import { hubError } from '../errors.js';
import type { Params, Query } from '../http.js';
import { sendJson } from '../http.js';
import type { HubServices } from '../services.js';
import { EDGE_HUB_MODULE } from '../mqtt/credentials.js';
import { scopePage, scopeTarget } from './device-scope.js';

const MAX_PAGE = 1000;
const DEFAULT_PAGE = 100;

/**
 * IoT Hub's device-scope API, which an edge hub calls to authenticate its children locally
 * [iotedge-protocols.md §8.4; IE DeviceScopeApiClient.cs]. Authorized by the `$edgeHub` module's own SAS token or a
 * policy with RegistryRead. Replies carry the identities with their keys:
 * `{"devices":[Device…],"modules":[Module…],"continuationLink":"/devices/…?continuationToken=…"|null}`.
 */
export function scopeRoutes(app: FastifyInstance, s: HubServices): void {
  const edgeOf = async (deviceId: string, moduleId: string, header: string | undefined): Promise<NonNullable<Awaited<ReturnType<typeof s.store.getDevice>>>> => {
    if (moduleId !== EDGE_HUB_MODULE) throw hubError('CLOUD_ERR_NOT_FOUND', 'The device scope is served to the $edgeHub module only');
    await s.auth.authorizeModule(header, Right.RegistryRead, deviceId, moduleId);
    const edge = await s.store.getDevice(deviceId);
    if (!edge) throw hubError('CLOUD_ERR_DEVICE_NOT_FOUND', `Device ${deviceId} not found`);
    if (!edge.iotEdge) throw hubError('CLOUD_ERR_BAD_REQUEST', `Device ${deviceId} is not an edge device`);
    return edge;
  };
  const body = async (r: { devices: readonly Parameters<typeof s.registry.deviceJson>[0][]; modules: readonly Parameters<typeof s.registry.moduleJson>[0][] }) => ({
    devices: await Promise.all(r.devices.map(async (d) => s.registry.deviceJson(d, await s.store.getPresence(d.deviceId, '')))),
    modules: await Promise.all(r.modules.map(async (m) => s.registry.moduleJson(m, await s.store.getPresence(m.deviceId, m.moduleId)))),
  });

  app.get('/devices/:deviceId/modules/:moduleId/devicesAndModulesInDeviceScope', async (req, reply) => {
    const { deviceId = '', moduleId = '' } = req.params as Params;
    const edge = await edgeOf(deviceId, moduleId, req.headers.authorization);
    const q = req.query as Query;
    const requested = Number(q['deviceCount'] ?? DEFAULT_PAGE);
    const count = Number.isInteger(requested) && requested > 0 ? Math.min(requested, MAX_PAGE) : DEFAULT_PAGE;
    const token = q['continuationToken'];
    const after = token === undefined || token === '' ? undefined : Buffer.from(token, 'base64url').toString('utf8');
    const page = await scopePage(s.store, edge, count, after);
    const continuationLink =
      page.next === undefined
        ? null
        : `/devices/${encodeURIComponent(deviceId)}/modules/${encodeURIComponent(moduleId)}/devicesAndModulesInDeviceScope?deviceCount=${count}&continuationToken=${Buffer.from(page.next).toString('base64url')}&api-version=${encodeURIComponent(q['api-version'] ?? '2018-08-30-preview')}`;
    return sendJson(reply, 200, { ...(await body(page)), continuationLink });
  });

  app.get('/devices/:deviceId/modules/:moduleId/deviceAndModuleInDeviceScope', async (req, reply) => {
    const { deviceId = '', moduleId = '' } = req.params as Params;
    const edge = await edgeOf(deviceId, moduleId, req.headers.authorization);
    const q = req.query as Query;
    const target = q['targetDeviceId'] ?? '';
    if (target === '') throw hubError('CLOUD_ERR_BAD_REQUEST', 'targetDeviceId is required');
    const r = await scopeTarget(s.store, edge, target, q['targetModuleId'] ?? '');
    return sendJson(reply, 200, { ...(await body(r)), continuationLink: null });
  });
}
