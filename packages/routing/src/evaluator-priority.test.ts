import { describe, expect, it } from 'vitest';
import { Evaluator } from './evaluator.js';
import type { RouteMessage } from './message.js';
import { parseRoutes, type RouteSpec } from './routes-config.js';

function specs(routes: Record<string, unknown>): RouteSpec[] {
  const r = parseRoutes({ schemaVersion: '1.1', routes });
  if (!r.ok) throw new Error(JSON.stringify(r.error));
  return r.value;
}

const msg = (temp: number): RouteMessage => ({
  source: { deviceId: 'edge', moduleId: 'sensor', output: 'out' },
  contentType: 'application/json',
  contentEncoding: 'utf-8',
  body: { temp },
});
const names = (routes: RouteSpec[], m: RouteMessage) => new Evaluator(routes).evaluate(m).map((x) => x.name);

describe('Evaluator: which route delivers to a sink', () => {
  it('takes the first of two matching routes of equal priority (not the last)', () => {
    const routes = specs({
      first: { route: 'FROM /messages/* INTO $upstream', priority: 3, timeToLiveSecs: 10 },
      second: { route: 'FROM /messages/* INTO $upstream', priority: 3, timeToLiveSecs: 20 },
    });
    expect(new Evaluator(routes).evaluate(msg(1))).toEqual([{ name: 'first', sink: { kind: 'upstream' }, priority: 3, timeToLiveSecs: 10 }]);
    expect(names(specs({ a: 'FROM /* INTO $upstream', b: 'FROM /* INTO $upstream' }), msg(1))).toEqual(['a']);
  });

  it('takes a later route of equal priority when the earlier one does not match', () => {
    const routes = specs({
      hot: { route: 'FROM /messages/* WHERE $body.temp > 30 INTO $upstream', priority: 3 },
      any: { route: 'FROM /messages/* INTO $upstream', priority: 3 },
    });
    expect(names(routes, msg(40))).toEqual(['hot']);
    expect(names(routes, msg(10))).toEqual(['any']);
  });

  it('lets a later route with a lower priority value win, and keeps an earlier one with a lower value', () => {
    const later = specs({ low: { route: 'FROM /* INTO $upstream', priority: 5 }, high: { route: 'FROM /* INTO $upstream', priority: 4 } });
    expect(names(later, msg(1))).toEqual(['high']);
    const earlier = specs({ high: { route: 'FROM /* INTO $upstream', priority: 4 }, low: { route: 'FROM /* INTO $upstream', priority: 5 } });
    expect(names(earlier, msg(1))).toEqual(['high']);
    expect(names(specs({ p0: { route: 'FROM /* INTO $upstream', priority: 0 }, none: 'FROM /* INTO $upstream' }), msg(1))).toEqual(['p0']);
  });

  it('delivers to each sink separately, in the order the sinks first appear', () => {
    const routes = specs({
      toB: 'FROM /* INTO BrokeredEndpoint("/modules/b/inputs/in")',
      up: 'FROM /* INTO $upstream',
      toA: 'FROM /* INTO BrokeredEndpoint("/modules/a/inputs/in")',
      toB2: { route: 'FROM /* INTO BrokeredEndpoint("/modules/b/inputs/in")', priority: 0 },
      toBOther: 'FROM /* INTO BrokeredEndpoint("/modules/b/inputs/other")',
    });
    expect(names(routes, msg(1))).toEqual(['toB2', 'up', 'toA', 'toBOther']);
  });

  it('delivers nothing to a sink whose routes all fail their condition', () => {
    const routes = specs({ a: 'FROM /* WHERE $body.temp > 100 INTO $upstream', b: 'FROM /* WHERE $body.temp < -100 INTO $upstream' });
    expect(names(routes, msg(1))).toEqual([]);
  });
});
