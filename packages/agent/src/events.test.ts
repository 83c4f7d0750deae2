import type { V1Deployment, V1Pod } from '@kubernetes/client-node';
import { describe, expect, it } from 'vitest';
import { statusEvents } from './events.js';
import type { RenderedModule } from './render.js';
import { Reasons, computeStatus } from './status.js';

const now = '2026-11-24T10:00:00Z';
const m = (over: Partial<RenderedModule> = {}): RenderedModule => ({
  name: 'filter', objectName: 'filter', system: false, desiredStatus: 'running', startupOrder: 1, replicas: 1, image: 'filter:1', restartPolicy: 'always', specDigest: 'abc', ...over,
});
const deployment = (available: number): V1Deployment => ({ metadata: { name: 'filter', generation: 1 }, status: { observedGeneration: 1, availableReplicas: available, updatedReplicas: available } });
const container = (state: NonNullable<NonNullable<V1Pod['status']>['containerStatuses']>[number]['state'], restartCount = 0): V1Pod => ({
  metadata: { name: 'p' },
  status: { phase: 'Running', containerStatuses: [{ name: 'filter', image: 'filter:1', imageID: '', ready: state?.running !== undefined, restartCount, state }] },
});
const running = container({ running: {} });
const crashing = container({ waiting: { reason: 'CrashLoopBackOff' } }, 3);

const status = (pods: V1Pod[], available: number, previous?: ReturnType<typeof computeStatus>) =>
  computeStatus({ generation: 1, now, previous, modules: [m()], deployments: new Map([['filter', deployment(available)]]), pods: new Map([['filter', pods]]) });

describe('statusEvents', () => {
  it('reports Ready once, when it becomes true, not on every status write', () => {
    const progressing = status([container({ waiting: { reason: 'ContainerCreating' } })], 0);
    expect(statusEvents(undefined, progressing)).toEqual([]); // progress is not an event
    const ready = status([running], 1, progressing);
    expect(statusEvents(progressing, ready)).toEqual([{ type: 'Normal', reason: 'Ready', message: '1/1 modules available' }]);
    expect(statusEvents(ready, status([running], 1, ready))).toEqual([]);
  });

  it('warns when a module crash-loops, with the module and why', () => {
    const ready = status([running], 1);
    const events = statusEvents(ready, status([crashing], 0, ready));
    expect(events).toContainEqual(expect.objectContaining({ type: 'Warning', reason: 'ModuleBackOff', message: expect.stringContaining('Module filter is restarting') }));
  });

  it('warns with the exact reason when the spec turns invalid, and says when it is valid again', () => {
    const ready = status([running], 1);
    const invalid = computeStatus({ generation: 2, now, previous: ready, specErrors: [{ path: 'spec.modules.filter.settings.image', message: 'required' }] });
    expect(statusEvents(ready, invalid)).toEqual([{ type: 'Warning', reason: Reasons.InvalidSpec, message: 'spec.modules.filter.settings.image: required' }]);
    expect(statusEvents(invalid, invalid)).toEqual([]);
    const collision = computeStatus({ generation: 2, now, previous: ready, specErrors: [{ path: 'Service/filter', message: 'taken' }], specErrorReason: Reasons.NameCollision });
    expect(statusEvents(ready, collision)[0]).toMatchObject({ type: 'Warning', reason: 'NameCollision' });
    const fixed = status([running], 1, invalid);
    expect(statusEvents(invalid, fixed)).toContainEqual({ type: 'Normal', reason: 'Valid', message: 'The spec is valid again' });
  });

  it('reports a module stopped by its restart policy as Normal', () => {
    const ready = status([running], 1);
    const stoppedStatus = computeStatus({ generation: 1, now, previous: ready, modules: [m({ restartPolicy: 'on-failure', replicas: 0 })], deployments: new Map([['filter', deployment(0)]]), pods: new Map([['filter', [container({ terminated: { exitCode: 0 } })]]]) });
    expect(stoppedStatus.modules?.['filter']?.runtimeStatus).toBe('stopped');
    expect(statusEvents(ready, stoppedStatus)).toContainEqual(expect.objectContaining({ type: 'Normal', reason: 'ModuleStopped' }));
  });
});
