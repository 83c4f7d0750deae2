import { describe, expect, it } from 'vitest';
import { IssueCollector } from './issues.js';
import { k8sOptionsSettings, parseK8sOptions, validateKubernetesOptions } from './k8s-options.js';
import { parseProcessOptions, processOptionsSettings } from './process-options.js';

// The Kubernetes options and the process form, field by field: each value the schema accepts at its bounds and
// each it refuses, with the path the error names.

function k8s(value: unknown): string[] {
  const issues = new IssueCollector();
  validateKubernetesOptions(value, ['k'], issues);
  return issues.errors.map((i) => `${i.path}: ${i.message}`);
}

describe('Kubernetes options: quantities', () => {
  it.each(['500m', '128Mi', '2', '1.5', '.5', '2.', '1e3', '1E-2', '+1', '-1', '1Ki', '1Ei', '1n', '1u', '1k', '1M', '1G', '1T', '1P', '1E'])('accepts the quantity %s', (q) => {
    expect(k8s({ resources: { limits: { memory: q } } })).toEqual([]);
  });

  it.each(['', 'Mi', '1.2.3', '1 Gi', '1mi', '1KiB', 'lots', '1e', '0x10', ' 1'])('refuses the quantity %j', (q) => {
    expect(k8s({ resources: { requests: { cpu: q } } })).toEqual([`k.resources.requests.cpu: not a Kubernetes quantity (e.g. 500m, 128Mi, 2)`]);
  });

  it('accepts a number of 0 or more as a quantity, not a negative one', () => {
    expect(k8s({ resources: { limits: { cpu: 0, memory: 1.5 } } })).toEqual([]);
    expect(k8s({ resources: { limits: { cpu: -1 } } })).toHaveLength(1);
    expect(k8s({ persistence: { size: true } })).toHaveLength(1);
  });
});

describe('Kubernetes options: the other fields', () => {
  it('accepts every documented field at once', () => {
    expect(k8s({
      resources: { limits: { cpu: '1' }, requests: { cpu: '500m' } },
      nodeSelector: { a: 'b' },
      tolerations: [{ key: 'k', operator: 'Equal', value: 'v', effect: 'NoExecute', tolerationSeconds: 30 }, { operator: 'Exists', effect: 'PreferNoSchedule' }, { effect: 'NoSchedule' }],
      affinity: { nodeAffinity: {} },
      securityContext: { runAsUser: 1 },
      containerSecurityContext: { privileged: false },
      volumes: [{ volume: { name: 'v', emptyDir: {} }, volumeMounts: [{ name: 'v', mountPath: '/v', readOnly: true, subPath: 's', mountPropagation: 'HostToContainer' }, { name: 'v', mountPath: '/w', mountPropagation: 'None' }, { name: 'v', mountPath: '/x', mountPropagation: 'Bidirectional' }] }],
      serviceOptions: { type: 'LoadBalancer', loadBalancerIP: '10.0.0.1', annotations: { a: 'b' } },
      strategy: { type: 'RollingUpdate', rollingUpdate: { maxSurge: '25', maxUnavailable: 0 } },
      priorityClassName: 'high',
      persistence: { storageClassName: '', size: '1Gi', accessModes: ['ReadWriteOnce', 'ReadOnlyMany', 'ReadWriteMany', 'ReadWriteOncePod'] },
      podLabels: { a: 'b' },
      podAnnotations: { c: 'd' },
    })).toEqual([]);
    expect(k8s({ serviceOptions: { type: 'ClusterIP' }, strategy: { type: 'Recreate' } })).toEqual([]);
    expect(k8s({ serviceOptions: { type: 'NodePort' } })).toEqual([]);
  });

  it.each([
    [{ tolerations: [{ operator: 'In' }] }, 'k.tolerations[0].operator: must be one of "Exists", "Equal", got "In"'],
    [{ tolerations: [{ effect: 'Evict' }] }, 'k.tolerations[0].effect: must be one of "NoSchedule", "PreferNoSchedule", "NoExecute", got "Evict"'],
    [{ tolerations: [{ tolerationSeconds: 1.5 }] }, 'k.tolerations[0].tolerationSeconds: expected int, got number'],
    [{ tolerations: [{ extra: 1 }] }, 'k.tolerations[0]: unknown field "extra"'],
    [{ volumes: [{ volume: { name: '' } }] }, 'k.volumes[0].volume.name: must not be empty'],
    [{ volumes: [{ volume: {} }] }, 'k.volumes[0].volume.name: required'],
    [{ volumes: [{ volume: { name: 'v' }, volumeMounts: [{ name: 'v', mountPath: '' }] }] }, 'k.volumes[0].volumeMounts[0].mountPath: must not be empty'],
    [{ volumes: [{ volume: { name: 'v' }, volumeMounts: [{ name: '', mountPath: '/v' }] }] }, 'k.volumes[0].volumeMounts[0].name: must not be empty'],
    [{ volumes: [{ volume: { name: 'v' }, volumeMounts: [{ name: 'v', mountPath: '/v', mountPropagation: 'Both' }] }] }, 'k.volumes[0].volumeMounts[0].mountPropagation: must be one of "None", "HostToContainer", "Bidirectional", got "Both"'],
    [{ strategy: { type: 'BlueGreen' } }, 'k.strategy.type: must be one of "Recreate", "RollingUpdate", got "BlueGreen"'],
    [{ strategy: {} }, 'k.strategy.type: required'],
    [{ strategy: { type: 'RollingUpdate', rollingUpdate: { maxSurge: 'x' } } }, 'k.strategy.rollingUpdate.maxSurge: not a Kubernetes quantity (e.g. 500m, 128Mi, 2)'],
    [{ persistence: { accessModes: ['ReadWriteAll'] } }, 'k.persistence.accessModes[0]: must be one of "ReadWriteOnce", "ReadOnlyMany", "ReadWriteMany", "ReadWriteOncePod", got "ReadWriteAll"'],
    [{ serviceOptions: { annotations: { a: 1 } } }, 'k.serviceOptions.annotations.a: expected string, got number'],
    [{ nodeSelector: { a: 1 } }, 'k.nodeSelector.a: expected string, got number'],
    [{ podLabels: { a: true } }, 'k.podLabels.a: expected string, got boolean'],
    [{ podAnnotations: { a: null } }, 'k.podAnnotations.a: expected string, got null'],
    [{ priorityClassName: 1 }, 'k.priorityClassName: expected string, got number'],
    [{ affinity: [] }, 'k.affinity: expected record, got array'],
    [{ resources: { limits: { cpu: '1' }, other: {} } }, 'k.resources: unknown field "other"'],
  ])('refuses %j', (value, error) => {
    expect(k8s(value)).toEqual([error]);
  });

  it('gives a volume its mounts default, and keeps unknown volume source fields for the API server', () => {
    const issues = new IssueCollector();
    expect(validateKubernetesOptions({ volumes: [{ volume: { name: 'v', hostPath: { path: '/x' } } }] }, [], issues)).toEqual({ volumes: [{ volume: { name: 'v', hostPath: { path: '/x' } }, volumeMounts: [] }] });
  });
});

