/**
 * The errors of the database (schema missing or incomplete, unavailable, any other failure), what of a
 * driver's error may be shown (`describeError`, `redactUrls`), and how a driver's error becomes one of them
 * (`classifyDatabaseError`). Re-exported by src/core/errors.ts.
 */
import { SessionError } from './errors-base.ts';

/** The session tables are not there: run `migrate()` (or the worker with `--migrate`). */
export class SchemaMissingError extends SessionError {
  override name = 'SchemaMissingError';
  readonly schemaName: string;
  readonly tablePrefix: string;
  constructor(schemaName: string, tablePrefix: string, cause: unknown) {
    super(
      'SCHEMA_MISSING',
      `Session tables not found in schema "${schemaName}" with table prefix "${tablePrefix}". ` +
        'Run migrate(db, config) from "pg-edge-session/migrate" (or start the worker with --migrate).',
      { cause: safeCause(cause) },
    );
    this.schemaName = schemaName;
    this.tablePrefix = tablePrefix;
  }
}

/**
 * `migrate()` found migrations recorded as applied in `<prefix>session_migrations` but objects they make
 * missing, and could not make them again without losing data (e.g. a column dropped from a table that
 * holds rows). `missing` names each one ("column auth.sessions.user_id"). Nothing was changed.
 */
export class SchemaIncompleteError extends SessionError {
  override name = 'SchemaIncompleteError';
  readonly schemaName: string;
  readonly tablePrefix: string;
  readonly missing: string[];
  constructor(schemaName: string, tablePrefix: string, missing: string[]) {
    super(
      'SCHEMA_MISSING',
      `The session store in schema "${schemaName}" with table prefix "${tablePrefix}" has its migrations recorded but lacks: ` +
        `${missing.join(', ')}. A tool that manages this schema removed them (drizzle-kit push with a schema file that ` +
        'does not export every session table: export all of createSessionTables(...).tables, see README.md "With drizzle-kit"). ' +
        `Restore them from a backup, or drop the store's tables and run migrate(db, config) again.`,
    );
    this.schemaName = schemaName;
    this.tablePrefix = tablePrefix;
    this.missing = missing;
  }
}

/**
 * `migrate()` found objects of a migration that `<prefix>session_migrations` does not record as applied
 * (`relation "sessions" already exists`): they were made outside `migrate()`, e.g. by `drizzle-kit
 * generate` without the custom migration README.md's "With drizzle-kit" adds, or the tag table was
 * dropped. `tag` is the first migration it could not apply, `recorded` the tags that are recorded. Nothing
 * was changed.
 */
export class SchemaUnrecordedError extends SessionError {
  override name = 'SchemaUnrecordedError';
  readonly schemaName: string;
  readonly tablePrefix: string;
  readonly tag: string;
  readonly recorded: string[];
  constructor(schemaName: string, tablePrefix: string, tag: string, recorded: string[], cause: unknown) {
    const table = `${schemaName}.${tablePrefix}session_migrations`;
    const prefixArg = tablePrefix === '' ? '' : ` --prefix ${tablePrefix}`;
    const how =
      recorded.length === 0
        ? `No migration is recorded in ${table}. If drizzle-kit generate made the tables, add the custom migration ` +
          `README.md "With drizzle-kit" shows after it (npx pg-edge-session sql --mode drizzle-kit --schema ${schemaName}${prefixArg}): ` +
          `it makes the rest and records the tags. If ${table} was dropped or emptied (drizzle-kit push with a schema file ` +
          'that does not export sessionMigrations), restore it from a backup.'
        : `${table} records ${recorded.length} migrations, the newest ${recorded.at(-1)}; ${tag} was run in part or outside ` +
          'migrate(). Restore the store from a backup.';
    super(
      'SCHEMA_MISSING',
      `The session store in schema "${schemaName}" with table prefix "${tablePrefix}" already has objects of migration ${tag}, ` +
        `which is not recorded as applied (${describeError(cause)}). ${how} Or drop the store's tables and run ` +
        'migrate(db, config) again. Nothing was changed.',
      { cause: safeCause(cause) },
    );
    this.schemaName = schemaName;
    this.tablePrefix = tablePrefix;
    this.tag = tag;
    this.recorded = recorded;
  }
}

