import { describe, expect, it } from 'vitest';
import { runPython } from './python.js';

describe('pythonSdk', () => {
  it('provides a virtualenv where the Python IoT SDKs import', async () => {
    const r = await runPython('import azure.iot.device, azure.iot.hub\nprint("sdk-ok")\n', { timeoutMs: 120_000 });
    expect(r.stderr).toBe('');
    expect(r.stdout.trim()).toBe('sdk-ok');
    expect(r.code).toBe(0);
  }, 600_000);
});
