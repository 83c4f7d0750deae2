import { Registry, Summary } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { WindowedSummary } from './metrics.js';

const QUANTILES = [0.5, 0.9, 0.95, 0.99, 0.999, 0.9999];
/** The sample lines of a metric in the text exposition, without their values. */
const shape = (text: string): string[] => text.split('\n').filter((l) => l !== '').map((l) => l.replace(/ [-0-9.e+]+$/, ''));
const value = (text: string, line: string): number => Number(text.split('\n').find((l) => l.startsWith(`${line} `))?.split(' ')[1]);

describe('WindowedSummary', () => {
  it("is exposed as prom-client's Summary is: quantile lines, _sum and _count per label set", async () => {
    const ours = new Registry();
    const theirs = new Registry();
    new WindowedSummary({ name: 'x_seconds', help: 'h', labelNames: ['a', 'b'], registers: [ours] }).observe({ a: 'p', b: 'q' }, 0.25);
    new Summary({ name: 'x_seconds', help: 'h', labelNames: ['a', 'b'], percentiles: QUANTILES, maxAgeSeconds: 600, ageBuckets: 5, registers: [theirs] }).observe({ a: 'p', b: 'q' }, 0.25);
    expect(shape(await ours.metrics())).toEqual(shape(await theirs.metrics()));
  });

  it('reports quantiles within 1 % of the exact ones, counts weighted observations, and zero', async () => {
    const r = new Registry();
    const s = new WindowedSummary({ name: 'd', help: 'h', labelNames: ['k'], registers: [r] });
    const values: number[] = [];
    // A skewed distribution over six orders of magnitude.
    for (let i = 1; i <= 20_000; i++) values.push(1e-5 * 1.0007 ** i);
    for (const v of values) s.observe({ k: 'v' }, v);
    s.observe({ k: 'w' }, 0.5, 99);
    s.observe({ k: 'w' }, 0);
    const text = await r.metrics();
    values.sort((a, b) => a - b);
    for (const q of QUANTILES) {
      const exact = values[Math.floor(q * (values.length - 1))] as number;
      expect(Math.abs(value(text, `d{quantile="${q}",k="v"}`) - exact) / exact).toBeLessThan(0.011);
    }
    expect(value(text, 'd_count{k="v"}')).toBe(20_000);
    expect(value(text, 'd_sum{k="v"}')).toBeCloseTo(values.reduce((a, b) => a + b, 0), 6);
    expect(value(text, 'd_count{k="w"}')).toBe(100);
    expect(value(text, 'd_sum{k="w"}')).toBeCloseTo(49.5, 9);
    expect(value(text, 'd{quantile="0.5",k="w"}')).toBeCloseTo(0.5, 2);
  });

  it('forgets observations older than the window, in age-bucket steps; _sum and _count stay cumulative', async () => {
    let now = 1_000_000;
    const r = new Registry();
    const s = new WindowedSummary({ name: 'w', help: 'h', labelNames: [], registers: [r], percentiles: [0.5, 1], maxAgeSeconds: 600, ageBuckets: 5, now: () => now });
    s.observe({}, 10);
    expect(value(await r.metrics(), 'w{quantile="0.5"}')).toBeCloseTo(10, 0);
    now += 300_000;
    s.observe({}, 1, 2);
    expect(value(await r.metrics(), 'w{quantile="1"}')).toBeCloseTo(10, 0);
    expect(value(await r.metrics(), 'w{quantile="0.5"}')).toBeCloseTo(1, 1);
    now += 600_000;
    // The 10 is out of the window; the 1s are still in (their slot ends within the last 600 s).
    const text = await r.metrics();
    expect(value(text, 'w{quantile="1"}')).toBeCloseTo(1, 1);
    expect(value(text, 'w_count')).toBe(3);
    expect(value(text, 'w_sum')).toBe(12);
    now += 600_000;
    expect(value(await r.metrics(), 'w{quantile="0.5"}')).toBe(0);
  });

  it("records a child's observations in the series of its labels", async () => {
    const r = new Registry();
    const s = new WindowedSummary({ name: 'c_seconds', help: 'h', labelNames: ['k'], registers: [r] });
    const child = s.child({ k: 'v' });
    child.observe(2);
    s.observe({ k: 'v' }, 4, 2);
    child.observe(1, 3);
    const text = await r.metrics();
    expect(value(text, 'c_seconds_sum{k="v"}')).toBe(13);
    expect(value(text, 'c_seconds_count{k="v"}')).toBe(6);
    expect(() => child.observe(Number.NaN)).toThrow(TypeError);
  });
});
