// Expiry on a fake clock (ARCHITECTURE.md, promise 4), cleanup, attribute expiry, and the last-access touches: coalesced in
// memory, flushed in batches, never moving backwards (promises 6 and 8). No sleeps: the clock is moved.
import { describe, expect, it } from 'vitest';
import { InvalidArgumentError, SessionNotFoundError } from '../../src/core/errors.ts';
import { DRIVERS, fakeClock } from '../support/db.ts';
import { rawRow, setLastAccessed, uid } from '../support/manager-helpers.ts';
import { useStore } from '../support/store-suite.ts';

const SECOND = 1000;
const MINUTE = 60 * SECOND;
const HOUR = 60 * MINUTE;

describe.each(DRIVERS)('expiry (%s)', (driver) => {
  const fx = useStore(driver, 'mgr_expiry');

  it('absolute expiry: alive until expires_at, then never returned, from the cache or the database', async () => {
    const clock = fakeClock();
    // An hour of maxStaleness: the cached entry stays "fresh", so only the expiry check can refuse it.
    const m = fx.manager({ clock, sessionExpiration: 10 * SECOND, inactivityDuration: 0, maxStaleness: HOUR });
    const { session, token } = await m.createSession(uid(), { a: 1 });
    clock.advance(10 * SECOND - 1);
    m.db.reset();
    expect((await m.getSession(token))?.id).toBe(session.id);
    expect(m.db.count).toBe(0);
    clock.advance(1);
    expect(await m.getSession(token)).toBeNull();
    expect(m.db.count).toBe(0);
    expect(await m.getSession(token, { forceRefresh: true })).toBeNull();
    expect(await fx.manager({ clock }).getSession(token)).toBeNull();
    // The row is still there (cleanup has not run): reads refuse it by themselves.
    expect(await rawRow(fx, session.id)).toBeDefined();
  });

  it('an explicit expiresAt is honoured and must lie in the future', async () => {
    const clock = fakeClock();
    const m = fx.manager({ clock, inactivityDuration: 0 });
    const { token } = await m.createSession(uid(), {}, { expiresAt: clock() + 500 });
    clock.advance(499);
    expect(await m.getSession(token)).not.toBeNull();
    clock.advance(1);
    expect(await m.getSession(token)).toBeNull();
    await expect(m.createSession(uid(), {}, { expiresAt: clock() })).rejects.toBeInstanceOf(InvalidArgumentError);
    await expect(m.createSession(uid(), {}, { expiresAt: new Date(Number.NaN) })).rejects.toBeInstanceOf(InvalidArgumentError);
  });

  it('idle expiry uses the newest known last access, including touches not flushed yet', async () => {
    const clock = fakeClock();
    const config = { clock, inactivityDuration: 10 * SECOND, maxStaleness: HOUR };
    const a = fx.manager(config);
    const { session, token } = await a.createSession(uid());
    clock.advance(9 * SECOND);
    expect(await a.getSession(token)).not.toBeNull(); // touch at t0+9s, in memory only
    clock.advance(9 * SECOND); // t0+18s: 18s after the stored last access, 9s after the touch
    expect((await rawRow(fx, session.id))!.last_accessed).toBe(clock() - 18 * SECOND);
    expect(await a.getSession(token, { forceRefresh: true, touch: false })).not.toBeNull();
    expect((await a.listUserSessions(session.userId)).map((s) => s.id)).toEqual([session.id]);
    // A manager that never saw the touch knows only the stored last access.
    const b = fx.manager(config);
    expect(await b.getSession(token)).toBeNull();
    expect(await b.listUserSessions(session.userId)).toEqual([]);
    // Idle past the touch: gone, also from a's cache.
    clock.advance(SECOND);
    a.db.reset();
    expect(await a.getSession(token)).toBeNull();
    expect(a.db.count).toBe(0);
    expect(await a.getSession(token, { forceRefresh: true })).toBeNull();
  });

  it('idle expiry boundary: alive until last access + inactivityDuration, gone at it', async () => {
    const clock = fakeClock();
    const m = fx.manager({ clock, inactivityDuration: 10 * SECOND });
    const { token } = await m.createSession(uid());
    clock.advance(10 * SECOND - 1);
    expect(await m.getSession(token, { touch: false })).not.toBeNull();
    clock.advance(1);
    expect(await m.getSession(token, { touch: false })).toBeNull();
  });

  it('a read with touch: false does not extend the session', async () => {
    const clock = fakeClock();
    const m = fx.manager({ clock, inactivityDuration: 10 * SECOND });
    const { token } = await m.createSession(uid());
    m.takePendingTouches();
    clock.advance(5 * SECOND);
    await m.getSession(token, { touch: false });
    expect(m.pendingTouchCount).toBe(0);
    clock.advance(5 * SECOND);
    expect(await m.getSession(token)).toBeNull();
  });

  it('a flushed touch extends the session for every manager', async () => {
    const clock = fakeClock();
    const config = { clock, inactivityDuration: 10 * SECOND };
    const a = fx.manager(config);
    const { token } = await a.createSession(uid());
    clock.advance(8 * SECOND);
    await a.getSession(token);
    await a.flushTouches();
    clock.advance(8 * SECOND);
    expect(await fx.manager(config).getSession(token)).not.toBeNull();
  });

  it('rotate works for a session kept alive by a touch not flushed yet (by Session and by token)', async () => {
    const clock = fakeClock();
    const m = fx.manager({ clock, inactivityDuration: 10 * SECOND });
    const first = await m.createSession(uid(), { a: 1 });
    const second = await m.createSession(uid(), { b: 2 });
    clock.advance(9 * SECOND);
    const s1 = await m.getSession(first.token);
    const s2 = await m.getSession(second.token);
    clock.advance(9 * SECOND);
    // Both alive for this manager (touched 9 s ago), though the stored last access is 18 s old.
    expect(await m.getSession(first.token, { touch: false })).not.toBeNull();
    const bySession = await m.rotate(s1!);
    expect(bySession?.session.get('a')).toBe(1);
    const byToken = await m.rotate(second.token);
    expect(byToken?.session.get('b')).toBe(2);
    expect(byToken?.session.id).toBe(s2!.id);
    expect(await m.getSession(second.token)).toBeNull();
    expect((await m.getSession(byToken!.token))?.get('b')).toBe(2);
  });

  it('rotate refuses an expired session', async () => {
    const clock = fakeClock();
    const m = fx.manager({ clock, inactivityDuration: 10 * SECOND, sessionExpiration: HOUR });
    const idle = await m.createSession(uid());
    clock.advance(10 * SECOND);
    expect(await m.rotate(idle.token)).toBeNull();
    expect(await m.rotate(idle.session)).toBeNull();
    const other = fx.manager({ clock, inactivityDuration: 0, sessionExpiration: HOUR });
    const absolute = await other.createSession(uid());
    clock.advance(HOUR);
    expect(await other.rotate(absolute.token)).toBeNull();
  });

  it('updateSession of an expired session throws SessionNotFoundError and writes nothing', async () => {
    const clock = fakeClock();
    const m = fx.manager({ clock, sessionExpiration: 10 * SECOND, inactivityDuration: 0 });
    const { session } = await m.createSession(uid(), { a: 1 });
    clock.advance(10 * SECOND);
    session.set('a', 2);
    await expect(m.updateSession(session)).rejects.toBeInstanceOf(SessionNotFoundError);
    await expect(m.updateSession(session, { checkVersion: true })).rejects.toMatchObject({ code: 'SESSION_NOT_FOUND' });
    expect((await rawRow(fx, session.id))!.attributes.a).toEqual({ v: 1, ver: 1 });
  });

  it('expired attributes are invisible from their expiry on, in loaded and cached sessions', async () => {
    const clock = fakeClock();
    type App = { promo: string; keep: number };
    const m = fx.manager<App>({ clock, maxStaleness: HOUR });
    const { session, token } = await m.createSession(uid(), { keep: 1 });
    session.set('promo', 'SAVE10', { expiresAt: clock() + 5 * SECOND });
    // Visible while pending too.
    expect(session.get('promo')).toBe('SAVE10');
    await m.updateSession(session);
    expect((await rawRow(fx, session.id))!.attributes.promo).toEqual({ v: 'SAVE10', ver: 1, exp: clock() + 5 * SECOND });
    const other = fx.manager<App>({ clock });
    const loaded = await other.getSession(token);
    expect(loaded!.get('promo')).toBe('SAVE10');
    expect(loaded!.attributeExpiresAt('promo')?.getTime()).toBe(clock() + 5 * SECOND);

    clock.advance(5 * SECOND - 1);
    expect((await m.getSession(token))!.has('promo')).toBe(true);
    clock.advance(1);
    for (const s of [loaded!, session, (await m.getSession(token))!, (await fx.manager<App>({ clock }).getSession(token))!]) {
      expect(s.get('promo')).toBeUndefined();
      expect(s.has('promo')).toBe(false);
      expect(s.keys()).toEqual(['keep']);
      expect(s.toObject()).toEqual({ keep: 1 });
      expect(s.attributeExpiresAt('promo')).toBeUndefined();
    }
    // Setting it again without an expiry makes it permanent.
    const again = (await fx.manager<App>({ clock }).getSession(token))!;
    again.set('promo', 'BACK');
    await m.updateSession(again);
    clock.advance(HOUR);
    expect((await fx.manager({ clock }).getSession(token))!.get('promo')).toBe('BACK');
    expect((await rawRow(fx, session.id))!.attributes.promo).toEqual({ v: 'BACK', ver: 2 });
  });
});

