import { describe, expect, it } from 'vitest';
import { parseCreateOptions } from './create-options.js';
import { IssueCollector } from './issues.js';

// parseCreateOptions rule by rule: what each Docker field kind accepts, what it coerces (with a warning, as
// edgeAgent's Newtonsoft did) and what it drops (with a warning naming the path).

interface Parsed {
  options: Record<string, unknown> | undefined;
  raw: Record<string, unknown> | undefined;
  errors: string[];
  warnings: string[];
}

function parse(source: unknown): Parsed {
  const issues = new IssueCollector();
  const r = parseCreateOptions(source as string, ['co'], issues);
  return {
    options: r?.options as Record<string, unknown> | undefined,
    raw: r?.raw,
    errors: issues.errors.map((i) => `${i.path}: ${i.message}`),
    warnings: issues.warnings.map((i) => `${i.path}: ${i.message}`),
  };
}

/** Parses `{"HostConfig": hc}` and returns the HostConfig read, with the warnings. */
function hostConfig(hc: Record<string, unknown>): { hc: Record<string, unknown> | undefined; warnings: string[]; errors: string[] } {
  const r = parse({ HostConfig: hc });
  return { hc: r.options?.HostConfig as Record<string, unknown> | undefined, warnings: r.warnings, errors: r.errors };
}

describe('parseCreateOptions: the document', () => {
  it.each([
    ['absent', undefined],
    ['empty', ''],
    ['blank', '  \n '],
    ['"null"', 'null'],
    ['"null" with spaces', '  null '],
    ['a null object', null],
  ])('reads %s as no options', (_what, source) => {
    const r = parse(source);
    expect(r.options).toEqual({});
    expect(r.raw).toEqual({});
    expect(r.errors).toEqual([]);
    expect(r.warnings).toEqual([]);
  });

  it('parses JSON text and an already-parsed object alike, and returns the raw document', () => {
    const text = parse(' {"Cmd":["a"],"Image":"x"} ');
    expect(text.options).toEqual({ Cmd: ['a'] });
    expect(text.raw).toEqual({ Cmd: ['a'], Image: 'x' });
    const obj = parse({ Cmd: ['a'] });
    expect(obj.options).toEqual({ Cmd: ['a'] });
    expect(obj.errors).toEqual([]);
  });

  it('refuses text that is not JSON, with the path', () => {
    const r = parse('{"Cmd":');
    expect(r.options).toBeUndefined();
    expect(r.errors).toHaveLength(1);
    expect(r.errors[0]).toMatch(/^co: not valid JSON: /);
  });

  it.each([
    ['[]', 'array'],
    ['1', 'number'],
    ['"x"', 'string'],
    ['true', 'boolean'],
  ])('refuses %s: not a JSON object', (text, type) => {
    const r = parse(text);
    expect(r.options).toBeUndefined();
    expect(r.errors).toEqual([`co: must be a JSON object, got ${type}`]);
  });
});

