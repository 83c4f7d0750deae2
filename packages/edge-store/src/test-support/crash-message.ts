import type { EdgeMessage } from '@kedge/routing';

/** The deterministic 1 KB message number `i` of the crash test. */
export function crashMessage(i: number): EdgeMessage {
  const properties = Object.create(null) as Record<string, string>;
  properties['i'] = String(i);
  const systemProperties = Object.create(null) as Record<string, string>;
  systemProperties['messageId'] = `m-${i}`;
  return {
    id: `id-${i}`,
    body: new TextEncoder().encode(`message ${i} `.padEnd(1024, String.fromCharCode(97 + (i % 26)))),
    properties,
    systemProperties,
    source: { deviceId: 'dev', moduleId: 'writer', output: 'out' },
    enqueuedAt: 1_780_000_000_000 + i,
  };
}
