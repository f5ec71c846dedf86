// migrate() on both drivers: idempotent, custom schema and prefix end to end, safe to run concurrently,
// and the embedded copy of drizzle/ (src/db/migrations.ts, what edge runtimes run) in sync with drizzle/.
import { readFileSync } from 'node:fs';
import { afterAll, describe, expect, it } from 'vitest';
import { embeddedMigrationsSource } from '../../scripts/embed-migrations.ts';
import { LONGEST_SUFFIX } from '../../src/core/config.ts';
import { SchemaIncompleteError } from '../../src/core/errors.ts';
import { SessionManager } from '../../src/core/manager.ts';
import { readChanges } from '../../src/db/feed.ts';
import { MIGRATIONS } from '../../src/db/migrations.ts';
import { objectNames, renderSql } from '../../src/db/names.ts';
import { expectedObjects } from '../../src/db/schema-check.ts';
import { migrate } from '../../src/migrate.ts';
import { DRIVERS, dropSchema, uniqueSchema } from '../support/db.ts';
import { sha256Hex, uid } from '../support/manager-helpers.ts';
import { type StoreFixture, useStore } from '../support/store-suite.ts';

const ROOT = new URL('../..', import.meta.url).pathname;
const ALL_TAGS = MIGRATIONS.map((m) => m.tag);

/** Names of the objects migrate() created in a schema (tables, indexes, functions, triggers). */
async function objectsIn(fx: StoreFixture, schema: string): Promise<string[]> {
  const r = await fx.t.admin.query<{ name: string }>(
    `SELECT c.relname::text AS name FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = $1
     UNION ALL SELECT p.proname::text FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace WHERE n.nspname = $1
     UNION ALL SELECT t.tgname::text FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid JOIN pg_namespace n ON n.oid = c.relnamespace
       WHERE n.nspname = $1 AND NOT t.tgisinternal`,
    [schema],
  );
  return r.rows.map((x) => x.name).sort();
}

describe('embedded migrations', () => {
  it('src/db/migrations.ts is exactly what scripts/embed-migrations.ts generates from drizzle/', () => {
    expect(readFileSync(new URL('../../src/db/migrations.ts', import.meta.url), 'utf8')).toBe(embeddedMigrationsSource(ROOT));
  });
});

describe('renderSql', () => {
  it('qualifies and prefixes our objects, and qualifies an index named alone (DROP INDEX)', () => {
    expect(renderSql('DROP INDEX "sessions_user_idx";', 'app', 'p_')).toBe('DROP INDEX "app"."p_sessions_user_idx";');
    expect(renderSql('DROP INDEX IF EXISTS "sessions_user_idx"', 'app', '')).toBe('DROP INDEX IF EXISTS "app"."sessions_user_idx"');
    expect(renderSql('CREATE INDEX "sessions_user_idx" ON "sessions" USING btree ("user_id");', 'app', 'p_')).toBe(
      'CREATE INDEX "p_sessions_user_idx" ON "app"."p_sessions" USING btree ("user_id");',
    );
    expect(renderSql('SELECT "session_get"(x), "other"', 'app', 'p_')).toBe('SELECT "app"."p_session_get"(x), "other"');
    // A column is not an object: session_changes keeps "session_id" whatever the prefix.
    expect(renderSql('CREATE TABLE "session_changes" ("session_id" uuid)', 'app', 'p_')).toBe(
      'CREATE TABLE "app"."p_session_changes" ("session_id" uuid)',
    );
  });
});

