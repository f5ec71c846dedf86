import { validateSchemaName, validateTablePrefix } from '../core/config.ts';
import { InvalidArgumentError } from '../core/errors.ts';
import { MIGRATIONS } from './migrations.ts';
import { objectNames, renderSql } from './names.ts';

/** Options of `migrationSql()`. */
export interface MigrationSqlOptions {
  /** Schema holding the tables, as in `SessionConfig`. Default 'public'. */
  schemaName?: string;
  /** Prefix of every object name, as in `SessionConfig`. Default ''. */
  tablePrefix?: string;
  /**
   * - `'all'` (default): everything `migrate()` runs, tables included, for a migration tool that has no
   *   schema of its own (plain SQL files, dbmate, Flyway, ...).
   * - `'drizzle-kit'`: what drizzle-kit does not generate from `createSessionTables()`: functions,
   *   triggers, table storage settings, seed rows. For a custom migration (`drizzle-kit generate --custom`)
   *   that runs after the migration drizzle-kit generated for the session tables.
   */
  mode?: 'all' | 'drizzle-kit';
  /**
   * Only the migrations after this tag (e.g. `'0006_token_bound_writes'`): what a new release of the
   * library adds to a database that has the earlier ones. Default: all of them.
   */
  after?: string;
}

/**
 * Statements that shape tables, columns and indexes: drizzle-kit generates them from the Drizzle schema
 * (for the schema's current state), so in `'drizzle-kit'` mode they are left to it. Leading comment lines
 * are skipped; `ALTER TABLE … SET (…)` (storage parameters, which Drizzle cannot express) is not matched.
 */
const TABLE_DDL =
  /^(?:CREATE\s+(?:UNIQUE\s+)?INDEX|DROP\s+INDEX|CREATE\s+TABLE|DROP\s+TABLE|CREATE\s+SCHEMA|ALTER\s+TABLE\s+(?:"[^"]+"\.)?"[^"]+"\s+(?:ADD|DROP|ALTER|RENAME)\s)/i;

function withoutLeadingComments(statement: string): string {
  return statement.replace(/^(?:\s*--[^\n]*\n)*\s*/, '');
}

/** The migrations' tags, oldest first (what `migrate()` records in `<prefix>session_migrations`). */
export function migrationTags(): string[] {
  return MIGRATIONS.map((m) => m.tag);
}

/**
 * The SQL `migrate()` runs, for a migration tool you own: one statement per `--> statement-breakpoint`
 * chunk (the separator drizzle-kit's migrator splits on), for any schema name and table prefix. It ends
 * by recording the migrations' tags in `<schema>.<prefix>session_migrations`, so a later `migrate()`
 * (or the worker's `--migrate`) finds nothing to do, and `migrate()` of a newer release applies only what
 * is new. Pure: no database, no I/O. The CLI prints it: `npx pg-edge-session sql --help`.
 */
export function migrationSql(options: MigrationSqlOptions = {}): string {
  const schemaName = validateSchemaName(options.schemaName ?? 'public');
  const tablePrefix = validateTablePrefix(options.tablePrefix ?? '');
  const mode = options.mode ?? 'all';
  if (mode !== 'all' && mode !== 'drizzle-kit')
    throw new InvalidArgumentError('mode', `expected "all" or "drizzle-kit", got ${String(mode)}`);
  let start = 0;
  if (options.after !== undefined) {
    const i = MIGRATIONS.findIndex((m) => m.tag === options.after);
    if (i < 0)
      throw new InvalidArgumentError(
        'after',
        `unknown migration tag ${JSON.stringify(options.after)} (known: ${migrationTags().join(', ')})`,
      );
    start = i + 1;
  }
  const names = objectNames(schemaName, tablePrefix);
  const pending = MIGRATIONS.slice(start);
  const chunks: string[] = [
    `-- pg-edge-session: migrations ${pending.length === 0 ? '(none)' : `${pending[0]?.tag} .. ${pending.at(-1)?.tag}`}` +
      ` for schema "${schemaName}", table prefix "${tablePrefix}"${mode === 'drizzle-kit' ? ' (without the tables drizzle-kit generates)' : ''}.\n` +
      `CREATE SCHEMA IF NOT EXISTS ${names.schema};`,
    `CREATE TABLE IF NOT EXISTS ${names.migrations} (tag text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now());`,
  ];
  for (const m of pending) {
    for (const statement of m.statements) {
      if (mode === 'drizzle-kit' && TABLE_DDL.test(withoutLeadingComments(statement))) continue;
      chunks.push(renderSql(statement, schemaName, tablePrefix));
    }
  }
  if (pending.length > 0) {
    const values = pending.map((m) => `('${m.tag.replaceAll("'", "''")}')`).join(', ');
    chunks.push(`INSERT INTO ${names.migrations} (tag) VALUES ${values} ON CONFLICT (tag) DO NOTHING;`);
  }
  return `${chunks.join('\n--> statement-breakpoint\n')}\n`;
}
