import type { V1ContainerStatus, V1Pod } from '@kubernetes/client-node';
import { describe, expect, it } from 'vitest';
import type { ModuleStatusReport } from '@kedge/manifest';
import type { RenderedModule } from './render.js';
import { MAX_RESTART_COUNT, computeStatus, exitWithoutRestart, isAvailable, moduleStatus, type ObservedModule } from './status.js';

// The status a module and a deployment report, field by field and description by description: it is what
// `kubectl get edgedeployment`, `kedge status` and the $edgeAgent reported properties show.

const m = (over: Partial<RenderedModule> = {}): RenderedModule => ({
  name: 'filter', objectName: 'filter', system: false, desiredStatus: 'running', startupOrder: 1, replicas: 1, image: 'filter:1', restartPolicy: 'always', specDigest: 'abc', ...over,
});
const T = (s: string) => s as unknown as Date;
const cs = (over: Partial<V1ContainerStatus>): V1ContainerStatus => ({ name: 'filter', image: 'filter:1', imageID: '', ready: false, restartCount: 0, ...over });
const pod = (status: V1Pod['status'], created = '2026-01-01T00:00:00Z'): V1Pod => ({ metadata: { name: `p-${created}`, creationTimestamp: T(created) }, status });
const inPod = (c: V1ContainerStatus, phase = 'Running'): V1Pod => pod({ phase, containerStatuses: [c] });
const base = { desiredStatus: 'running', image: 'filter:1', deployment: 'filter' } as const;

describe('isAvailable: every condition', () => {
  it('needs a status and metadata', () => {
    expect(isAvailable({ status: { availableReplicas: 1, updatedReplicas: 1 } })).toBe(false);
    expect(isAvailable({ metadata: { name: 'x' }, status: {} })).toBe(false);
  });
  it('needs an available replica, not only an updated one', () => {
    expect(isAvailable({ metadata: { name: 'x', generation: 1 }, status: { observedGeneration: 1, availableReplicas: 0, updatedReplicas: 1 } })).toBe(false);
    expect(isAvailable({ metadata: { name: 'x', generation: 1 }, status: { observedGeneration: 1, updatedReplicas: 1 } })).toBe(false);
    expect(isAvailable({ metadata: { name: 'x', generation: 1 }, status: { observedGeneration: 1, availableReplicas: 1 } })).toBe(false);
  });
  it('needs the current generation observed', () => {
    expect(isAvailable({ metadata: { name: 'x', generation: 2 }, status: { availableReplicas: 1, updatedReplicas: 1 } })).toBe(false);
    expect(isAvailable({ metadata: { name: 'x', generation: 2 }, status: { observedGeneration: 2, availableReplicas: 2, updatedReplicas: 2 } })).toBe(true);
  });
});

describe('moduleStatus: times', () => {
  it('writes Date timestamps as ISO text (the API client hands out Dates)', () => {
    const c = cs({ ready: true, state: { running: { startedAt: new Date('2026-01-01T00:01:00Z') } }, lastState: { terminated: { exitCode: 1, finishedAt: new Date('2026-01-01T00:00:30Z') } } });
    expect(moduleStatus(m(), undefined, [inPod(c)])).toMatchObject({ lastStartTimeUtc: '2026-01-01T00:01:00.000Z', lastExitTimeUtc: '2026-01-01T00:00:30.000Z', description: 'Running since 2026-01-01T00:01:00.000Z' });
  });

  it('takes the start time of the last run from the terminated state when not running, and leaves out unknown times', () => {
    const c = cs({ state: { terminated: { exitCode: 0, startedAt: T('2026-01-01T00:00:10Z') } } });
    expect(moduleStatus(m(), undefined, [inPod(c)])).toStrictEqual({ ...base, restartCount: 0, exitCode: 0, lastStartTimeUtc: '2026-01-01T00:00:10Z', runtimeStatus: 'stopped', description: 'Exited with code 0' });
    const none = cs({ state: { terminated: { exitCode: 2 } } });
    expect(moduleStatus(m(), undefined, [inPod(none)])).toStrictEqual({ ...base, restartCount: 0, exitCode: 2, runtimeStatus: 'failed', description: 'Exited with code 2' });
  });

  it('says "unknown" for a running container without a start time', () => {
    expect(moduleStatus(m(), undefined, [inPod(cs({ ready: true, state: { running: {} } }))]).description).toBe('Running since unknown');
  });
});

