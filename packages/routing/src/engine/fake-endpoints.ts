/**
 * Named fake endpoints, one per failure mode (Routing.Core's test endpoints), for tests of the engine and of the
 * edge hub. They exist because a real destination cannot be made to fail on cue. Each records what it accepted.
 */
import { FailureKind, type BatchContext, type Endpoint, type SinkResult, type StoredMessage } from './types.js';

const ok = (batch: readonly StoredMessage[]): SinkResult => ({ succeeded: batch, failed: [], invalid: [] });
const fail = (batch: readonly StoredMessage[], kind: FailureKind): SinkResult => ({
  succeeded: [],
  failed: batch,
  invalid: [],
  failure: { kind, cause: new Error(`fake endpoint failure (${kind})`) },
});

/**
 * Accepts everything; `received` holds every delivered message in delivery order, `batches` every call and
 * `priorities` the queue priority the executor named for each call.
 */
export class RecordingEndpoint implements Endpoint {
  readonly received: StoredMessage[] = [];
  readonly batches: (readonly StoredMessage[])[] = [];
  readonly priorities: (number | undefined)[] = [];
  closed = false;
  constructor(readonly id: string) {}
  process(batch: readonly StoredMessage[], _signal?: AbortSignal, context?: BatchContext): Promise<SinkResult> {
    this.batches.push(batch);
    this.priorities.push(context?.priority);
    this.received.push(...batch);
    return Promise.resolve(ok(batch));
  }
  close(): Promise<void> {
    this.closed = true;
    return Promise.resolve();
  }
}

/** Fails every batch with `kind` (Routing.Core `FailedEndpoint`); counts the attempts. */
export class FailingEndpoint implements Endpoint {
  attempts = 0;
  constructor(
    readonly id: string,
    readonly kind: FailureKind = FailureKind.Transient,
  ) {}
  process(batch: readonly StoredMessage[]): Promise<SinkResult> {
    this.attempts++;
    return Promise.resolve(fail(batch, this.kind));
  }
}

/**
 * Accepts the first `accept` messages of each batch and fails the rest (Routing.Core `PartialFailureEndpoint`);
 * messages whose body is listed in `invalidBodies` are reported invalid.
 */
export class PartialFailureEndpoint extends RecordingEndpoint {
  constructor(
    id: string,
    public accept: number,
    readonly invalidBodies: ReadonlySet<string> = new Set(),
  ) {
    super(id);
  }
  override process(batch: readonly StoredMessage[]): Promise<SinkResult> {
    this.batches.push(batch);
    const succeeded: StoredMessage[] = [];
    const failed: StoredMessage[] = [];
    const invalid: { message: StoredMessage; reason: string }[] = [];
    for (const m of batch) {
      if (this.invalidBodies.has(new TextDecoder().decode(m.message.body))) invalid.push({ message: m, reason: 'fake: invalid body' });
      else if (succeeded.length < this.accept) succeeded.push(m);
      else failed.push(m);
    }
    this.received.push(...succeeded);
    return Promise.resolve({ succeeded, failed, invalid, ...(failed.length > 0 ? { failure: { kind: FailureKind.Transient, cause: new Error('fake partial failure') } } : {}) });
  }
}

/**
 * Never settles on its own (Routing.Core `StalledEndpoint`); with `honourAbort` it settles, all failed, when its
 * signal aborts. `calls` counts the batches it was given.
 */
export class StalledEndpoint implements Endpoint {
  calls = 0;
  constructor(
    readonly id: string,
    readonly honourAbort = false,
  ) {}
  process(batch: readonly StoredMessage[], signal: AbortSignal): Promise<SinkResult> {
    this.calls++;
    return new Promise((resolve) => {
      if (this.honourAbort) signal.addEventListener('abort', () => resolve(fail(batch, FailureKind.Timeout)), { once: true });
    });
  }
}

/**
 * Fails with `NoConnection` while `down`, delivers while up (Routing.Core `RevivableEndpoint`): set `down` to
 * switch. `attempts` counts calls while down.
 */
export class RevivableEndpoint extends RecordingEndpoint {
  down: boolean;
  attempts = 0;
  constructor(id: string, down = true) {
    super(id);
    this.down = down;
  }
  override process(batch: readonly StoredMessage[]): Promise<SinkResult> {
    if (this.down) {
      this.attempts++;
      return Promise.resolve(fail(batch, FailureKind.NoConnection));
    }
    return super.process(batch);
  }
}
