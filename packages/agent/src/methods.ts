import { gzipSync } from 'node:zlib';
import type { Logger } from 'pino';
import type { MethodRequest, MethodResponse } from '@kedge/iothub-client';
import type { ClusterConfig, KubeClient } from '@kedge/kube';
import { isObject } from '@kedge/protocol';
import { KubernetesModuleRuntime } from './kubernetes-runtime.js';
import { UnknownModuleError, type LogLine, type ModuleOperations } from './module-runtime.js';

/** An argument problem: answered 400, as edgeAgent answers an `ArgumentException`. */
export class MethodArgumentError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'MethodArgumentError';
  }
}

/** edgeAgent's limit on a GetModuleLogs answer (a direct method payload is at most 128 KB). */
export const MAX_LOGS_PAYLOAD_BYTES = 127_000;

const DURATION_UNITS: Readonly<Record<string, number>> = {
  s: 1, sec: 1, secs: 1, second: 1, seconds: 1,
  m: 60, min: 60, mins: 60, minute: 60, minutes: 60,
  h: 3600, hr: 3600, hrs: 3600, hour: 3600, hours: 3600,
  d: 86400, day: 86400, days: 86400,
  w: 604800, week: 604800, weeks: 604800,
};

/**
 * A `since`/`until` value as edgeAgent accepts it: a duration before now (`90 m`, `1d`, `2 days 3 hours`), an
 * RFC 3339 time or unix seconds. Returns epoch ms; throws {@link MethodArgumentError} otherwise.
 */
export function parseLogTime(v: unknown, nowMs: number): number {
  if (typeof v === 'number' && Number.isFinite(v)) return v * 1000;
  if (typeof v !== 'string' || v.trim() === '' || v.length > 64) throw new MethodArgumentError(`Invalid time ${JSON.stringify(v)}`);
  const s = v.trim();
  if (/^\d+$/.test(s)) return Number(s) * 1000;
  const tokens = [...s.matchAll(/(\d+)\s*([a-z]+)/gi)];
  if (tokens.length > 0 && tokens.map((t) => t[0]).join('').replace(/\s/g, '') === s.replace(/\s/g, '')) {
    let seconds = 0;
    for (const t of tokens) {
      const unit = DURATION_UNITS[(t[2] ?? '').toLowerCase()];
      if (unit === undefined) throw new MethodArgumentError(`Invalid duration ${JSON.stringify(v)}`);
      seconds += Number(t[1]) * unit;
    }
    return nowMs - seconds * 1000;
  }
  const t = Date.parse(s);
  if (/^\d{4}-\d{2}-\d{2}/.test(s) && Number.isFinite(t)) return t;
  throw new MethodArgumentError(`Invalid time ${JSON.stringify(v)}`);
}

interface LogFilter {
  readonly tail?: number;
  readonly sinceMs?: number;
  readonly untilMs?: number;
  readonly loglevel?: number;
  readonly regex?: RegExp;
}

function parseFilter(f: unknown, nowMs: number): LogFilter {
  if (f === undefined || f === null) return {};
  if (!isObject(f)) throw new MethodArgumentError('filter must be an object');
  const out: { -readonly [K in keyof LogFilter]: LogFilter[K] } = {};
  if (f['tail'] !== undefined) {
    if (typeof f['tail'] !== 'number' || !Number.isInteger(f['tail']) || f['tail'] < 0) throw new MethodArgumentError('filter.tail must be a non-negative integer');
    out.tail = f['tail'];
  }
  if (f['since'] !== undefined) out.sinceMs = parseLogTime(f['since'], nowMs);
  if (f['until'] !== undefined) out.untilMs = parseLogTime(f['until'], nowMs);
  if (f['loglevel'] !== undefined) {
    if (typeof f['loglevel'] !== 'number' || !Number.isInteger(f['loglevel']) || f['loglevel'] < 0 || f['loglevel'] > 7) throw new MethodArgumentError('filter.loglevel must be 0–7');
    out.loglevel = f['loglevel'];
  }
  if (f['regex'] !== undefined) {
    if (typeof f['regex'] !== 'string' || f['regex'].length > 256) throw new MethodArgumentError('filter.regex must be a string of at most 256 characters');
    try {
      out.regex = new RegExp(f['regex']);
    } catch {
      throw new MethodArgumentError(`filter.regex is not a regular expression`);
    }
  }
  return out;
}

