import pg from 'pg';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openPostgresStore } from '../storage/postgres.js';
import { eventually } from '../test-support/eventually.js';
import type { TestPostgres } from '../test-support/postgres.js';
import { maybeStartTestPostgres } from '../test-support/postgres.js';
import type { BusEvent } from './bus.js';
import { PgBus } from './bus.js';

/**
 * The PostgreSQL bus survives losing its LISTEN connection: the server itself ends the backend
 * (`pg_terminate_backend`, what a restart, a failover or an idle-session killer does to it), and the replica hears
 * events again once it has reconnected, without a restart.
 */
describe('PgBus: the LISTEN connection is re-opened when the server drops it', () => {
  let server: TestPostgres | undefined;
  const pools: pg.Pool[] = [];
  const buses: PgBus[] = [];
  const log = pino({ level: 'silent' });

  beforeAll(async () => {
    server = await maybeStartTestPostgres();
  }, 60_000);

  afterAll(async () => {
    for (const b of buses) await b.close();
    for (const p of pools) await p.end();
    await server?.stop();
  });

  async function replica(url: string): Promise<PgBus> {
    const { pool } = await openPostgresStore({ url, onIdleError: () => undefined });
    pools.push(pool);
    const bus = new PgBus({ pool, log });
    buses.push(bus);
    await bus.start();
    return bus;
  }

  it('receives events published after its listener was terminated, twice in a row', async (ctx) => {
    if (!server) return ctx.skip();
    const a = await replica(server.url);
    const b = await replica(server.url);
    const heard: BusEvent[] = [];
    a.subscribe((e) => heard.push(e));
    const admin = new pg.Client({ connectionString: server.url });
    await admin.connect();
    try {
      for (const round of [1, 2]) {
        // The listening backends of both replicas (LISTEN sessions show their last query).
        const killed = await admin.query<{ ok: boolean }>(
          `SELECT pg_terminate_backend(pid) AS ok FROM pg_stat_activity WHERE query LIKE 'LISTEN kedge_bus%' AND pid <> pg_backend_pid()`,
        );
        expect(killed.rows.length).toBe(2);
        await eventually(() => a.reconnects === round && b.reconnects === round && a.listening, { what: `replica reconnected (round ${round})` });
        // Each reconnect tells this replica's listeners to look again at what they may have missed.
        expect(heard.filter((e) => e.type === 'resync')).toHaveLength(round);
        const deviceId = `after-drop-${round}`;
        // Published by B through its pool, heard by A on its new LISTEN connection.
        await b.publish({ type: 'c2d', deviceId });
        await eventually(() => heard.some((e) => e.type === 'c2d' && e.deviceId === deviceId), { what: `event ${round} heard on replica A` });
      }
    } finally {
      await admin.end();
    }
  }, 60_000);
});
