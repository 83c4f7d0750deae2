/**
 * The hub's only import point for `@kedge/routing` (IoT Hub twin query language), so the contract the hub relies on
 * is visible in one place.
 */
import { compileDeviceQuery as compileQuery, compileTargetCondition as compileCondition } from '@kedge/routing';
import type { DeviceQuery } from '@kedge/routing';
import type { Result } from '@kedge/contracts';

export { QueryShape } from '@kedge/routing';
export type { DeviceQuery, QueryRow } from '@kedge/routing';

/** The twin view queries evaluate over. */
export interface QueryTwin {
  readonly deviceId: string;
  readonly moduleId?: string;
  readonly tags: Readonly<Record<string, unknown>>;
  readonly properties: { readonly desired: Readonly<Record<string, unknown>>; readonly reported: Readonly<Record<string, unknown>> };
  readonly capabilities?: { readonly iotEdge?: boolean };
  readonly configurations?: Readonly<Record<string, unknown>>;
  readonly [field: string]: unknown;
}

export interface QueryError {
  readonly message: string;
  readonly line: number;
  readonly column: number;
}

export type TwinPredicate = (twin: QueryTwin) => boolean;

/** Compiles a deployment target condition (`tags.env='prod' AND …`, or `*`). */
export function compileTargetCondition(text: string): Result<TwinPredicate, QueryError> {
  return compileCondition(text);
}

/** Compiles a `SELECT … FROM devices[.modules] [WHERE …]` metric query. */
export function compileDeviceQuery(text: string): Result<TwinPredicate & { readonly collection: 'devices' | 'devices.modules' }, QueryError> {
  return compileQuery(text);
}

/** Compiles a full `POST /devices/query` query (projections, aggregates, GROUP BY, TOP) over twin JSON. */
export function compileTwinQuery(text: string): Result<DeviceQuery, QueryError> {
  return compileQuery(text);
}