describe('settings.k8sOptions text', () => {
  const parse = (text: string) => {
    const issues = new IssueCollector();
    return { r: parseK8sOptions(text, ['s'], issues), errors: issues.errors.map((i) => `${i.path}: ${i.message}`) };
  };

  it('is no options when empty, options when valid, an error otherwise', () => {
    expect(parse('')).toEqual({ r: { ok: true, value: undefined }, errors: [] });
    expect(parse(' null ')).toEqual({ r: { ok: true, value: undefined }, errors: [] });
    expect(parse('{"priorityClassName":"p"}')).toEqual({ r: { ok: true, value: { priorityClassName: 'p' } }, errors: [] });
    expect(parse('[1]')).toEqual({ r: { ok: false }, errors: ['s: must be a JSON object, got array'] });
    expect(parse('{"x":1}')).toEqual({ r: { ok: false }, errors: ['s: unknown field "x"'] });
  });

  it('goes into settings as one string key, chunked when long', () => {
    expect(k8sOptionsSettings({ priorityClassName: 'p' })).toEqual({ k8sOptions: '{"priorityClassName":"p"}' });
    expect(Object.keys(k8sOptionsSettings({ podLabels: { a: 'x'.repeat(600) } }))).toEqual(['k8sOptions', 'k8sOptions01']);
  });
});

describe('settings.processOptions', () => {
  const parse = (text: string) => {
    const issues = new IssueCollector();
    return { r: parseProcessOptions(text, ['p'], issues), errors: issues.errors.map((i) => `${i.path}: ${i.message}`) };
  };

  it('is no process form when empty, the form with its defaults when valid', () => {
    expect(parse('')).toEqual({ r: { ok: true, value: undefined }, errors: [] });
    expect(parse('{"command":"c","workingDir":"w","args":["a"],"env":{"A_1":"v","_b":""}}')).toEqual({ r: { ok: true, value: { command: 'c', workingDir: 'w', args: ['a'], env: { A_1: 'v', _b: '' } } }, errors: [] });
  });

  it.each([
    ['{"command":""}', 'p.command: must not be empty'],
    [`{"command":"${'c'.repeat(4097)}"}`, 'p.command: must be at most 4096'],
    ['{"command":"c","workingDir":""}', 'p.workingDir: must not be empty'],
    [`{"command":"c","workingDir":"${'w'.repeat(4097)}"}`, 'p.workingDir: must be at most 4096'],
    [`{"command":"c","args":["${'a'.repeat(65537)}"]}`, 'p.args[0]: must be at most 65536'],
    [`{"command":"c","args":${JSON.stringify(Array.from({ length: 1025 }, () => 'a'))}}`, 'p.args: must be at most 1024'],
    [`{"command":"c","env":{"A":"${'v'.repeat(65537)}"}}`, 'p.env.A: must be at most 65536'],
    ['{"command":"c","env":{"1A":"v"}}', 'p.env.1A: an environment variable name is letters, digits and "_", not starting with a digit'],
    ['{"command":"c","env":{"A-B":"v"}}', 'p.env.A-B: an environment variable name is letters, digits and "_", not starting with a digit'],
    [`{"command":"c","env":{"${'A'.repeat(257)}":"v"}}`, `p.env.${'A'.repeat(257)}: an environment variable name is letters, digits and "_", not starting with a digit`],
    ['{"command":"c","env":{"__proto__":"v"}}', 'p.env.__proto__: may not be "__proto__"'],
    ['"c"', 'p: must be a JSON object {"command", "args", "env", "workingDir"}, got string'],
  ])('refuses %s', (text, error) => {
    expect(parse(text)).toEqual({ r: { ok: false }, errors: [error] });
  });

  it('accepts the limits themselves', () => {
    expect(parse(`{"command":"${'c'.repeat(4096)}","workingDir":"${'w'.repeat(4096)}","args":${JSON.stringify(Array.from({ length: 1024 }, () => 'a'))},"env":{"${'A'.repeat(256)}":"${'v'.repeat(65536)}"}}`).errors).toEqual([]);
  });

  it('goes into settings as one string key', () => {
    expect(processOptionsSettings({ command: 'c', args: [], env: {} })).toEqual({ processOptions: '{"command":"c","args":[],"env":{}}' });
  });
});
