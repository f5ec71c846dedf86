import { choice, duration, flag, int, MAX_TIMER_MS, show } from '../internal/validate.ts';
import { type AuditWriteError, ConfigError } from './errors.ts';

// The checkers were defined here first; importers of core/config keep finding them.
export { choice, duration, flag, MAX_TIMER_MS };

const HOUR = 3_600_000;

/**
 * Options of a `SessionManager`. They mirror go-pg-session's `Config` (same defaults), in TypeScript
 * naming, with durations in milliseconds. Every option is validated once, at construction; a bad value
 * throws a `ConfigError` whose `option` names it.
 */
export interface SessionConfig {
  /**
   * Most sessions one user may hold. Creating one more evicts the least recently used (by last access)
   * in the same atomic step. Integer ≥ 1. Default 5.
   */
  maxSessions?: number;
  /** Largest attribute value, in bytes of its UTF-8 JSON. Integer ≥ 1. Default 16384 (16 KiB). */
  maxAttributeLength?: number;
  /**
   * Largest session: bytes of its stored attributes (the UTF-8 of their jsonb text as PostgreSQL prints it,
   * versions and expiries included). A create or update beyond it throws `SessionTooLargeError` and writes
   * nothing (checked by the statement itself, so concurrent updates cannot pass it together). Integer,
   * at least `maxAttributeLength`. Default 131072 (128 KiB).
   */
  maxSessionBytes?: number;
  /** Absolute lifetime of a new session, in ms (`expires_at` = creation + this). Default 720 h (30 days). */
  sessionExpiration?: number;
  /**
   * Idle timeout in ms: a session whose newest known last access is older than this is expired.
   * `0` turns idle expiry off. Default 48 h.
   */
  inactivityDuration?: number;
  /**
   * Re-authentication period in ms (NIST SP 800-63B's "reauthentication" bound): a session whose user last
   * proved who they are (signed in, or `reauthenticate`) this long ago ends — never served again, rotated or
   * re-authenticated, and deleted by cleanup (audit reason `'reauthentication_expired'`), whatever its
   * activity. `0` (default): no such period; only idle and absolute expiry end a session.
   */
  reauthenticationPeriod?: number;
  /**
   * Longest lifetime of an impersonation session (`createSession(..., { impersonatedBy })`), in ms: its
   * expiry is at most this after its creation. Default 1 h.
   */
  impersonationMaxLifetime?: number;
  /** How often the worker (or `startBackgroundTasks`) runs `deleteExpired()`, in ms. Default 1 h. */
  cleanupInterval?: number;
  /**
   * Sessions kept in this manager's in-memory LRU. `0` turns the cache off. At most 1,000,000: the LRUs
   * preallocate their slots (about 100 bytes per unit of cacheSize at construction). Default 10000.
   * `cacheMaxBytes` bounds the same cache by memory; whichever is reached first evicts.
   */
  cacheSize?: number;
  /**
   * Most heap the session cache may take, in bytes, estimated per session from its stored JSON and
   * attribute count. A session larger than a quarter of this is never cached (its reads go to the
   * database). Default 33554432 (32 MiB): a quarter of a Cloudflare Workers isolate's 128 MB. At least
   * 65536; `cacheSize: 0` turns the cache off instead.
   */
  cacheMaxBytes?: number;
  /**
   * Prefix of every table, index, function and trigger name, so several stores can share a schema.
   * Empty or a PostgreSQL identifier start (`[A-Za-z_][A-Za-z0-9_]*`). Default ''.
   */
  tablePrefix?: string;
  /** Schema holding the tables (created by `migrate()`). PostgreSQL identifier, ≤ 63 bytes. Default 'public'. */
  schemaName?: string;
  /**
   * Touches (last-access updates) are kept in memory and written at most this often, in ms. It is also
   * the grace that cleanup adds to `inactivityDuration`, so a touch not yet written never gets an active
   * session deleted. Default 10 min (go-pg-session's default).
   */
  lastAccessUpdateInterval?: number;
  /** Rows per touch-flush statement (and per cleanup delete batch). Integer 1..50000. Default 5000. */
  lastAccessUpdateBatchSize?: number;
  /**
   * Longest time, in ms, a cached session may be served after it was changed or deleted elsewhere.
   * Without a sync client marking the cache fresh, an entry is trusted for this long after it was read.
   * `0` means every read goes to the database. Default 1000.
   */
  maxStaleness?: number;
  /**
   * Record every session end (logout, revocation, rotation, eviction, expiry, bulk deletes) in the
   * `session_audit` table, in the same statement that ends it, with the session's device metadata and
   * the reason. Read it with `listSessionEnds` / `sessionEnd`. Default false (no audit write at all).
   */
  audit?: boolean;
  /**
   * How long audit rows are kept, in ms; `deleteExpired()` (and the worker's cleanup) prunes older ones,
   * also with `audit` off (rows written while it was on). Default 365 days.
   */
  auditRetention?: number;
  /**
   * Most audit rows kept per user (the newest): each audited session end trims that user's older rows, so
   * rotations and sign-ins cannot grow the table without bound within `auditRetention`. `0`: no bound.
   * Default 1000.
   */
  auditMaxPerUser?: number;
  /**
   * Called when audit rows could not be written (`AuditWriteError`): the session ended anyway — ending a
   * session never depends on its audit row. Default: one `console.error` line per failure.
   */
  onAuditError?: (error: AuditWriteError) => void;
  /** The clock, in ms since the epoch. Inject a fake one in tests. Default `Date.now`. */
  clock?: () => number;
}

