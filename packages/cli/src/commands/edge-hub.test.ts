import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { registerEdgeHubCommands } from './edge-hub.js';
import { captureOutput, inProcessKedge } from '../test-support/capture.js';

const dir = mkdtempSync(join(tmpdir(), 'kedge-edge-hub-cli-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const captured = captureOutput();
const kedge = inProcessKedge(registerEdgeHubCommands);

describe('kedge edge-hub run', () => {
  it('refuses to start without the $edgeHub connection string, with a usage error and no stack trace', async () => {
    const before = process.env['KEDGE_EDGEHUB_CONNECTION_STRING'];
    delete process.env['KEDGE_EDGEHUB_CONNECTION_STRING'];
    try {
      expect(await kedge('edge-hub', 'run', '--data-dir', dir)).toBe(2);
    } finally {
      if (before !== undefined) process.env['KEDGE_EDGEHUB_CONNECTION_STRING'] = before;
    }
    expect(captured.err).toContain('the $edgeHub connection string is required');
  });

  it("refuses another module's connection string and bad ports", async () => {
    expect(await kedge('edge-hub', 'run', '--data-dir', dir, '--connection-string', 'HostName=h;DeviceId=d;ModuleId=filter;SharedAccessKey=abcd')).toBe(2);
    expect(captured.err).toContain("must be the $edgeHub module's");
    expect(await kedge('edge-hub', 'run', '--data-dir', dir, '--connection-string', 'HostName=h;DeviceId=d;ModuleId=$edgeHub;SharedAccessKey=abcd', '--mqtt-port', '99999')).toBe(2);
    expect(captured.err).toContain('invalid --mqtt-port 99999');
    expect(await kedge('edge-hub', 'run', '--data-dir', dir, '--connection-string', 'HostName=h;DeviceId=d;ModuleId=$edgeHub;SharedAccessKey=abcd', '--https-port', 'x443')).toBe(2);
    expect(captured.err).toContain('invalid --https-port x443');
    expect(captured.err).not.toContain('    at ');
  });
});
