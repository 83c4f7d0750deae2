import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import BetterSqlite3 from 'better-sqlite3';
import { Kysely, SqliteDialect } from 'kysely';
import { KyselyStore } from './kysely-store.js';
import type { Database } from './schema.js';

/** SQLite `synchronous` level: `NORMAL` survives process crashes (WAL), `FULL` also power loss. */
export type SqliteSync = 'NORMAL' | 'FULL';

/**
 * Opens (creating if needed) the embedded SQLite store in WAL mode and migrates it. `path` `:memory:` gives a
 * throwaway database (tests).
 */
export async function openSqliteStore(opts: { path: string; synchronous?: SqliteSync }): Promise<KyselyStore> {
  if (opts.path !== ':memory:') mkdirSync(dirname(opts.path), { recursive: true });
  const database = new BetterSqlite3(opts.path);
  database.pragma('journal_mode = WAL');
  database.pragma(`synchronous = ${opts.synchronous ?? 'NORMAL'}`);
  database.pragma('busy_timeout = 5000');
  database.pragma('foreign_keys = OFF');
  const db = new Kysely<Database>({ dialect: new SqliteDialect({ database }) });
  const store = new KyselyStore({ db, dialect: 'sqlite' });
  await store.migrate();
  return store;
}
