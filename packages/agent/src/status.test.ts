import type { V1Deployment, V1Pod } from '@kubernetes/client-node';
import { describe, expect, it } from 'vitest';
import type { RenderedModule } from './render.js';
import { computeStatus, exitWithoutRestart, isAvailable, moduleStatus } from './status.js';

const m = (over: Partial<RenderedModule> = {}): RenderedModule => ({
  name: 'filter', objectName: 'filter', system: false, desiredStatus: 'running', startupOrder: 1, replicas: 1, image: 'filter:1', restartPolicy: 'always', specDigest: 'abc', ...over,
});
const pod = (status: V1Pod['status'], created = '2026-01-01T00:00:00Z'): V1Pod => ({ metadata: { name: `p-${created}`, creationTimestamp: created as unknown as Date }, status });
const running = pod({ phase: 'Running', containerStatuses: [{ name: 'filter', image: 'filter:1', imageID: '', ready: true, restartCount: 2, state: { running: { startedAt: '2026-01-01T00:01:00Z' as unknown as Date } }, lastState: { terminated: { exitCode: 137, finishedAt: '2026-01-01T00:00:59Z' as unknown as Date } } }] });
const deployment = (available: number, generation = 1, observed = 1): V1Deployment => ({ metadata: { name: 'filter', generation }, status: { observedGeneration: observed, availableReplicas: available, updatedReplicas: available, readyReplicas: available } });

describe('moduleStatus', () => {
  it('reports a running container with restart count, last exit and start time', () => {
    expect(moduleStatus(m(), deployment(1), [running])).toMatchObject({ runtimeStatus: 'running', restartCount: 2, exitCode: 137, lastStartTimeUtc: '2026-01-01T00:01:00Z', lastExitTimeUtc: '2026-01-01T00:00:59Z', readyReplicas: 1 });
  });

  it('maps waiting, terminated and pod phases to edgeAgent statuses', () => {
    const waiting = (reason: string, restartCount = 1) => pod({ phase: 'Running', containerStatuses: [{ name: 'filter', image: '', imageID: '', ready: false, restartCount, state: { waiting: { reason } } }] });
    expect(moduleStatus(m(), undefined, [waiting('CrashLoopBackOff')]).runtimeStatus).toBe('backoff');
    expect(moduleStatus(m(), undefined, [waiting('ImagePullBackOff')]).description).toContain('ImagePullBackOff');
    expect(moduleStatus(m(), undefined, [waiting('CrashLoopBackOff', 20)]).runtimeStatus).toBe('failed');
    expect(moduleStatus(m(), undefined, [waiting('ContainerCreating', 0)]).runtimeStatus).toBe('pending');
    const term = (exitCode: number) => pod({ phase: 'Running', containerStatuses: [{ name: 'filter', image: '', imageID: '', ready: false, restartCount: 0, state: { terminated: { exitCode } } }] });
    expect(moduleStatus(m(), undefined, [term(0)]).runtimeStatus).toBe('stopped');
    expect(moduleStatus(m(), undefined, [term(2)])).toMatchObject({ runtimeStatus: 'failed', exitCode: 2 });
    expect(moduleStatus(m(), undefined, [pod({ phase: 'Succeeded' })]).runtimeStatus).toBe('stopped');
    expect(moduleStatus(m(), undefined, [pod({ phase: 'Failed', message: 'evicted' })])).toMatchObject({ runtimeStatus: 'failed', description: 'evicted' });
    expect(moduleStatus(m(), undefined, [pod({ phase: 'Unknown' })]).runtimeStatus).toBe('unknown');
    expect(moduleStatus(m(), undefined, [pod({ phase: 'Pending', conditions: [{ type: 'PodScheduled', status: 'False', message: '0/1 nodes are available' }] })]).description).toBe('Not scheduled: 0/1 nodes are available');
  });

  it('uses the newest pod that is not being deleted', () => {
    const old = pod({ phase: 'Failed' }, '2026-01-01T00:00:00Z');
    const dying = { ...pod({ phase: 'Running' }, '2026-01-03T00:00:00Z'), metadata: { creationTimestamp: '2026-01-03T00:00:00Z' as unknown as Date, deletionTimestamp: '2026-01-03T00:01:00Z' as unknown as Date } };
    const fresh = { ...running, metadata: { creationTimestamp: '2026-01-02T00:00:00Z' as unknown as Date } };
    expect(moduleStatus(m(), undefined, [old, dying, fresh]).runtimeStatus).toBe('running');
  });

  it('reports modules without pods by why they have none', () => {
    expect(moduleStatus(m({ desiredStatus: 'stopped', replicas: 0 }), deployment(0), []).runtimeStatus).toBe('stopped');
    expect(moduleStatus(m({ replicas: 0, waitingFor: ['edgeHub'] }), undefined, []).description).toBe('Waiting for edgeHub to be available (startupOrder)');
    const parked = moduleStatus(m({ replicas: 0, parked: true, restartPolicy: 'never' }), undefined, [], { runtimeStatus: 'failed', restartCount: 0, exitCode: 3, parkedSpec: 'abc' });
    expect(parked).toMatchObject({ runtimeStatus: 'failed', exitCode: 3, parkedSpec: 'abc' });
    // Parked in this very pass: the pod is already gone, the exit code comes from the decision.
    expect(moduleStatus(m({ replicas: 0, parked: true, parkedExitCode: 0, restartPolicy: 'on-failure' }), undefined, [])).toMatchObject({ runtimeStatus: 'stopped', exitCode: 0, parkedSpec: 'abc' });
  });
});

