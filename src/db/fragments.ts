/**
 * The SQL pieces every statement of src/db/ is built from: times as timestamptz literals, times read back as
 * ms, the mark that keeps a read out of Hyperdrive's cache, a session's listing columns, and the live-session
 * conditions of writes through a token. A leaf: src/db/store.ts, src/db/audit.ts and the statement files
 * import it.
 *
 * No module of src/ calls drizzle-orm while it is evaluated (test/system/module-evaluation.test.ts): in a Workers
 * bundle that also holds a dynamic import, esbuild may initialise drizzle-orm lazily, after a module of
 * src/db/ ran, and a module-level `sql.raw(...)` then fails the Worker's start ("sql.raw is not a function",
 * test/system/bundle-init.test.ts). A fragment used by many statements is built at its first use (`rawOnce`).
 */
import { type SQL, sql } from 'drizzle-orm';

/** `sql.raw(text)`, built at the first call and the same object after it (never while a module loads). */
export function rawOnce(text: string): () => SQL {
  let built: SQL | undefined;
  return () => (built ??= sql.raw(text));
}

/** The largest time a Date holds, ms either side of the epoch. */
export const MAX_DATE_MS = 8.64e15;

/** A time (ms since the epoch) as a timestamptz literal. */
export function ts(msSinceEpoch: number): SQL {
  return sql`${iso(msSinceEpoch)}::timestamptz`;
}

export function iso(msSinceEpoch: number): string {
  return new Date(msSinceEpoch).toISOString();
}

/** A timestamptz column read as ms since the epoch (float8: every driver gives the same number). */
export const ms = (col: string): string => `(extract(epoch from ${col}) * 1000)::float8 AS ${col}`;

/**
 * Added to every read, and to every SELECT whose writes are in a WITH: a volatile function makes the query
 * uncacheable by Cloudflare Hyperdrive (which caches read-only queries for ~60 s by default and would
 * otherwise serve a revoked session, or answer a write from its cache). test/db/cacheability.test.ts checks
 * every statement the library sends.
 */
export const UNCACHEABLE_TEXT = 'clock_timestamp() IS NOT NULL AS uncacheable';
export const uncacheable = rawOnce(UNCACHEABLE_TEXT);

/** A session's columns without attributes (listings). */
export const metaColumns = rawOnce(
  [
    'id::text AS id',
    'user_id',
    'group_id',
    'version',
    ms('created_at'),
    ms('updated_at'),
    ms('last_accessed'),
    ms('expires_at'),
    '(extract(epoch from COALESCE(authenticated_at, created_at)) * 1000)::float8 AS authenticated_at',
    'user_agent',
    'device',
    'ip',
    'label',
    'impersonated_by',
    // As text, so every driver gives the same string (parsed by the manager).
    'location::text AS location',
  ].join(', '),
);

/**
 * The live-session conditions beyond absolute expiry that writes through a token check (rotate,
 * reauthenticate): not idle (stored last access after `idleCutoff`) and not past the re-authentication
 * period (authenticated after `reauthCutoff`).
 */
export function liveSince(idleCutoff: number | null, reauthCutoff: number | null): SQL {
  const idle = idleCutoff === null ? sql`` : sql` AND s.last_accessed > ${ts(idleCutoff)}`;
  const reauth = reauthCutoff === null ? sql`` : sql` AND COALESCE(s.authenticated_at, s.created_at) > ${ts(reauthCutoff)}`;
  return sql`${idle}${reauth}`;
}