describe('parseCreateOptions: field names', () => {
  it('warns about an unknown field, suggests the near one, and drops it', () => {
    const r = parse({ Entrypiont: ['x'] });
    expect(r.options).toEqual({});
    expect(r.warnings).toEqual(['co.Entrypiont: unknown createOptions field; Docker ignores it, so does Kedge (did you mean "Entrypoint"?)']);
  });

  it('suggests nothing when no field is within two edits', () => {
    expect(parse({ Zzzzzzzz: 1 }).warnings).toEqual(['co.Zzzzzzzz: unknown createOptions field; Docker ignores it, so does Kedge']);
    // "Cxyz" is three edits from "Cmd", the nearest field: no suggestion.
    expect(parse({ Cxyz: 1 }).warnings).toEqual(['co.Cxyz: unknown createOptions field; Docker ignores it, so does Kedge']);
  });

  it('suggests a field two edits away, and the nearest of several', () => {
    expect(parse({ Cnd: ['x'] }).warnings).toEqual(['co.Cnd: unknown createOptions field; Docker ignores it, so does Kedge (did you mean "Cmd"?)']);
    expect(parse({ Usr: 'x' }).warnings).toEqual(['co.Usr: unknown createOptions field; Docker ignores it, so does Kedge (did you mean "User"?)']);
    expect(parse({ Lbels: {} }).warnings).toEqual(['co.Lbels: unknown createOptions field; Docker ignores it, so does Kedge (did you mean "Labels"?)']);
    expect(parse({ WorkDir: '/' }).warnings).toEqual(['co.WorkDir: unknown createOptions field; Docker ignores it, so does Kedge']);
    expect(parse({ WorkingDr: '/' }).warnings).toEqual(['co.WorkingDr: unknown createOptions field; Docker ignores it, so does Kedge (did you mean "WorkingDir"?)']);
  });

  it('measures the suggestion by edit distance: two characters longer still counts, two short ones are not near everything', () => {
    expect(parse({ Cmdxx: 1 }).warnings).toEqual(['co.Cmdxx: unknown createOptions field; Docker ignores it, so does Kedge (did you mean "Cmd"?)']);
    expect(parse({ Us: 1 }).warnings).toEqual(['co.Us: unknown createOptions field; Docker ignores it, so does Kedge (did you mean "User"?)']);
    expect(parse({ Ab: 1 }).warnings).toEqual(['co.Ab: unknown createOptions field; Docker ignores it, so does Kedge']);
  });

  it('reads every field Kedge knows, of every kind, under its Docker name and nothing else', () => {
    const top = { Entrypoint: ['e'], Cmd: ['c'], Env: ['A=1'], WorkingDir: '/w', User: 'u', Hostname: 'h', ExposedPorts: { '80/tcp': {} }, Labels: { l: 'v' }, NetworkingConfig: { n: 1 }, Healthcheck: { Test: ['NONE'] }, StopSignal: 'SIGINT', StopTimeout: 5 };
    const host = {
      PortBindings: { '80/tcp': [{ HostPort: '80' }] }, Binds: ['a:/a'], Mounts: [{ Type: 'volume', Source: 's', Target: '/t' }], Privileged: true, CapAdd: ['A'], CapDrop: ['B'],
      Memory: 1, MemoryReservation: 2, MemorySwap: 3, NanoCpus: 4, CpuShares: 5, CpuPeriod: 6, CpuQuota: 7, NetworkMode: 'host', IpcMode: 'host', PidMode: 'host',
      Devices: [{ PathOnHost: '/dev/x' }], DeviceRequests: [{ Count: 1 }], ExtraHosts: ['h:1.2.3.4'], Dns: ['1.1.1.1'], DnsSearch: ['corp'], ShmSize: 8, ReadonlyRootfs: true,
      Sysctls: { 'net.x': '1' }, RestartPolicy: { Name: 'no' }, LogConfig: { Type: 'none' },
    };
    const r = parse({ ...top, HostConfig: host });
    expect(r.warnings).toEqual([]);
    expect(r.errors).toEqual([]);
    expect(Object.keys(r.options ?? {})).toEqual([...Object.keys(top), 'HostConfig']);
    expect(r.options).toEqual({ ...top, HostConfig: host });
    expect(Object.keys(r.options?.HostConfig as object)).toEqual(Object.keys(host));
  });

  it('leaves out, not as undefined, what it drops: a field, a HostConfig, a k8s-experimental section, a HostPort', () => {
    const r = parse({ Cmd: 5, HostConfig: 'x', 'k8s-experimental': { nodeSelector: 5 } });
    expect(Object.keys(r.options ?? { x: 1 })).toEqual([]);
    const h = hostConfig({ Memory: 'lots', PortBindings: { '80/tcp': [{ HostIp: '::1' }] } });
    expect(Object.keys(h.hc ?? {})).toEqual(['PortBindings']);
    expect(Object.keys((h.hc?.PortBindings as Record<string, object[]>)['80/tcp']?.[0] ?? {})).toEqual(['HostIp']);
  });

  it('passes over the Docker fields Kedge deliberately ignores, in any case, without a warning', () => {
    const r = parse({ Image: 'x', tty: true, OpenStdin: false, Volumes: {}, MacAddress: 'm', Platform: 'p' });
    expect(r.warnings).toEqual([]);
    expect(r.options).toEqual({});
  });

  it('passes over every Docker field Kedge deliberately ignores without a warning (top level and HostConfig)', () => {
    const top = ['Image', 'Domainname', 'AttachStdin', 'AttachStdout', 'AttachStderr', 'Tty', 'OpenStdin', 'StdinOnce', 'Volumes', 'NetworkDisabled', 'MacAddress', 'OnBuild', 'ArgsEscaped', 'Shell', 'Name', 'Platform'];
    const host = [
      'MemorySwappiness', 'OomKillDisable', 'Init', 'SecurityOpt', 'Ulimits', 'BlkioWeight', 'CpusetCpus', 'CpusetMems', 'GroupAdd', 'AutoRemove',
      'VolumeDriver', 'VolumesFrom', 'Links', 'PortsAlloc', 'PublishAllPorts', 'UTSMode', 'UsernsMode', 'CgroupParent', 'Runtime', 'StorageOpt',
      'Tmpfs', 'Isolation', 'CpuCount', 'CpuPercent', 'PidsLimit', 'KernelMemory', 'OomScoreAdj', 'DnsOptions', 'ConsoleSize', 'Cgroup',
      'CgroupnsMode', 'MaskedPaths', 'ReadonlyPaths', 'DeviceCgroupRules', 'ContainerIDFile', 'CpuRealtimePeriod', 'CpuRealtimeRuntime',
      'BlkioDeviceWeight', 'BlkioDeviceReadBps', 'BlkioDeviceWriteBps', 'BlkioDeviceReadIOps', 'BlkioDeviceWriteIOps',
    ];
    const r = parse({ ...Object.fromEntries(top.map((k) => [k, 1])), HostConfig: Object.fromEntries(host.map((k) => [k, 1])) });
    expect(r.warnings).toEqual([]);
    expect(r.options).toEqual({ HostConfig: {} });
  });

  it('reads a field in another letter case with a warning, under its Docker name', () => {
    const r = parse({ cmd: ['x'], workingdir: '/w' });
    expect(r.options).toEqual({ Cmd: ['x'], WorkingDir: '/w' });
    expect(r.warnings).toEqual([
      'co.cmd: read as "Cmd" (Docker field names are case-sensitive; edgeAgent matched them case-insensitively)',
      'co.workingdir: read as "WorkingDir" (Docker field names are case-sensitive; edgeAgent matched them case-insensitively)',
    ]);
  });

  it('reads HostConfig in another case, and warns about its unknown, miscased and ignored fields', () => {
    const r = parse({ hostconfig: { privileged: true, Privilged: true, Init: true, OomKillDisable: true, Bogus: 1 } });
    expect(r.options).toEqual({ HostConfig: { Privileged: true } });
    expect(r.warnings).toEqual([
      'co.hostconfig: read as "HostConfig" (Docker field names are case-sensitive; edgeAgent matched them case-insensitively)',
      'co.hostconfig.privileged: read as "Privileged" (Docker field names are case-sensitive)',
      'co.hostconfig.Privilged: unknown HostConfig field; Docker ignores it, so does Kedge (did you mean "Privileged"?)',
      'co.hostconfig.Bogus: unknown HostConfig field; Docker ignores it, so does Kedge',
    ]);
  });

  it('ignores a HostConfig that is not an object, with a warning', () => {
    for (const [v, type] of [[[], 'array'], ['x', 'string'], [null, 'null']] as const) {
      const r = parse({ HostConfig: v });
      expect(r.options).toEqual({});
      expect(r.warnings).toEqual([`co.HostConfig: expected an object, got ${type}; ignored`]);
      expect(r.errors).toEqual([]);
    }
  });
});

