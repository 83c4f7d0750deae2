import type { FastifyInstance } from 'fastify';
import { Right } from '../auth/policies.js';
import type { Params } from '../http.js';
import { authorize, sendJson } from '../http.js';
import type { HubServices } from '../services.js';
import { parseMethodCall } from './methods.js';

/** Direct method routes (`POST /twins/{d}[/modules/{m}]/methods`). */
export function methodRoutes(app: FastifyInstance, s: HubServices): void {
  for (const path of ['/twins/:deviceId/methods', '/twins/:deviceId/modules/:moduleId/methods']) {
    app.post(path, async (req, reply) => {
      const p = req.params as Params;
      await authorize(s, req, Right.ServiceConnect);
      const call = parseMethodCall(req.body);
      const result = await s.methods.invoke(p['deviceId'] ?? '', p['moduleId'] ?? '', call);
      return sendJson(reply, 200, result);
    });
  }
}
