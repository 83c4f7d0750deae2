import type { Issue } from '@kedge/contracts';
import type { z } from 'zod';
import { formatPath, type PathSegment } from './issues.js';

/** Converts zod's issues into Kedge issues with full JSON paths and short messages. */
export function zodIssues(error: z.ZodError, prefix: readonly PathSegment[]): Issue[] {
  return error.issues.map((i) => ({
    path: formatPath([...prefix, ...i.path.map((p) => (typeof p === 'symbol' ? String(p) : p))]),
    message: describe(i),
  }));
}

function describe(i: z.core.$ZodIssue): string {
  switch (i.code) {
    case 'invalid_type':
      return i.input === undefined ? 'required' : `expected ${i.expected}, got ${i.input === null ? 'null' : Array.isArray(i.input) ? 'array' : typeof i.input}`;
    case 'invalid_value':
      // A missing enum or literal field is "required", as a missing field of any other type is.
      if (i.input === undefined) return 'required';
      return `must be one of ${i.values.map((v) => JSON.stringify(v)).join(', ')}, got ${JSON.stringify(i.input)}`;
    case 'unrecognized_keys':
      return `unknown field${i.keys.length > 1 ? 's' : ''} ${i.keys.map((k) => `"${k}"`).join(', ')}`;
    case 'too_small':
      // An exclusive bound (`.positive()`, `.gt()`): "at least 0" would name a value that is refused.
      if (i.inclusive === false) return `must be greater than ${String(i.minimum)}`;
      return i.origin === 'string' ? (i.minimum === 1 ? 'must not be empty' : `must be at least ${String(i.minimum)} characters`) : `must be at least ${String(i.minimum)}`;
    case 'too_big':
      return i.inclusive === false ? `must be less than ${String(i.maximum)}` : `must be at most ${String(i.maximum)}`;
    default:
      return i.message;
  }
}
