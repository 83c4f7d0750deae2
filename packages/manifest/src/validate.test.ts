import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { validateManifest } from './validate.js';

const example = JSON.parse(readFileSync(new URL('../../../examples/simulated-temperature.json', import.meta.url), 'utf8')) as Record<string, unknown>;

/** A minimal valid manifest in the shape of Microsoft's quickstart, with overrides applied by path. */
function manifest(edit?: (m: { agent: Record<string, any>; hub: Record<string, any>; content: Record<string, any> }) => void): unknown {
  const content: Record<string, any> = {
    $edgeAgent: {
      'properties.desired': {
        schemaVersion: '1.1',
        runtime: { type: 'docker', settings: { minDockerVersion: 'v1.25', loggingOptions: '', registryCredentials: {} } },
        systemModules: {
          edgeAgent: { type: 'docker', settings: { image: 'mcr.microsoft.com/azureiotedge-agent:1.5', createOptions: '{}' } },
          edgeHub: {
            type: 'docker',
            status: 'running',
            restartPolicy: 'always',
            settings: { image: 'mcr.microsoft.com/azureiotedge-hub:1.5', createOptions: '{"HostConfig":{"PortBindings":{"8883/tcp":[{"HostPort":"8883"}]}}}' },
          },
        },
        modules: {
          tempSensor: {
            version: '1.0',
            type: 'docker',
            status: 'running',
            restartPolicy: 'always',
            settings: { image: 'mcr.microsoft.com/azureiotedge-simulated-temperature-sensor:1.5', createOptions: '' },
          },
        },
      },
    },
    $edgeHub: {
      'properties.desired': {
        schemaVersion: '1.1',
        routes: { upstream: 'FROM /messages/* INTO $upstream' },
        storeAndForwardConfiguration: { timeToLiveSecs: 7200 },
      },
    },
  };
  edit?.({ agent: content.$edgeAgent['properties.desired'], hub: content.$edgeHub['properties.desired'], content });
  return { modulesContent: content };
}

function errorsOf(input: unknown): string[] {
  const r = validateManifest(input);
  if (r.ok) return [];
  return r.error.map((i) => `${i.path}: ${i.message}`);
}

function warningsOf(input: unknown): string[] {
  return validateManifest(input).warnings.map((i) => `${i.path}: ${i.message}`);
}

describe('validateManifest: accepted manifests', () => {
  it('accepts the sample manifest and normalizes it', () => {
    const r = validateManifest(example);
    expect(r.ok).toBe(true);
    if (!r.ok) return;
    const s = r.manifest.spec;
    expect(Object.keys(s.modules).sort()).toEqual(['SimulatedTemperatureSensor', 'filter']);
    expect(s.modules.filter?.restartPolicy).toBe('on-failure');
    expect(s.modules.filter?.startupOrder).toBe(2);
    expect(s.modules.filter?.k8s?.nodeSelector).toEqual({ 'kubernetes.io/os': 'linux' });
    expect(s.routes.alerts).toEqual({ route: expect.stringContaining('$body.machine.temperature') as string, priority: 0, timeToLiveSecs: 86400 });
    expect(s.storeAndForward).toEqual({ timeToLiveSecs: 7200, maxSizeBytes: 104857600 });
    expect(s.registryCredentials.contoso?.address).toBe('contoso.azurecr.io');
    expect(r.manifest.moduleTwins.filter).toEqual({ TemperatureThreshold: 25 });
    expect(r.manifest.createOptions.SimulatedTemperatureSensor?.HostConfig?.Memory).toBe(134217728);
  });

  it('accepts the three wrappings: bare, {modulesContent}, {content: {modulesContent}}', () => {
    const m = manifest() as { modulesContent: unknown };
    expect(validateManifest(m.modulesContent).ok).toBe(true);
    expect(validateManifest(m).ok).toBe(true);
    expect(validateManifest({ content: m }).ok).toBe(true);
  });

  it('applies IoT Edge defaults to modules', () => {
    const r = validateManifest(manifest(({ agent }) => {
      agent.modules.tempSensor = { type: 'docker', settings: { image: 'sensor' } };
    }));
    expect(r.ok).toBe(true);
    if (!r.ok) return;
    expect(r.manifest.spec.modules.tempSensor).toMatchObject({ status: 'running', restartPolicy: 'always', imagePullPolicy: 'on-create', env: {} });
    expect(r.manifest.spec.modules.tempSensor?.startupOrder).toBeUndefined();
  });

  it('reassembles createOptions chunks in order', () => {
    const full = JSON.stringify({ Cmd: ['run'], HostConfig: { Binds: ['/data:/data'], Privileged: true } });
    const r = validateManifest(manifest(({ agent }) => {
      agent.modules.tempSensor.settings = { image: 'x', createOptions: full.slice(0, 10), createOptions01: full.slice(10, 20), createOptions02: full.slice(20) };
    }));
    expect(r.ok).toBe(true);
    if (r.ok) expect(r.manifest.createOptions.tempSensor).toMatchObject({ Cmd: ['run'], HostConfig: { Binds: ['/data:/data'], Privileged: true } });
  });

  it('coerces what edgeAgent coerces, with a warning each', () => {
    const input = manifest(({ agent }) => {
      agent.modules.tempSensor.settings.createOptions = '{"HostConfig":{"Privileged":"true","Memory":"73400320"},"env":["A=1"]}';
      agent.modules.tempSensor.env = { N: { value: 0 } };
    });
    const r = validateManifest(input);
    expect(r.ok).toBe(true);
    if (!r.ok) return;
    expect(r.manifest.createOptions.tempSensor).toMatchObject({ HostConfig: { Privileged: true, Memory: 73400320 }, Env: ['A=1'] });
    expect(r.manifest.spec.modules.tempSensor?.env).toEqual({ N: { value: '0' } });
    const w = warningsOf(input).join('\n');
    expect(w).toContain('$edgeAgent.properties.desired.modules.tempSensor.settings.createOptions.HostConfig.Privileged: boolean given as the string "true"');
    expect(w).toContain('createOptions.HostConfig.Memory: number given as the string');
    expect(w).toContain('createOptions.env: read as "Env"');
    expect(w).toContain('modules.tempSensor.env.N.value: number 0 read as the string "0"');
  });

  it('warns about typos and unknown fields but accepts them', () => {
    const input = manifest(({ agent, content }) => {
      agent.modules.tempSensor.settings.createOptions = '{"HostConfir":{"Memory":1},"HostConfig":{"Memroy":5}}';
      content.tempSensor = { 'properties.desired': { a: 1 } };
      content.ghost = { 'properties.desired': {} };
    });
    expect(errorsOf(input)).toEqual([]);
    const w = warningsOf(input).join('\n');
    expect(w).toContain('createOptions.HostConfir: unknown createOptions field; Docker ignores it, so does Kedge (did you mean "HostConfig"?)');
    expect(w).toContain('createOptions.HostConfig.Memroy: unknown HostConfig field; Docker ignores it, so does Kedge (did you mean "Memory"?)');
    expect(w).toContain('ghost: desired properties for a module this deployment does not run');
  });

  it('warns about routes that name modules the deployment does not run', () => {
    const input = manifest(({ hub }) => {
      hub.routes.r2 = 'FROM /messages/modules/tempSensor/outputs/* INTO BrokeredEndpoint("/modules/missing/inputs/in")';
    });
    expect(errorsOf(input)).toEqual([]);
    expect(warningsOf(input)).toContain('$edgeHub.properties.desired.routes.r2: refers to module "missing", which this deployment does not run');
  });

  it('accepts $edgeHub 1.0 with string routes and 1.2/1.3 with mqttBroker (warned)', () => {
    expect(errorsOf(manifest(({ hub }) => { hub.schemaVersion = '1.0'; }))).toEqual([]);
    const w = warningsOf(manifest(({ hub }) => { hub.schemaVersion = '1.2'; hub.mqttBroker = { authorizations: [] }; }));
    expect(w.join('\n')).toContain('$edgeHub.properties.desired.mqttBroker');
  });

  it('keeps routes as written and accepts the limits of priority and timeToLiveSecs', () => {
    const r = validateManifest(manifest(({ hub }) => {
      hub.routes.hi = { route: 'FROM /* INTO $upstream', priority: 0, timeToLiveSecs: 4294967295 };
      hub.routes.lo = { route: 'FROM /* INTO $upstream', priority: 9, timeToLiveSecs: 0, note: 'x' };
    }));
    expect(r.ok && r.manifest.spec.routes).toEqual({
      upstream: { route: 'FROM /messages/* INTO $upstream' },
      hi: { route: 'FROM /* INTO $upstream', priority: 0, timeToLiveSecs: 4294967295 },
      lo: { route: 'FROM /* INTO $upstream', priority: 9, timeToLiveSecs: 0 },
    });
    expect(r.warnings.map((i) => `${i.path}: ${i.message}`)).toEqual(['$edgeHub.properties.desired.routes.lo.note: unknown route property; ignored']);
  });

  it('reads $edgeHub desired properties as they are, not what a nested "properties" key holds', () => {
    const input = manifest(({ hub }) => { hub.properties = { desired: { schemaVersion: '9.9', routes: 5 } }; });
    expect(errorsOf(input)).toEqual([]);
    expect(warningsOf(input)).toContain('$edgeHub.properties.desired.properties: unknown $edgeHub property; ignored');
  });

  it('accepts $edgeAgent schemaVersion 1.0, 1.0.x, 1.1 and 1.1.0, and keeps it as written', () => {
    for (const v of ['1.0', '1.0.5', '1.1', '1.1.0', ' 1.1 ']) {
      const r = validateManifest(manifest(({ agent }) => { agent.schemaVersion = v; }));
      expect(r.ok && r.manifest.spec.agentSchemaVersion, v).toBe(v.trim());
    }
  });

  it('skips empty route strings as edgeHub does', () => {
    const r = validateManifest(manifest(({ hub }) => { hub.routes.empty = ''; }));
    expect(r.ok && Object.keys(r.manifest.spec.routes)).toEqual(['upstream']);
  });

});