/** The syslog severity of a line in IoT Edge's recommended format (`<6> 2024-01-01 … message`), if it has one. */
const levelOf = (line: string): number | undefined => {
  const m = /^<([0-7])>/.exec(line);
  return m ? Number(m[1]) : undefined;
};

/** The Kubernetes shorthand of {@link AgentMethodsOptions}: the device's EdgeDeployment, as a {@link KubernetesModuleRuntime}. */
export interface KubernetesMethodsTarget {
  readonly kube: KubeClient;
  readonly cluster: ClusterConfig;
  readonly namespace: string;
  /** The device's EdgeDeployment. */
  readonly name: string;
  /** Deadline of each Kubernetes call. @default 30_000 */
  readonly timeoutMs?: number;
}

export type AgentMethodsOptions = {
  readonly log: Logger;
  readonly now?: () => number;
} & ({ readonly runtime: ModuleOperations } | KubernetesMethodsTarget);

type Handler = (payload: unknown) => Promise<MethodResponse>;

/**
 * edgeAgent's built-in direct methods (iotedge-protocols.md §6) on any {@link ModuleOperations} (Kubernetes or
 * processes): `ping`, `RestartModule` (the runtime restarts the module), `GetModuleLogs` (the module's real logs:
 * tail, since, until, loglevel, regex; optionally gzip), `GetTaskStatus`. Names are matched case-insensitively; unknown commands and bad
 * arguments get 400 with `{message}`, other failures 500.
 */
export class AgentMethods {
  readonly #o: AgentMethodsOptions;
  readonly #runtime: ModuleOperations;
  readonly #handlers: ReadonlyMap<string, Handler>;

  constructor(options: AgentMethodsOptions) {
    this.#o = options;
    this.#runtime = 'runtime' in options ? options.runtime : new KubernetesModuleRuntime({ ...options, log: options.log });
    this.#handlers = new Map<string, Handler>([
      ['ping', () => Promise.resolve({ status: 200, payload: null })],
      ['restartmodule', (p) => this.#restart(p)],
      ['getmodulelogs', (p) => this.#logs(p)],
      ['gettaskstatus', (p) => this.#taskStatus(p)],
    ]);
  }

  /** The direct method handler for {@link IotHubClient.onMethod}. */
  readonly handle = async (req: MethodRequest): Promise<MethodResponse> => {
    const h = this.#handlers.get(req.name.toLowerCase());
    if (!h) return { status: 400, payload: { message: `Command '${req.name}' not found. The supported commands are - ping, RestartModule, GetModuleLogs, GetTaskStatus` } };
    try {
      return await h(req.payload);
    } catch (e) {
      if (e instanceof MethodArgumentError) return { status: 400, payload: { message: e.message } };
      this.#o.log.warn({ method: req.name, err: (e as Error).message }, 'Direct method failed');
      return { status: 500, payload: { message: (e as Error).message } };
    }
  };

  async #restart(payload: unknown): Promise<MethodResponse> {
    if (!isObject(payload) || typeof payload['id'] !== 'string' || payload['id'] === '') throw new MethodArgumentError('RestartModule needs {"schemaVersion":"1.0","id":"<module>"}');
    const id = payload['id'];
    try {
      await this.#runtime.restart(id);
    } catch (e) {
      if (e instanceof UnknownModuleError) throw new MethodArgumentError(e.message);
      throw e;
    }
    this.#o.log.info({ module: id }, 'Restarted module (RestartModule)');
    return { status: 200, payload: null };
  }