export interface ResolvedConfig {
  maxSessions: number;
  maxAttributeLength: number;
  maxSessionBytes: number;
  sessionExpiration: number;
  inactivityDuration: number;
  reauthenticationPeriod: number;
  impersonationMaxLifetime: number;
  cleanupInterval: number;
  cacheSize: number;
  cacheMaxBytes: number;
  tablePrefix: string;
  schemaName: string;
  lastAccessUpdateInterval: number;
  lastAccessUpdateBatchSize: number;
  maxStaleness: number;
  audit: boolean;
  auditRetention: number;
  auditMaxPerUser: number;
  onAuditError: (error: AuditWriteError) => void;
  clock: () => number;
}

export const DEFAULTS: Readonly<Omit<ResolvedConfig, 'clock' | 'onAuditError'>> = Object.freeze({
  maxSessions: 5,
  maxAttributeLength: 16384,
  maxSessionBytes: 128 * 1024,
  sessionExpiration: 720 * HOUR,
  inactivityDuration: 48 * HOUR,
  reauthenticationPeriod: 0,
  impersonationMaxLifetime: HOUR,
  cleanupInterval: HOUR,
  cacheSize: 10000,
  cacheMaxBytes: 32 * 1024 * 1024,
  tablePrefix: '',
  schemaName: 'public',
  lastAccessUpdateInterval: 10 * 60_000,
  lastAccessUpdateBatchSize: 5000,
  maxStaleness: 1000,
  audit: false,
  auditRetention: 365 * 24 * HOUR,
  auditMaxPerUser: 1000,
});

const KNOWN = new Set([...Object.keys(DEFAULTS), 'clock', 'onAuditError']);

const reportAuditError = (e: AuditWriteError): void => console.error(`[pg-edge-session] ${e.message}`);

/** The longest object name derived from the prefix; the prefix must leave room for it within 63 bytes. */
export const LONGEST_SUFFIX = 'session_changes_capture_truncate';
const MAX_IDENTIFIER = 63;
const IDENT = /^[A-Za-z_][A-Za-z0-9_]*$/;

/** Validates a schema name: PostgreSQL identifier rules, at most 63 bytes. */
export function validateSchemaName(v: unknown, option = 'schemaName'): string {
  if (typeof v !== 'string') throw new ConfigError(option, `expected a string, got ${show(v)}`);
  if (!IDENT.test(v)) throw new ConfigError(option, `${JSON.stringify(v)} is not a PostgreSQL identifier ([A-Za-z_][A-Za-z0-9_]*)`);
  if (v.length > MAX_IDENTIFIER) throw new ConfigError(option, `must be at most ${MAX_IDENTIFIER} characters, got ${v.length}`);
  if (v.toLowerCase().startsWith('pg_')) throw new ConfigError(option, 'names starting with "pg_" are reserved by PostgreSQL');
  return v;
}

