import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Command } from 'commander';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startHub } from '@kedge/hub';
import type { RunningHub } from '@kedge/hub';
import { registerHubCommands } from '../hub.js';
import { captureOutput } from '../../test-support/capture.js';

const dir = mkdtempSync(join(tmpdir(), 'kedge-hub-cli-'));
let hub: RunningHub;
let port = '';

const captured = captureOutput();

beforeAll(async () => {
  // Ephemeral ports: the CLI takes --port, unlike azure-iothub, so no 443 is needed here.
  hub = await startHub(
    { dataDir: join(dir, 'data'), hostName: '127.0.0.1', service: { host: '127.0.0.1', port: 0 }, mqtt: { host: '127.0.0.1', port: 0 }, deployments: { resyncSeconds: 3600 }, logLevel: 'silent' },
  );
  port = new URL(hub.urls.service).port;
  writeFileSync(join(dir, 'ca.pem'), hub.ca);
});
afterAll(async () => {
  await hub?.close();
});

async function kedge(...args: string[]): Promise<number> {
  const program = new Command('kedge').exitOverride();
  registerHubCommands(program);
  await program.parseAsync(['node', 'kedge', ...args, '--hub', hub.connectionString(), '--ca', join(dir, 'ca.pem'), '--port', port]);
  return Number(process.exitCode ?? 0);
}

