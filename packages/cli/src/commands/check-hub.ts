import mqtt, { type IClientOptions } from 'mqtt';
import { createSasToken } from '@kedge/protocol';

/** What `kedge check` learnt about the hub, by cause; each has its own next step. */
export const HubOutcome = {
  Ok: 'ok',
  Unreachable: 'unreachable',
  TlsUntrusted: 'tls-untrusted',
  /** CONNACK 4: the token does not verify (wrong key, or expired: this machine's clock). */
  KeyRefused: 'key-refused',
  /** CONNACK 5: no such device, or it is disabled. */
  DeviceRefused: 'device-refused',
  /** Connected, but the twin could not be read. */
  TwinUnreadable: 'twin-unreadable',
} as const;
export type HubOutcome = (typeof HubOutcome)[keyof typeof HubOutcome];

/** The device credentials to prove and where to prove them. */
export interface HubCredentialsCheck {
  readonly hostName: string;
  readonly deviceId: string;
  /** The device's key (base64), from its connection string. */
  readonly sharedAccessKey: string;
  /** Dial here instead of `hostName` (TLS still checks `hostName`). */
  readonly address?: string;
  /** @default 8883 */
  readonly port?: number;
  /** PEM to trust besides the system's roots (the hub's CA). */
  readonly ca?: string;
  readonly timeoutMs: number;
  /** Clock for the token's expiry. */
  readonly nowMs?: () => number;
}

export interface HubCheckResult {
  readonly outcome: HubOutcome;
  readonly detail: string;
  readonly fix?: string;
}

// Node's TLS verification failures: the hub's certificate chain is not trusted, or not for this name.
const UNTRUSTED = new Set([
  'SELF_SIGNED_CERT_IN_CHAIN', 'DEPTH_ZERO_SELF_SIGNED_CERT', 'UNABLE_TO_VERIFY_LEAF_SIGNATURE', 'UNABLE_TO_GET_ISSUER_CERT',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY', 'CERT_UNTRUSTED', 'CERT_HAS_EXPIRED', 'CERT_NOT_YET_VALID', 'ERR_TLS_CERT_ALTNAME_INVALID',
]);

/**
 * Proves that the hub accepts the device's credentials: an MQTT CONNECT over verified TLS as the device itself
 * (client id `{deviceId}`, a fresh SAS token signed with its key), then a twin GET. The device identity is used
 * rather than `$edgeAgent` or `$edgeHub` because IoT Hub drops an older connection of the same client id: the
 * running agent and edge hub keep theirs. Clean session, nothing subscribed beyond the twin response, disconnects.
 * Never rejects: every failure is an outcome with what to do next.
 */
export async function checkHubCredentials(o: HubCredentialsCheck): Promise<HubCheckResult> {
  const port = o.port ?? 8883;
  const where = `${o.address ?? o.hostName}:${port}`;
  const nowS = Math.floor((o.nowMs?.() ?? Date.now()) / 1000);
  const options: IClientOptions = {
    protocol: 'mqtts',
    host: o.address ?? o.hostName,
    port,
    servername: /^[\d.]+$|:/.test(o.hostName) ? undefined : o.hostName,
    ...(o.ca !== undefined ? { ca: o.ca } : {}),
    rejectUnauthorized: true,
    protocolVersion: 4,
    clientId: o.deviceId,
    username: `${o.hostName}/${o.deviceId}/?api-version=2021-04-12&DeviceClientType=${encodeURIComponent('kedge-check/0.1')}`,
    password: createSasToken({ audience: `${o.hostName}/devices/${o.deviceId}`, key: o.sharedAccessKey, expirySeconds: nowS + 300 }),
    clean: true,
    keepalive: 30,
    reconnectPeriod: 0,
    connectTimeout: o.timeoutMs,
    resubscribe: false,
  };
  const dev = `device ${o.deviceId}`;
  return new Promise<HubCheckResult>((resolve) => {
    const m = mqtt.connect(options);
    let done = false;
    const finish = (r: HubCheckResult): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      m.end(true);
      resolve(r);
    };
    const unreachable = (why: string): HubCheckResult => ({
      outcome: HubOutcome.Unreachable,
      detail: `${where}: ${why}`,
      fix: `check DNS, network and firewall towards the hub (MQTT over TLS, port ${port}); --hub-address host:port dials elsewhere`,
    });
    const timer = setTimeout(() => finish(unreachable(`no answer within ${o.timeoutMs} ms`)), o.timeoutMs + 1000);
    m.on('error', (e: Error & { code?: string | number }) => {
      if (typeof e.code === 'number') {
        // [MQTT-3.2.2.3] CONNACK return codes: 4 bad user name or password, 5 not authorized.
        if (e.code === 4) {
          finish({
            outcome: HubOutcome.KeyRefused,
            detail: `the hub refused the SAS token of ${dev} (CONNACK 4): the key is wrong, or the token expired because this machine's clock is off`,
            fix: `compare the key with \`kedge devices show ${o.deviceId}\` on the hub and reinstall with the current connection string; check the clock (\`date -u\`)`,
          });
        } else if (e.code === 5) {
          finish({
            outcome: HubOutcome.DeviceRefused,
            detail: `the hub does not admit ${dev} (CONNACK 5): it does not exist there, or it is disabled`,
            fix: `\`kedge devices show ${o.deviceId}\` on the hub: create it as an edge device (\`kedge devices create ${o.deviceId} --edge\`) or enable it`,
          });
        } else {
          finish(unreachable(`the hub is unavailable (CONNACK ${e.code}); try again later`));
        }
        return;
      }
      const code = typeof e.code === 'string' ? e.code : '';
      if (UNTRUSTED.has(code)) {
        finish({
          outcome: HubOutcome.TlsUntrusted,
          detail: `the certificate of ${where} is not trusted for ${o.hostName} (${code})`,
          fix: "pass the hub's CA certificate with --hub-ca <pem> (the agent needs the same: --hub-ca), or add it to the system trust store",
        });
        return;
      }
      finish(unreachable(code || e.message));
    });
    m.on('close', () => finish(unreachable('the connection closed before the hub answered')));
    m.on('connect', () => {
      const rid = '1';
      m.on('message', (topic, payload) => {
        const r = /^\$iothub\/twin\/res\/(\d{3})\/\?(.*)$/.exec(topic);
        if (!r || new URLSearchParams(r[2]).get('$rid') !== rid) return;
        const status = Number(r[1]);
        if (status !== 200) {
          finish({ outcome: HubOutcome.TwinUnreadable, detail: `${dev} connected, but its twin GET answered ${status}`, fix: "see the hub's log for the device" });
          return;
        }
        let version: unknown;
        try {
          version = (JSON.parse(payload.toString('utf8')) as { desired?: { $version?: unknown } }).desired?.$version;
        } catch {
          version = undefined;
        }
        finish({ outcome: HubOutcome.Ok, detail: `${dev} authenticated at ${where} over verified TLS; twin read${typeof version === 'number' ? ` (desired $version ${version})` : ''}` });
      });
      m.subscribe('$iothub/twin/res/#', { qos: 0 }, (err) => {
        if (err) finish({ outcome: HubOutcome.TwinUnreadable, detail: `${dev} connected, but the twin subscription was refused`, fix: "see the hub's log for the device" });
        else m.publish(`$iothub/twin/GET/?$rid=${rid}`, '', { qos: 0 });
      });
    });
  });
}
