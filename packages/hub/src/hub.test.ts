import { describeHubWithSdks } from './test-support/hub-sdk-suite.js';
import { maybeStartTestPostgres } from './test-support/postgres.js';

describeHubWithSdks('SQLite', () => Promise.resolve({ url: undefined, stop: () => Promise.resolve() }));
describeHubWithSdks('PostgreSQL', async () => {
  const pg = await maybeStartTestPostgres();
  return pg && { url: pg.url, stop: () => pg.stop() };
});