describe.each(DRIVERS)('migrate (%s)', (driver) => {
  const fx = useStore(driver, 'mgr_migrate');
  const made: string[] = [];
  const fresh = (tag: string) => {
    const s = uniqueSchema(tag);
    made.push(s);
    return s;
  };
  afterAll(async () => {
    if (fx.t) for (const s of made) await dropSchema(fx.t.admin, s);
  });
  /** What migrate() of an earlier release left behind: every migration before `tag` applied and recorded. */
  const storeBefore = async (schemaName: string, tag: string) => {
    const names = objectNames(schemaName, '');
    await fx.t.admin.query(`CREATE SCHEMA "${schemaName}"`);
    await fx.t.admin.query(`CREATE TABLE ${names.migrations} (tag text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())`);
    for (const m of MIGRATIONS.filter((x) => x.tag < tag)) {
      for (const statement of m.statements) await fx.t.admin.query(renderSql(statement, schemaName, ''));
      await fx.t.admin.query(`INSERT INTO ${names.migrations} (tag) VALUES ($1)`, [m.tag]);
    }
    return names;
  };
  /** The cleanup indexes of a store (drizzle/0015, 0020): name, oid, valid. */
  const cleanupIndexes = async (schemaName: string) =>
    (
      await fx.t.admin.query<{ name: string; oid: string; valid: boolean }>(
        `SELECT c.relname::text AS name, c.oid::text AS oid, i.indisvalid AS valid FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
         JOIN pg_namespace n ON n.oid = c.relnamespace
         WHERE n.nspname = $1 AND c.relname IN ('sessions_cleanup_idx', 'sessions_unarmed_idx', 'sessions_unset_idx')
         ORDER BY 1`,
        [schemaName],
      )
    ).rows;
  /** What an earlier release's createSession sends (drizzle/0010's sixteen-argument function); a token's hash. */
  const oldCreate = (names: ReturnType<typeof objectNames>, token: string, user: string, at = new Date().toISOString()) =>
    fx.t.admin.query<{ id: string }>(
      `SELECT * FROM ${names.createFunction}(gen_random_uuid(), decode($1, 'hex'), $2, NULL, '{}', $3::timestamptz, $3::timestamptz + interval '7 days',
         5, 100000, NULL, NULL, NULL, NULL, NULL, true, 0)`,
      [sha256Hex(token), user, at],
    );
  const idOf = async (names: ReturnType<typeof objectNames>, token: string) =>
    (
      await fx.t.admin.query<{ id: string }>(`SELECT id::text AS id FROM ${names.sessions} WHERE token_hash = decode($1, 'hex')`, [
        sha256Hex(token),
      ])
    ).rows[0]?.id as string;

  it('is idempotent: a second call applies nothing and changes nothing', async () => {
    const schemaName = fresh('mig_idem');
    expect((await migrate(fx.t.db, { schemaName })).applied).toEqual(ALL_TAGS);
    const objects = await objectsIn(fx, schemaName);
    const m = new SessionManager(fx.t.db, { schemaName });
    const { token } = await m.createSession(uid(), { kept: true });
    expect((await migrate(fx.t.db, { schemaName })).applied).toEqual([]);
    expect(await objectsIn(fx, schemaName)).toEqual(objects);
    // Data survives a re-run.
    expect((await new SessionManager(fx.t.db, { schemaName }).getSession(token))!.get('kept')).toBe(true);
    const recorded = await fx.t.admin.query<{ tag: string }>(`SELECT tag FROM "${schemaName}"."session_migrations" ORDER BY tag`);
    expect(recorded.rows.map((r) => r.tag)).toEqual(ALL_TAGS);
  });

  it('the fixture schema was migrated by useStore: re-running it applies nothing', async () => {
    expect((await migrate(fx.t.db, { schemaName: fx.schemaName })).applied).toEqual([]);
  });

  it('works end to end with a custom schemaName and tablePrefix, next to an unprefixed store', async () => {
    const schemaName = fresh('mig_custom');
    const config = { schemaName, tablePrefix: 'app_' };
    expect((await migrate(fx.t.db, config)).applied).toEqual(ALL_TAGS);
    // A second store in the same schema without a prefix: its own objects, no clash.
    expect((await migrate(fx.t.db, { schemaName })).applied).toEqual(ALL_TAGS);
    const objects = await objectsIn(fx, schemaName);
    expect(objects).toContain('app_sessions');
    expect(objects).toContain('app_session_create');
    expect(objects).toContain('app_session_migrations');
    expect(objects).toContain('sessions');
    // Every object of the prefixed store carries the prefix; the unprefixed store has the same set.
    const prefixed = objects.filter((n) => n.startsWith('app_'));
    expect(prefixed.map((n) => n.slice(4)).sort()).toEqual(objects.filter((n) => !n.startsWith('app_')).sort());

    const prefixedStore = new SessionManager(fx.t.db, { ...config, maxSessions: 1 });
    const plainStore = new SessionManager(fx.t.db, { schemaName, maxSessions: 1 });
    const user = uid();
    const a = await prefixedStore.createSession(user, { store: 'prefixed' });
    const b = await plainStore.createSession(user, { store: 'plain' });
    // maxSessions 1 in each: the stores do not see each other's sessions.
    expect((await new SessionManager(fx.t.db, config).getSession(a.token))!.get('store')).toBe('prefixed');
    expect((await new SessionManager(fx.t.db, { schemaName }).getSession(b.token))!.get('store')).toBe('plain');
    expect(await new SessionManager(fx.t.db, config).getSession(b.token)).toBeNull();
    const row = await fx.t.admin.query<{ h: string }>(`SELECT encode(token_hash, 'hex') AS h FROM "${schemaName}"."app_sessions"`);
    expect(row.rows.map((r) => r.h)).toEqual([sha256Hex(a.token)]);
    // Changes and deletions of the prefixed store are captured in its own change record.
    a.session.set('store', 'prefixed again');
    await prefixedStore.updateSession(a.session);
    expect(await prefixedStore.deleteSession(a.token)).toBe(true);
    const captured = await fx.t.admin.query<{ n: number }>(
      `SELECT count(*)::integer AS n FROM "${schemaName}"."app_session_changes" WHERE session_id = $1::uuid`,
      [a.session.id],
    );
    expect(captured.rows[0]?.n).toBe(2);
  });

  it('accepts the longest allowed prefix without PostgreSQL truncating any derived name', async () => {
    const schemaName = fresh('mig_long');
    const tablePrefix = `p${'x'.repeat(62 - LONGEST_SUFFIX.length)}`;
    await migrate(fx.t.db, { schemaName, tablePrefix });
    const objects = await objectsIn(fx, schemaName);
    expect(objects).toContain(`${tablePrefix}${LONGEST_SUFFIX}`);
    expect(objects.every((n) => n.startsWith(tablePrefix) || n.startsWith('pg_'))).toBe(true);
    const m = new SessionManager(fx.t.db, { schemaName, tablePrefix });
    const { token } = await m.createSession(uid(), { a: 1 });
    m.clearCache();
    expect((await m.getSession(token))!.get('a')).toBe(1);
  });

  it('upgrades a store made by the first migrations (0000-0003) in place: sessions kept, new indexes and functions', async () => {
    const schemaName = fresh('mig_upgrade');
    const tablePrefix = 'up_';
    const t = `"${schemaName}"."${tablePrefix}sessions"`;
    // What migrate() of an earlier release left behind: 0000-0003 applied and recorded.
    const before = MIGRATIONS.filter((m) => m.tag < '0004');
    expect(before.map((m) => m.tag)).toEqual(['0000_init', '0001_session_create', '0002_change_log', '0003_change_capture']);
    await fx.t.admin.query(`CREATE SCHEMA "${schemaName}"`);
    await fx.t.admin.query(
      `CREATE TABLE "${schemaName}"."${tablePrefix}session_migrations" (tag text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())`,
    );
    for (const m of before) {
      for (const statement of m.statements) await fx.t.admin.query(renderSql(statement, schemaName, tablePrefix));
      await fx.t.admin.query(`INSERT INTO "${schemaName}"."${tablePrefix}session_migrations" (tag) VALUES ($1)`, [m.tag]);
    }
    // Earlier releases also prefixed session_changes' column with the table prefix (which broke capture).
    await fx.t.admin.query(
      `ALTER TABLE "${schemaName}"."${tablePrefix}session_changes" RENAME COLUMN session_id TO ${tablePrefix}session_id`,
    );
    const token = 'A'.repeat(43);
    const user = uid();
    await fx.t.admin.query(
      `INSERT INTO ${t} (id, token_hash, user_id, attributes, created_at, updated_at, last_accessed, expires_at)
       VALUES (gen_random_uuid(), decode($1, 'hex'), $2, '{"a": {"v": 1, "ver": 1}}', now(), now(), now(), now() + interval '1 day')`,
      [sha256Hex(token), user],
    );

    expect((await migrate(fx.t.db, { schemaName, tablePrefix })).applied).toEqual(ALL_TAGS.filter((tag) => tag >= '0004'));
    const indexes = await fx.t.admin.query<{ name: string; def: string }>(
      `SELECT indexname AS name, indexdef AS def FROM pg_indexes WHERE schemaname = $1 ORDER BY indexname`,
      [schemaName],
    );
    const sessionIndexes = indexes.rows.filter((r) => r.name.startsWith(`${tablePrefix}sessions_`)).map((r) => r.name);
    expect(sessionIndexes).toEqual([
      `${tablePrefix}sessions_cleanup_idx`,
      `${tablePrefix}sessions_group_idx`,
      `${tablePrefix}sessions_pkey`,
      `${tablePrefix}sessions_token_hash_idx`,
      `${tablePrefix}sessions_unset_idx`,
      `${tablePrefix}sessions_user_idx`,
    ]);
    expect(indexes.rows.find((r) => r.name === `${tablePrefix}sessions_user_idx`)?.def).toMatch(/\(user_id\)$/);
    const options = await fx.t.admin.query<{ o: string[] | null }>(`SELECT reloptions AS o FROM pg_class WHERE oid = $1::regclass`, [t]);
    expect(options.rows[0]?.o).toEqual(['fillfactor=70']);

    // The session written before the upgrade works through the new functions.
    const m = new SessionManager(fx.t.db, { schemaName, tablePrefix });
    const s = await m.getSession(token);
    expect(s!.get('a')).toBe(1);
    s!.set('a', 2);
    await m.updateSession(s!, { checkAttributeVersion: true });
    m.clearCache();
    expect((await m.getSession(token))!.get('a')).toBe(2);
    expect(await m.listUserSessions(user)).toHaveLength(1);
    expect(await m.deleteSession(token)).toBe(true);
    // Same objects as a store migrated from scratch.
    const fresh2 = fresh('mig_upgrade_ref');
    await migrate(fx.t.db, { schemaName: fresh2, tablePrefix });
    expect(await objectsIn(fx, schemaName)).toEqual(await objectsIn(fx, fresh2));
  });

  it('carries a store at 0010 with pending change records forward: old cursors still get them, then one record per deleting statement', async () => {
    const schemaName = fresh('mig_changes');
    const tablePrefix = 'cs_';
    const names = objectNames(schemaName, tablePrefix);
    const t = names.sessions;
    // What migrate() of the previous release left behind: everything before 0011 applied and recorded.
    const before = MIGRATIONS.filter((m) => m.tag < '0011');
    expect(before.length).toBeGreaterThanOrEqual(10);
    await fx.t.admin.query(`CREATE SCHEMA "${schemaName}"`);
    await fx.t.admin.query(`CREATE TABLE ${names.migrations} (tag text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())`);
    for (const m of before) {
      for (const statement of m.statements) await fx.t.admin.query(renderSql(statement, schemaName, tablePrefix));
      await fx.t.admin.query(`INSERT INTO ${names.migrations} (tag) VALUES ($1)`, [m.tag]);
    }
    const insert = async (n: number) =>
      (
        await fx.t.admin.query<{ id: string }>(
          `INSERT INTO ${t} (id, token_hash, user_id, attributes, created_at, updated_at, last_accessed, expires_at)
           SELECT gen_random_uuid(), decode(md5(random()::text) || md5(random()::text), 'hex'), 'carried', '{}', now(), now(), now(), now() + interval '1 day'
           FROM generate_series(1, $1::integer) RETURNING id::text AS id`,
          [n],
        )
      ).rows.map((r) => r.id);
    const [a, b, c, d] = (await insert(4)) as [string, string, string, string];
    // Change records written by the old capture (one row per session), pending for a cursor taken before.
    const old = (await readChanges(fx.t.db, names, null)).cursor;
    await fx.t.admin.query(`UPDATE ${t} SET attributes = '{"x": {"v": 1, "ver": 1}}' WHERE id = $1::uuid`, [a]);
    await fx.t.admin.query(`DELETE FROM ${t} WHERE id = ANY($1::uuid[])`, [[b, c]]);
    const oldRows = await fx.t.admin.query<{ n: number }>(
      `SELECT count(*)::integer AS n FROM ${names.changes} WHERE session_id IS NOT NULL`,
    );
    expect(oldRows.rows[0]?.n).toBe(3);
    const middle = (await readChanges(fx.t.db, names, null)).cursor;

    expect((await migrate(fx.t.db, { schemaName, tablePrefix })).applied).toEqual(ALL_TAGS.filter((tag) => tag >= '0011'));
    // The cursor from before the upgrade is answered with every pending change, not a reset.
    const fromOld = await readChanges(fx.t.db, names, old);
    expect(fromOld.reset).toBe(false);
    expect([...fromOld.ids].sort()).toEqual([a, b, c].sort());

    // After it, a statement deleting several sessions appends one record holding all their ids.
    const more = await insert(3);
    await fx.t.admin.query(`DELETE FROM ${t} WHERE id = ANY($1::uuid[])`, [[d, ...more]]);
    const packed = await fx.t.admin.query<{ one: string | null; many: string[] | null }>(
      `SELECT session_id::text AS one, session_ids::text[] AS many FROM ${names.changes} WHERE session_ids IS NOT NULL`,
    );
    expect(packed.rows).toHaveLength(1);
    expect(packed.rows[0]?.one).toBeNull();
    expect([...(packed.rows[0]?.many ?? [])].sort()).toEqual([d, ...more].sort());
    const fromMiddle = await readChanges(fx.t.db, names, middle);
    expect(fromMiddle.reset).toBe(false);
    expect([...fromMiddle.ids].sort()).toEqual([d, ...more].sort());
    const fromOldAgain = await readChanges(fx.t.db, names, old);
    expect([...fromOldAgain.ids].sort()).toEqual([a, b, c, d, ...more].sort());
    // The library on the upgraded store: a single delete still names its session in session_id.
    const m = new SessionManager(fx.t.db, { schemaName, tablePrefix });
    const e = await m.createSession(uid(), {});
    expect(await m.deleteSession(e.token)).toBe(true);
    const single = await fx.t.admin.query<{ n: number }>(
      `SELECT count(*)::integer AS n FROM ${names.changes} WHERE session_id = $1::uuid`,
      [e.session.id],
    );
    expect(single.rows[0]?.n).toBe(1);
  });

  it('carries sessions of a store at 0011 forward: authenticatedAt reads as their creation, also for rows an older release writes after', async () => {
    const schemaName = fresh('mig_stepup');
    const names = await storeBefore(schemaName, '0012');
    const before = `${'a'.repeat(42)}A`;
    await oldCreate(names, before, 'old-user', '2030-01-01T00:00:00.000Z');
    expect((await migrate(fx.t.db, { schemaName })).applied).toEqual(ALL_TAGS.filter((tag) => tag >= '0012'));
    // During a rollout the previous release keeps creating sessions through its own function.
    const during = `${'b'.repeat(42)}A`;
    await oldCreate(names, during, 'old-user', '2030-01-02T00:00:00.000Z');
    const clock = () => Date.parse('2030-01-02T01:00:00.000Z');
    const m = new SessionManager(fx.t.db, { schemaName, clock, inactivityDuration: 0 });
    expect((await m.getSession(before))?.authenticatedAt.toISOString()).toBe('2030-01-01T00:00:00.000Z');
    expect((await m.getSession(during))?.authenticatedAt.toISOString()).toBe('2030-01-02T00:00:00.000Z');
    const reauthenticated = await m.reauthenticate((await m.getSession(before))!);
    expect(reauthenticated.authenticatedAt.getTime()).toBe(clock());
    const listed = await m.listUserSessions('old-user');
    expect(listed.map((x) => x.authenticatedAt.toISOString()).sort()).toEqual(['2030-01-02T00:00:00.000Z', '2030-01-02T01:00:00.000Z']);
  });

  it('carries audit rows of a store at 0012 forward: they have no actor; ends after the upgrade name theirs and tell only their token', async () => {
    const schemaName = fresh('mig_actor');
    const names = await storeBefore(schemaName, '0013');
    const user = uid();
    const old = { token: `${'c'.repeat(42)}A`, session: { id: '' } };
    await oldCreate(names, old.token, user);
    old.session.id = await idOf(names, old.token);
    // What the previous release's logout sends: its audit row through session_audit_write's json.
    await fx.t.admin.query(
      `SELECT ${names.auditWriteFunction}(json_build_array(json_build_object('session_id', $1::uuid, 'user_id', $2::text, 'reason', 'logout',
         'ended_at', now(), 'created_at', now(), 'last_accessed', now())), 0)`,
      [old.session.id, user],
    );
    expect((await migrate(fx.t.db, { schemaName })).applied).toEqual(ALL_TAGS.filter((tag) => tag >= '0013'));
    const m = new SessionManager(fx.t.db, { schemaName, audit: true });
    expect(await m.sessionEnd(old.session.id)).toMatchObject({ reason: 'logout', actor: null });
    expect(await m.sessionEndOfToken(old.token)).toBeNull();
    // An earlier release's statement during the rollout still writes (its row has no actor and no check).
    await fx.t.admin.query(
      `SELECT ${names.auditWriteFunction}(json_build_array(json_build_object('session_id', gen_random_uuid(), 'user_id', $1::text, 'reason', 'logout',
         'ended_at', now(), 'created_at', now(), 'last_accessed', now())), 0)`,
      [user],
    );
    const fresh1 = await m.createSession(user, {});
    await m.deleteSessionById(fresh1.session.id, { actor: { kind: 'admin', id: 'root' } });
    expect(await m.sessionEndOfToken(fresh1.token)).toMatchObject({ reason: 'admin_revoked', actor: { kind: 'admin', id: 'root' } });
    expect((await m.listSessionEnds(user)).map((e) => e.actor?.kind ?? null)).toEqual(['admin', null, null]);
  });

  it('carries a store at 0013 forward: its sessions are not impersonations; an earlier release still creates through its function', async () => {
    const schemaName = fresh('mig_imp');
    const names = await storeBefore(schemaName, '0014');
    const user = uid();
    const old = { token: `${'d'.repeat(42)}A` };
    await oldCreate(names, old.token, user);
    expect((await migrate(fx.t.db, { schemaName })).applied).toEqual(ALL_TAGS.filter((tag) => tag >= '0014'));
    // The previous release's createSession (drizzle/0013's sixteen-argument function) during the rollout.
    await oldCreate(names, `${'e'.repeat(42)}A`, user);
    const m = new SessionManager(fx.t.db, { schemaName, audit: true });
    expect((await m.getSession(old.token))?.impersonatedBy).toBeNull();
    const imp = await m.createSession(user, {}, { impersonatedBy: 'root' });
    expect((await m.listUserSessions(user)).map((s) => s.impersonatedBy).sort()).toEqual([null, null, 'root']);
    await m.deleteSession(imp.token);
    expect(await m.sessionEndOfToken(imp.token)).toMatchObject({ reason: 'logout', impersonatedBy: 'root' });
  });

  it('carries a large store at 0014 forward with the cleanup indexes built CONCURRENTLY beforehand (README): kept, not rebuilt', async () => {
    const schemaName = fresh('mig_conc');
    const names = await storeBefore(schemaName, '0015');
    const user = uid();
    const eightDaysAgo = new Date(Date.now() - 8 * 86_400_000).toISOString();
    await oldCreate(names, `${'f'.repeat(42)}A`, user, eightDaysAgo); // expired a day ago
    await oldCreate(names, `${'g'.repeat(42)}A`, user);
    // The operator's steps from README ("Schema and migrations"), each outside a transaction, while the
    // previous release keeps serving.
    await fx.t.admin.query(`ALTER TABLE ${names.sessions} ADD COLUMN IF NOT EXISTS "cleanup_at" timestamp (3) with time zone`);
    await fx.t.admin.query(`CREATE INDEX CONCURRENTLY "sessions_cleanup_idx" ON ${names.sessions} (LEAST("cleanup_at", "expires_at"))`);
    await fx.t.admin.query(
      `CREATE INDEX CONCURRENTLY "sessions_unset_idx" ON ${names.sessions} ("created_at", "expires_at") WHERE "cleanup_at" IS NULL`,
    );
    await fx.t.admin.query(
      `CREATE INDEX CONCURRENTLY "sessions_unarmed_idx" ON ${names.sessions} ("created_at") WHERE "cleanup_at" IS NULL`,
    );
    const built = await cleanupIndexes(schemaName);
    expect(built.map((i) => [i.name, i.valid])).toEqual([
      ['sessions_cleanup_idx', true],
      ['sessions_unarmed_idx', true],
      ['sessions_unset_idx', true],
    ]);
    expect((await migrate(fx.t.db, { schemaName })).applied).toEqual(ALL_TAGS.filter((tag) => tag >= '0015'));
    // drizzle/0020 dropped the one drizzle/0015 had found; the two others are the ones built beforehand.
    expect(await cleanupIndexes(schemaName)).toEqual(built.filter((i) => i.name !== 'sessions_unarmed_idx'));
    // The session that expired before the upgrade is found through the index; the live one stays.
    const m = new SessionManager(fx.t.db, { schemaName });
    expect((await m.deleteExpired({ pause: 0 })).sessions).toBe(1);
    expect(await m.getSession(`${'g'.repeat(42)}A`)).not.toBeNull();
    // And the schema check finds what it expects.
    expect((await migrate(fx.t.db, { schemaName })).repaired).toEqual([]);
  });

  it('carries a store at 0019 forward: the unset index replaces the unarmed one, and cleanup finds the same sessions', async () => {
    const schemaName = fresh('mig_unset');
    const names = await storeBefore(schemaName, '0020');
    expect((await cleanupIndexes(schemaName)).map((i) => i.name)).toEqual(['sessions_cleanup_idx', 'sessions_unarmed_idx']);
    const user = uid();
    const threeDaysAgo = new Date(Date.now() - 3 * 86_400_000).toISOString();
    const eightDaysAgo = new Date(Date.now() - 8 * 86_400_000).toISOString();
    await oldCreate(names, `${'h'.repeat(42)}A`, user, threeDaysAgo); // idle: created and last seen three days ago
    await oldCreate(names, `${'i'.repeat(42)}A`, user, eightDaysAgo); // expired a day ago
    await oldCreate(names, `${'j'.repeat(42)}A`, user);
    expect((await migrate(fx.t.db, { schemaName })).applied).toEqual(['0020_unset_index']);
    expect((await cleanupIndexes(schemaName)).map((i) => i.name)).toEqual(['sessions_cleanup_idx', 'sessions_unset_idx']);
    const m = new SessionManager(fx.t.db, { schemaName, inactivityDuration: 86_400_000 });
    expect((await m.deleteExpired({ pause: 0 })).sessions).toBe(2);
    expect(await m.getSession(`${'j'.repeat(42)}A`)).not.toBeNull();
    expect((await migrate(fx.t.db, { schemaName })).repaired).toEqual([]);
  });

  it('carries a store at 0015 forward: its sessions have no location; an earlier release still creates through its function', async () => {
    const schemaName = fresh('mig_loc');
    const names = await storeBefore(schemaName, '0016');
    const user = uid();
    await oldCreate(names, `${'h'.repeat(42)}A`, user);
    expect((await migrate(fx.t.db, { schemaName })).applied).toEqual(ALL_TAGS.filter((tag) => tag >= '0016'));
    // The previous release's createSession (drizzle/0014's seventeen-argument function) during the rollout.
    await fx.t.admin.query(
      `SELECT * FROM ${names.createFunction}(gen_random_uuid(), decode($1, 'hex'), $2, NULL, '{}', now(), now() + interval '7 days',
         5, 100000, NULL, NULL, NULL, NULL, NULL, true, 0, NULL)`,
      [sha256Hex(`${'i'.repeat(42)}A`), user],
    );
    const m = new SessionManager(fx.t.db, { schemaName, maxSessions: 5 });
    await m.createSession(user, {}, { device: { location: { country: 'FR', city: 'Paris' } } });
    const listed = (await m.listUserSessions(user)).map((s) => s.location);
    expect(listed.filter((l) => l === null)).toHaveLength(2);
    expect(listed.filter((l) => l !== null)).toEqual([{ country: 'FR', city: 'Paris' }]);
    expect(await m.getSession(`${'h'.repeat(42)}A`)).not.toBeNull();
    expect((await migrate(fx.t.db, { schemaName })).repaired).toEqual([]);
  });

  it('the schema check expects exactly the tables, indexes, functions and triggers a fresh migrate() makes', async () => {
    const schemaName = fresh('mig_expect');
    await migrate(fx.t.db, { schemaName, tablePrefix: 'e_' });
    // Names (a function may have several signatures), less what migrate() makes itself or a CREATE TABLE
    // implies: primary keys, identity sequences, the tag table.
    const made = [...new Set(await objectsIn(fx, schemaName))].filter((n) => !/_pkey$|_seq$|^e_session_migrations$/.test(n)).sort();
    const expected = expectedObjects()
      .filter((o) => o.kind !== 'column')
      .map((o) => `e_${o.name}`)
      .sort();
    expect(expected).toEqual(made);
  });

  it('makes again the audit table that drizzle-kit push dropped (tags recorded, table gone): audit works after it', async () => {
    const schemaName = fresh('mig_pushed');
    const tablePrefix = 'px_';
    expect((await migrate(fx.t.db, { schemaName, tablePrefix })).repaired).toEqual([]);
    const reference = await objectsIn(fx, schemaName);
    const m = new SessionManager(fx.t.db, { schemaName, tablePrefix, audit: true });
    const kept = await m.createSession(uid(), { kept: 1 });
    // What `drizzle-kit push` ran with a schema file that did not export the audit table.
    await fx.t.admin.query(`DROP TABLE "${schemaName}"."${tablePrefix}session_audit" CASCADE`);
    const r = await migrate(fx.t.db, { schemaName, tablePrefix });
    expect(r.applied).toEqual([]);
    expect([...r.repaired].sort()).toEqual(
      [
        `table ${schemaName}.${tablePrefix}session_audit`,
        ...[
          'id',
          'session_id',
          'user_id',
          'group_id',
          'reason',
          'ended_at',
          'created_at',
          'last_accessed',
          'user_agent',
          'device',
          'ip',
          'label',
          'actor_kind',
          'actor_id',
          'token_check',
          'impersonated_by',
          'location',
        ]
          .map((c) => `column ${schemaName}.${tablePrefix}session_audit.${c}`)
          .sort(),
        `index ${schemaName}.${tablePrefix}session_audit_user_idx`,
        `index ${schemaName}.${tablePrefix}session_audit_session_idx`,
        `index ${schemaName}.${tablePrefix}session_audit_ended_idx`,
        `index ${schemaName}.${tablePrefix}session_audit_token_check_idx`,
      ].sort(),
    );
    expect(await objectsIn(fx, schemaName)).toEqual(reference);
    // The sessions were not touched; ending one writes its audit record again.
    m.clearCache();
    expect((await m.getSession(kept.token))!.get('kept')).toBe(1);
    expect(await m.deleteSession(kept.token)).toBe(true);
    const ends = await fx.t.admin.query<{ reason: string }>(
      `SELECT reason FROM "${schemaName}"."${tablePrefix}session_audit" WHERE session_id = $1::uuid`,
      [kept.session.id],
    );
    expect(ends.rows.map((x) => x.reason)).toEqual(['logout']);
    expect((await migrate(fx.t.db, { schemaName, tablePrefix })).repaired).toEqual([]);
  });

  it('makes again a dropped table with its seed row, index, function, trigger and a column a migration added', async () => {
    const schemaName = fresh('mig_partial');
    await migrate(fx.t.db, { schemaName });
    const reference = await objectsIn(fx, schemaName);
    const q = (text: string) => fx.t.admin.query(text.replaceAll('S.', `"${schemaName}".`));
    await q('DROP TABLE S.session_changes_horizon');
    await q('DROP INDEX S.sessions_user_idx');
    await q('DROP FUNCTION S.session_get');
    await q('DROP TRIGGER sessions_capture_delete ON S.sessions');
    await q('ALTER TABLE S.sessions DROP COLUMN device');
    const r = await migrate(fx.t.db, { schemaName });
    expect(r.applied).toEqual([]);
    expect([...r.repaired].sort()).toEqual(
      [
        `table ${schemaName}.session_changes_horizon`,
        `column ${schemaName}.session_changes_horizon.id`,
        `column ${schemaName}.session_changes_horizon.pruned_below`,
        `column ${schemaName}.sessions.device`,
        `index ${schemaName}.sessions_user_idx`,
        `function ${schemaName}.session_get`,
        `trigger sessions_capture_delete on ${schemaName}.sessions`,
      ].sort(),
    );
    expect(await objectsIn(fx, schemaName)).toEqual(reference);
    // The horizon's one row is back (the feed reads it), and the store works end to end.
    expect((await q('SELECT pruned_below::text AS p FROM S.session_changes_horizon')).rows).toEqual([{ p: '0' }]);
    const m = new SessionManager(fx.t.db, { schemaName });
    const { token, session } = await m.createSession(
      uid(),
      {},
      { device: { userAgent: 'Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0' } },
    );
    expect((await q(`SELECT device FROM S.sessions WHERE id = '${session.id}'`)).rows).toEqual([{ device: 'Firefox on Linux' }]);
    m.clearCache();
    expect((await m.getSession(token))!.id).toBe(session.id);
    expect(await m.deleteSession(token)).toBe(true);
    const captured = await q(`SELECT count(*)::int AS n FROM S.session_changes WHERE session_id = '${session.id}'`);
    expect(captured.rows[0]).toEqual({ n: 1 });
  });

  it('fails with SchemaIncompleteError naming what it cannot make again without loss, and changes nothing', async () => {
    const schemaName = fresh('mig_broken');
    await migrate(fx.t.db, { schemaName });
    await fx.t.admin.query(`ALTER TABLE "${schemaName}".sessions DROP COLUMN user_id CASCADE`);
    await fx.t.admin.query(`DROP FUNCTION "${schemaName}".session_get`);
    const before = await objectsIn(fx, schemaName);
    const e = await migrate(fx.t.db, { schemaName }).then(
      () => undefined,
      (err: unknown) => err,
    );
    expect(e).toBeInstanceOf(SchemaIncompleteError);
    expect(e).toMatchObject({ code: 'SCHEMA_MISSING', schemaName, tablePrefix: '' });
    // Everything missing is named: what went with the column (CASCADE) and the function too.
    expect([...(e as SchemaIncompleteError).missing].sort()).toEqual(
      [
        `column ${schemaName}.sessions.user_id`,
        `index ${schemaName}.sessions_user_idx`,
        `trigger sessions_capture_update on ${schemaName}.sessions`, // its WHEN clause names user_id
        `function ${schemaName}.session_get`,
      ].sort(),
    );
    expect((e as Error).message).toContain(`column ${schemaName}.sessions.user_id`);
    expect((e as Error).message).toMatch(/createSessionTables\(\.\.\.\)\.tables/);
    // Not even the function (which alone could be made again) was made.
    expect(await objectsIn(fx, schemaName)).toEqual(before);
  });

  it('two concurrent migrate calls on a fresh schema both succeed, and the work is done once', async () => {
    const schemaName = fresh('mig_race');
    const results = await Promise.all([migrate(fx.t.db, { schemaName }), migrate(fx.t.db, { schemaName })]);
    const applied = results.map((r) => r.applied).sort((x, y) => y.length - x.length);
    expect(applied).toEqual([ALL_TAGS, []]);
    const m = new SessionManager(fx.t.db, { schemaName });
    const { token } = await m.createSession(uid());
    m.clearCache();
    expect(await m.getSession(token)).not.toBeNull();
  });

  it('several concurrent migrate calls on different prefixes of one fresh schema all succeed', async () => {
    const schemaName = fresh('mig_race2');
    const prefixes = ['a_', 'b_', 'c_', ''];
    const results = await Promise.all(prefixes.map((tablePrefix) => migrate(fx.t.db, { schemaName, tablePrefix })));
    for (const r of results) expect(r.applied).toEqual(ALL_TAGS);
    for (const tablePrefix of prefixes) {
      const m = new SessionManager(fx.t.db, { schemaName, tablePrefix });
      expect((await m.createSession(uid())).token).toHaveLength(43);
    }
  });
});
