import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { registerRouteCommands } from './route.js';
import { captureOutput, inProcessKedge } from '../test-support/capture.js';

const dir = mkdtempSync(join(tmpdir(), 'kedge-route-test-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function file(name: string, content: unknown): string {
  const path = join(dir, name);
  writeFileSync(path, typeof content === 'string' ? content : JSON.stringify(content));
  return path;
}

const captured = captureOutput();

const kedge = inProcessKedge(registerRouteCommands);

const desired = {
  schemaVersion: '1.1',
  routes: {
    all: 'FROM /messages/* INTO $upstream',
    hot: { route: 'FROM /messages/modules/sensor/* WHERE $body.temp > 30 INTO BrokeredEndpoint("/modules/alert/inputs/in")', priority: 1, timeToLiveSecs: 60 },
    leafOnly: 'FROM /messages/* WHERE NOT IS_DEFINED($connectionModuleId) INTO $upstream',
  },
};
const message = { source: { deviceId: 'd1', moduleId: 'sensor', output: 'out1' }, contentType: 'application/json', contentEncoding: 'utf-8', body: { temp: 35 } };

describe('kedge route test', () => {
  it('prints the matching routes as JSON and exits 0', async () => {
    // 1. desired properties given bare; 2. the same wrapped as a manifest
    for (const routes of [desired, { modulesContent: { $edgeHub: { 'properties.desired': desired } } }]) {
      captured.reset();
      const code = await kedge('route', 'test', '--routes', file('routes.json', routes), '--message', file('message.json', message));
      expect(code).toBe(0);
      expect(JSON.parse(captured.out)).toEqual([
        { name: 'all', sink: '$upstream', priority: 2_000_000_000, timeToLiveSecs: 7200 },
        { name: 'hot', sink: 'BrokeredEndpoint("/modules/alert/inputs/in")', priority: 1, timeToLiveSecs: 60 },
      ]);
    }
  });

  it('reads a text file of routes, one per line', async () => {
    const routes = file('routes.txt', "# demo\nFROM /messages/* WHERE $body.temp < 0 INTO $upstream\nleaf: FROM /messages/* WHERE $connectionDeviceId = 'd1' INTO $upstream\n");
    const code = await kedge('route', 'test', '--routes', routes, '--message', file('message.json', { ...message, source: { deviceId: 'd1' } }));
    expect(code).toBe(0);
    expect((JSON.parse(captured.out) as { name: string }[]).map((r) => r.name)).toEqual(['leaf']);
  });

  it('exits 2 with the route name, line and column when a route does not compile', async () => {
    const routes = file('bad.json', { schemaVersion: '1.1', routes: { broken: 'FROM /messages/* WHERE temp > 30 INTO $upstream' } });
    const code = await kedge('route', 'test', '--routes', routes, '--message', file('message.json', message));
    expect(code).toBe(2);
    expect(captured.out).toBe('');
    expect(captured.err).toContain('$edgeHub.properties.desired.routes.broken: line 1, column 29:');
  });

  it('exits 2 on unreadable files and invalid JSON', async () => {
    expect(await kedge('route', 'test', '--routes', join(dir, 'missing.json'), '--message', file('message.json', message))).toBe(2);
    expect(captured.err).toMatch(/cannot read routes file/);
    expect(await kedge('route', 'test', '--routes', file('routes.json', desired), '--message', file('broken.json', '{"source":'))).toBe(2);
    expect(captured.err).toMatch(/message file .* is not valid JSON/);
    expect(await kedge('route', 'test', '--routes', file('broken-routes.json', '{ nope'), '--message', file('message.json', message))).toBe(2);
    expect(captured.err).toMatch(/routes file .* is not valid JSON/);
    expect(await kedge('route', 'test', '--routes', file('routes.json', desired), '--message', file('odd.json', { source: 'x' }))).toBe(2);
    expect(captured.err).toMatch(/\$\.source/);
  });
});

describe('kedge route check', () => {
  it('reports compiled routes', async () => {
    expect(await kedge('route', 'check', file('routes.json', desired))).toBe(0);
    expect(captured.out).toMatch(/^3 routes compiled/);
  });

  it('exits 2 and lists every broken route', async () => {
    const code = await kedge('route', 'check', file('bad.txt', 'FROM /* INTO $upstream\nFROM /* WHERE ( INTO $upstream\nFROM /* INTO nowhere\n'));
    expect(code).toBe(2);
    expect(captured.err).toContain('line 2:');
    expect(captured.err).toContain('line 3:');
  });
});
