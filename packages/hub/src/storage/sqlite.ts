import { existsSync, mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import BetterSqlite3 from 'better-sqlite3';
import { Kysely, SqliteDialect } from 'kysely';
import { KyselyStore } from './kysely-store.js';
import { ensurePrivateFile, tightenFile } from './files.js';
import type { Database } from './schema.js';

/** SQLite `synchronous` level: `NORMAL` survives process crashes (WAL), `FULL` also power loss. */
export type SqliteSync = 'NORMAL' | 'FULL';

/**
 * Opens (creating if needed) the embedded SQLite store in WAL mode and migrates it. `path` `:memory:` gives a
 * throwaway database (tests). The database holds every device key: it is mode 0600, and so are its `-wal` and
 * `-shm` files (SQLite creates those with the database file's mode); a directory it creates is 0700.
 */
export async function openSqliteStore(opts: { path: string; synchronous?: SqliteSync }): Promise<KyselyStore> {
  if (opts.path !== ':memory:') {
    const dir = dirname(opts.path);
    if (!existsSync(dir)) mkdirSync(dir, { recursive: true, mode: 0o700 });
    ensurePrivateFile(opts.path);
    for (const suffix of ['-wal', '-shm', '-journal']) tightenFile(`${opts.path}${suffix}`);
  }
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
