import { Writable } from 'node:stream';
import { pino } from 'pino';
import { Registry } from 'prom-client';
import { afterEach, describe, expect, it } from 'vitest';
import { FakeClock } from './clock.js';
import { Controller, controllerOwnerKey } from './controller.js';
import type { ReconcileContext, ReconcileResult, Reconciler } from './controller.js';
import { TerminalError } from './errors.js';
import { formatKey } from './keys.js';
import type { ObjectKey } from './keys.js';
import { KubeMetrics } from './metrics.js';

/** Waits for a condition by yielding to the event loop, with a deadline; never a fixed sleep. */
async function until(cond: () => boolean | Promise<boolean>, what: string, timeoutMs = 5000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!(await cond())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setImmediate(r));
  }
}

function deferred<T = void>(): { promise: Promise<T>; resolve: (v: T) => void } {
  let resolve!: (v: T) => void;
  const promise = new Promise<T>((r) => (resolve = r));
  return { promise, resolve };
}

/** A reconciler driven by a per-call script; records calls and concurrency. */
class ScriptedReconciler implements Reconciler {
  readonly calls: string[] = [];
  readonly contexts: ReconcileContext[] = [];
  running = new Set<string>();
  maxConcurrentSameKey = 0;
  constructor(readonly script: (key: ObjectKey, n: number, ctx: ReconcileContext) => Promise<ReconcileResult>) {}
  async reconcile(ctx: ReconcileContext, key: ObjectKey): Promise<ReconcileResult> {
    const k = formatKey(key);
    if (this.running.has(k)) this.maxConcurrentSameKey = 2;
    this.running.add(k);
    this.calls.push(k);
    this.contexts.push(ctx);
    try {
      return await this.script(key, this.calls.filter((c) => c === k).length, ctx);
    } finally {
      this.running.delete(k);
    }
  }
}

const controllers: Controller[] = [];
afterEach(async () => {
  await Promise.all(controllers.splice(0).map((c) => c.stop()));
});

function setup(script: ScriptedReconciler['script'], opts: { workers?: number; reconcileTimeoutMs?: number; clock?: FakeClock } = {}) {
  const registry = new Registry();
  const lines: Record<string, unknown>[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, cb) {
      lines.push(JSON.parse(chunk.toString()) as Record<string, unknown>);
      cb();
    },
  });
  const reconciler = new ScriptedReconciler(script);
  const controller = new Controller({
    name: 'toy',
    reconciler,
    log: pino({ level: 'debug' }, sink),
    metrics: KubeMetrics.forRegistry(registry),
    backoff: { baseDelayMs: 1, maxDelayMs: 4 },
    ...opts,
  });
  controllers.push(controller);
  const value = async (name: string, labels: Record<string, string> = {}): Promise<number> =>
    (await registry.getSingleMetric(name)?.get())?.values
      .filter((v) => Object.entries(labels).every(([k, l]) => v.labels[k] === l))
      .reduce((s, v) => s + v.value, 0) ?? 0;
  return { controller, reconciler, lines, value };
}

const key = (name: string): ObjectKey => ({ namespace: 'ns', name });

