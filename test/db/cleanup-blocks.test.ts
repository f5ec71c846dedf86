// What a cleanup run reads (src/db/cleanup-statement.ts): blocks of the sessions table and its indexes
// (pg_statio_user_tables), in a table where cleanup has run before, so every old session has its deadline.
// A run costs a bounded number of block reads per deleted session, however large the table: the index
// entry's heap page (1), the lock (the page and the visibility map, 2), the delete (the row found by its
// ctid, the page, the visibility map, the capture trigger's copy of the old row: 4). The statement's two
// updates must not read the rows the delete removes (with them, this table's run read 2,000 heap blocks,
// 10 per deleted session), nor may the delete return its rows when no audit row needs them (RETURNING
// fetches each row once more: 1,600, 8 per deleted session; without, 1,400).
// Block counts are the server's, whatever the driver: one driver is enough.
import { sql } from 'drizzle-orm';
import { drizzle } from 'drizzle-orm/node-postgres';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SessionManager } from '../../src/core/manager.ts';
import type { TransactionalDatabase } from '../../src/db/executor.ts';
import { migrate } from '../../src/migrate.ts';
import { databaseUrl, uniqueSchema } from '../support/db.ts';

const DAY = 86_400_000;
const HOUR = 3_600_000;
const SESSIONS = 20_000;
/** One session in EXPIRED_EVERY expired, scattered through the table. */
const EXPIRED_EVERY = 100;