describe('exitWithoutRestart', () => {
  const exited = (exitCode: number) => [pod({ phase: 'Running', containerStatuses: [{ name: 'filter', image: '', imageID: '', ready: false, restartCount: 1, state: { waiting: { reason: 'CrashLoopBackOff' } }, lastState: { terminated: { exitCode } } }] })];
  it('follows IoT Edge restart policies', () => {
    expect(exitWithoutRestart({ restartPolicy: 'always' }, exited(0))).toBeUndefined();
    expect(exitWithoutRestart({ restartPolicy: 'on-failure' }, exited(1))).toBeUndefined();
    expect(exitWithoutRestart({ restartPolicy: 'on-failure' }, exited(0))).toBe(0);
    expect(exitWithoutRestart({ restartPolicy: 'on-unhealthy' }, exited(0))).toBe(0);
    expect(exitWithoutRestart({ restartPolicy: 'never' }, exited(5))).toBe(5);
    expect(exitWithoutRestart({ restartPolicy: 'never' }, [running].map((p) => ({ ...p, status: { ...p.status, containerStatuses: [{ ...p.status!.containerStatuses![0]!, lastState: {} }] } })))).toBeUndefined();
  });
});

describe('computeStatus', () => {
  const now = '2026-02-01T00:00:00Z';
  it('is Ready when every running module is available, and keeps transition times while nothing changes', () => {
    const first = computeStatus({ generation: 3, now, modules: [m()], deployments: new Map([['filter', deployment(1)]]), pods: new Map([['filter', [running]]]), routes: 2 });
    expect(first).toMatchObject({ observedGeneration: 3, phase: 'Ready', modulesDesired: 1, modulesReady: 1 });
    expect(first.conditions?.map((c) => `${c.type}=${c.status}`)).toEqual(['ModulesAvailable=True', 'Ready=True', 'RoutesApplied=Unknown', 'SpecValid=True']);
    const again = computeStatus({ generation: 3, now: '2026-02-02T00:00:00Z', previous: first, modules: [m()], deployments: new Map([['filter', deployment(1)]]), pods: new Map([['filter', [running]]]), routes: 2 });
    expect(again).toEqual(first);
  });

  it('is not available while a rollout is in progress', () => {
    expect(isAvailable(deployment(1, 2, 1))).toBe(false);
    const s = computeStatus({ generation: 1, now, modules: [m()], deployments: new Map([['filter', deployment(1, 2, 1)]]), pods: new Map([['filter', [running]]]) });
    expect(s.phase).toBe('Progressing');
  });

  it('keeps the last module statuses when the spec is invalid', () => {
    const good = computeStatus({ generation: 1, now, modules: [m()], deployments: new Map([['filter', deployment(1)]]), pods: new Map([['filter', [running]]]) });
    const bad = computeStatus({ generation: 2, now, previous: good, specErrors: [{ path: 'spec.routes.r.route', message: 'bad' }] });
    expect(bad).toMatchObject({ observedGeneration: 2, phase: 'Invalid', modules: good.modules, modulesReady: 1 });
    expect(bad.conditions?.find((c) => c.type === 'SpecValid')).toMatchObject({ status: 'False', reason: 'InvalidSpec', message: 'spec.routes.r.route: bad' });
  });

  it('reports apply failures', () => {
    const s = computeStatus({ generation: 1, now, modules: [m()], applyError: 'Service/filter: quota exceeded' });
    expect(s.phase).toBe('Failed');
    expect(s.conditions?.find((c) => c.type === 'Ready')).toMatchObject({ status: 'False', reason: 'ApplyFailed', message: 'Service/filter: quota exceeded' });
  });
});

