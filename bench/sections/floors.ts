// Floors: the fastest the building blocks go on this machine, in this run.

import type { Section } from '../lib/context.ts';
import { createSchema, dropSchema, openPool } from '../lib/db.ts';
import { createFloorTable, lruGet, mapGet, plainUpdate, selectRoundTrip } from '../lib/floors.ts';
import { interleave, summarize } from '../lib/measure.ts';

export const floors: Section = {
  name: 'floors',
  title: 'Floors',
  async run(ctx) {
    const c = 32;
    const p = await openPool(ctx.url, c);
    const schema = await createSchema(ctx.admin, p.db, 'floors');
    try {
      const { table, ids } = await createFloorTable(ctx.admin, schema, 10_000, c);
      const mem = await interleave([mapGet(ctx), lruGet(ctx)], ctx.reps, ctx.log);
      ctx.add({ id: 'map-get', label: 'Map get (tight loop)', summary: summarize(mem.get('map-get') ?? []), reference: true });
      ctx.add({ id: 'lru-get', label: 'lru-cache get (tight loop)', summary: summarize(mem.get('lru-get') ?? []), reference: true });
      const db = await interleave(
        [selectRoundTrip(ctx, p.db, 1), selectRoundTrip(ctx, p.db, c), plainUpdate(ctx, p.db, table, ids)],
        ctx.reps,
        ctx.log,
      );
      ctx.add({ id: 'select1-c1', label: 'SELECT $1::int, c=1', summary: summarize(db.get('select1-c1') ?? []), reference: true });
      ctx.add({ id: `select1-c${c}`, label: `SELECT $1::int, c=${c}`, summary: summarize(db.get(`select1-c${c}`) ?? []), reference: true });
      ctx.add({
        id: `plain-update-c${c}`,
        label: `plain one-row UPDATE, c=${c} (no trigger)`,
        summary: summarize(db.get(`plain-update-c${c}`) ?? []),
        reference: true,
      });
    } finally {
      await dropSchema(ctx.admin, schema);
      await p.close();
    }
  },
};
