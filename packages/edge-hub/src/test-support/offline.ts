/**
 * Test support for the offline tests: an edge hub child process that can be `kill -9`ed, publishers that count
 * PUBACKs and keep an event log (first send, acknowledgement) per sequence number, and the checks run on what
 * arrived at an endpoint (missing, duplicated, out of order).
 */
import { spawn } from 'node:child_process';
import type { ChildProcessByStdio } from 'node:child_process';
import type { Readable, Writable } from 'node:stream';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { connect } from 'mqtt';
import type { MqttClient } from 'mqtt';
import { Message, ModuleClient } from 'azure-iot-device';
import { Mqtt } from 'azure-iot-device-mqtt';
import { createSasToken } from '@kedge/protocol';
import type { EdgeHubConfigInput } from '../config.js';
import type { ReconnectStatus } from '../upstream.js';

const CHILD = fileURLToPath(new URL('../../dist/test-support/edge-hub-child.js', import.meta.url));

/** An edge hub running in a child process (the compiled `edge-hub-child.js`: build the package first). */
export class EdgeHubProcess {
  readonly #config: EdgeHubConfigInput;
  #child: ChildProcessByStdio<Writable, Readable, Readable> | undefined;
  #status: Array<(s: ChildStatus) => void> = [];
  stderr = '';
  metricsUrl = '';

  constructor(config: EdgeHubConfigInput) {
    this.#config = config;
  }

