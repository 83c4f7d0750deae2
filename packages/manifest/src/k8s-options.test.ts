import { checkPatch } from '@kedge/protocol';
import { describe, expect, it } from 'vitest';
import { joinChunks, splitChunks } from './chunks.js';
import { IssueCollector } from './issues.js';
import { k8sOptionsSettings, type KubernetesOptions } from './k8s-options.js';
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

const sensor = (edit: Edit): KubernetesOptions | undefined => {
  const r = validateManifest(manifest(edit));
  if (!r.ok) throw new Error(r.error.map((i) => `${i.path}: ${i.message}`).join('\n'));
  return r.manifest.spec.modules.sensor?.k8s;
};
const errorsOf = (edit: Edit): string[] => {
  const r = validateManifest(manifest(edit));
  return r.ok ? [] : r.error.map((i) => `${i.path}: ${i.message}`);
};
const warningsOf = (edit: Edit): string[] => validateManifest(manifest(edit)).warnings.map((i) => `${i.path}: ${i.message}`);

const P = '$edgeAgent.properties.desired.modules.sensor';
const options: KubernetesOptions = {
  resources: { requests: { cpu: '50m' }, limits: { 'nvidia.com/gpu': 1 } },
  nodeSelector: { 'kubernetes.io/os': 'linux' },
  tolerations: [{ key: 'node-role.kubernetes.io/edge', operator: 'Exists', effect: 'NoSchedule' }],
  affinity: {
    nodeAffinity: {
      requiredDuringSchedulingIgnoredDuringExecution: {
        nodeSelectorTerms: [{ matchExpressions: [{ key: 'kubernetes.io/arch', operator: 'In', values: ['arm64'] }] }],
      },
    },
  },
  podAnnotations: { 'prometheus.io/scrape': 'true' },
};

