// Options of the sync host's core (feed, listener, touch buffer, cleanup), shared by every host: the Node
// worker (pg-edge-session-worker) adds its network and driver options, the Durable Object its bindings.
// `HOST_OPTION_TABLE` is the one list of them (after postgres.js's `parseOptions`): each option's CLI flag,
// environment variables, default, checker and description. `resolveHostOptions`, the worker's flags, env
// reading and `--help` (worker/config.ts) and the Durable Object's env reader (src/durable-object.ts) all
// read it; the checks are src/internal/validate.ts's.
import { ConfigError } from '../core/errors.ts';
import { fn, options } from '../internal/validate.ts';
import { HOST_OPTION_TABLE, type HostOptionSpec } from './option-table.ts';

export { HOST_OPTION_TABLE, type HostOptionSpec, type WorkerOwnOptionKey } from './option-table.ts';

/** Durations in ms. Each is validated by `resolveHostOptions` (a `ConfigError` names the option). */
export interface HostOptions {
  /**
   * Shared secret isolates send as `Authorization: Bearer …`; at least 32 bytes. Unset: every request is
   * accepted (a Durable Object is reachable only through its binding; the Node worker refuses to start
   * without one unless `insecureDev`).
   */
  secret?: string | undefined;
  /** Schema of the session tables (the managers'). Default 'public'. */
  schemaName?: string | undefined;
  /** Table prefix (the managers'). Default ''. */
  tablePrefix?: string | undefined;
  /** Touch flush interval. Default 10 s (isolates' touches wait at most this long; a crash loses at most this much). */
  lastAccessUpdateInterval?: number | undefined;
  /** Rows per touch-flush statement. Default 5000. */
  lastAccessUpdateBatchSize?: number | undefined;
  /** Cleanup interval (also runs once at start). Default 1 h. */
  cleanupInterval?: number | undefined;
  /** Rows per cleanup delete statement (each aims to stay well under 100 ms). Default 1000. */
  cleanupBatchSize?: number | undefined;
  /** Session idle timeout used by cleanup and touch flushes; must match the managers'. Default 48 h. */
  inactivityDuration?: number | undefined;
  /** How long change records are kept for catch-up (cursors older than this get a reset). Default 15 min. */
  changeRetention?: number | undefined;
  /**
   * Record the sessions cleanup deletes (expired, idle_expired) in the audit table, as the managers do with
   * their `audit` option; set it when theirs is on. Default false.
   */
  audit?: boolean | undefined;
  /** Audit rows older than this are pruned by cleanup (match the managers' `auditRetention`). Default 365 days. */
  auditRetention?: number | undefined;
  /** Most audit rows kept per user when cleanup records ends (match the managers' `auditMaxPerUser`; 0: no bound). Default 1000. */
  auditMaxPerUser?: number | undefined;
  /** Safety-net read of the change record even without a wake-up. Default 250 ms (keep well under maxStaleness). */
  pollInterval?: number | undefined;
  /** Trailing read after each wake-up, to catch transactions whose wake-up was skipped. Default 25 ms. */
  settleDelay?: number | undefined;
  /** Most touches held in memory before POST /v1/touches answers 503. Default 1,000,000. */
  maxPendingTouches?: number | undefined;
  /**
   * The longest a client may hold an access before it reaches this host (its push interval, plus retries).
   * A touch's first access is taken as no earlier than its arrival minus this, so a touch can carry a session
   * across its idle timeout only if the session was alive this long before the touch arrived: a sender (with
   * the secret, or the Durable Object's binding) cannot revive a session idle-expired for longer by
   * back-dating the first access of its run. Keep it at least the sync clients' `touchInterval`. Default 10 s.
   */
  touchMaxHold?: number | undefined;
  /**
   * Most /v1/stream subscribers at once; beyond it the stream answers 503 `TOO_MANY_SUBSCRIBERS` with
   * `Retry-After` (clients poll meanwhile). Each costs a connection and a few KB (events are serialized
   * once and shared). Default 1000.
   */
  maxSubscribers?: number | undefined;
  /**
   * Go idle after this long without a subscriber, a poll, touches or a wake-up: pending touches are written,
   * the LISTEN connection is closed and no query is sent (cleanup waits too), so a Neon compute can scale to
   * zero. The next request reconnects and catches up from the cursor. Default 60 s; 0 never idles.
   */
  idleTimeout?: number | undefined;
  /** Largest reconnect delay of the listener. Default 10 s. */
  maxBackoff?: number | undefined;
}

export type ResolvedHostOptions = Required<{ [K in Exclude<keyof HostOptions, 'secret'>]: Exclude<HostOptions[K], undefined> }> & {
  secret: string | undefined;
};

const HOST_ROWS: readonly HostOptionSpec[] = HOST_OPTION_TABLE.filter((r: HostOptionSpec) => r.worker !== true);

/**
 * Validates and fills in defaults. Throws `ConfigError` naming the option; an unknown key is refused too,
 * except `ownKeys`: the options a host adds (its connection, its logger) and checks itself.
 */
export function resolveHostOptions(o: HostOptions, ownKeys: readonly string[] = []): ResolvedHostOptions {
  const given = options('options', o, [...HOST_ROWS.map((r) => r.key), ...ownKeys]);
  const out: Record<string, unknown> = {};
  for (const row of HOST_ROWS) {
    const v = given[row.key];
    out[row.key] = v === undefined ? row.default : row.check(row.key, v);
  }
  return out as ResolvedHostOptions;
}

/**
 * Options from text (command-line flags, environment variables): for each row `read` gives the text and
 * the name it came by (the flag, the variable), or nothing. A number is parsed and checked, a boolean is on
 * at `true` or "1", empty text is unset; a bad one is a `ConfigError` naming where it came from.
 */
export function optionsFromText(
  rows: readonly HostOptionSpec[],
  read: (row: HostOptionSpec) => { name: string; value: string | boolean } | undefined,
): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const row of rows) {
    const got = read(row);
    if (got === undefined) continue;
    const { name, value } = got;
    if (row.type === 'boolean') {
      out[row.key] = value === true || value === '1';
      continue;
    }
    if (value === '' || typeof value !== 'string') continue;
    if (row.type === 'string') {
      out[row.key] = value;
      continue;
    }
    const n = Number(value);
    if (!Number.isFinite(n)) throw new ConfigError(name, `expected a number, got ${JSON.stringify(value)}`);
    out[row.key] = row.check(name, n);
  }
  return out;
}

/** A host's `log` option: a function given each JSON line, 'silent' (none), or unset (`fallback`). */
export function logSink(v: unknown, fallback: (line: string) => void): (line: string) => void {
  if (v === 'silent') return () => {};
  if (v === undefined) return fallback;
  return fn<(line: string) => void>('log', v, "a function (line) => void or 'silent'");
}
