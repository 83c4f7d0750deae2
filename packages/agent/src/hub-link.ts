import { createHmac } from 'node:crypto';
import type { Logger } from 'pino';
import { DeviceRegistryClient, IotHubClient, IotHubErrorCode } from '@kedge/iothub-client';

/** How an agent reaches its hub: the parsed `hub` section of either runtime's configuration. */
export interface HubLinkOptions {
  /** PEM of the CA the hub's certificate chains to; the system's CAs when absent. */
  readonly ca?: string | undefined;
  /** MQTT over TLS port. @default 8883 */
  readonly mqttPort?: number | undefined;
  /** HTTPS service API port (module identities). @default 443 */
  readonly servicePort?: number | undefined;
  /** Connect to this address instead of resolving the host name (TLS still checks the host name). */
  readonly address?: string | undefined;
  /** Reconnect backoff cap. */
  readonly maxBackoffMs: number;
}

/** The device's view of the hub's registry (its module identities), with the device's own key. */
export function deviceRegistryClient(hub: HubLinkOptions, hostName: string, deviceId: string, deviceKey: string): DeviceRegistryClient {
  return new DeviceRegistryClient({
    hostName,
    deviceId,
    sharedAccessKey: deviceKey,
    ...(hub.servicePort !== undefined ? { port: hub.servicePort } : {}),
    ...(hub.address !== undefined ? { address: hub.address } : {}),
    ...(hub.ca !== undefined ? { ca: hub.ca } : {}),
  });
}

/**
 * The agent's MQTT connection as the device's `$edgeAgent` module, for both runtimes. Its key comes from the hub with
 * the device's credentials when a connection is made (kept in memory only, never stored), and is fetched again after
 * the hub refused it.
 */
export function edgeAgentClient(hub: HubLinkOptions, devices: DeviceRegistryClient, hostName: string, deviceId: string, log: Logger): IotHubClient {
  let agentKey: string | undefined;
  const signer = async (data: string): Promise<string> => {
    agentKey ??= (await devices.getModule('$edgeAgent'))?.primaryKey;
    if (!agentKey) throw new Error(`Device ${deviceId} has no $edgeAgent module identity (is it an edge device?)`);
    return createHmac('sha256', Buffer.from(agentKey, 'base64')).update(data, 'utf8').digest('base64');
  };
  const client = new IotHubClient({
    hostName,
    deviceId,
    moduleId: '$edgeAgent',
    signer,
    ...(hub.address !== undefined || hub.mqttPort !== undefined ? { gatewayHostName: hub.address ?? hostName } : {}),
    ...(hub.mqttPort !== undefined ? { port: hub.mqttPort } : {}),
    ...(hub.ca !== undefined ? { ca: hub.ca } : {}),
    backoff: { maxMs: hub.maxBackoffMs },
    userAgent: 'kedge-agent/0.1',
    log,
  });
  client.on('disconnected', (info) => {
    if (info.error?.code === IotHubErrorCode.Unauthorized) agentKey = undefined;
  });
  return client;
}