describe('kedge hub commands', () => {
  it('manages devices, twins and deployments over the service API', async () => {
    expect(await kedge('devices', 'create', 'edge-1', '--edge')).toBe(0);
    expect(captured.out).toMatch(/^HostName=127\.0\.0\.1;DeviceId=edge-1;SharedAccessKey=.+=\n$/);
    captured.reset();
    expect(await kedge('devices', 'list')).toBe(0);
    expect(captured.out).toBe('DEVICE  STATUS   CONNECTION    EDGE  LAST ACTIVITY\nedge-1  enabled  Disconnected  yes   -\n');
    captured.reset();
    expect(await kedge('modules', 'list', 'edge-1')).toBe(0);
    expect(captured.out.split('\n')[0]).toBe('MODULE      CONNECTION    MANAGED BY');
    expect(captured.out).toMatch(/^\$edgeAgent {2}Disconnected {2}-$/m);
    captured.reset();
    expect(await kedge('twin', 'update', 'edge-1', '--tags', '{"env":"prod"}', '--json')).toBe(0);
    expect(JSON.parse(captured.out)).toMatchObject({ tags: { env: 'prod' } });

    const manifest = {
      modulesContent: {
        $edgeAgent: {
          'properties.desired': {
            schemaVersion: '1.1',
            runtime: { type: 'docker', settings: {} },
            systemModules: {
              edgeAgent: { type: 'docker', settings: { image: 'a:1', createOptions: '{}' } },
              edgeHub: { type: 'docker', status: 'running', restartPolicy: 'always', settings: { image: 'h:1', createOptions: '{}' } },
            },
            modules: { sensor: { version: '1.0', type: 'docker', status: 'running', restartPolicy: 'always', settings: { image: 's:1', createOptions: '{}' } } },
          },
        },
        $edgeHub: { 'properties.desired': { schemaVersion: '1.1', routes: {}, storeAndForwardConfiguration: { timeToLiveSecs: 10 } } },
      },
    };
    writeFileSync(join(dir, 'm.json'), JSON.stringify(manifest));
    captured.reset();
    expect(await kedge('deploy', 'edge-1', join(dir, 'm.json'))).toBe(0);
    captured.reset();
    expect(await kedge('twin', 'show', 'edge-1', '--module', '$edgeAgent', '--json')).toBe(0);
    expect(JSON.parse(captured.out)).toMatchObject({ properties: { desired: { modules: { sensor: { settings: { image: 's:1' } } } } } });

    captured.reset();
    expect(await kedge('deployments', 'create', 'prod', '--content', join(dir, 'm.json'), '--target-condition', "tags.env='prod'", '--priority', '5')).toBe(0);
    expect(captured.out).toBe('created deployment prod\n');
    captured.reset();
    expect(await kedge('deployments', 'list')).toBe(0);
    expect(captured.out).toMatch(/^ID {4}PRIORITY {2}TARGETED {2}APPLIED {2}FAILED {2}TARGET CONDITION\nprod {2}5 {9}\d {9}\d {8}0 {7}tags\.env='prod'\n$/);

    // Errors carry the hub's code; usage errors exit 2.
    captured.reset();
    expect(await kedge('devices', 'show', 'nope')).toBe(1);
    expect(captured.err).toBe("error CLOUD_ERR_DEVICE_NOT_FOUND: Device nope not found (see the hub's devices with `kedge devices list`)\n");
    expect(await kedge('invoke', 'edge-1', 'ping', '--payload', '{bad')).toBe(2);
    expect(await kedge('invoke', 'edge-1', 'ping')).toBe(1);
    expect(captured.err).toContain('CLOUD_ERR_DEVICE_NOT_ONLINE');
  });

  it('shows devices and twins as FIELD/VALUE tables, or JSON with --json', async () => {
    expect(await kedge('devices', 'create', 'plain-1')).toBe(0);
    captured.reset();
    expect(await kedge('devices', 'show', 'plain-1')).toBe(0);
    const lines = captured.out.split('\n');
    expect(lines[0]).toMatch(/^FIELD +VALUE$/);
    expect(captured.out).toMatch(/^deviceId +plain-1$/m);
    expect(captured.out).toMatch(/^primaryKey +[A-Za-z0-9+/]{43}=$/m);
    captured.reset();
    expect(await kedge('devices', 'show', 'plain-1', '--json')).toBe(0);
    expect(JSON.parse(captured.out)).toMatchObject({ deviceId: 'plain-1', status: 'enabled' });
    captured.reset();
    expect(await kedge('twin', 'update', 'plain-1', '--tags', '{"site":{"floor":2}}', '--desired', '{"rate":5}')).toBe(0);
    expect(captured.out).toMatch(/^tags\.site\.floor +2$/m);
    expect(captured.out).toMatch(/^properties\.desired\.rate +5$/m);
    expect(captured.out).not.toContain('$metadata');
    captured.reset();
    expect(await kedge('deployments', 'show', 'prod')).toBe(0);
    expect(captured.out).toMatch(/^targetCondition +tags\.env='prod'$/m);
    expect(captured.out).toMatch(/^modules +\$edgeAgent, \$edgeHub$/m);
  });

  it('queries twins (projections and COUNT … GROUP BY) and prints statistics', async () => {
    expect(await kedge('query', "SELECT deviceId, tags.env AS env FROM devices WHERE capabilities.iotEdge = true")).toBe(0);
    expect(captured.out).toBe('DEVICEID  ENV\nedge-1    prod\n');
    captured.reset();
    expect(await kedge('query', 'SELECT tags.env AS env, COUNT() AS n FROM devices GROUP BY tags.env', '--json')).toBe(0);
    expect(JSON.parse(captured.out)).toEqual([{ env: 'prod', n: 1 }, { n: 1 }]);
    captured.reset();
    // Every page is read: one item per request here.
    expect(await kedge('query', 'SELECT * FROM devices', '--page-size', '1')).toBe(0);
    expect(captured.out).toMatch(/^DEVICE +STATUS +CONNECTION +VERSION\nedge-1 +enabled +Disconnected +\d+\nplain-1 +enabled +Disconnected +\d+\n$/);
    captured.reset();
    expect(await kedge('statistics')).toBe(0);
    expect(captured.out).toBe('FIELD          VALUE\ntotal devices  2\nenabled        2\ndisabled       0\nconnected      0\n');
    captured.reset();
    expect(await kedge('statistics', '--json')).toBe(0);
    expect(JSON.parse(captured.out)).toEqual({ totalDeviceCount: 2, enabledDeviceCount: 2, disabledDeviceCount: 0, connectedDeviceCount: 0 });
  });

  it('shows the Event Hubs-compatible endpoint with the calling policy\'s connection string, as a table or --json', async () => {
    expect(await kedge('eventhubs', '--json')).toBe(0);
    const eh = JSON.parse(captured.out) as Record<string, unknown>;
    const key = /SharedAccessKey=([^;]+)/.exec(hub.connectionString())?.[1] ?? '';
    const endpoint = hub.urls.amqp === undefined || hub.urls.amqp.endsWith(':5671') ? 'sb://127.0.0.1/' : `sb://127.0.0.1:${new URL(hub.urls.amqp).port}/`;
    expect(eh).toEqual({
      name: 'kedge',
      endpoint,
      partitionCount: 4,
      partitionIds: ['0', '1', '2', '3'],
      consumerGroups: ['$Default'],
      connectionString: `Endpoint=${endpoint};SharedAccessKeyName=iothubowner;SharedAccessKey=${key};EntityPath=kedge`,
    });
    captured.reset();
    expect(await kedge('eventhubs')).toBe(0);
    expect(captured.out).toContain(`partitions         0, 1, 2, 3\nconsumer groups    $Default\nconnection string  Endpoint=${endpoint};`);
  });

  it('fails in one line that says what to do next: exit 1 for the hub, 2 for usage', async () => {
    expect(await kedge('query', 'SELECT deviceId, COUNT() AS n FROM devices')).toBe(1);
    expect(captured.err).toMatch(/^error CLOUD_ERR_BAD_REQUEST: query: 'deviceId' must appear in GROUP BY .*\(line 1, column 1\)\n$/);
    captured.reset();
    expect(await kedge('query', 'SELECT * FROM devices', '--page-size', '0')).toBe(2);
    expect(captured.err).toBe('kedge: --page-size must be a whole number from 1 to 1000\n');
    captured.reset();
    // A CA file that is not there, and a hub whose certificate is not trusted.
    const program = new Command('kedge').exitOverride();
    registerHubCommands(program);
    await program.parseAsync(['node', 'kedge', 'statistics', '--hub', hub.connectionString(), '--ca', join(dir, 'missing.pem'), '--port', port]);
    expect(process.exitCode).toBe(2);
    expect(captured.err).toBe(`kedge: cannot read the CA file ${join(dir, 'missing.pem')} (ENOENT): pass --ca <data-dir>/tls/ca.pem\n`);
    captured.reset();
    process.exitCode = undefined;
    const untrusted = new Command('kedge').exitOverride();
    registerHubCommands(untrusted);
    await untrusted.parseAsync(['node', 'kedge', 'statistics', '--hub', hub.connectionString(), '--port', port]);
    expect(process.exitCode).toBe(1);
    expect(captured.err).toMatch(/^error CLOUD_ERR_TRANSPORT: .*\(the hub's certificate is not trusted: pass --ca <data-dir>\/tls\/ca\.pem \(or set KEDGE_HUB_CA\)\)\n$/);
    expect(captured.err.split('\n')).toHaveLength(2);
  });
});