describe('settings.k8sOptions: Kubernetes options as a JSON string', () => {
  it('carries keys a twin may not hold, and the manifest is twin-safe', () => {
    const input = manifest(({ agent }) => { agent.modules.sensor.settings.k8sOptions = JSON.stringify(options); });
    const r = validateManifest(input);
    expect(r.ok && r.manifest.spec.modules.sensor?.k8s).toEqual(options);
    expect(r.warnings).toEqual([]);
    const desired = (input as { modulesContent: { $edgeAgent: { 'properties.desired': unknown } } }).modulesContent.$edgeAgent['properties.desired'];
    expect(checkPatch(desired, '$edgeAgent').ok).toBe(true);
  });

  it('reassembles chunks (k8sOptions, k8sOptions01, …) in order, in any letter case', () => {
    const long: KubernetesOptions = { ...options, podLabels: Object.fromEntries(Array.from({ length: 40 }, (_, i) => [`contoso.com/label-${i}`, `value-${i}`])) };
    const chunks = k8sOptionsSettings(long);
    expect(Object.keys(chunks)).toEqual(['k8sOptions', 'k8sOptions01', 'k8sOptions02', 'k8sOptions03']);
    expect(Object.values(chunks).every((c) => c.length <= 512)).toBe(true);
    expect(sensor(({ agent }) => { Object.assign(agent.modules.sensor.settings, chunks); })).toEqual(long);
    const { k8sOptions01, ...rest } = chunks;
    expect(sensor(({ agent }) => { Object.assign(agent.modules.sensor.settings, rest, { K8SOPTIONS01: k8sOptions01 }); })).toEqual(long);
  });

  it('means no options when empty or "null"', () => {
    expect(sensor(({ agent }) => { agent.modules.sensor.settings.k8sOptions = ''; })).toBeUndefined();
    expect(sensor(({ agent }) => { agent.modules.sensor.settings.k8sOptions = ' null '; })).toBeUndefined();
    expect(sensor(({ agent }) => { agent.modules.sensor.settings.k8sOptions = '{}'; })).toEqual({});
  });

  it('wins field by field over the preview createOptions["k8s-experimental"], which is still read', () => {
    const k8s = sensor(({ agent }) => {
      agent.modules.sensor.settings.createOptions = JSON.stringify({
        'k8s-experimental': { NodeSelector: { disk: 'ssd' }, resources: { limits: { memory: '128Mi', 'vendor.example/foo': 2 } }, serviceOptions: { type: 'loadbalancer' } },
      });
      agent.modules.sensor.settings.k8sOptions = JSON.stringify({ nodeSelector: { disk: 'nvme' }, priorityClassName: 'edge-critical' });
    });
    expect(k8s).toEqual({
      nodeSelector: { disk: 'nvme' },
      resources: { limits: { memory: '128Mi', 'vendor.example/foo': 2 } },
      serviceOptions: { type: 'LoadBalancer' },
      priorityClassName: 'edge-critical',
    });
    expect(sensor(({ agent }) => { agent.modules.sensor.settings.createOptions = '{"k8s-experimental":{"nodeSelector":{"a":"b"}}}'; })).toEqual({ nodeSelector: { a: 'b' } });
  });

  it.each<[string, Edit, string]>([
    ['not JSON', ({ agent }) => { agent.modules.sensor.settings.k8sOptions = '{"nodeSelector":'; }, `${P}.settings.k8sOptions: not valid JSON`],
    ['an array', ({ agent }) => { agent.modules.sensor.settings.k8sOptions = '[]'; }, `${P}.settings.k8sOptions: must be a JSON object, got array`],
    ['an object, not a string', ({ agent }) => { agent.modules.sensor.settings.k8sOptions = { nodeSelector: {} }; }, `${P}.settings.k8sOptions: expected a JSON string, got object`],
    ['a chunk gap', ({ agent }) => { Object.assign(agent.modules.sensor.settings, { k8sOptions: '{', k8sOptions02: '}' }); }, `${P}.settings.k8sOptions01: missing: k8sOptions chunks must be contiguous (found k8sOptions, k8sOptions02)`],
    ['a chunk without k8sOptions', ({ agent }) => { agent.modules.sensor.settings.k8sOptions01 = '{}'; }, `${P}.settings.k8sOptions: missing: k8sOptions chunks must be contiguous`],
    ['a three-digit chunk key', ({ agent }) => { Object.assign(agent.modules.sensor.settings, { k8sOptions: '{}', k8sOptions001: '' }); }, `${P}.settings.k8sOptions001: k8sOptions chunk keys are k8sOptions, k8sOptions01 … k8sOptions99`],
    ['chunk key 00', ({ agent }) => { Object.assign(agent.modules.sensor.settings, { k8sOptions: '{}', k8sOptions00: '' }); }, `${P}.settings.k8sOptions00: k8sOptions chunk keys are`],
    ['a chunk given twice', ({ agent }) => { Object.assign(agent.modules.sensor.settings, { k8sOptions: '{}', K8sOptions: '{}' }); }, `${P}.settings.K8sOptions: given twice`],
    ['a bad toleration operator', ({ agent }) => { agent.modules.sensor.settings.k8sOptions = '{"tolerations":[{"operator":"Maybe"}]}'; }, `${P}.settings.k8sOptions.tolerations[0].operator: must be one of "Exists", "Equal", got "Maybe"`],
    ['both k8sOptions and the k8s object', ({ agent }) => { agent.modules.sensor.settings.k8sOptions = '{}'; agent.modules.sensor.k8s = {}; }, `${P}.k8s: give the Kubernetes options once: settings.k8sOptions or k8s, not both`],
  ])('refuses %s', (_name, edit, expected) => {
    const errs = errorsOf(edit);
    expect(errs.some((e) => e.startsWith(expected)), `errors were:\n${errs.join('\n')}`).toBe(true);
  });

  it('is a known setting: no "unknown module setting" warning for it or its chunks', () => {
    const w = warningsOf(({ agent }) => { Object.assign(agent.modules.sensor.settings, { k8sOptions: '{"nodeSelector"', k8sOptions01: ':{}}' }); });
    expect(w).toEqual([]);
    expect(warningsOf(({ agent }) => { agent.modules.sensor.settings.k8sOption = '{}'; })).toEqual([`${P}.settings.k8sOption: unknown module setting; ignored`]);
  });
});

