import type { FastifyInstance } from 'fastify';
import { Right } from '../auth/policies.js';
import { hubError } from '../errors.js';
import type { Params } from '../http.js';
import { authorize, sendJson } from '../http.js';
import type { HubServices } from '../services.js';

/** Cloud-to-device REST: purge a device's queue (`DELETE /devices/{id}/commands`, IoT Hub's PurgeMessageQueueResult). */
export function c2dRoutes(app: FastifyInstance, s: HubServices): void {
  app.delete('/devices/:deviceId/commands', async (req, reply) => {
    const deviceId = (req.params as Params)['deviceId'] ?? '';
    await authorize(s, req, Right.ServiceConnect);
    if (!(await s.store.getDevice(deviceId))) throw hubError('CLOUD_ERR_DEVICE_NOT_FOUND', `Device ${deviceId} not found`);
    const totalMessagesPurged = await s.c2d.purge(deviceId);
    return sendJson(reply, 200, { deviceId, moduleId: null, totalMessagesPurged });
  });
}
