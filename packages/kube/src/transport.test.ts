/**
 * Failures a real apiserver cannot be made to produce on demand: a proxy's HTML error page, a malformed watch line,
 * a watch cut mid-stream by a middlebox. A plain HTTP server on loopback plays that part (and says so); everything
 * else about the transport is tested against the real control plane (transport.int.test.ts).
 */
import { createServer } from 'node:http';
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ClusterConfig } from './config.js';
import { KubeErrorCode, isTransient, toKubeApiError } from './errors.js';
import { KubeTransport } from './transport.js';

let server: Server;
let transport: KubeTransport;
let handler: (req: IncomingMessage, res: ServerResponse) => void = (_req, res) => res.end();

beforeAll(async () => {
  server = createServer((req, res) => handler(req, res));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const addr = server.address();
  if (addr === null || typeof addr === 'string') throw new Error('no port');
  transport = new KubeTransport(new ClusterConfig({ server: `http://127.0.0.1:${addr.port}/prefix`, token: 'abc' }));
});
afterAll(async () => {
  transport.close();
  await new Promise<void>((resolve) => server.close(() => resolve()));
});

async function watchEvents(): Promise<{ events: [string, unknown][]; error: unknown }> {
  const events: [string, unknown][] = [];
  const error = await transport
    .watch('/api/v1/pods', { resourceVersion: '5' }, (type, obj) => events.push([type, obj]), new AbortController().signal)
    .then(() => undefined, (e: unknown) => e);
  return { events, error };
}

describe('KubeTransport against a misbehaving server', () => {
  it('sends the path under the server prefix, the query, the token and the body', async () => {
    let seen: { url?: string; auth?: string; type?: string; body: string } = { body: '' };
    handler = (req, res) => {
      let body = '';
      req.on('data', (c: Buffer) => (body += c.toString()));
      req.on('end', () => {
        seen = { url: req.url, auth: req.headers.authorization, type: req.headers['content-type'], body };
        res.setHeader('content-type', 'application/json').end('{"ok":true}');
      });
    };
    const out = await transport.request('PATCH', '/api/v1/namespaces/a%2Fb', { query: { fieldManager: 'kedge-agent', dryRun: undefined }, body: { x: 1 }, contentType: 'application/apply-patch+yaml', timeoutMs: 5000 });
    expect(out).toEqual({ ok: true });
    expect(seen).toEqual({ url: '/prefix/api/v1/namespaces/a%2Fb?fieldManager=kedge-agent', auth: 'Bearer abc', type: 'application/apply-patch+yaml', body: '{"x":1}' });
  });

  it('turns an HTML error page into a transient error that quotes it', async () => {
    handler = (_req, res) => res.writeHead(502, { 'content-type': 'text/html' }).end('<html>Bad Gateway</html>');
    const err = toKubeApiError(await transport.request('GET', '/api/v1/pods', { timeoutMs: 5000 }).catch((e: unknown) => e), { verb: 'list' });
    expect(err).toMatchObject({ code: KubeErrorCode.Api, status: 502, message: 'HTTP 502: <html>Bad Gateway</html>', verb: 'list' });
    expect(isTransient(err)).toBe(true);
  });

  it('rejects a 200 that is not JSON, saying so', async () => {
    handler = (_req, res) => res.end('hello');
    await expect(transport.request('GET', '/api', { timeoutMs: 5000 })).rejects.toThrow(/GET \/api: the response is not JSON: hello/);
  });

  it('times a request out', async () => {
    handler = () => undefined; // never answers
    const err = toKubeApiError(await transport.request('GET', '/api', { timeoutMs: 100 }).catch((e: unknown) => e));
    expect(err.code).toBe(KubeErrorCode.Timeout);
  });

  it('streams watch events split across chunks and resolves when the server ends the watch', async () => {
    handler = (req, res) => {
      expect(req.url).toBe('/prefix/api/v1/pods?resourceVersion=5&watch=true');
      res.writeHead(200, { 'content-type': 'application/json' });
      res.write('{"type":"ADDED","object":{"metadata":{"name":"a"}}}\n{"type":"MODI');
      setImmediate(() => res.end('FIED","object":{"metadata":{"name":"a"}}}\n\n'));
    };
    const { events, error } = await watchEvents();
    expect(error).toBeUndefined();
    expect(events).toEqual([
      ['ADDED', { metadata: { name: 'a' } }],
      ['MODIFIED', { metadata: { name: 'a' } }],
    ]);
  });

  it('fails a watch on a malformed line, keeping the events before it', async () => {
    handler = (_req, res) => {
      res.writeHead(200);
      res.write('{"type":"ADDED","object":{"metadata":{"name":"a"}}}\n');
      res.write('<html>proxy timeout</html>\n');
    };
    const { events, error } = await watchEvents();
    expect(events).toHaveLength(1);
    expect(String(error)).toMatch(/malformed watch event: <html>proxy timeout<\/html>/);
  });

  it('fails a watch cut mid-stream as a transient network error, not as a normal end', async () => {
    handler = (_req, res) => {
      res.writeHead(200);
      res.write('{"type":"ADDED","object":{"metadata":{"name":"a"}}}\n');
      setImmediate(() => res.socket?.destroy());
    };
    const { events, error } = await watchEvents();
    expect(events).toHaveLength(1);
    expect(isTransient(error)).toBe(true);
    expect(toKubeApiError(error).code).toBe(KubeErrorCode.Network);
  });

  it('fails a watch answered with an error status, with the Status it sent', async () => {
    handler = (_req, res) =>
      res.writeHead(403, { 'content-type': 'application/json' }).end(JSON.stringify({ kind: 'Status', code: 403, reason: 'Forbidden', message: 'pods is forbidden' }));
    const { error } = await watchEvents();
    expect(toKubeApiError(error)).toMatchObject({ status: 403, reason: 'Forbidden', message: 'pods is forbidden' });
  });
});
