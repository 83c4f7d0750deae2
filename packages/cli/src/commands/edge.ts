import { gunzipSync } from 'node:zlib';
import type { Command } from 'commander';
import { KedgeError } from '@kedge/contracts';
import { formatTable, Tone, type Column } from '../output.js';
import { UsageError, clientFrom, output, run, withJson, withServiceOptions, type ServiceOptions } from './hub/common.js';

/**
 * Exit codes of `kedge edge …`: 0 done, 1 failed (the agent answered with an error, nothing reported), 2 usage,
 * 3 the device's agent is offline (the method timed out or the device is not connected): try again when it is back.
 */
export const EdgeExit = { Ok: 0, Failed: 1, Usage: 2, Offline: 3 } as const;

const AGENT = '$edgeAgent';

/** One module as `kedge edge list` shows it, from the `$edgeAgent` reported properties. */
export interface EdgeModuleRow {
  readonly name: string;
  readonly status: string;
  readonly version?: string;
  readonly restartCount?: number;
  readonly lastStartTimeUtc?: string;
  readonly exitCode?: number;
  readonly description?: string;
  readonly image?: string;
}

/** The device's agent could not be reached through the hub. */
class EdgeOfflineError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'EdgeOfflineError';
  }
}

/** The agent answered a direct method with an error status. */
class EdgeMethodError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'EdgeMethodError';
  }
}

const own = (o: unknown, k: string): unknown => (o !== null && typeof o === 'object' && Object.prototype.hasOwnProperty.call(o, k) ? (o as Record<string, unknown>)[k] : undefined);
const str = (v: unknown): string | undefined => (typeof v === 'string' && v !== '' ? v : undefined);
const num = (v: unknown): number | undefined => (typeof v === 'number' && Number.isFinite(v) ? v : undefined);

/** The modules of `$edgeAgent` reported properties: system modules first, then the rest by name. */
export function modulesFromReported(reported: unknown): EdgeModuleRow[] {
  const rows: EdgeModuleRow[] = [];
  const add = (group: unknown): EdgeModuleRow[] => {
    if (group === null || typeof group !== 'object') return [];
    return Object.keys(group)
      .filter((n) => !n.startsWith('$'))
      .sort()
      .map((name) => {
        const m = own(group, name);
        const row: EdgeModuleRow = { name, status: str(own(m, 'runtimeStatus')) ?? 'unknown' };
        const version = str(own(m, 'version'));
        const restartCount = num(own(m, 'restartCount'));
        const lastStartTimeUtc = str(own(m, 'lastStartTimeUtc'));
        const exitCode = num(own(m, 'exitCode'));
        const description = str(own(m, 'statusDescription'));
        const image = str(own(own(m, 'settings'), 'image'));
        return {
          ...row,
          ...(version !== undefined ? { version } : {}),
          ...(restartCount !== undefined ? { restartCount } : {}),
          ...(lastStartTimeUtc !== undefined && !lastStartTimeUtc.startsWith('0001-') ? { lastStartTimeUtc } : {}),
          ...(exitCode !== undefined ? { exitCode } : {}),
          ...(description !== undefined ? { description } : {}),
          ...(image !== undefined ? { image } : {}),
        };
      });
  };
  rows.push(...add(own(reported, 'systemModules')), ...add(own(reported, 'modules')));
  return rows;
}

const statusTone = (s: string): Tone | undefined => (s === 'running' ? Tone.Good : s === 'failed' || s === 'backoff' ? Tone.Bad : s === 'stopped' ? Tone.Dim : undefined);

const columns: Column<EdgeModuleRow>[] = [
  { header: 'name', value: (r) => r.name },
  { header: 'status', value: (r) => r.status, tone: (r) => statusTone(r.status) },
  { header: 'version', value: (r) => r.version },
  { header: 'restarts', value: (r) => r.restartCount },
  { header: 'last start', value: (r) => r.lastStartTimeUtc },
  { header: 'image', value: (r) => r.image },
];

const escapeRegex = (s: string): string => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

