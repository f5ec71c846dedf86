// Touches: what reading a session writes (nothing on the read path; one batched statement per flush),
// and how fast a flush writes 100k distinct touches.
import { SessionManager } from '../../src/core/manager.ts';
import type { Section } from '../lib/context.ts';
import { CountingExecutor, createSchema, dropSchema, openPool } from '../lib/db.ts';
import { summarize } from '../lib/measure.ts';
import { APP_ATTRIBUTES, seedOursBulk } from '../lib/seed.ts';

export const touch: Section = {
  name: 'touch',
  title: 'Touches',
  async run(ctx) {
    const p = await openPool(ctx.url, 4);
    const schema = await createSchema(ctx.admin, p.db, 'touch');
    try {
      // --- writes per 1,000 reads of one session, cached and uncached
      for (const cacheSize of [10_000, 0]) {
        const exec = new CountingExecutor(p.db, { classify: true });
        const manager = new SessionManager(exec, { schemaName: schema, cacheSize });
        const { token } = await manager.createSession(`touch-${cacheSize}`, { ...APP_ATTRIBUTES });
        exec.reset();
        for (let i = 0; i < 1000; i++) if ((await manager.getSession(token)) === null) throw new Error('session not found');
        const reads = { statements: exec.statements, writes: exec.writes };
        exec.reset();
        const flushed = await manager.flushTouches();
        const tag = cacheSize === 0 ? 'uncached' : 'cached';
        ctx.add({
          id: `writes-per-1000-reads-${tag}`,
          label: `database writes per 1,000 getSession reads of one session (${tag}${cacheSize === 0 ? ', cacheSize 0' : ''})`,
          value: reads.writes,
          unit: 'writes',
          goal: { metric: 'value', cmp: '==', target: 0 },
          note: `${reads.statements} statement(s) in all during the 1,000 reads`,
        });
        ctx.add({
          id: `writes-per-flush-${tag}`,
          label: `database writes to flush those reads' touches (${tag})`,
          value: exec.writes,
          unit: 'writes',
          goal: { metric: 'value', cmp: '==', target: 1 },
          note: `flush wrote ${flushed.rows} row(s) in ${flushed.batches} batch(es)`,
        });
        await manager.close();
      }

      // --- flush of 100k distinct touches
      // 100k distinct touches; --quick halves it (and skips the warm-up flush) to stay within its budget.
      const n = ctx.pick(50_000, 100_000);
      const exec = new CountingExecutor(p.db);
      const manager = new SessionManager(exec, { schemaName: schema });
      const table = manager.names.sessions;
      const base = Date.now() - 3_600_000;
      await seedOursBulk(ctx.admin, table, n, 'live', { lastAccessed: base });
      await ctx.admin.query(`ANALYZE ${table}`);
      const ids = (await ctx.admin.query<{ id: string }>(`SELECT id::text AS id FROM ${table} WHERE user_id LIKE 'bulk-%'`)).rows.map(
        (r) => r.id,
      );
      const flushOnce = async (at: number) => {
        manager.restoreTouches(ids.map((id) => [id, at]));
        exec.reset();
        const t0 = performance.now();
        const r = await manager.flushTouches();
        const ms = performance.now() - t0;
        if (r.rows !== ids.length) throw new Error(`flush wrote ${r.rows} of ${ids.length} touches`);
        return { ops: (r.rows * 1000) / ms, count: r.rows, durationMs: ms, batches: r.batches, statements: exec.statements };
      };
      // The floor: one set-based UPDATE of last_accessed of the same rows (what the table allows).
      const floorOnce = async () => {
        const t0 = performance.now();
        const r = await ctx.admin.query(
          `UPDATE ${table} SET last_accessed = last_accessed + interval '1 millisecond' WHERE user_id LIKE 'bulk-%'`,
        );
        const ms = performance.now() - t0;
        return { ops: ((r.rowCount ?? 0) * 1000) / ms, count: r.rowCount ?? 0, durationMs: ms };
      };
      // Each flush moves every row's last access forward (touches 1 s apart), so every row is written.
      if (!ctx.quick) {
        await flushOnce(base + 1000);
        await floorOnce();
      }
      const samples = [];
      const floorSamples = [];
      let batches = 0;
      for (let rep = 0; rep < ctx.reps; rep++) {
        const s = await flushOnce(base + 2000 + rep * 1000);
        batches = s.statements;
        ctx.log(
          `  flush ${n} rep ${rep + 1}: ${Math.round(s.ops).toLocaleString('en-US')} rows/s (${s.durationMs.toFixed(0)} ms, ${s.statements} statements)`,
        );
        samples.push({ ops: s.ops, count: s.count, durationMs: s.durationMs });
        const f = await floorOnce();
        ctx.log(`  one UPDATE of ${f.count} rows' last_accessed rep ${rep + 1}: ${Math.round(f.ops).toLocaleString('en-US')} rows/s`);
        floorSamples.push(f);
      }
      ctx.add({
        id: 'bulk-update',
        label: `one UPDATE of last_accessed of the same ${n.toLocaleString('en-US')} rows (rows/s)`,
        summary: summarize(floorSamples),
        reference: true,
      });
      ctx.add({
        id: 'flush-100k',
        label: `flushTouches of ${n.toLocaleString('en-US')} distinct touches (rows/s)`,
        summary: summarize(samples),
        floor: 'bulk-update',
        goal: [
          { metric: 'ops', cmp: '>=', target: 100_000 },
          { metric: 'floor', cmp: '>=', target: 0.8 },
        ],
        note: `${batches} statements per flush (lastAccessUpdateBatchSize ${manager.config.lastAccessUpdateBatchSize}); ${ids.length.toLocaleString('en-US')} sessions in the table`,
      });
      await manager.close();
    } finally {
      await dropSchema(ctx.admin, schema);
      await p.close();
    }
  },
};
