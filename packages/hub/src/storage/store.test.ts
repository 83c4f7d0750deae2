import { maybeStartTestPostgres } from '../test-support/postgres.js';
import { openPostgresStore } from './postgres.js';
import { openSqliteStore } from './sqlite.js';
import { describeStore } from './store.contract.js';

describeStore('SQLite', async () => {
  const store = await openSqliteStore({ path: ':memory:' });
  return { store, cleanup: () => store.close() };
});

describeStore('PostgreSQL', async () => {
  const pg = await maybeStartTestPostgres();
  if (!pg) return undefined;
  const { store } = await openPostgresStore({ url: pg.url });
  return {
    store,
    cleanup: async () => {
      await store.close();
      await pg.stop();
    },
  };
});
