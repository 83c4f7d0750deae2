import { createHmac } from 'node:crypto';

/**
 * A SAS token signed the Service Bus way (HMAC keyed with the key's UTF-8 text, as `@azure/core-amqp` does), for
 * raw clients of the Event Hubs-compatible endpoint.
 */
export function createServiceBusSasToken(opts: { audience: string; keyName: string; key: string; expirySeconds: number }): string {
  const sr = encodeURIComponent(opts.audience);
  const sig = encodeURIComponent(createHmac('sha256', Buffer.from(opts.key, 'utf8')).update(`${sr}\n${opts.expirySeconds}`).digest('base64'));
  return `SharedAccessSignature sr=${sr}&sig=${sig}&se=${opts.expirySeconds}&skn=${encodeURIComponent(opts.keyName)}`;
}
