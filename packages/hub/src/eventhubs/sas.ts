import { createHmac, timingSafeEqual } from 'node:crypto';
import type { SasToken } from '@kedge/protocol';

/**
 * Checks the signature of an Event Hubs (Service Bus) SAS token: unlike IoT Hub's, it is signed with the key's
 * UTF-8 text itself, not with the bytes the base64 key decodes to (`@azure/core-amqp` `signString`,
 * `azure-eventhub` `generate_sas_token`). The same policy keys, two signing rules.
 */
export function serviceBusSignatureValid(token: SasToken, keys: readonly string[]): boolean {
  const given = Buffer.from(token.sig);
  for (const key of keys) {
    if (key === '') continue;
    const expected = Buffer.from(createHmac('sha256', Buffer.from(key, 'utf8')).update(`${token.rawSr}\n${token.se}`, 'utf8').digest('base64'));
    if (expected.length === given.length && timingSafeEqual(expected, given)) return true;
  }
  return false;
}
