/**
 * The `ModuleRuntime` contract suite: every runtime (Kubernetes on the real control plane, local processes) runs it,
 * so that twin sync, reported properties and direct methods can rely on one behaviour. Like routing's
 * `describeMessageStore` it receives the test functions instead of importing vitest, so that `@kedge/agent` never
 * loads a test runner in production; assertions use `node:assert/strict`.
 */
import assert from 'node:assert/strict';
import { EdgeDeploymentSpecSchema, type EdgeDeploymentSpecInput, type ModuleSpec, type ModuleStatusReport } from '@kedge/manifest';
import { UnknownModuleError, type ModuleRuntime } from './module-runtime.js';

/** The test functions the suite registers its cases with (vitest's `describe` and `it` fit). */
export interface SuiteApi {
  describe(name: string, fn: () => void): void;
  it(name: string, fn: () => Promise<void>, timeoutMs?: number): void;
}

/** How a test module behaves: stays up (printing `lines` first), or exits with `exitCode` every time it starts. */
export type ModuleBehaviour = { readonly kind: 'stay-up'; readonly lines?: readonly string[] } | { readonly kind: 'exit'; readonly exitCode: number };

/** One runtime under test, started, for one case. */
export interface ModuleRuntimeHarness {
  readonly runtime: ModuleRuntime;
  /**
   * A module that behaves as asked on this runtime (a process form running `node`, or a kwok-simulated pod), with
   * `overrides` (version, restartPolicy, startupOrder, status) applied.
   */
  module(behaviour: ModuleBehaviour, overrides?: Partial<Pick<ModuleSpec, 'version' | 'restartPolicy' | 'startupOrder' | 'status'>>): ModuleSpec;
  /** For runtimes whose modules cannot print (kwok pods): makes module `name`'s current log `lines`. */
  writeLogs?(name: string, lines: readonly string[]): Promise<void>;
  /** Stops what the harness started (the runtime included). */
  cleanup(): Promise<void>;
}

export type ModuleRuntimeFactory = () => Promise<ModuleRuntimeHarness>;

/** Waits (in real time, without sleeping blindly) until `fn` stops throwing. */
async function until<T>(fn: () => T | Promise<T>, what: string, timeoutMs: number): Promise<T> {
  const end = Date.now() + timeoutMs;
  let last: unknown;
  for (let pause = 20; ; pause = Math.min(pause * 2, 250)) {
    try {
      return await fn();
    } catch (e) {
      last = e;
    }
    if (Date.now() > end) throw new Error(`${what}: not within ${timeoutMs} ms: ${last instanceof Error ? last.message : String(last)}`, { cause: last });
    await new Promise((r) => setTimeout(r, pause));
  }
}

const spec = (modules: Record<string, ModuleSpec>): EdgeDeploymentSpecInput => EdgeDeploymentSpecSchema.parse({ deviceId: 'contract', modules });

/**
 * Registers the contract cases for one runtime. `timeoutMs` bounds each wait for the runtime to act (a control
 * plane is slower than a child process).
 */
