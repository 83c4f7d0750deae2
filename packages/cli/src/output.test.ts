import { describe, expect, it } from 'vitest';
import { cellText, flatten, formatFields, formatTable, Tone } from './output.js';

type Row = { id: string; state?: string; n?: number };
const rows: Row[] = [
  { id: 'a', state: 'enabled', n: 1 },
  { id: 'long-name', n: 22 },
];
const columns = [
  { header: 'id', value: (r: Row) => r.id },
  { header: 'state', value: (r: Row) => r.state, tone: (r: Row) => (r.state === 'enabled' ? Tone.Good : undefined) },
  { header: 'n', value: (r: Row) => r.n },
];

describe('formatTable', () => {
  it('aligns columns two spaces apart, upper-case headers, - for nothing, no trailing spaces', () => {
    expect(formatTable(rows, columns)).toBe('ID         STATE    N\na          enabled  1\nlong-name  -        22\n');
    expect(formatTable([], columns)).toBe('ID  STATE  N\n');
  });

  it('colours only when asked, keeping alignment', () => {
    const plain = formatTable(rows, columns);
    const coloured = formatTable(rows, columns, { color: true });
    expect(coloured).toContain('\u001b[1mID\u001b[0m');
    expect(coloured).toContain('\u001b[32menabled\u001b[0m');
    expect(coloured).toContain('\u001b[2m-\u001b[0m');
    // eslint-disable-next-line no-control-regex
    expect(coloured.replace(/\u001b\[\d+m/g, '')).toBe(plain);
    expect(plain).not.toContain('\u001b');
  });

  it('never lets a cell drive the terminal', () => {
    const hostile = [{ id: 'x\u001b[2J\u001b]0;pwned\u0007', n: 1 }, { id: 'bidi\u202eevil\nnext', n: 2 }];
    const out = formatTable(hostile, columns, { color: false });
    // eslint-disable-next-line no-control-regex
    expect(out).not.toMatch(/[\u0000-\u0009\u000b-\u001f\u007f-\u009f\u202e]/);
    expect(out.split('\n')).toHaveLength(4);
    expect(out).toContain('x\\u001b[2J\\u001b]0;pwned\\u0007');
  });

  it('prints objects as compact JSON and field lists as FIELD/VALUE', () => {
    expect(cellText({ a: [1, 2] })).toBe('{"a":[1,2]}');
    expect(cellText(false)).toBe('false');
    expect(formatFields([['deviceId', 'd1'], ['tags', { x: 1 }]])).toBe('FIELD     VALUE\ndeviceId  d1\ntags      {"x":1}\n');
  });
});

describe('flatten', () => {
  it('gives leaves by path, skips $metadata, keeps arrays and empty objects as values', () => {
    expect(flatten({ tags: { a: { b: 1 }, list: [1] }, properties: { desired: { $metadata: { x: 1 }, $version: 3, empty: {} } } })).toEqual([
      ['tags.a.b', 1],
      ['tags.list', [1]],
      ['properties.desired.$version', 3],
      ['properties.desired.empty', {}],
    ]);
  });
});