/**
 * The database could not be reached or the connection broke mid-request. Nothing was cached. The message
 * names the operation and the driver's cause (its message and code, e.g. `connect ECONNREFUSED
 * 10.0.0.5:5432 (ECONNREFUSED)`); `cause` is a copy of the driver's error without the query's parameters.
 */
export class DatabaseUnavailableError extends SessionError {
  override name = 'DatabaseUnavailableError';
  constructor(operation: string, cause: unknown) {
    super('DATABASE_UNAVAILABLE', `Database unavailable during ${operation}: ${describeError(cause)}`, { cause: safeCause(cause) });
  }
}

/**
 * Any other database failure. `sqlState` is PostgreSQL's SQLSTATE when the driver gave one. The message
 * names the operation, the SQLSTATE and the driver's message, never the query's parameters (see
 * `describeError`); `cause` is a copy of the driver's error without them.
 */
export class DatabaseError extends SessionError {
  override name = 'DatabaseError';
  readonly sqlState: string | undefined;
  constructor(operation: string, sqlState: string | undefined, cause: unknown) {
    super(
      'DATABASE_ERROR',
      `Database error during ${operation}${sqlState ? ` (SQLSTATE ${sqlState})` : ''}: ${describeError(cause, sqlState === undefined)}`,
      { cause: safeCause(cause) },
    );
    this.sqlState = sqlState;
  }
}

// --- what of a driver's error may be shown -------------------------------------------------------------
//
// Drizzle wraps every driver error in "Failed query: <sql>\nparams: <values>", and the values are token
// hashes, user ids and attribute values. PostgreSQL's own DETAIL ("Key (id)=(...) already exists") and
// WHERE fields quote values too, and so do the messages of data exceptions (SQLSTATE class 22: `invalid
// input syntax for type uuid: "..."`). What is kept: the driver's message (class 22 with its quoted parts
// masked), its code, and the fields that say where (host, port, syscall, table, column, constraint).

/** Fields of a driver error that never hold a value of a row or a parameter. */
const SAFE_FIELDS = [
  'code',
  'errno',
  'syscall',
  'address',
  'port',
  'hostname',
  'severity',
  'routine',
  'schema',
  'table',
  'column',
  'constraint',
  'dataType',
];

function isQueryWrapper(e: object): boolean {
  return (
    (e as { name?: unknown }).name === 'DrizzleQueryError' ||
    ('params' in e && 'query' in e) ||
    (e instanceof Error && e.message.startsWith('Failed query:'))
  );
}

/** The driver's own error under Drizzle's wrapper (undefined when the wrapper has none). */
function driverErrorOf(e: unknown): unknown {
  let cur: unknown = e;
  for (let i = 0; i < 8 && cur !== null && typeof cur === 'object' && isQueryWrapper(cur); i++) cur = (cur as { cause?: unknown }).cause;
  return cur !== null && typeof cur === 'object' && isQueryWrapper(cur) ? undefined : cur;
}

function codeOf(e: unknown): string | undefined {
  const c = e !== null && typeof e === 'object' ? (e as { code?: unknown }).code : undefined;
  return typeof c === 'string' && c.length > 0 ? c : undefined;
}

/** One line of the driver's message with what could be a value masked. */
function safeMessage(d: unknown): string {
  if (d === undefined) return 'query failed';
  let msg: string;
  if (d instanceof Error) {
    msg = d.message;
    // Node reports a refused connection to every address of a name as an AggregateError without a message.
    const inner = (d as { errors?: unknown }).errors;
    if (msg === '' && Array.isArray(inner)) msg = [...new Set(inner.map((x) => (x instanceof Error ? x.message : String(x))))].join('; ');
    msg ||= d.name;
  } else if (d !== null && typeof d === 'object') {
    const m = (d as { message?: unknown }).message;
    msg = typeof m === 'string' && m !== '' ? m : 'error';
  } else {
    msg = String(d);
  }
  msg = msg.split('\n')[0] as string;
  if (codeOf(d)?.startsWith('22')) msg = msg.replace(/"[^"]*"/g, '"…"').replace(/'[^']*'/g, "'…'");
  return msg.length > 300 ? `${msg.slice(0, 300)}…` : msg;
}

