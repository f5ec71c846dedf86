// migrate() on both drivers: idempotent, custom schema and prefix end to end, safe to run concurrently,
// and the embedded copy of drizzle/ (src/migrations.ts, what edge runtimes run) in sync with drizzle/.
import { readFileSync } from 'node:fs';
import { afterAll, describe, expect, it } from 'vitest';
import { embeddedMigrationsSource } from '../scripts/embed-migrations.ts';
import { LONGEST_SUFFIX } from '../src/config.ts';
import { SessionManager } from '../src/manager.ts';
import { migrate } from '../src/migrate.ts';
import { MIGRATIONS } from '../src/migrations.ts';
import { DRIVERS, dropSchema, uniqueSchema } from './support/db.ts';
import { sha256Hex, uid } from './support/manager-helpers.ts';
import { type StoreFixture, useStore } from './support/store-suite.ts';

const ROOT = new URL('..', import.meta.url).pathname;
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
  it('src/migrations.ts is exactly what scripts/embed-migrations.ts generates from drizzle/', () => {
    expect(readFileSync(new URL('../src/migrations.ts', import.meta.url), 'utf8')).toBe(embeddedMigrationsSource(ROOT));
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