describe('moduleStatus: which pod', () => {
  it('takes the newest pod, pods without metadata included, and skips pods being deleted', () => {
    const older = inPod(cs({ ready: true, state: { running: { startedAt: T('2026-01-01T00:00:00Z') } } }));
    const newer = { ...inPod(cs({ state: { terminated: { exitCode: 7 } } })), metadata: { creationTimestamp: T('2026-01-05T00:00:00Z') } };
    const bare: V1Pod = { status: { phase: 'Pending' } };
    expect(moduleStatus(m(), undefined, [older, bare, newer])).toMatchObject({ runtimeStatus: 'failed', exitCode: 7 });
    expect(moduleStatus(m(), undefined, [newer, older])).toMatchObject({ runtimeStatus: 'failed', exitCode: 7 });
    const deleting = { ...newer, metadata: { ...newer.metadata, deletionTimestamp: T('2026-01-05T00:01:00Z') } };
    expect(moduleStatus(m(), undefined, [deleting, older])).toMatchObject({ runtimeStatus: 'running' });
    expect(moduleStatus(m(), undefined, [bare])).toMatchObject({ runtimeStatus: 'pending', description: 'Pod Pending' });
  });

  it('orders by creation time given as Dates', () => {
    const a = { ...inPod(cs({ state: { terminated: { exitCode: 1 } } })), metadata: { creationTimestamp: new Date('2026-01-01T00:00:00Z') } };
    const b = { ...inPod(cs({ state: { terminated: { exitCode: 2 } } })), metadata: { creationTimestamp: new Date('2026-01-02T00:00:00Z') } };
    expect(moduleStatus(m(), undefined, [a, b]).exitCode).toBe(2);
    expect(moduleStatus(m(), undefined, [b, a]).exitCode).toBe(2);
  });

  it('reads a pod without a status as a pod in an unknown state', () => {
    expect(moduleStatus(m(), undefined, [{ metadata: { name: 'p' } }])).toStrictEqual({ ...base, restartCount: 0, runtimeStatus: 'unknown', description: 'Pod state unknown (node unreachable?)' });
    expect(moduleStatus(m(), undefined, [pod({ phase: 'Unknown', message: 'node lost' })]).description).toBe('node lost');
  });
});

describe('moduleStatus: without a pod', () => {
  it('describes each reason exactly', () => {
    expect(moduleStatus(m({ desiredStatus: 'stopped' }), undefined, [])).toStrictEqual({ ...base, desiredStatus: 'stopped', runtimeStatus: 'stopped', description: 'Stopped as desired', restartCount: 0 });
    expect(moduleStatus(m({ waitingFor: ['edgeHub', 'db'] }), undefined, [])).toStrictEqual({ ...base, runtimeStatus: 'pending', description: 'Waiting for edgeHub, db to be available (startupOrder)', restartCount: 0 });
    expect(moduleStatus(m({ waitingFor: [] }), undefined, [])).toStrictEqual({ ...base, runtimeStatus: 'pending', description: 'No pod yet', restartCount: 0 });
    expect(moduleStatus(m(), undefined, [])).toStrictEqual({ ...base, runtimeStatus: 'pending', description: 'No pod yet', restartCount: 0 });
  });

  it('carries the version and ready replicas only when known', () => {
    expect(moduleStatus(m({ version: '2' }), { metadata: { name: 'filter' }, status: { readyReplicas: 0 } }, [])).toStrictEqual({ ...base, version: '2', readyReplicas: 0, runtimeStatus: 'pending', description: 'No pod yet', restartCount: 0 });
    expect(moduleStatus(m(), { metadata: { name: 'filter' } }, [])).toStrictEqual({ ...base, runtimeStatus: 'pending', description: 'No pod yet', restartCount: 0 });
    expect(moduleStatus(m(), { metadata: { name: 'filter' }, status: {} }, [])).toStrictEqual({ ...base, runtimeStatus: 'pending', description: 'No pod yet', restartCount: 0 });
  });
});