describe('validateManifest: rejected manifests name the path', () => {
  const cases: [string, (m: { agent: Record<string, any>; hub: Record<string, any>; content: Record<string, any> }) => void, string][] = [
    ['missing image', ({ agent }) => { delete agent.modules.tempSensor.settings.image; }, '$edgeAgent.properties.desired.modules.tempSensor.settings.image: required'],
    ['empty image', ({ agent }) => { agent.systemModules.edgeHub.settings.image = ''; }, '$edgeAgent.properties.desired.systemModules.edgeHub.settings.image: must not be empty'],
    ['missing runtime', ({ agent }) => { delete agent.runtime; }, '$edgeAgent.properties.desired.runtime: required'],
    ['bad runtime type', ({ agent }) => { agent.runtime.type = 'moby'; }, '$edgeAgent.properties.desired.runtime.type: must be "docker", got "moby"'],
    ['missing edgeHub system module', ({ agent }) => { delete agent.systemModules.edgeHub; }, '$edgeAgent.properties.desired.systemModules.edgeHub: required'],
    ['bad restartPolicy', ({ agent }) => { agent.modules.tempSensor.restartPolicy = 'on-failured'; }, '$edgeAgent.properties.desired.modules.tempSensor.restartPolicy: must be one of "never", "on-failure", "on-unhealthy", "always", got "on-failured"'],
    ['bad status', ({ agent }) => { agent.modules.tempSensor.status = 'paused'; }, '$edgeAgent.properties.desired.modules.tempSensor.status: must be one of "running", "stopped", got "paused"'],
    ['bad imagePullPolicy', ({ agent }) => { agent.modules.tempSensor.imagePullPolicy = 'always'; }, '$edgeAgent.properties.desired.modules.tempSensor.imagePullPolicy: must be one of "on-create", "never", got "always"'],
    ['negative startupOrder', ({ agent }) => { agent.modules.tempSensor.startupOrder = -1; }, '$edgeAgent.properties.desired.modules.tempSensor.startupOrder: must be an integer from 0 to 4294967295, got -1'],
    ['module type', ({ agent }) => { agent.modules.tempSensor.type = 'rkt'; }, '$edgeAgent.properties.desired.modules.tempSensor.type: must be "docker", got "rkt"'],
    ['agent schemaVersion 9.0', ({ agent }) => { agent.schemaVersion = '9.0'; }, '$edgeAgent.properties.desired.schemaVersion: unsupported version "9.0": edgeAgent accepts 1.0 and 1.1'],
    ['agent schemaVersion 1.2', ({ agent }) => { agent.schemaVersion = '1.2'; }, '$edgeAgent.properties.desired.schemaVersion: unsupported version "1.2": edgeAgent accepts 1.0 and 1.1'],
    ['agent schemaVersion 1.1.1', ({ agent }) => { agent.schemaVersion = '1.1.1'; }, '$edgeAgent.properties.desired.schemaVersion: unsupported version "1.1.1": edgeAgent accepts 1.0 and 1.1'],
    ['agent schemaVersion 2.0', ({ agent }) => { agent.schemaVersion = '2.0'; }, '$edgeAgent.properties.desired.schemaVersion: unsupported version "2.0"'],
    ['agent schemaVersion 0.9', ({ agent }) => { agent.schemaVersion = '0.9'; }, '$edgeAgent.properties.desired.schemaVersion: unsupported version "0.9"'],
    ['agent schemaVersion not a version', ({ agent }) => { agent.schemaVersion = '1'; }, '$edgeAgent.properties.desired.schemaVersion: must be a version such as "1.1", got "1"'],
    ['agent schemaVersion missing', ({ agent }) => { delete agent.schemaVersion; }, '$edgeAgent.properties.desired.schemaVersion: required'],
    ['hub schemaVersion 1.4', ({ hub }) => { hub.schemaVersion = '1.4'; }, '$edgeHub.properties.desired.schemaVersion: unsupported version "1.4": edgeHub accepts 1.0 to 1.3'],
    ['hub schemaVersion missing', ({ hub }) => { delete hub.schemaVersion; }, '$edgeHub.properties.desired.schemaVersion: required'],
    ['route object on 1.0', ({ hub }) => { hub.schemaVersion = '1.0'; hub.routes.upstream = { route: 'FROM /* INTO $upstream' }; }, '$edgeHub.properties.desired.routes.upstream: route objects need $edgeHub schemaVersion 1.1 or later (this is 1.0)'],
    ['route priority 10', ({ hub }) => { hub.routes.upstream = { route: 'FROM /* INTO $upstream', priority: 10 }; }, '$edgeHub.properties.desired.routes.upstream.priority: must be an integer from 0 (highest) to 9, got 10'],
    ['route TTL over 2^32-1', ({ hub }) => { hub.routes.upstream = { route: 'FROM /* INTO $upstream', timeToLiveSecs: 4294967296 }; }, '$edgeHub.properties.desired.routes.upstream.timeToLiveSecs: must be an integer from 0 to 4294967295, got 4294967296'],
    ['blank route in a route object', ({ hub }) => { hub.routes.upstream = { route: ' ', priority: 1 }; }, '$edgeHub.properties.desired.routes.upstream.route: expected a non-empty route string, got " "'],
    ['route a number', ({ hub }) => { hub.routes.upstream = 5; }, '$edgeHub.properties.desired.routes.upstream: expected a route string or {"route", "priority", "timeToLiveSecs"}, got number'],
    ['routes an array', ({ hub }) => { hub.routes = []; }, '$edgeHub.properties.desired.routes: expected an object of named routes, got array'],
    ['hub schemaVersion a number', ({ hub }) => { hub.schemaVersion = 1.1; }, '$edgeHub.properties.desired.schemaVersion: must be a version such as "1.1", got 1.1'],
    ['store-and-forward not an object', ({ hub }) => { hub.storeAndForwardConfiguration = 'forever'; }, '$edgeHub.properties.desired.storeAndForwardConfiguration: expected an object, got string'],
    ['store limit not positive', ({ hub }) => { hub.storeAndForwardConfiguration.storeLimits = { maxSizeBytes: 0 }; }, '$edgeHub.properties.desired.storeAndForwardConfiguration.storeLimits.maxSizeBytes: expected a positive integer, got 0'],
    ['route TTL negative', ({ hub }) => { hub.routes.upstream = { route: 'FROM /* INTO $upstream', timeToLiveSecs: -5 }; }, '$edgeHub.properties.desired.routes.upstream.timeToLiveSecs: must be an integer from 0 to 4294967295, got -5'],
    ['route name with a dot', ({ hub }) => { hub.routes['a.b'] = 'FROM /* INTO $upstream'; }, '$edgeHub.properties.desired.routes.a.b: route name "a.b" contains "."; route names must not contain ".", "$", "#" or space'],
    ['registry address empty', ({ agent }) => { agent.runtime.settings.registryCredentials.acr = { address: '', username: 'u', password: 'p' }; }, '$edgeAgent.properties.desired.runtime.settings.registryCredentials.acr.address: must not be empty or whitespace'],
    ['registry username a number', ({ agent }) => { agent.runtime.settings.registryCredentials.acr = { address: 'a.io', username: 1, password: 'p' }; }, '$edgeAgent.properties.desired.runtime.settings.registryCredentials.acr.username: expected a string, got number'],
    ['registry password missing', ({ agent }) => { agent.runtime.settings.registryCredentials.acr = { address: 'a.io', username: 'u' }; }, '$edgeAgent.properties.desired.runtime.settings.registryCredentials.acr.password: required'],
    ['createOptions not JSON', ({ agent }) => { agent.modules.tempSensor.settings.createOptions = '{"HostConfig":'; }, '$edgeAgent.properties.desired.modules.tempSensor.settings.createOptions: not valid JSON'],
    ['createOptions an array', ({ agent }) => { agent.modules.tempSensor.settings.createOptions = '[1,2,3]'; }, '$edgeAgent.properties.desired.modules.tempSensor.settings.createOptions: must be a JSON object, got array'],
    ['createOptions a number', ({ agent }) => { agent.modules.tempSensor.settings.createOptions = 5; }, '$edgeAgent.properties.desired.modules.tempSensor.settings.createOptions: expected a JSON string, got number'],
    ['createOptions chunk gap', ({ agent }) => { agent.modules.tempSensor.settings = { image: 'x', createOptions: '{', createOptions02: '}' }; }, '$edgeAgent.properties.desired.modules.tempSensor.settings.createOptions01: missing: createOptions chunks must be contiguous'],
    ['createOptions chunk not a string', ({ agent }) => { agent.modules.tempSensor.settings = { image: 'x', createOptions: '{', createOptions01: { a: 1 } }; }, '$edgeAgent.properties.desired.modules.tempSensor.settings.createOptions01: expected a JSON string, got object'],
    ['module name reserved', ({ agent }) => { agent.modules.$bad = agent.modules.tempSensor; }, '$edgeAgent.properties.desired.modules.$bad: module names starting with "$" are reserved for system modules'],
    ['module names differing only in case', ({ agent }) => { agent.modules.TempSensor = agent.modules.tempSensor; }, '$edgeAgent.properties.desired.modules.TempSensor: module names must differ in more than letter case ("tempSensor")'],
    ['env without value', ({ agent }) => { agent.modules.tempSensor.env = { A: 'x' }; }, '$edgeAgent.properties.desired.modules.tempSensor.env.A: expected {"value": "<string>"}'],
    ['k8sOptions with a bad quantity', ({ agent }) => { agent.modules.tempSensor.settings.k8sOptions = '{"resources":{"limits":{"memory":"lots"}}}'; }, '$edgeAgent.properties.desired.modules.tempSensor.settings.k8sOptions.resources.limits.memory: not a Kubernetes quantity'],
    ['k8sOptions with an unknown field', ({ agent }) => { agent.modules.tempSensor.settings.k8sOptions = '{"replicaz":2}'; }, '$edgeAgent.properties.desired.modules.tempSensor.settings.k8sOptions: unknown field "replicaz"'],
    ['k8s object with an unknown field', ({ agent }) => { agent.modules.tempSensor.k8s = { replicaz: 2 }; }, '$edgeAgent.properties.desired.modules.tempSensor.k8s: unknown field "replicaz"'],
    ['k8s-experimental bad service type', ({ agent }) => { agent.modules.tempSensor.settings.createOptions = '{"k8s-experimental":{"serviceOptions":{"type":"Ingress"}}}'; }, '$edgeAgent.properties.desired.modules.tempSensor.settings.createOptions.k8s-experimental.serviceOptions.type: must be one of "ClusterIP", "NodePort", "LoadBalancer", got "Ingress"'],
    ['store-and-forward TTL not an integer', ({ hub }) => { hub.storeAndForwardConfiguration.timeToLiveSecs = '7200'; }, '$edgeHub.properties.desired.storeAndForwardConfiguration.timeToLiveSecs: expected an integer, got "7200"'],
    ['missing $edgeHub', ({ content }) => { delete content.$edgeHub; }, '$edgeHub: required'],
    ['layered key in a full manifest', ({ content }) => { content.$edgeHub['properties.desired.routes.r'] = 'FROM /* INTO $upstream'; }, '$edgeHub.properties.desired.routes.r: a layered-deployment path; only valid in a layered deployment'],
    ['module twin not an object', ({ content }) => { content.tempSensor = 5; }, 'tempSensor: expected an object with "properties.desired", got number'],
  ];
  it.each(cases)('%s', (_name, edit, expected) => {
    const errs = errorsOf(manifest(edit));
    expect(errs.some((e) => e.startsWith(expected)), `errors were:\n${errs.join('\n')}`).toBe(true);
  });

  it('rejects a bad route with line and column', () => {
    const errs = errorsOf(manifest(({ hub }) => {
      hub.routes.upstream = 'FROM * INTO $upstream';
      hub.routes.alerts = { route: 'FROM /* INTO nowhere', priority: 0 };
    }));
    expect(errs).toEqual([
      "$edgeHub.properties.desired.routes.upstream: line 1, column 6: Syntax error: expected a source path starting with '/'",
      "$edgeHub.properties.desired.routes.alerts.route: line 1, column 21: Syntax error: expected '(' after nowhere",
    ]);
  });

  it('reports every error at once, not just the first', () => {
    const errs = errorsOf(manifest(({ agent, hub }) => {
      delete agent.runtime;
      agent.modules.tempSensor.restartPolicy = 'sometimes';
      hub.schemaVersion = '2.0';
    }));
    expect(errs.length).toBe(3);
  });

  it('rejects the deprecated moduleContent key and non-objects', () => {
    expect(errorsOf({ moduleContent: {} })[0]).toContain('moduleContent: "moduleContent" is not supported');
    expect(errorsOf([])).toEqual(['$: a manifest must be a JSON object, got array']);
    expect(errorsOf(null)).toEqual(['$: a manifest must be a JSON object, got null']);
    expect(errorsOf({ foo: 1 })).toEqual(['modulesContent: required (expected {"modulesContent": {"$edgeAgent": …, "$edgeHub": …}})']);
  });
});