// Cleanup works on the whole schema: each case gets its own, so counts are exact.
describe.each(DRIVERS)('deleteExpired (%s)', (driver) => {
  describe('expiry rules', () => {
    const fx = useStore(driver, 'mgr_cleanup1');

    it('removes absolutely and idle-expired sessions (idle cutoff = inactivityDuration + lastAccessUpdateInterval) and expired attributes', async () => {
      const clock = fakeClock();
      const idle = 10 * MINUTE;
      const grace = 5 * MINUTE;
      const m = fx.manager({
        clock,
        inactivityDuration: idle,
        lastAccessUpdateInterval: grace,
        sessionExpiration: 24 * HOUR,
        maxSessions: 10,
      });
      const t0 = clock();
      const absolute = await m.createSession(uid(), {}, { expiresAt: t0 + MINUTE });
      const idleGone = await m.createSession(uid());
      const idleInGrace = await m.createSession(uid());
      const live = await m.createSession(uid(), { a: 1 });
      const withAttrs = await m.createSession(uid(), { keep: 'k' });
      const touchedElsewhere = await m.createSession(uid());
      // Stored last accesses: idleGone t0, idleInGrace t0+1 min (beyond idle, within the grace).
      await setLastAccessed(fx, idleInGrace.session.id, t0 + MINUTE);
      withAttrs.session.set('short', 's', { expiresAt: t0 + 2 * MINUTE }).set('long', 'l', { expiresAt: t0 + HOUR });
      await m.updateSession(withAttrs.session);
      m.takePendingTouches();

      clock.set(t0 + 9 * MINUTE); // within inactivityDuration: these reads touch
      expect(await m.getSession(live.token)).not.toBeNull(); // flushed by deleteExpired itself
      expect(await m.getSession(withAttrs.token)).not.toBeNull();
      const other = fx.manager({ clock, inactivityDuration: idle, lastAccessUpdateInterval: grace });
      expect(await other.getSession(touchedElsewhere.token)).not.toBeNull(); // written by the other manager's flush
      await other.flushTouches();

      clock.set(t0 + idle + grace); // the idle cutoff is exactly t0
      const result = await m.deleteExpired();
      expect(result.sessions).toBe(2);
      expect(result.attributes).toBe(1);
      expect(await rawRow(fx, absolute.session.id)).toBeUndefined();
      expect(await rawRow(fx, idleGone.session.id)).toBeUndefined();
      // Idle by inactivityDuration but within the grace: kept (a touch may still be on its way).
      expect(await rawRow(fx, idleInGrace.session.id)).toBeDefined();
      expect(await rawRow(fx, live.session.id)).toBeDefined();
      expect(await rawRow(fx, touchedElsewhere.session.id)).toBeDefined();
      const attrs = (await rawRow(fx, withAttrs.session.id))!;
      expect(Object.keys(attrs.attributes).sort()).toEqual(['keep', 'long']);
      expect(attrs.version).toBe(3);
      // The touch of `live` was flushed before deciding.
      expect((await rawRow(fx, live.session.id))!.last_accessed).toBe(t0 + 9 * MINUTE);

      // One millisecond later the grace of idleInGrace has not run out yet; at +1 min it has.
      clock.set(t0 + MINUTE + idle + grace - 1);
      expect((await m.deleteExpired()).sessions).toBe(0);
      clock.set(t0 + MINUTE + idle + grace);
      expect((await m.deleteExpired()).sessions).toBe(1);
      expect(await rawRow(fx, idleInGrace.session.id)).toBeUndefined();
      expect((await m.deleteExpired()).sessions).toBe(0);
    });
  });

  describe('idle expiry off', () => {
    const fx = useStore(driver, 'mgr_cleanup2');

    it('with inactivityDuration 0 only absolute expiry deletes', async () => {
      const clock = fakeClock();
      const m = fx.manager({ clock, inactivityDuration: 0, sessionExpiration: 400 * 24 * HOUR });
      const old = await m.createSession(uid());
      clock.advance(365 * 24 * HOUR);
      await m.deleteExpired();
      expect(await rawRow(fx, old.session.id)).toBeDefined();
      expect(await m.getSession(old.token)).not.toBeNull();
      clock.advance(35 * 24 * HOUR);
      expect((await m.deleteExpired()).sessions).toBe(1);
      expect(await rawRow(fx, old.session.id)).toBeUndefined();
    });
  });

  describe('batches', () => {
    const fx = useStore(driver, 'mgr_cleanup3');

    it('works in batches of lastAccessUpdateBatchSize and invalidates what it deleted', async () => {
      const clock = fakeClock();
      const m = fx.manager({ clock, inactivityDuration: 0, lastAccessUpdateBatchSize: 2, maxStaleness: HOUR, maxSessions: 10 });
      const user = uid();
      const doomed = await Promise.all(Array.from({ length: 5 }, () => m.createSession(user, {}, { expiresAt: clock() + SECOND })));
      const survivor = await m.createSession(user, { x: 1 });
      survivor.session.set('x', 2, { expiresAt: clock() + SECOND });
      await m.updateSession(survivor.session);
      clock.advance(SECOND);
      const result = await m.deleteExpired();
      expect(result).toEqual({ sessions: 5, attributes: 1, audit: 0, batches: 4 }); // sessions 2 + 2 + 1, attributes 1
      for (const { session } of doomed) expect(await rawRow(fx, session.id)).toBeUndefined();
      const cached = m.cache.ids();
      for (const { session } of doomed) expect(cached).not.toContain(session.id);
      // The survivor's row changed (attribute removed, version bumped): its cached copy was dropped too.
      expect(cached).not.toContain(survivor.session.id);
      m.db.reset();
      const reread = await m.getSession(survivor.token);
      expect(m.db.count).toBe(1);
      expect(reread!.toObject()).toEqual({});
      expect(reread!.version).toBe(3);
    });
  });
});