describe('moduleStatus: pod phases and container states', () => {
  it('Succeeded and Failed pods', () => {
    expect(moduleStatus(m(), undefined, [pod({ phase: 'Succeeded' })])).toStrictEqual({ ...base, restartCount: 0, runtimeStatus: 'stopped', description: 'Exited' });
    expect(moduleStatus(m(), undefined, [pod({ phase: 'Failed', reason: 'Evicted' })]).description).toBe('Evicted');
    expect(moduleStatus(m(), undefined, [pod({ phase: 'Failed', reason: 'Evicted', message: 'low on memory' })]).description).toBe('low on memory');
    expect(moduleStatus(m(), undefined, [pod({ phase: 'Failed' })])).toStrictEqual({ ...base, restartCount: 0, runtimeStatus: 'failed', description: 'Pod failed' });
  });

  it('a waiting container: back-off below the restart limit, failed at it, pending while it is being created', () => {
    const waiting = (reason: string | undefined, restartCount: number, message?: string) => inPod(cs({ restartCount, state: { waiting: { ...(reason ? { reason } : {}), ...(message ? { message } : {}) } } }));
    expect(moduleStatus(m(), undefined, [waiting('CrashLoopBackOff', MAX_RESTART_COUNT - 1)])).toStrictEqual({ ...base, restartCount: MAX_RESTART_COUNT - 1, runtimeStatus: 'backoff', description: 'Module in back-off: CrashLoopBackOff' });
    expect(moduleStatus(m(), undefined, [waiting('ErrImagePull', 0, 'pull access denied')]).description).toBe('Module in back-off: ErrImagePull (pull access denied)');
    expect(moduleStatus(m(), undefined, [waiting('CrashLoopBackOff', MAX_RESTART_COUNT)])).toStrictEqual({ ...base, restartCount: MAX_RESTART_COUNT, runtimeStatus: 'failed', description: `Failed: restarted ${MAX_RESTART_COUNT} times (CrashLoopBackOff)` });
    expect(moduleStatus(m(), undefined, [waiting('ContainerCreating', 0)])).toStrictEqual({ ...base, restartCount: 0, runtimeStatus: 'pending', description: 'ContainerCreating' });
    expect(moduleStatus(m(), undefined, [waiting('PodInitializing', 0)])).toStrictEqual({ ...base, restartCount: 0, runtimeStatus: 'pending', description: 'PodInitializing' });
    expect(moduleStatus(m(), undefined, [waiting(undefined, 0)])).toStrictEqual({ ...base, restartCount: 0, runtimeStatus: 'pending', description: 'Pod Running' });
  });

  it('a terminated container names its reason', () => {
    expect(moduleStatus(m(), undefined, [inPod(cs({ state: { terminated: { exitCode: 137, reason: 'OOMKilled' } } }))]).description).toBe('Exited with code 137 (OOMKilled)');
  });

  it('a running container that is not ready', () => {
    expect(moduleStatus(m(), undefined, [inPod(cs({ ready: false, state: { running: { startedAt: T('2026-01-01T00:00:00Z') } } }))])).toMatchObject({ runtimeStatus: 'running', description: 'Running, not ready yet' });
  });

  it('an unscheduled pod says why, with what the scheduler gave', () => {
    const sched = (c: Record<string, string>) => moduleStatus(m(), undefined, [pod({ phase: 'Pending', conditions: [{ type: 'PodScheduled', status: 'False', ...c }] })]).description;
    expect(sched({ reason: 'Unschedulable' })).toBe('Not scheduled: Unschedulable');
    expect(sched({})).toBe('Not scheduled: unknown reason');
    expect(moduleStatus(m(), undefined, [pod({ phase: 'Pending', conditions: [{ type: 'PodScheduled', status: 'True' }] })]).description).toBe('Pod Pending');
    expect(moduleStatus(m(), undefined, [pod({ phase: 'Pending', conditions: [{ type: 'Ready', status: 'False', message: 'x' }] })])).toStrictEqual({ ...base, restartCount: 0, runtimeStatus: 'pending', description: 'Pod Pending' });
  });
});

