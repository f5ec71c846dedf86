// Cleanup: deleteExpired of N expired sessions, paced (the default) and flat out (pause: 0), next to
// connect-pg-simple's pruneSessions of N expired rows in its table; the longest single statement; and
// what each does to the p99 of concurrent getSession misses.
//
// Reader p99: the readers run without a break from a window before the cleanup to a window after it, and
// every request is stamped with its start. The p99 of the requests that started while the cleanup ran is
// compared with the p99 of those in the equally long windows right before and right after it (half each),
// so the machine's slow drifts (other work on a shared host) land on both sides alike.
import { SessionManager } from '../../src/core/manager.ts';
import type { Section } from '../lib/context.ts';
import { CountingExecutor, createSchema, dropSchema, openPool } from '../lib/db.ts';
import { closedLoop, median, type Sample, summarize } from '../lib/measure.ts';
import { createPeerTable, openPeer } from '../lib/peer.ts';
import { seedOursBulk, seedOursWithTokens, seedPeerBulk, seedPeerWithSids } from '../lib/seed.ts';

const LOAD_CONCURRENCY = 4;

/** Request start times and latencies (ms) of the readers. */
class Stamps {
  starts: number[] = [];
  lat: number[] = [];
  p99(from: number, to: number): { p99: number; count: number } {
    const v: number[] = [];
    for (let i = 0; i < this.starts.length; i++) {
      const s = this.starts[i] as number;
      if (s >= from && s < to) v.push(this.lat[i] as number);
    }
    v.sort((a, b) => a - b);
    return { p99: v.length === 0 ? Number.NaN : (v[Math.min(v.length - 1, Math.ceil(0.99 * v.length) - 1)] as number), count: v.length };
  }
}

interface Run {
  ms: number;
  /** Reader p99 during the work, and in the windows around it. */
  during: number;
  around: number;
  /** (during − around) / around, in %. */
  change: number;
}