// Cleanup reads the sessions whose deadline has passed (drizzle/0015): no index on the columns touches change.
describe.each(DRIVERS)('deleteExpired reads what is due (%s)', (driver) => {
  const fx = useStore(driver, 'mgr_cleanup4');
  const table = () => `"${fx.schemaName}"."sessions"`;
  /** `n` rows of one kind, written straight into the table (out of band), interleaved with the others. */
  const insert = async (n: number, user: string, expiresAtMs: number, lastAccessedMs: number, attributes = '{}') => {
    await fx.t.admin.query(
      `INSERT INTO ${table()} (id, token_hash, user_id, attributes, created_at, updated_at, last_accessed, expires_at)
       SELECT gen_random_uuid(), sha256(uuid_send(gen_random_uuid())), $1, $2::jsonb, to_timestamp($3 / 1000.0), to_timestamp($3 / 1000.0),
              to_timestamp($3 / 1000.0), to_timestamp($4 / 1000.0)
       FROM generate_series(1, $5::integer)`,
      [user, attributes, lastAccessedMs, expiresAtMs, n],
    );
  };
  const count = async (user: string) =>
    (await fx.t.admin.query<{ n: number }>(`SELECT count(*)::integer AS n FROM ${table()} WHERE user_id = $1`, [user])).rows[0]!.n;

  it('deletes every expired session of a table many ranges long, keeping the live ones, in batches of batchSize', async () => {
    const clock = fakeClock();
    const now = clock();
    const expiredUser = uid('expired');
    const idleUser = uid('idle');
    const liveUser = uid('live');
    for (let i = 0; i < 6; i++) {
      await insert(700, expiredUser, now - SECOND, now - SECOND);
      await insert(300, idleUser, now + HOUR, now - 3 * HOUR);
      await insert(500, liveUser, now + HOUR, now - SECOND);
    }
    const blocks = (await fx.t.admin.query<{ n: number }>(`SELECT (pg_relation_size('${table()}') / 8192)::integer AS n`)).rows[0]!.n;
    expect(blocks).toBeGreaterThan(256); // more than two of the walk's ranges
    const m = fx.manager({ clock, inactivityDuration: HOUR, lastAccessUpdateInterval: MINUTE, maxStaleness: HOUR });
    const seen: { kind: string; rows: number }[] = [];
    const result = await m.deleteExpired({ batchSize: 500, pause: 0, onBatch: (kind, rows) => seen.push({ kind, rows }) });
    expect(result.sessions).toBe(6 * 1000);
    expect(result.attributes).toBe(0);
    expect(result.batches).toBe(seen.length);
    expect(Math.max(...seen.map((b) => b.rows))).toBeLessThanOrEqual(500);
    expect(await count(expiredUser)).toBe(0);
    expect(await count(idleUser)).toBe(0);
    expect(await count(liveUser)).toBe(3000);
    expect((await m.deleteExpired({ pause: 0 })).sessions).toBe(0);
  });

  it('resumes inside a block when a batch fills up there (batchSize smaller than a block holds)', async () => {
    const clock = fakeClock();
    const user = uid('dense');
    await insert(40, user, clock() - SECOND, clock() - SECOND);
    const m = fx.manager({ clock });
    const result = await m.deleteExpired({ batchSize: 1, pause: 0 });
    expect(result.sessions).toBe(40);
    expect(await count(user)).toBe(0);
  });

  it('skips a row another transaction holds locked instead of waiting, and gets it next time', async () => {
    const clock = fakeClock();
    const user = uid('locked');
    await insert(3, user, clock() - SECOND, clock() - SECOND);
    const holder = await fx.t.admin.connect();
    try {
      await holder.query('BEGIN');
      await holder.query(`SELECT id FROM ${table()} WHERE user_id = $1 ORDER BY id LIMIT 1 FOR UPDATE`, [user]);
      const m = fx.manager({ clock });
      expect((await m.deleteExpired({ pause: 0 })).sessions).toBe(2);
      await holder.query('COMMIT');
      expect((await m.deleteExpired({ pause: 0 })).sessions).toBe(1);
    } finally {
      holder.release();
    }
    expect(await count(user)).toBe(0);
  });

  it('finishes when an attribute carries an expiry that is not a number (left alone, as reads do)', async () => {
    const clock = fakeClock();
    const user = uid('odd');
    const odd = JSON.stringify({ a: { v: 1, ver: 1, exp: [1] }, b: { v: 2, ver: 1, exp: '1' }, c: { v: 3, ver: 1, exp: 1 } });
    await insert(5, user, clock() + HOUR, clock(), odd);
    // What updateSession writes with an attribute's expiry (drizzle/0015): the session is due for cleanup.
    await fx.t.admin.query(`UPDATE ${table()} SET cleanup_at = created_at WHERE user_id = $1`, [user]);
    const m = fx.manager({ clock });
    const result = await m.deleteExpired({ batchSize: 2, pause: 0 });
    expect(result.attributes).toBe(5);
    const rows = await fx.t.admin.query<{ a: Record<string, unknown> }>(`SELECT attributes AS a FROM ${table()} WHERE user_id = $1`, [
      user,
    ]);
    for (const r of rows.rows) expect(Object.keys(r.a).sort()).toEqual(['a', 'b']);
    expect((await m.deleteExpired({ pause: 0 })).attributes).toBe(0);
  });

  it('reads only the sessions due: a touched session gets a later deadline, a fresh one is not read at all', async () => {
    const clock = fakeClock();
    const m = fx.manager({ clock, inactivityDuration: HOUR, lastAccessUpdateInterval: MINUTE, maxStaleness: HOUR });
    const fresh = await m.createSession(uid('fresh'), {});
    const busy = await m.createSession(uid('busy'), {});
    const idle = await m.createSession(uid('idle'), {});
    const deadline = async (id: string) =>
      (await fx.t.admin.query<{ at: Date | null }>(`SELECT cleanup_at AS at FROM ${table()} WHERE id = $1`, [id])).rows[0]?.at;
    clock.advance(30 * MINUTE);
    await m.getSession(busy.token);
    await m.flushTouches();
    await m.deleteExpired({ pause: 0 });
    // Not old enough to be idle: not read, no deadline written.
    for (const s of [fresh, busy, idle]) expect(await rawRow(fx, s.session.id)).toBeDefined();
    for (const s of [fresh, busy, idle]) expect(await deadline(s.session.id)).toBeNull();
    clock.advance(31 * MINUTE + SECOND); // 61 min after creation: idle past the grace, unless touched
    const late = await m.createSession(uid('late'), {});
    await m.deleteExpired({ pause: 0 });
    expect(await rawRow(fx, fresh.session.id)).toBeUndefined();
    expect(await rawRow(fx, idle.session.id)).toBeUndefined();
    expect(await rawRow(fx, busy.session.id)).toBeDefined();
    // The busy one was touched 30 min in: read once, given its idle end (last access + 1 h + the grace).
    expect((await deadline(busy.session.id))?.getTime()).toBe(clock() - 31 * MINUTE - SECOND + HOUR + MINUTE);
    expect(await deadline(late.session.id)).toBeNull();
    // Nothing is due until then: a run reads nothing and writes nothing.
    const before = (await fx.t.admin.query(`SELECT xmin::text AS x FROM ${table()} WHERE id = $1`, [busy.session.id])).rows[0];
    await m.deleteExpired({ pause: 0 });
    expect((await fx.t.admin.query(`SELECT xmin::text AS x FROM ${table()} WHERE id = $1`, [busy.session.id])).rows[0]).toEqual(before);
    clock.advance(30 * MINUTE);
    await m.deleteExpired({ pause: 0 }); // busy has been idle since its touch; late is 30 min old
    expect(await rawRow(fx, busy.session.id)).toBeUndefined();
    expect(await rawRow(fx, late.session.id)).toBeDefined();
  });

  it('an attribute given an expiry makes its session due by then, whatever the session deadline', async () => {
    const clock = fakeClock();
    const m = fx.manager({ clock, inactivityDuration: 0, maxStaleness: HOUR });
    const { session, token } = await m.createSession(uid('attr'), { keep: 1 });
    await m.deleteExpired({ pause: 0 });
    session.set('code', 42, { expiresAt: clock() + 10 * MINUTE });
    await m.updateSession(session);
    clock.advance(10 * MINUTE);
    expect((await m.deleteExpired({ pause: 0 })).attributes).toBeGreaterThanOrEqual(1);
    expect(Object.keys((await rawRow(fx, session.id))!.attributes as object)).toEqual(['keep']);
    expect((await m.getSession(token))!.toObject()).toEqual({ keep: 1 });
    // Its deadline is the absolute expiry again.
    const at = await fx.t.admin.query<{ c: Date; e: Date }>(`SELECT cleanup_at AS c, expires_at AS e FROM ${table()} WHERE id = $1`, [
      session.id,
    ]);
    expect(at.rows[0]!.c.getTime()).toBe(at.rows[0]!.e.getTime());
  });

  it('refuses a batchSize or pause it cannot use', async () => {
    const m = fx.manager();
    await expect(m.deleteExpired({ batchSize: 0 })).rejects.toBeInstanceOf(InvalidArgumentError);
    await expect(m.deleteExpired({ batchSize: 1.5 })).rejects.toBeInstanceOf(InvalidArgumentError);
    await expect(m.deleteExpired({ pause: -1 })).rejects.toBeInstanceOf(InvalidArgumentError);
    await expect(m.deleteExpired({ pause: Number.NaN })).rejects.toBeInstanceOf(InvalidArgumentError);
  });
});

