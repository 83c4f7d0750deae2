import { X509Certificate } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { pino } from 'pino';
import { generateKey, issueCa } from '@kedge/protocol';
import { WorkloadApi, type WorkloadModule } from './workload.js';
import { WorkloadClientError, requestServerCertificate, workloadIdentityFromEnv } from './workload-client.js';

const log = pino({ level: 'silent' });
const ca = issueCa('kedge device CA client test', { years: 1 });
const hub: WorkloadModule = { key: generateKey(), secret: 'hub-secret-2c4e6a8b0d1f3e5a', serverNames: ['edgehub', 'edgehub.dev1.svc'] };
const dir = mkdtempSync(join(tmpdir(), 'kedge-workload-client-'));
let tcp: WorkloadApi;
let unix: WorkloadApi;
let tcpUri = '';
let unixUri = '';

beforeAll(async () => {
  const opts = { modules: { get: (id: string) => (id === '$edgeHub' ? hub : undefined) }, ca, trustBundle: ca.cert, namespace: 'dev1', log };
  tcp = new WorkloadApi(opts);
  unix = new WorkloadApi(opts);
  tcpUri = await tcp.listen({ host: '127.0.0.1', port: 0 });
  unixUri = await unix.listen({ path: join(dir, 'workload.sock') });
});
afterAll(async () => {
  await tcp.close();
  await unix.close();
  rmSync(dir, { recursive: true, force: true });
});

describe('workload client (what the edge hub calls at start)', () => {
  it('reads the identity from the IoT Edge variables, and nothing outside workload mode', () => {
    expect(workloadIdentityFromEnv({ IOTEDGE_WORKLOADURI: 'http://kedge-workload:15580', IOTEDGE_MODULEID: '$edgeHub', IOTEDGE_MODULEGENERATIONID: 's', IOTEDGE_APIVERSION: '2022-08-03' })).toEqual({
      workloadUri: 'http://kedge-workload:15580',
      moduleId: '$edgeHub',
      generationId: 's',
      apiVersion: '2022-08-03',
    });
    expect(workloadIdentityFromEnv({ EdgeHubConnectionString: 'HostName=h;DeviceId=d;ModuleId=$edgeHub;SharedAccessKey=a2V5', IOTEDGE_MODULEID: '$edgeHub' })).toBeUndefined();
  });

  it.each([
    ['TCP', () => tcpUri],
    ['a unix socket', () => unixUri],
  ])('gets a server certificate for the dialled name, chaining to the trust bundle, over %s', async (_how, uri) => {
    const c = await requestServerCertificate({ workloadUri: uri(), moduleId: '$edgeHub', generationId: hub.secret }, 'edgehub');
    expect(c.trustBundle).toBe(ca.cert);
    const leaf = new X509Certificate(c.cert);
    expect(leaf.checkHost('edgehub')).toBe('edgehub');
    expect(leaf.verify(new X509Certificate(ca.cert).publicKey)).toBe(true);
    expect(c.key).toContain('PRIVATE KEY');
  });

  it('refuses with a code: a wrong workload secret, a name the module may not have, an unreachable API, a bad URI', async () => {
    const code = (p: Promise<unknown>) => p.then(() => 'resolved', (e: unknown) => (e instanceof WorkloadClientError ? e.code : String(e)));
    expect(await code(requestServerCertificate({ workloadUri: tcpUri, moduleId: '$edgeHub', generationId: 'wrong' }, 'edgehub'))).toBe('EDGE_ERR_WORKLOAD_REFUSED');
    expect(await code(requestServerCertificate({ workloadUri: tcpUri, moduleId: '$edgeHub', generationId: hub.secret }, 'evil.example.com'))).toBe('EDGE_ERR_WORKLOAD_REFUSED');
    expect(await code(requestServerCertificate({ workloadUri: 'http://127.0.0.1:1/', moduleId: '$edgeHub', generationId: hub.secret }, 'edgehub'))).toBe('EDGE_ERR_WORKLOAD_UNREACHABLE');
    expect(await code(requestServerCertificate({ workloadUri: 'https://x/', moduleId: '$edgeHub', generationId: hub.secret }, 'edgehub'))).toBe('EDGE_ERR_WORKLOAD_ENV');
  });
});
