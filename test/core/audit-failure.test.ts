// Ending a session never depends on its audit row: with the audit table refusing every insert (a trigger
// that raises, as a revoked privilege, a constraint or a full disk would), logout, revocation, rotation,
// eviction, bulk deletes and cleanup still end the sessions, in one statement each, and the failure is
// reported as an AuditWriteError. And the audit keeps at most auditMaxPerUser rows per user.
import { describe, expect, it } from 'vitest';
import { type AuditWriteError, ConfigError } from '../../src/core/errors.ts';
import { startWorker } from '../../worker/main.ts';
import { DRIVERS, databaseUrl, fakeClock } from '../support/db.ts';
import { uid } from '../support/manager-helpers.ts';
import { type StoreFixture, useStore } from '../support/store-suite.ts';

const SECOND = 1000;

async function auditCount(fx: StoreFixture, user: string): Promise<number> {
  const r = await fx.t.admin.query<{ n: number }>(
    `SELECT count(*)::integer AS n FROM "${fx.schemaName}"."session_audit" WHERE user_id = $1`,
    [user],
  );
  return r.rows[0]?.n ?? 0;
}

async function sessionCount(fx: StoreFixture, user: string): Promise<number> {
  const r = await fx.t.admin.query<{ n: number }>(`SELECT count(*)::integer AS n FROM "${fx.schemaName}"."sessions" WHERE user_id = $1`, [
    user,
  ]);
  return r.rows[0]?.n ?? 0;
}

/** Makes every insert into the audit table fail (until the returned function is called). */
async function refuseAuditInserts(fx: StoreFixture): Promise<() => Promise<void>> {
  const s = `"${fx.schemaName}"`;
  await fx.t.admin.query(`CREATE OR REPLACE FUNCTION ${s}.refuse_audit() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN RAISE EXCEPTION 'audit table refuses inserts (test)'; END $$`);
  await fx.t.admin.query(
    `CREATE TRIGGER refuse_audit BEFORE INSERT ON ${s}."session_audit" FOR EACH ROW EXECUTE FUNCTION ${s}.refuse_audit()`,
  );
  return async () => {
    await fx.t.admin.query(`DROP TRIGGER refuse_audit ON ${s}."session_audit"`);
  };
}

