import { describe, expect, it } from 'vitest';
import { moduleRuntimeEnv, workloadSecretOf, type ModuleEnvInput } from './module-env.js';
import { defaultPolicy } from './policy.js';

const identity = (mode: 'workload' | 'connectionString') => defaultPolicy({ moduleIdentity: { mode } }).moduleIdentity;
const names = (input: ModuleEnvInput) => moduleRuntimeEnv(input).env.map((v) => v.name);
const base = { deviceId: 'dev-1', hubHostName: 'hub.example.com' };

describe('moduleRuntimeEnv', () => {
  it('workload mode gives a user module every IOTEDGE_* variable fromEnvironment needs and no key material', () => {
    const r = moduleRuntimeEnv({ ...base, moduleName: 'filter', identity: identity('workload') });
    expect(r.env).toEqual([
      { name: 'IOTEDGE_DEVICEID', value: 'dev-1' },
      { name: 'IOTEDGE_MODULEID', value: 'filter' },
      { name: 'IOTEDGE_AUTHSCHEME', value: 'sasToken' },
      { name: 'IOTEDGE_IOTHUBHOSTNAME', value: 'hub.example.com' },
      { name: 'IOTEDGE_GATEWAYHOSTNAME', value: 'edgehub' },
      { name: 'EdgeDeviceHostName', value: 'edgehub' },
      { name: 'IOTEDGE_WORKLOADURI', value: 'http://kedge-workload:15580' },
      { name: 'IOTEDGE_APIVERSION', value: '2022-08-03' },
      { name: 'IOTEDGE_MODULEGENERATIONID', secretKey: 'workloadSecret' },
    ]);
    expect(r.trustBundleFile).toBe(false);
  });

  it('connection-string mode gives the connection string and CA file, and no workload variables', () => {
    const r = moduleRuntimeEnv({ ...base, moduleName: 'filter', identity: identity('connectionString') });
    expect(r.env.map((v) => v.name)).not.toContain('IOTEDGE_WORKLOADURI');
    expect(r.env.map((v) => v.name)).not.toContain('IOTEDGE_APIVERSION');
    expect(r.env).toContainEqual({ name: 'EdgeHubConnectionString', secretKey: 'connectionString' });
    expect(r.env).toContainEqual({ name: 'EdgeModuleCACertificateFile', value: '/etc/kedge/trust-bundle/ca.pem' });
    expect(r.trustBundleFile).toBe(true);
  });

  it('the edge hub gets its upstream connection string and the workload variables in both modes; edgeAgent no identity', () => {
    for (const mode of ['workload', 'connectionString'] as const) {
      const hub = names({ ...base, moduleName: 'edgeHub', identity: identity(mode) });
      expect(hub).toEqual(expect.arrayContaining(['EdgeHubConnectionString', 'IOTEDGE_WORKLOADURI', 'IOTEDGE_MODULEGENERATIONID']));
      expect(hub).not.toContain('IOTEDGE_GATEWAYHOSTNAME');
      expect(names({ ...base, moduleName: 'edgeAgent', identity: identity(mode) })).toEqual(['IOTEDGE_DEVICEID', 'IOTEDGE_MODULEID', 'IOTEDGE_AUTHSCHEME', 'IOTEDGE_IOTHUBHOSTNAME', 'EdgeDeviceHostName']);
    }
  });

  it('without a module identity policy only the runtime ids are set', () => {
    expect(names({ deviceId: 'd', moduleName: 'm' })).toEqual(['IOTEDGE_DEVICEID', 'IOTEDGE_MODULEID', 'IOTEDGE_AUTHSCHEME', 'IOTEDGE_GATEWAYHOSTNAME', 'EdgeDeviceHostName']);
  });
});

describe('workloadSecretOf', () => {
  const key = Buffer.alloc(32, 7).toString('base64');
  it('is pinned: the same key and module always give the same secret (Secrets do not churn across agent versions)', () => {
    expect(workloadSecretOf('filter', key)).toBe(workloadSecretOf('filter', key));
    expect(workloadSecretOf('filter', key)).toMatchInlineSnapshot(`"4nvGBhg7hE5aDh1-PHc26PJOoou4AHc037WxoZSD2UA"`);
  });
  it('differs per module and per key', () => {
    expect(workloadSecretOf('filter', key)).not.toBe(workloadSecretOf('sink', key));
    expect(workloadSecretOf('filter', key)).not.toBe(workloadSecretOf('filter', Buffer.alloc(32, 8).toString('base64')));
  });
});
