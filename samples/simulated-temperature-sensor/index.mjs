// Simulated temperature sensor: a Kedge / Azure IoT Edge sample module, written with Microsoft's azure-iot-device.
//
// Every `sendIntervalSeconds` it sends a reading `{ temperature, humidity, sequence, timeCreated }` to its output
// `temperatureOutput`. The temperature sweeps from `temperatureMin` to `temperatureMax` in `steps` readings and back
// (a saw tooth, so every threshold in between is crossed), the way Microsoft's SimulatedTemperatureSensor ramps.
// All four come from the module twin's desired properties and may change at any time; the module reports what it
// applied (`reported.applied`) and refuses values it cannot use (`reported.rejected`), keeping the previous ones.
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
// The SDK is CommonJS: its exports are read off the default export.
import deviceSdk from 'azure-iot-device';
import mqttTransport from 'azure-iot-device-mqtt';

const { ModuleClient, Message } = deviceSdk;
const { Mqtt } = mqttTransport;

const OUTPUT = 'temperatureOutput';
const DEFAULTS = Object.freeze({ sendIntervalSeconds: 1, temperatureMin: 20, temperatureMax: 40, steps: 20 });
// Bounds keep a mistyped twin from flooding the edge hub or stalling the sensor.
const LIMITS = Object.freeze({ sendIntervalSeconds: [0.05, 3600], temperatureMin: [-273, 1000], temperatureMax: [-273, 1000], steps: [2, 100_000] });

/**
 * The settings after applying `desired` to `current`: known keys with numbers in bounds are taken, anything else is
 * listed in `rejected` (the twin is input from the cloud: unknown keys are ignored, never merged).
 */
export function applyDesired(current, desired) {
  const next = { ...current };
  const rejected = {};
  for (const key of Object.keys(LIMITS)) {
    if (!Object.prototype.hasOwnProperty.call(desired ?? {}, key)) continue;
    const v = desired[key];
    const [lo, hi] = LIMITS[key];
    if (typeof v === 'number' && Number.isFinite(v) && v >= lo && v <= hi) next[key] = v;
    else rejected[key] = `must be a number from ${lo} to ${hi}`;
  }
  if (next.temperatureMin > next.temperatureMax) {
    rejected.temperatureMin = 'must not exceed temperatureMax';
    next.temperatureMin = current.temperatureMin;
    next.temperatureMax = current.temperatureMax;
  }
  return { next, rejected };
}

/** The temperature of reading number `sequence` (0-based): up in `steps` readings, then down again. */
export function temperatureAt(settings, sequence) {
  const { temperatureMin: lo, temperatureMax: hi, steps } = settings;
  const period = 2 * (steps - 1);
  const i = sequence % period;
  const up = i < steps ? i : period - i;
  return Math.round((lo + ((hi - lo) * up) / (steps - 1)) * 100) / 100;
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
      client.on('error', (err) => console.error(`sensor: client error: ${err.message}`));
      await client.open();
      return client;
    } catch (err) {
      await client?.close().catch(() => undefined);
      if (i >= attempts) throw err;
      console.error(`sensor: cannot reach the edge hub yet (${err.message}); retrying`);
      await new Promise((r) => setTimeout(r, 1000));
    }
  }
}

/** Runs the module until SIGTERM/SIGINT (`kedge dev sample` calls it; `node index.mjs` runs it as a program). */
export async function main() {
  const client = await openClient();
  const twin = await client.getTwin();
  let settings = { ...DEFAULTS };
  let sequence = 0;
  let timer;

  const schedule = () => {
    clearInterval(timer);
    timer = setInterval(send, settings.sendIntervalSeconds * 1000);
  };
  const send = () => {
    const body = { temperature: temperatureAt(settings, sequence), humidity: 40 + (sequence % 7), sequence, timeCreated: new Date().toISOString() };
    sequence += 1;
    const msg = new Message(JSON.stringify(body));
    msg.contentType = 'application/json';
    msg.contentEncoding = 'utf-8';
    client.sendOutputEvent(OUTPUT, msg, (err) => {
      if (err) console.error(`sensor: send failed (the edge hub retries are the SDK's): ${err.message}`);
    });
  };
  const apply = (desired) => {
    const { next, rejected } = applyDesired(settings, desired);
    const rateChanged = next.sendIntervalSeconds !== settings.sendIntervalSeconds;
    settings = next;
    if (rateChanged) schedule();
    console.log(`sensor: applied ${JSON.stringify(settings)}${Object.keys(rejected).length > 0 ? `, rejected ${JSON.stringify(rejected)}` : ''}`);
    // `rejected: null` deletes an earlier rejection from the reported properties.
    twin.properties.reported.update({ applied: settings, rejected: Object.keys(rejected).length > 0 ? rejected : null }, (err) => {
      if (err) console.error(`sensor: reporting failed: ${err.message}`);
    });
  };

  apply(twin.properties.desired);
  // A patch carries only what changed; the settings keep everything else.
  twin.on('properties.desired', (patch) => apply(patch));
  schedule();
  console.log(`sensor: sending to ${OUTPUT}`);

  const stop = () => {
    clearInterval(timer);
    // Exit promptly even when the connection is gone and close() never calls back.
    setTimeout(() => process.exit(0), 2000).unref();
    client.close(() => process.exit(0));
  };
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
}

// Run when started as a program (not when a test imports the pure functions above).
if (process.argv[1] !== undefined && fileURLToPath(import.meta.url) === resolve(process.argv[1])) {
  main().catch((err) => {
    console.error(`sensor: cannot start: ${err instanceof Error ? err.message : String(err)}`);
    process.exit(1);
  });
}
