import type { Issue } from '@kedge/contracts';

/** A JSON path under construction; segments are joined with `.` as IoT Edge users write them. */
export type PathSegment = string | number;

/** Renders a path such as `$edgeAgent.properties.desired.modules.filter.settings.image`. */
export function formatPath(segments: readonly PathSegment[]): string {
  if (segments.length === 0) return '$';
  let out = '';
  for (const s of segments) out += typeof s === 'number' ? `[${s}]` : out === '' ? s : `.${s}`;
  return out;
}

/** Collects errors and warnings while a document is checked. */
export class IssueCollector {
  readonly errors: Issue[] = [];
  readonly warnings: Issue[] = [];
  error(path: readonly PathSegment[], message: string): void {
    this.errors.push({ path: formatPath(path), message });
  }
  warn(path: readonly PathSegment[], message: string): void {
    this.warnings.push({ path: formatPath(path), message });
  }
}

/** True for a plain JSON object (not null, not an array). */
export function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Describes a JSON value's type for messages: `string`, `number`, `array`, `null`, … */
export function typeName(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'array';
  return typeof v;
}
