/**
 * Raw clients for hostile-input tests: REST requests with exact body bytes (no SDK re-serialising them) and a bare
 * MQTT device connection that can publish anything to the hub's topics.
 */
import { request } from 'node:https';
import mqtt from 'mqtt';
import type { MqttClient } from 'mqtt';
import { createSasToken } from '@kedge/protocol';
import type { RunningHub } from '../hub.js';

type Hub = RunningHub & { host: string };

/** A REST response: status, raw text and the JSON it holds (or `undefined`). */
export interface RawResponse {
  readonly status: number;
  readonly text: string;
  readonly json: unknown;
}

/** Sends `body` bytes as they are, signed with the hub's `iothubowner` policy. */
export function rawRest(hub: Hub, method: string, path: string, body?: string | Buffer, headers: Record<string, string> = {}): Promise<RawResponse> {
  const key = /SharedAccessKey=([^;]+)/.exec(hub.connectionString())?.[1] ?? '';
  const token = createSasToken({ audience: hub.host, key, keyName: 'iothubowner', expirySeconds: Math.floor(Date.now() / 1000) + 600 });
  const sep = path.includes('?') ? '&' : '?';
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host: hub.host,
        port: 443,
        method,
        path: `${path}${sep}api-version=2021-04-12`,
        ca: hub.ca,
        // A fresh connection per request: a pooled one may belong to a hub a test has restarted.
        agent: false,
        headers: { authorization: token, ...(body === undefined ? {} : { 'content-type': 'application/json; charset=utf-8' }), ...headers },
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          let json: unknown;
          try {
            json = text === '' ? undefined : JSON.parse(text);
          } catch {
            json = undefined;
          }
          resolve({ status: res.statusCode ?? 0, text, json });
        });
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

/** A bare MQTT/TLS connection of a device or module, subscribed to twin responses. */
export interface RawDevice {
  readonly client: MqttClient;
  /** Publishes a reported patch (exact text or bytes) and resolves with the hub's twin response status. */
  report(body: string | Buffer): Promise<number>;
  /** Publishes telemetry (QoS 1) on `…/messages/events/<bag>`; resolves on PUBACK. */
  send(bag: string, body: string): Promise<void>;
  close(): Promise<void>;
}

/** Connects `deviceId[/moduleId]` with a SAS token made from `key`. */
export async function rawDevice(hub: Hub, key: string, deviceId: string, moduleId = ''): Promise<RawDevice> {
  const clientId = moduleId ? `${deviceId}/${moduleId}` : deviceId;
  const resource = moduleId ? `devices/${deviceId}/modules/${moduleId}` : `devices/${deviceId}`;
  const password = createSasToken({ audience: `${hub.host}/${resource}`, key, expirySeconds: Math.floor(Date.now() / 1000) + 600 });
  const client = await mqtt.connectAsync(`mqtts://${hub.host}:8883`, {
    clientId,
    username: `${hub.host}/${clientId}/?api-version=2021-04-12`,
    password,
    ca: hub.ca,
    protocolVersion: 4,
    reconnectPeriod: 0,
  });
  await client.subscribeAsync('$iothub/twin/res/#', { qos: 0 });
  const waiting = new Map<string, (status: number) => void>();
  client.on('message', (topic) => {
    const m = /^\$iothub\/twin\/res\/(\d+)\/\?\$rid=([^&]+)/.exec(topic);
    const done = m && waiting.get(m[2] ?? '');
    if (m && done) {
      waiting.delete(m[2] ?? '');
      done(Number(m[1]));
    }
  });
  let rid = 0;
  const events = moduleId ? `devices/${deviceId}/modules/${moduleId}/messages/events/` : `devices/${deviceId}/messages/events/`;
  return {
    client,
    report(body) {
      const r = String(++rid);
      const answered = new Promise<number>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`no twin response for $rid=${r}`)), 10_000);
        waiting.set(r, (status) => {
          clearTimeout(timer);
          resolve(status);
        });
      });
      client.publish(`$iothub/twin/PATCH/properties/reported/?$rid=${r}`, body, { qos: 0 });
      return answered;
    },
    async send(bag, body) {
      await client.publishAsync(`${events}${bag}`, body, { qos: 1 });
    },
    async close() {
      await client.endAsync();
    },
  };
}