describe('computeStatus: condition transitions', () => {
  const t0 = '2026-03-01T00:00:00Z';
  const t1 = '2026-03-02T00:00:00Z';
  const avail = { modules: [m()], deployments: new Map([['filter', deployment(1)]]), pods: new Map([['filter', [running]]]) };
  const waiting = { modules: [m()], deployments: new Map([['filter', deployment(0)]]), pods: new Map<string, V1Pod[]>() };
  const at = (s: ReturnType<typeof computeStatus>, type: string) => s.conditions?.find((c) => c.type === type);

  it('stamps a condition that flips status with the new time, and keeps the time of one that does not', () => {
    const before = computeStatus({ generation: 1, now: t0, ...waiting });
    expect(at(before, 'Ready')).toMatchObject({ status: 'False', reason: 'Progressing', lastTransitionTime: t0 });
    const after = computeStatus({ generation: 1, now: t1, previous: before, ...avail });
    expect(at(after, 'Ready')).toMatchObject({ status: 'True', reason: 'AllAvailable', lastTransitionTime: t1 });
    expect(at(after, 'SpecValid')).toMatchObject({ status: 'True', lastTransitionTime: t0 });
    const back = computeStatus({ generation: 2, now: '2026-03-03T00:00:00Z', previous: after, ...waiting });
    expect(at(back, 'Ready')?.lastTransitionTime).toBe('2026-03-03T00:00:00Z');
    expect(at(back, 'SpecValid')).toMatchObject({ lastTransitionTime: t0, observedGeneration: 2 });
  });

  it('counts stopped and parked modules out of the desired ones', () => {
    const s = computeStatus({ generation: 1, now: t0, modules: [m(), m({ name: 'off', objectName: 'off', desiredStatus: 'stopped', replicas: 0 }), m({ name: 'done', objectName: 'done', parked: true, parkedExitCode: 0, replicas: 0, restartPolicy: 'on-failure' })], deployments: new Map([['filter', deployment(1)]]), pods: new Map([['filter', [running]]]) });
    expect(s).toMatchObject({ phase: 'Ready', modulesDesired: 1, modulesReady: 1 });
    expect(s.modules?.off?.runtimeStatus).toBe('stopped');
    expect(s.modules?.done?.runtimeStatus).toBe('stopped');
  });

  it('is Degraded with ModulesFailing when a module is in back-off, and names it', () => {
    const crash = pod({ phase: 'Running', containerStatuses: [{ name: 'filter', image: '', imageID: '', ready: false, restartCount: 3, state: { waiting: { reason: 'CrashLoopBackOff' } } }] });
    const s = computeStatus({ generation: 1, now: t0, modules: [m()], deployments: new Map([['filter', deployment(0)]]), pods: new Map([['filter', [crash]]]) });
    expect(s).toMatchObject({ phase: 'Degraded', modulesDesired: 1, modulesReady: 0 });
    expect(at(s, 'ModulesAvailable')).toMatchObject({ status: 'False', reason: 'ModulesFailing', message: 'Failing: filter' });
    expect(at(s, 'Ready')).toMatchObject({ status: 'False', reason: 'ModulesFailing', message: '0/1 modules available' });
  });

  it('is Progressing and names the modules it waits for', () => {
    const s = computeStatus({ generation: 1, now: t0, ...waiting });
    expect(s.phase).toBe('Progressing');
    expect(at(s, 'ModulesAvailable')).toMatchObject({ status: 'False', reason: 'Progressing', message: 'Waiting for filter' });
  });

  it('does not count a module whose pod runs but whose Deployment is not available', () => {
    const s = computeStatus({ generation: 1, now: t0, modules: [m()], deployments: new Map([['filter', deployment(0)]]), pods: new Map([['filter', [running]]]) });
    expect(s).toMatchObject({ modulesReady: 0, phase: 'Progressing' });
  });

  it('truncates long messages to 1000 characters', () => {
    const s = computeStatus({ generation: 1, now: t0, modules: [], applyError: 'x'.repeat(1500) });
    const msg = at(s, 'Ready')?.message ?? '';
    expect(msg).toHaveLength(1000);
    expect(msg.endsWith('…')).toBe(true);
    expect(at(computeStatus({ generation: 1, now: t0, modules: [], applyError: 'y'.repeat(1000) }), 'Ready')?.message).toBe('y'.repeat(1000));
  });

  it('keeps the last ModulesAvailable and RoutesApplied conditions when the spec turns invalid', () => {
    // RoutesApplied=True comes only from the edge hub's report of the routes it loaded.
    const loaded = { status: 'True', reason: 'RoutesLoaded', message: 'The edge hub runs the 1 route(s) of the spec' } as const;
    const good = computeStatus({ generation: 1, now: t0, ...avail, routes: 1, routesApplied: loaded });
    const bad = computeStatus({ generation: 2, now: t1, previous: good, specErrors: [{ path: 'a', message: 'b' }, { path: 'c', message: 'd' }], specErrorReason: 'PolicyViolation' });
    expect(bad.conditions?.map((c) => `${c.type}=${c.status}:${c.reason}`)).toEqual(['ModulesAvailable=True:AllAvailable', 'Ready=False:PolicyViolation', 'RoutesApplied=True:RoutesLoaded', 'SpecValid=False:PolicyViolation']);
    expect(at(bad, 'SpecValid')).toMatchObject({ message: 'a: b; c: d', lastTransitionTime: t1 });
    expect(at(bad, 'ModulesAvailable')?.lastTransitionTime).toBe(t0);
  });
});

