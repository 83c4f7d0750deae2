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
    expect(captured.out).toContain('edge-1\tenabled\tDisconnected\tedge');
    captured.reset();
    expect(await kedge('modules', 'list', 'edge-1')).toBe(0);
    expect(captured.out).toContain('$edgeAgent');
    captured.reset();
    expect(await kedge('twin', 'update', 'edge-1', '--tags', '{"env":"prod"}')).toBe(0);
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
    expect(await kedge('twin', 'show', 'edge-1', '--module', '$edgeAgent')).toBe(0);
    expect(JSON.parse(captured.out)).toMatchObject({ properties: { desired: { modules: { sensor: { settings: { image: 's:1' } } } } } });

    captured.reset();
    expect(await kedge('deployments', 'create', 'prod', '--content', join(dir, 'm.json'), '--target-condition', "tags.env='prod'", '--priority', '5')).toBe(0);
    expect(captured.out).toBe('created deployment prod\n');
    captured.reset();
    expect(await kedge('deployments', 'list')).toBe(0);
    expect(captured.out).toMatch(/^prod\tpriority=5\ttargeted=\d\tapplied=\d\ttags\.env='prod'\n$/);

    // Errors carry the hub's code; usage errors exit 2.
    captured.reset();
    expect(await kedge('devices', 'show', 'nope')).toBe(1);
    expect(captured.err).toContain('error CLOUD_ERR_DEVICE_NOT_FOUND');
    expect(await kedge('invoke', 'edge-1', 'ping', '--payload', '{bad')).toBe(2);
    expect(await kedge('invoke', 'edge-1', 'ping')).toBe(1);
    expect(captured.err).toContain('CLOUD_ERR_DEVICE_NOT_ONLINE');
  });
});
