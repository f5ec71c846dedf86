// SessionManager CRUD on both drivers: the go-pg-session README flow, every delete variant, listings,
// group ids, attribute versions, tokens (promise 10) and the edge cases of a session's life.
import { randomUUID } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { InvalidArgumentError, SessionNotFoundError } from '../../src/core/errors.ts';
import { DRIVERS, fakeClock } from '../support/db.ts';
import { countRows, rawRow, rawRowsOfUser, sha256Hex, table, uid } from '../support/manager-helpers.ts';
import { useStore } from '../support/store-suite.ts';

const HOUR = 3_600_000;

describe.each(DRIVERS)('SessionManager basics (%s)', (driver) => {
  const fx = useStore(driver, 'mgr_basic');

  it('runs the go-pg-session README flow: create with attributes, get, update an attribute, update, delete', async () => {
    type App = { role: string; preferences: { theme: string } };
    const m = fx.manager<App>();
    const user = uid();
    const { session: created, token } = await m.createSession(user, { role: 'admin', preferences: { theme: 'dark' } });
    expect(created.userId).toBe(user);
    expect(created.get('role')).toBe('admin');

    // Read through another manager so the row, not a cache, is what we see.
    const other = fx.manager<App>();
    const session = await other.getSession(token);
    expect(session).not.toBeNull();
    expect(session!.id).toBe(created.id);
    expect(session!.userId).toBe(user);
    expect(session!.toObject()).toEqual({ role: 'admin', preferences: { theme: 'dark' } });

    session!.set('preferences', { theme: 'light' });
    expect(session!.isModified).toBe(true);
    const updated = await other.updateSession(session!);
    expect(updated.isModified).toBe(false);
    expect(updated.version).toBe(2);

    const third = fx.manager<App>();
    const reread = await third.getSession(token);
    expect(reread!.get('preferences')).toEqual({ theme: 'light' });
    expect(reread!.get('role')).toBe('admin');
    expect((await rawRow(fx, created.id))!.attributes.preferences!.v).toEqual({ theme: 'light' });

    expect(await third.deleteSession(token)).toBe(true);
    expect(await third.getSession(token)).toBeNull();
    expect(await fx.manager().getSession(token)).toBeNull();
    expect(await rawRow(fx, created.id)).toBeUndefined();
  });

  it('stores what createSession was given: user, group, timestamps from the clock, expiry from sessionExpiration', async () => {
    const clock = fakeClock();
    const m = fx.manager({ clock, sessionExpiration: 5 * HOUR });
    const user = uid();
    const { session } = await m.createSession(user, { a: 1 }, { groupId: 'g-1' });
    const row = (await rawRow(fx, session.id))!;
    expect(row.user_id).toBe(user);
    expect(row.group_id).toBe('g-1');
    expect(row.version).toBe(1);
    expect(row.created_at).toBe(clock());
    expect(row.updated_at).toBe(clock());
    expect(row.last_accessed).toBe(clock());
    expect(row.expires_at).toBe(clock() + 5 * HOUR);
    expect(row.attributes).toEqual({ a: { v: 1, ver: 1 } });
    expect(session.expiresAt.getTime()).toBe(clock() + 5 * HOUR);
    expect(session.createdAt.getTime()).toBe(clock());

    const explicit = await m.createSession(user, {}, { expiresAt: new Date(clock() + 1234) });
    expect((await rawRow(fx, explicit.session.id))!.expires_at).toBe(clock() + 1234);
  });

  it('updates only changed keys and deletes removed ones', async () => {
    const m = fx.manager();
    const { session, token } = await m.createSession(uid(), { keep: 'k', change: 1, drop: true });
    session.set('change', 2);
    expect(session.delete('drop')).toBe(true);
    session.set('added', ['x']);
    await m.updateSession(session);
    const row = (await rawRow(fx, session.id))!;
    expect(row.attributes).toEqual({ keep: { v: 'k', ver: 1 }, change: { v: 2, ver: 2 }, added: { v: ['x'], ver: 1 } });
    const fresh = await fx.manager().getSession(token);
    expect(fresh!.toObject()).toEqual({ keep: 'k', change: 2, added: ['x'] });
    expect(fresh!.has('drop')).toBe(false);
  });

  it('hands out frozen attribute values, so a caller cannot change the cached session by mutation', async () => {
    const m = fx.manager<{ cart: { items: string[] } }>();
    const { token } = await m.createSession(uid(), { cart: { items: ['a'] } });
    const s = await m.getSession(token);
    const cart = s!.get('cart')!;
    expect(Object.isFrozen(cart)).toBe(true);
    expect(() => (cart.items as string[]).push('b')).toThrow(TypeError);
    expect((await m.getSession(token))!.get('cart')).toEqual({ items: ['a'] });
  });

  it('deleteAllUserSessions deletes every session of the user and only theirs', async () => {
    const m = fx.manager({ maxSessions: 10 });
    const user = uid();
    const bystander = uid();
    const mine = await Promise.all([1, 2, 3].map(() => m.createSession(user)));
    const theirs = await m.createSession(bystander);
    m.db.reset();
    expect(await m.deleteAllUserSessions(user)).toBe(3);
    expect(m.db.count).toBe(1);
    expect(await countRows(fx, 'user_id = $1', [user])).toBe(0);
    // The deleting manager had them all cached: none may be served.
    for (const { token } of mine) expect(await m.getSession(token)).toBeNull();
    expect(await m.getSession(theirs.token)).not.toBeNull();
    expect(await m.deleteAllUserSessions(user)).toBe(0);
  });

  it('deleteAllUserSessions with exceptSessionId keeps that one session ("sign out everywhere else")', async () => {
    const m = fx.manager({ maxSessions: 10 });
    const user = uid();
    const [a, b, c] = await Promise.all([1, 2, 3].map(() => m.createSession(user)));
    expect(await m.deleteAllUserSessions(user, { exceptSessionId: b!.session.id })).toBe(2);
    expect((await rawRowsOfUser(fx, user)).map((r) => r.id)).toEqual([b!.session.id]);
    expect(await m.getSession(a!.token)).toBeNull();
    expect(await m.getSession(c!.token)).toBeNull();
    expect((await m.getSession(b!.token))?.id).toBe(b!.session.id);
    await expect(m.deleteAllUserSessions(user, { exceptSessionId: 'not-a-uuid' })).rejects.toBeInstanceOf(InvalidArgumentError);
    expect(await countRows(fx, 'user_id = $1', [user])).toBe(1);
  });

  it('deleteSessionsByGroup deletes the group across users and leaves other groups', async () => {
    const m = fx.manager();
    const group = uid('g');
    const otherGroup = uid('g');
    const inGroup = [await m.createSession(uid(), {}, { groupId: group }), await m.createSession(uid(), {}, { groupId: group })];
    const outside = await m.createSession(uid(), {}, { groupId: otherGroup });
    const noGroup = await m.createSession(uid());
    expect(inGroup[0]!.session.groupId).toBe(group);
    expect(noGroup.session.groupId).toBeNull();

    m.db.reset();
    expect(await m.deleteSessionsByGroup(group)).toBe(2);
    expect(m.db.count).toBe(1);
    expect(await countRows(fx, 'group_id = $1', [group])).toBe(0);
    for (const { token } of inGroup) expect(await m.getSession(token)).toBeNull();
    expect((await m.getSession(outside.token))?.groupId).toBe(otherGroup);
    expect(await m.getSession(noGroup.token)).not.toBeNull();
    expect(await m.deleteSessionsByGroup(group)).toBe(0);
  });

  it('deleteSessionById deletes by the listed id; unknown ids return false; non-UUIDs are refused', async () => {
    const m = fx.manager();
    const user = uid();
    const { session, token } = await m.createSession(user);
    const [info] = await m.listUserSessions(user);
    m.db.reset();
    expect(await m.deleteSessionById(info!.id)).toBe(true);
    expect(m.db.count).toBe(1);
    expect(await rawRow(fx, session.id)).toBeUndefined();
    expect(await m.getSession(token)).toBeNull();
    expect(await m.deleteSessionById(info!.id)).toBe(false);
    expect(await m.deleteSessionById(randomUUID())).toBe(false);
    await expect(m.deleteSessionById("1' OR '1'='1")).rejects.toBeInstanceOf(InvalidArgumentError);
  });

  it('deleteAttributeFromAllUserSessions removes one key from every session of the user only', async () => {
    const m = fx.manager({ maxSessions: 10 });
    const user = uid();
    const bystander = uid();
    const a = await m.createSession(user, { cart: 1, theme: 'dark' });
    const b = await m.createSession(user, { cart: 2 });
    const c = await m.createSession(user, { theme: 'light' });
    const other = await m.createSession(bystander, { cart: 9 });
    m.db.reset();
    expect(await m.deleteAttributeFromAllUserSessions(user, 'cart')).toBe(2);
    expect(m.db.count).toBe(1);
    // Served from this manager's cache right away: the change must be visible, not the cached copy.
    expect((await m.getSession(a.token))!.toObject()).toEqual({ theme: 'dark' });
    expect((await m.getSession(b.token))!.toObject()).toEqual({});
    expect((await m.getSession(c.token))!.toObject()).toEqual({ theme: 'light' });
    expect((await m.getSession(other.token))!.get('cart')).toBe(9);
    expect((await rawRow(fx, a.session.id))!.version).toBe(2);
    expect((await rawRow(fx, c.session.id))!.version).toBe(1);
    expect((await rawRow(fx, other.session.id))!.attributes).toEqual({ cart: { v: 9, ver: 1 } });
  });

  it('listUserSessions returns metadata, most recently used first, and never a token, token hash or attributes', async () => {
    const clock = fakeClock();
    const m = fx.manager({ clock, maxSessions: 10 });
    const user = uid();
    const first = await m.createSession(user, { secret: 's1' }, { groupId: 'web' });
    clock.advance(1000);
    const second = await m.createSession(user, { secret: 's2' });
    clock.advance(1000);
    await m.createSession(uid(), {});
    m.db.reset();
    const list = await m.listUserSessions(user);
    expect(m.db.count).toBe(1);
    expect(list.map((s) => s.id)).toEqual([second.session.id, first.session.id]);
    expect(list[1]).toEqual({
      id: first.session.id,
      userId: user,
      groupId: 'web',
      version: 1,
      createdAt: new Date(clock() - 2000),
      updatedAt: new Date(clock() - 2000),
      lastAccessedAt: new Date(clock() - 2000),
      expiresAt: first.session.expiresAt,
      authenticatedAt: new Date(clock() - 2000),
      impersonatedBy: null,
      userAgent: null,
      device: null,
      ip: null,
      label: null,
      location: null,
      current: false,
    });
    const text = JSON.stringify(list);
    for (const { token } of [first, second]) {
      expect(text).not.toContain(token);
      expect(text).not.toContain(sha256Hex(token));
    }
    expect(text).not.toContain('s1');
    for (const info of list)
      expect(Object.keys(info).sort()).toEqual([
        'authenticatedAt',
        'createdAt',
        'current',
        'device',
        'expiresAt',
        'groupId',
        'id',
        'impersonatedBy',
        'ip',
        'label',
        'lastAccessedAt',
        'location',
        'updatedAt',
        'userAgent',
        'userId',
        'version',
      ]);

    // A touch (even one not flushed yet) makes a session the most recently used.
    clock.advance(1000);
    await m.getSession(first.token);
    const after = await m.listUserSessions(user);
    expect(after.map((s) => s.id)).toEqual([first.session.id, second.session.id]);
    expect(after[0]!.lastAccessedAt.getTime()).toBe(clock());
    expect(await m.listUserSessions(uid())).toEqual([]);
  });

  it('keeps per-attribute versions: only changed keys are bumped, the session version on every update', async () => {
    const m = fx.manager();
    const { session, token } = await m.createSession(uid(), { a: 1, b: 1 });
    expect(session.version).toBe(1);
    expect(session.attributeVersion('a')).toBe(1);
    expect(session.attributeVersion('b')).toBe(1);
    expect(session.attributeVersion('missing')).toBe(0);

    session.set('a', 2);
    await m.updateSession(session);
    expect([session.version, session.attributeVersion('a'), session.attributeVersion('b')]).toEqual([2, 2, 1]);

    session.set('a', 3).set('c', 'new');
    await m.updateSession(session);
    expect([session.version, session.attributeVersion('a'), session.attributeVersion('b'), session.attributeVersion('c')]).toEqual([
      3, 3, 1, 1,
    ]);

    session.delete('b');
    await m.updateSession(session);
    expect(session.version).toBe(4);
    expect(session.attributeVersion('b')).toBe(0);
    session.set('b', 'again');
    await m.updateSession(session);
    // A re-created attribute starts over.
    expect(session.attributeVersion('b')).toBe(1);

    const fresh = await fx.manager().getSession(token);
    expect(fresh!.version).toBe(5);
    expect([fresh!.attributeVersion('a'), fresh!.attributeVersion('b'), fresh!.attributeVersion('c')]).toEqual([3, 1, 1]);
    const row = (await rawRow(fx, session.id))!;
    expect(row.version).toBe(5);
    expect(row.attributes.a!.ver).toBe(3);
  });

  it('does nothing (no statement, no version bump) for an update without changes', async () => {
    const m = fx.manager();
    const { session } = await m.createSession(uid(), { a: 1 });
    m.db.reset();
    expect(await m.updateSession(session)).toBe(session);
    expect(m.db.count).toBe(0);
    expect((await rawRow(fx, session.id))!.version).toBe(1);
  });

  it('handles empty attributes', async () => {
    const m = fx.manager();
    const { session, token } = await m.createSession(uid());
    expect(session.toObject()).toEqual({});
    expect(session.keys()).toEqual([]);
    const withEmpty = await m.createSession(uid(), {});
    expect((await rawRow(fx, session.id))!.attributes).toEqual({});
    expect((await rawRow(fx, withEmpty.session.id))!.attributes).toEqual({});
    const read = await fx.manager().getSession(token);
    expect(read!.toObject()).toEqual({});
    // A top-level undefined is "no attribute", as with JSON.
    const skipped = await m.createSession(uid(), { a: undefined, b: 1 });
    expect((await rawRow(fx, skipped.session.id))!.attributes).toEqual({ b: { v: 1, ver: 1 } });
  });

  it('updateSession of a deleted session throws SessionNotFoundError (SESSION_NOT_FOUND) and writes nothing', async () => {
    const m = fx.manager();
    const { session, token } = await m.createSession(uid(), { a: 1 });
    expect(await fx.manager().deleteSession(token)).toBe(true);
    session.set('a', 2);
    for (const options of [{}, { checkVersion: true }, { checkAttributeVersion: true }]) {
      const err = await m.updateSession(session, options).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(SessionNotFoundError);
      expect((err as SessionNotFoundError).code).toBe('SESSION_NOT_FOUND');
      expect((err as SessionNotFoundError).sessionId).toBe(session.id);
    }
    expect(await rawRow(fx, session.id)).toBeUndefined();
    expect(await m.getSession(token)).toBeNull();
  });

  it('deleteSession of a missing session returns false without an error (token and Session)', async () => {
    const m = fx.manager();
    const { session, token } = await m.createSession(uid());
    expect(await m.deleteSession(session)).toBe(true);
    expect(await m.deleteSession(session)).toBe(false);
    expect(await m.deleteSession(token)).toBe(false);
    const other = await m.createSession(uid());
    expect(await m.deleteSession(other.token)).toBe(true);
    expect(await m.deleteSession(other.token)).toBe(false);
  });

  it('rejects malformed user ids, group ids and attribute names before any statement', async () => {
    const m = fx.manager();
    m.db.reset();
    for (const bad of ['', 'x'.repeat(513), 'nul\u0000', '\ud800', 42 as unknown as string]) {
      await expect(m.createSession(bad)).rejects.toBeInstanceOf(InvalidArgumentError);
    }
    await expect(m.createSession(uid(), {}, { groupId: '' })).rejects.toBeInstanceOf(InvalidArgumentError);
    await expect(m.createSession(uid(), { '': 1 })).rejects.toBeInstanceOf(InvalidArgumentError);
    await expect(m.createSession(uid(), [] as unknown as Record<string, unknown>)).rejects.toBeInstanceOf(InvalidArgumentError);
    await expect(m.createSession(uid(), {}, { expiresAt: Date.now() - 1 })).rejects.toBeInstanceOf(InvalidArgumentError);
    expect(m.db.count).toBe(0);
  });
});

