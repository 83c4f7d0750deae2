import { pino } from 'pino';
import { beforeAll, describe, expect, it } from 'vitest';
import { createKubeClient } from './client.js';
import type { KubeClient } from './client.js';
import { FakeClock } from './clock.js';
import { EventRecorder, EventType } from './events.js';
import type { EventTarget } from './events.js';
import { createNamespace, testClusterConfig, testLogger } from './test-helpers.js';
import type { KubernetesObject } from './types.js';

type Event = KubernetesObject & { reason: string; message: string; type: string; count: number; involvedObject: { uid: string; name: string }; source: { component: string }; firstTimestamp: string; lastTimestamp: string };

let kube: KubeClient;
beforeAll(() => {
  kube = createKubeClient(testClusterConfig());
});

async function target(prefix: string): Promise<EventTarget> {
  const ns = await createNamespace(kube, prefix);
  const cm: KubernetesObject = await kube.apply({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'subject', namespace: ns } });
  return { apiVersion: 'v1', kind: 'ConfigMap', namespace: ns, name: 'subject', uid: cm.metadata?.uid ?? '' };
}

const events = async (ns: string) => (await kube.list<Event>('v1', 'Event', ns)).sort((a, b) => a.reason.localeCompare(b.reason));

describe('EventRecorder', () => {
  it('writes Events that name the object, and counts repeats on one Event', async () => {
    const t = await target('ev');
    const clock = new FakeClock(Date.parse('2026-11-24T10:00:00Z'));
    const rec = new EventRecorder(kube, { component: 'kedge-agent', instance: 'pod-1', log: testLogger(), clock });
    rec.record(t, { type: EventType.Warning, reason: 'InvalidSpec', message: 'spec.modules.a.settings.image: required' });
    await rec.flush();
    clock.advance(1000);
    rec.record(t, { type: EventType.Warning, reason: 'InvalidSpec', message: 'spec.modules.a.settings.image: required' });
    rec.record(t, { type: EventType.Normal, reason: 'Ready', message: '1/1 modules available' });
    await rec.flush();
    const [invalid, ready] = await events(t.namespace);
    expect(invalid).toMatchObject({
      type: 'Warning',
      reason: 'InvalidSpec',
      count: 2,
      involvedObject: { uid: t.uid, name: 'subject' },
      source: { component: 'kedge-agent' },
      firstTimestamp: '2026-11-24T10:00:00Z',
      lastTimestamp: '2026-11-24T10:00:01Z',
    });
    expect(ready).toMatchObject({ type: 'Normal', reason: 'Ready', count: 1 });
  });

  it('drops an object\'s events beyond the burst until the bucket refills, and cuts long messages', async () => {
    const t = await target('spam');
    const clock = new FakeClock(Date.parse('2026-11-24T10:00:00Z'));
    const rec = new EventRecorder(kube, { component: 'kedge-agent', log: testLogger(), clock, burst: 2, refillMs: 60_000 });
    for (let i = 0; i < 5; i++) rec.record(t, { type: EventType.Warning, reason: `R${i}`, message: 'x'.repeat(2000) });
    await rec.flush();
    expect((await events(t.namespace)).map((e) => e.reason)).toEqual(['R0', 'R1']);
    expect((await events(t.namespace))[0]?.message).toHaveLength(1024);
    clock.advance(60_000);
    rec.record(t, { type: EventType.Normal, reason: 'R9', message: 'after refill' });
    await rec.flush();
    expect((await events(t.namespace)).map((e) => e.reason)).toEqual(['R0', 'R1', 'R9']);
  });

  it('never throws or blocks when the write fails', async () => {
    const lines: { msg: string; err?: { status?: number } }[] = [];
    const log = pino({ level: 'warn' }, { write: (l: string) => lines.push(JSON.parse(l) as (typeof lines)[number]) });
    const rec = new EventRecorder(kube, { component: 'kedge-agent', log });
    // A namespace that does not exist: the apiserver refuses the write; record() still returns normally.
    rec.record({ apiVersion: 'v1', kind: 'ConfigMap', namespace: 'no-such-namespace-kedge', name: 'x', uid: 'u' }, { type: EventType.Normal, reason: 'R', message: 'm' });
    await expect(rec.flush()).resolves.toBeUndefined();
    expect(lines).toEqual([expect.objectContaining({ msg: 'Could not write event', err: expect.objectContaining({ status: 404 }) })]);
  });
});
