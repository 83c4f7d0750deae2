import type { V1ContainerStatus, V1Pod } from '@kubernetes/client-node';
import { describe, expect, it } from 'vitest';
import type { ModuleStatusReport } from '@kedge/manifest';
import type { RenderedModule } from './render.js';
import { computeStatus, moduleStatus } from './status.js';

// Issue 15: status behaviours the survivors of the full mutation run showed unpinned (a file of its own, like
// render-survivors.test.ts).

const m = (over: Partial<RenderedModule> = {}): RenderedModule => ({
  name: 'filter', objectName: 'filter', system: false, desiredStatus: 'running', startupOrder: 1, replicas: 1, image: 'filter:1', restartPolicy: 'always', specDigest: 'abc', ...over,
});
const T = (s: string) => s as unknown as Date;
const cs = (over: Partial<V1ContainerStatus>): V1ContainerStatus => ({ name: 'filter', image: 'filter:1', imageID: '', ready: false, restartCount: 0, ...over });
const pod = (status: V1Pod['status'], created = '2026-01-01T00:00:00Z'): V1Pod => ({ metadata: { name: `p-${created}`, creationTimestamp: T(created) }, status });
const inPod = (c: V1ContainerStatus, phase = 'Running'): V1Pod => pod({ phase, containerStatuses: [c] });
const base = { desiredStatus: 'running', image: 'filter:1', deployment: 'filter' } as const;

describe('status: what the survivors showed unpinned', () => {
  it('reads a container status without any state as a pod still starting', () => {
    expect(moduleStatus(m(), undefined, [inPod(cs({}))])).toStrictEqual({ ...base, restartCount: 0, runtimeStatus: 'pending', description: 'Pod Running' });
  });

  it('keeps a parked status without an exit code, finding none in the pods', () => {
    const prev: ModuleStatusReport = { runtimeStatus: 'failed', restartCount: 1, parkedSpec: 'abc' };
    expect(moduleStatus(m({ parked: true, replicas: 0, restartPolicy: 'never' }), undefined, [], prev)).toMatchObject({ runtimeStatus: 'failed', restartCount: 1, description: 'Exited with code unknown; not restarted (restartPolicy: never) until the module changes' });
  });

  it('does not count a module ready whose Deployment is available while its newest pod has exited', () => {
    const available = { metadata: { name: 'filter', generation: 1 }, status: { observedGeneration: 1, availableReplicas: 1, updatedReplicas: 1 } };
    const s = computeStatus({ generation: 1, now: '2026-05-01T00:00:00Z', modules: [m()], deployments: new Map([['filter', available]]), pods: new Map([['filter', [inPod(cs({ state: { terminated: { exitCode: 1 } } }))]]]) });
    expect(s).toMatchObject({ modulesReady: 0, phase: 'Degraded' });
  });
});
