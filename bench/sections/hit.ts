// getSession cache hit: one session, awaited back to back in one process, next to a bare lru-cache get.
import { SessionManager } from '../../src/core/manager.ts';
import type { Section } from '../lib/context.ts';
import { CountingExecutor, createSchema, dropSchema, openPool } from '../lib/db.ts';
import { lruGet } from '../lib/floors.ts';
import { interleave, summarize, tightLoopAsync } from '../lib/measure.ts';
import { APP_ATTRIBUTES } from '../lib/seed.ts';

const NO_TOUCH = Object.freeze({ touch: false });

export const hit: Section = {
  name: 'hit',
  title: 'getSession cache hit',
  async run(ctx) {
    const p = await openPool(ctx.url, 2);
    const schema = await createSchema(ctx.admin, p.db, 'hit');
    try {
      const exec = new CountingExecutor(p.db);
      const manager = new SessionManager(exec, { schemaName: schema });
      const { token } = await manager.createSession('user-hit', { ...APP_ATTRIBUTES });
      exec.reset();
      const get = () => manager.getSession(token);
      const getNoTouch = () => manager.getSession(token, NO_TOUCH);
      if ((await get()) === null) throw new Error('the session just created is not found');
      let hits = 0;
      const r = await interleave(
        [
          {
            id: 'get-hit',
            warmup: () => tightLoopAsync(get, ctx.warmupMs),
            run: async (rep) => {
              if (rep === 0) exec.reset();
              const s = await tightLoopAsync(get, ctx.repMs);
              hits += s.count;
              return s;
            },
          },
          {
            id: 'get-hit-notouch',
            warmup: () => tightLoopAsync(getNoTouch, ctx.warmupMs),
            run: async () => {
              const s = await tightLoopAsync(getNoTouch, ctx.repMs);
              hits += s.count;
              return s;
            },
          },
          lruGet(ctx),
        ],
        ctx.reps,
        ctx.log,
      );
      ctx.add({ id: 'lru-get', label: 'lru-cache get (tight loop)', summary: summarize(r.get('lru-get') ?? []), reference: true });
      ctx.add({
        id: 'get-hit',
        label: 'getSession, cache hit, touches on (default; one session, tight loop)',
        summary: summarize(r.get('get-hit') ?? []),
        floor: 'lru-get',
        goal: { metric: 'ops', cmp: '>=', target: 2_000_000 },
        note: `${exec.statements} statement(s) in ${hits.toLocaleString('en-US')} measured hits, with and without touches (a cached entry is re-read once it is older than maxStaleness, 1 s)`,
      });
      ctx.add({
        id: 'get-hit-notouch',
        label: 'getSession, cache hit, touch: false (one session, tight loop)',
        summary: summarize(r.get('get-hit-notouch') ?? []),
        floor: 'lru-get',
        goal: { metric: 'ops', cmp: '>=', target: 3_000_000 },
      });
      await manager.close();
    } finally {
      await dropSchema(ctx.admin, schema);
      await p.close();
    }
  },
};