// Issue 15: each rule of validateManifest with its exact path and outcome, the passing side included.
describe('validateManifest: the document around modulesContent', () => {
  it('warns about keys beside modulesContent, and reads a configuration\'s content', () => {
    const m = manifest() as { modulesContent: unknown };
    const r = validateManifest({ modulesContent: m.modulesContent, id: 'x', content: 1 });
    expect(r.ok).toBe(true);
    expect(r.warnings.map((i) => `${i.path}: ${i.message}`)).toEqual(['id: not part of a deployment manifest; ignored']);
    expect(validateManifest({ content: { modulesContent: m.modulesContent }, targetCondition: 'x' }).ok).toBe(true);
  });

  it('refuses a modulesContent that is not an object, and the deprecated deviceContent key', () => {
    expect(errorsOf({ modulesContent: [] })).toEqual(['modulesContent: expected an object, got array']);
    expect(errorsOf({ content: { modulesContent: null } })).toEqual(['modulesContent: expected an object, got null']);
    expect(errorsOf({ deviceContent: {} })).toEqual(['deviceContent: "deviceContent" is not supported; the key is "modulesContent" (the az CLI rewrites the deprecated name, IoT Edge does not)']);
  });

  it('takes a bare modulesContent holding only one of the two system twins, and asks for the other', () => {
    const m = manifest() as { modulesContent: Record<string, unknown> };
    expect(errorsOf({ $edgeHub: m.modulesContent.$edgeHub })).toEqual(['$edgeAgent: required']);
    expect(errorsOf({ $edgeAgent: m.modulesContent.$edgeAgent })).toEqual(['$edgeHub: required']);
  });

  it('names each problem of a module twin entry once', () => {
    expect(errorsOf(manifest(({ content }) => { content.tempSensor = 5; }))).toEqual(['tempSensor: expected an object with "properties.desired", got number']);
    expect(errorsOf(manifest(({ content }) => { content.tempSensor = { 'properties.desired': [] }; }))).toEqual(['tempSensor.properties.desired: expected an object, got array']);
    expect(errorsOf(manifest(({ content }) => { content.tempSensor = {}; }))).toEqual(['tempSensor.properties.desired: required']);
    expect(errorsOf(manifest(({ content }) => { content.tempSensor = { 'properties.desired': {}, tags: {} }; }))).toEqual(['tempSensor.tags: unknown key; a module entry holds only "properties.desired"']);
    // Only layered keys: one error for them, none for the missing properties.desired.
    expect(errorsOf(manifest(({ content }) => { content.tempSensor = { 'properties.desired.a': 1 }; }))).toEqual(['tempSensor.properties.desired.a: a layered-deployment path; only valid in a layered deployment, which is merged onto a base deployment']);
    expect(errorsOf(manifest(({ content }) => { content.$edgeAgent = 'x'; }))).toEqual(['$edgeAgent: expected an object with "properties.desired", got string']);
  });

  it('keeps the desired properties of module twins, and warns about those of modules it does not run, in any case', () => {
    const r = validateManifest(manifest(({ content }) => {
      content.TEMPSENSOR = { 'properties.desired': { a: 1 } };
      content.ghost = { 'properties.desired': { b: 2 } };
    }));
    expect(r.ok).toBe(true);
    if (!r.ok) return;
    expect(r.manifest.moduleTwins).toEqual({ TEMPSENSOR: { a: 1 }, ghost: { b: 2 } });
    expect(r.warnings.map((i) => `${i.path}: ${i.message}`)).toEqual(['ghost: desired properties for a module this deployment does not run']);
  });
});

