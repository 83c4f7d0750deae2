import { describe, expect, it } from 'vitest';
import { Evaluator } from './evaluator.js';
import type { RouteMessage } from './message.js';
import { parseRoutes, type RouteSpec } from './routes-config.js';

function specs(routes: Record<string, unknown>): RouteSpec[] {
  const r = parseRoutes({ schemaVersion: '1.1', routes });
  if (!r.ok) throw new Error(JSON.stringify(r.error));
  return r.value;
}

const fromSensor: RouteMessage = {
  source: { deviceId: 'edge', moduleId: 'sensor', output: 'out' },
  properties: { alert: 'true' },
  contentType: 'application/json',
  contentEncoding: 'utf-8',
  body: { temp: 40 },
};

describe('Evaluator', () => {
  const routes = specs({
    all: 'FROM /messages/* INTO $upstream',
    hot: { route: 'FROM /messages/modules/sensor/* WHERE $body.temp > 30 INTO $upstream', priority: 1, timeToLiveSecs: 10 },
    alert: { route: "FROM /messages/* WHERE alert = 'true' INTO $upstream", priority: 0, timeToLiveSecs: 5 },
    toFilter: 'FROM /messages/modules/sensor/outputs/out INTO BrokeredEndpoint("/modules/filter/inputs/in")',
    cold: 'FROM /messages/* WHERE $body.temp < 0 INTO BrokeredEndpoint("/modules/filter/inputs/in")',
  });

  it('lists every matching route', () => {
    expect(new Evaluator(routes).matching(fromSensor).map((m) => m.name)).toEqual(['all', 'hot', 'alert', 'toFilter']);
  });

  it('delivers once per sink with the lowest priority value and that route’s TTL', () => {
    const out = new Evaluator(routes).evaluate(fromSensor);
    expect(out).toEqual([
      { name: 'alert', sink: { kind: 'upstream' }, priority: 0, timeToLiveSecs: 5 },
      { name: 'toFilter', sink: { kind: 'module', module: 'filter', input: 'in' }, priority: 2_000_000_000, timeToLiveSecs: 7200 },
    ]);
  });

  it('drops messages no route matches', () => {
    expect(new Evaluator(routes).evaluate({ source: { kind: 'twinChangeNotification', deviceId: 'edge' } })).toEqual([]);
  });

  it('replaces its snapshot atomically', () => {
    const e = new Evaluator(routes);
    const before = e.routes;
    e.replaceRoutes(specs({ only: 'FROM /twinChangeNotifications INTO $upstream' }));
    expect(before).toHaveLength(5);
    expect(e.routes.map((r) => r.name)).toEqual(['only']);
    expect(e.evaluate(fromSensor)).toEqual([]);
    expect(Object.isFrozen(e.routes)).toBe(true);
  });
});