describe.each(DRIVERS)('tokens (%s)', (driver) => {
  const fx = useStore(driver, 'mgr_token');

  it('issues 43-character base64url tokens carrying 256 random bits', async () => {
    const m = fx.manager({ maxSessions: 100 });
    const user = uid();
    const tokens = new Set<string>();
    for (let i = 0; i < 50; i++) {
      const { token } = await m.createSession(user);
      expect(token).toMatch(/^[A-Za-z0-9_-]{43}$/);
      // 43 characters are 258 bits; canonical encodings of 32 bytes end in one of these 16.
      expect('AEIMQUYcgkosw048').toContain(token[42]);
      expect(Buffer.from(token, 'base64url')).toHaveLength(32);
      tokens.add(token);
    }
    expect(tokens.size).toBe(50);
  });

  it('stores only SHA-256(token): no column holds the token', async () => {
    const m = fx.manager();
    const { session, token } = await m.createSession(uid(), { note: 'hello' });
    const row = (await rawRow(fx, session.id))!;
    expect(row.token_hash).toBe(sha256Hex(token));
    const whole = await fx.t.admin.query<{ t: string }>(`SELECT row_to_json(s)::text AS t FROM ${table(fx)} s WHERE id = $1::uuid`, [
      session.id,
    ]);
    const text = whole.rows[0]!.t;
    expect(text).toContain('hello');
    expect(text).not.toContain(token);
    expect(text.toLowerCase()).not.toContain(Buffer.from(token, 'base64url').toString('hex'));
    // The hash alone does not authenticate: it is not a token.
    expect(await m.getSession(sha256Hex(token))).toBeNull();
  });

  it('rejects malformed tokens with zero queries (getSession, deleteSession, rotate)', async () => {
    const m = fx.manager();
    const { token } = await m.createSession(uid());
    // 'B' sets one of the two padding bits, which a 32-byte encoding never does.
    const nonCanonical = `${token.slice(0, 42)}B`;
    const bad: unknown[] = [
      '',
      token.slice(0, 42),
      `${token}A`,
      `${token.slice(0, 41)}+A`,
      `${token.slice(0, 41)}/A`,
      `${token.slice(0, 41)}=A`,
      `${token.slice(0, 42)} `,
      `${token.slice(0, 41)}\u00e9A`,
      nonCanonical,
      undefined,
      null,
      42,
      {},
      [token],
      { toString: () => token },
    ];
    m.db.reset();
    for (const t of bad) {
      expect(await m.getSession(t as string)).toBeNull();
      expect(await m.getSession(t as string, { forceRefresh: true })).toBeNull();
      expect(await m.deleteSession(t as string)).toBe(false);
      expect(await m.rotate(t as string)).toBeNull();
    }
    expect(m.db.count).toBe(0);
    // The real token still works, and a well-formed unknown token costs exactly one query.
    expect(await m.getSession(token, { forceRefresh: true })).not.toBeNull();
    expect(m.db.count).toBe(1);
    const unknown = `${'A'.repeat(42)}A`;
    expect(await m.getSession(unknown)).toBeNull();
    expect(m.db.count).toBe(2);
  });
});

describe.each(DRIVERS)('deleteAllSessions (%s)', (driver) => {
  const fx = useStore(driver, 'mgr_delall');

  it('deletes every session in the store and clears the cache', async () => {
    const m = fx.manager();
    const created = await Promise.all([uid(), uid(), uid()].map((u) => m.createSession(u, { a: 1 })));
    const other = fx.manager();
    for (const { token } of created) expect(await other.getSession(token)).not.toBeNull();
    m.db.reset();
    expect(await m.deleteAllSessions()).toBe(3);
    expect(m.db.count).toBe(1);
    expect(await countRows(fx)).toBe(0);
    expect(m.cache.size).toBe(0);
    for (const { token } of created) expect(await m.getSession(token)).toBeNull();
    expect(await m.deleteAllSessions()).toBe(0);
  });
});
