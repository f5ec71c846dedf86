// Scale: what the request path, the touch flush and cleanup cost as the session table grows. Per size
// (`--sizes=N,M`; by default 100k and 1 M with --quick, 1 M and 10 M in the full run): the table loaded
// with the bulk loader (one row in a thousand expired, scattered through the table), VACUUM ANALYZE, then
// - miss p50/p99 at concurrency 1 (getSession, cacheSize 0, of sessions spread through the table);
// - a touch flush of 50k distinct sessions (rows/s) and its HOT ratio (pg_stat_user_tables
//   n_tup_hot_upd / n_tup_upd deltas), and its physical floor: a plain `UPDATE ... SET last_accessed` of
//   as many other sessions of the same spread, as many repetitions (after cleanup; the flush as a share of it);
// - deleteExpired({ pause: 0 }) with 0.1 % expired, then again with nothing expired: time, statements,
//   and blocks (pg_statio_user_tables heap + index blocks, deltas: read, i.e. fetched from outside shared
//   buffers, and read or hit; autovacuum off for the table, so they are cleanup's own), beside those of a
//   full walk of the table (a sequential scan);
// - the sync worker's RSS (worker/main.ts on that table, after its first cleanup and a touch flush: it
//   caches no session, so it should not grow with the table).
// Then the growth from the first size to the last as goal lines.
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';
import pg from 'pg';
import { SessionManager } from '../../src/core/manager.ts';
import type { BenchContext, Section } from '../lib/context.ts';
import { CountingExecutor, createSchema, dropSchema, openPool } from '../lib/db.ts';
import { closedLoop, summarize } from '../lib/measure.ts';
import { seedOursBulk, seedOursWithTokens } from '../lib/seed.ts';

const run = promisify(execFile);
const HOUR = 3_600_000;
const DAY = 24 * HOUR;
/** One row in EXPIRED_EVERY expired. */
const EXPIRED_EVERY = 1000;
/** Sessions whose tokens the bench keeps (the misses read them), spread through the table. */
const KNOWN = 10_000;
const FLUSH_ROWS = 50_000;
/** Rows per loading statement. */
const LOAD_CHUNK = 500_000;

interface Counters {
  /** Heap and index blocks read or hit (every buffer access). */
  blocks: number;
  /** Of those, read: not found in shared buffers (pg_statio's `*_blks_read`), each a distinct fetch from the OS. */
  read: number;
  upd: number;
  hot: number;
}

interface SizeFigures {
  size: number;
  missP50: number;
  missP99: number;
  flushRows: number;
  /** The plain UPDATE's rows/s (the flush's floor). */
  floorRows: number;
  hot: number;
  cleanExpiredMs: number;
  cleanExpiredRows: number;
  cleanExpiredBlocks: number;
  cleanEmptyMs: number;
  cleanEmptyBlocks: number;
  tableBlocks: number;
  workerRss: number;
}

const fmt = (n: number) => n.toLocaleString('en-US');

async function counters(ctx: BenchContext, schema: string, table: string): Promise<Counters> {
  // Statistics are read as of now, not as of this connection's previous read.
  await ctx.admin.query('SELECT pg_stat_clear_snapshot()');
  const r = await ctx.admin.query<{ blocks: string; read: string; upd: string; hot: string }>(
    `SELECT (coalesce(io.heap_blks_read, 0) + coalesce(io.heap_blks_hit, 0) + coalesce(io.idx_blks_read, 0) + coalesce(io.idx_blks_hit, 0))::text AS blocks,
            (coalesce(io.heap_blks_read, 0) + coalesce(io.idx_blks_read, 0))::text AS read,
            st.n_tup_upd::text AS upd, st.n_tup_hot_upd::text AS hot
       FROM pg_statio_user_tables io JOIN pg_stat_user_tables st USING (relid)
      WHERE io.schemaname = $1 AND io.relname = $2`,
    [schema, table],
  );
  const row = r.rows[0];
  if (row === undefined) throw new Error(`no statistics for ${schema}.${table}`);
  return { blocks: Number(row.blocks), read: Number(row.read), upd: Number(row.upd), hot: Number(row.hot) };
}

