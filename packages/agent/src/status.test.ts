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