export function describeModuleRuntime(name: string, factory: ModuleRuntimeFactory, api: SuiteApi, opts: { timeoutMs?: number } = {}): void {
  const timeoutMs = opts.timeoutMs ?? 20_000;
  const caseTimeout = timeoutMs * 4;
  const statusOf = (rt: ModuleRuntime, m: string): ModuleStatusReport => {
    const st = rt.snapshot().status?.modules?.[m];
    assert.ok(st, `no status for ${m} yet`);
    return st;
  };
  const withHarness = (fn: (h: ModuleRuntimeHarness) => Promise<void>) => async () => {
    const h = await factory();
    try {
      await fn(h);
    } finally {
      await h.cleanup();
    }
  };

  api.describe(`ModuleRuntime contract: ${name}`, () => {
    api.it('runs an applied module and reports it running with its version, start time and generation', withHarness(async (h) => {
      const rt = h.runtime;
      assert.equal(rt.hasSynced(), true);
      let changes = 0;
      const off = rt.onChange(() => changes++);
      const { generation } = await rt.apply(EdgeDeploymentSpecSchema.parse(spec({ sensor: h.module({ kind: 'stay-up' }, { version: '1.2' }) })));
      assert.ok(generation >= 1);
      const st = await until(() => {
        const s = statusOf(rt, 'sensor');
        assert.equal(s.runtimeStatus, 'running', s.description);
        assert.ok((rt.snapshot().status?.observedGeneration ?? 0) >= generation);
        return s;
      }, 'sensor running', timeoutMs);
      assert.equal(st.version, '1.2');
      assert.equal(st.restartCount, 0);
      assert.ok(st.lastStartTimeUtc && Number.isFinite(Date.parse(st.lastStartTimeUtc)), 'lastStartTimeUtc is a time');
      assert.equal(rt.snapshot().generation, generation);
      assert.deepEqual(await rt.moduleNames(), ['sensor']);
      assert.ok(changes > 0, 'onChange was called');
      off();
    }), caseTimeout);

    api.it('keeps a module with status "stopped" stopped, and removes a module no longer in the deployment', withHarness(async (h) => {
      const rt = h.runtime;
      await rt.apply(EdgeDeploymentSpecSchema.parse(spec({ a: h.module({ kind: 'stay-up' }), b: h.module({ kind: 'stay-up' }, { status: 'stopped' }) })));
      await until(() => {
        assert.equal(statusOf(rt, 'a').runtimeStatus, 'running');
        assert.equal(statusOf(rt, 'b').runtimeStatus, 'stopped');
      }, 'a running, b stopped', timeoutMs);
      const { generation } = await rt.apply(EdgeDeploymentSpecSchema.parse(spec({ b: h.module({ kind: 'stay-up' }, { status: 'stopped' }) })));
      await until(() => {
        assert.ok((rt.snapshot().status?.observedGeneration ?? 0) >= generation);
        assert.equal(rt.snapshot().status?.modules?.['a'], undefined);
      }, 'a removed', timeoutMs);
      assert.deepEqual(await rt.moduleNames(), ['b']);
    }), caseTimeout);

    api.it('backs off a module that keeps failing under restartPolicy "always", with its exit code', withHarness(async (h) => {
      const rt = h.runtime;
      await rt.apply(EdgeDeploymentSpecSchema.parse(spec({ crasher: h.module({ kind: 'exit', exitCode: 3 }, { restartPolicy: 'always' }) })));
      const st = await until(() => {
        const s = statusOf(rt, 'crasher');
        assert.equal(s.runtimeStatus, 'backoff', s.description);
        assert.equal(s.exitCode, 3);
        return s;
      }, 'crasher in back-off', timeoutMs);
      assert.ok(st.lastExitTimeUtc === undefined || Number.isFinite(Date.parse(st.lastExitTimeUtc)));
    }), caseTimeout);

    api.it('keeps a module down after it exits under restartPolicy "never" (failed, with its exit code)', withHarness(async (h) => {
      const rt = h.runtime;
      await rt.apply(EdgeDeploymentSpecSchema.parse(spec({ once: h.module({ kind: 'exit', exitCode: 4 }, { restartPolicy: 'never' }) })));
      await until(() => {
        const s = statusOf(rt, 'once');
        assert.equal(s.runtimeStatus, 'failed', s.description);
        assert.equal(s.exitCode, 4);
      }, 'once failed and parked', timeoutMs);
    }), caseTimeout);

    api.it('holds back a module until the modules with a lower startupOrder are available', withHarness(async (h) => {
      const rt = h.runtime;
      await rt.apply(EdgeDeploymentSpecSchema.parse(spec({
        first: h.module({ kind: 'exit', exitCode: 1 }, { startupOrder: 1 }),
        second: h.module({ kind: 'stay-up' }, { startupOrder: 2 }),
      })));
      await until(() => {
        assert.equal(statusOf(rt, 'first').runtimeStatus, 'backoff');
        const s = statusOf(rt, 'second');
        assert.equal(s.runtimeStatus, 'pending');
        assert.match(s.description ?? '', /Waiting for first/);
      }, 'second waits for first', timeoutMs);
      // Once `first` comes up, `second` starts.
      await rt.apply(EdgeDeploymentSpecSchema.parse(spec({
        first: h.module({ kind: 'stay-up' }, { startupOrder: 1 }),
        second: h.module({ kind: 'stay-up' }, { startupOrder: 2 }),
      })));
      await until(() => {
        assert.equal(statusOf(rt, 'first').runtimeStatus, 'running');
        assert.equal(statusOf(rt, 'second').runtimeStatus, 'running');
      }, 'both running in order', timeoutMs);
    }), caseTimeout);

    api.it('restarts a module on request and refuses modules not deployed', withHarness(async (h) => {
      const rt = h.runtime;
      await rt.apply(EdgeDeploymentSpecSchema.parse(spec({ sensor: h.module({ kind: 'stay-up' }) })));
      await until(() => assert.equal(statusOf(rt, 'sensor').runtimeStatus, 'running'), 'sensor running', timeoutMs);
      await rt.restart('sensor');
      await until(() => assert.equal(statusOf(rt, 'sensor').runtimeStatus, 'running'), 'sensor running again', timeoutMs);
      await assert.rejects(rt.restart('nope'), UnknownModuleError);
      await assert.rejects(rt.logs('nope', {}), UnknownModuleError);
    }), caseTimeout);

    api.it("returns a module's log lines, oldest first, with tail", withHarness(async (h) => {
      const rt = h.runtime;
      const lines = ['<6> starting', '<4> temperature high', '<6> temperature 21.5'];
      await rt.apply(EdgeDeploymentSpecSchema.parse(spec({ talker: h.module({ kind: 'stay-up', lines }) })));
      await until(() => assert.equal(statusOf(rt, 'talker').runtimeStatus, 'running'), 'talker running', timeoutMs);
      await h.writeLogs?.('talker', lines);
      await until(async () => assert.deepEqual((await rt.logs('talker', {})).map((l) => l.text), lines), 'all lines', timeoutMs);
      assert.deepEqual((await rt.logs('talker', { tail: 2 })).map((l) => l.text), lines.slice(1));
    }), caseTimeout);
  });
}
