import { hostname } from 'node:os';
import type { Logger } from 'pino';
import { LeaderElector, LeadershipLostError, type ClusterConfig, type KubeClient } from '@kedge/kube';
import type { LeaderHook } from './start-agent.js';

export interface LeaseLeaderOptions {
  readonly namespace: string;
  /** @default 'kedge-agent' */
  readonly lease?: string;
  /** @default $POD_NAME, else the host name */
  readonly identity?: string;
  /** client-go defaults: 15 s, 10 s, 2 s. */
  readonly leaseDurationMs?: number;
  readonly renewDeadlineMs?: number;
  readonly retryPeriodMs?: number;
  readonly log: Logger;
}

/** A {@link LeaderHook} backed by a Lease, plus what the composition root needs around it. */
export interface LeaseLeader extends LeaderHook {
  readonly elector: LeaderElector;
  /** Ends the term: waits for it and releases the lease (call after the agent stopped). */
  stop(): Promise<void>;
}

/**
 * Leader election for agent replicas (`startAgent({ leader })`): one term of a {@link LeaderElector} on Lease
 * `kedge-agent` in the device namespace. `acquire` resolves when this replica leads; `lost` aborts when leadership
 * is lost (the agent then stops and its process exits, to come back as a standby). Graceful stop releases the lease
 * so a standby takes over at once.
 */
export function leaseLeader(config: ClusterConfig, opts: LeaseLeaderOptions): LeaseLeader {
  const stopCtl = new AbortController();
  const lostCtl = new AbortController();
  let leading: () => void = () => undefined;
  const acquired = new Promise<void>((resolve) => {
    leading = resolve;
  });
  let endTerm: () => void = () => undefined;
  const termEnded = new Promise<void>((resolve) => {
    endTerm = resolve;
  });
  const elector = new LeaderElector(config, {
    namespace: opts.namespace,
    name: opts.lease ?? 'kedge-agent',
    identity: opts.identity ?? process.env['POD_NAME'] ?? hostname(),
    log: opts.log.child({ component: 'leader-election' }),
    ...(opts.leaseDurationMs !== undefined ? { leaseDurationMs: opts.leaseDurationMs } : {}),
    ...(opts.renewDeadlineMs !== undefined ? { renewDeadlineMs: opts.renewDeadlineMs } : {}),
    ...(opts.retryPeriodMs !== undefined ? { retryPeriodMs: opts.retryPeriodMs } : {}),
    onStartedLeading: async (signal) => {
      signal.addEventListener('abort', () => lostCtl.abort(signal.reason), { once: true });
      leading();
      // The term lasts until the agent is done (graceful stop) or leadership is lost.
      await Promise.race([termEnded, new Promise<void>((resolve) => signal.addEventListener('abort', () => resolve(), { once: true }))]);
    },
  });
  const term = elector.run(stopCtl.signal);
  return {
    elector,
    lost: lostCtl.signal,
    // A standby is ready once it has read the Lease: it can reach the apiserver and take over when the term ends.
    candidateReady: () => elector.leader !== undefined,
    acquire: (signal) =>
      Promise.race([
        acquired,
        new Promise<void>((_resolve, reject) => {
          const onAbort = (): void => reject(new LeadershipLostError('Stopped before leading'));
          if (signal.aborted) onAbort();
          else signal.addEventListener('abort', onAbort, { once: true });
        }),
      ]),
    async stop() {
      stopCtl.abort();
      endTerm();
      await term;
    },
  };
}

/**
 * `kube` with a fencing check before every write: a replica that is not (or no longer) the leader cannot apply,
 * write status or delete, even if a stale reconcile is still running. Reads are not fenced.
 */
export function fencedKubeClient(kube: KubeClient, isLeader: () => boolean): KubeClient {
  const fence = (): void => {
    if (!isLeader()) throw new LeadershipLostError('Not the leader: write refused (fencing)');
  };
  return {
    async apply(obj, opts) {
      fence();
      return kube.apply(obj, opts);
    },
    async applyStatus(obj, opts) {
      fence();
      return kube.applyStatus(obj, opts);
    },
    async delete(apiVersion, kind, namespace, name, opts) {
      fence();
      return kube.delete(apiVersion, kind, namespace, name, opts);
    },
    get: (apiVersion, kind, namespace, name, opts) => kube.get(apiVersion, kind, namespace, name, opts),
    list: (apiVersion, kind, namespace, opts) => kube.list(apiVersion, kind, namespace, opts),
  };
}
