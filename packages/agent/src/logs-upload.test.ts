import { createServer } from 'node:net';
import { Writable } from 'node:stream';
import { gunzipSync } from 'node:zlib';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { eventually } from '@kedge/testing';
import { LogsUploadTasks, TaskStatus, UploadLimits, logsBlobName, type CollectedLogs, type LogsCollector } from './logs-upload.js';
import { MethodArgumentError } from './methods.js';
import { AZURITE_ACCOUNT, startAzurite, type Azurite } from './test-support/azurite.js';

// UploadModuleLogs against Azurite, Microsoft's Azure Storage emulator (a real Blob REST server on loopback), with
// SAS URLs made by Microsoft's own @azure/storage-blob. The collector stands in for GetModuleLogs' pod logs, which
// agent-link.int.test.ts covers against the real control plane.

const NOW = Date.parse('2026-12-01T12:34:56Z');
let az: Azurite;
const sasUrl = (container: string, o?: { key?: string; permissions?: string }): string => az.sasUrl(container, o);
async function newContainer(name: string): Promise<string> {
  await az.service.getContainerClient(name).create();
  return name;
}
const blobs = async (container: string): Promise<Map<string, { text: Buffer; contentType?: string; contentEncoding?: string }>> =>
  new Map([...(await az.blobs(container))].map(([k, v]) => [k, { ...v, text: v.body }]));

const logLines: string[] = [];
const log = pino({ level: 'debug' }, new Writable({ write: (chunk: Buffer, _enc, cb) => (logLines.push(chunk.toString()), cb()) }));

const sensorText = '<6> starting\n<4> temperature high\n';
const collector: LogsCollector = ({ items, contentType }) => {
  const ids = items.map((i) => (i as { id: string }).id);
  const all: CollectedLogs[] = [
    { id: 'sensor', payload: contentType === 'json' ? [{ moduleId: 'sensor', logLevel: 6, text: '<6> starting' }] : sensorText },
    { id: 'filter', payload: contentType === 'json' ? [{ moduleId: 'filter', text: 'ready' }] : 'ready\n' },
  ];
  return Promise.resolve(all.filter((l) => ids.some((id) => new RegExp(id).test(l.id))));
};

function tasks(collect: LogsCollector = collector): LogsUploadTasks {
  return new LogsUploadTasks({ collect, hubHostName: 'kedgehub.example.net', deviceId: 'dev-1', log, now: () => NOW, retryDelaysMs: [10, 10] });
}

async function finished(t: LogsUploadTasks, correlationId: string): Promise<{ status: string; message: string; correlationId: string }> {
  return eventually(() => {
    const p = t.status({ schemaVersion: '1.0', correlationId }).payload as { status: string; message: string; correlationId: string };
    return p.status === TaskStatus.Completed || p.status === TaskStatus.Failed ? p : false;
  }, { timeoutMs: 20_000 });
}

function started(t: LogsUploadTasks, payload: unknown): string {
  const r = t.start(payload);
  expect(r.status).toBe(200);
  const p = r.payload as { status: string; message: string; correlationId: string };
  expect(p).toMatchObject({ status: 'NotStarted', message: '' });
  expect(p.correlationId).toMatch(/^[0-9a-f-]{36}$/);
  return p.correlationId;
}

beforeAll(async () => {
  az = await startAzurite();
});
afterAll(() => {
  az?.stop();
});

