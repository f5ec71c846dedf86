// Who ended a session, and to whom its end is told: every audit row names its actor (the user, another of
// the user's sessions, an administrator, cleanup, eviction, rotation), and c.var.session.ended() answers
// only the browser that held the session (its dead token, never an id it names). Against the real
// database, on both drivers.
import { createHash, randomBytes } from 'node:crypto';
import { Hono } from 'hono';
import { describe, expect, it } from 'vitest';
import { CookieJar } from '../../harness/cookies.ts';
import type { SessionManager } from '../../src/core/manager.ts';
import { type SessionEnv, sessionMiddleware } from '../../src/hono.ts';
import { DRIVERS, fakeClock } from '../support/db.ts';
import { sha256Hex, uid } from '../support/manager-helpers.ts';
import { useStore } from '../support/store-suite.ts';

/** A well-formed token no session ever had (43 base64url characters, the last one's low bits zero). */
function strayToken(): string {
  return `${randomBytes(32).toString('base64url').slice(0, 42)}A`;
}

describe.each(DRIVERS)('ended() is told only to the browser that held the session (%s)', (driver) => {
  const fx = useStore(driver, 'ended_binding');

  function app(m: SessionManager) {
    const a = new Hono<SessionEnv>();
    a.use(sessionMiddleware({ manager: m, cookie: { prefix: 'none', secure: false } }));
    a.post('/login', async (c) => c.json({ id: (await c.var.session.login(c.req.header('x-user') ?? 'u')).id }));
    a.get('/me', async (c) => c.json({ session: (await c.var.session.get())?.id ?? null, ended: await c.var.session.ended() }));
    return a;
  }

  it("a dead well-formed token with a <name>.id cookie naming someone else's session learns nothing of it", async () => {
    const m = fx.manager({ audit: true, maxSessions: 10 });
    const a = app(m);
    const victim = uid('victim');
    const jar = new CookieJar('session');
    const res = await a.request('/login', { method: 'POST', headers: { 'x-user': victim } });
    jar.take(res);
    const { id } = (await res.json()) as { id: string };
    await m.deleteSessionById(id, { userId: victim });

    // The attack: any well-formed token that names no live session, and the victim's session id (shown on
    // device pages, in logs: not a credential) in the id cookie.
    const attack = await a.request('/me', { headers: { cookie: `session=${strayToken()}; session.id=${id}` } });
    expect(await attack.json()).toEqual({ session: null, ended: null });

    // The browser that held it is told, from its own dead token (with or without the id cookie).
    const own = await a.request('/me', { headers: { cookie: `session=${jar.get()}` } });
    expect(await own.json()).toEqual({ session: null, ended: { reason: 'revoked', endedAt: expect.any(String) } });
  });
});