/** Invokes a method of the device's `$edgeAgent`; offline and error answers become the errors above. */
async function invokeAgent(opts: ServiceOptions, deviceId: string, method: string, payload: unknown, timeoutSeconds: number): Promise<unknown> {
  const c = await clientFrom(opts);
  let r: { status: number; payload: unknown };
  try {
    r = await c.invoke(deviceId, AGENT, method, payload, timeoutSeconds);
  } catch (e) {
    if (e instanceof KedgeError && (e.code === 'CLOUD_ERR_DEVICE_NOT_ONLINE' || e.code === 'CLOUD_ERR_METHOD_TIMEOUT')) {
      const why = e.code === 'CLOUD_ERR_DEVICE_NOT_ONLINE' ? `the agent of ${deviceId} is not connected to the hub` : `the agent of ${deviceId} did not answer ${method} within ${timeoutSeconds} s`;
      throw new EdgeOfflineError(`${why}: check the device (\`kedge check -n <namespace>\` there, or \`kedge edge list ${deviceId}\` for when it last reported) and try again`);
    }
    throw e;
  }
  if (r.status >= 300) {
    const message = str(own(r.payload, 'message')) ?? JSON.stringify(r.payload);
    throw new EdgeMethodError(`${method} failed (${r.status}): ${message}`);
  }
  return r.payload;
}

/** `run()` from the hub commands, plus exit code 3 for an offline device and 1 for an agent's error answer. */
function runEdge<A extends unknown[]>(fn: (...args: A) => Promise<void>): (...args: A) => Promise<void> {
  return run(async (...args: A) => {
    try {
      await fn(...args);
    } catch (e) {
      if (e instanceof EdgeOfflineError) {
        process.stderr.write(`kedge: ${e.message}\n`);
        process.exitCode = EdgeExit.Offline;
        return;
      }
      if (e instanceof EdgeMethodError) {
        process.stderr.write(`kedge: ${e.message}\n`);
        process.exitCode = EdgeExit.Failed;
        return;
      }
      throw e;
    }
  });
}

const timeoutOption = (cmd: Command): Command => cmd.option('--timeout <seconds>', 'how long the agent may take to answer (5-300)', '30');

function timeoutOf(v: string): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 5 || n > 300) throw new UsageError('--timeout must be a whole number of seconds from 5 to 300');
  return n;
}

/** The text of a GetModuleLogs answer for one module (gzip + base64 as the agent sends it). */
function logText(payload: unknown, module: string): string | undefined {
  if (!Array.isArray(payload)) return undefined;
  const item = payload.find((p) => own(p, 'id') === module) as unknown;
  if (item === undefined) return undefined;
  const bytes = str(own(item, 'payloadBytes'));
  if (bytes !== undefined) return gunzipSync(Buffer.from(bytes, 'base64')).toString('utf8');
  const p = own(item, 'payload');
  return typeof p === 'string' ? p : JSON.stringify(p);
}

const FOLLOW_INTERVAL_MS = 2000;
const FOLLOW_WINDOW_LINES = 2000;

/** The lines of `next` that are not already the end of `printed`: the longest suffix of one that begins the other is dropped. */
export function newLines(printed: readonly string[], next: readonly string[]): string[] {
  for (let k = Math.min(printed.length, next.length); k > 0; k--) {
    let same = true;
    for (let i = 0; i < k && same; i++) same = printed[printed.length - k + i] === next[i];
    if (same) return next.slice(k);
  }
  return [...next];
}

const splitLines = (text: string): string[] => {
  const lines = text.split('\n');
  if (lines[lines.length - 1] === '') lines.pop();
  return lines;
};

/** Polls `more` every 2 s and prints what is new, until Ctrl-C (or an error: an offline device ends it with exit 3). */
async function follow(first: string, more: () => Promise<string>): Promise<void> {
  let printed = splitLines(first).slice(-FOLLOW_WINDOW_LINES);
  const stop = new AbortController();
  const onSigint = (): void => stop.abort();
  process.once('SIGINT', onSigint);
  try {
    while (!stop.signal.aborted) {
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, FOLLOW_INTERVAL_MS);
        stop.signal.addEventListener('abort', () => (clearTimeout(t), resolve()), { once: true });
      });
      if (stop.signal.aborted) break;
      const fresh = newLines(printed, splitLines(await more()));
      if (fresh.length > 0) process.stdout.write(`${fresh.join('\n')}\n`);
      printed = [...printed, ...fresh].slice(-FOLLOW_WINDOW_LINES);
    }
  } finally {
    process.off('SIGINT', onSigint);
  }
}

/**
 * Registers `kedge edge list|logs|restart` (like `iotedge list/logs/restart`, but for a device through the hub):
 * `list` reads the device's `$edgeAgent` reported properties; `logs` and `restart` invoke the agent's
 * `GetModuleLogs` and `RestartModule` direct methods. Exit codes: {@link EdgeExit}.
 */