describe('Controller', () => {
  it('reconciles each key with a child logger and counts successes', async () => {
    const { controller, reconciler, lines, value } = setup((_k, _n, ctx) => {
      ctx.log.info('Reconciled');
      return Promise.resolve({});
    });
    expect(await controller.start(new AbortController().signal)).toBe(true);
    controller.enqueue(key('a'));
    controller.enqueue(key('b'));
    await until(() => reconciler.calls.length === 2, 'two reconciles');
    expect(reconciler.calls.sort()).toEqual(['ns/a', 'ns/b']);
    const logged = lines.filter((l) => l['msg'] === 'Reconciled');
    expect(logged).toHaveLength(2);
    expect(logged[0]).toMatchObject({ controller: 'toy', namespace: 'ns', reconcileId: expect.any(String) as string });
    expect(new Set(logged.map((l) => l['reconcileId'])).size).toBe(2);
    expect(await value('kedge_controller_reconcile_total', { result: 'success' })).toBe(2);
  });

  it('retries a failing key with backoff until it succeeds, and never reconciles one key concurrently', async () => {
    const { controller, reconciler, value } = setup(
      async (_k, n) => {
        await new Promise((r) => setImmediate(r));
        if (n < 4) throw new Error(`attempt ${n} failed`);
        return {};
      },
      { workers: 4 },
    );
    await controller.start(new AbortController().signal);
    controller.enqueue(key('a'));
    await until(() => reconciler.calls.length === 4, 'four attempts');
    await until(() => reconciler.running.size === 0, 'idle');
    expect(await value('kedge_controller_reconcile_errors_total')).toBe(3);
    expect(await value('kedge_controller_reconcile_total', { result: 'error' })).toBe(3);
    expect(await value('kedge_controller_reconcile_total', { result: 'success' })).toBe(1);
    expect(await value('kedge_workqueue_retries_total', { name: 'toy' })).toBe(3);
    expect(reconciler.maxConcurrentSameKey).toBe(0);
  });

  it('logs and counts a TerminalError (also when wrapped) and never retries it', async () => {
    const { controller, reconciler, lines, value } = setup((k) =>
      Promise.reject(k.name === 'bad' ? new TerminalError('spec is invalid') : new Error('wrapped', { cause: new TerminalError('also invalid') })),
    );
    await controller.start(new AbortController().signal);
    controller.enqueue(key('bad'));
    controller.enqueue(key('wrapped'));
    await until(() => reconciler.calls.length === 2, 'two reconciles');
    await until(() => lines.some((l) => String(l['msg']).includes('terminal')), 'terminal log');
    expect(await value('kedge_controller_reconcile_total', { result: 'terminal_error' })).toBe(2);
    // Prove the absence of a retry: enqueue a sentinel behind them; once it ran, no retry was pending in between.
    controller.enqueue(key('bad'));
    await until(() => reconciler.calls.length === 3, 'explicit re-add runs');
    expect(reconciler.calls).toEqual(['ns/bad', 'ns/wrapped', 'ns/bad']);
  });

  it('recovers from a synchronous throw and a non-Error rejection', async () => {
    const reconciler: Reconciler = {
      reconcile: (_ctx, k) => {
        if (k.name === 'sync') throw new Error('thrown synchronously');
        return Promise.reject(new Error('rejected'));
      },
    };
    const registry = new Registry();
    const controller = new Controller({ name: 'raw', reconciler, log: pino({ level: 'silent' }), metrics: KubeMetrics.forRegistry(registry), backoff: { baseDelayMs: 1000 } });
    controllers.push(controller);
    await controller.start(new AbortController().signal);
    controller.enqueue(key('sync'));
    controller.enqueue(key('async'));
    const errors = async () => (await registry.getSingleMetric('kedge_controller_reconcile_errors_total')?.get())?.values[0]?.value ?? 0;
    await until(async () => (await errors()) === 2, 'two errors counted');
  });

  it('requeues after requeueAfterMs, on the injected clock', async () => {
    const clock = new FakeClock();
    const { controller, reconciler, value } = setup(() => Promise.resolve({ requeueAfterMs: 60_000 }), { clock });
    await controller.start(new AbortController().signal);
    controller.enqueue(key('poll'));
    await until(() => reconciler.calls.length === 1, 'first reconcile');
    await until(() => clock.pending() === 1, 'requeue timer');
    clock.advance(59_999);
    expect(reconciler.calls).toHaveLength(1);
    clock.advance(1);
    await until(() => reconciler.calls.length === 2, 'second reconcile');
    expect(await value('kedge_controller_reconcile_total', { result: 'requeue_after' })).toBeGreaterThanOrEqual(1);
  });

  it('times a reconcile out: aborts its signal, frees the worker, keeps the key locked until it returns, then retries', async () => {
    const clock = new FakeClock();
    const stuck = deferred();
    let aborted = false;
    const { controller, reconciler, value } = setup(
      async (k, n, ctx) => {
        if (k.name === 'slow' && n === 1) {
          ctx.signal.addEventListener('abort', () => (aborted = true));
          await stuck.promise; // ignores its signal
        }
        return {};
      },
      { workers: 1, reconcileTimeoutMs: 1000, clock },
    );
    await controller.start(new AbortController().signal);
    controller.enqueue(key('slow'));
    await until(() => reconciler.calls.length === 1, 'slow started');
    clock.advance(1000);
    expect(aborted).toBe(true);
    // The single worker is free again: another key runs while 'slow' is still stuck.
    controller.enqueue(key('other'));
    await until(() => reconciler.calls.includes('ns/other'), 'other reconciled');
    // The retry of 'slow' fires (1 ms backoff) but must wait: its first attempt still runs.
    clock.advance(10);
    await new Promise((r) => setImmediate(r));
    expect(reconciler.calls.filter((c) => c === 'ns/slow')).toHaveLength(1);
    stuck.resolve();
    await until(() => reconciler.calls.filter((c) => c === 'ns/slow').length === 2, 'slow retried after it returned');
    expect(reconciler.maxConcurrentSameKey).toBe(0);
    expect(await value('kedge_controller_reconcile_total', { result: 'error' })).toBe(1);
  });

  it('stop() aborts in-flight reconciles and waits for them', async () => {
    const { controller, reconciler } = setup(
      (_k, _n, ctx) =>
        new Promise((resolve) => {
          ctx.signal.addEventListener('abort', () => resolve({}));
        }),
    );
    await controller.start(new AbortController().signal);
    controller.enqueue(key('a'));
    await until(() => reconciler.running.size === 1, 'in flight');
    await controller.stop();
    expect(reconciler.running.size).toBe(0);
  });

  it('stops when the start signal aborts', async () => {
    const { controller, reconciler } = setup(() => Promise.resolve({}));
    const ac = new AbortController();
    await controller.start(ac.signal);
    ac.abort();
    await controller.stop();
    controller.enqueue(key('late'));
    await new Promise((r) => setImmediate(r));
    expect(reconciler.calls).toEqual([]);
  });
});

describe('controllerOwnerKey', () => {
  const owned = (refs: { kind: string; apiVersion: string; name: string; controller?: boolean }[]) => ({
    metadata: { namespace: 'ns', name: 'child', ownerReferences: refs.map((r) => ({ uid: 'u', ...r })) },
  });
  it('maps to the controller ownerReference of the right kind and group only', () => {
    expect(controllerOwnerKey(owned([{ kind: 'EdgeDeployment', apiVersion: 'kedge.io/v1alpha1', name: 'd', controller: true }]), 'EdgeDeployment', 'kedge.io')).toEqual({ namespace: 'ns', name: 'd' });
    expect(controllerOwnerKey(owned([{ kind: 'EdgeDeployment', apiVersion: 'kedge.io/v1alpha1', name: 'd' }]), 'EdgeDeployment')).toBeUndefined();
    expect(controllerOwnerKey(owned([{ kind: 'EdgeDeployment', apiVersion: 'other.io/v1', name: 'd', controller: true }]), 'EdgeDeployment', 'kedge.io')).toBeUndefined();
    expect(controllerOwnerKey(owned([{ kind: 'ReplicaSet', apiVersion: 'apps/v1', name: 'r', controller: true }]), 'EdgeDeployment')).toBeUndefined();
  });
});