describe('validateManifest: what a twin can hold', () => {
  it('refuses a desired document over 32 KB with its size', () => {
    const errs = errorsOf(manifest(({ content }) => { content.tempSensor = { 'properties.desired': { big: 'x'.repeat(32 * 1024) } }; }));
    expect(errs).toEqual([`tempSensor.properties.desired: ${32 * 1024 + 10} bytes; IoT Hub keeps a twin's desired properties to 32768 bytes`]);
    const fits = 'x'.repeat(32 * 1024 - 10);
    expect(errorsOf(manifest(({ content }) => { content.tempSensor = { 'properties.desired': { big: fits } }; }))).toEqual([]);
  });

  it('refuses a key a twin cannot hold, and points a k8s object with such a key to settings.k8sOptions', () => {
    expect(errorsOf(manifest(({ content }) => { content.tempSensor = { 'properties.desired': { 'a.b': 1 } }; }))).toEqual([
      expect.stringMatching(/^tempSensor\.properties\.desired\.a\.b: IoT Hub refuses this in a twin: .*[^)]$/) as unknown as string,
    ]);
    const k8s = errorsOf(manifest(({ agent }) => { agent.modules.tempSensor.k8s = { nodeSelector: { 'kubernetes.io/os': 'linux' } }; }));
    expect(k8s).toHaveLength(1);
    expect(k8s[0]).toMatch(/^\$edgeAgent\.properties\.desired\.modules\.tempSensor\.k8s\.nodeSelector\.kubernetes\.io\/os: IoT Hub refuses this in a twin: .*; give the module's Kubernetes options as the JSON string settings\.k8sOptions instead of the k8s object$/);
    const sys = errorsOf(manifest(({ agent }) => { agent.systemModules.edgeHub.k8s = { nodeSelector: { 'a b': 'c' } }; }));
    expect(sys[0]).toMatch(/settings\.k8sOptions instead of the k8s object$/);
    // The same key elsewhere in $edgeAgent gets no such hint.
    const other = errorsOf(manifest(({ agent }) => { agent.runtime.settings['a.b'] = 1; }));
    expect(other).toHaveLength(1);
    expect(other[0]).not.toMatch(/k8sOptions/);
  });
});