/**
 * What an error says, safe for messages and logs: a library error's own message; for a driver error
 * (also under Drizzle's "Failed query" wrapper) its message without parameters or quoted values, and its
 * code in parentheses unless `withCode` is false. Connection URLs in it lose their password.
 */
export function describeError(e: unknown, withCode = true): string {
  if (e instanceof SessionError) return redactUrls(e.message);
  const d = driverErrorOf(e);
  const code = codeOf(d) ?? codeOf(e);
  const msg = redactUrls(safeMessage(d));
  return withCode && code !== undefined && !msg.includes(code) ? `${msg} (${code})` : msg;
}

/** A copy of the driver's error that keeps its name, message (as `describeError`) and the fields that say where. */
function safeCause(e: unknown): Error | undefined {
  if (e === undefined) return undefined;
  if (e instanceof SessionError) return e;
  const d = driverErrorOf(e);
  const out = new Error(redactUrls(safeMessage(d)));
  if (d instanceof Error) out.name = d.name;
  const src = (d ?? e) as Record<string, unknown>;
  if (src !== null && typeof src === 'object') {
    for (const k of SAFE_FIELDS) {
      const v = src[k];
      if (typeof v === 'string' || typeof v === 'number') (out as unknown as Record<string, unknown>)[k] = v;
    }
  }
  out.stack = `${out.name}: ${out.message}`;
  return out;
}

/** Strips the password from anything that looks like a connection URL. */
export function redactUrls(s: string): string {
  return s.replace(/(postgres(?:ql)?:\/\/[^:/@\s]+:)[^@\s]*@/gi, '$1***@');
}

const UNAVAILABLE_NODE_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'EPIPE',
  'ETIMEDOUT',
  'ENOTFOUND',
  'EAI_AGAIN',
  'EHOSTUNREACH',
  'ENETUNREACH',
]);

/** Walks the `cause` chain (drizzle wraps driver errors) for PostgreSQL's SQLSTATE or a socket code. */
export function findErrorCode(e: unknown): string | undefined {
  let cur: unknown = e;
  for (let i = 0; i < 8 && cur && typeof cur === 'object'; i++) {
    const code = (cur as { code?: unknown }).code;
    if (typeof code === 'string' && code.length > 0) return code;
    cur = (cur as { cause?: unknown }).cause;
  }
  return undefined;
}

function messageChain(e: unknown): string {
  const parts: string[] = [];
  let cur: unknown = e;
  for (let i = 0; i < 8 && cur; i++) {
    if (cur instanceof Error) parts.push(cur.message);
    else if (typeof cur !== 'object') parts.push(String(cur));
    cur = cur && typeof cur === 'object' ? (cur as { cause?: unknown }).cause : undefined;
  }
  return parts.join(' | ');
}

/**
 * Turns whatever a driver threw into a typed error. SQLSTATE class 08 (connection exception), 57P01-57P03
 * (admin shutdown, crash shutdown, cannot connect now) and socket errors mean "unavailable".
 */
export function classifyDatabaseError(operation: string, e: unknown, schema: { schemaName: string; tablePrefix: string }): SessionError {
  if (e instanceof SessionError) return e;
  const code = findErrorCode(e);
  if (code === '42P01' || code === '3F000' || code === '42883') return new SchemaMissingError(schema.schemaName, schema.tablePrefix, e);
  if (
    code !== undefined &&
    (code.startsWith('08') || code === '57P01' || code === '57P02' || code === '57P03' || UNAVAILABLE_NODE_CODES.has(code))
  ) {
    return new DatabaseUnavailableError(operation, e);
  }
  if (code === undefined || !/^[0-9A-Z]{5}$/.test(code)) {
    // Drivers signal broken sockets in many ways (neon's WebSocket closes, pg's "Connection terminated").
    const msg = messageChain(driverErrorOf(e) ?? e);
    if (/connection|terminated|socket|websocket|closed|timeout|timed out|fetch failed|network/i.test(msg)) {
      return new DatabaseUnavailableError(operation, e);
    }
  }
  return new DatabaseError(operation, code && /^[0-9A-Z]{5}$/.test(code) ? code : undefined, e);
}
