import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse } from 'yaml';
import { afterAll, describe, expect, it } from 'vitest';
import { captureOutput, inProcessKedge } from '../test-support/capture.js';
import { registerManifestCommands } from './manifest.js';

const dir = mkdtempSync(join(tmpdir(), 'kedge-manifest-cli-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const captured = captureOutput();
const example = JSON.parse(readFileSync(new URL('../../../../examples/simulated-temperature.json', import.meta.url), 'utf8')) as { modulesContent: Record<string, any> };

function file(name: string, content: unknown): string {
  const path = join(dir, name);
  writeFileSync(path, typeof content === 'string' ? content : JSON.stringify(content));
  return path;
}

const kedge = inProcessKedge(registerManifestCommands);

describe('kedge manifest validate', () => {
  it('prints a one-line summary and exits 0 for a valid manifest, in every wrapping', async () => {
    for (const doc of [example, example.modulesContent, { content: example }]) {
      captured.reset();
      expect(await kedge('manifest', 'validate', file('ok.json', doc))).toBe(0);
      expect(captured.out).toBe('valid: 2 modules (SimulatedTemperatureSensor, filter), 3 routes, $edgeAgent 1.1, $edgeHub 1.1, 0 warnings\n');
    }
  });

  it('prints one path: message line per error and exits 1', async () => {
    const broken = structuredClone(example);
    const agent = broken.modulesContent.$edgeAgent['properties.desired'];
    delete agent.modules.filter.settings.image;
    agent.modules.SimulatedTemperatureSensor.restartPolicy = 'sometimes';
    expect(await kedge('manifest', 'validate', file('bad.json', broken))).toBe(1);
    expect(captured.out.trimEnd().split('\n')).toEqual([
      '$edgeAgent.properties.desired.modules.SimulatedTemperatureSensor.restartPolicy: must be one of "never", "on-failure", "on-unhealthy", "always", got "sometimes"',
      '$edgeAgent.properties.desired.modules.filter.settings.image: required',
    ]);
  });

  it('reads YAML by extension, prints warnings on stderr, and exits 2 for unreadable input', async () => {
    const warned = structuredClone(example);
    warned.modulesContent.$edgeAgent['properties.desired'].modules.filter.settings.createOptions = '{"HostConfir":{}}';
    const { stringify } = await import('yaml');
    expect(await kedge('manifest', 'validate', file('w.yaml', stringify(warned)))).toBe(0);
    expect(captured.err).toContain('warning: $edgeAgent.properties.desired.modules.filter.settings.createOptions.HostConfir: unknown createOptions field');
    expect(await kedge('manifest', 'validate', file('junk.json', '{"modulesContent": '))).toBe(2);
    expect(captured.err).toContain('not valid JSON');
    expect(await kedge('manifest', 'validate', join(dir, 'missing.json'))).toBe(2);
  });
});

describe('kedge manifest render', () => {
  it('prints a List with the EdgeDeployment and every object the controller applies', async () => {
    expect(await kedge('manifest', 'render', file('r.json', example), '-n', 'factory-1', '-d', 'dev-1')).toBe(0);
    const list = JSON.parse(captured.out) as { kind: string; items: { kind: string; metadata: { name: string; namespace: string } }[] };
    expect(list.kind).toBe('List');
    expect(list.items[0]).toMatchObject({ kind: 'EdgeDeployment', metadata: { name: 'default', namespace: 'factory-1' }, spec: { deviceId: 'dev-1' } });
    expect(list.items.filter((i) => i.kind === 'Deployment').map((i) => i.metadata.name)).toContain('filter');
    expect(list.items.every((i) => i.metadata.namespace === 'factory-1')).toBe(true);
    captured.reset();
    expect(await kedge('manifest', 'render', file('r.json', example), '-n', 'factory-1', '-d', 'dev-1', '-o', 'yaml')).toBe(0);
    expect((parse(captured.out) as { items: unknown[] }).items).toHaveLength(list.items.length);
  });

  it('refuses host paths unless allowed, and bad output formats', async () => {
    const hosty = structuredClone(example);
    hosty.modulesContent.$edgeAgent['properties.desired'].modules.filter.settings.createOptions = '{"HostConfig":{"Binds":["/data:/data"]}}';
    expect(await kedge('manifest', 'render', file('h.json', hosty), '-n', 'n', '-d', 'd')).toBe(1);
    expect(captured.out).toContain('host path "/data" is not allowed');
    captured.reset();
    expect(await kedge('manifest', 'render', file('h.json', hosty), '-n', 'n', '-d', 'd', '--allow-host-paths')).toBe(0);
    expect(await kedge('manifest', 'render', file('h.json', hosty), '-n', 'n', '-d', 'd', '-o', 'xml')).toBe(2);
  });
});
