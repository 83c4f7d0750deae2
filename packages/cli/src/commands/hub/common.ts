import { readFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import type { Command } from 'commander';
import { KedgeError } from '@kedge/contracts';
// Type-only: the hub package (fastify, aedes, database drivers) loads when a command runs, not with every `kedge`.
import type { HubClient } from '@kedge/hub';
import { useColor } from '../../output.js';
import { defaultStateDir, readDevState } from '../dev/state.js';

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
    .option('--port <port>', 'service API port (default: $KEDGE_HUB_PORT, else 443)')
    .option('--address <host>', 'address to connect to when HostName does not resolve to the hub');
}

/**
 * The hub `kedge dev up` runs, when its state dir (`./.kedge-dev` or `$KEDGE_DEV_STATE_DIR`) names one: so that
 * `kedge monitor`, `kedge deploy`, … work right after `dev up` with no exports.
 */
function devHub(): { cs: string; ca: string; port: string } | undefined {
  const hub = readDevState(defaultStateDir())?.hub;
  if (!hub) return undefined;
  try {
    return { cs: readFileSync(hub.connectionStringFile, 'utf8').trim(), ca: hub.caFile, port: String(hub.servicePort) };
  } catch {
    return undefined;
  }
}

/**
 * Builds the client from flags and environment; the environment is read here, when the command runs. Order: flags,
 * then `KEDGE_HUB_CONNECTION_STRING` / `KEDGE_HUB_CA` / `KEDGE_HUB_PORT`, then the hub of `kedge dev up`.
 */
export async function clientFrom(opts: ServiceOptions): Promise<HubClient> {
  const envCs = opts.hub ?? process.env['KEDGE_HUB_CONNECTION_STRING'];
  const dev = envCs ? undefined : devHub();
  const cs = envCs ?? dev?.cs;
  if (!cs) throw new UsageError('no hub connection string: pass --hub or set KEDGE_HUB_CONNECTION_STRING (or start one with `kedge dev up`)');
  const caFile = opts.ca ?? process.env['KEDGE_HUB_CA'] ?? dev?.ca;
  const portText = opts.port ?? process.env['KEDGE_HUB_PORT'] ?? dev?.port;
  let ca: string | undefined;
  try {
    ca = caFile ? await readFile(caFile, 'utf8') : undefined;
  } catch (e) {
    throw new UsageError(`cannot read the CA file ${caFile ?? ''} (${(e as NodeJS.ErrnoException).code ?? 'error'}): pass --ca <data-dir>/tls/ca.pem`);
  }
  const port = portText === undefined ? undefined : Number(portText);
  if (port !== undefined && !(Number.isInteger(port) && port > 0 && port < 65536)) throw new UsageError(`invalid --port ${portText ?? ''}`);
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

/** Adds `--json` (machine output) to a `list`/`show` command. */
export function withJson(cmd: Command): Command {
  return cmd.option('--json', 'print JSON instead of a table (for scripts)');
}

/** Prints `value` as JSON with `--json`, else the human table `table(color)` builds. */
export function output(opts: { json?: boolean }, value: unknown, table: (color: boolean) => string): void {
  if (opts.json === true) printJson(value);
  else process.stdout.write(table(useColor()));
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

// What to do next, by error code (never by message).
const HINTS: Readonly<Record<string, string>> = {
  CLOUD_ERR_TRANSPORT: 'check the HostName in the connection string, or pass --address/--port',
  CLOUD_ERR_UNAUTHORIZED: 'check SharedAccessKeyName and SharedAccessKey in --hub / $KEDGE_HUB_CONNECTION_STRING',
  CLOUD_ERR_DEVICE_NOT_FOUND: "see the hub's devices with `kedge devices list`",
  CLOUD_ERR_MODULE_NOT_FOUND: "see the device's modules with `kedge modules list <deviceId>`",
  CLOUD_ERR_CONFIGURATION_NOT_FOUND: 'see the deployments with `kedge deployments list`',
  CLOUD_ERR_DEVICE_NOT_ONLINE: 'the device must be connected; check it with `kedge devices list`',
  CLOUD_ERR_PRECONDITION_FAILED: 'it changed meanwhile: read it again and retry',
};
// TLS verification failures (Node's error codes): the hub's CA is not trusted.
const UNTRUSTED = new Set(['SELF_SIGNED_CERT_IN_CHAIN', 'DEPTH_ZERO_SELF_SIGNED_CERT', 'UNABLE_TO_VERIFY_LEAF_SIGNATURE', 'UNABLE_TO_GET_ISSUER_CERT_LOCALLY', 'ERR_TLS_CERT_ALTNAME_INVALID']);

function hintFor(e: KedgeError): string | undefined {
  const cause = (e as { cause?: { code?: unknown } }).cause;
  if (e.code === 'CLOUD_ERR_TRANSPORT' && typeof cause?.code === 'string' && UNTRUSTED.has(cause.code)) {
    return "the hub's certificate is not trusted: pass --ca <data-dir>/tls/ca.pem (or set KEDGE_HUB_CA)";
  }
  return HINTS[e.code];
}

const oneLine = (s: string): string => s.replace(/\s*\n\s*/g, ' ').trim();

/**
 * Wraps a command action. Every failure is one line on stderr, with what to do next where we know it, and no stack
 * trace: hub errors print `error <code>: <message>` (exit 1), usage errors `kedge: <message>` (exit 2), anything
 * else `kedge: <message>` (exit 1). Connection strings never appear in messages.
 */
export function run<A extends unknown[]>(fn: (...args: A) => Promise<void>): (...args: A) => Promise<void> {
  return async (...args: A) => {
    try {
      await fn(...args);
    } catch (e) {
      if (e instanceof UsageError) {
        process.stderr.write(`kedge: ${oneLine(e.message)}\n`);
        process.exitCode = 2;
      } else if (e instanceof KedgeError && e.name === 'HubClientError') {
        const hint = hintFor(e);
        process.stderr.write(`error ${e.code}: ${oneLine(e.message)}${hint ? ` (${hint})` : ''}\n`);
        process.exitCode = 1;
      } else {
        process.stderr.write(`kedge: ${oneLine(e instanceof Error ? e.message : String(e))}\n`);
        process.exitCode = 1;
      }
    }
  };
}
