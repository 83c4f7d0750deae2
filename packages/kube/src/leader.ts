import type { Logger } from 'pino';
import { systemClock } from './clock.js';
import type { Clock, TimerHandle } from './clock.js';
import type { ClusterConfig } from './config.js';
import { isAlreadyExists, isConflict, isNotFound, toKubeApiError } from './errors.js';
import { KubeTransport } from './transport.js';
import type { ObjectMeta } from './types.js';

/** `coordination.k8s.io/v1` Lease, the fields leader election uses. */
export interface Lease {
  apiVersion: 'coordination.k8s.io/v1';
  kind: 'Lease';
  metadata: ObjectMeta;
  spec?: {
    holderIdentity?: string;
    leaseDurationSeconds?: number;
    acquireTime?: string;
    renewTime?: string;
    leaseTransitions?: number;
  };
}

export interface LeaderElectionOptions {
  /** Namespace and name of the Lease all candidates compete for. */
  readonly namespace: string;
  readonly name: string;
  /** This candidate's identity, unique among the candidates (the pod name is usual). */
  readonly identity: string;
  /** How long a standby waits, from the last change it saw, before taking over a silent leader's lease. @default 15_000 */
  readonly leaseDurationMs?: number;
  /** How long the leader keeps leading without a successful renew; must be < leaseDurationMs. @default 10_000 */
  readonly renewDeadlineMs?: number;
  /** Pause between attempts to acquire or renew (jittered ×1.2 while acquiring). @default 2_000 */
  readonly retryPeriodMs?: number;
  /** Give the lease up when stopped gracefully, so a standby takes over at once. @default true */
  readonly releaseOnStop?: boolean;
  readonly log: Logger;
  /** Monotonic time for every expiry decision (never the wall clock). @default systemClock */
  readonly clock?: Clock;
  /**
   * Called when this candidate becomes the leader. `signal` aborts when leadership ends (lost, or stopping); the
   * work must stop writing by then. The term ends (and the lease is released) only after the returned promise
   * settles.
   */
  readonly onStartedLeading: (signal: AbortSignal) => void | Promise<void>;
  /** Called after each term, once the leader's work has settled. */
  readonly onStoppedLeading?: () => void;
  /** Called when the lease holder this candidate observes changes (`''` when nobody holds it). */
  readonly onNewLeader?: (identity: string) => void;
}

/** Leadership ended: the reason of the leading signal. */
export class LeadershipLostError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'LeadershipLostError';
  }
}

const LEASES = 'coordination.k8s.io/v1';

/** `metav1.MicroTime`: RFC 3339 with exactly six fractional digits. */
function microTime(d: Date): string {
  return d.toISOString().replace(/\.(\d{3})Z$/, '.$1000Z');
}

interface Observed {
  readonly lease: Lease;
  /** clock.now() when this record was first seen: expiry counts from here, not from the holder's renewTime. */
  readonly at: number;
  readonly fingerprint: string;
}

type Attempt = 'leader' | 'other' | 'error';

/**
 * Lease-based leader election with client-go's semantics (`tools/leaderelection`): candidates compete for one
 * `coordination.k8s.io/v1` Lease; the holder renews it every `retryPeriodMs`; a standby takes it over only after
 * seeing the same record, unchanged, for the record's `leaseDurationSeconds` (measured on its own monotonic clock,
 * so wall-clock skew between nodes does not matter); every write is an optimistic-concurrency update
 * (`resourceVersion`), so two candidates can never both win one round.
 *
 * Never two leaders at once: the leader stops leading `renewDeadlineMs` after its last successful renew was *sent*;
 * a standby cannot take over before `leaseDurationMs` after it *saw* that renew, which is later. The gap
 * (`leaseDurationMs - renewDeadlineMs`, 5 s by default) absorbs scheduling delays and clock-rate differences.
 * {@link isLeader} is the fencing check to call right before each write.
 */
export class LeaderElector {
  readonly #api: KubeTransport;
  readonly #opts: LeaderElectionOptions;
  readonly #clock: Clock;
  readonly #log: Logger;
  readonly #leaseDurationMs: number;
  readonly #renewDeadlineMs: number;
  readonly #retryPeriodMs: number;
  #observed: Observed | undefined;
  /** clock.now() when the last successful acquire/renew was sent. */
  #renewSentAt = Number.NEGATIVE_INFINITY;
  #leading: AbortController | undefined;
  #reportedLeader: string | undefined;

