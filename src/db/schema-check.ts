// What a migrated store must hold, read from the migrations themselves (src/db/migrations.ts, drizzle/), and
// how to make what is missing again. A store whose tags are recorded can still lack objects: `drizzle-kit
// push` with a schema file that leaves a table out drops it, and `drizzle-kit generate` never makes a table
// the schema file does not list (README.md, "With drizzle-kit"). migrate() checks after every run.
import { sql } from 'drizzle-orm';
import { rowsOf, type SqlExecutor } from './executor.ts';
import { MIGRATIONS } from './migrations.ts';
import { renderSql } from './names.ts';

type Kind = 'table' | 'column' | 'index' | 'function' | 'trigger';

/** One object a fully migrated store has, in the default names (schema public, no prefix). */
interface ExpectedObject {
  kind: Kind;
  name: string;
  /** The table of a column, an index or a trigger. */
  table?: string;
  /** The statements that make it again when it is missing (its table exists, or is made first). */
  repair: string[];
}

const NAME = '"([A-Za-z_][A-Za-z0-9_]*)"';
const CREATE_TABLE = new RegExp(`^CREATE TABLE ${NAME}\\s*\\(([\\s\\S]*)\\)\\s*;?\\s*$`, 'i');
const CREATE_INDEX = new RegExp(`^CREATE (?:UNIQUE )?INDEX (?:IF NOT EXISTS )?${NAME} ON ${NAME}`, 'i');
const DROP_INDEX = new RegExp(`^DROP INDEX (?:IF EXISTS )?${NAME}`, 'i');
const ADD_COLUMN = new RegExp(`^ALTER TABLE ${NAME} ADD COLUMN (?:IF NOT EXISTS )?${NAME}`, 'i');
const ALTER_TABLE = new RegExp(`^ALTER TABLE ${NAME}\\s`, 'i');
const INSERT_INTO = new RegExp(`^INSERT INTO ${NAME}`, 'i');
const CREATE_FUNCTION = new RegExp(`^CREATE (?:OR REPLACE )?FUNCTION ${NAME}`, 'i');
const CREATE_TRIGGER = new RegExp(`^CREATE (?:OR REPLACE )?TRIGGER ${NAME}[\\s\\S]*?\\sON ${NAME}`, 'i');
// What a later migration removes is not expected any more (a function is expected by name: DROP FUNCTION
// names one signature, which an earlier CREATE OR REPLACE may have replaced by another).
const DROP_TRIGGER = new RegExp(`^DROP TRIGGER (?:IF EXISTS )?${NAME} ON ${NAME}`, 'i');
const DROP_TABLE = new RegExp(`^DROP TABLE (?:IF EXISTS )?${NAME}`, 'i');
const DROP_COLUMN = new RegExp(`^ALTER TABLE ${NAME} DROP COLUMN (?:IF EXISTS )?${NAME}`, 'i');

/**
 * The statements that make or drop one column or trigger of a table, in the order they are tried: the
 * object's kind, whether the statement makes it, and which groups of the pattern hold its name and its table.
 */
const TABLE_OBJECT_STATEMENTS = [
  { pattern: DROP_TRIGGER, kind: 'trigger', makes: false, name: 1, table: 2 },
  { pattern: DROP_COLUMN, kind: 'column', makes: false, name: 2, table: 1 },
  { pattern: ADD_COLUMN, kind: 'column', makes: true, name: 2, table: 1 },
  { pattern: CREATE_TRIGGER, kind: 'trigger', makes: true, name: 1, table: 2 },
] as const;

/** The column or trigger a statement makes or drops, with its table; undefined for any other statement. */
function tableObjectOf(s: string): { kind: 'column' | 'trigger'; makes: boolean; name: string; table: string } | undefined {
  for (const t of TABLE_OBJECT_STATEMENTS) {
    const m = t.pattern.exec(s);
    if (m) return { kind: t.kind, makes: t.makes, name: m[t.name] as string, table: m[t.table] as string };
  }
  return undefined;
}

function body(statement: string): string {
  return statement.replace(/^(?:\s*--[^\n]*\n)*\s*/, '');
}

