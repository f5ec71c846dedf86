// Cleanup: deleteExpired of N expired sessions next to connect-pg-simple's pruneSessions of N expired
// rows in its table, the longest single statement of our cleanup, and what each does to the p99 of
// concurrent getSession misses.
import { SessionManager } from '../../src/manager.ts';
import type { Section } from '../lib/context.ts';
import { CountingExecutor, createSchema, dropSchema, openPool } from '../lib/db.ts';
import { closedLoop, type Sample, summarize } from '../lib/measure.ts';
import { createPeerTable, openPeer } from '../lib/peer.ts';
import { seedOursBulk, seedOursWithTokens, seedPeerBulk, seedPeerWithSids } from '../lib/seed.ts';

const LOAD_CONCURRENCY = 4;

export const cleanup: Section = {
  name: 'cleanup',
  title: 'Cleanup',
  async run(ctx) {
    // deleteExpired is paced (it waits 30x each statement's duration so readers keep the CPU), so
    // --quick uses fewer rows to stay within its two minutes.
    const n = ctx.pick(20_000, 1_000_000);
    const live = ctx.pick(5_000, 50_000);
    const reps = ctx.pick(ctx.reps, Math.min(ctx.reps, 3));
    const loadPool = await openPool(ctx.url, LOAD_CONCURRENCY);
    const cleanPool = await openPool(ctx.url, 1);
    const peerPool = await openPool(ctx.url, 1);
    const schema = await createSchema(ctx.admin, loadPool.db, 'cleanup');
    try {
      const peerTable = await createPeerTable(ctx.admin, schema);
      const peer = openPeer(peerPool.pool, schema);
      // Readers: getSession misses (cacheSize 0) on live sessions, as a request path would do.
      const reader = new SessionManager(loadPool.db, { schemaName: schema, cacheSize: 0 });
      const table = reader.names.sessions;
      const tokens = await seedOursWithTokens(ctx.admin, table, live);
      await seedPeerWithSids(ctx.admin, peerTable, live);
      const timing = new CountingExecutor(cleanPool.db, { time: true });
      const cleaner = new SessionManager(timing, { schemaName: schema });
      let stop = false;
      const read = async (i: number) => {
        if ((await reader.getSession(tokens[i % live] as string, { touch: false })) === null)
          throw new Error('a live session was not found');
      };
      const underLoad = async (work: () => Promise<void>): Promise<{ load: Sample; ms: number }> => {
        stop = false;
        const load = closedLoop(read, { concurrency: LOAD_CONCURRENCY, until: () => stop });
        const t0 = performance.now();
        try {
          await work();
        } finally {
          stop = true;
        }
        const ms = performance.now() - t0;
        return { load: await load, ms };
      };
      const prepare = async (seed: () => Promise<void>, tableName: string) => {
        await seed();
        await ctx.admin.query(`VACUUM ANALYZE ${tableName}`);
      };

      await closedLoop(read, { concurrency: LOAD_CONCURRENCY, durationMs: ctx.warmupMs });
      const ours: Sample[] = [];
      const theirs: Sample[] = [];
      const baselines: number[] = [];
      const oursP99: number[] = [];
      const theirsP99: number[] = [];
      const pruneMs: number[] = [];
      let longest = 0;
      let batchInfo = '';
      for (let rep = 0; rep < reps; rep++) {
        // Ours.
        await prepare(() => seedOursBulk(ctx.admin, table, n, 'expired'), table);
        const base = await closedLoop(read, { concurrency: LOAD_CONCURRENCY, durationMs: Math.max(1000, ctx.repMs * 2) });
        timing.reset();
        let deleted = 0;
        const kinds: string[] = [];
        const o = await underLoad(async () => {
          const r = await cleaner.deleteExpired({ onBatch: (kind) => kinds.push(kind) });
          deleted = r.sessions;
        });
        if (deleted !== n) throw new Error(`deleteExpired deleted ${deleted} of ${n} expired sessions`);
        const d = timing.durations;
        const max = Math.max(...d);
        if (max > longest) longest = max;
        // The wrapper timed the same statements onBatch reported, in the same order.
        const sessionMs = d.filter((_, i) => kinds[i] === 'sessions');
        const attributeMs = d.filter((_, i) => kinds[i] === 'attributes');
        const f = (x: number | undefined) => `${x?.toFixed(0)} ms`;
        batchInfo = `${sessionMs.length} session batches: first ${f(sessionMs[0])}, last ${f(sessionMs.at(-1))}, max ${f(Math.max(...sessionMs))}; expired-attribute pass: ${attributeMs.length} statement(s), ${f(attributeMs.reduce((a, b) => a + b, 0))}`;
        ours.push({ ops: (n * 1000) / o.ms, count: n, durationMs: o.ms });
        baselines.push(base.p99 ?? Number.NaN);
        oursP99.push(o.load.p99 ?? Number.NaN);
        ctx.log(
          `  deleteExpired ${n} rep ${rep + 1}: ${Math.round((n * 1000) / o.ms).toLocaleString('en-US')} rows/s; longest statement ${max.toFixed(0)} ms (${batchInfo}); reader p99 ${o.load.p99?.toFixed(2)} ms vs ${base.p99?.toFixed(2)} ms alone`,
        );
        // Theirs.
        await prepare(() => seedPeerBulk(ctx.admin, peerTable, n, 'expired'), peerTable);
        const p = await underLoad(() => peer.prune());
        const left = await ctx.admin.query<{ n: number }>(`SELECT count(*)::integer AS n FROM ${peerTable}`);
        if (left.rows[0]?.n !== live) throw new Error(`pruneSessions left ${left.rows[0]?.n} rows, expected ${live}`);
        theirs.push({ ops: (n * 1000) / p.ms, count: n, durationMs: p.ms });
        theirsP99.push(p.load.p99 ?? Number.NaN);
        pruneMs.push(p.ms);
        ctx.log(
          `  pruneSessions ${n} rep ${rep + 1}: ${Math.round((n * 1000) / p.ms).toLocaleString('en-US')} rows/s; reader p99 ${p.load.p99?.toFixed(2)} ms`,
        );
      }
      const pct = (during: number[]) => {
        const changes = during.map((v, i) => ((v - (baselines[i] as number)) / (baselines[i] as number)) * 100);
        return summarize(changes.map((c) => ({ ops: c, count: 1, durationMs: 0 }))).ops;
      };
      ctx.add({
        id: 'peer-prune',
        label: `connect-pg-simple pruneSessions of ${n.toLocaleString('en-US')} expired (rows/s)`,
        summary: summarize(theirs),
        reference: true,
      });
      ctx.add({
        id: 'delete-expired',
        label: `deleteExpired of ${n.toLocaleString('en-US')} expired (rows/s)`,
        summary: summarize(ours),
        peer: 'peer-prune',
        note: `${live.toLocaleString('en-US')} live sessions stay in each table; batch size ${cleaner.config.lastAccessUpdateBatchSize}; paced by design (pause 30x each statement's duration, about 3% of a database core), unlike the peer's single DELETE`,
      });
      ctx.add({
        id: 'longest-batch',
        label: 'deleteExpired: longest single statement',
        value: longest,
        unit: 'ms',
        note: `last repetition: ${batchInfo}`,
      });
      ctx.add({
        id: 'reader-p99-change',
        label: `getSession miss p99 (c=${LOAD_CONCURRENCY}) while deleteExpired runs vs without`,
        value: pct(oursP99),
        unit: '%',
        goal: { metric: 'value', cmp: '<', target: 10 },
        note: `p99 alone ${summarize(baselines.map((b) => ({ ops: b, count: 1, durationMs: 0 }))).ops.toFixed(2)} ms, during deleteExpired ${summarize(oursP99.map((b) => ({ ops: b, count: 1, durationMs: 0 }))).ops.toFixed(2)} ms`,
      });
      ctx.add({
        id: 'reader-p99-change-peer',
        label: `getSession miss p99 (c=${LOAD_CONCURRENCY}) while pruneSessions runs vs without`,
        value: pct(theirsP99),
        unit: '%',
        reference: true,
        note: `pruneSessions is one DELETE lasting ~${Math.round(summarize(pruneMs.map((ms) => ({ ops: ms, count: 1, durationMs: ms }))).ops)} ms, so this p99 covers a short window`,
      });
      await cleaner.close();
      await reader.close();
    } finally {
      await dropSchema(ctx.admin, schema);
      await loadPool.close();
      await cleanPool.close();
      await peerPool.close();
    }
  },
};
