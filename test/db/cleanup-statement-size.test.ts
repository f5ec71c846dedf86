// How many sessions each cleanup statement reads (src/db/cleanup.ts, CLEANUP_STATEMENT_MS): a run starts
// small, never goes over batchSize, and a statement that took long makes the next one smaller, so that on a
// loaded machine a statement holds its locks for tens of milliseconds, not for a whole batch. The database
// is made slow by a trigger that sleeps for each deleted row: a statement can only be slower than that,
// never faster, so what is asserted does not depend on this machine's speed.
import type { SQL } from 'drizzle-orm';
import { PgDialect } from 'drizzle-orm/pg-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SessionManager } from '../../src/core/manager.ts';
import { nextLimit } from '../../src/db/cleanup.ts';
import type { TransactionalDatabase } from '../../src/db/executor.ts';
import { migrate } from '../../src/migrate.ts';
import { dropSchema, openDb, type TestDb, uniqueSchema } from '../support/db.ts';

describe('cleanup statements follow a time budget', () => {
  let t: TestDb;
  const schema = uniqueSchema('cleanup_size');
  const table = `"${schema}"."sessions"`;

  /** `n` sessions that expired an hour ago. */
  async function expired(n: number): Promise<void> {
    await t.admin.query(
      `INSERT INTO ${table} (id, token_hash, user_id, attributes, version, created_at, updated_at, last_accessed, expires_at)
       SELECT gen_random_uuid(), sha256(uuid_send(gen_random_uuid())), 'u-' || g, '{}'::jsonb, 1,
         now() - interval '2 hours', now() - interval '2 hours', now() - interval '2 hours', now() - interval '1 hour'
       FROM generate_series(1, ${n}) AS g`,
    );
  }

  async function run(m: SessionManager, batchSize?: number): Promise<{ rows: number[]; ms: number[]; sessions: number }> {
    const rows: number[] = [];
    const ms: number[] = [];
    const r = await m.deleteExpired({
      pause: 0,
      batchSize,
      onBatch: (_kind, n, took) => {
        rows.push(n);
        ms.push(took);
      },
    });
    return { rows, ms, sessions: r.sessions };
  }

  beforeAll(async () => {
    t = await openDb('node-postgres');
    await migrate(t.db, { schemaName: schema });
  });
  afterAll(async () => {
    await dropSchema(t.admin, schema);
    await t.close();
  });

  it('starts at 500 sessions, not at batchSize, and deletes every expired one', async () => {
    await expired(3000);
    const m = new SessionManager(t.db, { schemaName: schema, cacheSize: 0 });
    const r = await run(m);
    expect(m.config.lastAccessUpdateBatchSize).toBe(5000);
    expect(r.sessions).toBe(3000);
    expect(r.rows[0]).toBe(500);
    expect(Math.max(...r.rows)).toBeLessThanOrEqual(5000);
    expect(r.rows.reduce((a, b) => a + b, 0)).toBe(3000);
    await m.close();
  });

  it('makes the statement after a slow one smaller: 500 rows slept 0.25 ms each, the next reads at most 125', async () => {
    await t.admin.query(`CREATE FUNCTION "${schema}".slow() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN PERFORM pg_sleep(0.00025); RETURN OLD; END $$`);
    await t.admin.query(`CREATE TRIGGER slow BEFORE DELETE ON ${table} FOR EACH ROW EXECUTE FUNCTION "${schema}".slow()`);
    try {
      await expired(1000);
      const m = new SessionManager(t.db, { schemaName: schema, cacheSize: 0 });
      const r = await run(m);
      expect(r.sessions).toBe(1000);
      // 500 rows of at least 0.25 ms each: at least 125 ms, six times the budget; the next is a quarter (the
      // most it shrinks in one step) and stays at most that while statements stay slow.
      expect(r.rows[0]).toBe(500);
      expect(r.ms[0]).toBeGreaterThanOrEqual(125);
      expect(r.rows[1]).toBeLessThanOrEqual(125);
      // Each statement's size came from the one before it, never under the floor of 100 rows (the last one
      // with rows took what was left).
      const last = r.rows.findLastIndex((n) => n > 0);
      expect(last).toBeGreaterThanOrEqual(3);
      for (let i = 1; i < last; i++) {
        expect(r.rows[i]).toBe(nextLimit(r.rows[i - 1] as number, r.ms[i - 1] as number, 5000));
        expect(r.rows[i]).toBeGreaterThanOrEqual(100);
      }
      await m.close();
    } finally {
      await t.admin.query(`DROP TRIGGER slow ON ${table}`);
    }
  });

  it('keeps a small batchSize exact, however slow the statements', async () => {
    await t.admin.query(`CREATE TRIGGER slow BEFORE DELETE ON ${table} FOR EACH ROW EXECUTE FUNCTION "${schema}".slow()`);
    try {
      await expired(50);
      const m = new SessionManager(t.db, { schemaName: schema, cacheSize: 0 });
      const r = await run(m, 10);
      expect(r.sessions).toBe(50);
      // Then a statement that finds none left (and one of the unset source: default idle timeout).
      expect(r.rows.filter((n) => n > 0)).toEqual([10, 10, 10, 10, 10]);
      await m.close();
    } finally {
      await t.admin.query(`DROP TRIGGER slow ON ${table}`);
    }
  });

  it('grows by at most double, shrinks by at most a quarter, stays between the floor and batchSize', () => {
    expect(nextLimit(500, 1, 5000)).toBe(1000);
    expect(nextLimit(4000, 1, 5000)).toBe(5000);
    expect(nextLimit(500, 20, 5000)).toBe(500);
    expect(nextLimit(1000, 40, 5000)).toBe(500);
    expect(nextLimit(1000, 10_000, 5000)).toBe(250);
    expect(nextLimit(200, 10_000, 5000)).toBe(100);
    expect(nextLimit(10, 10_000, 10)).toBe(10);
    expect(nextLimit(2, 0, 2)).toBe(2);
  });
  // Each statement walks the index in the deadline's order and stops at its limit (src/db/cleanup-statement.ts):
  // no sort, no bitmap scan, which would read every due session in every statement whatever its limit. The
  // plans of a run's statements, each explained just before it runs.
  it("reads its limit's sessions through the index in order, not every due session: no sort in any statement's plan", async () => {
    // As the bench's cleanup section has them: live sessions, then the expired ones, vacuumed.
    await t.admin.query(
      `INSERT INTO ${table} (id, token_hash, user_id, attributes, version, created_at, updated_at, last_accessed, expires_at)
       SELECT gen_random_uuid(), sha256(uuid_send(gen_random_uuid())), 'live-' || g, '{}'::jsonb, 1, now(), now(), now(), now() + interval '1 day'
       FROM generate_series(1, 5000) AS g`,
    );
    await expired(30_000);
    await t.admin.query(`VACUUM ANALYZE ${table}`);
    const dialect = new PgDialect();
    const plans: string[] = [];
    const explaining = {
      async execute(q: SQL) {
        const { sql: text, params } = dialect.sqlToQuery(q);
        if (text.includes('WITH c AS MATERIALIZED')) {
          const r = await t.admin.query<{ 'QUERY PLAN': string }>(`EXPLAIN ${text}`, params);
          plans.push(r.rows.map((x) => x['QUERY PLAN']).join('\n'));
        }
        return t.db.execute(q);
      },
    };
    const m = new SessionManager(explaining as unknown as TransactionalDatabase, { schemaName: schema, cacheSize: 0 });
    const r = await run(m);
    expect(r.sessions).toBe(30_000);
    // Statements after the first start where the one before stopped (two bounds on the key).
    expect(plans.length).toBeGreaterThanOrEqual(5);
    for (const plan of plans) {
      const pick = plan.slice(plan.indexOf('CTE c'), plan.indexOf('CTE d'));
      expect(pick).toMatch(/Index Scan using \S*sessions_(cleanup|unset)_idx/);
      expect(pick).not.toMatch(/Sort|Bitmap/);
      // Every statement, the first too, bounds its key on both sides, so the planner expects a small share
      // of the table (a tenth of a narrow range), not a tenth of a third of it: the estimated cost, which
      // decides whether PostgreSQL compiles the statement with JIT first, stays small as the table grows.
      // With one bound, the first statement here estimated 1,167 of the 35,000 rows.
      const estimate = Number(/CTE c\s+->\s+Limit\s+\(cost=[\d.]+ rows=(\d+)/.exec(pick)?.[1]);
      expect(estimate).toBeGreaterThan(0);
      expect(estimate).toBeLessThanOrEqual(35_000 / 1000);
    }
    await m.close();
  });
});
