import { Writable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SAS_SKEW_SECONDS, createSasToken, generateKey } from '@kedge/protocol';
import type { HubError } from '../errors.js';
import { isHubError } from '../errors.js';
import { createLogger } from '../log.js';
import { newTwin } from '../registry/registry.js';
import { device } from '../storage/store.contract.js';
import type { KyselyStore } from '../storage/kysely-store.js';
import { openSqliteStore } from '../storage/sqlite.js';
import type { AccessPolicy } from './policies.js';
import { Right, defaultPolicies } from './policies.js';
import { ServiceAuth } from './service-auth.js';

const HOST = 'hub.example.net';
const ALIAS = 'kedge-hub.local';
const NOW = 1_800_000_000;
const ISO = '2026-01-01T00:00:00.000Z';

const key = (n: number): string => Buffer.alloc(32, n).toString('base64');
const sas = (key: string) => ({ type: 'sas' as const, primaryKey: key, secondaryKey: generateKey(), primaryThumbprint: '', secondaryThumbprint: '' });

/** A policy token for `policy` (its primary key unless `use` is given), valid for an hour unless `se` is given. */
function policyToken(p: AccessPolicy, opts: { use?: string; se?: number; audience?: string; keyName?: string } = {}): string {
  return createSasToken({ audience: opts.audience ?? HOST, key: opts.use ?? p.primaryKey, expirySeconds: opts.se ?? NOW + 3600, keyName: opts.keyName ?? p.name });
}

async function refusal(p: Promise<unknown>): Promise<HubError> {
  try {
    await p;
  } catch (e) {
    if (isHubError(e)) return e;
    throw e;
  }
  throw new Error('expected a refusal');
}

