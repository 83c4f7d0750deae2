import { readFile } from 'node:fs/promises';
import type { Command } from 'commander';
import { KedgeError } from '@kedge/contracts';
// Type-only: the hub package (fastify, aedes, database drivers) loads when a command runs, not with every `kedge`.
import type { HubClient } from '@kedge/hub';

/** Options every service-API command takes. */
export interface ServiceOptions {
  hub?: string;
  ca?: string;
  port?: string;
  address?: string;
}

/** Adds `--hub`, `--ca`, `--port`, `--address` to a command. */
export function withServiceOptions(cmd: Command): Command {
  return cmd
    .option('--hub <connection-string>', 'service connection string (default: $KEDGE_HUB_CONNECTION_STRING)')
    .option('--ca <file>', 'CA certificate to trust, e.g. <data-dir>/tls/ca.pem (default: $KEDGE_HUB_CA)')
    .option('--port <port>', 'service API port (default 443)')
    .option('--address <host>', 'address to connect to when HostName does not resolve to the hub');
}

/** Builds the client from flags and environment; the environment is read here, when the command runs. */
export async function clientFrom(opts: ServiceOptions): Promise<HubClient> {
  const cs = opts.hub ?? process.env['KEDGE_HUB_CONNECTION_STRING'];
  if (!cs) throw new UsageError('no hub connection string: pass --hub or set KEDGE_HUB_CONNECTION_STRING');
  const caFile = opts.ca ?? process.env['KEDGE_HUB_CA'];
  const ca = caFile ? await readFile(caFile, 'utf8') : undefined;
  const port = opts.port === undefined ? undefined : Number(opts.port);
  if (port !== undefined && !(Number.isInteger(port) && port > 0 && port < 65536)) throw new UsageError(`invalid --port ${opts.port ?? ''}`);
  const { HubClient } = await import('@kedge/hub');
  return new HubClient({
    connectionString: cs,
    ...(ca ? { ca } : {}),
    ...(port ? { port } : {}),
    ...(opts.address ? { address: opts.address } : {}),
  });
}

/** A mistake in how the command was called (exit code 2). */
export class UsageError extends Error {}

/** Prints a value as indented JSON. */
export function printJson(value: unknown): void {
  process.stdout.write(`${JSON.stringify(value, null, 2)}\n`);
}

/** Parses a JSON argument (`--payload '{"a":1}'`). */
export function jsonArg(text: string | undefined, flag: string): unknown {
  if (text === undefined) return undefined;
  try {
    return JSON.parse(text) as unknown;
  } catch (e) {
    throw new UsageError(`${flag} is not valid JSON: ${(e as Error).message}`);
  }
}

/** Reads a JSON or YAML (by extension) file. */
export async function readDocument(file: string): Promise<unknown> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (e) {
    throw new UsageError(`cannot read ${file}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
  try {
    if (/\.ya?ml$/i.test(file)) {
      const { parse } = await import('yaml');
      return parse(text) as unknown;
    }
    return JSON.parse(text) as unknown;
  } catch (e) {
    throw new UsageError(`${file} is not valid ${/\.ya?ml$/i.test(file) ? 'YAML' : 'JSON'}: ${(e as Error).message}`);
  }
}

/**
 * Wraps a command action: hub errors print `error <code>: <message>` (exit 1), usage errors exit 2. Connection
 * strings never appear in messages.
 */
export function run<A extends unknown[]>(fn: (...args: A) => Promise<void>): (...args: A) => Promise<void> {
  return async (...args: A) => {
    try {
      await fn(...args);
    } catch (e) {
      if (e instanceof UsageError) {
        process.stderr.write(`kedge: ${e.message}\n`);
        process.exitCode = 2;
      } else if (e instanceof KedgeError && e.name === 'HubClientError') {
        process.stderr.write(`error ${e.code}: ${e.message}\n`);
        process.exitCode = 1;
      } else {
        throw e;
      }
    }
  };
}
