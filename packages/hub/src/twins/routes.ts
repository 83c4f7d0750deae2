import type { FastifyInstance, FastifyRequest } from 'fastify';
import { Right } from '../auth/policies.js';
import type { Params } from '../http.js';
import { authorize, ifMatch, sendJson } from '../http.js';
import { etagOf } from '../registry/ids.js';
import type { HubServices } from '../services.js';
import type { TwinRecord } from '../storage/store.js';

/** Device and module twin routes (`/twins/{d}[/modules/{m}]`). */
export function twinRoutes(app: FastifyInstance, s: HubServices): void {
  const ids = (req: FastifyRequest): { deviceId: string; moduleId: string } => {
    const p = req.params as Params;
    return { deviceId: p['deviceId'] ?? '', moduleId: p['moduleId'] ?? '' };
  };
  const reply = async (t: TwinRecord): Promise<{ body: unknown; etag: string }> => ({
    body: s.twins.toJson(t, await s.store.getDevice(t.deviceId), await s.store.getPresence(t.deviceId, t.moduleId)),
    etag: etagOf(t.version),
  });

  for (const path of ['/twins/:deviceId', '/twins/:deviceId/modules/:moduleId']) {
    app.get(path, async (req, res) => {
      const { deviceId, moduleId } = ids(req);
      await authorize(s, req, Right.ServiceConnect);
      const r = await reply(await s.twins.get(deviceId, moduleId));
      return sendJson(res, 200, r.body, r.etag);
    });
    app.patch(path, async (req, res) => {
      const { deviceId, moduleId } = ids(req);
      await authorize(s, req, Right.ServiceConnect);
      const t = await s.twins.patch(deviceId, moduleId, req.body, ifMatch(req));
      s.metrics.twinUpdates.inc({ side: 'service' });
      const r = await reply(t);
      return sendJson(res, 200, r.body, r.etag);
    });
    app.put(path, async (req, res) => {
      const { deviceId, moduleId } = ids(req);
      await authorize(s, req, Right.ServiceConnect);
      const t = await s.twins.replace(deviceId, moduleId, req.body, ifMatch(req));
      s.metrics.twinUpdates.inc({ side: 'service' });
      const r = await reply(t);
      return sendJson(res, 200, r.body, r.etag);
    });
  }
}
