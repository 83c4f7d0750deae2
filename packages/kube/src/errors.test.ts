import { describe, expect, it } from 'vitest';
import {
  KubeApiError,
  KubeErrorCode,
  TerminalError,
  isAlreadyExists,
  isConflict,
  isForbidden,
  isGone,
  isInvalid,
  isNotFound,
  isTerminal,
  isTransient,
  toKubeApiError,
} from './errors.js';
import { formatKey, objectKey, parseKey } from './keys.js';
import { HttpStatusError } from './transport.js';

const status = (code: number, reason: string, message = 'm') =>
  JSON.stringify({ kind: 'Status', apiVersion: 'v1', status: 'Failure', code, reason, message, details: { name: 'cm1', kind: 'configmaps' } });

describe('toKubeApiError', () => {
  it('reads code, reason and message from an HTTP error carrying a Status body', () => {
    const e = toKubeApiError(new HttpStatusError(404, status(404, 'NotFound', 'configmaps "cm1" not found'), {}), {
      verb: 'get',
      apiVersion: 'v1',
      kind: 'ConfigMap',
      namespace: 'ns',
      name: 'cm1',
    });
    expect(e).toBeInstanceOf(KubeApiError);
    expect(e).toMatchObject({ code: KubeErrorCode.Api, status: 404, reason: 'NotFound', kind: 'ConfigMap', namespace: 'ns', objectName: 'cm1' });
    expect(e.message).toBe('configmaps "cm1" not found');
    expect(e.name).toBe('KubeApiError');
    expect(e.cause).toBeInstanceOf(HttpStatusError);
    expect(toKubeApiError(e)).toBe(e);
  });

  it('classifies on reason first, HTTP code only when the reason is unknown, and never on the message', () => {
    const mk = (code: number, reason: string, msg = 'not found') => new HttpStatusError(code, status(code, reason, msg), {});
    expect(isNotFound(mk(404, 'NotFound'))).toBe(true);
    expect(isNotFound(mk(404, ''))).toBe(true);
    expect(isNotFound(mk(500, 'InternalError', 'not found'))).toBe(false);
    expect(isConflict(mk(409, 'Conflict'))).toBe(true);
    expect(isConflict(mk(409, 'AlreadyExists'))).toBe(false);
    expect(isAlreadyExists(mk(409, 'AlreadyExists'))).toBe(true);
    expect(isAlreadyExists(mk(409, 'Conflict'))).toBe(false);
    expect(isForbidden(mk(403, 'Forbidden'))).toBe(true);
    expect(isInvalid(mk(422, 'Invalid'))).toBe(true);
    expect(isGone(mk(410, 'Expired'))).toBe(true);
    expect(isGone(mk(410, 'Gone'))).toBe(true);
    expect(isTransient(mk(429, 'TooManyRequests'))).toBe(true);
    expect(isTransient(mk(503, 'ServiceUnavailable'))).toBe(true);
    expect(isTransient(mk(500, ''))).toBe(true);
    expect(isTransient(mk(504, 'Timeout'))).toBe(true);
    expect(isTransient(mk(409, 'Conflict'))).toBe(false);
    expect(isTransient(mk(422, 'Invalid'))).toBe(false);
  });

  it('accepts a non-JSON body and a watch error with statusCode', () => {
    const html = toKubeApiError(new HttpStatusError(502, '<html>bad gateway</html>', {}));
    expect(html).toMatchObject({ status: 502, reason: '', message: 'HTTP 502: <html>bad gateway</html>' });
    expect(isTransient(html)).toBe(true);
    const watchErr = Object.assign(new Error('Gone'), { statusCode: 410 });
    expect(isGone(watchErr)).toBe(true);
  });

  it('reads Retry-After', () => {
    const e = toKubeApiError(new HttpStatusError(429, '{}', { 'retry-after': '3' }));
    expect(e.retryAfterSeconds).toBe(3);
  });

  it('treats network failures and timeouts as transient and everything else as not', () => {
    const refused = Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:1'), { code: 'ECONNREFUSED', errno: -111, syscall: 'connect' });
    expect(toKubeApiError(refused).code).toBe(KubeErrorCode.Network);
    expect(isTransient(refused)).toBe(true);
    const timeout = new DOMException('The operation was aborted due to timeout', 'TimeoutError');
    expect(toKubeApiError(timeout).code).toBe(KubeErrorCode.Timeout);
    expect(isTransient(timeout)).toBe(true);
    const bug = new TypeError('x is not a function');
    expect(toKubeApiError(bug).code).toBe(KubeErrorCode.Unknown);
    expect(isTransient(bug)).toBe(false);
    expect(isNotFound(bug)).toBe(false);
    expect(isNotFound('404')).toBe(false);
  });

  it('finds a TerminalError in the cause chain', () => {
    expect(isTerminal(new TerminalError('bad spec'))).toBe(true);
    expect(isTerminal(new Error('wrapped', { cause: new TerminalError('bad spec') }))).toBe(true);
    expect(isTerminal(new Error('plain'))).toBe(false);
  });
});

describe('keys', () => {
  it('round-trips namespaced and cluster-scoped keys', () => {
    expect(formatKey(objectKey({ metadata: { namespace: 'ns', name: 'a' } }))).toBe('ns/a');
    expect(parseKey('ns/a')).toEqual({ namespace: 'ns', name: 'a' });
    expect(parseKey('node-1')).toEqual({ namespace: '', name: 'node-1' });
    expect(formatKey(parseKey('node-1'))).toBe('node-1');
    expect(() => objectKey({ kind: 'ConfigMap', metadata: {} })).toThrow(/metadata.name/);
  });
});
