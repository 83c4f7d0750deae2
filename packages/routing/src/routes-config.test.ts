import { describe, expect, it } from 'vitest';
import { checkRouteName, DEFAULT_PRIORITY, DEFAULT_TIME_TO_LIVE_SECS, parseEdgeHubDesired, parseRouteLines, parseRoutes } from './routes-config.js';

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
        '': 'FROM /* INTO $upstream',
        pri: { route: 'FROM /* INTO $upstream', priority: 10 },
        ttl: { route: 'FROM /* INTO $upstream', timeToLiveSecs: -1 },
        ttlHuge: { route: 'FROM /* INTO $upstream', timeToLiveSecs: 4_294_967_296 },
        noRoute: { priority: 1 },
        blankRoute: { route: '  ' },
        numRoute: { route: 5 },
        num: 5,
        broken: 'FROM /* WHERE a > 1 INTO $upstream',
        brokenObj: { route: 'FROM /* INTO nowhere' },
      },
    });
    expect(r.ok).toBe(false);
    if (r.ok) return;
    expect(r.error).toEqual([
      { path: `${P}.routes.bad.name`, message: 'route name "bad.name" contains "."; route names must not contain ".", "$", "#" or space' },
      { path: `${P}.routes.has space`, message: 'route name "has space" contains a space; route names must not contain ".", "$", "#" or space' },
      { path: `${P}.routes.`, message: 'route names must not be empty' },
      { path: `${P}.routes.pri.priority`, message: 'must be an integer from 0 (highest) to 9, got 10' },
      { path: `${P}.routes.ttl.timeToLiveSecs`, message: 'must be an integer from 0 to 4294967295, got -1' },
      { path: `${P}.routes.ttlHuge.timeToLiveSecs`, message: 'must be an integer from 0 to 4294967295, got 4294967296' },
      { path: `${P}.routes.noRoute.route`, message: 'required' },
      { path: `${P}.routes.blankRoute.route`, message: 'expected a non-empty route string, got "  "' },
      { path: `${P}.routes.numRoute.route`, message: 'expected a non-empty route string, got 5' },
      { path: `${P}.routes.num`, message: 'expected a route string or {"route", "priority", "timeToLiveSecs"}, got number' },
      { path: `${P}.routes.broken`, message: "line 1, column 17: Invalid operands to binary operator '>': have 'string' and 'number', expected 'string' and 'string'" },
      { path: `${P}.routes.brokenObj.route`, message: "line 1, column 21: Syntax error: expected '(' after nowhere" },
    ]);
  });

  it('accepts the limits: priority 0 and 9, timeToLiveSecs up to 2^32-1, any integer store-and-forward TTL', () => {
    const r = parseRoutes({
      schemaVersion: '1.3',
      routes: { hi: { route: 'FROM /* INTO $upstream', priority: 0, timeToLiveSecs: 4_294_967_295 }, lo: { route: 'FROM /* INTO $upstream', priority: 9 } },
      storeAndForwardConfiguration: { timeToLiveSecs: -1 },
    });
    expect(r.ok && r.value.map((s) => [s.priority, s.timeToLiveSecs])).toEqual([[0, 4_294_967_295], [9, -1]]);
  });

  it('allows only string routes in schemaVersion 1.0', () => {
    const r = parseRoutes({ schemaVersion: '1.0', routes: { a: { route: 'FROM /* INTO $upstream' }, b: 5 } });
    expect(r.ok ? [] : r.error).toEqual([
      { path: `${P}.routes.a`, message: 'route objects need $edgeHub schemaVersion 1.1 or later (this is 1.0)' },
      { path: `${P}.routes.b`, message: 'expected a route string, got number' },
    ]);
  });

  it.each([
    [{ routes: {} }, `${P}.schemaVersion`, 'required'],
    [{ schemaVersion: '2.0', routes: {} }, `${P}.schemaVersion`, 'unsupported version "2.0": edgeHub accepts 1.0 to 1.3'],
    [{ schemaVersion: '1.4', routes: {} }, `${P}.schemaVersion`, 'unsupported version "1.4": edgeHub accepts 1.0 to 1.3'],
    [{ schemaVersion: 1.1, routes: {} }, `${P}.schemaVersion`, 'must be a version such as "1.1", got 1.1'],
    [{ schemaVersion: 'v1', routes: {} }, `${P}.schemaVersion`, 'must be a version such as "1.1", got "v1"'],
    [{ schemaVersion: '1.1' }, `${P}.routes`, 'required'],
    [{ schemaVersion: '1.1', routes: [] }, `${P}.routes`, 'expected an object of named routes, got array'],
    [{ schemaVersion: '1.1', routes: {}, storeAndForwardConfiguration: 7200 }, `${P}.storeAndForwardConfiguration`, 'expected an object, got number'],
    [{ schemaVersion: '1.1', routes: {}, storeAndForwardConfiguration: { timeToLiveSecs: '7200' } }, `${P}.storeAndForwardConfiguration.timeToLiveSecs`, 'expected an integer, got "7200"'],
    ['nope', P, 'expected an object, got string'],
  ])('rejects %j', (input, path, message) => {
    const r = parseRoutes(input);
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.error[0]).toEqual({ path, message });
  });
});

describe('parseEdgeHubDesired', () => {
  it('reads the desired properties as given, with issue paths under the given root', () => {
    const desired = { schemaVersion: '1.1', routes: { a: 'FROM /* INTO nowhere' }, properties: { desired: { schemaVersion: '1.1', routes: {} } } };
    expect(parseEdgeHubDesired(desired, 'spec')).toEqual({ ok: false, error: [{ path: 'spec.routes.a', message: "line 1, column 21: Syntax error: expected '(' after nowhere" }] });
  });
});

describe('checkRouteName', () => {
  it.each([
    ['upstream', undefined],
    ['a-b_c:1', undefined],
    ['', 'route names must not be empty'],
    ['$x.y', 'route name "$x.y" contains "$" and "."; route names must not contain ".", "$", "#" or space'],
  ])('%j', (name, problem) => {
    expect(checkRouteName(name)).toBe(problem);
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
