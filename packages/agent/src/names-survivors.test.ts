import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { toLabelValue } from './names.js';

// Issue 15: a names behaviour the survivors of the full mutation run showed unpinned (see render-survivors.test.ts).
const hash8 = (s: string) => createHash('sha256').update(s).digest('hex').slice(0, 8);

describe('toLabelValue: leading characters', () => {
  it('trims every non-alphanumeric character at the start, not only the first', () => {
    expect(toLabelValue('..a b')).toBe(`a-b-${hash8('..a b')}`);
  });
});
