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
  | 'VERSION_CONFLICT'
  | 'SCHEMA_MISSING'
  | 'DATABASE_UNAVAILABLE'
  | 'DATABASE_ERROR';

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
      { cause },
    );
    this.schemaName = schemaName;
    this.tablePrefix = tablePrefix;
  }
}

/** The database could not be reached or the connection broke mid-request. Nothing was cached. */
export class DatabaseUnavailableError extends SessionError {
  override name = 'DatabaseUnavailableError';
  constructor(operation: string, cause: unknown) {
    super('DATABASE_UNAVAILABLE', `Database unavailable during ${operation}: ${describe(cause)}`, { cause });
  }
}

/** Any other database failure. `sqlState` is PostgreSQL's SQLSTATE when the driver gave one. */
export class DatabaseError extends SessionError {
  override name = 'DatabaseError';
  readonly sqlState: string | undefined;
  constructor(operation: string, sqlState: string | undefined, cause: unknown) {
    super('DATABASE_ERROR', `Database error during ${operation}${sqlState ? ` (SQLSTATE ${sqlState})` : ''}: ${describe(cause)}`, {
      cause,
    });
    this.sqlState = sqlState;
  }
}

function describe(e: unknown): string {
  if (e instanceof Error) return e.message || e.name;
  return String(e);
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
    const msg = messageChain(e);
    if (/connection|terminated|socket|websocket|closed|timeout|timed out|fetch failed|network/i.test(msg)) {
      return new DatabaseUnavailableError(operation, e);
    }
  }
  return new DatabaseError(operation, code && /^[0-9A-Z]{5}$/.test(code) ? code : undefined, e);
}