  async #taskStatus(payload: unknown): Promise<MethodResponse> {
    if (!isObject(payload) || typeof payload['correlationId'] !== 'string') throw new MethodArgumentError('GetTaskStatus needs {"schemaVersion":"1.0","correlationId":"<id>"}');
    // Kedge runs no background upload tasks (UploadModuleLogs/UploadSupportBundle are not offered): every id is unknown.
    return Promise.resolve({ status: 200, payload: { status: 'Unknown', message: `No task with correlationId ${payload['correlationId']}`, correlationId: payload['correlationId'] } });
  }

  async #logs(payload: unknown): Promise<MethodResponse> {
    if (!isObject(payload) || !Array.isArray(payload['items']) || payload['items'].length === 0 || payload['items'].length > 50) {
      throw new MethodArgumentError('GetModuleLogs needs {"schemaVersion":"1.0","items":[{"id":"<module regex>","filter":{…}}]}');
    }
    const encoding = payload['encoding'] ?? 'none';
    const contentType = payload['contentType'] ?? 'text';
    if (encoding !== 'none' && encoding !== 'gzip') throw new MethodArgumentError('encoding must be "none" or "gzip"');
    if (contentType !== 'text' && contentType !== 'json') throw new MethodArgumentError('contentType must be "text" or "json"');
    const now = this.#o.now?.() ?? Date.now();
    const modules = await this.#runtime.moduleNames();
    const results: Array<{ id: string; payload?: unknown; payloadBytes?: string }> = [];
    const done = new Set<string>();
    for (const item of payload['items'] as unknown[]) {
      if (!isObject(item) || typeof item['id'] !== 'string' || item['id'].length > 256) throw new MethodArgumentError('each item needs an "id" (a regular expression of module names)');
      let re: RegExp;
      try {
        re = new RegExp(item['id']);
      } catch {
        throw new MethodArgumentError(`"${item['id']}" is not a regular expression`);
      }
      const filter = parseFilter(item['filter'], now);
      for (const name of modules) {
        if (done.has(name) || !re.test(name)) continue;
        done.add(name);
        const lines = await this.#moduleLog(name, filter);
        const body = contentType === 'json'
          ? lines.map((l) => ({ moduleId: name, ...(levelOf(l.text) !== undefined ? { logLevel: levelOf(l.text) } : {}), ...(l.timeMs !== undefined ? { timeStamp: new Date(l.timeMs).toISOString() } : {}), text: l.text }))
          : lines.map((l) => `${l.text}\n`).join('');
        if (encoding === 'gzip') results.push({ id: name, payloadBytes: gzipSync(Buffer.from(typeof body === 'string' ? body : JSON.stringify(body))).toString('base64') });
        else results.push({ id: name, payload: body });
      }
    }
    const size = Buffer.byteLength(JSON.stringify(results));
    if (size > MAX_LOGS_PAYLOAD_BYTES) throw new MethodArgumentError(`The logs are ${size} bytes, over the ${MAX_LOGS_PAYLOAD_BYTES}-byte limit of a direct method: narrow the filter (tail, since) or use gzip`);
    return { status: 200, payload: results };
  }

  /** A module's log lines, filtered: the runtime narrows by time (and tail when nothing else filters), the rest here. */
  async #moduleLog(name: string, f: LogFilter): Promise<LogLine[]> {
    const serverTail = f.tail !== undefined && f.loglevel === undefined && f.regex === undefined;
    let out = await this.#runtime.logs(name, {
      ...(serverTail ? { tail: f.tail } : {}),
      ...(f.sinceMs !== undefined ? { sinceMs: f.sinceMs } : {}),
      ...(f.untilMs !== undefined ? { untilMs: f.untilMs } : {}),
    });
    if (f.untilMs !== undefined) out = out.filter((l) => l.timeMs === undefined || l.timeMs <= (f.untilMs ?? 0));
    if (f.loglevel !== undefined) out = out.filter((l) => levelOf(l.text) === f.loglevel);
    if (f.regex) out = out.filter((l) => f.regex?.test(l.text));
    if (f.tail !== undefined) out = out.slice(Math.max(0, out.length - f.tail));
    return out;
  }
}
