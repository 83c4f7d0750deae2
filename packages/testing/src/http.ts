import type { ClientRequest } from 'node:http';

/**
 * Sends `req` (with `body`, if any) and resolves with the status and the whole body as text. A `timeout` set on the
 * request destroys it with an error; any request error rejects.
 */
export function readResponse(req: ClientRequest, body?: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    req.on('response', (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (text += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text }));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', reject);
    req.end(body);
  });
}