describe.each(DRIVERS)('a failing audit write never keeps a session alive (%s)', (driver) => {
  const fx = useStore(driver, 'auditfail');

  it('logout, revocation, rotation, eviction, bulk deletes and cleanup end their sessions and report the audit failure', async () => {
    const clock = fakeClock();
    const failures: AuditWriteError[] = [];
    const m = fx.manager({ clock, audit: true, maxSessions: 1, inactivityDuration: 0, onAuditError: (e) => failures.push(e) });
    const allow = await refuseAuditInserts(fx);
    try {
      const user = uid();
      // logout
      const a = await m.createSession(user);
      expect(await m.deleteSession(a.token)).toBe(true);
      expect(await m.getSession(a.token, { forceRefresh: true })).toBeNull();
      // revocation by id
      const b = await m.createSession(user);
      expect(await m.deleteSessionById(b.session.id, { userId: user })).toBe(true);
      expect(await m.getSession(b.token, { forceRefresh: true })).toBeNull();
      // rotation: the old token is dead, the new one works
      const c = await m.createSession(user);
      const rotated = await m.rotate(c.token);
      expect(rotated).not.toBeNull();
      expect(await m.getSession(c.token, { forceRefresh: true })).toBeNull();
      expect(await m.getSession(rotated?.token as string, { forceRefresh: true })).not.toBeNull();
      // eviction (maxSessions 1): the rotated session is evicted by a new one
      const d = await m.createSession(user);
      expect(await m.getSession(rotated?.token as string, { forceRefresh: true })).toBeNull();
      // bulk delete of the user's sessions
      expect(await m.deleteAllUserSessions(user)).toBe(1);
      expect(await m.getSession(d.token, { forceRefresh: true })).toBeNull();
      // cleanup of an expired session
      const expiring = fx.manager({ clock, audit: true, sessionExpiration: SECOND, onAuditError: (e) => failures.push(e) });
      const other = uid();
      await expiring.createSession(other);
      clock.advance(2 * SECOND);
      expect((await m.deleteExpired({ pause: 0 })).sessions).toBe(1);
      expect(await sessionCount(fx, other)).toBe(0);

      expect(await sessionCount(fx, user)).toBe(0);
      expect(await auditCount(fx, user)).toBe(0);
      expect(failures.map((e) => [e.code, e.operation, e.sessions])).toEqual([
        ['AUDIT_WRITE_FAILED', 'deleteSession', 1],
        ['AUDIT_WRITE_FAILED', 'deleteSessionById', 1],
        ['AUDIT_WRITE_FAILED', 'rotate', 1],
        ['AUDIT_WRITE_FAILED', 'createSession (eviction)', 1],
        ['AUDIT_WRITE_FAILED', 'deleteAllUserSessions', 1],
        ['AUDIT_WRITE_FAILED', 'deleteExpired', 1],
      ]);
      for (const e of failures) expect(e.databaseMessage).toContain('audit table refuses inserts (test)');
    } finally {
      await allow();
    }
  });

  it('one statement per ending call, with audit on or off', async () => {
    for (const audit of [false, true]) {
      const m = fx.manager({ audit });
      const s = await m.createSession(uid());
      m.db.reset();
      await m.deleteSession(s.token);
      expect(m.db.count).toBe(1);
    }
  });

  it('keeps at most auditMaxPerUser rows per user (the newest), others untouched; 0 keeps them all', async () => {
    const clock = fakeClock();
    const bounded = fx.manager({ clock, audit: true, auditMaxPerUser: 5 });
    const user = uid();
    const neighbour = uid();
    for (let i = 0; i < 3; i++) await bounded.deleteSession((await bounded.createSession(neighbour)).token);
    let token = (await bounded.createSession(user)).token;
    for (let i = 0; i < 50; i++) {
      clock.advance(SECOND);
      token = ((await bounded.rotate(token)) as { token: string }).token;
    }
    expect(await auditCount(fx, user)).toBe(5);
    expect(await auditCount(fx, neighbour)).toBe(3);
    const kept = await bounded.listSessionEnds(user, { limit: 10 });
    expect(kept.map((e) => e.endedAt.getTime())).toEqual([50, 49, 48, 47, 46].map((i) => kept[0]!.endedAt.getTime() - (50 - i) * SECOND));

    const unbounded = fx.manager({ clock, audit: true, auditMaxPerUser: 0 });
    const heavy = uid();
    let t = (await unbounded.createSession(heavy)).token;
    for (let i = 0; i < 20; i++) t = ((await unbounded.rotate(t)) as { token: string }).token;
    expect(await auditCount(fx, heavy)).toBe(20);

    expect(() => fx.manager({ auditMaxPerUser: -1 })).toThrow(ConfigError);
    expect(() => fx.manager({ onAuditError: 'log' as never })).toThrow(ConfigError);
  });
});

describe('the sync worker’s cleanup with a failing audit write', () => {
  const fx = useStore('node-postgres', 'auditfailw');

  it('deletes the expired session, counts the failure in pges_audit_write_failures_total and logs it', async () => {
    const logs: string[] = [];
    const secret = 'audit-fail-secret-0123456789-abcdefghij';
    const w = await startWorker({
      databaseUrl: databaseUrl(),
      secret,
      port: 0,
      schemaName: fx.schemaName,
      audit: true,
      cleanupInterval: 3_600_000,
      log: (l) => logs.push(l),
    });
    try {
      await w.ready();
      const m = fx.manager({ audit: true, sessionExpiration: 50 });
      const user = uid();
      await m.createSession(user);
      await new Promise((r) => setTimeout(r, 100));
      const allow = await refuseAuditInserts(fx);
      try {
        expect((await w.runCleanup()).sessions).toBe(1);
      } finally {
        await allow();
      }
      expect(await sessionCount(fx, user)).toBe(0);
      const metrics = await (await fetch(`${w.url}/metrics`, { headers: { authorization: `Bearer ${secret}` } })).text();
      expect(metrics).toMatch(/^pges_audit_write_failures_total 1$/m);
      expect(logs.join('\n')).toContain('audit rows not written; the sessions ended all the same');
    } finally {
      await w.close();
    }
  });
});
