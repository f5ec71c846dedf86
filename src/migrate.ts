import { sql } from 'drizzle-orm';
import { resolveConfig, type SessionConfig } from './core/config.ts';
import { classifyDatabaseError, findErrorCode, SchemaIncompleteError, SchemaUnrecordedError, SessionError } from './core/errors.ts';
import { rowsOf, type TransactionalDatabase } from './db/executor.ts';
import { MIGRATIONS } from './db/migrations.ts';
import { objectNames, renderSql } from './db/names.ts';
import { repairSchema } from './db/schema-check.ts';

export { type MigrationSqlOptions, migrationSql, migrationTags } from './db/migration-sql.ts';

/** SQLSTATEs of a CREATE or ADD of something that exists: table or index, column, trigger or constraint, function. */
const DUPLICATE_OBJECT = new Set(['42P07', '42701', '42710', '42723']);

export interface MigrateResult {
  /** Tags of the migrations this call applied (empty when the schema was up to date). */
  applied: string[];
  /**
   * Objects of migrations recorded as applied that were missing and that this call made again (empty
   * when nothing was missing), e.g. `table auth.session_audit` after `drizzle-kit push` dropped it.
   */
  repaired: string[];
}

/**
 * Creates or upgrades the session tables for `config.schemaName` / `config.tablePrefix`, in one
 * transaction, serialized by an advisory lock so several workers may call it at once. Applied migrations
 * are recorded in `<schema>.<prefix>session_migrations`. Needs a driver with interactive transactions
 * (node-postgres, neon-serverless, postgres-js, pglite), not neon-http.
 *
 * Then it checks that every table, column, index, function and trigger of the recorded migrations is
 * there (another tool may have dropped one, or never made it: README.md, "With drizzle-kit") and makes
 * again what only needs creating (`repaired`). If something cannot be made again without losing data, it
 * throws `SchemaIncompleteError` naming it, and changes nothing. Objects of a migration that is not
 * recorded (tables made by another tool, a dropped tag table) are `SchemaUnrecordedError`, naming the
 * migration and what to do; nothing is changed either.
 */
export async function migrate(
  db: TransactionalDatabase,
  config: Pick<SessionConfig, 'schemaName' | 'tablePrefix'> = {},
): Promise<MigrateResult> {
  const { schemaName, tablePrefix } = resolveConfig({ schemaName: config.schemaName, tablePrefix: config.tablePrefix });
  const names = objectNames(schemaName, tablePrefix);
  if (typeof (db as { transaction?: unknown })?.transaction !== 'function') {
    throw new SessionError('INVALID_ARGUMENT', 'migrate() needs a Drizzle database with transactions (not neon-http)');
  }
  try {
    return await db.transaction(async (tx) => {
      // Keyed on the schema, not schema and prefix: stores with different prefixes share CREATE SCHEMA,
      // which is not safe to run concurrently even with IF NOT EXISTS (a unique violation).
      await tx.execute(sql`SELECT pg_advisory_xact_lock(hashtext('pg-edge-session:migrate'), hashtext(${schemaName}))`);
      await tx.execute(sql.raw(`CREATE SCHEMA IF NOT EXISTS ${names.schema}`));
      await tx.execute(
        sql.raw(`CREATE TABLE IF NOT EXISTS ${names.migrations} (tag text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())`),
      );
      // clock_timestamp(): never answered from a query cache such as Hyperdrive's (test/db/cacheability.test.ts).
      const applied0 = await tx.execute(sql.raw(`SELECT tag, clock_timestamp() AS read_at FROM ${names.migrations}`));
      const done = new Set(rowsOf<{ tag: string }>(applied0).map((r) => r.tag));
      const applied: string[] = [];
      for (const m of MIGRATIONS) {
        if (done.has(m.tag)) continue;
        try {
          for (const statement of m.statements) await tx.execute(sql.raw(renderSql(statement, schemaName, tablePrefix)));
        } catch (e) {
          // An object of a migration not recorded as applied is there already: made outside migrate().
          if (DUPLICATE_OBJECT.has(findErrorCode(e) ?? ''))
            throw new SchemaUnrecordedError(schemaName, tablePrefix, m.tag, [...done].sort(), e);
          throw e;
        }
        await tx.execute(sql`INSERT INTO ${sql.raw(names.migrations)} (tag) VALUES (${m.tag})`);
        applied.push(m.tag);
      }
      const check = await repairSchema(tx, schemaName, tablePrefix);
      if (check.missing.length > 0) throw new SchemaIncompleteError(schemaName, tablePrefix, check.missing);
      return { applied, repaired: check.repaired };
    });
  } catch (e) {
    throw classifyDatabaseError('migrate', e, { schemaName, tablePrefix });
  }
}
