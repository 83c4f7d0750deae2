import { afterEach, describe, expect, it, vi } from 'vitest';
import { parseEdgeDeploymentSpec, type EdgeDeploymentSpecInput } from '@kedge/manifest';
import { toDnsLabel, toLabelValue } from './names.js';
import { defaultPolicy } from './policy.js';
import { moduleEntries, render } from './render.js';

/*
 * Generated names are an upgrade contract: the controller finds its objects by name, so a changed hash or sanitizing
 * rule would make a new agent version create a second Deployment for every module (and prune the first). Every
 * expected value below is written out literally (cdk8s pins `toDnsName('Hello') === 'hello-c8a347e4'` the same
 * way); never compute it with the code under test. A failure here means: that change renames objects on devices.
 */
describe('pinned generated names', () => {
  it.each([
    ['filter', 'filter'],
    ['Sensor-01', 'sensor-01-05073800'],
    ['My_Module', 'my-module-967f1cf4'],
    ['edgeHub', 'edgehub-172aa647'],
    ['$edgeAgent', 'edgeagent-5ba97f29'],
    ['a.b.c', 'a-b-c-845e3044'],
    ['___', 'm-bda25155'],
    ['x'.repeat(70), `${'x'.repeat(54)}-c71bd109`],
  ])('toDnsLabel(%j) is %j', (name, expected) => {
    expect(toDnsLabel(name)).toBe(expected);
  });

  it.each([
    ['default', 'default'],
    ['my deployment', 'my-deployment-9ff06bc5'],
    ['a'.repeat(70), `${'a'.repeat(54)}-6bd5e503`],
  ])('toLabelValue(%j) is %j', (value, expected) => {
    expect(toLabelValue(value)).toBe(expected);
  });

  const spec: EdgeDeploymentSpecInput = {
    systemModules: {
      edgeHub: { type: 'docker', settings: { image: 'kedge/edge-hub:1', createOptions: { HostConfig: { PortBindings: { '8883/tcp': [{ HostPort: '8883' }] } } } } },
    },
    modules: {
      My_Module: { type: 'docker', settings: { image: 'myreg.example.com/m:1', createOptions: { HostConfig: { Mounts: [{ Type: 'volume', Source: 'Data_Vol', Target: '/data' }] } } } },
      sensor: { type: 'docker', settings: { image: 'sensor:1' } },
    },
    registryCredentials: { MyReg: { address: 'myreg.example.com', username: 'u', password: 'p' } },
  };
  const parse = () => {
    const parsed = parseEdgeDeploymentSpec(spec);
    if (!parsed.ok) throw new Error(parsed.error.map((i) => i.message).join('; '));
    return parsed.value;
  };
  const renderIt = () => render({ owner: { name: 'default', namespace: 'dev-1', uid: 'u1' }, deviceId: 'dev-1', parsed: parse(), policy: defaultPolicy({}) });

  it('every object a deployment renders has its pinned name', () => {
    expect(renderIt().objects.map((o) => `${o.kind ?? ''}/${o.metadata?.name ?? ''}`).sort()).toEqual([
      'Deployment/edgehub',
      'Deployment/my-module-967f1cf4',
      'Deployment/sensor',
      'PersistentVolumeClaim/data-data-vol-32cbd915',
      'Secret/registry-myreg-7432d008',
      'Service/edgehub',
      'ServiceAccount/edgehub',
      'ServiceAccount/my-module-967f1cf4',
      'ServiceAccount/sensor',
    ]);
  });

  it('module spec digests are pinned (status.modules.*.parkedSpec records them across upgrades)', () => {
    expect(moduleEntries(parse(), defaultPolicy({})).map((m) => [m.name, m.objectName, m.specDigest])).toEqual([
      ['edgeHub', 'edgehub', '90fb424b6b694fe2'],
      ['My_Module', 'my-module-967f1cf4', '8b3dddbe2f2f930f'],
      ['sensor', 'sensor', 'd371f6969c103a49'],
    ]);
  });

  describe('determinism', () => {
    afterEach(() => {
      vi.useRealTimers();
    });

    it('renders byte-identical objects after the clock moved a day and a second (no time in desired state)', () => {
      vi.useFakeTimers({ now: new Date('2026-03-01T00:00:00.000Z'), toFake: ['Date', 'performance', 'hrtime'] });
      const first = JSON.stringify(renderIt());
      vi.setSystemTime(new Date('2026-03-02T00:00:01.000Z'));
      expect(new Date().toISOString()).toBe('2026-03-02T00:00:01.000Z');
      const second = JSON.stringify(renderIt());
      expect(second).toBe(first);
    });
  });
});