let expectedCache: ExpectedObject[] | undefined;

/**
 * Every table, column, index (not primary keys), function and trigger the migrations leave behind, with the
 * statements that make each again. A missing table is made by replaying, in order, every statement whose
 * subject is that table (its CREATE TABLE, columns added later, indexes, storage settings, triggers, seed
 * rows): from nothing, that ends where the migrations ended. Anything else missing is made by the last
 * statement that defined it (functions are CREATE OR REPLACE, so the last one is the current definition).
 */
export function expectedObjects(): ExpectedObject[] {
  if (expectedCache) return expectedCache;
  const objects = new Map<string, ExpectedObject>();
  const tableReplay = new Map<string, string[]>();
  const indexTable = new Map<string, string>();
  const key = (kind: Kind, name: string, table?: string) => `${kind}:${table ?? ''}.${name}`;
  const forTable = (table: string, statement: string) => tableReplay.get(table)?.push(statement);
  for (const m of MIGRATIONS) {
    for (const statement of m.statements) {
      const s = body(statement);
      const table = CREATE_TABLE.exec(s);
      const index = CREATE_INDEX.exec(s);
      const dropIndex = DROP_INDEX.exec(s);
      const dropTable = DROP_TABLE.exec(s);
      const tableObject = tableObjectOf(s);
      const alter = ALTER_TABLE.exec(s) ?? INSERT_INTO.exec(s);
      const fn = CREATE_FUNCTION.exec(s);
      if (table) {
        const [, name, columns] = table as unknown as [string, string, string];
        tableReplay.set(name, [statement]);
        objects.set(key('table', name), { kind: 'table', name, repair: tableReplay.get(name) as string[] });
        for (const c of columns.matchAll(/^\s*"([A-Za-z_][A-Za-z0-9_]*)"\s/gm)) {
          objects.set(key('column', c[1] as string, name), { kind: 'column', name: c[1] as string, table: name, repair: [] });
        }
      } else if (index) {
        const [, name, on] = index as unknown as [string, string, string];
        indexTable.set(name, on);
        forTable(on, statement);
        objects.set(key('index', name), { kind: 'index', name, table: on, repair: [statement] });
      } else if (dropTable) {
        const name = dropTable[1] as string;
        tableReplay.delete(name);
        for (const [k, o] of objects)
          if ((o.kind === 'table' && o.name === name) || (o.kind !== 'table' && o.table === name)) objects.delete(k);
      } else if (dropIndex) {
        const name = dropIndex[1] as string;
        const on = indexTable.get(name);
        if (on !== undefined) {
          forTable(on, statement);
          objects.delete(key('index', name));
        }
      } else if (tableObject) {
        const { kind, name, table: on } = tableObject;
        forTable(on, statement);
        if (tableObject.makes) objects.set(key(kind, name, on), { kind, name, table: on, repair: [statement] });
        else objects.delete(key(kind, name, on));
      } else if (alter) {
        forTable(alter[1] as string, statement);
      } else if (fn) {
        objects.set(key('function', fn[1] as string), { kind: 'function', name: fn[1] as string, repair: [statement] });
      }
    }
  }
  expectedCache = [...objects.values()];
  return expectedCache;
}

/** The object as PostgreSQL names it for this store ("auth.app_session_audit", "auth.app_sessions.ip"). */
function displayName(o: ExpectedObject, schemaName: string, tablePrefix: string): string {
  if (o.kind === 'column') return `column ${schemaName}.${tablePrefix}${o.table}.${o.name}`;
  if (o.kind === 'trigger') return `trigger ${tablePrefix}${o.name} on ${schemaName}.${tablePrefix}${o.table}`;
  return `${o.kind} ${schemaName}.${tablePrefix}${o.name}`;
}

