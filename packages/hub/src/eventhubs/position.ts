/**
 * Where a receiver starts in its partition: the selector filter of its attach
 * (`apache.org:selector-filter:string`, as `@azure/event-hubs` and `azure-eventhub` send it), read into a position.
 */
export type StartPosition =
  | { readonly kind: 'sequence'; readonly sequenceNumber: number; readonly inclusive: boolean }
  | { readonly kind: 'enqueued'; readonly afterMs: number; readonly inclusive: boolean }
  | { readonly kind: 'latest' };

/** The filter key and its descriptor code [Event Hubs AMQP: apache.org:selector-filter:string = 0x468C00000004]. */
export const SELECTOR_FILTER = 'apache.org:selector-filter:string';

/** Longest filter text read (the SDKs send well under 100 characters). */
const MAX_FILTER_CHARS = 512;
const EXPRESSION = /^\s*amqp\.annotation\.x-opt-(offset|sequence-number|enqueued-time)\s*(>=|>)\s*'([^']*)'\s*$/i;

/** A filter the endpoint cannot serve; the attach is refused with its message. */
export class FilterError extends Error {
  readonly code = 'EVENTHUBS_BAD_FILTER';
}

/** The text of a source filter entry as rhea decodes it: a string, a binary (Python sends UTF-8 bytes) or described. */
function filterText(v: unknown): string | undefined {
  if (typeof v === 'string') return v;
  if (Buffer.isBuffer(v)) return v.toString('utf8');
  if (v !== null && typeof v === 'object' && 'value' in v) return filterText(v.value);
  return undefined;
}

const nonNegativeInteger = (s: string): boolean => /^\d{1,15}$/.test(s);

/**
 * Reads the start position from an attach's source filter map. No filter starts at the beginning (as Event Hubs).
 * Offsets are sequence numbers on this endpoint (`-1` the beginning, `@latest` the end). Throws {@link FilterError}
 * for anything else: unknown filter kinds, operators, annotations or values.
 */
export function startPosition(filter: unknown): StartPosition {
  if (filter === undefined || filter === null) return { kind: 'sequence', sequenceNumber: 0, inclusive: true };
  if (typeof filter !== 'object') throw new FilterError('Malformed source filter');
  const entries = Object.entries(filter as Record<string, unknown>);
  if (entries.length === 0) return { kind: 'sequence', sequenceNumber: 0, inclusive: true };
  if (entries.length > 1 || entries[0]?.[0] !== SELECTOR_FILTER) throw new FilterError(`Only the ${SELECTOR_FILTER} filter is supported`);
  const text = filterText(entries[0][1]);
  if (text === undefined || text.length > MAX_FILTER_CHARS) throw new FilterError('Malformed selector filter');
  const m = EXPRESSION.exec(text);
  if (!m) throw new FilterError(`Unsupported selector filter: ${text.slice(0, 100)}`);
  const what = (m[1] ?? '').toLowerCase();
  const inclusive = m[2] === '>=';
  const value = m[3] ?? '';
  if (what === 'offset') {
    if (value === '@latest') return { kind: 'latest' };
    if (value === '-1') return { kind: 'sequence', sequenceNumber: 0, inclusive: true };
    if (!nonNegativeInteger(value)) throw new FilterError(`Offset '${value.slice(0, 40)}' is not one of this endpoint's offsets`);
    return { kind: 'sequence', sequenceNumber: Number(value), inclusive };
  }
  if (what === 'sequence-number') {
    if (value === '-1') return { kind: 'sequence', sequenceNumber: 0, inclusive: true };
    if (!nonNegativeInteger(value)) throw new FilterError(`Sequence number '${value.slice(0, 40)}' is not a non-negative integer`);
    return { kind: 'sequence', sequenceNumber: Number(value), inclusive };
  }
  if (!nonNegativeInteger(value)) throw new FilterError(`Enqueued time '${value.slice(0, 40)}' is not milliseconds since the epoch`);
  return { kind: 'enqueued', afterMs: Number(value), inclusive };
}

/** The first sequence number a position reads, given the partition's last one (inclusive forms made exclusive). */
export function firstSequenceNumber(p: { kind: 'sequence'; sequenceNumber: number; inclusive: boolean }): number {
  return p.inclusive ? p.sequenceNumber : p.sequenceNumber + 1;
}
