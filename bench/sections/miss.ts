// getSession miss (cacheSize 0: every read goes to the database) at c=1, next to the SELECT $1 floor and
// connect-pg-simple's get, on tables of the same size holding sessions of the same data.
import { SessionManager } from '../../src/core/manager.ts';
import { hashToken } from '../../src/core/token.ts';
import type { Section } from '../lib/context.ts';
import { CountingExecutor, createSchema, dropSchema, openPool } from '../lib/db.ts';
import { selectRoundTrip } from '../lib/floors.ts';
import { closedLoop, interleave, summarize, tightLoopAsync } from '../lib/measure.ts';
import { createPeerTable, openPeer } from '../lib/peer.ts';
import { seedOursWithTokens, seedPeerWithSids } from '../lib/seed.ts';

export const miss: Section = {
  name: 'miss',
  title: 'getSession miss',
  async run(ctx) {
    const c = 1;
    const rows = ctx.pick(10_000, 50_000);
    const ours = await openPool(ctx.url, 32);
    const peerPool = await openPool(ctx.url, 32);
    const schema = await createSchema(ctx.admin, ours.db, 'miss');
    try {
      const peerTable = await createPeerTable(ctx.admin, schema);
      const exec = new CountingExecutor(ours.db);
      const manager = new SessionManager(exec, { schemaName: schema, cacheSize: 0 });
      const tokens = await seedOursWithTokens(ctx.admin, manager.names.sessions, rows);
      const sids = await seedPeerWithSids(ctx.admin, peerTable, rows);
      await ctx.admin.query(`ANALYZE ${manager.names.sessions}; ANALYZE ${peerTable}`);
      const peer = openPeer(peerPool.pool, schema);

      let found = 0;
      const get = async (i: number) => {
        if ((await manager.getSession(tokens[i % rows] as string)) !== null) found++;
      };
      let peerFound = 0;
      const peerGet = async (i: number) => {
        if (await peer.get(sids[i % rows] as string)) peerFound++;
      };
      // The exact statement a miss sends, replayed the way the library sent it (a named prepared statement
      // through the pool, or db.execute): the SQL and driver share of a miss.
      await manager.getSession(tokens[0] as string);
      const prepared = exec.lastPrepared;
      const statement = exec.last;
      if (prepared === undefined && statement === undefined) throw new Error('getSession sent no statement');
      const replay = () =>
        (prepared === undefined
          ? ours.db.execute(statement as NonNullable<typeof statement>)
          : ours.pool.query(prepared)) as Promise<unknown>;
      const token = tokens[0] as string;
      let misses = 0;
      const r = await interleave(
        [
          {
            id: 'get-miss',
            warmup: () => closedLoop(get, { concurrency: c, durationMs: ctx.warmupMs }),
            run: async (rep) => {
              if (rep === 0) {
                exec.reset();
                found = 0;
              }
              const s = await closedLoop(get, { concurrency: c, durationMs: ctx.repMs });
              misses += s.count;
              return s;
            },
          },
          {
            id: 'peer-get',
            warmup: () => closedLoop(peerGet, { concurrency: c, durationMs: ctx.warmupMs }),
            run: async (rep) => {
              if (rep === 0) peerFound = 0;
              return closedLoop(peerGet, { concurrency: c, durationMs: ctx.repMs });
            },
          },
          selectRoundTrip(ctx, ours.db, c),
          {
            id: 'statement-only',
            warmup: () => closedLoop(replay, { concurrency: c, durationMs: ctx.warmupMs }),
            run: () => closedLoop(replay, { concurrency: c, durationMs: ctx.repMs }),
          },
          {
            id: 'hash-token',
            warmup: () => tightLoopAsync(() => hashToken(token), ctx.warmupMs),
            run: () => tightLoopAsync(() => hashToken(token), ctx.repMs / 2),
          },
        ],
        ctx.reps,
        ctx.log,
      );
      if (found !== misses) throw new Error(`getSession found ${found} of ${misses} sessions`);
      const statements = exec.statements;

      // The same at c=32 (the pool has 32 connections on each side).
      const C = 32;
      let found32 = 0;
      let misses32 = 0;
      const get32 = async (i: number) => {
        if ((await manager.getSession(tokens[i % rows] as string)) !== null) found32++;
      };
      const r32 = await interleave(
        [
          {
            id: `get-miss-c${C}`,
            warmup: () => closedLoop(get32, { concurrency: C, durationMs: ctx.warmupMs }),
            run: async (rep) => {
              if (rep === 0) found32 = 0;
              const s = await closedLoop(get32, { concurrency: C, durationMs: ctx.repMs });
              misses32 += s.count;
              return s;
            },
          },
          {
            id: `peer-get-c${C}`,
            warmup: () => closedLoop(peerGet, { concurrency: C, durationMs: ctx.warmupMs }),
            run: () => closedLoop(peerGet, { concurrency: C, durationMs: ctx.repMs }),
          },
          selectRoundTrip(ctx, ours.db, C),
        ],
        ctx.reps,
        ctx.log,
      );
      if (found32 !== misses32) throw new Error(`getSession found ${found32} of ${misses32} sessions at c=${C}`);
      ctx.add({ id: 'select1-c1', label: 'SELECT $1::int, c=1', summary: summarize(r.get('select1-c1') ?? []), reference: true });
      ctx.add({ id: 'peer-get', label: 'connect-pg-simple get, c=1', summary: summarize(r.get('peer-get') ?? []), reference: true });
      ctx.add({
        id: 'get-miss',
        label: 'getSession miss (cacheSize 0), c=1',
        summary: summarize(r.get('get-miss') ?? []),
        peer: 'peer-get',
        floor: 'select1-c1',
        floorBy: 'p50',
        goal: [
          { metric: 'floor', cmp: '<=', target: 1.5 },
          { metric: 'peer', cmp: '>=', target: 1 },
        ],
      });
      ctx.add({
        id: `select1-c${C}`,
        label: `SELECT $1::int, c=${C}`,
        summary: summarize(r32.get(`select1-c${C}`) ?? []),
        reference: true,
      });
      ctx.add({
        id: `peer-get-c${C}`,
        label: `connect-pg-simple get, c=${C}`,
        summary: summarize(r32.get(`peer-get-c${C}`) ?? []),
        reference: true,
      });
      ctx.add({
        id: `get-miss-c${C}`,
        label: `getSession miss (cacheSize 0), c=${C}`,
        summary: summarize(r32.get(`get-miss-c${C}`) ?? []),
        peer: `peer-get-c${C}`,
        floor: `select1-c${C}`,
        floorBy: 'p50',
      });
      const hashOps = summarize(r.get('hash-token') ?? []).ops;
      ctx.add({
        id: 'statement-only',
        label: "a miss's statement alone (replayed as sent: a named prepared statement through the pool), c=1",
        summary: summarize(r.get('statement-only') ?? []),
        floor: 'select1-c1',
        floorBy: 'p50',
        reference: true,
        note: 'what the SQL and the driver cost of a miss; the rest of a miss is hashing the token and building the session (the floor, SELECT $1, goes through db.execute: unnamed, parsed and planned each time)',
      });
      ctx.add({
        id: 'hash-token',
        label: 'hashToken (SHA-256: node:crypto through process.getBuiltinModule here, Web Crypto where absent), awaited',
        summary: summarize(r.get('hash-token') ?? []),
        value: 1_000_000 / hashOps,
        unit: 'µs/op',
        reference: true,
      });
      ctx.add({
        id: 'statements-per-miss',
        label: 'statements per getSession miss',
        value: statements / misses,
        unit: 'stmt',
        goal: { metric: 'value', cmp: '==', target: 1 },
        note: `${statements.toLocaleString('en-US')} statements for ${misses.toLocaleString('en-US')} misses (peer found ${peerFound.toLocaleString('en-US')} sessions)`,
      });
    } finally {
      await dropSchema(ctx.admin, schema);
      await ours.close();
      await peerPool.close();
    }
  },
};
