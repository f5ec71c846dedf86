// The floors: what the driver, PostgreSQL and a bare cache do without the library. Sections measure the
// floors they compare against next to their own figures (same run, interleaved), so a ratio never mixes
// two different moments of a noisy machine.
import { sql } from 'drizzle-orm';
import { LRUCache } from 'lru-cache';
import type pg from 'pg';
import { generateToken } from '../../src/core/token.ts';
import type { SqlExecutor } from '../../src/db/executor.ts';
import type { BenchContext } from './context.ts';
import { type Contestant, closedLoop, tightLoop } from './measure.ts';
import { seedOursWithTokens } from './seed.ts';

/** `Map.get` of one key (a token) in a map of 10k entries. */
export function mapGet(ctx: BenchContext, id = 'map-get'): Contestant {
  const m = new Map<string, { n: number }>();
  for (let i = 0; i < 10_000; i++) m.set(generateToken(), { n: i });
  const key = generateToken();
  m.set(key, { n: -1 });
  return { id, warmup: () => tightLoop(() => m.get(key), ctx.warmupMs), run: () => tightLoop(() => m.get(key), ctx.repMs) };
}

/** `LRUCache.get` of one key in a cache of 10k entries (the cache the library uses). */
export function lruGet(ctx: BenchContext, id = 'lru-get'): Contestant {
  const c = new LRUCache<string, { n: number }>({ max: 10_000 });
  for (let i = 0; i < 10_000; i++) c.set(generateToken(), { n: i });
  const key = generateToken();
  c.set(key, { n: -1 });
  return { id, warmup: () => tightLoop(() => c.get(key), ctx.warmupMs), run: () => tightLoop(() => c.get(key), ctx.repMs) };
}

/** `db.execute(sql\`SELECT ${i}::int\`)`: one round trip through Drizzle and node-postgres. */
export function selectRoundTrip(ctx: BenchContext, db: SqlExecutor, concurrency: number, id = `select1-c${concurrency}`): Contestant {
  const op = (i: number) => db.execute(sql`SELECT ${i}::int AS n`) as Promise<unknown>;
  return {
    id,
    warmup: () => closedLoop(op, { concurrency, durationMs: ctx.warmupMs }),
    run: () => closedLoop(op, { concurrency, durationMs: ctx.repMs }),
  };
}

/**
 * A table like the library's sessions table (same columns, same indexes, no trigger), holding `rows`
 * sessions; returns its name and the ids of the first `workers` rows, one per worker.
 */
export async function createFloorTable(
  admin: pg.Pool,
  schema: string,
  rows: number,
  workers: number,
): Promise<{ table: string; ids: string[] }> {
  const table = `"${schema}"."floor_sessions"`;
  await admin.query(`CREATE TABLE ${table} (LIKE "${schema}"."sessions" INCLUDING ALL)`);
  await seedOursWithTokens(admin, table, rows, 'live', 'floor');
  await admin.query(`ANALYZE ${table}`);
  const r = await admin.query<{ id: string }>(`SELECT id::text AS id FROM ${table} ORDER BY id LIMIT $1`, [workers]);
  return { table, ids: r.rows.map((x) => x.id) };
}

/** A plain one-row UPDATE (version and updated_at), each worker on its own row: what PostgreSQL can do. */
export function plainUpdate(
  ctx: BenchContext,
  db: SqlExecutor,
  table: string,
  ids: string[],
  id = `plain-update-c${ids.length}`,
): Contestant {
  const t = sql.raw(table);
  const op = (_i: number, w: number) =>
    db.execute(
      sql`UPDATE ${t} SET version = version + 1, updated_at = ${new Date().toISOString()}::timestamptz WHERE id = ${ids[w]}::uuid`,
    ) as Promise<unknown>;
  return {
    id,
    warmup: () => closedLoop(op, { concurrency: ids.length, durationMs: ctx.warmupMs }),
    run: () => closedLoop(op, { concurrency: ids.length, durationMs: ctx.repMs }),
  };
}