describe('UploadModuleLogs into Azure Blob Storage (Azurite)', () => {
  it('puts one block blob per module, named as edgeAgent names them, and reports Completed', async () => {
    const container = await newContainer('plain');
    const t = tasks();
    const id = started(t, { schemaVersion: '1.0', sasUrl: sasUrl(container), items: [{ id: 'sensor' }, { id: 'filter', filter: { tail: 10 } }] });
    const done = await finished(t, id);
    expect(done).toEqual({ status: 'Completed', message: 'Uploaded 2 blob(s): sensor, filter', correlationId: id });
    const got = await blobs(container);
    expect([...got.keys()].sort()).toEqual(['kedgehub/dev-1/filter-2026-12-01--12-34-56.log', 'kedgehub/dev-1/sensor-2026-12-01--12-34-56.log']);
    expect(got.get('kedgehub/dev-1/sensor-2026-12-01--12-34-56.log')?.text.toString()).toBe(sensorText);
    expect(got.get('kedgehub/dev-1/sensor-2026-12-01--12-34-56.log')?.contentType).toMatch(/^text\/plain/);
  });

  it('gzip: the blob is the gzip of the JSON entries, with Content-Encoding gzip and a .gz name', async () => {
    const container = await newContainer('zipped');
    const t = tasks();
    const id = started(t, { schemaVersion: '1.0', sasUrl: sasUrl(container), items: [{ id: '^sensor$' }], encoding: 'gzip', contentType: 'json' });
    expect((await finished(t, id)).status).toBe('Completed');
    const got = await blobs(container);
    const blob = got.get('kedgehub/dev-1/sensor-2026-12-01--12-34-56.gz');
    expect(blob?.contentEncoding).toBe('gzip');
    expect(blob?.contentType).toBe('application/json');
    expect(JSON.parse(gunzipSync(blob?.text ?? Buffer.alloc(0)).toString())).toEqual([{ moduleId: 'sensor', logLevel: 6, text: '<6> starting' }]);
  });

  it('a SAS signed with the wrong key: the task fails with Azure\'s reason, and the signature is never logged or reported', async () => {
    const container = await newContainer('refused');
    const bad = sasUrl(container, { key: Buffer.alloc(64, 7).toString('base64') });
    const sig = new URL(bad).searchParams.get('sig') ?? '';
    const t = tasks();
    const id = started(t, { schemaVersion: '1.0', sasUrl: bad, items: [{ id: 'sensor' }] });
    const done = await finished(t, id);
    expect(done.status).toBe('Failed');
    // Azure answers a wrong signature with AuthenticationFailed; Azurite with AuthorizationFailure.
    expect(done.message).toMatch(/^Uploading kedgehub\/dev-1\/sensor-2026-12-01--12-34-56\.log failed: 403 (AuthenticationFailed|AuthorizationFailure)$/);
    expect((await blobs(container)).size).toBe(0);
    const readOnly = sasUrl(container, { permissions: 'r' });
    const id2 = started(t, { schemaVersion: '1.0', sasUrl: readOnly, items: [{ id: 'sensor' }] });
    expect((await finished(t, id2)).message).toMatch(/failed: 403 AuthorizationPermissionMismatch$/);
    const logged = logLines.join('');
    expect(logged).toContain('UploadModuleLogs failed');
    expect(logged).not.toContain(sig);
    expect(logged).not.toContain(encodeURIComponent(sig));
    expect(logged).not.toContain('sig=');
  });

  it('an unreachable storage account fails the task with the socket error, after retrying', async () => {
    const port = await new Promise<number>((resolve) => {
      const s = createServer().listen(0, '127.0.0.1', () => {
        const p = (s.address() as { port: number }).port;
        s.close(() => resolve(p));
      });
    });
    const t = tasks();
    const id = started(t, { schemaVersion: '1.0', sasUrl: `http://127.0.0.1:${port}/${AZURITE_ACCOUNT}/gone?sv=2020-08-04&sig=abc`, items: [{ id: 'sensor' }] });
    expect(await finished(t, id)).toMatchObject({ status: 'Failed', message: 'Uploading kedgehub/dev-1/sensor-2026-12-01--12-34-56.log failed: ECONNREFUSED' });
  });

  it('a collector error (logs over the bound, a bad item) fails the task with its message', async () => {
    const seen: number[] = [];
    const t = tasks((_r, maxBytes) => {
      seen.push(maxBytes);
      return Promise.reject(new MethodArgumentError('The logs are 17000000 bytes, over the 16777216-byte limit: narrow the filter (tail, since)'));
    });
    const id = started(t, { schemaVersion: '1.0', sasUrl: sasUrl('plain'), items: [{ id: '.*' }] });
    expect(await finished(t, id)).toMatchObject({ status: 'Failed', message: 'The logs are 17000000 bytes, over the 16777216-byte limit: narrow the filter (tail, since)' });
    expect(seen).toEqual([UploadLimits.maxTaskBytes]);
  });

  it('refuses bad requests at once with 400 and starts nothing', () => {
    let calls = 0;
    const t = tasks(() => (calls++, Promise.resolve([])));
    const good = { schemaVersion: '1.0', sasUrl: 'https://acct.blob.core.windows.net/logs?sv=2021-08-06&sp=cw&sig=c2ln', items: [{ id: 'sensor' }] };
    const cases: Array<[unknown, RegExp]> = [
      [null, /^UploadModuleLogs needs/],
      [{ ...good, sasUrl: undefined }, /^sasUrl is missing/],
      [{ ...good, sasUrl: 'not a url' }, /^sasUrl is not a URL$/],
      [{ ...good, sasUrl: 'http://acct.blob.core.windows.net/logs?sig=c2ln' }, /must be an https URL/],
      [{ ...good, sasUrl: 'https://u:p@acct.blob.core.windows.net/logs?sig=c2ln' }, /user credentials/],
      [{ ...good, sasUrl: 'https://acct.blob.core.windows.net/logs?sv=1' }, /no SAS signature/],
      [{ ...good, sasUrl: `https://acct.blob.core.windows.net/${'x'.repeat(5000)}?sig=c2ln` }, /longer than 4096/],
      [{ ...good, items: [] }, /^items must hold 1 to 50/],
      [{ ...good, items: new Array(51).fill({ id: 'a' }) }, /^items must hold 1 to 50/],
      [{ ...good, encoding: 'brotli' }, /^encoding must be/],
      [{ ...good, contentType: 'xml' }, /^contentType must be/],
    ];
    for (const [payload, message] of cases) {
      const r = t.start(payload);
      expect(r.status, JSON.stringify(payload)?.slice(0, 120)).toBe(400);
      expect((r.payload as { message: string }).message).toMatch(message);
      expect((r.payload as { message: string }).message).not.toContain('c2ln');
    }
    expect(calls).toBe(0);
    expect(t.status({ correlationId: 'nope' })).toEqual({ status: 200, payload: { status: 'Unknown', message: 'No task with correlationId nope', correlationId: 'nope' } });
    expect(t.status({}).status).toBe(400);
    expect(t.status({ correlationId: 'x'.repeat(200) }).status).toBe(400);
  });

  it(`runs at most ${UploadLimits.maxActiveTasks} uploads at once (429 beyond), Running while they work`, async () => {
    let release: () => void = () => undefined;
    const gate = new Promise<void>((r) => (release = r));
    const t = tasks(async () => {
      await gate;
      return [];
    });
    const payload = { schemaVersion: '1.0', sasUrl: sasUrl('plain'), items: [{ id: 'sensor' }] };
    const ids = Array.from({ length: UploadLimits.maxActiveTasks }, () => started(t, payload));
    await eventually(() => ids.every((id) => (t.status({ correlationId: id }).payload as { status: string }).status === 'Running'));
    const refused = t.start(payload);
    expect(refused.status).toBe(429);
    release();
    for (const id of ids) expect(await finished(t, id)).toMatchObject({ status: 'Completed', message: 'No module matched the items' });
    expect(t.start(payload).status).toBe(200);
  });
});

describe('logsBlobName', () => {
  it("is edgeAgent's <hub>/<device>/<module>-<yyyy-MM-dd--HH-mm-ss>.<log|json|gz>", () => {
    const base = { hubHostName: 'myhub.azure-devices.net', deviceId: 'd1', moduleId: 'm', nowMs: Date.parse('2026-01-02T03:04:05.678Z') };
    expect(logsBlobName({ ...base, encoding: 'none', contentType: 'text' })).toBe('myhub/d1/m-2026-01-02--03-04-05.log');
    expect(logsBlobName({ ...base, encoding: 'none', contentType: 'json' })).toBe('myhub/d1/m-2026-01-02--03-04-05.json');
    expect(logsBlobName({ ...base, encoding: 'gzip', contentType: 'json' })).toBe('myhub/d1/m-2026-01-02--03-04-05.gz');
  });
});
