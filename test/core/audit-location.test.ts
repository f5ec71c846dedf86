// Location in audit rows (drizzle/0017): the audit row of every session end keeps the session's location
// (drizzle/0016), listed by listSessionEnds, sessionEnd and sessionEndOfToken; a store at 0016 is carried
// forward, and an earlier release's audit writes keep working during the rollout. Against the real database,
// on both drivers.
import { afterAll, describe, expect, it } from 'vitest';
import type { DeviceLocation } from '../../src/core/device.ts';
import { SessionManager } from '../../src/core/manager.ts';
import { MIGRATIONS } from '../../src/db/migrations.ts';
import { objectNames, renderSql } from '../../src/db/names.ts';
import { migrate } from '../../src/migrate.ts';
import { DRIVERS, dropSchema, fakeClock, uniqueSchema } from '../support/db.ts';
import { uid } from '../support/manager-helpers.ts';
import { useStore } from '../support/store-suite.ts';

const FIREFOX = 'Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0';
const FRANKFURT: DeviceLocation = { country: 'DE', region: 'Hesse', city: 'Frankfurt am Main', colo: 'FRA' };
const at = (location?: DeviceLocation) => ({ device: { userAgent: FIREFOX, ip: '203.0.113.7', ...(location ? { location } : {}) } });

describe.each(DRIVERS)('location in audit rows (%s)', (driver) => {
  const fx = useStore(driver, 'audit_location');
  const made: string[] = [];
  afterAll(async () => {
    if (fx.t) for (const s of made) await dropSchema(fx.t.admin, s);
  });

  it('every end keeps the location: logout, revoke, rotation, eviction, bulk delete, cleanup; still one statement each', async () => {
    const clock = fakeClock();
    const m = fx.manager({ audit: true, maxSessions: 2, clock });
    const user = uid();
    const endOf = async (id: string) => (await m.sessionEnd(id))?.location;

    const a = await m.createSession(user, {}, at(FRANKFURT));
    m.db.reset();
    await m.deleteSession(a.token);
    expect(m.db.count).toBe(1);
    expect(await m.sessionEnd(a.session.id)).toMatchObject({ reason: 'logout', location: FRANKFURT });
    expect(await m.sessionEndOfToken(a.token)).toMatchObject({ reason: 'logout', location: FRANKFURT });

    const b = await m.createSession(user, {}, at({ country: 'FR' }));
    m.db.reset();
    await m.deleteSessionById(b.session.id, { userId: user });
    expect(m.db.count).toBe(1);
    expect(await endOf(b.session.id)).toEqual({ country: 'FR' });

    // Rotation (the old token's end), then eviction of the same session by a third one.
    const c = await m.createSession(user, {}, at({ country: 'US', city: 'Ashburn' }));
    m.db.reset();
    await m.rotate(c.token);
    expect(m.db.count).toBe(1);
    const d = await m.createSession(user, {}, at());
    clock.advance(1000);
    await m.getSession(d.token);
    m.db.reset();
    const e = await m.createSession(user, {}, at({ country: 'JP' }));
    expect(m.db.count).toBe(1);
    const ends = await m.listSessionEnds(user);
    expect(ends.find((x) => x.reason === 'rotated')).toMatchObject({
      sessionId: c.session.id,
      location: { country: 'US', city: 'Ashburn' },
    });
    expect(ends.find((x) => x.reason === 'evicted')).toMatchObject({
      sessionId: c.session.id,
      location: { country: 'US', city: 'Ashburn' },
    });

    // A bulk delete: a session without a location ends with none.
    await m.deleteAllUserSessions(user, { actor: { kind: 'admin', id: 'ops' } });
    expect(await endOf(d.session.id)).toBeNull();
    expect(await endOf(e.session.id)).toEqual({ country: 'JP' });

    // Cleanup.
    const short = await m.createSession(uid(), {}, { ...at({ country: 'BR', city: 'São Paulo' }), expiresAt: clock() + 1000 });
    clock.advance(2000);
    await m.deleteExpired({ pause: 0 });
    expect(await m.sessionEnd(short.session.id)).toMatchObject({ reason: 'expired', location: { country: 'BR', city: 'São Paulo' } });

    // What is stored is the session's jsonb itself.
    const stored = await fx.t.admin.query<{ location: DeviceLocation | null }>(
      `SELECT location FROM "${fx.schemaName}"."session_audit" WHERE session_id = $1 AND reason = 'logout'`,
      [a.session.id],
    );
    expect(stored.rows).toEqual([{ location: FRANKFURT }]);
  });

  it('carries a store at 0016 forward: its audit rows have no location; an earlier release still writes audit rows during the rollout', async () => {
    const schemaName = uniqueSchema('mig_audit_loc');
    made.push(schemaName);
    const names = objectNames(schemaName, '');
    // What migrate() of the previous release left behind: every migration before 0017 applied and recorded.
    await fx.t.admin.query(`CREATE SCHEMA "${schemaName}"`);
    await fx.t.admin.query(`CREATE TABLE ${names.migrations} (tag text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())`);
    for (const mig of MIGRATIONS.filter((x) => x.tag < '0017')) {
      for (const statement of mig.statements) await fx.t.admin.query(renderSql(statement, schemaName, ''));
      await fx.t.admin.query(`INSERT INTO ${names.migrations} (tag) VALUES ($1)`, [mig.tag]);
    }
    const user = uid();
    // The previous release's logout: its audit row through session_audit_write's json (no location key).
    const oldEnd = (id: string) =>
      fx.t.admin.query(
        `SELECT ${names.auditWriteFunction}(json_build_array(json_build_object('session_id', $1::uuid, 'user_id', $2::text, 'reason', 'logout',
           'ended_at', now(), 'created_at', now(), 'last_accessed', now(), 'device', 'Firefox on Linux', 'ip', '203.0.113.7')), 0)`,
        [id, user],
      );
    const before = crypto.randomUUID();
    await oldEnd(before);
    expect((await migrate(fx.t.db, { schemaName })).applied).toEqual(MIGRATIONS.map((x) => x.tag).filter((tag) => tag >= '0017'));
    const during = crypto.randomUUID();
    await oldEnd(during);
    const m = new SessionManager(fx.t.db, { schemaName, audit: true, maxSessions: 5 });
    expect(await m.sessionEnd(before)).toMatchObject({ reason: 'logout', location: null });
    expect(await m.sessionEnd(during)).toMatchObject({ reason: 'logout', location: null });
    // This release's ends keep it.
    const now = await m.createSession(user, {}, at(FRANKFURT));
    await m.deleteSession(now.token);
    expect(await m.sessionEnd(now.session.id)).toMatchObject({ location: FRANKFURT });
    // A kept end without a location matches a sign-in by label and network alone, whatever its country; one
    // in another country does not (the user's other kept end, Frankfurt, alone would make it new).
    expect((await m.createSession(user, {}, { ...at({ country: 'FR' }), checkNewDevice: true })).newDevice).toBe(false);
    const other = uid();
    await m.deleteSession((await m.createSession(other, {}, at(FRANKFURT))).token);
    expect((await m.createSession(other, {}, { ...at({ country: 'FR' }), checkNewDevice: true })).newDevice).toBe(true);
    // The schema check knows the column: dropped (as a drizzle-kit push with an older schema file would), made again.
    expect((await migrate(fx.t.db, { schemaName })).repaired).toEqual([]);
    await fx.t.admin.query(`ALTER TABLE ${names.audit} DROP COLUMN location`);
    expect((await migrate(fx.t.db, { schemaName })).repaired).toEqual([`column ${schemaName}.session_audit.location`]);
    const again = await m.createSession(user, {}, at({ country: 'NL' }));
    await m.deleteSession(again.token);
    expect(await m.sessionEnd(again.session.id)).toMatchObject({ location: { country: 'NL' } });
  });
});
