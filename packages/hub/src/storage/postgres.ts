import { Kysely, PostgresDialect } from 'kysely';
import pg from 'pg';
import { KyselyStore } from './kysely-store.js';
import type { Database } from './schema.js';

/** Connects to PostgreSQL (`postgres://…`) with a pool and migrates the schema. */
export async function openPostgresStore(opts: { url: string; poolSize?: number }): Promise<{ store: KyselyStore; pool: pg.Pool }> {
  const pool = new pg.Pool({ connectionString: opts.url, max: opts.poolSize ?? 10 });
  const db = new Kysely<Database>({ dialect: new PostgresDialect({ pool }) });
  const store = new KyselyStore({ db, dialect: 'postgres' });
  await store.migrate();
  return { store, pool };
}
