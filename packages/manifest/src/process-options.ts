import { z } from 'zod';
import { parseJsonObjectSetting, splitChunks } from './chunks.js';
import type { IssueCollector, PathSegment } from './issues.js';
import { zodIssues } from './zod-issues.js';

/**
 * The `settings` key that carries a module's process form through a twin: a JSON **string** (chunked like
 * `createOptions` into `processOptions`, `processOptions01` …), so that its environment names and arguments never
 * become twin keys (which may not hold `.`, `$` or spaces). Read by the agent's process runtime only; Kubernetes
 * runs the image and ignores it.
 */
export const PROCESS_OPTIONS = 'processOptions';

/** Environment variable names a process may be given: POSIX portable names. */
const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]{0,255}$/;

/**
 * How the process runtime starts a module: `command` (an executable on the agent's PATH or a path), `args`, extra
 * `env` (over the runtime's `IOTEDGE_*` variables and the module's manifest `env`), `workingDir` (absolute, or
 * relative to the agent's working directory). No shell is involved: arguments are passed as given.
 */
export const ProcessOptionsSchema = z.strictObject({
  command: z.string().min(1, 'must not be empty').max(4096),
  args: z.array(z.string().max(65_536)).max(1024).default([]),
  env: z
    .record(z.string(), z.string().max(65_536))
    .default({})
    .superRefine((env, ctx) => {
      for (const k of Object.keys(env)) {
        if (!ENV_NAME.test(k)) ctx.addIssue({ code: 'custom', path: [k], message: 'an environment variable name is letters, digits and "_", not starting with a digit' });
      }
    }),
  workingDir: z.string().min(1, 'must not be empty').max(4096).optional(),
});
export type ProcessOptions = z.infer<typeof ProcessOptionsSchema>;

/**
 * Parses the (reassembled) `settings.processOptions` text. `""` and `"null"` mean no process form. Unknown keys
 * and wrong shapes are errors with their paths.
 */
export function parseProcessOptions(text: string, path: readonly PathSegment[], issues: IssueCollector): { ok: true; value: ProcessOptions | undefined } | { ok: false } {
  const parsed = parseJsonObjectSetting(text, path, issues, 'a JSON object {"command", "args", "env", "workingDir"}');
  if (!parsed.ok || parsed.value === undefined) return parsed.ok ? { ok: true, value: undefined } : parsed;
  const raw = parsed.value;
  // JSON.parse makes "__proto__" an own key; a record built from it would lose it or change its prototype.
  const env: unknown = raw['env'];
  if (typeof env === 'object' && env !== null && Object.prototype.hasOwnProperty.call(env, '__proto__')) {
    issues.error([...path, 'env', '__proto__'], 'may not be "__proto__"');
    return { ok: false };
  }
  const r = ProcessOptionsSchema.safeParse(raw, { reportInput: true });
  if (!r.success) {
    for (const i of zodIssues(r.error, path)) issues.errors.push(i);
    return { ok: false };
  }
  return { ok: true, value: r.data };
}

/** The `settings` entries that carry `options` through a twin: `{"processOptions": "…"}`, chunked when long. */
export function processOptionsSettings(options: ProcessOptions): Record<string, string> {
  return splitChunks(JSON.stringify(options), PROCESS_OPTIONS);
}
