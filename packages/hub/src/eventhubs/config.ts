import { isIP } from 'node:net';
import { z } from 'zod';

/** IoT Hub's consumer group names: 1-50 letters, digits, `.`, `_`, `-` (`$Default` is always there). */
const CONSUMER_GROUP = /^[A-Za-z0-9._-]{1,50}$/;

/** The Event Hubs-compatible endpoint's settings (`HubConfig.eventHubs`). */
export const EventHubsConfigSchema = z
  .object({
    /** The Event Hub-compatible name (`EntityPath`); default: the host name's first label (`kedge` for an IP). */
    name: z
      .string()
      .regex(/^[A-Za-z0-9][A-Za-z0-9._-]{0,49}$/, 'letters, digits, ".", "_" or "-", at most 50')
      .optional(),
    /**
     * Partitions (device ids hashed onto them). Fixed when the database is first opened, as on IoT Hub; a later
     * different value is ignored with a warning.
     * @default 4
     */
    partitionCount: z.number().int().min(1).max(128).default(4),
    /** Consumer groups besides `$Default` (IoT Hub allows 20 per hub). */
    consumerGroups: z.array(z.string().regex(CONSUMER_GROUP, 'consumer groups are 1-50 letters, digits, ".", "_" or "-"')).max(19).default([]),
  })
  .default({ partitionCount: 4, consumerGroups: [] });

/** The Event Hub-compatible name of a hub: as configured, else the first DNS label of its host name. */
export function eventHubName(configured: string | undefined, hostName: string): string {
  if (configured !== undefined) return configured;
  const label = hostName.split('.')[0] ?? '';
  return isIP(hostName) === 0 && /^[A-Za-z0-9][A-Za-z0-9-]{0,49}$/.test(label) ? label : 'kedge';
}