describe('isAvailable', () => {
  it('needs an observed rollout with an available and an updated replica', () => {
    expect(isAvailable(undefined)).toBe(false);
    expect(isAvailable({ metadata: { name: 'x' } })).toBe(false);
    expect(isAvailable(deployment(1, 3, 3))).toBe(true);
    expect(isAvailable(deployment(1, 3, 4))).toBe(true);
    expect(isAvailable(deployment(0))).toBe(false);
    expect(isAvailable({ metadata: { name: 'x', generation: 1 }, status: { observedGeneration: 1, availableReplicas: 1, updatedReplicas: 0 } })).toBe(false);
    expect(isAvailable({ metadata: { name: 'x' }, status: { availableReplicas: 1, updatedReplicas: 1 } })).toBe(true);
  });
});

describe('moduleStatus: which container and which fields', () => {
  it("reads the module's own container when the pod has several, else the first", () => {
    const sidecar = { name: 'proxy', image: 'p', imageID: '', ready: true, restartCount: 9, state: { running: { startedAt: '2026-01-01T00:00:00Z' as unknown as Date } } };
    const own = { name: 'filter', image: 'f', imageID: '', ready: false, restartCount: 1, state: { terminated: { exitCode: 4, startedAt: '2026-01-01T00:02:00Z' as unknown as Date, finishedAt: '2026-01-01T00:03:00Z' as unknown as Date } } };
    const s = moduleStatus(m(), undefined, [pod({ phase: 'Running', containerStatuses: [sidecar, own] })]);
    expect(s).toMatchObject({ runtimeStatus: 'failed', restartCount: 1, exitCode: 4, lastStartTimeUtc: '2026-01-01T00:02:00Z', lastExitTimeUtc: '2026-01-01T00:03:00Z', description: 'Exited with code 4' });
    expect(moduleStatus(m({ objectName: 'other' }), undefined, [pod({ phase: 'Running', containerStatuses: [sidecar, own] })])).toMatchObject({ runtimeStatus: 'running', restartCount: 9 });
  });

  it('carries version, image, deployment name and ready replicas, and leaves out what it does not know', () => {
    const s = moduleStatus(m({ version: '1.2' }), deployment(1), [running]);
    expect(s).toMatchObject({ version: '1.2', image: 'filter:1', deployment: 'filter', desiredStatus: 'running', readyReplicas: 1 });
    const bare = moduleStatus(m(), undefined, [pod({ phase: 'Pending' })]);
    expect(bare).toEqual({ desiredStatus: 'running', image: 'filter:1', deployment: 'filter', restartCount: 0, runtimeStatus: 'pending', description: 'Pod Pending' });
  });
});
