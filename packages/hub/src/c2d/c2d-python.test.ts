import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runPython } from '@kedge/testing';
import type { RunningHub } from '../hub.js';
import { startTestHub } from '../test-support/fixtures.js';
import { registryFor } from '../test-support/sdk.js';

/**
 * The Python SDKs: `IoTHubRegistryManager.send_c2d_message` (azure-iot-hub, AMQP through uamqp) to a Python
 * `IoTHubDeviceClient` (azure-iot-device, MQTT). uamqp trusts `certifi.where()`'s bundle only; the script points
 * it at the hub's CA before the SDK connects (the SDK has no CA option).
 */
const SCRIPT = String.raw`
import json, os, sys, threading
import certifi
ca_path = os.environ["KEDGE_CA_FILE"]
certifi.where = lambda: ca_path
from azure.iot.device import IoTHubDeviceClient
from azure.iot.hub import IoTHubRegistryManager

got = threading.Event()
box = {}
device = IoTHubDeviceClient.create_from_connection_string(os.environ["DEVICE_CS"], server_verification_cert=open(ca_path).read())
def on_message(m):
    box["m"] = {"data": m.data.decode(), "props": m.custom_properties, "messageId": m.message_id, "contentType": m.content_type, "correlationId": m.correlation_id}
    got.set()
device.on_message_received = on_message
device.connect()
registry = IoTHubRegistryManager.from_connection_string(os.environ["SERVICE_CS"])
registry.send_c2d_message("py-dev", "hello from python", properties={"lang": "py", "messageId": "py-1", "contentType": "text/plain", "correlationId": "c-9"})
ok = got.wait(30)
print("C2D " + json.dumps(box.get("m")))
device.shutdown()
registry.amqp_svc_client.disconnect_sync()
sys.exit(0 if ok else 3)
`;

describe('cloud-to-device messages with the Python SDKs', () => {
  let hub: RunningHub & { host: string };
  let caFile: string;
  let deviceCs: string;

  beforeAll(async () => {
    hub = await startTestHub();
    caFile = join(mkdtempSync(join(tmpdir(), 'kedge-ca-')), 'ca.pem');
    writeFileSync(caFile, hub.ca);
    const registry = registryFor(hub.connectionString(), hub.ca);
    await registry.create({ deviceId: 'py-dev' });
    const key = (await registry.get('py-dev')).responseBody.authentication?.symmetricKey?.primaryKey ?? '';
    deviceCs = `HostName=${hub.host};DeviceId=py-dev;SharedAccessKey=${key}`;
  });
  afterAll(async () => {
    await hub?.close();
  });

  it('send_c2d_message reaches the Python device client', async () => {
    const r = await runPython(SCRIPT, { env: { KEDGE_CA_FILE: caFile, DEVICE_CS: deviceCs, SERVICE_CS: hub.connectionString('service') }, timeoutMs: 60_000 });
    expect(r.code, r.stderr).toBe(0);
    const line = r.stdout.split('\n').find((l) => l.startsWith('C2D ')) ?? 'C2D null';
    const m = JSON.parse(line.slice(4)) as { data: string; props: Record<string, string>; messageId: string; contentType: string; correlationId: string };
    expect(m.data).toBe('hello from python');
    expect(m.props['lang']).toBe('py');
    expect(m).toMatchObject({ messageId: 'py-1', contentType: 'text/plain', correlationId: 'c-9' });
  }, 90_000);
});