describe.each(DRIVERS)('every audit row says who ended the session (%s)', (driver) => {
  const fx = useStore(driver, 'end_actor');

  it('logout and replacement: the user; revocation from a device page: that session; an admin: the id the app passes', async () => {
    const m = fx.manager({ audit: true, maxSessions: 10 });
    const user = uid();
    const [a, b, c, d] = await Promise.all([1, 2, 3, 4].map(() => m.createSession(user, {})));
    await m.deleteSession(a!.token);
    await m.deleteSessionById(b!.session.id, { userId: user, actor: { kind: 'session', id: d!.session.id } });
    await m.deleteSessionById(c!.session.id, { actor: { kind: 'admin', id: 'admin-7' } });
    const ends = await m.listSessionEnds(user);
    const by = (id: string) => ends.find((e) => e.sessionId === id);
    expect(by(a!.session.id)).toMatchObject({ reason: 'logout', actor: { kind: 'user', id: null } });
    expect(by(b!.session.id)).toMatchObject({ reason: 'revoked', actor: { kind: 'session', id: d!.session.id } });
    expect(by(c!.session.id)).toMatchObject({ reason: 'admin_revoked', actor: { kind: 'admin', id: 'admin-7' } });
    expect(await m.sessionEnd(b!.session.id)).toMatchObject({ actor: { kind: 'session', id: d!.session.id } });
    // Defaults: a user's own revoke is the user's; one without userId an administrator's without an id.
    const [e, f] = await Promise.all([1, 2].map(() => m.createSession(user, {})));
    await m.deleteSessionById(e!.session.id, { userId: user });
    await m.deleteSessionById(f!.session.id);
    expect(await m.sessionEnd(e!.session.id)).toMatchObject({ actor: { kind: 'user', id: null } });
    expect(await m.sessionEnd(f!.session.id)).toMatchObject({ actor: { kind: 'admin', id: null } });
  });

  it('bulk deletes take the actor ("everywhere else" defaults to the kept session); rotation, eviction and cleanup name themselves', async () => {
    const clock = fakeClock();
    const m = fx.manager({ audit: true, maxSessions: 2, clock });
    const user = uid();
    const keep = await m.createSession(user, {}, { groupId: 'g' });
    const other = await m.createSession(user, {}, { groupId: 'g' });
    await m.deleteAllUserSessions(user, { exceptSessionId: keep.session.id });
    expect(await m.sessionEnd(other.session.id)).toMatchObject({
      reason: 'user_sessions_deleted',
      actor: { kind: 'session', id: keep.session.id },
    });
    const g = await m.createSession(user, {}, { groupId: 'g2' });
    await m.deleteSessionsByGroup('g2', { actor: { kind: 'admin', id: 'ops' } });
    expect(await m.sessionEnd(g.session.id)).toMatchObject({ reason: 'group_deleted', actor: { kind: 'admin', id: 'ops' } });
    // Rotation (the old token's end), then eviction by a third session.
    await m.rotate(keep.token);
    const second = await m.createSession(user, {});
    clock.advance(1000);
    await m.getSession(second.token);
    const third = await m.createSession(user, {});
    const ends = await m.listSessionEnds(user);
    expect(ends.find((e) => e.reason === 'rotated')).toMatchObject({ sessionId: keep.session.id, actor: { kind: 'rotation', id: null } });
    expect(ends.find((e) => e.reason === 'evicted')).toMatchObject({
      sessionId: keep.session.id,
      actor: { kind: 'eviction', id: third.session.id },
    });
    // Cleanup.
    const short = await m.createSession(uid(), {}, { expiresAt: clock() + 1000 });
    clock.advance(2000);
    await m.deleteExpired({ pause: 0 });
    expect(await m.sessionEnd(short.session.id)).toMatchObject({ reason: 'expired', actor: { kind: 'cleanup', id: null } });
  });

  it('a bad actor is a typed error and deletes nothing', async () => {
    const m = fx.manager({ audit: true });
    const user = uid();
    const s = await m.createSession(user, {});
    for (const actor of [
      { kind: 'session', id: 'not-a-uuid' },
      { kind: 'admin', id: '' },
      { kind: 'admin' },
      { kind: 'user', id: 'x' },
      { kind: 'cleanup' },
      'admin',
    ]) {
      await expect(m.deleteSessionById(s.session.id, { actor: actor as never })).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
      await expect(m.deleteAllUserSessions(user, { actor: actor as never })).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
      await expect(m.deleteAllSessions({ actor: actor as never })).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
    }
    expect(await m.getSession(s.token)).not.toBeNull();
    expect(await m.listSessionEnds(user)).toEqual([]);
  });

  it("the audit row holds neither the token nor its hash; its check is the ended token's, as sessionEndOfToken computes it", async () => {
    const m = fx.manager({ audit: true });
    const user = uid();
    const { token, session } = await m.createSession(user, {});
    const rotated = (await m.rotate(token))!;
    await m.deleteSession(rotated.token);
    const rows = await fx.t.admin.query<{ row: string; check: string }>(
      `SELECT row_to_json(a)::text AS row, encode(token_check, 'hex') AS check FROM "${fx.schemaName}"."session_audit" AS a WHERE user_id = $1 ORDER BY id`,
      [user],
    );
    expect(rows.rows).toHaveLength(2);
    for (const { row } of rows.rows) {
      for (const t of [token, rotated.token]) {
        expect(row).not.toContain(t);
        expect(row).not.toContain(sha256Hex(t));
      }
    }
    // Each row's check is SHA-256 of the domain prefix and the token hash it ended (computed here apart).
    const check = (t: string) =>
      createHash('sha256')
        .update(Buffer.concat([Buffer.from('pg-edge-session:ended-token:'), Buffer.from(sha256Hex(t), 'hex')]))
        .digest('hex');
    expect(rows.rows.map((r) => r.check)).toEqual([check(token), check(rotated.token)]);
    // Either token tells its holder the session's final end; a stray token and a malformed one tell nothing.
    expect(await m.sessionEndOfToken(token)).toMatchObject({ sessionId: session.id, reason: 'logout' });
    expect(await m.sessionEndOfToken(rotated.token)).toMatchObject({ sessionId: session.id, reason: 'logout' });
    expect(await m.sessionEndOfToken(strayToken())).toBeNull();
    m.db.reset();
    expect(await m.sessionEndOfToken('nope')).toBeNull();
    expect(m.db.count).toBe(0);
  });
});
