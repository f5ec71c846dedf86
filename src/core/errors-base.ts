/**
 * The base of every error the library throws (`SessionError`, with its stable codes), and the two every
 * layer raises: `ConfigError` (an option) and `InvalidArgumentError` (a call argument). A leaf: the other
 * errors-*.ts files build on it, and src/core/errors.ts re-exports them all.
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