describe('cleanup reads the sessions it deletes, not the table', () => {
  // A database of its own: what VACUUM may remove depends on the oldest snapshot of the database's other
  // sessions (other test files' transactions would leave dead rows, and their index entries, in place).
  const database = uniqueSchema('cleanup_blocks');
  const schema = 'cleanup_blocks';
  let server: pg.Client;
  let t: { db: TransactionalDatabase; admin: pg.Pool; close(): Promise<void> };
  let table = '';

  beforeAll(async () => {
    server = new pg.Client({ connectionString: databaseUrl() });
    await server.connect();
    await server.query(`CREATE DATABASE "${database}"`);
    const url = new URL(databaseUrl());
    url.pathname = `/${database}`;
    // One connection: the statistics this backend reports are cleanup's own.
    const pool = new pg.Pool({ connectionString: url.href, max: 1 });
    const admin = new pg.Pool({ connectionString: url.href, max: 2 });
    t = {
      db: drizzle(pool) as unknown as TransactionalDatabase,
      admin,
      close: async () => {
        await pool.end();
        await admin.end();
      },
    };
    await migrate(t.db, { schemaName: schema });
    table = `"${schema}"."sessions"`;
    await t.admin.query(
      `INSERT INTO ${table} (id, token_hash, user_id, attributes, version, created_at, updated_at, last_accessed, expires_at)
       SELECT gen_random_uuid(), sha256(uuid_send(gen_random_uuid())), 'u-' || g, '{"a":{"v":1,"ver":1}}'::jsonb, 1,
         now() - CASE WHEN e THEN interval '40 days' ELSE interval '0' END, now(),
         now() - CASE WHEN e THEN interval '35 days' ELSE interval '0' END,
         now() + CASE WHEN e THEN interval '-1 day' ELSE interval '30 days' END
       FROM generate_series(1, ${SESSIONS}) AS g, LATERAL (SELECT g % ${EXPIRED_EVERY} = 0 AS e) AS k`,
    );
    // A cleanup at a past moment gives the old sessions their deadline, as the runs before would have.
    const armedAt = Date.now() - 40 * DAY + 49 * HOUR;
    const arming = new SessionManager(t.db, { schemaName: schema, cacheSize: 0, clock: () => armedAt });
    expect((await arming.deleteExpired({ pause: 0 })).sessions).toBe(0);
    await arming.close();
    // Its statistics reported now, not inside the measured run (PostgreSQL 15+ reports at most once a second).
    await Promise.resolve(t.db.execute(sql`SELECT pg_stat_force_next_flush()`)).catch(() => {});
    await t.db.execute(sql`SELECT 1`);
    await new Promise((res) => setTimeout(res, 1100));
    await t.admin.query(`VACUUM (INDEX_CLEANUP ON, ANALYZE) ${table}`);
    await t.admin.query(`ALTER TABLE ${table} SET (autovacuum_enabled = off)`);
  });

  afterAll(async () => {
    await t.close();
    await server.query(`DROP DATABASE IF EXISTS "${database}"`);
    await server.end();
  });

  async function blocks(): Promise<{ heap: number; index: number }> {
    await t.admin.query('SELECT pg_stat_clear_snapshot()');
    const r = await t.admin.query<{ heap: string; index: string }>(
      `SELECT (heap_blks_read + heap_blks_hit)::text AS heap, (idx_blks_read + idx_blks_hit)::text AS index
         FROM pg_statio_user_tables WHERE schemaname = $1 AND relname = 'sessions'`,
      [schema],
    );
    return { heap: Number(r.rows[0]?.heap), index: Number(r.rows[0]?.index) };
  }

  /** One cleanup run (at most `batchSize` sessions per statement): the sessions it deleted, the blocks it read. */
  async function run(batchSize?: number): Promise<{ sessions: number; batches: number; heap: number; index: number }> {
    const cleaner = new SessionManager(t.db, { schemaName: schema, cacheSize: 0 });
    const before = await blocks();
    const r = await cleaner.deleteExpired({ pause: 0, batchSize });
    // The cleaner's backend reports its statistics when idle after this request (PostgreSQL 15+).
    await Promise.resolve(t.db.execute(sql`SELECT pg_stat_force_next_flush()`)).catch(() => {});
    let after = await blocks();
    for (let i = 0; i < 40 && after.heap === before.heap; i++) {
      await new Promise((res) => setTimeout(res, 100));
      after = await blocks();
    }
    await cleaner.close();
    return { sessions: r.sessions, batches: r.batches, heap: after.heap - before.heap, index: after.index - before.index };
  }

  it('at most 7 heap block reads or hits per deleted session (8 when the delete returns its rows, 10 when the updates also read them), a few index blocks', async () => {
    const expired = SESSIONS / EXPIRED_EVERY;
    const r = await run();
    expect(r.sessions).toBe(expired);
    expect(r.heap).toBeGreaterThanOrEqual(expired);
    expect(r.heap).toBeLessThanOrEqual(7 * expired);
    expect(r.index).toBeLessThan(100);
  });

  // A run of several statements: each following one starts in the index where the one before stopped, so it
  // does not visit the heap tuple behind each entry the ones before left dead, and the planner is not given
  // bounds that make it walk those entries itself (src/db/cleanup-statement.ts). With each statement's scan
  // from the index's start, this run read 1,558 heap blocks (7.8 per deleted session). The visits are moved,
  // not saved, when no vacuum comes first: the next run's first statement makes them (run and next run:
  // 1,553 heap blocks after, 1,574 before).
  it('as many per deleted session when the run takes 10 statements', async () => {
    const expired = 200;
    // Sessions expired since the run above, scattered through the sessions of the table.
    await t.admin.query(
      `UPDATE ${table} SET expires_at = now() - interval '1 hour' * (1 + random())
        WHERE id IN (SELECT id FROM ${table} ORDER BY id LIMIT ${expired})`,
    );
    await t.admin.query(`VACUUM (INDEX_CLEANUP ON, ANALYZE) ${table}`);
    // The update's and VACUUM's block reads reported now, not inside the measured run (at most once a second).
    await new Promise((res) => setTimeout(res, 1500));
    const r = await run(expired / 10);
    expect(r.sessions).toBe(expired);
    expect(r.batches).toBeGreaterThanOrEqual(10);
    expect(r.heap).toBeGreaterThanOrEqual(expired);
    expect(r.heap).toBeLessThanOrEqual(7 * expired);
    expect(r.index).toBeLessThan(100);
  });
  // Sessions that expired absolutely before cleanup ever gave them a deadline are the 'due' source's; once
  // deleted, their entries in the 'unset' source's index stay until VACUUM. drizzle/0020's index carries the
  // absolute expiry, so the 'unset' source passes those entries in the index: this run read no heap block.
  // With drizzle/0015's index on created_at alone, its first statement read the heap tuple behind each of the
  // 2,000 entries, for nothing (it deletes none of them): 245 heap block reads or hits, the rows lying
  // together as sessions created at one time do (up to one per entry when they are spread out).
  it("reads no heap block for the 'unset' index's entries of sessions deleted as expired", async () => {
    const gone = 2000;
    await t.admin.query(
      `INSERT INTO ${table} (id, token_hash, user_id, attributes, version, created_at, updated_at, last_accessed, expires_at)
       SELECT gen_random_uuid(), sha256(uuid_send(gen_random_uuid())), 'gone-' || g, '{}'::jsonb, 1,
         now() - interval '40 days', now() - interval '40 days', now() - interval '40 days', now() - interval '1 day'
       FROM generate_series(1, ${gone}) AS g`,
    );
    await t.admin.query(`VACUUM (ANALYZE) ${table}`);
    // Deleted as the 'due' source deletes them (here by a plain DELETE: the same dead entries in every index).
    const d = await t.admin.query(`DELETE FROM ${table} WHERE user_id LIKE 'gone-%'`);
    expect(d.rowCount).toBe(gone);
    // Index scans of the 'due' index mark its dead entries, so that what is measured is the 'unset' source's.
    // A scan marks an entry only once the deleted row is dead to every snapshot, which may take a moment:
    // scanned again until a scan reads (almost) no heap block.
    const c = await t.admin.connect();
    try {
      await c.query('SET enable_seqscan = off');
      await c.query('SET enable_bitmapscan = off');
      let read = Number.POSITIVE_INFINITY;
      for (let i = 0; i < 40 && read >= 10; i++) {
        if (i > 0) await new Promise((res) => setTimeout(res, 250));
        const before = await blocks();
        await c.query(`SELECT count(*) FROM ${table} WHERE LEAST(cleanup_at, expires_at) <= now()`);
        await c.query('SELECT pg_stat_force_next_flush()');
        // Every scan reads index blocks: their count moving says the scan's statistics have been reported.
        let after = await blocks();
        for (let j = 0; j < 40 && after.index === before.index; j++) {
          await new Promise((res) => setTimeout(res, 100));
          after = await blocks();
        }
        read = after.heap - before.heap;
      }
      expect(read).toBeLessThan(10);
    } finally {
      c.release();
    }
    await new Promise((res) => setTimeout(res, 1500));
    // The run, with an idle timeout (the default 48 hours), reads both sources and finds nothing to do.
    const r = await run();
    expect(r.sessions).toBe(0);
    expect(r.heap).toBeLessThan(50);
  });
});
