// Filter: a Kedge / Azure IoT Edge sample module, written with Microsoft's azure-iot-device.
//
// Reads temperature readings on its input `input1`. A reading whose `temperature` is above `temperatureThreshold`
// (module twin desired property, default 25) is forwarded unchanged (body and properties) to the output `output1`;
// when a reading crosses above the threshold (the first one above after one at or below it, or the first reading),
// the filter also sends an alert `{ alert, temperature, threshold, timeCreated }` with the message property
// `MessageType=Alert` to the output `alertOutput`. Readings at or below the threshold are dropped. Every message is
// completed, also one that is not JSON (it is dropped with a log line), so a bad reading never blocks the input.
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
// The SDK is CommonJS: its exports are read off the default export.
import deviceSdk from 'azure-iot-device';
import mqttTransport from 'azure-iot-device-mqtt';

const { ModuleClient, Message } = deviceSdk;
const { Mqtt } = mqttTransport;

const INPUT = 'input1';
const FORWARD = 'output1';
const ALERT = 'alertOutput';
const DEFAULT_THRESHOLD = 25;

/** The threshold `desired` sets, or undefined when it sets none it may use (a finite number). */
export function thresholdFrom(desired) {
  if (!Object.prototype.hasOwnProperty.call(desired ?? {}, 'temperatureThreshold')) return undefined;
  const v = desired.temperatureThreshold;
  return typeof v === 'number' && Number.isFinite(v) ? v : undefined;
}

/** The temperature of a reading's body, or undefined when it has none. */
export function temperatureOf(bytes) {
  try {
    const body = JSON.parse(bytes.toString('utf8'));
    return body !== null && typeof body === 'object' && typeof body.temperature === 'number' ? body.temperature : undefined;
  } catch {
    return undefined;
  }
}

function copyProperties(from, to) {
  for (let i = 0; i < from.properties.count(); i++) {
    const p = from.properties.getItem(i);
    to.properties.add(p.key, p.value);
  }
}

/**
 * Connects to the edge hub, trying again for a while: a module may start before its edge hub listens (IoT Edge
 * starts them in startupOrder, not after readiness). After that the SDK reconnects by itself.
 */
async function openClient(attempts = 30) {
  for (let i = 1; ; i++) {
    let client;
    try {
      // Also inside the retry: the edge hub's CA file (EdgeModuleCACertificateFile) may not be written yet.
      client = await ModuleClient.fromEnvironment(Mqtt);
      client.on('error', (err) => console.error(`filter: client error: ${err.message}`));
      await client.open();
      return client;
    } catch (err) {
      await client?.close().catch(() => undefined);
      if (i >= attempts) throw err;
      console.error(`filter: cannot reach the edge hub yet (${err.message}); retrying`);
      await new Promise((r) => setTimeout(r, 1000));
    }
  }
}

/** Runs the module until SIGTERM/SIGINT (`kedge dev sample` calls it; `node index.mjs` runs it as a program). */
export async function main() {
  const client = await openClient();
  const twin = await client.getTwin();
  let threshold = thresholdFrom(twin.properties.desired) ?? DEFAULT_THRESHOLD;
  let above = false;

  const report = () =>
    twin.properties.reported.update({ temperatureThreshold: threshold }, (err) => {
      if (err) console.error(`filter: reporting failed: ${err.message}`);
    });
  twin.on('properties.desired', (patch) => {
    const t = thresholdFrom(patch);
    if (t === undefined) return;
    threshold = t;
    console.log(`filter: threshold ${threshold}`);
    report();
  });
  report();

  const send = (output, msg) =>
    new Promise((resolveSend) =>
      client.sendOutputEvent(output, msg, (err) => {
        if (err) console.error(`filter: send to ${output} failed: ${err.message}`);
        resolveSend();
      }),
    );

  client.on('inputMessage', (input, msg) => {
    void (async () => {
      try {
        if (input !== INPUT) return;
        const bytes = msg.getBytes();
        const temperature = temperatureOf(bytes);
        if (temperature === undefined) {
          console.error('filter: dropped a message without a numeric temperature');
          return;
        }
        if (temperature <= threshold) {
          above = false;
          return;
        }
        const out = new Message(bytes);
        out.contentType = msg.contentType ?? 'application/json';
        out.contentEncoding = msg.contentEncoding ?? 'utf-8';
        copyProperties(msg, out);
        await send(FORWARD, out);
        if (!above) {
          above = true;
          const alert = new Message(JSON.stringify({ alert: 'temperature above threshold', temperature, threshold, timeCreated: new Date().toISOString() }));
          alert.contentType = 'application/json';
          alert.contentEncoding = 'utf-8';
          alert.properties.add('MessageType', 'Alert');
          await send(ALERT, alert);
        }
      } finally {
        client.complete(msg, (err) => {
          if (err) console.error(`filter: complete failed: ${err.message}`);
        });
      }
    })();
  });
  console.log(`filter: forwarding readings above ${threshold} from ${INPUT} to ${FORWARD}, alerts to ${ALERT}`);

  const stop = () => {
    // Exit promptly even when the connection is gone and close() never calls back.
    setTimeout(() => process.exit(0), 2000).unref();
    client.close(() => process.exit(0));
  };
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
}

if (process.argv[1] !== undefined && fileURLToPath(import.meta.url) === resolve(process.argv[1])) {
  main().catch((err) => {
    console.error(`filter: cannot start: ${err instanceof Error ? err.message : String(err)}`);
    process.exit(1);
  });
}
