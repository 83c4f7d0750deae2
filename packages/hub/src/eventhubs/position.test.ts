import { describe, expect, it } from 'vitest';
import { partitionOf } from './partitions.js';
import { FilterError, SELECTOR_FILTER, startPosition } from './position.js';

const f = (text: unknown): Record<string, unknown> => ({ [SELECTOR_FILTER]: text });

describe('partitionOf', () => {
  it('is FNV-1a of the UTF-8 id: published vectors, and pinned partitions (a change moves devices)', () => {
    // FNV-1a 32-bit test vectors: "" 0x811c9dc5, "a" 0xe40c292c, "foobar" 0xbf9cf968.
    expect(partitionOf('', 2 ** 32)).toBe(0x811c9dc5);
    expect(partitionOf('a', 2 ** 32)).toBe(0xe40c292c);
    expect(partitionOf('foobar', 2 ** 32)).toBe(0xbf9cf968);
    expect(['thermo-1', 'sensor-0', 'dev-device', 'ü-device'].map((d) => partitionOf(d, 4))).toEqual([0, 2, 1, 3]);
    expect(partitionOf('thermo-1', 32)).toBe(8);
  });
});

describe('startPosition', () => {
  it('reads the filters @azure/event-hubs and azure-eventhub send', () => {
    expect(startPosition(undefined)).toEqual({ kind: 'sequence', sequenceNumber: 0, inclusive: true });
    expect(startPosition(f("amqp.annotation.x-opt-offset > '-1'"))).toEqual({ kind: 'sequence', sequenceNumber: 0, inclusive: true });
    expect(startPosition(f("amqp.annotation.x-opt-offset > '@latest'"))).toEqual({ kind: 'latest' });
    expect(startPosition(f("amqp.annotation.x-opt-offset > '41'"))).toEqual({ kind: 'sequence', sequenceNumber: 41, inclusive: false });
    expect(startPosition(f("amqp.annotation.x-opt-offset >= '41'"))).toEqual({ kind: 'sequence', sequenceNumber: 41, inclusive: true });
    expect(startPosition(f("amqp.annotation.x-opt-sequence-number > '7'"))).toEqual({ kind: 'sequence', sequenceNumber: 7, inclusive: false });
    expect(startPosition(f("amqp.annotation.x-opt-enqueued-time > '1700000000000'"))).toEqual({ kind: 'enqueued', afterMs: 1700000000000, inclusive: false });
    // Python sends the text as UTF-8 bytes; rhea hands described values over with `value`.
    expect(startPosition(f(Buffer.from("amqp.annotation.x-opt-sequence-number >= '3'")))).toEqual({ kind: 'sequence', sequenceNumber: 3, inclusive: true });
    expect(startPosition(f({ descriptor: 0x468c00000004, value: "amqp.annotation.x-opt-offset > '2'" }))).toEqual({ kind: 'sequence', sequenceNumber: 2, inclusive: false });
  });

  it('refuses other filters with a FilterError', () => {
    for (const bad of [
      f("amqp.annotation.x-opt-offset < '5'"),
      f("amqp.annotation.x-opt-offset > '5' OR 1=1"),
      f("amqp.annotation.x-opt-offset > 'abc'"),
      f("amqp.annotation.x-opt-sequence-number > '-2'"),
      f("amqp.annotation.x-opt-enqueued-time > 'yesterday'"),
      f("amqp.annotation.x-opt-offset > '12345678901234567'"),
      f(`amqp.annotation.x-opt-offset > '${'9'.repeat(600)}'`),
      f(42),
      { 'apache.org:other': 'x' },
      { ...f("amqp.annotation.x-opt-offset > '1'"), extra: 'x' },
      'text',
    ]) {
      expect(() => startPosition(bad), JSON.stringify(bad).slice(0, 80)).toThrow(FilterError);
    }
  });
});