describe('exitWithoutRestart: where the exit is found', () => {
  it('reads the current and the last terminated state of every container of every pod', () => {
    const now = inPod(cs({ state: { terminated: { exitCode: 4 } } }));
    expect(exitWithoutRestart({ restartPolicy: 'never' }, [now])).toBe(4);
    expect(exitWithoutRestart({ restartPolicy: 'never' }, [{ metadata: { name: 'no-status' } }, pod({ phase: 'Pending' }), now])).toBe(4);
    const both = inPod(cs({ state: { terminated: { exitCode: 1 } }, lastState: { terminated: { exitCode: 0 } } }));
    expect(exitWithoutRestart({ restartPolicy: 'on-failure' }, [both])).toBeUndefined();
    expect(exitWithoutRestart({ restartPolicy: 'never' }, [inPod(cs({ state: {} }))])).toBeUndefined();
    expect(exitWithoutRestart({ restartPolicy: 'never' }, [inPod(cs({}))])).toBeUndefined();
    const second = pod({ phase: 'Running', containerStatuses: [cs({ name: 'a', state: { running: {} } }), cs({ name: 'b', state: { terminated: { exitCode: 0 } } })] });
    expect(exitWithoutRestart({ restartPolicy: 'on-unhealthy' }, [second])).toBe(0);
  });
});

describe('moduleStatus: a parked module (exited, kept down by its restartPolicy)', () => {
  const parked = (over: Partial<RenderedModule> = {}) => m({ parked: true, replicas: 0, restartPolicy: 'never', ...over });

  it('keeps the status it was parked with while the spec is the same', () => {
    const prev: ModuleStatusReport = { runtimeStatus: 'failed', restartCount: 4, exitCode: 3, parkedSpec: 'abc', lastExitTimeUtc: '2026-01-01T00:00:00Z' };
    expect(moduleStatus(parked(), undefined, [], prev)).toStrictEqual({
      runtimeStatus: 'failed',
      restartCount: 4,
      exitCode: 3,
      lastExitTimeUtc: '2026-01-01T00:00:00Z',
      description: 'Exited with code 3; not restarted (restartPolicy: never) until the module changes',
      desiredStatus: 'running',
      image: 'filter:1',
      deployment: 'filter',
      parkedSpec: 'abc',
    });
  });

  it('computes a fresh status when the spec changed, from the pods it still sees', () => {
    const prev: ModuleStatusReport = { runtimeStatus: 'failed', restartCount: 4, exitCode: 3, parkedSpec: 'old' };
    const p = inPod(cs({ restartCount: 2, state: { terminated: { exitCode: 5, finishedAt: T('2026-01-02T00:00:00Z') } } }));
    expect(moduleStatus(parked(), undefined, [p], prev)).toStrictEqual({
      ...base,
      restartCount: 2,
      exitCode: 5,
      lastExitTimeUtc: '2026-01-02T00:00:00Z',
      runtimeStatus: 'failed',
      description: 'Exited with code 5; not restarted (restartPolicy: never) until the module changes',
      parkedSpec: 'abc',
    });
  });

  it('takes the exit code from the decision, else from any pod that shows it', () => {
    expect(moduleStatus(parked({ parkedExitCode: 9 }), undefined, [inPod(cs({ state: { terminated: { exitCode: 5 } } }))]).exitCode).toBe(9);
    // The newest pod has no exit, an older one has: the policy's own reading finds it.
    const older = { ...inPod(cs({ state: { terminated: { exitCode: 6 } } })), metadata: { creationTimestamp: T('2025-12-01T00:00:00Z') } };
    const newest = inPod(cs({ state: { waiting: { reason: 'ContainerCreating' } } }));
    expect(moduleStatus(parked(), undefined, [newest, older])).toMatchObject({ exitCode: 6, runtimeStatus: 'failed', restartCount: 0 });
  });

  it('says the exit code is unknown when nothing shows it, and reports the module failed', () => {
    expect(moduleStatus(parked({ restartPolicy: 'on-failure' }), undefined, [])).toStrictEqual({
      ...base,
      restartCount: 0,
      runtimeStatus: 'failed',
      description: 'Exited with code unknown; not restarted (restartPolicy: on-failure) until the module changes',
      parkedSpec: 'abc',
    });
  });
});

