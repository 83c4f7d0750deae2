/**
 * The SELECT side of IoT Hub twin queries: projections (`SELECT deviceId, properties.reported.fw AS fw`) and
 * aggregates (`COUNT()`, `SUM`, `AVG`, `MIN`, `MAX`, optionally with `GROUP BY`). Pure functions over twin documents.
 *
 * Output objects have a null prototype: their keys come from the query text (aliases, property names), which is
 * untrusted, and `__proto__` must stay an ordinary key.
 */

/** A JSON object built by a query (null prototype; serialise with `JSON.stringify`). */
export type QueryRow = Record<string, unknown>;

/** The aggregate functions of the IoT Hub query language. */
export const AggregateFn = { Count: 'count', Sum: 'sum', Avg: 'avg', Min: 'min', Max: 'max' } as const;
export type AggregateFn = (typeof AggregateFn)[keyof typeof AggregateFn];

/** One element of a SELECT list after parsing. `name` is the output key (the alias, or the path's last segment). */
export type SelectItem =
  | { readonly kind: 'field'; readonly path: readonly string[]; readonly name: string }
  | { readonly kind: 'aggregate'; readonly fn: AggregateFn; readonly path: readonly string[] | undefined; readonly name: string };

/** Incremental evaluation of an aggregate query: feed matching twins with `add`, then read `rows()`. */
export interface Aggregation {
  add(twin: unknown): void;
  /** One row per group (one row in all without GROUP BY), groups in order of first appearance. */
  rows(): QueryRow[];
}

/** Own-property path lookup; `undefined` when any step is missing or not an object. */
export function lookupPath(doc: unknown, path: readonly string[]): unknown {
  let node: unknown = doc;
  for (const seg of path) {
    if (node === null || typeof node !== 'object' || Array.isArray(node)) return undefined;
    if (!Object.prototype.hasOwnProperty.call(node, seg)) return undefined;
    node = (node as Record<string, unknown>)[seg];
  }
  return node;
}

function row(): QueryRow {
  return Object.create(null) as QueryRow;
}

/** Builds the projection of one twin: each field under its output name; missing fields are left out (JSON). */
export function projector(items: readonly SelectItem[]): (twin: unknown) => QueryRow {
  const fields = items.filter((i): i is Extract<SelectItem, { kind: 'field' }> => i.kind === 'field');
  return (twin) => {
    const out = row();
    for (const f of fields) {
      const v = lookupPath(twin, f.path);
      if (v !== undefined) out[f.name] = v;
    }
    return out;
  };
}

// MIN/MAX order values across types as the DocumentDB dialect does: null < booleans < numbers < strings.
const RANK = (v: unknown): number => (v === null ? 0 : typeof v === 'boolean' ? 1 : typeof v === 'number' ? 2 : typeof v === 'string' ? 3 : -1);

function less(a: unknown, b: unknown): boolean {
  const ra = RANK(a);
  const rb = RANK(b);
  if (ra !== rb) return ra < rb;
  return (a as number | string | boolean) < (b as number | string | boolean);
}

interface Accumulator {
  add(v: unknown): void;
  /** `undefined` leaves the key out of the row. */
  result(): unknown;
}

function accumulator(fn: AggregateFn): Accumulator {
  switch (fn) {
    case AggregateFn.Count: {
      let n = 0;
      return { add: () => void n++, result: () => n };
    }
    case AggregateFn.Sum:
    case AggregateFn.Avg: {
      let sum = 0;
      let n = 0;
      return {
        add: (v) => {
          if (typeof v === 'number') {
            sum += v;
            n++;
          }
        },
        // SUM of no numbers is 0; AVG of no numbers is undefined (no key).
        result: () => (fn === AggregateFn.Sum ? sum : n === 0 ? undefined : sum / n),
      };
    }
    default: {
      let best: unknown = undefined;
      return {
        add: (v) => {
          if (RANK(v) < 0) return; // objects, arrays, undefined do not take part
          if (best === undefined || (fn === AggregateFn.Min ? less(v, best) : less(best, v))) best = v;
        },
        result: () => best,
      };
    }
  }
}

/**
 * An aggregation for `items` grouped by `groupBy` (empty: one group of everything). Group keys compare as JSON
 * values; a missing group value forms its own group, whose row leaves that key out.
 */
export function aggregation(items: readonly SelectItem[], groupBy: readonly (readonly string[])[]): Aggregation {
  const groups = new Map<string, { keys: unknown[]; accs: Array<Accumulator | undefined> }>();
  const newGroup = (keys: unknown[]): { keys: unknown[]; accs: Array<Accumulator | undefined> } => ({
    keys,
    accs: items.map((i) => (i.kind === 'aggregate' ? accumulator(i.fn) : undefined)),
  });
  // Without GROUP BY there is one row even when nothing matches (COUNT() is 0).
  if (groupBy.length === 0) groups.set('[]', newGroup([]));
  const groupIndex = new Map(groupBy.map((g, i) => [g.join('\u0000'), i]));
  return {
    add(twin) {
      const keys = groupBy.map((g) => lookupPath(twin, g));
      // `undefined` is not JSON: mark it so a missing value and null stay apart.
      const id = JSON.stringify(keys.map((k) => (k === undefined ? { $undefined: true } : k)));
      let g = groups.get(id);
      if (!g) {
        g = newGroup(keys);
        groups.set(id, g);
      }
      items.forEach((item, i) => {
        if (item.kind === 'aggregate') g.accs[i]?.add(item.path === undefined ? true : lookupPath(twin, item.path));
      });
    },
    rows() {
      const out: QueryRow[] = [];
      for (const g of groups.values()) {
        const r = row();
        items.forEach((item, i) => {
          const v = item.kind === 'aggregate' ? g.accs[i]?.result() : g.keys[groupIndex.get(item.path.join('\u0000')) ?? -1];
          if (v !== undefined) r[item.name] = v;
        });
        out.push(r);
      }
      return out;
    },
  };
}
