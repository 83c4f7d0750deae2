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
