/**
 * Human output of the `kedge` CLI: aligned tables, colour only on a terminal. Machine output is `--json`.
 * Every cell is sanitised: values come from the hub (device ids, twin properties), and an escape sequence in a tag
 * must not drive the user's terminal.
 */

/** A table column: its header and how to read a row's cell. */
export interface Column<T> {
  readonly header: string;
  readonly value: (row: T) => unknown;
  /** Colour of a cell (applied only on a terminal). */
  readonly tone?: (row: T) => Tone | undefined;
}

/** Cell colours. */
export const Tone = { Good: 'good', Bad: 'bad', Dim: 'dim' } as const;
export type Tone = (typeof Tone)[keyof typeof Tone];

const ANSI: Record<Tone | 'bold', string> = { good: '\u001b[32m', bad: '\u001b[31m', dim: '\u001b[2m', bold: '\u001b[1m' };
const RESET = '\u001b[0m';

/** Whether to colour: stdout is a terminal and `NO_COLOR` is unset (no-color.org). Read when a command prints. */
export function useColor(stream: { isTTY?: boolean } = process.stdout): boolean {
  return stream.isTTY === true && (process.env['NO_COLOR'] ?? '') === '' && process.env['TERM'] !== 'dumb';
}

// C0 and C1 controls, DEL, and the bidi overrides that can reorder what a terminal shows.
// eslint-disable-next-line no-control-regex
const UNSAFE = /[\u0000-\u001f\u007f-\u009f\u202a-\u202e\u2066-\u2069]/g;

/** One line of display text for any value: strings as they are, `-` for nothing, other values as compact JSON. */
export function cellText(v: unknown): string {
  const text = v === undefined || v === null || v === '' ? '-' : typeof v === 'string' ? v : typeof v === 'number' || typeof v === 'boolean' ? String(v) : JSON.stringify(v);
  return text.replace(UNSAFE, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}

const width = (s: string): number => [...s].length;

/**
 * Formats rows as a table: upper-case headers, columns two spaces apart, no trailing spaces, one line per row.
 * With `color`, headers are bold and cells take their column's tone.
 */
export function formatTable<T>(rows: readonly T[], columns: readonly Column<T>[], opts: { color?: boolean } = {}): string {
  const color = opts.color === true;
  const cells = rows.map((r) => columns.map((c) => cellText(c.value(r))));
  const widths = columns.map((c, i) => Math.max(width(c.header), ...cells.map((row) => width(row[i] ?? ''))));
  const paint = (text: string, tone: Tone | 'bold' | undefined): string => (color && tone ? `${ANSI[tone]}${text}${RESET}` : text);
  // Padding goes outside the colour codes, so alignment does not depend on them; the last column is not padded.
  const line = (parts: string[], tones: Array<Tone | 'bold' | undefined>): string =>
    parts.map((p, i) => paint(p, tones[i]) + (i === parts.length - 1 ? '' : ' '.repeat((widths[i] ?? 0) - width(p)))).join('  ').trimEnd();
  const header = line(
    columns.map((c) => c.header.toUpperCase()),
    columns.map(() => 'bold'),
  );
  const body = rows.map((r, ri) =>
    line(
      cells[ri] ?? [],
      columns.map((c, ci) => c.tone?.(r) ?? ((cells[ri]?.[ci] ?? '') === '-' ? Tone.Dim : undefined)),
    ),
  );
  return `${[header, ...body].join('\n')}\n`;
}

/** A two-column FIELD/VALUE table of an object's entries, for `show` commands. */
export function formatFields(entries: ReadonlyArray<readonly [string, unknown]>, opts: { color?: boolean } = {}): string {
  return formatTable(entries, [{ header: 'field', value: (e) => e[0] }, { header: 'value', value: (e) => e[1] }], opts);
}

/**
 * Flattens a JSON object into `path → leaf` pairs (`properties.reported.fw`), skipping `$metadata`; arrays and empty
 * objects are leaves. For twin tables.
 */
export function flatten(value: unknown, prefix = ''): Array<[string, unknown]> {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) return [[prefix, value]];
  const keys = Object.keys(value).filter((k) => k !== '$metadata');
  if (keys.length === 0) return prefix === '' ? [] : [[prefix, value]];
  return keys.flatMap((k) => flatten((value as Record<string, unknown>)[k], prefix === '' ? k : `${prefix}.${k}`));
}
