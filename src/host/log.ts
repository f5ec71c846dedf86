import { describeError, findErrorCode } from '../core/errors.ts';

/** One JSON object per line. Never pass tokens, secrets or the database password here. */
export type Logger = (level: 'debug' | 'info' | 'warn' | 'error', msg: string, fields?: Record<string, unknown>) => void;

/**
 * An `err` field is written as its name, code and `describeError` message: never a query's parameters
 * (Drizzle's "Failed query: … params: …"), values quoted by PostgreSQL, or a URL's password.
 */
export function jsonLogger(write: (line: string) => void): Logger {
  return (level, msg, fields) => {
    const rec: Record<string, unknown> = { t: new Date().toISOString(), level, msg, ...fields };
    if (fields !== undefined && 'err' in fields) {
      const e = fields.err;
      rec.err = { name: e instanceof Error ? e.name : typeof e, code: findErrorCode(e), message: describeError(e, false) };
    }
    write(JSON.stringify(rec));
  };
}
