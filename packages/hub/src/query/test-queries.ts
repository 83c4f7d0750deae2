import type { FastifyInstance } from 'fastify';
import { Right } from '../auth/policies.js';
import { compileTargetCondition, compileTwinQuery } from '../deployments/routing-port.js';
import { hubError } from '../errors.js';
import { authorize, objectBody, sendJson } from '../http.js';
import type { HubServices } from '../services.js';
import { isObject } from '@kedge/protocol';
import { MAX_QUERY_LENGTH } from './routes.js';

/** IoT Hub's limit on custom metrics per configuration. */
export const MAX_METRIC_QUERIES = 5;

/** `''` when the text compiled, else the error with its position. */
function errorOf(r: { ok: true } | { ok: false; error: { message: string; line: number; column: number } }): string {
  return r.ok ? '' : `${r.error.message} (line ${r.error.line}, column ${r.error.column})`;
}

function tooLong(text: string): string | undefined {
  return text.length > MAX_QUERY_LENGTH ? `longer than ${MAX_QUERY_LENGTH} characters` : undefined;
}

/**
 * `POST /configurations/testQueries` (Python `IoTHubConfigurationManager.test_configuration_queries`): compiles a
 * configuration's target condition and custom metric queries without storing anything, and answers
 * `{targetConditionError, customMetricQueryErrors}` as the IoT Hub REST API names them. An empty string means no
 * error; only failing metrics appear in `customMetricQueryErrors`. The same compiler checks `PUT /configurations`.
 */
export function testQueryRoutes(app: FastifyInstance, s: HubServices): void {
  app.post('/configurations/testQueries', async (req, reply) => {
    await authorize(s, req, Right.RegistryRead);
    const body = objectBody(req);
    const target = body['targetCondition'] ?? '';
    if (typeof target !== 'string') throw hubError('CLOUD_ERR_BAD_REQUEST', 'targetCondition must be a string');
    const metrics = body['customMetricQueries'] ?? {};
    if (!isObject(metrics)) throw hubError('CLOUD_ERR_BAD_REQUEST', 'customMetricQueries must be an object of name: query');
    const names = Object.keys(metrics);
    if (names.length > MAX_METRIC_QUERIES) throw hubError('CLOUD_ERR_BAD_REQUEST', `customMetricQueries holds at most ${MAX_METRIC_QUERIES} queries`);

    const targetConditionError = target.trim() === '' ? '' : (tooLong(target) ?? errorOf(compileTargetCondition(target)));
    // Metric names come from the client: collected in a Map, emitted as own properties (`__proto__` stays a name).
    const errors = new Map<string, string>();
    for (const name of names) {
      const q = metrics[name];
      const e = typeof q !== 'string' ? 'must be a string' : (tooLong(q) ?? errorOf(compileTwinQuery(q)));
      if (e !== '') errors.set(name, e);
    }
    const customMetricQueryErrors = Object.fromEntries(errors);
    return sendJson(reply, 200, { targetConditionError, customMetricQueryErrors });
  });
}