/** The expected objects that the store's schema lacks. */
async function missingObjects(tx: SqlExecutor, schemaName: string, tablePrefix: string): Promise<ExpectedObject[]> {
  const rows = rowsOf<{ k: string; n: string; t: string | null }>(
    await tx.execute(sql`
      SELECT 'table' AS k, c.relname::text AS n, NULL::text AS t FROM pg_class c
        -- clock_timestamp(): a catalog read Hyperdrive must not answer from its cache (test/db/cacheability.test.ts).
        WHERE clock_timestamp() IS NOT NULL AND c.relnamespace = (SELECT n.oid FROM pg_namespace n WHERE n.nspname = ${schemaName}) AND c.relkind IN ('r', 'p')
      UNION ALL SELECT 'index', c.relname::text, NULL FROM pg_class c
        WHERE c.relnamespace = (SELECT n.oid FROM pg_namespace n WHERE n.nspname = ${schemaName}) AND c.relkind IN ('i', 'I')
      UNION ALL SELECT 'function', p.proname::text, NULL FROM pg_proc p WHERE p.pronamespace = (SELECT n.oid FROM pg_namespace n WHERE n.nspname = ${schemaName})
      UNION ALL SELECT 'trigger', tg.tgname::text, c.relname::text FROM pg_trigger tg JOIN pg_class c ON c.oid = tg.tgrelid
        WHERE c.relnamespace = (SELECT n.oid FROM pg_namespace n WHERE n.nspname = ${schemaName}) AND NOT tg.tgisinternal
      UNION ALL SELECT 'column', a.attname::text, c.relname::text FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
        WHERE c.relnamespace = (SELECT n.oid FROM pg_namespace n WHERE n.nspname = ${schemaName}) AND c.relkind IN ('r', 'p') AND a.attnum > 0 AND NOT a.attisdropped`),
  );
  const present = new Set(rows.map((r) => `${r.k}:${r.t ?? ''}.${r.n}`));
  const p = tablePrefix;
  return expectedObjects().filter((o) => {
    // Index names are unique per schema, whatever their table: the table is not part of their key here.
    const table = o.kind === 'column' || o.kind === 'trigger' ? `${p}${o.table}` : '';
    const name = o.kind === 'column' ? o.name : `${p}${o.name}`;
    return !present.has(`${o.kind}:${table}.${name}`);
  });
}

export interface SchemaCheckResult {
  /** What was missing and made again, as PostgreSQL names it. */
  repaired: string[];
  /** What is missing and was left alone: something in it cannot be made again without losing data. */
  missing: string[];
}

/**
 * Makes again what a store with recorded tags lacks, when all of it only needs creating: a missing table
 * (empty, as the migrations leave it), a missing index, function or trigger, or a column a migration added
 * (`ALTER TABLE … ADD COLUMN`). When a column that came with its table's CREATE TABLE is missing, the
 * table would have to be made again: nothing is made and everything missing is returned in `missing`.
 */
export async function repairSchema(tx: SqlExecutor, schemaName: string, tablePrefix: string): Promise<SchemaCheckResult> {
  const missing = await missingObjects(tx, schemaName, tablePrefix);
  if (missing.length === 0) return { repaired: [], missing: [] };
  const missingTables = new Set(missing.filter((o) => o.kind === 'table').map((o) => o.name));
  const covered = (o: ExpectedObject) => o.table !== undefined && missingTables.has(o.table);
  const names = (list: ExpectedObject[]) => list.map((o) => displayName(o, schemaName, tablePrefix));
  if (missing.some((o) => o.kind === 'column' && !covered(o) && o.repair.length === 0)) return { repaired: [], missing: names(missing) };
  const ordered = [
    ...missing.filter((o) => o.kind === 'table'),
    ...missing.filter((o) => o.kind === 'column' && !covered(o)),
    ...missing.filter((o) => o.kind === 'index' && !covered(o)),
    // Functions before triggers: CREATE TRIGGER needs its function.
    ...missing.filter((o) => o.kind === 'function'),
    ...missing.filter((o) => o.kind === 'trigger' && !covered(o)),
  ];
  for (const o of ordered) {
    for (const statement of o.repair) await tx.execute(sql.raw(renderSql(statement, schemaName, tablePrefix)));
  }
  const still = await missingObjects(tx, schemaName, tablePrefix);
  return still.length === 0 ? { repaired: names(missing), missing: [] } : { repaired: [], missing: names(still) };
}
