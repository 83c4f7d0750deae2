/**
 * Microsoft's SDKs, wired to trust a test hub's CA without restarting the process.
 *
 * azure-iothub has no public `ca` option, but its `Registry` and `Client` constructors take the `RestApiClient`
 * to use; we give them one whose HTTP layer always adds the CA (azure-iothub's `Registry` replaces the HTTP options
 * with its keep-alive agent, so the CA is merged back in `setOptions`). azure-iot-device takes `ca` in
 * `setOptions`.
 */
import { Amqp as ServiceAmqp, AmqpWs as ServiceAmqpWs, Client as ServiceClient, Registry } from 'azure-iothub';
import { SharedAccessSignature } from 'azure-iothub/dist/common-core/shared_access_signature.js';
import { Http } from 'azure-iothub/dist/common-http/http.js';
import { RestApiClient } from 'azure-iothub/dist/common-http/rest_api_client.js';
import { Client as DeviceClient, ModuleClient } from 'azure-iot-device';
import { Amqp as DeviceAmqp } from 'azure-iot-device-amqp';
import { Mqtt, MqttWs } from 'azure-iot-device-mqtt';
import { parseConnectionString } from '@kedge/protocol';

class TrustingHttp extends Http {
  readonly #ca: string;
  constructor(ca: string) {
    super();
    this.#ca = ca;
    super.setOptions({ ca });
  }
  override setOptions(options: Record<string, unknown>): void {
    super.setOptions({ ...options, ca: this.#ca });
  }
}

function restClient(connectionString: string, ca: string): { rest: RestApiClient; config: { host: string; sharedAccessSignature: SharedAccessSignature } } {
  const cs = parseConnectionString(connectionString);
  const host = cs.get('HostName') ?? '';
  // The same config Registry.fromConnectionString builds (the SDK re-signs it per request).
  const sharedAccessSignature = SharedAccessSignature.create(host, cs.get('SharedAccessKeyName') ?? '', cs.get('SharedAccessKey') ?? '', Date.now());
  const config = { host, sharedAccessSignature };
  return { rest: new RestApiClient(config, 'azure-iothub-kedge-test', new TrustingHttp(ca)), config };
}

/** An azure-iothub `Registry` that trusts `ca`. */
export function registryFor(connectionString: string, ca: string): Registry {
  const { rest, config } = restClient(connectionString, ca);
  return new Registry(config, rest);
}

/** An azure-iothub service `Client` (direct methods) that trusts `ca`. */
export function serviceClientFor(connectionString: string, ca: string): ServiceClient {
  const base = ServiceClient.fromConnectionString(connectionString) as unknown as { _transport: ServiceClient.Transport };
  const { rest } = restClient(connectionString, ca);
  return new ServiceClient(base._transport, rest);
}

/**
 * An azure-iothub service `Client` over AMQP (cloud-to-device messages, feedback) that trusts `ca`: the transport
 * has no CA option, so its base AMQP layer gets `sslOptions.ca` added to the config it connects with (the field the
 * SDK itself reads for certificates). `websocket` uses `AmqpWs` (port 443, `/$iothub/websocket`).
 */
export function c2dClientFor(connectionString: string, ca: string, opts: { websocket?: boolean } = {}): ServiceClient {
  const client = ServiceClient.fromConnectionString(connectionString, opts.websocket === true ? ServiceAmqpWs : ServiceAmqp);
  type Connect = (config: { sslOptions?: Record<string, unknown> }, done: unknown) => void;
  const base = (client as unknown as { _transport: { _amqp: { connect: Connect } } })._transport._amqp;
  const connect = base.connect.bind(base);
  base.connect = (config, done) => connect({ ...config, sslOptions: { ...config.sslOptions, ca } }, done);
  return client;
}

/** An azure-iot-device client over MQTT/TLS (or MQTT over WebSockets, or AMQP/TLS) trusting `ca`; not yet opened. */
export async function deviceClientFor(connectionString: string, ca: string, opts: { websocket?: boolean; amqp?: boolean } = {}): Promise<DeviceClient> {
  const c = DeviceClient.fromConnectionString(connectionString, opts.amqp === true ? DeviceAmqp : opts.websocket === true ? MqttWs : Mqtt);
  await c.setOptions({ ca });
  return c;
}

/** An azure-iot-device module client over MQTT/TLS trusting `ca`; not yet opened. */
export async function moduleClientFor(connectionString: string, ca: string): Promise<ModuleClient> {
  const c = ModuleClient.fromConnectionString(connectionString, Mqtt);
  await c.setOptions({ ca });
  return c;
}
