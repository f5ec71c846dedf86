import { validateSchemaName, validateTablePrefix } from '../core/config.ts';

/** Object names that live in the schema and are referenced qualified (tables, functions). */
const QUALIFIED = new Set([
  'sessions',
  'session_create',
  'session_get',
  'session_update',
  'session_row_json',
  'session_changes',
  'session_audit',
  'session_audit_write',
  'session_token_check',
  'session_changes_horizon',
  'session_changes_wake',
  'session_changes_capture_update',
  'session_changes_capture_delete',
  'session_changes_capture_truncate',
  'session_migrations',
]);

/** Columns whose names look like our object names (`session_…`): never prefixed. */
const COLUMNS = new Set(['session_id', 'session_ids']);

/** Quoted, validated names of every database object for one schemaName/tablePrefix. */
export interface ObjectNames {
  schemaName: string;
  tablePrefix: string;
  /** `"schema"."prefixsessions"` */
  sessions: string;
  /** `"schema"."prefixsession_create"` */
  createFunction: string;
  /** `"schema"."prefixsession_get"` */
  getFunction: string;
  /** `"schema"."prefixsession_update"` */
  updateFunction: string;
  /** `"schema"."prefixsession_row_json"` */
  rowJsonFunction: string;
  /** `"schema"."prefixsession_migrations"` */
  migrations: string;
  /** `"schema"."prefixsession_changes"` */
  changes: string;
  /** `"schema"."prefixsession_audit"` */
  audit: string;
  /** `"schema"."prefixsession_audit_write"` (drizzle/0010) */
  auditWriteFunction: string;
  /** `"schema"."prefixsession_token_check"` (drizzle/0013) */
  tokenCheckFunction: string;
  /** `"schema"` */
  schema: string;
}

export function objectNames(schemaName: string, tablePrefix: string): ObjectNames {
  validateSchemaName(schemaName);
  validateTablePrefix(tablePrefix);
  const q = (n: string) => `"${schemaName}"."${tablePrefix}${n}"`;
  return {
    schemaName,
    tablePrefix,
    sessions: q('sessions'),
    createFunction: q('session_create'),
    getFunction: q('session_get'),
    updateFunction: q('session_update'),
    rowJsonFunction: q('session_row_json'),
    migrations: q('session_migrations'),
    changes: q('session_changes'),
    audit: q('session_audit'),
    auditWriteFunction: q('session_audit_write'),
    tokenCheckFunction: q('session_token_check'),
    schema: `"${schemaName}"`,
  };
}

/**
 * Rewrites SQL written for the default configuration (schema public, no prefix; what drizzle-kit
 * generates into drizzle/) for another schema and prefix. Table and function names become qualified and
 * prefixed; index, trigger and constraint names (which PostgreSQL scopes to the table's schema) get the
 * prefix, and the schema too where a statement names an index alone (`DROP INDEX`). Only quoted
 * identifiers of our own objects are touched (not columns, such as `session_id`); both names were
 * validated, so the result needs no further escaping.
 */
export function renderSql(text: string, schemaName: string, tablePrefix: string): string {
  validateSchemaName(schemaName);
  validateTablePrefix(tablePrefix);
  return text.replace(
    /(\bDROP INDEX\s+(?:IF EXISTS\s+)?)?"([A-Za-z_][A-Za-z0-9_]*)"/g,
    (whole, dropIndex: string | undefined, name: string) => {
      if (QUALIFIED.has(name)) return `${dropIndex ?? ''}"${schemaName}"."${tablePrefix}${name}"`;
      if (COLUMNS.has(name)) return whole;
      if (name.startsWith('sessions_') || name.startsWith('session_')) {
        // An index lives in its table's schema; DROP INDEX finds it only qualified (drizzle-kit writes the
        // bare name for the default schema, which would otherwise resolve through search_path).
        return dropIndex === undefined ? `"${tablePrefix}${name}"` : `${dropIndex}"${schemaName}"."${tablePrefix}${name}"`;
      }
      return whole;
    },
  );
}
