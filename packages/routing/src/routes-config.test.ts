import { describe, expect, it } from 'vitest';
import { DEFAULT_PRIORITY, DEFAULT_TIME_TO_LIVE_SECS, parseRouteLines, parseRoutes } from './routes-config.js';

const P = '$edgeHub.properties.desired';

describe('parseRoutes', () => {
  it('reads string and object routes with defaults from schemaVersion 1.1', () => {
    const r = parseRoutes({
      schemaVersion: '1.1',
      routes: {
        up: 'FROM /messages/* INTO $upstream',
        alerts: { route: 'FROM /messages/modules/cam/outputs/p0 INTO $upstream', priority: 0, timeToLiveSecs: 60 },
        zeroTtl: { route: 'FROM /* INTO BrokeredEndpoint("/modules/m/inputs/i")', timeToLiveSecs: 0 },
        blank: '   ',
      },
      storeAndForwardConfiguration: { timeToLiveSecs: 100 },
    });
    expect(r.ok).toBe(true);
    if (!r.ok) return;
    expect(r.value.map((s) => [s.name, s.priority, s.timeToLiveSecs])).toEqual([
      ['up', DEFAULT_PRIORITY, 100],
      ['alerts', 0, 60],
      ['zeroTtl', DEFAULT_PRIORITY, 100],
    ]);
  });

  it('uses the default TTL without store-and-forward settings', () => {
    const r = parseRoutes({ schemaVersion: '1.0', routes: { a: 'FROM /* INTO $upstream' } });
    expect(r.ok && r.value[0]?.timeToLiveSecs).toBe(DEFAULT_TIME_TO_LIVE_SECS);
  });

  it('unwraps {properties: {desired}}, manifests and deployments', () => {
    const desired = { schemaVersion: '1.2', routes: { a: 'FROM /* INTO $upstream' } };
    for (const input of [
      { properties: { desired } },
      { modulesContent: { $edgeHub: { 'properties.desired': desired } } },
      { content: { modulesContent: { $edgeHub: { 'properties.desired': desired } } } },
    ]) {
      const r = parseRoutes(input);
      expect(r.ok && r.value.map((s) => s.name)).toEqual(['a']);
    }
  });

  it('reports every problem with its JSON path', () => {
    const r = parseRoutes({
      schemaVersion: '1.1',
      routes: {
        'bad.name': 'FROM /* INTO $upstream',
        'has space': 'FROM /* INTO $upstream',
        pri: { route: 'FROM /* INTO $upstream', priority: 10 },
        ttl: { route: 'FROM /* INTO $upstream', timeToLiveSecs: -1 },
        noRoute: { priority: 1 },
        num: 5,
        broken: 'FROM /* WHERE a > 1 INTO $upstream',
        brokenObj: { route: 'FROM /* INTO nowhere' },
      },
    });
    expect(r.ok).toBe(false);
    if (r.ok) return;
    expect(r.error).toEqual([
      { path: `${P}.routes.bad.name`, message: "route name must be non-empty and contain no '.', '$', '#' or blank" },
      { path: `${P}.routes.has space`, message: "route name must be non-empty and contain no '.', '$', '#' or blank" },
      { path: `${P}.routes.pri.priority`, message: 'must be an integer from 0 to 9' },
      { path: `${P}.routes.ttl.timeToLiveSecs`, message: 'must be a non-negative integer' },
      { path: `${P}.routes.noRoute.route`, message: 'is required' },
      { path: `${P}.routes.num`, message: 'must be a route string or {route, priority, timeToLiveSecs}' },
      { path: `${P}.routes.broken`, message: "line 1, column 17: Invalid operands to binary operator '>': have 'string' and 'number', expected 'string' and 'string'" },
      { path: `${P}.routes.brokenObj.route`, message: "line 1, column 21: Syntax error: expected '(' after nowhere" },
    ]);
  });

  it('allows only string routes in schemaVersion 1.0', () => {
    const r = parseRoutes({ schemaVersion: '1.0', routes: { a: { route: 'FROM /* INTO $upstream' } } });
    expect(!r.ok && r.error[0]?.path).toBe(`${P}.routes.a`);
  });

  it.each([
    [{ routes: {} }, `${P}.schemaVersion`, 'is required'],
    [{ schemaVersion: '2.0', routes: {} }, `${P}.schemaVersion`, 'unsupported schema version "2.0" (expected 1.0 to 1.3)'],
    [{ schemaVersion: '1.4', routes: {} }, `${P}.schemaVersion`, 'unsupported schema version "1.4" (expected 1.0 to 1.3)'],
    [{ schemaVersion: 1.1, routes: {} }, `${P}.schemaVersion`, 'unsupported schema version 1.1 (expected 1.0 to 1.3)'],
    [{ schemaVersion: '1.1' }, `${P}.routes`, 'is required'],
    [{ schemaVersion: '1.1', routes: [] }, `${P}.routes`, 'must be an object of named routes'],
    ['nope', P, 'must be an object'],
  ])('rejects %j', (input, path, message) => {
    const r = parseRoutes(input);
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.error[0]).toEqual({ path, message });
  });
});

describe('parseRouteLines', () => {
  it('names routes route1…, accepts name: prefixes, skips blanks and comments', () => {
    const r = parseRouteLines(['# routes', 'FROM /* INTO $upstream', '', 'alerts: FROM /messages/* WHERE $body.t > 1 INTO $upstream', '// done', 'select * from /* into $upstream'].join('\n'));
    expect(r.ok && r.value.map((s) => s.name)).toEqual(['route1', 'alerts', 'route3']);
  });

  it('reports compile errors with the file line and the column in that line', () => {
    const r = parseRouteLines('FROM /* INTO $upstream\nx: FROM /* WHERE @ INTO $upstream\nx: FROM /* INTO $upstream');
    expect(r.ok).toBe(false);
    if (!r.ok) {
      expect(r.error).toEqual([
        { path: 'line 2', message: "route 'x', column 18: Syntax error: invalid symbol '@'" },
        { path: 'line 3', message: "duplicate route name 'x'" },
      ]);
    }
  });
});
