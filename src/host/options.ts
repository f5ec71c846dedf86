// Options of the sync host's core (feed, listener, touch buffer, cleanup), shared by every host: the Node
// worker (pg-edge-session-worker) adds its network and driver options, the Durable Object its bindings.
import { validateSchemaName, validateTablePrefix } from '../core/config.ts';
import { ConfigError } from '../core/errors.ts';

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

const SECOND = 1000;

/** Validates and fills in defaults. Throws `ConfigError` naming the option. */
export function resolveHostOptions(o: HostOptions): ResolvedHostOptions {
  if (o.secret !== undefined && o.secret !== '') {
    if (typeof o.secret !== 'string') throw new ConfigError('secret', 'expected a string');
    if (new TextEncoder().encode(o.secret).length < 32)
      throw new ConfigError('secret', 'must be at least 32 bytes (e.g. `openssl rand -base64 32`)');
  }
  const num = (name: keyof HostOptions, v: unknown, def: number, min: number, max = Number.MAX_SAFE_INTEGER) => {
    const x = v === undefined ? def : v;
    if (typeof x !== 'number' || !Number.isFinite(x) || x < min || x > max)
      throw new ConfigError(name, `expected a number between ${min} and ${max}, got ${String(v)}`);
    return x;
  };
  return {
    secret: o.secret === '' ? undefined : o.secret,
    schemaName: validateSchemaName(o.schemaName ?? 'public'),
    tablePrefix: validateTablePrefix(o.tablePrefix ?? ''),
    lastAccessUpdateInterval: num('lastAccessUpdateInterval', o.lastAccessUpdateInterval, 10 * SECOND, 10),
    lastAccessUpdateBatchSize: num('lastAccessUpdateBatchSize', o.lastAccessUpdateBatchSize, 5000, 1, 50000),
    cleanupInterval: num('cleanupInterval', o.cleanupInterval, 3600 * SECOND, 10),
    cleanupBatchSize: num('cleanupBatchSize', o.cleanupBatchSize, 1000, 1, 50000),
    inactivityDuration: num('inactivityDuration', o.inactivityDuration, 48 * 3600 * SECOND, 0),
    changeRetention: num('changeRetention', o.changeRetention, 15 * 60 * SECOND, 1000),
    audit: o.audit === true,
    auditRetention: num('auditRetention', o.auditRetention, 365 * 24 * 3600 * SECOND, 1),
    auditMaxPerUser: num('auditMaxPerUser', o.auditMaxPerUser, 1000, 0, 1_000_000_000),
    pollInterval: num('pollInterval', o.pollInterval, 250, 5, 60 * SECOND),
    settleDelay: num('settleDelay', o.settleDelay, 25, 0, 10 * SECOND),
    maxPendingTouches: num('maxPendingTouches', o.maxPendingTouches, 1_000_000, 1),
    touchMaxHold: num('touchMaxHold', o.touchMaxHold, 10 * SECOND, 0, 24 * 3600 * SECOND),
    maxSubscribers: num('maxSubscribers', o.maxSubscribers, 1000, 0, 1_000_000),
    idleTimeout: num('idleTimeout', o.idleTimeout, 60 * SECOND, 0),
    maxBackoff: num('maxBackoff', o.maxBackoff, 10 * SECOND, 10),
  };
}