/**
 * Makes the backends of `pool` report their statistics (PostgreSQL 15+ reports them at most once a second
 * otherwise; 14's collector within half a second), then waits for the report to land.
 */
async function flushStats(pool: { query(q: string): Promise<unknown> }): Promise<void> {
  try {
    await pool.query('SELECT pg_stat_force_next_flush()');
  } catch {
    // PostgreSQL 14: no such function; its collector is told within PGSTAT_STAT_INTERVAL (500 ms).
  }
  await pool.query('SELECT 1');
  await new Promise((r) => setTimeout(r, 1100));
}

/** Runs `renice -n 10` on the backend of `client`'s one connection (best effort: it needs the right to). */
async function reniceBackend(client: pg.Pool): Promise<string> {
  const pid = (await client.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')).rows[0]?.pid;
  try {
    await run('renice', ['-n', '10', '-p', String(pid)]);
    return `backend ${pid} reniced to 10`;
  } catch (e) {
    return `backend ${pid} not reniced (${(e as Error).message.split('\n')[0]})`;
  }
}

/**
 * Loads `size` sessions into `table`: the known sessions (tokens returned) spread through the table, one
 * chunk of them between two bulk chunks. On a connection of its own whose backend is reniced (other work
 * shares the machine; everything measured afterwards runs at normal priority), with the table's indexes
 * dropped during the inserts and built again afterwards under the same names and definitions (a 10 M
 * load inserting into five btrees of random keys took 24 minutes; built afterwards they are also as
 * compact as a REINDEX leaves them).
 */
async function load(ctx: BenchContext, table: string, size: number): Promise<string[]> {
  // One backend for the whole load (never closed while idle), so the renice holds for all of it.
  const loader = new pg.Pool({ connectionString: ctx.url, max: 1, idleTimeoutMillis: 0 });
  loader.on('error', () => {});
  try {
    const niced = await reniceBackend(loader);
    await loader.query(`SET maintenance_work_mem = '512MB'`);
    const defs = await loader.query<{ name: string; def: string; constraint: string | null }>(
      `SELECT i.indexrelid::regclass::text AS name, pg_get_indexdef(i.indexrelid) AS def,
              (SELECT pg_get_constraintdef(c.oid) FROM pg_constraint c WHERE c.conindid = i.indexrelid AND c.conrelid = i.indrelid) AS constraint
         FROM pg_index i WHERE i.indrelid = $1::regclass`,
      [table],
    );
    for (const d of defs.rows) {
      if (d.constraint !== null) {
        const bare = d.name.split('.').pop() as string;
        await loader.query(`ALTER TABLE ${table} DROP CONSTRAINT ${bare}`);
      } else await loader.query(`DROP INDEX ${d.name}`);
    }
    const chunks = Math.max(1, Math.ceil(size / LOAD_CHUNK));
    const known: string[] = [];
    for (let c = 0, from = 0; c < chunks; c++) {
      const k = Math.floor(KNOWN / chunks) + (c < KNOWN % chunks ? 1 : 0);
      const bulk = Math.min(LOAD_CHUNK, size - from) - k;
      known.push(...(await seedOursWithTokens(loader, table, k, 'live', `known-${c}`)));
      await seedOursBulk(loader, table, bulk, 'live', { expiredEvery: EXPIRED_EVERY, from });
      from += bulk + k;
    }
    const t1 = performance.now();
    for (const d of defs.rows) {
      if (d.constraint !== null) {
        const bare = d.name.split('.').pop() as string;
        await loader.query(`ALTER TABLE ${table} ADD CONSTRAINT ${bare} ${d.constraint}`);
      } else await loader.query(d.def);
    }
    ctx.log(`  loaded (${niced}); ${defs.rows.length} indexes built again in ${((performance.now() - t1) / 1000).toFixed(1)} s`);
    return known;
  } finally {
    await loader.end();
  }
}

async function measureSize(ctx: BenchContext, size: number): Promise<SizeFigures> {
  const readers = await openPool(ctx.url, 1);
  const writer = await openPool(ctx.url, 1);
  const schema = await createSchema(ctx.admin, readers.db, `scale_${size}`);
  try {
    const reader = new SessionManager(readers.db, { schemaName: schema, cacheSize: 0 });
    const table = reader.names.sessions;
    const bare = table.split('.').pop()?.replaceAll('"', '') ?? table;
    const t0 = performance.now();
    const known = await load(ctx, table, size);
    // The state a table is in once cleanup has run: every session older than the idle timeout has its
    // cleanup deadline (drizzle/0015). The loader writes none, so a cleanup at a past moment (after the
    // expired rows' creation plus the idle timeout, before their end) gives the expired rows theirs;
    // the live ones are too young to be read. Without it the measured run would be the first one after
    // upgrading to drizzle/0015, which also gives every old session a deadline (bench/README.md, scale).
    const armedAt = Date.now() - 40 * DAY + 49 * HOUR;
    const arming = new SessionManager(readers.db, { schemaName: schema, cacheSize: 0, clock: () => armedAt });
    const armed = await arming.deleteExpired({ pause: 0 });
    await arming.close();
    if (armed.sessions !== 0) throw new Error(`the arming run deleted ${armed.sessions} sessions`);
    const armedRows = await ctx.admin.query<{ n: string }>(`SELECT count(*)::text AS n FROM ${table} WHERE cleanup_at IS NOT NULL`);
    // INDEX_CLEANUP ON: the arming left one dead version per expired row, on fewer than 2 % of the pages,
    // and VACUUM (14+) then skips the indexes, so every run would read a dead entry's page once more; in a
    // table where cleanup has been running, the runs since (or a later vacuum) have removed them.
    await ctx.admin.query(`VACUUM (INDEX_CLEANUP ON, ANALYZE) ${table}`);
    // The worker's RSS is measured on a table in this state too (below, after cleanup's figures).
    // Block counts are the table's, whoever reads it: autovacuum, woken by the flushes' and cleanup's dead
    // rows, would add its own reads to cleanup's.
    await ctx.admin.query(`ALTER TABLE ${table} SET (autovacuum_enabled = off)`);
    const sz = await ctx.admin.query<{ total: string; blocks: string }>(
      `SELECT pg_size_pretty(pg_total_relation_size('${table}')) AS total, (pg_relation_size('${table}') / current_setting('block_size')::int)::text AS blocks`,
    );
    const tableBlocks = Number(sz.rows[0]?.blocks);
    ctx.log(
      `  ${fmt(size)} sessions loaded in ${((performance.now() - t0) / 1000).toFixed(1)} s: ${sz.rows[0]?.total} with indexes, ${fmt(tableBlocks)} heap blocks; ${fmt(Number(armedRows.rows[0]?.n))} old sessions given their cleanup deadline`,
    );

    // --- misses at c=1
    const read = async (i: number) => {
      if ((await reader.getSession(known[(i * 7919) % known.length] as string, { touch: false })) === null)
        throw new Error('a live session was not found');
    };
    await closedLoop(read, { concurrency: 1, durationMs: ctx.warmupMs });
    const misses = [];
    for (let rep = 0; rep < ctx.reps; rep++) misses.push(await closedLoop(read, { concurrency: 1, durationMs: ctx.repMs }));
    const miss = summarize(misses);
    // The readers' statistics too, or they land (up to 10 s later) inside a measurement below.
    await flushStats(readers.pool);
    ctx.add({ id: `miss-${size}`, label: `getSession miss at ${fmt(size)} sessions (c=1)`, summary: miss });

    // --- touch flush of FLUSH_ROWS distinct sessions, and its HOT ratio
    const flusher = new SessionManager(writer.db, { schemaName: schema, cacheSize: 0 });
    const share = Math.min(100, ((2 * FLUSH_ROWS * 1.2) / size) * 100);
    // Two sets of as many sessions, taken alternately from one sample: the same spread through the table,
    // no row in both (neither finds the other's pages in the cache for its rows' sake).
    const sample = (
      await ctx.admin.query<{ id: string }>(
        `SELECT id::text AS id FROM ${table} TABLESAMPLE BERNOULLI(${share}) WHERE expires_at > now() LIMIT ${2 * FLUSH_ROWS}`,
      )
    ).rows.map((r) => r.id);
    const ids = sample.filter((_, i) => i % 2 === 0);
    const floorIds = sample.filter((_, i) => i % 2 === 1);
    const batch = flusher.config.lastAccessUpdateBatchSize;
    const flushSamples = [];
    let hotShare = 0;
    for (let rep = 0; rep < ctx.reps; rep++) {
      const before = await counters(ctx, schema, bare);
      flusher.restoreTouches(ids.map((id) => [id, Date.now() + rep]));
      const f0 = performance.now();
      const r = await flusher.flushTouches();
      const ms = performance.now() - f0;
      await flushStats(writer.pool);
      const after = await counters(ctx, schema, bare);
      const upd = after.upd - before.upd;
      hotShare = upd === 0 ? Number.NaN : (after.hot - before.hot) / upd;
      flushSamples.push({ ops: (r.rows * 1000) / ms, count: r.rows, durationMs: ms });
      ctx.log(
        `  flush of ${fmt(r.rows)} touches rep ${rep + 1}: ${fmt(Math.round((r.rows * 1000) / ms))} rows/s, ${upd} updates, ${(hotShare * 100).toFixed(1)} % HOT`,
      );
    }
    await flusher.close();
    const flushOps = summarize(flushSamples).ops;
    ctx.add({
      id: `flush-${size}`,
      label: `flushTouches of ${fmt(ids.length)} sessions at ${fmt(size)} (rows/s)`,
      summary: summarize(flushSamples),
    });

    ctx.add({
      id: `hot-${size}`,
      label: `HOT share of a touch flush's updates at ${fmt(size)} (last repetition)`,
      value: hotShare * 100,
      unit: '%',
      goal: { metric: 'value', cmp: '>=', target: 90 },
    });

    // --- cleanup with 0.1 % expired, then with nothing expired (the cleaner as the worker runs it: no cache)
    const timing = new CountingExecutor(writer.db);
    const cleaner = new SessionManager(timing, { schemaName: schema, cacheSize: 0 });
    const clean = async () => {
      const before = await counters(ctx, schema, bare);
      timing.reset();
      const c0 = performance.now();
      const r = await cleaner.deleteExpired({ pause: 0 });
      const ms = performance.now() - c0;
      const statements = timing.statements;
      await flushStats(writer.pool);
      const after = await counters(ctx, schema, bare);
      return { ms, rows: r.sessions, statements, blocks: after.blocks - before.blocks, read: after.read - before.read };
    };
    const expired = await clean();
    const empty = await clean();
    await cleaner.close();
    for (const [tag, c] of [
      ['0.1 % expired', expired],
      ['nothing expired', empty],
    ] as const) {
      ctx.log(
        `  deleteExpired({ pause: 0 }), ${tag}: ${fmt(c.rows)} rows in ${c.ms.toFixed(0)} ms, ${c.statements} statements, ${fmt(c.blocks)} blocks read or hit, ${fmt(c.read)} of them read (table: ${fmt(tableBlocks)})`,
      );
    }
    ctx.add({
      id: `cleanup-expired-${size}`,
      label: `deleteExpired({ pause: 0 }) at ${fmt(size)}, 0.1 % expired (ms)`,
      value: expired.ms,
      unit: 'ms',
      note: `${fmt(expired.rows)} rows, ${expired.statements} statements, ${fmt(expired.blocks)} blocks read or hit, ${fmt(expired.read)} read (heap ${fmt(tableBlocks)} blocks)`,
    });
    ctx.add({
      id: `cleanup-empty-${size}`,
      label: `deleteExpired({ pause: 0 }) at ${fmt(size)}, nothing expired (ms)`,
      value: empty.ms,
      unit: 'ms',
      note: `${empty.statements} statements, ${fmt(empty.blocks)} blocks read or hit, ${fmt(empty.read)} read`,
    });
    // --- the flush's floor: the same work as plain as it gets, one `UPDATE ... WHERE id = ANY(...)` per
    // batch of the flush's size, on the other set of sessions, as many repetitions (its own repetitions
    // warm its own pages, as the flush's do). After cleanup, so that cleanup finds the table as before:
    // every page an UPDATE changes is no longer all-visible, which saves cleanup's deletes on that page
    // their visibility-map reads (measured before cleanup, it cut cleanup's blocks at 1 M from 5,837 to
    // 5,551, 0.3 per deleted session, in two runs of this section on PostgreSQL 15).
    const floorSamples = [];
    for (let rep = 0; rep < ctx.reps; rep++) {
      const p0 = performance.now();
      let floorRows = 0;
      for (let i = 0; i < floorIds.length; i += batch) {
        const u = await writer.pool.query(`UPDATE ${table} SET last_accessed = $2::timestamptz WHERE id = ANY($1::uuid[])`, [
          floorIds.slice(i, i + batch),
          new Date(Date.now() + rep).toISOString(),
        ]);
        floorRows += u.rowCount ?? 0;
      }
      const floorMs = performance.now() - p0;
      floorSamples.push({ ops: (floorRows * 1000) / floorMs, count: floorRows, durationMs: floorMs });
      ctx.log(`  plain UPDATE of ${fmt(floorRows)} other sessions rep ${rep + 1}: ${fmt(Math.round((floorRows * 1000) / floorMs))} rows/s`);
    }
    const floorOps = summarize(floorSamples).ops;
    ctx.add({
      id: `flush-floor-${size}`,
      label: `plain UPDATE ... SET last_accessed of ${fmt(floorIds.length)} other sessions at ${fmt(size)}, batches of ${fmt(batch)} (rows/s, the flush's floor)`,
      summary: summarize(floorSamples),
    });
    ctx.add({
      id: `flush-vs-floor-${size}`,
      label: `flushTouches rows/s as a share of the plain UPDATE's at ${fmt(size)}`,
      value: (flushOps / floorOps) * 100,
      unit: '%',
    });
    // --- a full walk of the table, what cleanup cost before drizzle/0015 at the least (it walked the heap in
    // block ranges, twice): a sequential scan of every block, counted the same way. Last before the worker,
    // so that its reads leave nothing measured above warmer or colder (a sequential scan of a table larger
    // than a quarter of shared_buffers goes through a small ring of buffers and evicts almost nothing).
    // The plain UPDATEs' statistics first, or they land inside the walk's.
    await flushStats(writer.pool);
    const walkBefore = await counters(ctx, schema, bare);
    const w0 = performance.now();
    // On a column no index holds, and with index scans off, so that it is the sequential scan it stands for.
    await writer.pool.query(
      `BEGIN; SET LOCAL enable_indexscan = off; SET LOCAL enable_indexonlyscan = off; SET LOCAL enable_bitmapscan = off;
       SELECT count(*) FROM ${table} WHERE last_accessed <= now(); COMMIT`,
    );
    const walkMs = performance.now() - w0;
    await flushStats(writer.pool);
    const walkAfter = await counters(ctx, schema, bare);
    const walk = { blocks: walkAfter.blocks - walkBefore.blocks, read: walkAfter.read - walkBefore.read };
    ctx.log(
      `  full walk (sequential scan): ${fmt(walk.blocks)} blocks read or hit, ${fmt(walk.read)} of them read, in ${walkMs.toFixed(0)} ms`,
    );
    // The goal asked of cleanup: it reads at most 5 % of the blocks a full walk reads. Read: fetched from
    // outside shared buffers (pg_statio's `*_blks_read`), so each block once per run as long as it stays in
    // them; a table that fits in shared buffers is read by neither (a measure for tables larger than them:
    // 1 M and 10 M sessions are 4 and 40 times the default 128 MB). Its buffer accesses, hits included, are
    // the second line: about 7 per deleted session, which with 15 sessions per heap block and one in a
    // thousand expired is about 10 % of the heap's blocks (bench/README.md, Scale: where a run's blocks go).
    ctx.add({
      id: `cleanup-read-${size}`,
      label: `blocks cleanup reads with 0.1 % expired at ${fmt(size)}, as % of the blocks a full walk reads`,
      value: (expired.read / Math.max(1, walk.blocks)) * 100,
      unit: '%',
      note: `${fmt(expired.read)} read, the walk ${fmt(walk.blocks)} read or hit (${fmt(walk.read)} read)`,
      goal: { metric: 'value', cmp: '<=', target: 5 },
    });
    ctx.add({
      id: `cleanup-blocks-${size}`,
      label: `buffer accesses (blocks read or hit) of cleanup with 0.1 % expired at ${fmt(size)}, as % of a full walk's`,
      value: (expired.blocks / Math.max(1, walk.blocks)) * 100,
      unit: '%',
      note: `${fmt(expired.blocks)} of ${fmt(walk.blocks)}; ${(expired.blocks / Math.max(1, expired.rows)).toFixed(1)} per deleted session`,
    });
    // --- the sync worker's memory with this many sessions in its table (it caches none)
    const child = join(import.meta.dirname, '..', 'lib', 'worker-memory-child.ts');
    const { stdout } = await run(process.execPath, ['--expose-gc', '--import', 'tsx', child, '--rss', ctx.url, schema], {
      cwd: join(import.meta.dirname, '..', '..'),
      maxBuffer: 1 << 20,
    });
    const mem = JSON.parse(stdout.trim().split('\n').at(-1) ?? '{}') as { rss: number; heapUsed: number };
    const mib = (b: number) => b / (1024 * 1024);
    ctx.log(
      `  sync worker after its first cleanup and a flush: RSS ${mib(mem.rss).toFixed(1)} MiB, heap ${mib(mem.heapUsed).toFixed(1)} MiB`,
    );
    ctx.add({
      id: `worker-rss-${size}`,
      label: `sync worker RSS with ${fmt(size)} sessions in the table (after its first cleanup and a flush, forced GC)`,
      value: mib(mem.rss),
      unit: 'MiB',
      note: `heap ${mib(mem.heapUsed).toFixed(1)} MiB`,
    });
    return {
      size,
      workerRss: mem.rss,
      missP50: miss.p50 ?? Number.NaN,
      missP99: miss.p99 ?? Number.NaN,
      flushRows: flushOps,
      floorRows: floorOps,
      hot: hotShare,
      cleanExpiredMs: expired.ms,
      cleanExpiredRows: expired.rows,
      cleanExpiredBlocks: expired.blocks,
      cleanEmptyMs: empty.ms,
      cleanEmptyBlocks: empty.blocks,
      tableBlocks,
    };
  } finally {
    await dropSchema(ctx.admin, schema);
    await readers.close();
    await writer.close();
  }
}

export const scale: Section = {
  name: 'scale',
  title: 'Scale',
  async run(ctx) {
    const sizes = ctx.sizes ?? ctx.pick([100_000, 1_000_000], [1_000_000, 10_000_000]);
    const figures: SizeFigures[] = [];
    for (const size of sizes) {
      ctx.log(`  -- ${fmt(size)} sessions`);
      figures.push(await measureSize(ctx, size));
    }
    const a = figures[0];
    const b = figures[figures.length - 1];
    if (a === undefined || b === undefined || a === b) return;
    const growth = `${fmt(a.size)} → ${fmt(b.size)}`;
    const perRow = (f: SizeFigures) => f.cleanExpiredMs / Math.max(1, f.cleanExpiredRows);
    const lines: [id: string, label: string, value: number, cmp: '<=' | '>=', target: number][] = [
      ['growth-miss-p50', `miss p50 growth ${growth} (×)`, b.missP50 / a.missP50, '<=', 1.2],
      ['growth-flush', `flush rows/s growth ${growth} (×)`, b.flushRows / a.flushRows, '>=', 0.8],
      // The same, measured against what the table lets any UPDATE of those rows do (its floor, above).
      [
        'growth-flush-vs-floor',
        `flush rows/s as a share of a plain UPDATE's, growth ${growth} (×)`,
        b.flushRows / b.floorRows / (a.flushRows / a.floorRows),
        '>=',
        0.8,
      ],
      ['growth-cleanup-per-row', `cleanup time per expired row growth ${growth} (×)`, perRow(b) / perRow(a), '<=', 1.5],
      ['growth-cleanup-empty', `cleanup with nothing expired, time growth ${growth} (×)`, b.cleanEmptyMs / a.cleanEmptyMs, '<=', 2],
      ['growth-worker-rss', `sync worker RSS growth ${growth} (×)`, b.workerRss / a.workerRss, '<=', 1.2],
    ];
    for (const [id, label, value, cmp, target] of lines) ctx.add({ id, label, value, unit: '×', goal: { metric: 'value', cmp, target } });
  },
};