describe('computeStatus: every condition, exactly', () => {
  const now = '2026-04-01T00:00:00Z';
  const ready = (name: string): ObservedModule => ({ name, desiredStatus: 'running', available: true, status: { runtimeStatus: 'running', restartCount: 0 } });
  const down = (name: string, runtimeStatus: ModuleStatusReport['runtimeStatus']): ObservedModule => ({ name, desiredStatus: 'running', available: false, status: { runtimeStatus, restartCount: 0 } });
  const cond = (s: ReturnType<typeof computeStatus>) => Object.fromEntries((s.conditions ?? []).map((c) => [c.type, [c.status, c.reason, c.message]]));

  it('with every module available', () => {
    const s = computeStatus({ generation: 4, now, observed: [ready('a'), ready('b')] });
    // modules is a null-prototype record (module names are user keys): compared as a plain copy.
    expect({ ...s, modules: { ...s.modules } }).toStrictEqual({
      observedGeneration: 4,
      phase: 'Ready',
      modulesDesired: 2,
      modulesReady: 2,
      conditions: [
        { type: 'ModulesAvailable', status: 'True', reason: 'AllAvailable', message: '2/2 modules available', observedGeneration: 4, lastTransitionTime: now },
        { type: 'Ready', status: 'True', reason: 'AllAvailable', message: '2/2 modules available', observedGeneration: 4, lastTransitionTime: now },
        { type: 'RoutesApplied', status: 'Unknown', reason: 'EdgeHubNotReported', message: 'The edge hub has not reported the routes it loaded', observedGeneration: 4, lastTransitionTime: now },
        { type: 'SpecValid', status: 'True', reason: 'Valid', message: 'The spec is valid', observedGeneration: 4, lastTransitionTime: now },
      ],
      modules: { a: { runtimeStatus: 'running', restartCount: 0 }, b: { runtimeStatus: 'running', restartCount: 0 } },
    });
  });

  it('with no modules at all: ready, 0 of 0', () => {
    expect(computeStatus({ generation: 1, now })).toMatchObject({ phase: 'Ready', modulesDesired: 0, modulesReady: 0 });
  });

  it('counts a failed module as failing, and names every one not ready', () => {
    const s = computeStatus({ generation: 1, now, observed: [ready('a'), down('b', 'failed'), down('c', 'pending'), down('d', 'backoff')] });
    expect(s).toMatchObject({ phase: 'Degraded', modulesDesired: 4, modulesReady: 1 });
    expect(cond(s)).toMatchObject({ ModulesAvailable: ['False', 'ModulesFailing', 'Failing: b, d'], Ready: ['False', 'ModulesFailing', '1/4 modules available'] });
    const waiting = computeStatus({ generation: 1, now, observed: [down('c', 'pending'), down('e', 'unknown')] });
    expect(cond(waiting)).toMatchObject({ ModulesAvailable: ['False', 'Progressing', 'Waiting for c, e'], Ready: ['False', 'Progressing', '0/2 modules available'] });
    expect(waiting.phase).toBe('Progressing');
  });

  it('leaves stopped and parked modules out of the count, running or not', () => {
    const s = computeStatus({ generation: 1, now, observed: [ready('a'), { ...down('off', 'failed'), desiredStatus: 'stopped' }, { ...down('done', 'failed'), parked: true }] });
    expect(s).toMatchObject({ phase: 'Ready', modulesDesired: 1, modulesReady: 1 });
    expect(Object.keys(s.modules ?? {})).toEqual(['a', 'off', 'done']);
  });

  it('uses the routes condition the edge hub reported', () => {
    const s = computeStatus({ generation: 1, now, routesApplied: { status: 'False', reason: 'RoutesRejected', message: 'bad route' } });
    expect(cond(s).RoutesApplied).toEqual(['False', 'RoutesRejected', 'bad route']);
  });

  it('on an apply error: RoutesApplied unknown, ModulesAvailable by the count, Ready false, phase Failed', () => {
    const ok = computeStatus({ generation: 1, now, observed: [ready('a')], applyError: 'quota' });
    expect(ok.phase).toBe('Failed');
    expect(cond(ok)).toEqual({
      RoutesApplied: ['Unknown', 'ApplyFailed', 'Not all objects were applied'],
      ModulesAvailable: ['True', 'ApplyFailed', 'quota'],
      Ready: ['False', 'ApplyFailed', 'quota'],
      SpecValid: ['True', 'Valid', 'The spec is valid'],
    });
    expect(cond(computeStatus({ generation: 1, now, observed: [down('a', 'pending')], applyError: 'quota' })).ModulesAvailable).toEqual(['False', 'ApplyFailed', 'quota']);
  });

  it('reads the previous module status by own key, so a module named like an Object method is not confused', () => {
    const prevModules = JSON.parse('{"filter":{"runtimeStatus":"failed","restartCount":1,"exitCode":3,"parkedSpec":"abc"}}') as Record<string, ModuleStatusReport>;
    const s = computeStatus({ generation: 1, now, previous: { modules: prevModules }, modules: [m({ parked: true, replicas: 0, restartPolicy: 'never' }), m({ name: 'constructor', objectName: 'constructor' })] });
    expect(s.modules?.filter).toMatchObject({ exitCode: 3, runtimeStatus: 'failed' });
    expect(s.modules?.constructor).toMatchObject({ runtimeStatus: 'pending', description: 'No pod yet' });
  });

  it('with an invalid spec and no previous status: only the two conditions, no counts, no modules', () => {
    const s = computeStatus({ generation: 2, now, specErrors: [{ path: 'spec.x', message: 'bad' }] });
    expect(s).toStrictEqual({
      observedGeneration: 2,
      phase: 'Invalid',
      conditions: [
        { type: 'Ready', status: 'False', reason: 'InvalidSpec', message: 'The spec is not valid; the last good objects keep running', observedGeneration: 2, lastTransitionTime: now },
        { type: 'SpecValid', status: 'False', reason: 'InvalidSpec', message: 'spec.x: bad', observedGeneration: 2, lastTransitionTime: now },
      ],
    });
  });

  it('with an invalid spec keeps the previous counts and modules, and only the module and route conditions', () => {
    const prev = computeStatus({ generation: 1, now, observed: [ready('a')] });
    const s = computeStatus({ generation: 2, now: '2026-04-02T00:00:00Z', previous: prev, specErrors: [{ path: 'p', message: 'm' }] });
    expect(s).toMatchObject({ modulesDesired: 1, modulesReady: 1, modules: prev.modules });
    expect(s.conditions?.map((c) => c.type)).toEqual(['ModulesAvailable', 'Ready', 'RoutesApplied', 'SpecValid']);
    // Ready was True and is now False: a new transition time; ModulesAvailable is kept as it was.
    expect(s.conditions?.find((c) => c.type === 'Ready')?.lastTransitionTime).toBe('2026-04-02T00:00:00Z');
    expect(s.conditions?.find((c) => c.type === 'ModulesAvailable')).toEqual(prev.conditions?.find((c) => c.type === 'ModulesAvailable'));
    const noConditions = computeStatus({ generation: 2, now, previous: { modulesDesired: 0 }, specErrors: [{ path: 'p', message: 'm' }] });
    expect(noConditions).toMatchObject({ modulesDesired: 0 });
    expect(noConditions.conditions).toHaveLength(2);
    expect('modulesReady' in noConditions).toBe(false);
  });

  it('treats an empty list of spec errors as a valid spec', () => {
    expect(computeStatus({ generation: 1, now, specErrors: [] }).phase).toBe('Ready');
  });
});