describe('validateManifest: $edgeAgent', () => {
  it.each([
    ['runtime not an object', ({ agent }: M) => { agent.runtime = 'docker'; }, ['$edgeAgent.properties.desired.runtime: expected an object, got string']],
    ['runtime type missing', ({ agent }: M) => { delete agent.runtime.type; }, ['$edgeAgent.properties.desired.runtime.type: required']],
    ['runtime settings not an object', ({ agent }: M) => { agent.runtime.settings = []; }, ['$edgeAgent.properties.desired.runtime.settings: expected an object, got array']],
    ['registryCredentials not an object', ({ agent }: M) => { agent.runtime.settings.registryCredentials = 'x'; }, ['$edgeAgent.properties.desired.runtime.settings.registryCredentials: expected an object, got string']],
    ['a credential not an object', ({ agent }: M) => { agent.runtime.settings.registryCredentials.r = 'x'; }, ['$edgeAgent.properties.desired.runtime.settings.registryCredentials.r: expected an object with address, username and password, got string']],
    ['a credential address with a space', ({ agent }: M) => { agent.runtime.settings.registryCredentials.r = { address: 'a .io', username: 'u', password: 'p' }; }, ['$edgeAgent.properties.desired.runtime.settings.registryCredentials.r.address: must not contain whitespace']],
    ['a blank password', ({ agent }: M) => { agent.runtime.settings.registryCredentials.r = { address: 'a.io', username: 'u', password: ' ' }; }, ['$edgeAgent.properties.desired.runtime.settings.registryCredentials.r.password: must not be empty or whitespace']],
    ['systemModules missing', ({ agent }: M) => { delete agent.systemModules; }, ['$edgeAgent.properties.desired.systemModules: required']],
    ['systemModules not an object', ({ agent }: M) => { agent.systemModules = []; }, ['$edgeAgent.properties.desired.systemModules: expected an object, got array']],
    ['edgeAgent missing', ({ agent }: M) => { delete agent.systemModules.edgeAgent; }, ['$edgeAgent.properties.desired.systemModules.edgeAgent: required']],
    ['an unknown system module', ({ agent }: M) => { agent.systemModules.edgeX = agent.systemModules.edgeHub; }, ['$edgeAgent.properties.desired.systemModules.edgeX: unknown system module; only edgeAgent and edgeHub exist']],
    ['modules not an object', ({ agent }: M) => { agent.modules = ['x']; }, ['$edgeAgent.properties.desired.modules: expected an object, got array']],
    ['a module not an object', ({ agent }: M) => { agent.modules.tempSensor = 'x'; }, ['$edgeAgent.properties.desired.modules.tempSensor: expected an object, got string']],
    ['a module name of 129 characters', ({ agent }: M) => { agent.modules['m'.repeat(129)] = agent.modules.tempSensor; }, [`$edgeAgent.properties.desired.modules.${'m'.repeat(129)}: module name is longer than 128 characters`]],
    ['a module name with a slash', ({ agent }: M) => { agent.modules['a/b'] = agent.modules.tempSensor; }, ["$edgeAgent.properties.desired.modules.a/b: module name may only contain letters, digits and -:.+%_#*?!(),=@;$'"]],
  ])('refuses %s, exactly', (_what, edit, expected) => {
    expect(errorsOf(manifest(edit))).toEqual(expected);
  });

  it('refuses an empty module name and one a twin cannot hold, as a twin key and as a module name', () => {
    const empty = errorsOf(manifest(({ agent }) => { agent.modules[''] = agent.modules.tempSensor; }));
    expect(empty).toContain('$edgeAgent.properties.desired.modules.: module name must not be empty');
    expect(empty).toHaveLength(2);
    const space = errorsOf(manifest(({ agent }) => { agent.modules['a b'] = agent.modules.tempSensor; }));
    expect(space).toContain("$edgeAgent.properties.desired.modules.a b: module name may only contain letters, digits and -:.+%_#*?!(),=@;$'");
    expect(space).toHaveLength(2);
  });

  it('accepts what may be absent or null: runtime settings, registryCredentials, modules', () => {
    expect(errorsOf(manifest(({ agent }) => { delete agent.runtime.settings; }))).toEqual([]);
    expect(errorsOf(manifest(({ agent }) => { agent.runtime.settings.registryCredentials = null; }))).toEqual([]);
    expect(errorsOf(manifest(({ agent }) => { agent.modules = null; }))).toEqual([]);
    const r = validateManifest(manifest(({ agent }) => { delete agent.modules; }));
    expect(r.ok && r.manifest.spec.modules).toEqual({});
    expect(errorsOf(manifest(({ agent }) => { agent.modules[`${'m'.repeat(127)}-`] = agent.modules.tempSensor; }))).toEqual([]);
  });

  it('accepts a version with a fourth part, and the $edgeAgent keys IoT Hub adds, without a warning', () => {
    expect(errorsOf(manifest(({ agent }) => { agent.schemaVersion = '1.1.0.0'; }))).toEqual([]);
    const input = manifest(({ agent }) => { agent.$version = 3; agent.$metadata = {}; agent.integrity = {}; agent.extra = 1; });
    expect(warningsOf(input)).toEqual(['$edgeAgent.properties.desired.extra: unknown $edgeAgent property; ignored']);
  });

  it('refuses schema versions that are not numbers or have a fifth part', () => {
    for (const v of ['1.1.0.0.0', 'a.b', '1.1a', '']) {
      expect(errorsOf(manifest(({ agent }) => { agent.schemaVersion = v; })), v).toEqual([`$edgeAgent.properties.desired.schemaVersion: must be a version such as "1.1", got ${JSON.stringify(v)}`]);
    }
  });

  it('returns the registry credentials it checked', () => {
    const r = validateManifest(manifest(({ agent }) => { agent.runtime.settings.registryCredentials = { r: { address: 'a.io', username: 'u', password: 'p', extra: 1 } }; }));
    expect(r.ok && r.manifest.spec.registryCredentials).toEqual({ r: { address: 'a.io', username: 'u', password: 'p' } });
  });

  it('returns the parsed createOptions of the system modules under $edgeAgent and $edgeHub', () => {
    const r = validateManifest(manifest());
    expect(r.ok && Object.keys(r.manifest.createOptions).sort()).toEqual(['$edgeAgent', '$edgeHub', 'tempSensor']);
    expect(r.ok && r.manifest.createOptions.$edgeHub?.HostConfig?.PortBindings).toEqual({ '8883/tcp': [{ HostPort: '8883' }] });
    expect(r.ok && r.manifest.spec.systemModules.edgeHub?.settings.image).toBe('mcr.microsoft.com/azureiotedge-hub:1.5');
  });
});

