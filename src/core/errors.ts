/**
 * Every error the library throws is a `SessionError` with a stable UPPER_SNAKE `code`.
 * Callers branch on `code` (or `instanceof`), never on message text. The driver error, when there
 * is one, is kept as `cause`.
 */
export type SessionErrorCode =
  | 'CONFIG_INVALID'
  | 'INVALID_ARGUMENT'
  | 'ATTRIBUTE_NOT_SERIALIZABLE'
  | 'ATTRIBUTE_TOO_LARGE'
  | 'SESSION_TOO_LARGE'
  | 'SESSION_NOT_FOUND'
  | 'REAUTHENTICATION_REQUIRED'
  | 'IMPERSONATION_NOT_ALLOWED'
  | 'VERSION_CONFLICT'
  | 'SCHEMA_MISSING'
  | 'DATABASE_UNAVAILABLE'
  | 'DATABASE_ERROR'
  | 'AUDIT_WRITE_FAILED';

export class SessionError extends Error {
  override name = 'SessionError';
  readonly code: SessionErrorCode;
  constructor(code: SessionErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
  }
}

/** A configuration option is missing, of the wrong type or out of range. `option` names it. */
export class ConfigError extends SessionError {
  override name = 'ConfigError';
  readonly option: string;
  constructor(option: string, message: string) {
    super('CONFIG_INVALID', `Invalid option "${option}": ${message}`);
    this.option = option;
  }
}

/** A call argument is malformed (a user id that is not a string, an id that is not a UUID, ...). */
export class InvalidArgumentError extends SessionError {
  override name = 'InvalidArgumentError';
  readonly argument: string;
  constructor(argument: string, message: string) {
    super('INVALID_ARGUMENT', `Invalid argument "${argument}": ${message}`);
    this.argument = argument;
  }
}

/** An attribute value cannot be stored as JSON without loss (functions, BigInt, cycles, Date, NaN...). */
export class AttributeNotSerializableError extends SessionError {
  override name = 'AttributeNotSerializableError';
  readonly key: string;
  readonly path: string;
  constructor(key: string, path: string, reason: string) {
    super('ATTRIBUTE_NOT_SERIALIZABLE', `Attribute "${key}" is not serializable at ${path}: ${reason}`);
    this.key = key;
    this.path = path;
  }
}

/** An attribute's JSON is larger than `maxAttributeLength` bytes. */
export class AttributeTooLargeError extends SessionError {
  override name = 'AttributeTooLargeError';
  readonly key: string;
  readonly size: number;
  readonly limit: number;
  constructor(key: string, size: number, limit: number) {
    super('ATTRIBUTE_TOO_LARGE', `Attribute "${key}" is ${size} bytes of JSON; the limit (maxAttributeLength) is ${limit}`);
    this.key = key;
    this.size = size;
    this.limit = limit;
  }
}

/** A session's stored attributes would exceed `maxSessionBytes`. Nothing was written. */
export class SessionTooLargeError extends SessionError {
  override name = 'SessionTooLargeError';
  readonly size: number;
  readonly limit: number;
  constructor(size: number, limit: number) {
    super('SESSION_TOO_LARGE', `The session's attributes would take ${size} bytes; the limit (maxSessionBytes) is ${limit}`);
    this.size = size;
    this.limit = limit;
  }
}

/** The session does not exist any more (deleted, evicted, rotated away or expired). */
export class SessionNotFoundError extends SessionError {
  override name = 'SessionNotFoundError';
  readonly sessionId: string;
  constructor(sessionId: string) {
    super('SESSION_NOT_FOUND', `Session ${sessionId} does not exist or has expired`);
    this.sessionId = sessionId;
  }
}

/**
 * The session's user last proved who they are (signed in, or `reauthenticate`) longer ago than the
 * operation allows (`requireFresh`, `manager.assertFresh`), or — with `impersonatedBy` — may never step up.
 * `authenticatedAt` is when they last did (null: no session at all). The app decides where to send the user
 * (a password or passkey prompt), then calls `reauthenticate`.
 */
export class ReauthenticationRequiredError extends SessionError {
  override name = 'ReauthenticationRequiredError';
  readonly sessionId: string | null;
  readonly authenticatedAt: Date | null;
  /** The longest time since authenticatedAt the operation accepts, ms (null: none applies). */
  readonly maxAge: number | null;
  constructor(sessionId: string | null, authenticatedAt: Date | null, maxAge: number | null, message?: string) {
    super(
      'REAUTHENTICATION_REQUIRED',
      message ??
        (authenticatedAt === null
          ? 'No session: sign in first'
          : `Session ${sessionId} was last authenticated at ${authenticatedAt.toISOString()}, more than ${maxAge} ms ago: re-authenticate`),
    );
    this.sessionId = sessionId;
    this.authenticatedAt = authenticatedAt;
    this.maxAge = maxAge;
  }
}

/**
 * An impersonation session (one an administrator opened as a user: `impersonatedBy`) tried what only the
 * user's own sessions may: step up (`reauthenticate`) or start another impersonation. Nothing was written.
 */
export class ImpersonationError extends SessionError {
  override name = 'ImpersonationError';
  readonly sessionId: string;
  readonly impersonatedBy: string;
  constructor(sessionId: string, impersonatedBy: string, what: string) {
    super('IMPERSONATION_NOT_ALLOWED', `Session ${sessionId} is an impersonation (by an administrator): it cannot ${what}`);
    this.sessionId = sessionId;
    this.impersonatedBy = impersonatedBy;
  }
}

/**
 * The audit rows of ended sessions could not be written (a permission, a constraint, a trigger of the audit
 * table refused them). Never thrown by the call that ended them: the sessions ended all the same, and this
 * goes to the `onAuditError` option (default: a console.error line), and a sync worker's log and
 * `pges_audit_write_failures_total`. `databaseMessage` is PostgreSQL's (SQLSTATE and message).
 */
export class AuditWriteError extends SessionError {
  override name = 'AuditWriteError';
  readonly operation: string;
  readonly sessions: number;
  readonly databaseMessage: string;
  constructor(operation: string, sessions: number, databaseMessage: string) {
    super(
      'AUDIT_WRITE_FAILED',
      `${operation}: ${sessions} session end(s) not recorded in the audit table (the sessions ended): ${databaseMessage}`,
    );
    this.operation = operation;
    this.sessions = sessions;
    this.databaseMessage = databaseMessage;
  }
}

/**
 * A compare-and-set update found a newer version than the one the session was loaded with.
 * Nothing was written. Reload the session and retry.
 */
export class VersionConflictError extends SessionError {
  override name = 'VersionConflictError';
  readonly sessionId: string;
  readonly expectedVersion: number;
  readonly actualVersion: number | undefined;
  readonly conflictingKeys: string[];
  constructor(sessionId: string, expectedVersion: number, actualVersion: number | undefined, conflictingKeys: string[]) {
    const what = conflictingKeys.length > 0 ? `attribute(s) ${conflictingKeys.join(', ')}` : 'the session';
    super('VERSION_CONFLICT', `Version conflict on session ${sessionId}: ${what} changed since it was loaded`);
    this.sessionId = sessionId;
    this.expectedVersion = expectedVersion;
    this.actualVersion = actualVersion;
    this.conflictingKeys = conflictingKeys;
  }
}

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
