import { Kysely, PostgresDialect } from 'kysely';
import pg from 'pg';
import { KyselyStore } from './kysely-store.js';
import type { Database } from './schema.js';

/** Connects to PostgreSQL (`postgres://…`) with a pool and migrates the schema. */
export async function openPostgresStore(opts: { url: string; poolSize?: number; onIdleError?: (e: Error) => void }): Promise<{ store: KyselyStore; pool: pg.Pool }> {
  const pool = new pg.Pool({ connectionString: opts.url, max: opts.poolSize ?? 10 });
  // An idle pooled connection dropped by the server (restart, failover) must not crash the process: the pool
  // discards it and the next query opens a new one.
  pool.on('error', (e) => opts.onIdleError?.(e));
  const db = new Kysely<Database>({ dialect: new PostgresDialect({ pool }) });
  const store = new KyselyStore({ db, dialect: 'postgres' });
  await store.migrate();
  return { store, pool };
}