type M = { agent: Record<string, any>; hub: Record<string, any>; content: Record<string, any> };

describe('validateManifest: a module', () => {
  const sensor = (edit: (t: Record<string, any>) => void) => manifest(({ agent }) => edit(agent.modules.tempSensor as Record<string, any>));
  const at = (field: string) => `$edgeAgent.properties.desired.modules.tempSensor.${field}`;

  it.each([
    ['type missing', (t: Record<string, any>) => { delete t.type; }, [`${at('type')}: required`]],
    ['version not a string', (t: Record<string, any>) => { t.version = 1; }, [`${at('version')}: expected a string, got number`]],
    ['startupOrder not an integer', (t: Record<string, any>) => { t.startupOrder = 1.5; }, [`${at('startupOrder')}: must be an integer from 0 to 4294967295, got 1.5`]],
    ['startupOrder above the maximum', (t: Record<string, any>) => { t.startupOrder = 4294967296; }, [`${at('startupOrder')}: must be an integer from 0 to 4294967295, got 4294967296`]],
    ['startupOrder a string', (t: Record<string, any>) => { t.startupOrder = '1'; }, [`${at('startupOrder')}: must be an integer from 0 to 4294967295, got "1"`]],
    ['env not an object', (t: Record<string, any>) => { t.env = []; }, [`${at('env')}: expected an object of {"value": …}, got array`]],
    ['env value an object', (t: Record<string, any>) => { t.env = { A: { value: {} } }; }, [`${at('env.A.value')}: expected a string, got object`]],
    ['env entry without value', (t: Record<string, any>) => { t.env = { A: {} }; }, [`${at('env.A')}: expected {"value": "<string>"}`]],
    ['settings missing', (t: Record<string, any>) => { delete t.settings; }, [`${at('settings')}: required`]],
    ['settings not an object', (t: Record<string, any>) => { t.settings = 'x'; }, [`${at('settings')}: expected an object, got string`]],
    ['image not a string', (t: Record<string, any>) => { t.settings.image = 5; }, [`${at('settings.image')}: expected a string, got number`]],
    ['image blank', (t: Record<string, any>) => { t.settings.image = '  '; }, [`${at('settings.image')}: must not be empty`]],
    ['both k8sOptions and k8s', (t: Record<string, any>) => { t.settings.k8sOptions = '{}'; t.k8s = {}; }, [`${at('k8s')}: give the Kubernetes options once: settings.k8sOptions or k8s, not both`]],
    ['processOptions not JSON', (t: Record<string, any>) => { t.settings.processOptions = '{'; }, [expect.stringMatching(/^\$edgeAgent\.properties\.desired\.modules\.tempSensor\.settings\.processOptions: not valid JSON: /) as unknown as string]],
  ])('refuses %s, exactly', (_what, edit, expected) => {
    expect(errorsOf(sensor(edit))).toEqual(expected);
  });

  it('keeps startupOrder 0 and the maximum, and warns that edgeAgent 1.0 ignores it', () => {
    for (const so of [0, 4294967295]) {
      const r = validateManifest(sensor((t) => { t.startupOrder = so; }));
      expect(r.ok && r.manifest.spec.modules.tempSensor?.startupOrder).toBe(so);
      expect(r.warnings).toEqual([]);
    }
    const old = manifest(({ agent }) => { agent.schemaVersion = '1.0'; agent.modules.tempSensor.startupOrder = 1; });
    expect(warningsOf(old)).toEqual([`${at('startupOrder')}: needs $edgeAgent schemaVersion 1.1; edgeAgent 1.0 ignores it, Kedge honours it`]);
  });

  it('reads env: strings as they are, numbers and booleans as text with a warning, null as none, names Kubernetes refuses with a warning', () => {
    const input = sensor((t) => { t.env = { A: { value: 'x' }, B: { value: true }, '1x': { value: 'v' }, 'b-c_D': { value: '' } }; });
    const r = validateManifest(input);
    expect(r.ok && r.manifest.spec.modules.tempSensor?.env).toEqual({ A: { value: 'x' }, B: { value: 'true' }, '1x': { value: 'v' }, 'b-c_D': { value: '' } });
    expect(warningsOf(input)).toEqual([
      `${at('env.B.value')}: boolean true read as the string "true"`,
      `${at('env.1x')}: not a valid Kubernetes environment variable name (letters, digits, "_", "-", "." and not starting with a digit); it is skipped on Kubernetes`,
    ]);
    expect(errorsOf(sensor((t) => { t.env = null; }))).toEqual([]);
  });

  it('trims the image, keeps a digest, and warns about a nested-edge $upstream image', () => {
    const r = validateManifest(sensor((t) => { t.settings = { image: ' img:1 ', digest: 'sha256:abc' }; }));
    expect(r.ok && r.manifest.spec.modules.tempSensor?.settings).toEqual({ image: 'img:1', createOptions: {}, digest: 'sha256:abc' });
    const up = sensor((t) => { t.settings.image = '$upstream:443/azureiotedge-hub:1.5'; });
    expect(errorsOf(up)).toEqual([]);
    expect(warningsOf(up)).toEqual([`${at('settings.image')}: pulls through a nested-edge parent ("$upstream"); Kedge has no parent device and uses the image name as given`]);
    const plain = validateManifest(sensor((t) => { t.settings = { image: 'img:1', digest: 5 }; }));
    expect(plain.ok && plain.manifest.spec.modules.tempSensor?.settings).toEqual({ image: 'img:1', createOptions: {} });
  });

  it('reads createOptions given as an object (a CR spec module) and keeps the raw options without k8s-experimental', () => {
    const r = validateManifest(sensor((t) => { t.settings.createOptions = { Cmd: ['a'], 'k8s-experimental': { nodeSelector: { a: 'b' } }, Unknown: 1 }; }));
    expect(r.ok).toBe(true);
    if (!r.ok) return;
    expect(r.manifest.spec.modules.tempSensor?.settings.createOptions).toEqual({ Cmd: ['a'], Unknown: 1 });
    expect(r.manifest.spec.modules.tempSensor?.k8s).toEqual({ nodeSelector: { a: 'b' } });
    expect(r.manifest.createOptions.tempSensor).toEqual({ Cmd: ['a'], k8s: { nodeSelector: { a: 'b' } } });
  });

  it('warns about unknown settings and module properties, and passes over "configuration"', () => {
    const input = sensor((t) => { t.settings.extra = 1; t.configuration = { id: 'c' }; t.bogus = 1; });
    expect(errorsOf(input)).toEqual([]);
    expect(warningsOf(input)).toEqual([
      `${at('settings.extra')}: unknown module setting; ignored`,
      `${at('bogus')}: unknown module property; ignored (known: version, type, status, restartPolicy, startupOrder, imagePullPolicy, env, settings, k8s)`,
    ]);
    const sys = manifest(({ agent }) => { agent.systemModules.edgeHub.bogus = 1; });
    expect(warningsOf(sys)).toEqual(['$edgeAgent.properties.desired.systemModules.edgeHub.bogus: unknown module property; ignored']);
  });

  it('reads the old k8s object with a warning that shows the string to write instead', () => {
    const input = sensor((t) => { t.k8s = { priorityClassName: 'high' }; });
    const r = validateManifest(input);
    expect(r.ok && r.manifest.spec.modules.tempSensor?.k8s).toEqual({ priorityClassName: 'high' });
    expect(warningsOf(input)).toEqual([`${at('k8s')}: the object form cannot travel through a twin once a key holds ".", "$" or a space (kubernetes.io/os, nvidia.com/gpu); write it in settings as {"k8sOptions":"{\\"priorityClassName\\":\\"high\\"}"}`]);
  });

  it('merges settings.k8sOptions over the preview section field by field, and keeps the process form', () => {
    const r = validateManifest(sensor((t) => {
      t.settings.createOptions = '{"k8s-experimental":{"nodeSelector":{"a":"b"},"strategy":{"type":"Recreate"}}}';
      t.settings.k8sOptions = '{"nodeSelector":{"c":"d"}}';
      t.settings.processOptions = '{"command":"run"}';
    }));
    expect(r.ok).toBe(true);
    if (!r.ok) return;
    expect(r.manifest.spec.modules.tempSensor?.k8s).toEqual({ nodeSelector: { c: 'd' }, strategy: { type: 'Recreate' } });
    expect(r.manifest.spec.modules.tempSensor?.process).toEqual({ command: 'run', args: [], env: {} });
    const none = validateManifest(sensor((t) => { t.settings.k8sOptions = ''; t.settings.processOptions = 'null'; }));
    expect(none.ok && none.manifest.spec.modules.tempSensor).not.toHaveProperty('k8s');
    expect(none.ok && none.manifest.spec.modules.tempSensor).not.toHaveProperty('process');
  });

  it('writes the module spec with exactly the fields given, and the defaults', () => {
    const r = validateManifest(sensor((t) => { Object.assign(t, { version: '2', status: 'stopped', restartPolicy: 'never', imagePullPolicy: 'never', startupOrder: 3 }); }));
    expect(r.ok && r.manifest.spec.modules.tempSensor).toStrictEqual({
      type: 'docker',
      version: '2',
      status: 'stopped',
      restartPolicy: 'never',
      startupOrder: 3,
      imagePullPolicy: 'never',
      env: expect.anything() as unknown,
      settings: { image: 'mcr.microsoft.com/azureiotedge-simulated-temperature-sensor:1.5', createOptions: {} },
    });
    const d = validateManifest(sensor((t) => { t.settings = { image: 'x' }; delete t.status; delete t.restartPolicy; delete t.version; }));
    expect(d.ok && Object.keys(d.manifest.spec.modules.tempSensor ?? {})).toEqual(['type', 'status', 'restartPolicy', 'imagePullPolicy', 'env', 'settings']);
  });
});

