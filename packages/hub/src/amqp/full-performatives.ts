import { createRequire } from 'node:module';

/** The AMQP performatives rhea writes [AMQP 1.0 2.7]. */
const PERFORMATIVES = ['open', 'begin', 'attach', 'flow', 'transfer', 'disposition', 'detach', 'end', 'close'] as const;

type Composite = { value: unknown[]; described: (this: Composite) => unknown } & Record<string, unknown>;
/**
 * Fields pyamqp compares without applying the spec's default, written with that default when absent
 * (`begin.handle-max` [AMQP 1.0 2.7.2]: pyamqp's session compares link handles with it).
 */
const DEFAULTS: Partial<Record<(typeof PERFORMATIVES)[number], Readonly<Record<string, unknown>>>> = { begin: { handle_max: 4294967295 } };
let applied = false;

/**
 * Makes rhea write every field of each performative, trailing absent ones as `null`, instead of ending the list
 * at the last field set. Both are valid AMQP [AMQP 1.0 1.4: "a list … may be truncated"], but pyamqp, the pure-Python
 * AMQP of `azure-eventhub`, indexes the fields it reads (`open` field 9, `attach` field 13, a `transfer`'s payload
 * after field 10) and fails on a truncated list; Azure's own brokers never truncate. Costs a few null bytes per
 * frame. Process-wide (rhea's frame types are module state) and idempotent.
 */
export function writeFullPerformatives(): void {
  if (applied) return;
  applied = true;
  const require = createRequire(import.meta.url);
  const frames = require('rhea/lib/frames.js') as Record<(typeof PERFORMATIVES)[number], (fields: object) => Composite>;
  for (const name of PERFORMATIVES) {
    const proto = Object.getPrototypeOf(frames[name]({})) as Composite;
    // The field accessors rhea defines on the prototype, one per field of the performative, in order.
    const count = Object.getOwnPropertyNames(proto).filter((n) => typeof Object.getOwnPropertyDescriptor(proto, n)?.get === 'function').length;
    const described = proto.described;
    const defaults = Object.entries(DEFAULTS[name] ?? {});
    proto.described = function (this: Composite): unknown {
      for (const [field, value] of defaults) if (this[field] === undefined || this[field] === null) this[field] = value;
      // A hole is written as null (rhea's write_compound).
      if (this.value.length < count) this.value.length = count;
      return described.call(this);
    };
  }
}
