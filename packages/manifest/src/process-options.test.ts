import { checkPatch } from '@kedge/protocol';
import { describe, expect, it } from 'vitest';
import { parseEdgeDeploymentSpec } from './spec.js';
import { processOptionsSettings, type ProcessOptions } from './process-options.js';
import { validateManifest } from './validate.js';

type Edit = (m: { agent: Record<string, any>; content: Record<string, any> }) => void;

/** A minimal valid manifest with one user module `sensor`, edited by `edit`. */
function manifest(edit?: Edit): unknown {
  const content: Record<string, any> = {
    $edgeAgent: {
      'properties.desired': {
        schemaVersion: '1.1',
        runtime: { type: 'docker', settings: {} },
        systemModules: {
          edgeAgent: { type: 'docker', settings: { image: 'agent:1', createOptions: '{}' } },
          edgeHub: { type: 'docker', status: 'running', restartPolicy: 'always', settings: { image: 'hub:1', createOptions: '{}' } },
        },
        modules: { sensor: { type: 'docker', settings: { image: 'sensor:1', createOptions: '{}' } } },
      },
    },
    $edgeHub: { 'properties.desired': { schemaVersion: '1.1', routes: {}, storeAndForwardConfiguration: { timeToLiveSecs: 7200 } } },
  };
  edit?.({ agent: content.$edgeAgent['properties.desired'], content });
  return { modulesContent: content };
}

const processOf = (edit: Edit): ProcessOptions | undefined => {
  const r = validateManifest(manifest(edit));
  if (!r.ok) throw new Error(r.error.map((i) => `${i.path}: ${i.message}`).join('\n'));
  return r.manifest.spec.modules.sensor?.process;
};
const errorsOf = (edit: Edit): string[] => {
  const r = validateManifest(manifest(edit));
  return r.ok ? [] : r.error.map((i) => `${i.path}: ${i.message}`);
};
const P = '$edgeAgent.properties.desired.modules.sensor.settings.processOptions';

describe('settings.processOptions: the process form of a module', () => {
  it('parses the JSON string into spec.modules.<m>.process, with defaults', () => {
    const options = { command: 'node', args: ['sensor.js', '--rate', '5'], env: { 'LOG_LEVEL': 'debug' }, workingDir: '/opt/sensor' };
    expect(processOf(({ agent }) => { agent.modules.sensor.settings.processOptions = JSON.stringify(options); })).toEqual(options);
    expect(processOf(({ agent }) => { agent.modules.sensor.settings.processOptions = '{"command":"node"}'; })).toEqual({ command: 'node', args: [], env: {} });
    expect(processOf(() => undefined)).toBeUndefined();
    expect(processOf(({ agent }) => { agent.modules.sensor.settings.processOptions = ' null '; })).toBeUndefined();
  });

  it('travels through a twin: only twin-safe keys, chunked when long, and it survives the EdgeDeployment schema', () => {
    const long: ProcessOptions = { command: 'node', args: Array.from({ length: 40 }, (_, i) => `--option.${i} has spaces and $dollars`), env: { A_B: 'x.y $z' } };
    const settings = processOptionsSettings(long);
    expect(Object.keys(settings).length).toBeGreaterThan(1);
    const content = manifest(({ agent }) => { Object.assign(agent.modules.sensor.settings, settings); }) as { modulesContent: Record<string, any> };
    expect(checkPatch(content.modulesContent['$edgeAgent']['properties.desired'], 'desired').ok).toBe(true);
    const r = validateManifest(content);
    expect(r.ok && r.manifest.spec.modules.sensor?.process).toEqual(long);
    const parsed = parseEdgeDeploymentSpec(r.ok ? r.manifest.spec : undefined);
    expect(parsed.ok && parsed.value.spec.modules['sensor']?.process).toEqual(long);
  });

  it.each<[string, string, string]>([
    ['not JSON', '{"command":', `${P}: not valid JSON`],
    ['an array', '["node"]', `${P}: must be a JSON object {"command", "args", "env", "workingDir"}, got array`],
    ['without a command', '{"args":["x"]}', `${P}.command: required`],
    ['an empty command', '{"command":""}', `${P}.command: must not be empty`],
    ['args not strings', '{"command":"node","args":[1]}', `${P}.args[0]: expected string, got number`],
    ['an unknown field', '{"command":"node","cwd":"/"}', `${P}: unknown field "cwd"`],
    ['a bad env name', '{"command":"node","env":{"1A":"x"}}', `${P}.env.1A: an environment variable name`],
    ['a __proto__ env name', '{"command":"node","env":{"__proto__":"x"}}', `${P}.env.__proto__: may not be "__proto__"`],
    ['an env value not a string', '{"command":"node","env":{"A":1}}', `${P}.env.A: expected string, got number`],
  ])('refuses a process form that is %s', (_name, text, expected) => {
    const errs = errorsOf(({ agent }) => { agent.modules.sensor.settings.processOptions = text; });
    expect(errs.some((e) => e.startsWith(expected)), `errors were:\n${errs.join('\n')}`).toBe(true);
  });

  it('refuses a process form that is not a string', () => {
    expect(errorsOf(({ agent }) => { agent.modules.sensor.settings.processOptions = { command: 'node' }; })).toEqual([`${P}: expected a JSON string, got object`]);
  });
});