describe('parseCreateOptions: value kinds', () => {
  it('string fields: a string as is, a number as text, anything else dropped', () => {
    expect(parse({ WorkingDir: '/w', User: 1000 }).options).toEqual({ WorkingDir: '/w', User: '1000' });
    const r = parse({ Hostname: true, StopSignal: ['x'] });
    expect(r.options).toEqual({});
    expect(r.warnings).toEqual(['co.Hostname: expected a string, got boolean; ignored', 'co.StopSignal: expected a string, got array; ignored']);
  });

  it('boolean fields: booleans, "true"/"false" in any case with a warning, nothing else', () => {
    expect(hostConfig({ Privileged: false, ReadonlyRootfs: true }).hc).toEqual({ Privileged: false, ReadonlyRootfs: true });
    const s = hostConfig({ Privileged: 'TRUE', ReadonlyRootfs: 'False' });
    expect(s.hc).toEqual({ Privileged: true, ReadonlyRootfs: false });
    expect(s.warnings).toEqual([
      'co.HostConfig.Privileged: boolean given as the string "TRUE"; read as true (as edgeAgent does)',
      'co.HostConfig.ReadonlyRootfs: boolean given as the string "False"; read as false (as edgeAgent does)',
    ]);
    const bad = hostConfig({ Privileged: 'yes', ReadonlyRootfs: 1 });
    expect(bad.hc).toEqual({});
    expect(bad.warnings).toEqual(['co.HostConfig.Privileged: expected a boolean, got string; ignored', 'co.HostConfig.ReadonlyRootfs: expected a boolean, got number; ignored']);
    // Anchored: only the whole word is a boolean.
    expect(hostConfig({ Privileged: 'truely' }).hc).toEqual({});
    expect(hostConfig({ Privileged: 'not false' }).hc).toEqual({});
    expect(hostConfig({ Privileged: ['true'] }).warnings).toEqual(['co.HostConfig.Privileged: expected a boolean, got array; ignored']);
  });

  it('number fields: finite numbers, decimal text with a warning, nothing else', () => {
    expect(hostConfig({ Memory: 0, NanoCpus: -1, CpuQuota: 1.5 }).hc).toEqual({ Memory: 0, NanoCpus: -1, CpuQuota: 1.5 });
    expect(hostConfig({ CpuQuota: '0.25' }).hc).toEqual({ CpuQuota: 0.25 });
    const s = hostConfig({ Memory: '73400320', MemorySwap: '-1', CpuPeriod: ' 2.5 ' });
    expect(s.hc).toEqual({ Memory: 73400320, MemorySwap: -1, CpuPeriod: 2.5 });
    expect(s.warnings).toEqual([
      'co.HostConfig.Memory: number given as the string "73400320"; read as 73400320 (as edgeAgent does)',
      'co.HostConfig.MemorySwap: number given as the string "-1"; read as -1 (as edgeAgent does)',
      'co.HostConfig.CpuPeriod: number given as the string " 2.5 "; read as 2.5 (as edgeAgent does)',
    ]);
    for (const v of ['1e3', '1.', '.5', 'x1', '1x', '', '--1', Infinity, Number.NaN, true, null]) {
      const r = hostConfig({ ShmSize: v });
      expect(r.hc, String(v)).toEqual({});
      expect(r.warnings[0], String(v)).toMatch(/^co\.HostConfig\.ShmSize: expected a number, got /);
    }
  });

  it('string-array fields: strings as is, scalars as text, anything else dropped', () => {
    expect(parse({ Env: ['A=1'] }).options).toEqual({ Env: ['A=1'] });
    expect(hostConfig({ CapAdd: ['NET_ADMIN', 1, true] }).hc).toEqual({ CapAdd: ['NET_ADMIN', '1', 'true'] });
    expect(hostConfig({ Dns: [] }).hc).toEqual({ Dns: [] });
    for (const v of [[null], [{}], ['a', ['b']], 'A=1', {}]) {
      const r = parse({ Env: v });
      expect(r.options, JSON.stringify(v)).toEqual({});
      expect(r.warnings[0]).toMatch(/^co\.Env: expected an array of strings, got /);
    }
  });

  it('Cmd and Entrypoint take a string as a one-element array, and arrays as the string-array fields do', () => {
    expect(parse({ Cmd: 'serve --port 1', Entrypoint: ['app', 2] }).options).toEqual({ Cmd: ['serve --port 1'], Entrypoint: ['app', '2'] });
    const r = parse({ Cmd: 5 });
    expect(r.options).toEqual({});
    expect(r.warnings).toEqual(['co.Cmd: expected an array of strings, got number; ignored']);
  });

  it('string-map fields: strings, scalars as text, other values dropped one by one', () => {
    const r = parse({ Labels: { a: 'x', n: 1, b: false, o: {}, z: null } });
    expect(r.options).toEqual({ Labels: { a: 'x', n: '1', b: 'false' } });
    expect(r.warnings).toEqual(['co.Labels.o: expected a string, got object; ignored', 'co.Labels.z: expected a string, got null; ignored']);
    expect(hostConfig({ Sysctls: { 'net.core.somaxconn': 1024 } }).hc).toEqual({ Sysctls: { 'net.core.somaxconn': '1024' } });
    const bad = parse({ Labels: ['a'] });
    expect(bad.options).toEqual({});
    expect(bad.warnings).toEqual(['co.Labels: expected an object of strings, got array; ignored']);
  });

  it('object fields take objects only; array fields arrays only; the rest any value', () => {
    expect(parse({ ExposedPorts: { '80/tcp': {} } }).options).toEqual({ ExposedPorts: { '80/tcp': {} } });
    expect(parse({ ExposedPorts: ['80/tcp'] }).warnings).toEqual(['co.ExposedPorts: expected an object, got array; ignored']);
    expect(hostConfig({ DeviceRequests: [{ Count: -1 }] }).hc).toEqual({ DeviceRequests: [{ Count: -1 }] });
    expect(hostConfig({ DeviceRequests: {} }).warnings).toEqual(['co.HostConfig.DeviceRequests: expected an array, got object; ignored']);
    const any = parse({ Healthcheck: 'x', NetworkingConfig: 1, HostConfig: { RestartPolicy: [], LogConfig: null } });
    expect(any.options).toEqual({ Healthcheck: 'x', NetworkingConfig: 1, HostConfig: { RestartPolicy: [], LogConfig: null } });
    expect(any.warnings).toEqual([]);
  });

  it('StopTimeout is a number', () => {
    expect(parse({ StopTimeout: 10 }).options).toEqual({ StopTimeout: 10 });
    expect(parse({ StopTimeout: 'ten' }).options).toEqual({});
  });
});

