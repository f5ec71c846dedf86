/**
 * The errors of session operations: attributes and sessions too large or not serializable, a session gone,
 * a step-up or an impersonation refused, a version conflict, audit rows not written. Re-exported by
 * src/core/errors.ts.
 */
import { SessionError } from './errors-base.ts';

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
