import { mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { HubClient, startHub } from '@kedge/hub';
import type { RunningHub } from '@kedge/hub';
import { validateManifest } from '@kedge/manifest';
import { registerHubCommands } from './hub.js';
import { captureOutput, inProcessKedge } from '../test-support/capture.js';

/**
 * Every manifest in examples/ deploys to an edge device through a real hub with `kedge deploy`, and what the
 * device's twins then hold is the same deployment: read back from the twins, it validates to the same spec (so
 * module Kubernetes options such as `kubernetes.io/os` selectors travel through the twin unchanged).
 */

const examplesDir = fileURLToPath(new URL('../../../../examples/', import.meta.url));
/** Files in examples/ that are not deployment manifests (inputs for `kedge route test`). */
const NOT_MANIFESTS = new Set(['message.json']);
const examples = readdirSync(examplesDir).filter((f) => /\.(json|ya?ml)$/.test(f) && !NOT_MANIFESTS.has(f)).sort();

const dir = mkdtempSync(join(tmpdir(), 'kedge-deploy-examples-'));
let hub: RunningHub;
let client: HubClient;
let port = '';
const captured = captureOutput();
const kedge = inProcessKedge(registerHubCommands);
const deploy = (deviceId: string, file: string) => kedge('deploy', deviceId, file, '--hub', hub.connectionString(), '--ca', join(dir, 'ca.pem'), '--port', port);

const read = (file: string): unknown => {
  const text = readFileSync(file, 'utf8');
  return /\.ya?ml$/.test(file) ? parse(text) : JSON.parse(text);
};
const desiredOf = (twin: unknown): Record<string, unknown> => {
  const desired = (twin as { properties: { desired: Record<string, unknown> } }).properties.desired;
  return Object.fromEntries(Object.entries(desired).filter(([k]) => k !== '$version' && k !== '$metadata'));
};

beforeAll(async () => {
  hub = await startHub({
    dataDir: join(dir, 'data'),
    hostName: '127.0.0.1',
    service: { host: '127.0.0.1', port: 0 },
    mqtt: { host: '127.0.0.1', port: 0 },
    deployments: { resyncSeconds: 3600 },
    logLevel: 'silent',
  });
  port = new URL(hub.urls.service).port;
  writeFileSync(join(dir, 'ca.pem'), hub.ca);
  client = new HubClient({ connectionString: hub.connectionString(), ca: hub.ca, port: Number(port) });
});
afterAll(async () => {
  await hub?.close();
});

describe('kedge deploy of every example manifest', () => {
  it('finds the examples', () => {
    expect(examples).toEqual(expect.arrayContaining(['routes-and-filter.json', 'simulated-temperature.json', 'stateful-module.json']));
  });

  it.each(examples)('%s deploys and comes back from the twins as the same deployment', async (file) => {
    const deviceId = `edge-${file.replace(/\.[a-z]+$/, '')}`;
    await client.createDevice(deviceId, { edge: true });
    const path = join(examplesDir, file);
    const local = validateManifest(read(path));
    if (!local.ok) throw new Error(`${file} is not valid: ${JSON.stringify(local.error)}`);

    expect(await deploy(deviceId, path), captured.err).toBe(0);
    expect(captured.out).toBe(`applied ${path} to ${deviceId}\n`);

    const modulesContent: Record<string, unknown> = {};
    for (const moduleId of ['$edgeAgent', '$edgeHub', ...Object.keys(local.manifest.moduleTwins)]) {
      modulesContent[moduleId] = { 'properties.desired': desiredOf(await client.getTwin(deviceId, moduleId)) };
    }
    const fromTwins = validateManifest({ modulesContent });
    if (!fromTwins.ok) throw new Error(`the twins of ${deviceId} do not validate: ${JSON.stringify(fromTwins.error)}`);
    expect(fromTwins.manifest).toEqual(local.manifest);
  });

  it('carries the sample module\'s Kubernetes options through the $edgeAgent twin as a string', async () => {
    const twin = await client.getTwin('edge-simulated-temperature', '$edgeAgent');
    const settings = (desiredOf(twin).modules as Record<string, { settings: Record<string, unknown> }>).filter?.settings ?? {};
    expect(JSON.parse(String(settings.k8sOptions))).toMatchObject({ nodeSelector: { 'kubernetes.io/os': 'linux' } });
  });

  it('refuses the old k8s object with a key a twin cannot hold, saying what to write instead, and stores nothing', async () => {
    await client.createDevice('edge-old', { edge: true });
    const old = read(join(examplesDir, 'simulated-temperature.json')) as { modulesContent: Record<string, any> };
    const filter = old.modulesContent.$edgeAgent['properties.desired'].modules.filter;
    filter.k8s = JSON.parse(filter.settings.k8sOptions as string);
    delete filter.settings.k8sOptions;
    writeFileSync(join(dir, 'old.json'), JSON.stringify(old));

    expect(await deploy('edge-old', join(dir, 'old.json'))).toBe(1);
    expect(captured.err).toContain('CLOUD_ERR_INVALID_MANIFEST');
    expect(captured.err).toContain('modules.filter.k8s.nodeSelector.kubernetes.io/os: IoT Hub refuses this in a twin');
    expect(captured.err).toContain('settings.k8sOptions');
    expect(desiredOf(await client.getTwin('edge-old', '$edgeAgent')).modules).toBeUndefined();
  });
});