export function registerEdgeCommands(program: Command): void {
  const edge = program.command('edge').description("An edge device's modules, through the hub: list, logs, restart (exit 3: the device is offline)");

  withServiceOptions(withJson(edge.command('list').argument('<deviceId>').description("The device's modules as its agent last reported them: status, version, restarts, last start"))).action(
    runEdge(async (deviceId: string, opts: ServiceOptions & { json?: boolean }) => {
      const c = await clientFrom(opts);
      let twin: Record<string, unknown>;
      try {
        twin = (await c.getTwin(deviceId, AGENT)) as Record<string, unknown>;
      } catch (e) {
        if (e instanceof KedgeError && (e.code === 'CLOUD_ERR_MODULE_NOT_FOUND' || e.code === 'CLOUD_ERR_DEVICE_NOT_FOUND')) {
          throw new EdgeMethodError(`${deviceId} is not an edge device of this hub (it has no ${AGENT}): see \`kedge devices list\``);
        }
        throw e;
      }
      const reported = own(own(twin, 'properties'), 'reported');
      const rows = modulesFromReported(reported);
      if (rows.length === 0) {
        throw new EdgeMethodError(`${deviceId} has not reported any module yet: is its agent installed and connected? (\`kedge check -n <namespace>\` on the device; \`kedge twin show ${deviceId} --module ${AGENT}\`)`);
      }
      if (own(twin, 'connectionState') !== 'Connected') {
        const last = str(own(own(reported, '$metadata'), '$lastUpdated'));
        process.stderr.write(`kedge: the agent of ${deviceId} is not connected; this is what it reported${last ? ` at ${last}` : ' last'}\n`);
      }
      output(opts, rows, (color) => formatTable(rows, columns, { color }));
    }),
  );

  withServiceOptions(
    timeoutOption(
      edge
        .command('logs')
        .argument('<deviceId>')
        .argument('<module>')
        .option('--since <time>', 'only lines since: a duration (15m, 2h, 1d), an RFC 3339 time or unix seconds')
        .option('--until <time>', 'only lines until (same forms)')
        .option('--tail <n>', 'only the last n lines')
        .option('-f, --follow', 'then keep printing new lines (asks the agent every 2 s; Ctrl-C stops; exit 3 when the device goes offline)')
        .description("A module's logs, through the agent's GetModuleLogs (at most ~128 KB compressed: narrow with --tail/--since)"),
    ),
  ).action(
    runEdge(async (deviceId: string, module: string, opts: ServiceOptions & { since?: string; until?: string; tail?: string; follow?: boolean; timeout: string }) => {
      const timeout = timeoutOf(opts.timeout);
      let tail: number | undefined;
      if (opts.tail !== undefined) {
        tail = Number(opts.tail);
        if (!Number.isInteger(tail) || tail < 0) throw new UsageError('--tail must be a whole number');
      }
      if (opts.follow === true && opts.until !== undefined) throw new UsageError('--follow and --until exclude each other');
      const fetchLogs = async (filter: Record<string, unknown>): Promise<string> => {
        const payload = { schemaVersion: '1.0', items: [{ id: `^${escapeRegex(module)}$`, filter }], encoding: 'gzip', contentType: 'text' };
        const text = logText(await invokeAgent(opts, deviceId, 'GetModuleLogs', payload, timeout), module);
        if (text === undefined) throw new EdgeMethodError(`${module} is not a module of ${deviceId}'s deployment (see \`kedge edge list ${deviceId}\`)`);
        return text;
      };
      let asked = Date.now();
      const text = await fetchLogs({ ...(tail !== undefined ? { tail } : {}), ...(opts.since ? { since: opts.since } : {}), ...(opts.until ? { until: opts.until } : {}) });
      process.stdout.write(text);
      if (opts.follow !== true) return;
      await follow(text, async () => {
        // `since` has a resolution of one second: ask from a second before the last request and drop the overlap.
        const since = Math.floor(asked / 1000) - 1;
        asked = Date.now();
        return fetchLogs({ since: String(since) });
      });
    }),
  );

  withServiceOptions(timeoutOption(edge.command('restart').argument('<deviceId>').argument('<module>').description('Restart a module (the agent replaces its pod or process)'))).action(
    runEdge(async (deviceId: string, module: string, opts: ServiceOptions & { timeout: string }) => {
      await invokeAgent(opts, deviceId, 'RestartModule', { schemaVersion: '1.0', id: module }, timeoutOf(opts.timeout));
      process.stdout.write(`restarted ${module} on ${deviceId}\n`);
    }),
  );
}