  /** Starts the child; resolves once it listens. */
  async start(): Promise<void> {
    const child = spawn(process.execPath, [CHILD], { env: { ...process.env, KEDGE_EDGE_HUB_CONFIG: JSON.stringify(this.#config) }, stdio: ['pipe', 'pipe', 'pipe'] });
    this.#child = child;
    child.stderr.on('data', (d: Buffer) => (this.stderr = (this.stderr + d.toString()).slice(-20_000)));
    const lines = createInterface({ input: child.stdout });
    await new Promise<void>((resolve, reject) => {
      child.once('exit', (code, signal) => reject(new Error(`edge hub child ended (${String(signal ?? code)}) before it was ready: ${this.stderr}`)));
      lines.on('line', (line) => {
        if (line.startsWith('ready ')) {
          this.metricsUrl = (JSON.parse(line.slice(6)) as { metrics?: string }).metrics ?? '';
          resolve();
        } else if (line.startsWith('status ')) {
          this.#status.shift()?.(JSON.parse(line.slice(7)) as ChildStatus);
        }
      });
    });
  }

  /** The child's route count, `router.status()` and upstream reconnect backoff. */
  status(): Promise<ChildStatus> {
    const c = this.#child;
    if (!c) return Promise.reject(new Error('edge hub child is not running'));
    return new Promise((resolve) => {
      this.#status.push(resolve);
      c.stdin.write('status\n');
    });
  }

  /** The `/metrics` text. */
  async metrics(): Promise<string> {
    const r = await fetch(this.metricsUrl);
    return r.text();
  }

  /** SIGKILL; resolves once it is gone. */
  async kill9(): Promise<void> {
    const c = this.#child;
    if (!c || c.exitCode !== null || c.signalCode !== null) return;
    const gone = new Promise<unknown>((resolve) => c.once('exit', resolve));
    c.kill('SIGKILL');
    await gone;
    this.#child = undefined;
  }

  /** Graceful stop (SIGTERM), SIGKILL after 10 s. */
  async stop(): Promise<void> {
    const c = this.#child;
    if (!c || c.exitCode !== null || c.signalCode !== null) return;
    const gone = new Promise<unknown>((resolve) => c.once('exit', resolve));
    c.kill('SIGTERM');
    const timer = setTimeout(() => c.kill('SIGKILL'), 10_000);
    await gone;
    clearTimeout(timer);
    this.#child = undefined;
  }
}

export interface ChildStatus {
  readonly routes: number;
  readonly upstream: readonly ReconnectStatus[];
  readonly status: {
    readonly endpoints: ReadonlyArray<{ id: string; state: string; queues: ReadonlyArray<{ queue: string; length: number; delivered: number; dropped: { expired: number; evicted: number; invalid: number } }> }>;
    readonly store: { bytes: number; rejected: number };
  };
}

/** The sum of the samples of `name` whose labels include every `labels` pair, in Prometheus text. */
export function metricSum(text: string, name: string, labels: Record<string, string> = {}): number {
  let sum = 0;
  for (const line of text.split('\n')) {
    if (!line.startsWith(`${name}{`) && !line.startsWith(`${name} `)) continue;
    if (!Object.entries(labels).every(([k, v]) => line.includes(`${k}="${v}"`))) continue;
    sum += Number(line.slice(line.lastIndexOf(' ') + 1));
  }
  return sum;
}

/** The body of message `seq` of `sender`: its identity for content checks, padded to about `bytes`. */
export const body = (sender: string, seq: number, bytes = 160): string => {
  const head = `{"s":"${sender}","seq":${seq},"pad":"`;
  return `${head}${'x'.repeat(Math.max(0, bytes - head.length - 2))}"}`;
};

/** A publisher's log: the first send and the acknowledgement of each sequence number, in the order they happened. */
export class SendLog {
  /** Event log: `seq` for a first send, `-seq - 1` for an acknowledgement. */
  readonly events: number[] = [];
  readonly #sent = new Set<number>();
  readonly acked = new Set<number>();
  sends = 0;

  send(seq: number): void {
    this.sends++;
    if (this.#sent.has(seq)) return;
    this.#sent.add(seq);
    this.events.push(seq);
  }

  ack(seq: number): void {
    if (this.acked.has(seq)) return;
    this.acked.add(seq);
    this.events.push(-seq - 1);
  }
}

/** What arrived at one endpoint from one sender, checked against the sender's log. */
export interface ArrivalCheck {
  readonly acked: number;
  readonly arrived: number;
  /** Acknowledged and never arrived. */
  readonly missing: number[];
  /** Arrivals beyond the first of their sequence number. */
  readonly duplicates: number;
  /** Arrived with a body other than the one sent. */
  readonly corrupt: number;
  /**
   * Pairs out of order: `b` first sent after `a` was acknowledged but first arriving before it (at-least-once in
   * order per endpoint: what was acknowledged is stored before anything sent later, and delivered in store order).
   */
  readonly outOfOrder: number;
}

/** Checks the arrivals (`seq`, body text, in arrival order) of one sender at one endpoint. */
export function checkArrivals(log: SendLog, sender: string, arrivals: ReadonlyArray<{ seq: number; body: string }>, bytes?: number): ArrivalCheck {
  const pos = new Map<number, number>();
  let duplicates = 0;
  let corrupt = 0;
  arrivals.forEach((a, i) => {
    if (pos.has(a.seq)) duplicates++;
    else pos.set(a.seq, i);
    if (a.body !== body(sender, a.seq, bytes)) corrupt++;
  });
  let maxAcked = -1;
  let outOfOrder = 0;
  for (const e of log.events) {
    if (e < 0) maxAcked = Math.max(maxAcked, pos.get(-e - 1) ?? -1);
    else if (pos.has(e) && (pos.get(e) as number) < maxAcked) outOfOrder++;
  }
  const missing = [...log.acked].filter((s) => !pos.has(s)).sort((a, b) => a - b);
  return { acked: log.acked.size, arrived: pos.size, missing, duplicates, corrupt, outOfOrder };
}

/** Where and as whom a publisher connects to the edge hub. */
export interface ModuleTarget {
  readonly hubHost: string;
  readonly edgeHost: string;
  readonly port: number;
  readonly deviceId: string;
  readonly moduleId: string;
  readonly key: string;
  readonly ca: string;
}

/**
 * A module publishing QoS 1 telemetry with plain MQTT.js: `window` messages in flight, a fresh connection per
 * attempt; messages not acknowledged when a connection ends are sent again, in order, on the next one.
 */
export class RawPublisher {
  readonly log = new SendLog();
  readonly #t: ModuleTarget;
  readonly #output: string;
  readonly #total: number;
  readonly #window: number;
  readonly #bytes: number;
  readonly #onAck: () => void;
  #client: MqttClient | undefined;
  #next = 0;
  readonly #inflight = new Set<number>();
  readonly #resend: number[] = [];
  #stopped = false;
  #done: () => void = () => undefined;
  readonly done: Promise<void>;
  connects = 0;

  constructor(t: ModuleTarget, o: { output: string; total: number; window: number; bytes?: number; onAck?: () => void }) {
    this.#t = t;
    this.#output = o.output;
    this.#total = o.total;
    this.#window = o.window;
    this.#bytes = o.bytes ?? 160;
    this.#onAck = o.onAck ?? (() => undefined);
    this.done = new Promise((resolve) => (this.#done = resolve));
  }

  get acked(): number {
    return this.log.acked.size;
  }

  start(): void {
    this.#connect();
  }

  stop(): void {
    this.#stopped = true;
    this.#client?.end(true);
  }

  #connect(): void {
    if (this.#stopped) return;
    const t = this.#t;
    const clientId = `${t.deviceId}/${t.moduleId}`;
    const c = connect({
      protocol: 'mqtts',
      host: t.edgeHost,
      port: t.port,
      ca: t.ca,
      servername: /^[\d.]+$/.test(t.edgeHost) ? undefined : t.edgeHost,
      clientId,
      username: `${t.hubHost}/${clientId}/?api-version=2021-04-12`,
      password: createSasToken({ audience: `${t.hubHost}/devices/${t.deviceId}/modules/${t.moduleId}`, key: t.key, expirySeconds: Math.floor(Date.now() / 1000) + 3600 }),
      protocolVersion: 4,
      clean: true,
      reconnectPeriod: 0,
      connectTimeout: 5000,
      keepalive: 30,
    });
    this.#client = c;
    c.on('connect', () => {
      this.connects++;
      this.#pump();
    });
    c.on('error', () => undefined);
    c.on('close', () => {
      if (this.#client !== c) return;
      this.#client = undefined;
      c.removeAllListeners('connect');
      this.#resend.push(...this.#inflight);
      this.#resend.sort((a, b) => a - b);
      this.#inflight.clear();
      if (!this.#stopped) setTimeout(() => this.#connect(), 100).unref();
    });
  }

  #pump(): void {
    const c = this.#client;
    if (!c?.connected) return;
    const topic = `devices/${this.#t.deviceId}/modules/${this.#t.moduleId}/messages/events/%24.on=${this.#output}&%24.ct=application%2Fjson&%24.ce=utf-8`;
    while (this.#inflight.size < this.#window) {
      const seq = this.#resend.length > 0 ? (this.#resend.shift() as number) : this.#next < this.#total ? this.#next++ : undefined;
      if (seq === undefined) break;
      this.#inflight.add(seq);
      this.log.send(seq);
      c.publish(topic, body(this.#t.moduleId, seq, this.#bytes), { qos: 1 }, (err) => {
        if (err || this.#client !== c || !this.#inflight.has(seq)) return;
        this.#inflight.delete(seq);
        this.log.ack(seq);
        this.#onAck();
        if (this.log.acked.size === this.#total) {
          this.#stopped = true;
          c.end(true);
          this.#done();
        } else this.#pump();
      });
    }
  }
}

/**
 * A module publishing with Microsoft's Node SDK (`ModuleClient.sendOutputEvent`), `window` sends at once; the SDK
 * reconnects and retries by itself, a send it gives up on is made again.
 */
export class SdkPublisher {
  readonly log = new SendLog();
  readonly client: ModuleClient;
  readonly #output: string;
  readonly #total: number;
  readonly #window: number;
  readonly #onAck: () => void;
  readonly #moduleId: string;
  #next = 0;
  failures = 0;
  #stopped = false;

  constructor(t: ModuleTarget, o: { output: string; total: number; window: number; onAck?: () => void }) {
    this.client = ModuleClient.fromConnectionString(
      `HostName=${t.hubHost};GatewayHostName=${t.edgeHost};DeviceId=${t.deviceId};ModuleId=${t.moduleId};SharedAccessKey=${t.key}`,
      Mqtt,
    );
    this.client.on('error', () => undefined);
    this.#moduleId = t.moduleId;
    this.#output = o.output;
    this.#total = o.total;
    this.#window = o.window;
    this.#onAck = o.onAck ?? (() => undefined);
  }

  get acked(): number {
    return this.log.acked.size;
  }

  async open(ca: string): Promise<void> {
    await this.client.setOptions({ ca });
    await this.client.open();
  }

  /** Sends everything; resolves when every message was acknowledged. */
  async run(): Promise<void> {
    const worker = async (): Promise<void> => {
      while (!this.#stopped && this.#next < this.#total) {
        const seq = this.#next++;
        for (;;) {
          const msg = new Message(body(this.#moduleId, seq));
          msg.contentType = 'application/json';
          msg.contentEncoding = 'utf-8';
          this.log.send(seq);
          try {
            await this.client.sendOutputEvent(this.#output, msg);
            this.log.ack(seq);
            this.#onAck();
            break;
          } catch {
            this.failures++;
            if (this.#stopped) return;
            await new Promise((r) => setTimeout(r, 200));
          }
        }
      }
    };
    await Promise.all(Array.from({ length: this.#window }, () => worker()));
  }

  async close(): Promise<void> {
    this.#stopped = true;
    await this.client.close().catch(() => undefined);
  }
}

/** A module's plain MQTT.js connection to the edge hub (clean session, no reconnect); rejects if CONNECT fails. */
export async function connectModule(t: ModuleTarget): Promise<MqttClient> {
  const clientId = `${t.deviceId}/${t.moduleId}`;
  const c = connect({
    protocol: 'mqtts',
    host: t.edgeHost,
    port: t.port,
    ca: t.ca,
    clientId,
    username: `${t.hubHost}/${clientId}/?api-version=2021-04-12`,
    password: createSasToken({ audience: `${t.hubHost}/devices/${t.deviceId}/modules/${t.moduleId}`, key: t.key, expirySeconds: Math.floor(Date.now() / 1000) + 3600 }),
    protocolVersion: 4,
    clean: true,
    reconnectPeriod: 0,
    connectTimeout: 5000,
  });
  c.on('error', () => undefined);
  // publishOnce() listens for 'close' once per message in flight.
  c.setMaxListeners(0);
  await new Promise<void>((resolve, reject) => {
    c.once('connect', () => resolve());
    c.once('close', () => reject(new Error(`${clientId} could not connect`)));
  });
  return c;
}

/** The telemetry topic of `t`'s output `output` (JSON, UTF-8). */
export const outputTopic = (t: ModuleTarget, output: string): string =>
  `devices/${t.deviceId}/modules/${t.moduleId}/messages/events/%24.on=${output}&%24.ct=application%2Fjson&%24.ce=utf-8`;

/** Publishes with QoS 1: `acked` on the PUBACK, `closed` if the connection ends first (no PUBACK). */
export function publishOnce(c: MqttClient, topic: string, payload: string): Promise<'acked' | 'closed'> {
  if (!c.connected) return Promise.resolve('closed');
  return new Promise((resolve) => {
    const onClose = (): void => resolve('closed');
    c.once('close', onClose);
    c.publish(topic, payload, { qos: 1 }, (err) => {
      c.removeListener('close', onClose);
      resolve(err ? 'closed' : 'acked');
    });
  });
}