  constructor(config: ClusterConfig, opts: LeaderElectionOptions) {
    this.#api = KubeTransport.for(config);
    this.#opts = opts;
    this.#clock = opts.clock ?? systemClock;
    this.#log = opts.log.child({ lease: `${opts.namespace}/${opts.name}`, identity: opts.identity });
    this.#leaseDurationMs = opts.leaseDurationMs ?? 15_000;
    this.#renewDeadlineMs = opts.renewDeadlineMs ?? 10_000;
    this.#retryPeriodMs = opts.retryPeriodMs ?? 2_000;
    if (!(this.#renewDeadlineMs < this.#leaseDurationMs)) throw new RangeError('renewDeadlineMs must be less than leaseDurationMs');
    if (!(this.#retryPeriodMs * 1.2 < this.#renewDeadlineMs)) throw new RangeError('retryPeriodMs × 1.2 must be less than renewDeadlineMs');
    if (opts.identity === '') throw new RangeError('identity must not be empty');
  }

  /** The holder this candidate last observed (`''` for nobody, undefined before the first read). */
  get leader(): string | undefined {
    return this.#observed?.lease.spec?.holderIdentity;
  }

  /**
   * The fencing check: true only while this candidate leads and its last renew is recent enough that no standby
   * can have taken over. Call it right before every write made as the leader.
   */
  isLeader(): boolean {
    return (
      this.#leading !== undefined &&
      !this.#leading.signal.aborted &&
      this.#observed?.lease.spec?.holderIdentity === this.#opts.identity &&
      this.#clock.now() - this.#renewSentAt < this.#renewDeadlineMs
    );
  }

  /**
   * One term: campaigns until it holds the lease (or `signal` aborts), leads until leadership is lost or `signal`
   * aborts, then waits for the leader's work, releases the lease when stopping gracefully and resolves. Call it
   * again to campaign for another term.
   */
  async run(signal: AbortSignal): Promise<void> {
    this.#log.info('Campaigning for leadership');
    while (!signal.aborted) {
      if ((await this.#tryAcquireOrRenew(signal, this.#retryPeriodMs * 4)) === 'leader') break;
      await this.#sleep(this.#retryPeriodMs * (1 + Math.random() * 0.2), signal);
    }
    if (signal.aborted) return;
    const lead = new AbortController();
    this.#leading = lead;
    this.#log.info('Became the leader');
    let deadline = this.#armDeadline(lead);
    const work = Promise.resolve()
      .then(() => this.#opts.onStartedLeading(lead.signal))
      .catch((err: unknown) => this.#log.error({ err }, 'Leader work failed'));
    const both = AbortSignal.any([signal, lead.signal]);
    while (!both.aborted) {
      await this.#sleep(this.#retryPeriodMs, both);
      if (both.aborted) break;
      // A renew must land before the deadline: a later success would not make this term safe again.
      const remaining = this.#renewSentAt + this.#renewDeadlineMs - this.#clock.now();
      const r = await this.#tryAcquireOrRenew(both, Math.max(1, Math.floor(remaining)));
      if (r === 'leader') {
        this.#clock.clearTimeout(deadline);
        deadline = this.#armDeadline(lead);
      } else if (r === 'other') {
        lead.abort(new LeadershipLostError(`The lease is held by ${this.leader ?? 'someone else'}`));
      }
    }
    this.#clock.clearTimeout(deadline);
    if (!lead.signal.aborted) lead.abort(new LeadershipLostError('Stopping'));
    const reason = lead.signal.reason as Error;
    if (!signal.aborted) this.#log.warn({ reason: reason.message }, 'Lost leadership');
    await work;
    this.#leading = undefined;
    if (signal.aborted && (this.#opts.releaseOnStop ?? true)) await this.#release();
    this.#opts.onStoppedLeading?.();
  }

  /** Aborts `lead` when the renew deadline passes without a successful renew. */
  #armDeadline(lead: AbortController): TimerHandle {
    const ms = Math.max(0, this.#renewSentAt + this.#renewDeadlineMs - this.#clock.now());
    return this.#clock.setTimeout(() => lead.abort(new LeadershipLostError(`No successful renew within ${this.#renewDeadlineMs} ms`)), ms);
  }

  /** client-go `tryAcquireOrRenew`: one read and at most one write. */
  async #tryAcquireOrRenew(signal: AbortSignal, timeoutMs: number): Promise<Attempt> {
    const sentAt = this.#clock.now();
    const now = microTime(new Date());
    const me = this.#opts.identity;
    const path = `/apis/${LEASES}/namespaces/${encodeURIComponent(this.#opts.namespace)}/leases/${encodeURIComponent(this.#opts.name)}`;
    const opts = { timeoutMs, signal };
    try {
      let current: Lease | undefined;
      try {
        current = (await this.#api.request('GET', path, opts)) as Lease;
      } catch (e) {
        if (!isNotFound(toKubeApiError(e))) throw e;
      }
      if (!current) {
        const created = (await this.#api.request('POST', `/apis/${LEASES}/namespaces/${encodeURIComponent(this.#opts.namespace)}/leases`, {
          ...opts,
          body: this.#lease({ holderIdentity: me, leaseDurationSeconds: Math.ceil(this.#leaseDurationMs / 1000), acquireTime: now, renewTime: now, leaseTransitions: 0 }),
        })) as Lease;
        this.#observe(created);
        this.#renewSentAt = sentAt;
        return 'leader';
      }
      this.#observe(current);
      const spec = current.spec ?? {};
      const holder = spec.holderIdentity ?? '';
      const observed = this.#observed as Observed;
      const valid = observed.at + (spec.leaseDurationSeconds ?? 0) * 1000 > this.#clock.now();
      if (holder !== '' && holder !== me && valid) return 'other';
      const mine = holder === me;
      const updated = (await this.#api.request('PUT', path, {
        ...opts,
        body: this.#lease(
          {
            holderIdentity: me,
            leaseDurationSeconds: Math.ceil(this.#leaseDurationMs / 1000),
            acquireTime: mine && spec.acquireTime ? spec.acquireTime : now,
            renewTime: now,
            leaseTransitions: (spec.leaseTransitions ?? 0) + (mine ? 0 : 1),
          },
          current.metadata.resourceVersion,
        ),
      })) as Lease;
      this.#observe(updated);
      this.#renewSentAt = sentAt;
      if (!mine) this.#log.info({ previous: holder || undefined }, 'Acquired the lease');
      return 'leader';
    } catch (e) {
      const err = toKubeApiError(e, { verb: 'update', apiVersion: LEASES, kind: 'Lease', namespace: this.#opts.namespace, name: this.#opts.name });
      // Someone else wrote first (a create or update race): they won this round.
      if (isConflict(err) || isAlreadyExists(err)) return 'other';
      if (!signal.aborted) this.#log.warn({ err: err.message }, 'Lease request failed');
      return 'error';
    }
  }

  #lease(spec: NonNullable<Lease['spec']>, resourceVersion?: string): Lease {
    return {
      apiVersion: LEASES,
      kind: 'Lease',
      metadata: { name: this.#opts.name, namespace: this.#opts.namespace, ...(resourceVersion ? { resourceVersion } : {}) },
      spec,
    };
  }

  #observe(lease: Lease): void {
    const s = lease.spec ?? {};
    const fingerprint = JSON.stringify([s.holderIdentity ?? '', s.leaseDurationSeconds, s.acquireTime, s.renewTime, s.leaseTransitions]);
    if (this.#observed?.fingerprint !== fingerprint) this.#observed = { lease, at: this.#clock.now(), fingerprint };
    else this.#observed = { ...this.#observed, lease };
    const holder = s.holderIdentity ?? '';
    if (holder !== this.#reportedLeader) {
      this.#reportedLeader = holder;
      this.#opts.onNewLeader?.(holder);
    }
  }

  /** Gives the lease up (client-go `release`): empty holder, 1 s duration, only if this candidate still holds it. */
  async #release(): Promise<void> {
    const current = this.#observed?.lease;
    if (current?.spec?.holderIdentity !== this.#opts.identity) return;
    const now = microTime(new Date());
    const path = `/apis/${LEASES}/namespaces/${encodeURIComponent(this.#opts.namespace)}/leases/${encodeURIComponent(this.#opts.name)}`;
    try {
      const released = (await this.#api.request('PUT', path, {
        timeoutMs: this.#retryPeriodMs * 2,
        body: this.#lease({ holderIdentity: '', leaseDurationSeconds: 1, acquireTime: now, renewTime: now, leaseTransitions: current.spec.leaseTransitions ?? 0 }, current.metadata.resourceVersion),
      })) as Lease;
      this.#observe(released);
      this.#log.info('Released the lease');
    } catch (e) {
      // Someone took it already, or the apiserver is unreachable: the lease then expires on its own.
      this.#log.warn({ err: toKubeApiError(e).message }, 'Could not release the lease');
    }
  }

  #sleep(ms: number, signal: AbortSignal): Promise<void> {
    return new Promise((resolve) => {
      if (signal.aborted) return resolve();
      const done = (): void => {
        this.#clock.clearTimeout(timer);
        signal.removeEventListener('abort', done);
        resolve();
      };
      const timer = this.#clock.setTimeout(done, ms);
      signal.addEventListener('abort', done, { once: true });
    });
  }
}
