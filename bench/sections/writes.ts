// Writes at c=32: createSession, updateSession (each worker its own session, one attribute) and
// deleteSession, next to connect-pg-simple's set/destroy and to a plain one-row UPDATE (no trigger); and
// deleteSession with the audit option on (one session_audit row written by the same statement) next to it off;
// createSession with the new-device check (checkNewDevice: the same statement reads the user's live
// sessions and audit rows first) next to it without.

import { SessionManager } from '../../src/core/manager.ts';
import type { Session } from '../../src/core/session.ts';
import type { Section } from '../lib/context.ts';
import { CountingExecutor, createSchema, dropSchema, openPool } from '../lib/db.ts';
import { createFloorTable, plainUpdate } from '../lib/floors.ts';
import { type Contestant, closedLoop, interleave, summarize } from '../lib/measure.ts';
import { createPeerTable, openPeer } from '../lib/peer.ts';
import { APP_ATTRIBUTES, peerSession, peerSid, seedOursWithTokens, seedPeerWithSids } from '../lib/seed.ts';

/** The device a checked create records (what login() passes from the request). */
const CHECKED_DEVICE = { userAgent: 'Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0', ip: '203.0.113.7' };

export const writes: Section = {
  name: 'writes',
  title: 'Writes (c=32)',
  async run(ctx) {
    const c = 32;
    const baseRows = ctx.pick(10_000, 50_000);
    /** Deletes per repetition (a delete consumes its session, so these run a fixed count, not a duration). */
    const deletes = ctx.pick(3_000, 15_000);
    const ours = await openPool(ctx.url, c);
    const peerPool = await openPool(ctx.url, c);
    const schema = await createSchema(ctx.admin, ours.db, 'writes');
    try {
      const peerTable = await createPeerTable(ctx.admin, schema);
      const exec = new CountingExecutor(ours.db);
      const manager = new SessionManager(exec, { schemaName: schema });
      const audited = new SessionManager(exec, { schemaName: schema, audit: true });
      const table = manager.names.sessions;
      const peer = openPeer(peerPool.pool, schema);
      // Both tables hold the same number of sessions of the same data before anything is measured.
      await seedOursWithTokens(ctx.admin, table, baseRows);
      await seedPeerWithSids(ctx.admin, peerTable, baseRows);
      const floor = await createFloorTable(ctx.admin, schema, baseRows, c);
      // Sessions to delete: enough for the warm-up and every repetition.
      const deleteTotal = deletes * (ctx.reps + 1);
      const delTokens = await seedOursWithTokens(ctx.admin, table, deleteTotal, 'live', 'del');
      const delSids = await seedPeerWithSids(ctx.admin, peerTable, deleteTotal);
      const auditTokens = await seedOursWithTokens(ctx.admin, table, deleteTotal, 'live', 'dela');
      await ctx.admin.query(`ANALYZE ${table}; ANALYZE ${peerTable}`);

      // One session per worker for the updates.
      const mine: Session[] = [];
      const peerMine: { sid: string; sess: ReturnType<typeof peerSession> }[] = [];
      for (let w = 0; w < c; w++) {
        mine.push((await manager.createSession(`upd-${w}`, { ...APP_ATTRIBUTES })).session);
        const sid = peerSid();
        const sess = peerSession(`upd-${w}`);
        await peer.set(sid, sess);
        peerMine.push({ sid, sess });
      }

      const timed = (id: string, op: (i: number, w: number) => Promise<unknown>): Contestant => ({
        id,
        warmup: () => closedLoop(op, { concurrency: c, durationMs: ctx.warmupMs }),
        run: () => closedLoop(op, { concurrency: c, durationMs: ctx.repMs }),
      });
      /** Fixed-count contestant: each repetition consumes the next `deletes` items. */
      const counted = (id: string, op: (k: number) => Promise<unknown>): Contestant => {
        let base = 0;
        const batch = async (n: number) => {
          const start = base;
          base += n;
          return closedLoop((i) => op(start + i), { concurrency: c, totalOps: n });
        };
        // One warm-up window: each uses up `deletes` sessions (seeded for one warm-up and every repetition).
        return { id, warmup: () => batch(deletes), maxWarmups: 1, run: () => batch(deletes) };
      };

      let createdOurs = 0;
      let deletedOurs = 0;
      let deletedAudited = 0;
      const r = await interleave(
        [
          timed('create', async (i) => {
            await manager.createSession(`new-${i}-${createdOurs++}`, { ...APP_ATTRIBUTES });
          }),
          timed('create-check', async (i) => {
            await manager.createSession(
              `chk-${i}-${createdOurs++}`,
              { ...APP_ATTRIBUTES },
              { device: CHECKED_DEVICE, checkNewDevice: true },
            );
          }),
          timed('peer-create', (i) => peer.set(peerSid(), peerSession(`new-${i}`))),
          timed('update', async (i, w) => {
            const s = mine[w] as Session;
            s.set('counter', i);
            await manager.updateSession(s);
          }),
          timed('peer-update', (i, w) => {
            const m = peerMine[w] as (typeof peerMine)[number];
            return peer.set(m.sid, { ...m.sess, counter: i } as typeof m.sess);
          }),
          plainUpdate(ctx, ours.db, floor.table, floor.ids, 'plain-update'),
          counted('delete', async (k) => {
            if (await manager.deleteSession(delTokens[k] as string)) deletedOurs++;
          }),
          counted('peer-delete', (k) => peer.destroy(delSids[k] as string)),
          counted('delete-audit', async (k) => {
            if (await audited.deleteSession(auditTokens[k] as string)) deletedAudited++;
          }),
        ],
        ctx.reps,
        ctx.log,
      );
      const deletedExpected = deletes * (ctx.reps + 1);
      if (deletedOurs !== deletedExpected) throw new Error(`deleteSession deleted ${deletedOurs} of ${deletedExpected} sessions`);
      if (deletedAudited !== deletedExpected) throw new Error(`audited deleteSession deleted ${deletedAudited} of ${deletedExpected}`);
      const auditRows = Number(
        (await ctx.admin.query(`SELECT count(*)::integer AS n FROM ${manager.names.audit} WHERE reason = 'logout'`)).rows[0]?.n ?? 0,
      );
      if (auditRows !== deletedExpected) throw new Error(`audit rows: ${auditRows}, expected ${deletedExpected}`);

      const get = (id: string) => summarize(r.get(id) ?? []);
      ctx.add({ id: 'plain-update', label: `plain one-row UPDATE, c=${c} (no trigger)`, summary: get('plain-update'), reference: true });
      ctx.add({ id: 'peer-create', label: `connect-pg-simple set (new sid), c=${c}`, summary: get('peer-create'), reference: true });
      ctx.add({
        id: 'create',
        label: `createSession, c=${c}`,
        summary: get('create'),
        peer: 'peer-create',
        floor: 'plain-update',
        goal: { metric: 'peer', cmp: '>=', target: 1 },
        note: 'a new user per create (maxSessions eviction finds nothing to evict)',
      });
      ctx.add({
        id: 'create-check',
        label: `createSession with checkNewDevice, c=${c}`,
        summary: get('create-check'),
        peer: 'peer-create',
        floor: 'create',
        note: 'vs floor: createSession without the check, in the same run — the new-device check cost (a new user each: both lookups find nothing)',
      });
      ctx.add({ id: 'peer-update', label: `connect-pg-simple set (existing sid), c=${c}`, summary: get('peer-update'), reference: true });
      ctx.add({
        id: 'update',
        label: `updateSession (one attribute, own session), c=${c}`,
        summary: get('update'),
        peer: 'peer-update',
        floor: 'plain-update',
        goal: { metric: 'floor', cmp: '>=', target: 0.7 },
      });
      ctx.add({ id: 'peer-delete', label: `connect-pg-simple destroy, c=${c}`, summary: get('peer-delete'), reference: true });
      ctx.add({
        id: 'delete',
        label: `deleteSession (by token), c=${c}`,
        summary: get('delete'),
        peer: 'peer-delete',
        floor: 'plain-update',
        goal: { metric: 'peer', cmp: '>=', target: 1 },
      });
      ctx.add({
        id: 'delete-audit',
        label: `deleteSession with audit on (+1 audit row each), c=${c}`,
        summary: get('delete-audit'),
        peer: 'peer-delete',
        floor: 'delete',
        note: 'vs floor: the same delete with audit off, in the same run — the audit write cost',
      });
      await manager.close();
    } finally {
      await dropSchema(ctx.admin, schema);
      await ours.close();
      await peerPool.close();
    }
  },
};
