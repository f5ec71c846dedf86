// migrate() on a store whose objects are there but whose migrations are not recorded as applied: the tables
// made by `drizzle-kit generate` + `drizzle-kit migrate` without the custom migration README.md's "With
// drizzle-kit" adds after it, a tag table that push dropped, a migration run in part by hand. Each is a
// SchemaUnrecordedError naming the migration and what to do (before, a bare DatabaseError "relation
// "sessions" already exists"), and nothing is changed. Following the first one's advice, migrate() then
// finds nothing to do. Real PostgreSQL over node-postgres.
import { drizzle } from 'drizzle-orm/node-postgres';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SchemaUnrecordedError } from '../../src/core/errors.ts';
import { SessionManager } from '../../src/core/manager.ts';
import { migrate, migrationSql, migrationTags } from '../../src/migrate.ts';
import { databaseUrl, dropSchema, uniqueSchema } from '../support/db.ts';

const BREAK = '\n--> statement-breakpoint\n';

describe('migrate() on objects made without their migrations recorded', () => {
  let pool: pg.Pool;
  const schemas: string[] = [];
  const fresh = (tag: string) => {
    const s = uniqueSchema(tag);
    schemas.push(s);
    return s;
  };
  beforeAll(() => {
    pool = new pg.Pool({ connectionString: databaseUrl(), max: 3 });
  });
  afterAll(async () => {
    for (const s of schemas) await dropSchema(pool, s);
    await pool.end();
  });

  /** Every object of the schema (relations, columns, functions, triggers) and the recorded tags. */
  async function snapshot(schemaName: string, tablePrefix: string) {
    const objects = await pool.query<{ name: string }>(
      `SELECT c.relname::text AS name FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = $1
       UNION ALL SELECT c.relname || '.' || a.attname FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
         JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = $1 AND c.relkind = 'r' AND a.attnum > 0 AND NOT a.attisdropped
       UNION ALL SELECT p.proname::text FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace WHERE n.nspname = $1
       UNION ALL SELECT t.tgname::text FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid JOIN pg_namespace n ON n.oid = c.relnamespace
         WHERE n.nspname = $1 AND NOT t.tgisinternal ORDER BY 1`,
      [schemaName],
    );
    const hasTags = await pool.query(`SELECT to_regclass($1) IS NOT NULL AS t`, [`"${schemaName}"."${tablePrefix}session_migrations"`]);
    const tags = hasTags.rows[0].t
      ? (await pool.query<{ tag: string }>(`SELECT tag FROM "${schemaName}"."${tablePrefix}session_migrations" ORDER BY 1`)).rows.map(
          (r) => r.tag,
        )
      : null;
    return { objects: objects.rows.map((r) => r.name), tags };
  }

  async function failure(schemaName: string, tablePrefix: string): Promise<SchemaUnrecordedError> {
    const e = await migrate(drizzle(pool), { schemaName, tablePrefix }).then(
      (r) => r,
      (err: unknown) => err,
    );
    expect(e).toBeInstanceOf(SchemaUnrecordedError);
    return e as SchemaUnrecordedError;
  }

  it('the tables of drizzle-kit generate without the custom migration: names it and its command; after it, migrate() has nothing to do', async () => {
    const schemaName = fresh('unrec_gen');
    const tablePrefix = 'g_';
    // What `drizzle-kit generate` + `drizzle-kit migrate` make from the README's schema file: the tables,
    // columns and indexes (the statements the custom migration leaves to drizzle-kit), and no tags.
    const custom = new Set(migrationSql({ schemaName, tablePrefix, mode: 'drizzle-kit' }).split(BREAK));
    const tablesOnly = migrationSql({ schemaName, tablePrefix })
      .split(BREAK)
      .filter((s) => !custom.has(s));
    expect(tablesOnly.some((s) => /CREATE TABLE/.test(s))).toBe(true);
    // The schema file exports sessionMigrations, so drizzle-kit makes the tag table too: empty.
    await pool.query(`CREATE SCHEMA "${schemaName}"`);
    await pool.query(
      `CREATE TABLE "${schemaName}"."${tablePrefix}session_migrations" (tag text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())`,
    );
    for (const s of tablesOnly) await pool.query(s);
    const before = await snapshot(schemaName, tablePrefix);
    expect(before.objects).toContain(`${tablePrefix}sessions`);
    expect(before.tags).toEqual([]);

    const e = await failure(schemaName, tablePrefix);
    expect(e).toMatchObject({ code: 'SCHEMA_MISSING', schemaName, tablePrefix, tag: migrationTags()[0], recorded: [] });
    expect(e.message).toContain(`relation "${tablePrefix}sessions" already exists`);
    expect(e.message).toContain(`No migration is recorded in ${schemaName}.${tablePrefix}session_migrations`);
    expect(e.message).toContain(`npx pg-edge-session sql --mode drizzle-kit --schema ${schemaName} --prefix ${tablePrefix}`);
    expect(e.message).toContain('README.md "With drizzle-kit"');
    expect(await snapshot(schemaName, tablePrefix)).toEqual(before);

    // The advice, followed: the custom migration (what the named command prints) makes the rest.
    for (const s of migrationSql({ schemaName, tablePrefix, mode: 'drizzle-kit' }).split(BREAK)) await pool.query(s);
    expect(await migrate(drizzle(pool), { schemaName, tablePrefix })).toEqual({ applied: [], repaired: [] });
    const m = new SessionManager(drizzle(pool), { schemaName, tablePrefix, audit: true });
    const { token } = await m.createSession('after-advice');
    expect(await m.deleteSession(token)).toBe(true);
  });

  it('the tag table dropped (push with a schema file that does not export sessionMigrations): names the table, changes nothing', async () => {
    const schemaName = fresh('unrec_tags');
    const m = new SessionManager(drizzle(pool), { schemaName });
    await migrate(drizzle(pool), { schemaName });
    const { token } = await m.createSession('kept');
    await pool.query(`DROP TABLE "${schemaName}".session_migrations`);
    const before = await snapshot(schemaName, '');
    expect(before.tags).toBeNull();

    const e = await failure(schemaName, '');
    expect(e).toMatchObject({ tag: migrationTags()[0], recorded: [], tablePrefix: '' });
    expect(e.message).toContain(`npx pg-edge-session sql --mode drizzle-kit --schema ${schemaName})`);
    expect(e.message).toMatch(/dropped or emptied.*sessionMigrations/);
    // Not even the tag table was made again; the session is still there.
    expect(await snapshot(schemaName, '')).toEqual(before);
    m.clearCache();
    expect((await m.getSession(token))?.userId).toBe('kept');
  });

  it('a migration run in part outside migrate(): names it and the newest one recorded, changes nothing', async () => {
    const schemaName = fresh('unrec_part');
    await migrate(drizzle(pool), { schemaName });
    const tags = migrationTags();
    const auditTag = tags.find((t) => t.startsWith('0007_')) as string;
    // Its tag and every later one forgotten, its objects (the audit table among them) still there.
    await pool.query(`DELETE FROM "${schemaName}".session_migrations WHERE tag >= $1`, [auditTag]);
    const before = await snapshot(schemaName, '');
    const recorded = tags.filter((t) => t < auditTag);

    const e = await failure(schemaName, '');
    expect(e).toMatchObject({ tag: auditTag, recorded });
    expect(e.message).toContain(`records ${recorded.length} migrations, the newest ${recorded.at(-1)}; ${auditTag} was run in part`);
    expect(e.message).toContain('already exists');
    expect(await snapshot(schemaName, '')).toEqual(before);
  });
});