describe('the old object form modules.<m>.k8s', () => {
  it('is read when every key is twin-safe, with a warning that shows the string form to write', () => {
    const legacy = { resources: { requests: { cpu: '50m' } }, nodeSelector: { disk: 'ssd' } };
    const edit: Edit = ({ agent }) => { agent.modules.sensor.k8s = legacy; };
    expect(sensor(edit)).toEqual(legacy);
    const w = warningsOf(edit);
    expect(w).toHaveLength(1);
    expect(w[0]).toContain(`${P}.k8s: the object form cannot travel through a twin once a key holds`);
    const shown = JSON.parse(w[0]?.slice(w[0].indexOf('write it in settings as ') + 'write it in settings as '.length) ?? '') as Record<string, string>;
    expect(sensor(({ agent }) => { Object.assign(agent.modules.sensor.settings, shown); })).toEqual(legacy);
  });

  it('is refused where a key cannot travel through a twin, naming the key and the fix', () => {
    expect(errorsOf(({ agent }) => { agent.modules.sensor.k8s = { nodeSelector: { 'kubernetes.io/os': 'linux' } }; })).toEqual([
      `${P}.k8s.nodeSelector.kubernetes.io/os: IoT Hub refuses this in a twin: keys must be non-empty and cannot contain ".", "$", spaces or control characters; give the module's Kubernetes options as the JSON string settings.k8sOptions instead of the k8s object`,
    ]);
  });

  it('is refused where it nests deeper than a twin allows (affinity)', () => {
    const errs = errorsOf(({ agent }) => { agent.modules.sensor.k8s = { affinity: { nodeAffinity: { a: { b: { c: { d: { e: 1 } } } } } } }; });
    expect(errs).toHaveLength(1);
    expect(errs[0]).toMatch(/^\$edgeAgent\.properties\.desired\.modules\.sensor\.k8s\.affinity\..*: IoT Hub refuses this in a twin: nesting deeper than 10 levels; give the module's Kubernetes options as the JSON string settings\.k8sOptions/);
  });
});

describe('desired documents must be what a twin can hold', () => {
  it('refuses keys IoT Hub refuses in any module twin, without the k8sOptions hint', () => {
    expect(errorsOf(({ content }) => { content.sensor = { 'properties.desired': { 'a.b': 1 } }; })).toEqual([
      'sensor.properties.desired.a.b: IoT Hub refuses this in a twin: keys must be non-empty and cannot contain ".", "$", spaces or control characters',
    ]);
    expect(errorsOf(({ agent }) => { agent.modules.sensor.env = { 'MY VAR': { value: '1' } }; })[0]).toBe(
      `${P}.env.MY VAR: IoT Hub refuses this in a twin: keys must be non-empty and cannot contain ".", "$", spaces or control characters`,
    );
  });

  it('refuses a desired document over 32 KB', () => {
    expect(errorsOf(({ content }) => { content.sensor = { 'properties.desired': { blob: 'x'.repeat(32 * 1024) } }; })).toEqual([
      `sensor.properties.desired: ${32 * 1024 + 11} bytes; IoT Hub keeps a twin's desired properties to 32768 bytes`,
    ]);
    expect(errorsOf(({ content }) => { content.sensor = { 'properties.desired': { blob: 'x'.repeat(32 * 1024 - 11) } }; })).toEqual([]);
  });
});

describe('chunks', () => {
  it('splitChunks is the inverse of joinChunks', () => {
    for (const n of [0, 1, 511, 512, 513, 1024, 1025, 5000]) {
      const text = 'y'.repeat(n);
      const parts = splitChunks(text, 'createOptions');
      expect(Object.keys(parts)).toHaveLength(Math.max(1, Math.ceil(n / 512)));
      expect(joinChunks(parts, 'createOptions', [], new IssueCollector())).toBe(text);
    }
    expect(() => splitChunks('z'.repeat(512 * 100 + 1), 'k8sOptions')).toThrow(RangeError);
    expect(Object.keys(splitChunks('z'.repeat(512 * 100), 'k8sOptions'))).toHaveLength(100);
  });

  it('warns about chunks over 512 characters only when the setting is chunked', () => {
    const issues = new IssueCollector();
    expect(joinChunks({ createOptions: 'a'.repeat(600) }, 'createOptions', ['s'], issues)).toHaveLength(600);
    expect(issues.warnings).toEqual([]);
    joinChunks({ createOptions: 'a'.repeat(513), createOptions01: 'b' }, 'createOptions', ['s'], issues);
    expect(issues.warnings).toEqual([{ path: 's.createOptions', message: 'chunk is 513 characters; IoT Hub twins keep string values to 512' }]);
  });
});