describe('parseCreateOptions: port bindings, mounts and devices', () => {
  it('reads port bindings in either case, HostPort as text, and drops what is not a binding', () => {
    const r = hostConfig({
      PortBindings: {
        '80/tcp': [{ HostPort: '8080' }, { hostPort: 81, hostIp: '127.0.0.1' }, { HostIp: '::1' }, { HostPort: {} }, 'x', null],
        '443/tcp': [],
      },
    });
    expect(r.hc).toEqual({ PortBindings: { '80/tcp': [{ HostPort: '8080' }, { HostPort: '81', HostIp: '127.0.0.1' }, { HostIp: '::1' }, {}], '443/tcp': [] } });
    expect(r.warnings).toEqual([]);
  });

  it('prefers HostPort and HostIp over their lower-case forms', () => {
    expect(hostConfig({ PortBindings: { '1/tcp': [{ HostPort: '1', hostPort: '2', HostIp: 'a', hostIp: 'b' }] } }).hc).toEqual({ PortBindings: { '1/tcp': [{ HostPort: '1', HostIp: 'a' }] } });
    expect(hostConfig({ PortBindings: { '1/tcp': [{ HostIp: 5 }] } }).hc).toEqual({ PortBindings: { '1/tcp': [{}] } });
  });

  it('drops a port whose bindings are not an array, and port bindings that are not an object', () => {
    const r = hostConfig({ PortBindings: { '80/tcp': { HostPort: '80' }, '81/tcp': [{ HostPort: '81' }] } });
    expect(r.hc).toEqual({ PortBindings: { '81/tcp': [{ HostPort: '81' }] } });
    expect(r.warnings).toEqual(['co.HostConfig.PortBindings.80/tcp: expected an array of bindings, got object; ignored']);
    const bad = hostConfig({ PortBindings: [] });
    expect(bad.hc).toEqual({});
    expect(bad.warnings).toEqual(['co.HostConfig.PortBindings: expected an object of port bindings, got array; ignored']);
  });

  it('reads mounts with field names in any case, strings only, ReadOnly as a boolean', () => {
    const r = hostConfig({
      Mounts: [
        { type: 'volume', source: 'data', target: '/data', readonly: 'true' },
        { Type: 'bind', Source: '/x', Target: 5, ReadOnly: false },
        'not a mount',
        { Type: 'volume', Source: 'v', Target: '/v' },
        { ReadOnly: 'nope' },
      ],
    });
    expect(r.hc).toEqual({
      Mounts: [
        { Type: 'volume', Source: 'data', Target: '/data', ReadOnly: true },
        { Type: 'bind', Source: '/x', ReadOnly: false },
        {},
        { Type: 'volume', Source: 'v', Target: '/v' },
        { ReadOnly: undefined },
      ],
    });
    expect(r.warnings).toEqual([
      'co.HostConfig.Mounts[0].ReadOnly: boolean given as the string "true"; read as true (as edgeAgent does)',
      'co.HostConfig.Mounts[4].ReadOnly: expected a boolean, got string; ignored',
    ]);
    // A mount that is not an object reads as an empty one (refused later for its missing fields), null included.
    expect(hostConfig({ Mounts: [null, 7] }).hc).toEqual({ Mounts: [{}, {}] });
    const bad = hostConfig({ Mounts: {} });
    expect(bad.hc).toEqual({});
    expect(bad.warnings).toEqual(['co.HostConfig.Mounts: expected an array of mounts, got object; ignored']);
  });

  it('reads devices: objects only, their three string fields only', () => {
    const r = hostConfig({
      Devices: [{ PathOnHost: '/dev/ttyUSB0', PathInContainer: '/dev/tty0', CgroupPermissions: 'rwm', Extra: 'x' }, { PathOnHost: 1, pathincontainer: '/d' }, 'x', null],
    });
    expect(r.hc).toEqual({ Devices: [{ PathOnHost: '/dev/ttyUSB0', PathInContainer: '/dev/tty0', CgroupPermissions: 'rwm' }, {}] });
    const bad = hostConfig({ Devices: 'x' });
    expect(bad.hc).toEqual({});
    expect(bad.warnings).toEqual(['co.HostConfig.Devices: expected an array of devices, got string; ignored']);
  });
});

