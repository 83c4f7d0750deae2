import { Client as ServiceClient, Registry } from 'azure-iothub';
import { SharedAccessSignature } from 'azure-iothub/dist/common-core/shared_access_signature.js';
import { Http } from 'azure-iothub/dist/common-http/http.js';
import { RestApiClient } from 'azure-iothub/dist/common-http/rest_api_client.js';
import { parseConnectionString } from '@kedge/protocol';
import { freeLoopbackAddress } from '@kedge/testing';

/** azure-iothub always calls port 443 of HostName: each hub gets a loopback address of its own (127.0.51.x–52.x). */
export function freeLoopback(): Promise<string> {
  return freeLoopbackAddress([443, 8883], { firstOctet: 51, blocks: 2 });
}

/** azure-iothub's HTTP transport, made to trust the test hub's CA on every request. */
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

/** Microsoft's service SDK (`Registry`, `Client`) against a hub whose certificate chains to `ca`. */
export function serviceSdk(connectionString: string, ca: string): { registry: Registry; service: ServiceClient } {
  const cs = parseConnectionString(connectionString);
  const host = cs.get('HostName') ?? '';
  const config = { host, sharedAccessSignature: SharedAccessSignature.create(host, cs.get('SharedAccessKeyName') ?? '', cs.get('SharedAccessKey') ?? '', Date.now()) };
  const rest = () => new RestApiClient(config, 'azure-iothub-kedge-test', new TrustingHttp(ca));
  const base = ServiceClient.fromConnectionString(connectionString) as unknown as { _transport: ServiceClient.Transport };
  return { registry: new Registry(config, rest()), service: new ServiceClient(base._transport, rest()) };
}

/** A `$edgeAgent` desired document with the given modules (IoT Edge's shape, stringified createOptions). */
export const edgeAgentDesired = (modules: Record<string, unknown>): Record<string, unknown> => ({
  schemaVersion: '1.1',
  runtime: { type: 'docker', settings: { minDockerVersion: 'v1.25' } },
  systemModules: {
    edgeAgent: { type: 'docker', settings: { image: 'ghcr.io/kedge-io/edge-agent:0.1', createOptions: '{}' } },
    edgeHub: { type: 'docker', status: 'running', restartPolicy: 'always', settings: { image: 'ghcr.io/kedge-io/edge-hub:0.1', createOptions: '{}' } },
  },
  modules,
});

/** A running docker module of the manifest. */
export const manifestModule = (image: string, version: string, extra: Record<string, unknown> = {}): Record<string, unknown> => ({
  version,
  type: 'docker',
  status: 'running',
  restartPolicy: 'always',
  settings: { image, createOptions: '{}' },
  ...extra,
});

/** Configuration content for `applyConfigurationContentOnDevice`: modules plus routes. */
export const deploymentContent = (modules: Record<string, unknown>, routes: Record<string, string> = { up: 'FROM /messages/* INTO $upstream' }): { modulesContent: Record<string, unknown> } => ({
  modulesContent: {
    $edgeAgent: { 'properties.desired': edgeAgentDesired(modules) },
    $edgeHub: { 'properties.desired': { schemaVersion: '1.1', routes, storeAndForwardConfiguration: { timeToLiveSecs: 7200 } } },
  },
});
