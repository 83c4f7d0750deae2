import pino from 'pino';
import type { Logger } from 'pino';

export type { Logger } from 'pino';

/**
 * Paths pino censors. Keys, tokens, passwords and connection strings must never reach a log line, whatever object
 * is logged (device records carry `authentication.symmetricKey`).
 */
export const REDACT_PATHS = [
  'password',
  '*.password',
  'token',
  '*.token',
  'sas',
  '*.sas',
  'primaryKey',
  'secondaryKey',
  '*.primaryKey',
  '*.secondaryKey',
  '*.*.primaryKey',
  '*.*.secondaryKey',
  '*.*.*.primaryKey',
  '*.*.*.secondaryKey',
  'connectionString',
  '*.connectionString',
  'authorization',
  '*.authorization',
  'req.headers.authorization',
  'headers.authorization',
  'symmetricKey',
  '*.symmetricKey',
  '*.*.symmetricKey',
];

/** The hub's root logger (JSON to stdout unless a destination is given). */
export function createLogger(opts: { level: string; destination?: pino.DestinationStream }): Logger {
  return pino({ level: opts.level, redact: { paths: REDACT_PATHS, censor: '[redacted]' }, base: { component: 'kedge-hub' } }, opts.destination);
}