/** Validates a table prefix: empty, or an identifier start that leaves room for the longest derived name. */
export function validateTablePrefix(v: unknown, option = 'tablePrefix'): string {
  if (typeof v !== 'string') throw new ConfigError(option, `expected a string, got ${show(v)}`);
  if (v !== '' && !IDENT.test(v)) throw new ConfigError(option, `${JSON.stringify(v)} must be empty or match [A-Za-z_][A-Za-z0-9_]*`);
  if (v.length + LONGEST_SUFFIX.length > MAX_IDENTIFIER) {
    throw new ConfigError(
      option,
      `must be at most ${MAX_IDENTIFIER - LONGEST_SUFFIX.length} characters (derived names are limited to ${MAX_IDENTIFIER})`,
    );
  }
  return v;
}

export function resolveConfig(input: SessionConfig | undefined): ResolvedConfig {
  if (input !== undefined && (input === null || typeof input !== 'object' || Array.isArray(input))) {
    throw new ConfigError('config', `expected an object, got ${show(input)}`);
  }
  const o = (input ?? {}) as Record<string, unknown>;
  for (const k of Object.keys(o)) if (!KNOWN.has(k)) throw new ConfigError(k, 'unknown option');
  const pick = <T>(k: keyof typeof DEFAULTS): T => (o[k] === undefined ? DEFAULTS[k] : o[k]) as T;
  const clock = o.clock === undefined ? Date.now : o.clock;
  if (typeof clock !== 'function') throw new ConfigError('clock', `expected a function returning ms since the epoch, got ${show(clock)}`);
  const onAuditError = o.onAuditError === undefined ? reportAuditError : o.onAuditError;
  if (typeof onAuditError !== 'function') throw new ConfigError('onAuditError', `expected a function, got ${show(onAuditError)}`);
  const maxAttributeLength = int('maxAttributeLength', pick('maxAttributeLength'), 1, 64 * 1024 * 1024);
  // An explicit maxAttributeLength above the default session bound raises that bound with it.
  const maxSessionBytes = int(
    'maxSessionBytes',
    o.maxSessionBytes === undefined ? Math.max(DEFAULTS.maxSessionBytes, maxAttributeLength) : o.maxSessionBytes,
    1,
    256 * 1024 * 1024,
  );
  if (maxSessionBytes < maxAttributeLength) {
    throw new ConfigError('maxSessionBytes', `must be at least maxAttributeLength (${maxAttributeLength}), got ${maxSessionBytes}`);
  }
  return {
    maxSessions: int('maxSessions', pick('maxSessions'), 1, 1_000_000),
    maxAttributeLength,
    maxSessionBytes,
    sessionExpiration: duration('sessionExpiration', pick('sessionExpiration'), 1),
    inactivityDuration: duration('inactivityDuration', pick('inactivityDuration'), 0),
    reauthenticationPeriod: duration('reauthenticationPeriod', pick('reauthenticationPeriod'), 0),
    impersonationMaxLifetime: duration('impersonationMaxLifetime', pick('impersonationMaxLifetime'), 1),
    cleanupInterval: duration('cleanupInterval', pick('cleanupInterval'), 1),
    cacheSize: int('cacheSize', pick('cacheSize'), 0, 1_000_000),
    cacheMaxBytes: int('cacheMaxBytes', pick('cacheMaxBytes'), 65536, Number.MAX_SAFE_INTEGER),
    tablePrefix: validateTablePrefix(pick('tablePrefix')),
    schemaName: validateSchemaName(pick('schemaName')),
    lastAccessUpdateInterval: duration('lastAccessUpdateInterval', pick('lastAccessUpdateInterval'), 1),
    lastAccessUpdateBatchSize: int('lastAccessUpdateBatchSize', pick('lastAccessUpdateBatchSize'), 1, 50_000),
    maxStaleness: duration('maxStaleness', pick('maxStaleness'), 0),
    audit: flag('audit', pick('audit')),
    auditRetention: duration('auditRetention', pick('auditRetention'), 1),
    auditMaxPerUser: int('auditMaxPerUser', pick('auditMaxPerUser'), 0, 1_000_000_000),
    onAuditError: onAuditError as (error: AuditWriteError) => void,
    clock: clock as () => number,
  };
}
