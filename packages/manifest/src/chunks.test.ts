import { describe, expect, it } from 'vitest';
import { CHUNK_LENGTH, chunkKey, isChunkKey, joinChunks, parseJsonObjectSetting, splitChunks } from './chunks.js';
import { IssueCollector } from './issues.js';

// edgeAgent's chunked settings: the key names, reassembly with its refusals, and the inverse split.

function join(settings: Record<string, unknown>, base: 'createOptions' | 'k8sOptions' = 'createOptions') {
  const issues = new IssueCollector();
  const text = joinChunks(settings, base, ['s'], issues);
  return { text, errors: issues.errors.map((i) => `${i.path}: ${i.message}`), warnings: issues.warnings.map((i) => `${i.path}: ${i.message}`) };
}

describe('chunk keys', () => {
  it('names chunk 0 by the base and the others with two digits', () => {
    expect(chunkKey(0)).toBe('createOptions');
    expect(chunkKey(1)).toBe('createOptions01');
    expect(chunkKey(10)).toBe('createOptions10');
    expect(chunkKey(99)).toBe('createOptions99');
    expect(chunkKey(0, 'k8sOptions')).toBe('k8sOptions');
    expect(chunkKey(7, 'processOptions')).toBe('processOptions07');
  });

  it('recognizes the base and any digits after it, in any letter case, and nothing else', () => {
    for (const k of ['createOptions', 'CREATEOPTIONS07', 'createoptions123', 'createOptions1']) expect(isChunkKey(k, 'createOptions'), k).toBe(true);
    for (const k of ['xcreateOptions', 'createOptions01x', 'createOption', 'createOptions 01', 'k8sOptions']) expect(isChunkKey(k, 'createOptions'), k).toBe(false);
    expect(isChunkKey('K8SOPTIONS02', 'k8sOptions')).toBe(true);
  });
});

describe('joinChunks', () => {
  it('is undefined when the setting is absent', () => {
    expect(join({ image: 'x' })).toEqual({ text: undefined, errors: [], warnings: [] });
  });

  it('joins contiguous chunks in order, whatever the order and case of the keys', () => {
    expect(join({ createOptions02: 'c', CreateOptions: 'a', CREATEOPTIONS01: 'b', image: 'x' })).toEqual({ text: 'abc', errors: [], warnings: [] });
    expect(join({ createOptions: '' })).toEqual({ text: '', errors: [], warnings: [] });
  });

  it.each(['createOptions1', 'createOptions001', 'createOptions00', 'createOptions100'])('refuses the chunk key %s', (key) => {
    expect(join({ createOptions: 'a', [key]: 'b' })).toEqual({
      text: null,
      errors: [`s.${key}: createOptions chunk keys are createOptions, createOptions01 … createOptions99`],
      warnings: [],
    });
  });

  it('refuses a chunk given twice in different letter cases', () => {
    expect(join({ createOptions: 'a', CREATEOPTIONS: 'b' })).toEqual({
      text: null,
      errors: ['s.CREATEOPTIONS: given twice (chunk keys are matched regardless of letter case, as edgeAgent does)'],
      warnings: [],
    });
  });

  it('refuses a gap, naming the missing key and the keys found', () => {
    expect(join({ createOptions: 'a', createOptions02: 'c' })).toEqual({
      text: null,
      errors: ['s.createOptions01: missing: createOptions chunks must be contiguous (found createOptions, createOptions02)'],
      warnings: [],
    });
    expect(join({ k8sOptions01: 'b' }, 'k8sOptions').errors).toEqual(['s.k8sOptions: missing: k8sOptions chunks must be contiguous (found k8sOptions01)']);
  });

  it('refuses a chunk that is not a string', () => {
    expect(join({ createOptions: 'a', createOptions01: 5 })).toEqual({ text: null, errors: ['s.createOptions01: expected a JSON string, got number'], warnings: [] });
    expect(join({ createOptions: {} }).errors).toEqual(['s.createOptions: expected a JSON string, got object']);
  });

  it('warns about a chunk longer than a twin string value, only when the setting is split', () => {
    const long = 'x'.repeat(CHUNK_LENGTH + 1);
    expect(join({ createOptions: long, createOptions01: 'y' }).warnings).toEqual([`s.createOptions: chunk is ${CHUNK_LENGTH + 1} characters; IoT Hub twins keep string values to 512`]);
    expect(join({ createOptions: 'x'.repeat(CHUNK_LENGTH), createOptions01: 'y' }).warnings).toEqual([]);
    expect(join({ createOptions: long })).toEqual({ text: long, errors: [], warnings: [] });
  });
});

describe('splitChunks', () => {
  it('keeps a short text in one key, even an empty one', () => {
    expect(splitChunks('', 'k8sOptions')).toEqual({ k8sOptions: '' });
    expect(splitChunks('abc', 'createOptions')).toEqual({ createOptions: 'abc' });
  });

  it('splits at 512 characters exactly, and joins back to the text', () => {
    const exact = 'a'.repeat(CHUNK_LENGTH);
    expect(Object.keys(splitChunks(exact, 'createOptions'))).toEqual(['createOptions']);
    const more = `${exact}b`;
    expect(splitChunks(more, 'createOptions')).toEqual({ createOptions: exact, createOptions01: 'b' });
    const text = Array.from({ length: 3000 }, (_, i) => String(i % 10)).join('');
    const keys = splitChunks(text, 'processOptions');
    expect(Object.keys(keys)).toHaveLength(6);
    expect(Object.values(keys).every((v) => v.length <= CHUNK_LENGTH)).toBe(true);
    const issues = new IssueCollector();
    expect(joinChunks(keys, 'processOptions', [], issues)).toBe(text);
    expect(issues.errors).toEqual([]);
  });

  it('makes at most 100 chunks', () => {
    expect(Object.keys(splitChunks('x'.repeat(100 * CHUNK_LENGTH), 'createOptions'))).toHaveLength(100);
    expect(() => splitChunks('x'.repeat(100 * CHUNK_LENGTH + 1), 'k8sOptions')).toThrow(new RangeError(`k8sOptions of ${100 * CHUNK_LENGTH + 1} characters needs more than 100 chunks of 512`));
  });
});

describe('parseJsonObjectSetting', () => {
  const parse = (text: string, expected?: string) => {
    const issues = new IssueCollector();
    const r = expected === undefined ? parseJsonObjectSetting(text, ['p'], issues) : parseJsonObjectSetting(text, ['p'], issues, expected);
    return { r, errors: issues.errors.map((i) => `${i.path}: ${i.message}`) };
  };

  it('reads "", blanks and "null" as absent', () => {
    for (const t of ['', '  ', 'null', ' null\n']) expect(parse(t)).toEqual({ r: { ok: true, value: undefined }, errors: [] });
  });

  it('returns the object JSON.parse made', () => {
    expect(parse(' {"a":[1]} ')).toEqual({ r: { ok: true, value: { a: [1] } }, errors: [] });
  });

  it('refuses text that is not JSON', () => {
    const { r, errors } = parse('{"a":');
    expect(r).toEqual({ ok: false });
    expect(errors).toHaveLength(1);
    expect(errors[0]).toMatch(/^p: not valid JSON: /);
  });

  it('refuses JSON that is not an object, describing what was expected', () => {
    expect(parse('[1]')).toEqual({ r: { ok: false }, errors: ['p: must be a JSON object, got array'] });
    expect(parse('"x"')).toEqual({ r: { ok: false }, errors: ['p: must be a JSON object, got string'] });
    expect(parse('3', 'an options object')).toEqual({ r: { ok: false }, errors: ['p: must be an options object, got number'] });
  });
});