describe.each(DRIVERS)('deleteExpired with a signal (%s)', (driver) => {
  const fx = useStore(driver, 'mgr_cleanup5');

  it('stops between two statements when its signal aborts, also during a pause', async () => {
    const clock = fakeClock();
    const m = fx.manager({ clock, maxSessions: 100 });
    const user = uid('abort');
    for (let i = 0; i < 30; i++) await m.createSession(user, {}, { expiresAt: clock() + SECOND });
    clock.advance(SECOND);
    const count = async () =>
      (await fx.t.admin.query<{ n: number }>(`SELECT count(*)::integer AS n FROM "${fx.schemaName}"."sessions" WHERE user_id = $1`, [user]))
        .rows[0]!.n;
    const stop = new AbortController();
    const t0 = Date.now();
    // An endless pause after the first statement (10 of the 30 rows, all in one block); an abort while it
    // waits ends the cleanup at once.
    const result = await m.deleteExpired({
      batchSize: 10,
      pause: 1e9,
      signal: stop.signal,
      onBatch: () => setTimeout(() => stop.abort(), 50),
    });
    expect(Date.now() - t0).toBeLessThan(5000);
    expect(result).toEqual({ sessions: 10, attributes: 0, audit: 0, batches: 1 });
    expect(await count()).toBe(20);
    expect(await m.deleteExpired({ signal: stop.signal })).toEqual({ sessions: 0, attributes: 0, audit: 0, batches: 0 });
    expect((await m.deleteExpired({ batchSize: 10, pause: 0 })).sessions).toBe(20);
    expect(await count()).toBe(0);
  });
});

