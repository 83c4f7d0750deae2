/**
 * One problem found in user input, located by a JSON path such as
 * `$edgeAgent.properties.desired.modules.filter.settings.image`.
 */
export interface Issue {
  /** Where the problem is, as a dotted JSON path (`$` means the document root). */
  readonly path: string;
  /** What is wrong, in a short sentence without a final period. */
  readonly message: string;
}

/**
 * Base class of every error Kedge throws on purpose. `code` is stable (clients branch on it, never on the message):
 * `EDGE_ERR_*` for the edge agent and edge hub, `CLOUD_ERR_*` for the hub, `ROUTE_ERR_*` for the route language,
 * `MANIFEST_ERR_*` for the manifest model.
 */
export class KedgeError extends Error {
  readonly code: string;
  constructor(code: string, message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = 'KedgeError';
    this.code = code;
  }
}

/** Formats issues as `<path>: <message>` lines, the form the CLI prints. */
export function formatIssues(issues: readonly Issue[]): string {
  return issues.map((i) => `${i.path}: ${i.message}`).join('\n');
}
