import { describe, expect, it } from 'vitest';
import { MethodArgumentError, parseLogTime } from './methods.js';

describe('GetModuleLogs times', () => {
  const now = Date.parse('2026-12-01T12:00:00Z');
  it("accepts edgeAgent's forms: durations before now, RFC 3339, unix seconds", () => {
    expect(parseLogTime('90 m', now)).toBe(now - 90 * 60_000);
    expect(parseLogTime('1d', now)).toBe(now - 86_400_000);
    expect(parseLogTime('2 days 3 hours', now)).toBe(now - (2 * 86_400 + 3 * 3600) * 1000);
    expect(parseLogTime('2026-12-01T11:00:00Z', now)).toBe(Date.parse('2026-12-01T11:00:00Z'));
    expect(parseLogTime('1764590400', now)).toBe(1764590400_000);
    expect(parseLogTime(1764590400, now)).toBe(1764590400_000);
  });
  it('refuses anything else as an argument error (400)', () => {
    for (const bad of ['', 'soon', '5 fortnights', '12 days ago', 'x'.repeat(100), {}, null]) {
      expect(() => parseLogTime(bad, now), JSON.stringify(bad)).toThrow(MethodArgumentError);
    }
  });
});
