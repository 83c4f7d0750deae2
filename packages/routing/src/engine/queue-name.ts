import type { RouteSink } from '../route.js';
import { sinkKey } from '../route.js';

/**
 * The store queue of an endpoint and priority: `<endpoint id>@<priority>`, e.g. `$upstream@0`,
 * `/modules/filter/inputs/in@2000000000`. The priority is always the last `@`-separated part, so endpoint ids that
 * contain `@` stay unambiguous.
 */
export function queueName(endpointId: string, priority: number): string {
  return `${endpointId}@${priority}`;
}

/** Inverse of {@link queueName} plus the sink it delivers to; undefined when the name is not one. */
export function parseQueueName(queue: string): { readonly sink: RouteSink; readonly endpointId: string; readonly priority: number } | undefined {
  const at = queue.lastIndexOf('@');
  if (at < 0) return undefined;
  const id = queue.slice(0, at);
  const p = queue.slice(at + 1);
  if (!/^\d{1,10}$/.test(p)) return undefined;
  const priority = Number(p);
  let sink: RouteSink;
  if (id === '$upstream') sink = Object.freeze({ kind: 'upstream' });
  else {
    const m = /^\/modules\/([^/]+)\/inputs\/([^/]+)$/.exec(id);
    if (m === null) return undefined;
    sink = Object.freeze({ kind: 'module', module: m[1] as string, input: m[2] as string });
  }
  if (sinkKey(sink) !== id) return undefined;
  return { sink, endpointId: id, priority };
}