export const cleanup: Section = {
  name: 'cleanup',
  title: 'Cleanup',
  async run(ctx) {
    // Paced under load, cleanup runs at a few thousand rows per second: the full run keeps it to minutes.
    const n = ctx.pick(30_000, 200_000);
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
      // The cleaner as the worker runs it: no cache of its own.
      const cleaner = new SessionManager(timing, { schemaName: schema, cacheSize: 0 });
      const read = async (i: number) => {
        if ((await reader.getSession(tokens[i % live] as string, { touch: false })) === null)
          throw new Error('a live session was not found');
      };
      /** Runs `work` while the readers run, with a reader-only window of `around` ms before and after it. */
      const underLoad = async (work: () => Promise<void>, aroundMs: number): Promise<Run> => {
        const stamps = new Stamps();
        let stop = false;
        let k = 0;
        const loop = async () => {
          while (!stop) {
            const t0 = performance.now();
            await read(k++);
            stamps.starts.push(t0);
            stamps.lat.push(performance.now() - t0);
          }
        };
        const load = Promise.all(Array.from({ length: LOAD_CONCURRENCY }, loop));
        const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
        const b0 = performance.now();
        await sleep(aroundMs);
        const t0 = performance.now();
        let result: Run | undefined;
        try {
          await work();
        } finally {
          const t1 = performance.now();
          await sleep(aroundMs);
          stop = true;
          await load;
          const ms = t1 - t0;
          // Windows as long as the work (at most `aroundMs` each), right before and right after it.
          const w = Math.min(aroundMs, Math.max(ms / 2, 250));
          const before = stamps.p99(Math.max(b0, t0 - w), t0);
          const after = stamps.p99(t1, t1 + w);
          const during = stamps.p99(t0, t1).p99;
          const around = (before.p99 * before.count + after.p99 * after.count) / (before.count + after.count);
          result = { ms, during, around, change: ((during - around) / around) * 100 };
        }
        return result;
      };
      const prepare = async (seed: () => Promise<void>, tableName: string) => {
        await seed();
        await ctx.admin.query(`VACUUM ANALYZE ${tableName}`);
      };

      await closedLoop(read, { concurrency: LOAD_CONCURRENCY, durationMs: ctx.warmupMs });
      const around = ctx.pick(1500, 3000);
      const paced: Sample[] = [];
      const flat: Sample[] = [];
      const theirs: Sample[] = [];
      const change = { paced: [] as number[], flat: [] as number[], peer: [] as number[] };
      const p99s = { paced: [] as number[], flat: [] as number[], peer: [] as number[], around: [] as number[] };
      const pruneMs: number[] = [];
      let longest = 0;
      let batchInfo = '';
      const ours = async (mode: 'paced' | 'flat', rep: number) => {
        await prepare(() => seedOursBulk(ctx.admin, table, n, 'expired'), table);
        timing.reset();
        let deleted = 0;
        const r = await underLoad(async () => {
          const res = await cleaner.deleteExpired(mode === 'flat' ? { pause: 0 } : {});
          deleted = res.sessions;
        }, around);
        if (deleted !== n) throw new Error(`deleteExpired deleted ${deleted} of ${n} expired sessions`);
        const max = Math.max(...timing.durations);
        if (max > longest) longest = max;
        batchInfo = `${timing.durations.length} statements, median ${median(timing.durations).toFixed(1)} ms, max ${max.toFixed(0)} ms`;
        (mode === 'flat' ? flat : paced).push({ ops: (n * 1000) / r.ms, count: n, durationMs: r.ms });
        change[mode].push(r.change);
        p99s[mode].push(r.during);
        p99s.around.push(r.around);
        ctx.log(
          `  deleteExpired ${mode === 'flat' ? '(pause 0)' : '(paced)'} ${n} rep ${rep + 1}: ${Math.round((n * 1000) / r.ms).toLocaleString('en-US')} rows/s (${batchInfo}); reader p99 ${r.during.toFixed(2)} ms vs ${r.around.toFixed(2)} ms around it (${r.change >= 0 ? '+' : ''}${r.change.toFixed(1)}%)`,
        );
      };
      const quiet: Sample[] = [];
      for (let rep = 0; rep < reps; rep++) {
        // The default pace with no readers: what it speeds up to when the database is otherwise idle.
        await prepare(() => seedOursBulk(ctx.admin, table, n, 'expired'), table);
        const q0 = performance.now();
        const q = await cleaner.deleteExpired();
        const qms = performance.now() - q0;
        if (q.sessions !== n) throw new Error(`deleteExpired deleted ${q.sessions} of ${n} expired sessions`);
        quiet.push({ ops: (n * 1000) / qms, count: n, durationMs: qms });
        ctx.log(`  deleteExpired (paced, no readers) ${n} rep ${rep + 1}: ${Math.round((n * 1000) / qms).toLocaleString('en-US')} rows/s`);
        await ours('paced', rep);
        await ours('flat', rep);
        await prepare(() => seedPeerBulk(ctx.admin, peerTable, n, 'expired'), peerTable);
        const p = await underLoad(() => peer.prune(), around);
        const left = await ctx.admin.query<{ n: number }>(`SELECT count(*)::integer AS n FROM ${peerTable}`);
        if (left.rows[0]?.n !== live) throw new Error(`pruneSessions left ${left.rows[0]?.n} rows, expected ${live}`);
        theirs.push({ ops: (n * 1000) / p.ms, count: n, durationMs: p.ms });
        change.peer.push(p.change);
        p99s.peer.push(p.during);
        pruneMs.push(p.ms);
        ctx.log(
          `  pruneSessions ${n} rep ${rep + 1}: ${Math.round((n * 1000) / p.ms).toLocaleString('en-US')} rows/s; reader p99 ${p.during.toFixed(2)} ms vs ${p.around.toFixed(2)} ms around it`,
        );
      }
      const med = (v: number[]) => median(v);
      ctx.add({
        id: 'peer-prune',
        label: `connect-pg-simple pruneSessions of ${n.toLocaleString('en-US')} expired (rows/s)`,
        summary: summarize(theirs),
        reference: true,
        note: `one DELETE lasting ~${Math.round(med(pruneMs))} ms; reader p99 ${med(change.peer) >= 0 ? '+' : ''}${med(change.peer).toFixed(1)}% while it runs`,
      });
      ctx.add({
        id: 'delete-expired',
        label: `deleteExpired of ${n.toLocaleString('en-US')} expired, paced (default) (rows/s)`,
        summary: summarize(paced),
        peer: 'peer-prune',
        goal: { metric: 'ops', cmp: '>=', target: 50_000 },
        note: `${live.toLocaleString('en-US')} live sessions stay in each table; batch size ${cleaner.config.lastAccessUpdateBatchSize}; the cleaner has no cache (as in the worker)`,
      });
      ctx.add({
        id: 'delete-expired-quiet',
        label: `deleteExpired of ${n.toLocaleString('en-US')} expired, paced (default), no readers (rows/s)`,
        summary: summarize(quiet),
        reference: true,
        note: 'the adaptive pace with no other session running queries: down to a pause of 1x each statement',
      });
      ctx.add({
        id: 'reader-p99-change',
        label: `getSession miss p99 (c=${LOAD_CONCURRENCY}) while paced deleteExpired runs vs right before and after it`,
        value: med(change.paced),
        unit: '%',
        goal: { metric: 'value', cmp: '<', target: 10 },
        note: `p99 around it ${med(p99s.around).toFixed(2)} ms, during it ${med(p99s.paced).toFixed(2)} ms (medians of ${reps} repetitions)`,
      });
      ctx.add({
        id: 'delete-expired-flat',
        label: `deleteExpired of ${n.toLocaleString('en-US')} expired, pause 0 (rows/s)`,
        summary: summarize(flat),
        peer: 'peer-prune',
        goal: { metric: 'peer', cmp: '>=', target: 0.5 },
        note: `reader p99 ${med(change.flat) >= 0 ? '+' : ''}${med(change.flat).toFixed(1)}% while it runs (${med(p99s.flat).toFixed(2)} ms)`,
      });
      ctx.add({
        id: 'longest-batch',
        label: 'deleteExpired: longest single statement (paced and pause 0, every repetition)',
        value: longest,
        unit: 'ms',
        goal: { metric: 'value', cmp: '<=', target: 100 },
        note: `last run: ${batchInfo}`,
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