describe.each(DRIVERS)('last-access touches (%s)', (driver) => {
  const fx = useStore(driver, 'mgr_touch');

  it('coalesces many reads of one session into one row update with the newest time', async () => {
    const clock = fakeClock();
    const m = fx.manager({ clock, maxStaleness: HOUR });
    const { session, token } = await m.createSession(uid());
    const before = (await rawRow(fx, session.id))!;
    for (let i = 0; i < 50; i++) {
      clock.advance(SECOND);
      expect(await m.getSession(token)).not.toBeNull();
    }
    expect(m.pendingTouchCount).toBe(1);
    // Nothing written yet: reads never write (same row version, same stored last access).
    const unchanged = (await rawRow(fx, session.id))!;
    expect(unchanged.xmin).toBe(before.xmin);
    expect(unchanged.last_accessed).toBe(before.last_accessed);
    m.db.reset();
    expect(await m.flushTouches()).toEqual({ rows: 1, batches: 1 });
    expect(m.db.count).toBe(1);
    expect(m.pendingTouchCount).toBe(0);
    const after = (await rawRow(fx, session.id))!;
    expect(after.last_accessed).toBe(clock());
    // A touch is not a change: version and updated_at stay.
    expect(after.version).toBe(1);
    expect(after.updated_at).toBe(before.updated_at);
    expect(await m.flushTouches()).toEqual({ rows: 0, batches: 0 });
  });

  it('flushes in batches of lastAccessUpdateBatchSize: 5 sessions, batch size 2 -> 3 statements', async () => {
    const clock = fakeClock();
    const m = fx.manager({ clock, lastAccessUpdateBatchSize: 2, maxSessions: 10 });
    const created = await Promise.all(Array.from({ length: 5 }, () => m.createSession(uid())));
    m.takePendingTouches();
    const at = new Map<string, number>();
    for (const { session, token } of created) {
      clock.advance(SECOND);
      await m.getSession(token);
      at.set(session.id, clock());
    }
    m.db.reset();
    expect(await m.flushTouches()).toEqual({ rows: 5, batches: 3 });
    expect(m.db.count).toBe(3);
    for (const [id, ms] of at) expect((await rawRow(fx, id))!.last_accessed).toBe(ms);
  });

  it('never moves last_accessed backwards (GREATEST), whichever manager flushes last', async () => {
    const clock = fakeClock();
    const a = fx.manager({ clock });
    const b = fx.manager({ clock });
    const { session, token } = await a.createSession(uid());
    const t0 = clock();
    // A newer value written elsewhere (another node's flush, or psql) first.
    await setLastAccessed(fx, session.id, t0 + 10 * MINUTE);
    clock.set(t0 + MINUTE);
    await a.getSession(token);
    expect(await a.flushTouches()).toEqual({ rows: 0, batches: 1 });
    expect((await rawRow(fx, session.id))!.last_accessed).toBe(t0 + 10 * MINUTE);

    // Two managers: the newer touch is flushed first, the older one after it.
    clock.set(t0 + 20 * MINUTE);
    await a.getSession(token, { forceRefresh: true });
    clock.set(t0 + 15 * MINUTE);
    await b.getSession(token);
    // Flushed once both clocks read past the touches (a flush clamps times to the flusher's clock).
    clock.set(t0 + 25 * MINUTE);
    await a.flushTouches();
    await b.flushTouches();
    expect((await rawRow(fx, session.id))!.last_accessed).toBe(t0 + 20 * MINUTE);
  });

  it('concurrent flushTouches calls share one flush', async () => {
    const clock = fakeClock();
    const m = fx.manager({ clock });
    const { token } = await m.createSession(uid());
    clock.advance(SECOND);
    await m.getSession(token);
    m.db.reset();
    const [r1, r2] = await Promise.all([m.flushTouches(), m.flushTouches()]);
    expect(r1).toEqual({ rows: 1, batches: 1 });
    expect(r2).toBe(r1);
    expect(m.db.count).toBe(1);
  });

  it('touches of deleted sessions are dropped harmlessly', async () => {
    const clock = fakeClock();
    const m = fx.manager({ clock });
    const { token } = await m.createSession(uid());
    clock.advance(SECOND);
    await m.getSession(token);
    await fx.manager().deleteSession(token);
    expect(await m.flushTouches()).toEqual({ rows: 0, batches: 1 });
  });

  it('a touch that cannot name a session (restored by hand) is dropped, not a failed flush', async () => {
    const clock = fakeClock();
    const m = fx.manager({ clock });
    const { session } = await m.createSession(uid());
    m.takePendingTouches();
    clock.advance(SECOND);
    m.restoreTouches([
      ['not-a-session-id', clock()],
      [session.id, clock()],
      ['00000000-0000-4000-8000-000000000000', Number.NaN],
    ]);
    expect(await m.flushTouches()).toEqual({ rows: 1, batches: 1 });
    expect((await rawRow(fx, session.id))!.last_accessed).toBe(clock());
    expect(m.pendingTouchCount).toBe(0);
  });

  it('takePendingTouches / restoreTouches keep the newest and the oldest access per session', async () => {
    const clock = fakeClock();
    const m = fx.manager({ clock });
    const { session, token } = await m.createSession(uid());
    const created = clock();
    m.takePendingTouches();
    clock.advance(5 * SECOND);
    await m.getSession(token);
    clock.advance(5 * SECOND);
    await m.getSession(token);
    const taken = m.takePendingTouches();
    // [id, newest, oldest access of the run]
    expect([...taken]).toEqual([[session.id, clock(), created + 5 * SECOND]]);
    expect(m.pendingTouchCount).toBe(0);
    m.restoreTouches([[session.id, clock() - SECOND]]);
    m.restoreTouches(taken);
    await m.flushTouches();
    expect((await rawRow(fx, session.id))!.last_accessed).toBe(clock());
  });
});
