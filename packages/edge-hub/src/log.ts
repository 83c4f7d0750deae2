import pino from 'pino';
import type { Logger } from 'pino';

export type { Logger } from 'pino';

/** Paths pino censors: keys, tokens, passwords and connection strings never reach a log line. */
export const REDACT_PATHS = [
  'password',
  '*.password',
  'token',
  '*.token',
  'sas',
  '*.sas',
  'key',
  '*.key',
  'primaryKey',
  'secondaryKey',
  '*.primaryKey',
  '*.secondaryKey',
  '*.*.primaryKey',
  '*.*.secondaryKey',
  'connectionString',
  '*.connectionString',
  'authorization',
  '*.authorization',
  'headers.authorization',
];

/** The edge hub's root logger (JSON to stdout unless a destination is given). */
export function createLogger(opts: { level: string; destination?: pino.DestinationStream }): Logger {
  return pino({ level: opts.level, redact: { paths: REDACT_PATHS, censor: '[redacted]' }, base: { component: 'kedge-edge-hub' } }, opts.destination);
}