describe('parseCreateOptions: the preview\'s k8s-experimental section', () => {
  it('reads the section in any case, its keys in any case, and service-options', () => {
    const r = parse({ 'K8s-Experimental': { NODESELECTOR: { disk: 'ssd' }, 'Service-Options': { type: 'nodeport' }, Strategy: { type: 'Recreate' } } });
    expect(r.errors).toEqual([]);
    expect(r.warnings).toEqual([]);
    expect(r.options).toEqual({ k8s: { nodeSelector: { disk: 'ssd' }, serviceOptions: { type: 'NodePort' }, strategy: { type: 'Recreate' } } });
    expect(r.raw).toHaveProperty('K8s-Experimental');
  });

  it('normalizes the service type case to ClusterIP, NodePort or LoadBalancer and leaves others to validation', () => {
    for (const [given, want] of [['clusterip', 'ClusterIP'], ['LOADBALANCER', 'LoadBalancer'], ['NodePort', 'NodePort']]) {
      expect(parse({ 'k8s-experimental': { serviceOptions: { type: given, loadBalancerIP: '10.0.0.1' } } }).options).toEqual({ k8s: { serviceOptions: { type: want, loadBalancerIP: '10.0.0.1' } } });
    }
    expect(parse({ 'k8s-experimental': { serviceOptions: { loadBalancerIP: '10.0.0.1' } } }).options).toEqual({ k8s: { serviceOptions: { loadBalancerIP: '10.0.0.1' } } });
    const bad = parse({ 'k8s-experimental': { serviceOptions: { type: 'Ingress' } } });
    expect(bad.options).toEqual({});
    expect(bad.errors).toEqual(['co.k8s-experimental.serviceOptions.type: must be one of "ClusterIP", "NodePort", "LoadBalancer", got "Ingress"']);
    const notString = parse({ 'k8s-experimental': { serviceOptions: { type: 1 } } });
    expect(notString.errors).toEqual(['co.k8s-experimental.serviceOptions.type: must be one of "ClusterIP", "NodePort", "LoadBalancer", got 1']);
    const notObject = parse({ 'k8s-experimental': { serviceOptions: 'NodePort' } });
    expect(notObject.errors).toEqual(['co.k8s-experimental.serviceOptions: expected object, got string']);
  });

  it('normalizes only the service type and the volumes\' booleans, nothing that looks like them elsewhere', () => {
    const r = parse({ 'k8s-experimental': { nodeSelector: { type: 'clusterip', readOnly: 'true' } } });
    expect(r.options).toEqual({ k8s: { nodeSelector: { type: 'clusterip', readOnly: 'true' } } });
    expect(r.warnings).toEqual([]);
  });

  it('warns about an unknown option and drops it', () => {
    const r = parse({ 'k8s-experimental': { affinity: {}, nodeSelector: { a: 'b' } } });
    expect(r.options).toEqual({ k8s: { nodeSelector: { a: 'b' } } });
    expect(r.warnings).toEqual([
      'co.k8s-experimental.affinity: unknown k8s-experimental option; ignored (known: nodeSelector, resources, volumes, securityContext, serviceOptions, strategy; use the module\'s "k8s" field for more)',
    ]);
  });

  it('refuses a section that is not an object', () => {
    for (const [v, type] of [[[], 'array'], ['x', 'string'], [null, 'null']] as const) {
      const r = parse({ 'k8s-experimental': v });
      expect(r.errors).toEqual([`co.k8s-experimental: expected an object, got ${type}`]);
      expect(r.options).toEqual({});
    }
  });

  it('reads the volumes\' "true"/"false" strings for readOnly and optional as booleans, deep, with a warning', () => {
    const r = parse({
      'k8s-experimental': {
        volumes: [
          {
            volume: { name: 'cfg', configMap: { name: 'c', optional: 'true' } },
            volumeMounts: [{ name: 'cfg', mountPath: '/etc/cfg', readOnly: 'false' }, { name: 'cfg', mountPath: '/x', readOnly: true }],
          },
        ],
      },
    });
    expect(r.errors).toEqual([]);
    expect(r.options).toEqual({
      k8s: {
        volumes: [
          {
            volume: { name: 'cfg', configMap: { name: 'c', optional: true } },
            volumeMounts: [{ name: 'cfg', mountPath: '/etc/cfg', readOnly: false }, { name: 'cfg', mountPath: '/x', readOnly: true }],
          },
        ],
      },
    });
    expect(r.warnings).toEqual([
      'co.k8s-experimental.volumes[0].volume.configMap.optional: boolean given as the string "true"; read as true',
      'co.k8s-experimental.volumes[0].volumeMounts[0].readOnly: boolean given as the string "false"; read as false',
    ]);
  });

  it('leaves other strings of the volumes, and other keys, as they are', () => {
    const r = parse({ 'k8s-experimental': { volumes: [{ volume: { name: 'v', emptyDir: { medium: 'true' } }, volumeMounts: [{ name: 'v', mountPath: '/v', readOnly: 'yes' }] }] } });
    expect(r.errors).toEqual(['co.k8s-experimental.volumes[0].volumeMounts[0].readOnly: expected boolean, got string']);
    const ok = parse({ 'k8s-experimental': { volumes: [{ volume: { name: 'v', emptyDir: { medium: 'true' } } }] } });
    expect(ok.options).toEqual({ k8s: { volumes: [{ volume: { name: 'v', emptyDir: { medium: 'true' } }, volumeMounts: [] }] } });
    expect(ok.warnings).toEqual([]);
  });

  it('coerces a volume holding a __proto__ key without touching Object.prototype', () => {
    const r = parse({ 'k8s-experimental': { volumes: [{ volume: JSON.parse('{"name":"v","__proto__":{"readOnly":"true"}}') as unknown }] } });
    expect(r.errors).toEqual([]);
    expect(r.warnings).toEqual(['co.k8s-experimental.volumes[0].volume.__proto__.readOnly: boolean given as the string "true"; read as true']);
    expect(({} as Record<string, unknown>).readOnly).toBeUndefined();
  });
});