describe('ServiceAuth', () => {
  let store: KyselyStore;
  let auth: ServiceAuth;
  const logs: Record<string, unknown>[] = [];
  const policies = new Map(defaultPolicies().map((p) => [p.name, p]));
  const owner = policies.get('iothubowner')!;
  const service = policies.get('service')!;
  const registryReadWrite = policies.get('registryReadWrite')!;
  // A policy with an empty secondary slot: a token signed with the empty key must not match it.
  const halfKeyed: AccessPolicy = { name: 'halfKeyed', primaryKey: key(9), secondaryKey: '', rights: [Right.ServiceConnect] };
  const edgeKey = key(1);
  const edgeSecondary = key(2);
  const moduleKey = key(3);

  beforeAll(async () => {
    store = await openSqliteStore({ path: ':memory:' });
    await store.seedPolicies([...policies.values(), halfKeyed]);
    await store.createDevice(device('edge1', { iotEdge: true, auth: { ...sas(edgeKey), secondaryKey: edgeSecondary } }), newTwin('edge1', '', ISO));
    await store.createDevice(device('edge2', { iotEdge: true, auth: sas(key(4)) }), newTwin('edge2', '', ISO));
    await store.createDevice(device('leaf', { iotEdge: false, auth: sas(key(5)) }), newTwin('leaf', '', ISO));
    await store.createDevice(device('off', { iotEdge: true, status: 'disabled', auth: sas(key(6)) }), newTwin('off', '', ISO));
    for (const d of ['edge1', 'leaf', 'off']) {
      const auth = { ...sas(moduleKey), secondaryKey: key(7) };
      await store.createModule({ deviceId: d, moduleId: '$edgeHub', generationId: '1', etagVersion: 1, auth, managedBy: '', createdTime: ISO }, newTwin(d, '$edgeHub', ISO));
    }
    const destination = new Writable({
      write(chunk: Buffer, _enc, done) {
        logs.push(JSON.parse(chunk.toString()) as Record<string, unknown>);
        done();
      },
    });
    auth = new ServiceAuth({ store, hostNames: [HOST, ALIAS], log: createLogger({ level: 'info', destination }), nowSeconds: () => NOW });
    await auth.load();
  });
  afterAll(async () => store.close());

  describe('policy tokens', () => {
    it('accepts a policy token signed with either key, for any of the hub host names', async () => {
      const want = { kind: 'policy', name: 'iothubowner', rights: owner.rights };
      expect(await auth.authorize(policyToken(owner), Right.RegistryWrite)).toEqual(want);
      expect(await auth.authorize(policyToken(owner, { use: owner.secondaryKey }), Right.RegistryWrite)).toEqual(want);
      expect(await auth.authorize(policyToken(owner, { audience: ALIAS }), Right.RegistryWrite)).toEqual(want);
      expect(await auth.authorize(policyToken(owner, { audience: `${HOST.toUpperCase()}/` }), Right.RegistryWrite)).toEqual(want);
    });

    it('refuses a missing, empty or malformed Authorization header with 401', async () => {
      for (const header of [undefined, '', 'Bearer abc', `SharedAccessSignature sr=${HOST}&sig=x`]) {
        const e = await refusal(auth.authorize(header, Right.ServiceConnect));
        expect(e.code).toBe('CLOUD_ERR_UNAUTHORIZED');
        expect(e.status).toBe(401);
      }
      expect((await refusal(auth.authorize(undefined, Right.ServiceConnect))).message).toMatch(/Missing Authorization/);
      expect((await refusal(auth.authorize('', Right.ServiceConnect))).message).toMatch(/Missing Authorization/);
      expect((await refusal(auth.authorize('Bearer abc', Right.ServiceConnect))).message).toMatch(/Malformed/);
    });

    it('refuses an unknown policy name with 401', async () => {
      const e = await refusal(auth.authorize(policyToken(owner, { keyName: 'nobody' }), Right.ServiceConnect));
      expect(e.code).toBe('CLOUD_ERR_UNAUTHORIZED');
      expect(e.message).toMatch(/Unknown shared access policy/);
    });

    it('refuses with 403 a valid token of a policy lacking the right, and names the right', async () => {
      for (const need of [Right.RegistryRead, Right.RegistryWrite, Right.DeviceConnect]) {
        const e = await refusal(auth.authorize(policyToken(service), need));
        expect(e.code).toBe('CLOUD_ERR_FORBIDDEN');
        // IoT Hub answers a missing right with 401 IotHubUnauthorizedAccess too; Kedge keeps its own code apart.
        expect(e.status).toBe(401);
        expect(e.message).toBe(`Policy service lacks the ${need} right`);
      }
      const e = await refusal(auth.authorize(policyToken(registryReadWrite), Right.ServiceConnect));
      expect(e.code).toBe('CLOUD_ERR_FORBIDDEN');
      // RegistryWrite implies RegistryRead.
      expect(await auth.authorize(policyToken(registryReadWrite), Right.RegistryRead)).toMatchObject({ kind: 'policy', name: 'registryReadWrite' });
    });

    it('refuses a token signed with another policy key (wrong key slot) with 401, before checking rights', async () => {
      const e = await refusal(auth.authorize(policyToken(service, { use: owner.primaryKey }), Right.RegistryWrite));
      expect(e.code).toBe('CLOUD_ERR_UNAUTHORIZED');
      expect(e.message).toBe('Token refused: bad-signature');
    });

    it('never matches an empty key slot', async () => {
      const e = await refusal(auth.authorize(policyToken(halfKeyed, { use: '' }), Right.ServiceConnect));
      expect(e.message).toBe('Token refused: bad-signature');
      expect(await auth.authorize(policyToken(halfKeyed), Right.ServiceConnect)).toMatchObject({ name: 'halfKeyed' });
    });

    it('refuses a signature of the wrong length with 401 (no crash in the constant-time compare)', async () => {
      const good = policyToken(owner);
      const sig = /sig=([^&]+)/.exec(good)![1]!;
      for (const bad of [sig.slice(0, -4), `${sig}AAAA`, '']) {
        const e = await refusal(auth.authorize(good.replace(sig, bad), Right.ServiceConnect));
        expect(e.code).toBe('CLOUD_ERR_UNAUTHORIZED');
      }
    });

    it('refuses a token for another audience', async () => {
      const e = await refusal(auth.authorize(policyToken(owner, { audience: `${HOST}/devices/edge1` }), Right.ServiceConnect));
      expect(e.message).toBe('Token refused: wrong-audience');
    });

    it('accepts a token expired exactly SAS_SKEW_SECONDS ago and refuses one a second older', async () => {
      expect(SAS_SKEW_SECONDS).toBe(300);
      expect(await auth.authorize(policyToken(owner, { se: NOW - 300 }), Right.ServiceConnect)).toMatchObject({ kind: 'policy' });
      const e = await refusal(auth.authorize(policyToken(owner, { se: NOW - 301 }), Right.ServiceConnect));
      expect(e.message).toBe('Token refused: expired');
    });

    it('logs the refusal with the policy name and reason, never the key', async () => {
      await refusal(auth.authorize(policyToken(owner, { se: NOW - 3600 }), Right.ServiceConnect));
      const line = logs.find((l) => l['msg'] === 'Refused service token' && l['reason'] === 'expired');
      expect(line).toMatchObject({ policy: 'iothubowner', reason: 'expired', level: 30 });
      expect(JSON.stringify(logs)).not.toContain(owner.primaryKey);
    });

    it('uses the wall clock when no clock is given', async () => {
      const wall = new ServiceAuth({ store, hostNames: [HOST], log: createLogger({ level: 'silent' }) });
      await wall.load();
      const now = Math.floor(Date.now() / 1000);
      expect(await wall.authorize(policyToken(owner, { se: now + 60 }), Right.ServiceConnect)).toMatchObject({ kind: 'policy' });
      expect(await wall.authorize(policyToken(owner, { se: now - 250 }), Right.ServiceConnect)).toMatchObject({ kind: 'policy' });
      expect((await refusal(wall.authorize(policyToken(owner, { se: now - 400 }), Right.ServiceConnect))).message).toBe('Token refused: expired');
    });

    it('knows the policies only after load()', async () => {
      const fresh = new ServiceAuth({ store, hostNames: [HOST], log: createLogger({ level: 'silent' }), nowSeconds: () => NOW });
      expect(fresh.policy('iothubowner')).toBeUndefined();
      expect((await refusal(fresh.authorize(policyToken(owner), Right.ServiceConnect))).message).toMatch(/Unknown/);
      await fresh.load();
      expect(fresh.policy('iothubowner')).toEqual(owner);
      expect(fresh.policy('nobody')).toBeUndefined();
    });
  });

  describe('device-scoped tokens', () => {
    const deviceToken = (id: string, k: string, se = NOW + 3600, host = HOST): string =>
      createSasToken({ audience: `${host}/devices/${id}`, key: k, expirySeconds: se });

    it('accepts an enabled edge device token, either key, only where the route allows that device', async () => {
      expect(await auth.authorize(deviceToken('edge1', edgeKey), Right.RegistryWrite, 'edge1')).toEqual({ kind: 'device', deviceId: 'edge1' });
      expect(await auth.authorize(deviceToken('edge1', edgeSecondary, NOW + 1, ALIAS), Right.RegistryWrite, 'edge1')).toEqual({ kind: 'device', deviceId: 'edge1' });
      const e = await refusal(auth.authorize(deviceToken('edge1', edgeKey), Right.RegistryRead));
      expect(e.code).toBe('CLOUD_ERR_UNAUTHORIZED');
      expect(e.message).toMatch(/policy token is required/);
    });

    it('refuses a device token for another device, a non-edge, disabled or unknown device', async () => {
      expect((await refusal(auth.authorize(deviceToken('edge1', edgeKey), Right.RegistryRead, 'edge2'))).message).toBe('Token refused: wrong-audience');
      for (const id of ['leaf', 'off', 'ghost']) {
        const e = await refusal(auth.authorize(deviceToken(id, key(5)), Right.RegistryRead, id));
        expect(e.code).toBe('CLOUD_ERR_UNAUTHORIZED');
        expect(e.message).toMatch(/enabled edge device/);
      }
    });

    it('refuses a wrong key and an expired token, and logs the device and reason', async () => {
      expect((await refusal(auth.authorize(deviceToken('edge1', key(4)), Right.RegistryRead, 'edge1'))).message).toBe('Token refused: bad-signature');
      expect((await refusal(auth.authorize(deviceToken('edge1', edgeKey, NOW - 301), Right.RegistryRead, 'edge1'))).message).toBe('Token refused: expired');
      expect(logs.find((l) => l['msg'] === 'Refused device-scoped token' && l['reason'] === 'expired')).toMatchObject({ deviceId: 'edge1' });
    });

    it('still checks policy tokens (and their rights) when a device scope is allowed', async () => {
      expect(await auth.authorize(policyToken(owner), Right.RegistryRead, 'edge1')).toMatchObject({ kind: 'policy' });
      expect((await refusal(auth.authorize(policyToken(service), Right.RegistryRead, 'edge1'))).code).toBe('CLOUD_ERR_FORBIDDEN');
    });
  });

  describe('module-scoped tokens', () => {
    const moduleToken = (d: string, m: string, k: string, se = NOW + 3600): string =>
      createSasToken({ audience: `${HOST}/devices/${d}/modules/${m}`, key: k, expirySeconds: se });

    it('accepts the module token of an enabled edge device', async () => {
      expect(await auth.authorizeModule(moduleToken('edge1', '$edgeHub', moduleKey), Right.RegistryRead, 'edge1', '$edgeHub')).toEqual({
        kind: 'module',
        deviceId: 'edge1',
        moduleId: '$edgeHub',
      });
    });

    it('refuses a module of a non-edge, disabled or unknown device, and an unknown module', async () => {
      for (const [d, m] of [['leaf', '$edgeHub'], ['off', '$edgeHub'], ['ghost', '$edgeHub'], ['edge1', 'other']] as const) {
        const e = await refusal(auth.authorizeModule(moduleToken(d, m, moduleKey), Right.RegistryRead, d, m));
        expect(e.code).toBe('CLOUD_ERR_UNAUTHORIZED');
        expect(e.message).toMatch(/enabled edge device/);
      }
    });

    it('refuses the device token, a wrong key, an expired token, and logs module and reason', async () => {
      const deviceAudience = createSasToken({ audience: `${HOST}/devices/edge1`, key: moduleKey, expirySeconds: NOW + 60 });
      expect((await refusal(auth.authorizeModule(deviceAudience, Right.RegistryRead, 'edge1', '$edgeHub'))).message).toBe('Token refused: wrong-audience');
      expect((await refusal(auth.authorizeModule(moduleToken('edge1', '$edgeHub', edgeKey), Right.RegistryRead, 'edge1', '$edgeHub'))).message).toBe('Token refused: bad-signature');
      expect((await refusal(auth.authorizeModule(moduleToken('edge1', '$edgeHub', moduleKey, NOW - 301), Right.RegistryRead, 'edge1', '$edgeHub'))).message).toBe('Token refused: expired');
      expect(logs.find((l) => l['msg'] === 'Refused module-scoped token' && l['reason'] === 'expired')).toMatchObject({ deviceId: 'edge1', moduleId: '$edgeHub' });
      expect((await refusal(auth.authorizeModule(undefined, Right.RegistryRead, 'edge1', '$edgeHub'))).message).toMatch(/Missing/);
    });

    it('accepts the secondary module key', async () => {
      const e = await auth.authorizeModule(moduleToken('edge1', '$edgeHub', key(7)), Right.RegistryRead, 'edge1', '$edgeHub');
      expect(e).toMatchObject({ kind: 'module' });
    });

    it('checks policy tokens and their rights instead', async () => {
      expect(await auth.authorizeModule(policyToken(owner), Right.RegistryRead, 'edge1', '$edgeHub')).toMatchObject({ kind: 'policy' });
      expect((await refusal(auth.authorizeModule(policyToken(service), Right.RegistryRead, 'edge1', '$edgeHub'))).code).toBe('CLOUD_ERR_FORBIDDEN');
    });
  });
});
