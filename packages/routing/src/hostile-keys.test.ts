import { describe, expect, it } from 'vitest';
import { messageFromJson } from './message-json.js';

/** Property names are user keys: `__proto__`, `constructor` … are ordinary application properties. */
describe('messageFromJson with hostile property names', () => {
  const protoBefore = Object.getOwnPropertyNames(Object.prototype).sort();

  it('keeps properties and system properties named like Object.prototype members as data', () => {
    const input = JSON.parse('{"source":{"deviceId":"d1"},"properties":{"__proto__":"a","constructor":"b","toString":"c"},"systemProperties":{"__proto__":null,"hasOwnProperty":"x"}}') as unknown;
    const r = messageFromJson(input);
    expect(r.ok).toBe(true);
    if (!r.ok) return;
    expect(Object.entries(r.value.properties ?? {})).toEqual([['__proto__', 'a'], ['constructor', 'b'], ['toString', 'c']]);
    expect(Object.entries(r.value.systemProperties ?? {})).toEqual([['__proto__', null], ['hasOwnProperty', 'x']]);
    expect(r.value.contentType).toBeUndefined();
    expect(Object.getOwnPropertyNames(Object.prototype).sort()).toEqual(protoBefore);
  });
});
