import { Counter, Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { LabeledCounter } from './metrics.js';

describe('LabeledCounter', () => {
  it("is exposed exactly as prom-client's Counter is, default labels included", async () => {
    const ours = new Registry();
    const theirs = new Registry();
    for (const r of [ours, theirs]) r.setDefaultLabels({ edge_device: 'e1' });
    const a = new LabeledCounter({ name: 'm_total', help: 'h', labelNames: ['from', 'to'], registers: [ours] });
    const b = new Counter({ name: 'm_total', help: 'h', labelNames: ['from', 'to'], registers: [theirs] });
    for (const c of [a, b]) {
      c.inc({ from: 'x', to: 'y' });
      c.inc({ to: 'y', from: 'x' }, 2);
      c.inc({ from: 'x', to: 'z' }, 0.5);
      c.inc({ from: 'w' });
    }
    expect(await ours.metrics()).toBe(await theirs.metrics());
    expect(await ours.metrics()).toContain('m_total{from="x",to="y",edge_device="e1"} 3');
  });

  it('keeps label values apart that would join to the same text, and omits labels not given', async () => {
    const r = new Registry();
    const c = new LabeledCounter({ name: 'k_total', help: 'h', labelNames: ['a', 'b'], registers: [r] });
    c.inc({ a: 'p', b: 'q' });
    c.inc({ a: 'pq', b: '' });
    c.inc({ a: 'r' });
    c.inc({ a: 'r' });
    const { values } = await c.get();
    expect(values).toEqual([
      { labels: { a: 'p', b: 'q' }, value: 1 },
      { labels: { a: 'pq', b: '' }, value: 1 },
      { labels: { a: 'r' }, value: 2 },
    ]);
  });

  it('refuses to go down or by a non-number, and changes nothing then; reset clears every series', async () => {
    const c = new LabeledCounter({ name: 'n_total', help: 'h', labelNames: ['a'], registers: [] });
    c.inc({ a: 'x' }, 0);
    for (const bad of [-1, Number.NaN, Number.POSITIVE_INFINITY]) expect(() => c.inc({ a: 'x' }, bad)).toThrow(TypeError);
    expect((await c.get()).values).toEqual([{ labels: { a: 'x' }, value: 0 }]);
    c.reset();
    expect((await c.get()).values).toEqual([]);
  });

  it("counts a child's increments in the series of its labels, before and after a reset", async () => {
    const c = new LabeledCounter({ name: 'c_total', help: 'h', labelNames: ['a', 'b'], registers: [] });
    const child = c.child({ b: 'y', a: 'x' });
    child.inc();
    c.inc({ a: 'x', b: 'y' }, 2);
    child.inc(4);
    expect((await c.get()).values).toEqual([{ labels: { a: 'x', b: 'y' }, value: 7 }]);
    expect(() => child.inc(-1)).toThrow(TypeError);
    c.reset();
    child.inc();
    expect((await c.get()).values).toEqual([{ labels: { a: 'x', b: 'y' }, value: 1 }]);
  });
});