describe('validateManifest: $edgeHub', () => {
  const hubAt = (p: string) => `$edgeHub.properties.desired.${p}`;

  it('refuses a storeLimits that is not an object and a maxSizeBytes that is not a positive integer', () => {
    expect(errorsOf(manifest(({ hub }) => { hub.storeAndForwardConfiguration.storeLimits = 5; }))).toEqual([`${hubAt('storeAndForwardConfiguration.storeLimits')}: expected an object, got number`]);
    for (const v of [1.5, -1, '10']) {
      expect(errorsOf(manifest(({ hub }) => { hub.storeAndForwardConfiguration.storeLimits = { maxSizeBytes: v }; }))).toEqual([`${hubAt('storeAndForwardConfiguration.storeLimits.maxSizeBytes')}: expected a positive integer, got ${JSON.stringify(v)}`]);
    }
  });

  it('keeps the store limits and TTL, and applies the default TTL', () => {
    const r = validateManifest(manifest(({ hub }) => { hub.storeAndForwardConfiguration = { timeToLiveSecs: 60, storeLimits: { maxSizeBytes: 1 } }; }));
    expect(r.ok && r.manifest.spec.storeAndForward).toEqual({ timeToLiveSecs: 60, maxSizeBytes: 1 });
    const d = validateManifest(manifest(({ hub }) => { delete hub.storeAndForwardConfiguration; }));
    expect(d.ok && d.manifest.spec.storeAndForward).toStrictEqual({ timeToLiveSecs: 7200 });
    const e = validateManifest(manifest(({ hub }) => { hub.storeAndForwardConfiguration = { storeLimits: {} }; }));
    expect(e.ok && e.manifest.spec.storeAndForward).toStrictEqual({ timeToLiveSecs: 7200 });
  });

  it('warns about mqttBroker by schema version, and about unknown keys, not about the ones IoT Hub adds', () => {
    expect(warningsOf(manifest(({ hub }) => { hub.mqttBroker = {}; }))).toEqual([`${hubAt('mqttBroker')}: needs $edgeHub schemaVersion 1.2; ignored`]);
    expect(warningsOf(manifest(({ hub }) => { hub.schemaVersion = '1.3'; hub.mqttBroker = {}; }))).toEqual([`${hubAt('mqttBroker')}: IoT Edge's experimental MQTT broker configuration is not supported by Kedge's edge hub; ignored`]);
    expect(warningsOf(manifest(({ hub }) => { hub.$version = 1; hub.$metadata = {}; hub.integrity = {}; hub.other = 1; }))).toEqual([`${hubAt('other')}: unknown $edgeHub property; ignored`]);
  });

  it('refuses a route named __proto__', () => {
    const errs = errorsOf(JSON.parse(JSON.stringify(manifest()).replace('"routes":{', '"routes":{"__proto__":"FROM /* INTO $upstream",')));
    expect(errs).toContainEqual(`${hubAt('routes.__proto__')}: "__proto__" cannot be a route name: the EdgeDeployment resource cannot carry a key of that name`);
  });

  it('keeps the schema version as written, trimmed', () => {
    const r = validateManifest(manifest(({ hub }) => { hub.schemaVersion = ' 1.2 '; }));
    expect(r.ok && r.manifest.spec.hubSchemaVersion).toBe('1.2');
  });

  it('warns about a route to or from a module it does not run; knows its modules in any case', () => {
    const w = (route: string) => warningsOf(manifest(({ hub }) => { hub.routes.r = route; }));
    expect(w('FROM /messages/modules/TEMPSENSOR/outputs/* INTO $upstream')).toEqual([]);
    expect(w('FROM /messages/modules/other/outputs/* INTO $upstream')).toEqual([`${hubAt('routes.r')}: refers to module "other", which this deployment does not run`]);
    expect(w('FROM /messages/modules/* INTO $upstream')).toEqual([]);
    expect(w('FROM /messages/* INTO BrokeredEndpoint("/modules/tempsensor/inputs/in")')).toEqual([]);
    expect(w('FROM /messages/modules/a/* INTO BrokeredEndpoint("/modules/b/inputs/in")')).toEqual([
      `${hubAt('routes.r')}: refers to module "a", which this deployment does not run`,
      `${hubAt('routes.r')}: refers to module "b", which this deployment does not run`,
    ]);
  });

  it('does not check routes against modules when $edgeAgent is invalid', () => {
    const input = manifest(({ agent, hub }) => { delete agent.runtime; hub.routes.r = 'FROM /messages/modules/ghost/* INTO $upstream'; });
    expect(warningsOf(input)).toEqual([]);
  });
});
