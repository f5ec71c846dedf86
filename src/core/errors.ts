/**
 * Every error the library throws is a `SessionError` with a stable UPPER_SNAKE `code`.
 * Callers branch on `code` (or `instanceof`), never on message text. The driver error, when there
 * is one, is kept as `cause`.
 *
 * The classes live beside this file: errors-base.ts (`SessionError`, `ConfigError`, `InvalidArgumentError`),
 * errors-session.ts (what session operations refuse) and errors-database.ts (database failures and what of a
 * driver's error may be shown). This file re-exports them all: importers name it only.
 */
export * from './errors-base.ts';
export * from './errors-database.ts';
export * from './errors-session.ts';
