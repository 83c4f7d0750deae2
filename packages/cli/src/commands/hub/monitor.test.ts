import { mkdtempSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Client as DeviceClient, Message } from 'azure-iot-device';
import { Mqtt } from 'azure-iot-device-mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { HubClient, startHub } from '@kedge/hub';
import type { RunningHub } from '@kedge/hub';
import { registerHubCommands } from '../hub.js';
import { captureOutput, inProcessKedge } from '../../test-support/capture.js';
import { listenError } from './serve.js';
import { UsageError } from './common.js';

const dir = mkdtempSync(join(tmpdir(), 'kedge-monitor-'));
let hub: RunningHub;
const captured = captureOutput();
const kedge = inProcessKedge(registerHubCommands);

beforeAll(async () => {
  hub = await startHub({ dataDir: join(dir, 'data'), hostName: '127.0.0.1', service: { host: '127.0.0.1', port: 0 }, mqtt: { host: '127.0.0.1', port: 0 }, deployments: { resyncSeconds: 3600 }, logLevel: 'silent' });
  writeFileSync(join(dir, 'ca.pem'), hub.ca);
  const service = new HubClient({ connectionString: hub.connectionString(), ca: hub.ca, port: Number(new URL(hub.urls.service).port) });
  const d = (await service.createDevice('sensor-1', { edge: false })) as { authentication: { symmetricKey: { primaryKey: string } } };
  const mqttPort = new URL(hub.urls.mqtt).port;
  const device = DeviceClient.fromConnectionString(`HostName=127.0.0.1;GatewayHostName=127.0.0.1:${mqttPort};DeviceId=sensor-1;SharedAccessKey=${d.authentication.symmetricKey.primaryKey}`, Mqtt);
  await device.setOptions({ ca: hub.ca });
  await device.open();
  const hot = new Message(JSON.stringify({ temperature: 31.5 }));
  hot.contentType = 'application/json';
  hot.contentEncoding = 'utf-8';
  hot.properties.add('MessageType', 'Alert');
  await device.sendEvent(hot);
  // A hostile body: an escape sequence must not reach the terminal.
  await device.sendEvent(new Message('plain \u001b[2J text'));
  await device.close();
});
afterAll(async () => {
  await hub?.close();
});

const service = (): string[] => ['--hub', hub.connectionString(), '--ca', join(dir, 'ca.pem'), '--port', new URL(hub.urls.service).port];

describe('kedge monitor', () => {
  it('prints one readable line per message: time, sender, body, properties (control characters escaped)', async () => {
    expect(await kedge('monitor', 'sensor-1', '--count', '2', ...service())).toBe(0);
    const lines = captured.out.trimEnd().split('\n');
    expect(lines).toHaveLength(2);
    expect(lines[0]).toMatch(/^\d\d:\d\d:\d\d(\.\d+)? {2}sensor-1 {2}\{"temperature":31\.5\} {2}MessageType=Alert$/);
    expect(lines[1]).toMatch(/ {2}sensor-1 {2}plain \\u001b\[2J text$/);
  });

  it('prints JSON lines with --json', async () => {
    expect(await kedge('monitor', '--device', 'sensor-1', '--count', '1', '--json', ...service())).toBe(0);
    expect(JSON.parse(captured.out)).toMatchObject({ deviceId: 'sensor-1', body: { temperature: 31.5 }, properties: { MessageType: 'Alert' } });
  });
});

describe('kedge hub listen errors', () => {
  it('names the address in use and what to do (a real second bind)', async () => {
    const taken = createServer();
    await new Promise<void>((r) => taken.listen(0, '127.0.0.1', r));
    const port = (taken.address() as { port: number }).port;
    const err = await new Promise<unknown>((r) => {
      const second = createServer();
      second.once('error', r);
      second.listen(port, '127.0.0.1');
    });
    taken.close();
    const e = listenError(err, { host: '127.0.0.1', port: String(port), mqttPort: '8883' });
    expect(e).toBeInstanceOf(UsageError);
    expect((e as Error).message).toContain(`127.0.0.1:${port}: the address is in use`);
  });

  it('explains privileged ports and how azure-iothub gets 443', () => {
    // A fake errno error: these tests run as root, which may bind 443, so a real EACCES cannot happen here.
    const err = Object.assign(new Error('listen EACCES: permission denied 127.0.0.1:443'), { code: 'EACCES', syscall: 'listen', port: 443 });
    const e = listenError(err, { host: '127.0.0.1', port: '443', mqttPort: '8883' }) as Error;
    expect(e).toBeInstanceOf(UsageError);
    expect(e.message).toMatch(/ports below 1024 need privileges.*--port 8443.*443.*setcap/);
  });

  it('passes other errors through unchanged', () => {
    const err = Object.assign(new Error('boom'), { code: 'EIO', syscall: 'read' });
    expect(listenError(err, { host: '127.0.0.1', port: '8443', mqttPort: '8883' })).toBe(err);
  });
});
