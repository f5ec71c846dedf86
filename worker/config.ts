import { parseArgs } from 'node:util';
import { validateSchemaName, validateTablePrefix } from '../src/config.ts';
import { ConfigError } from '../src/errors.ts';

/** Options of the sync worker (startWorker and the CLI). Durations in ms. */
export interface WorkerOptions {
  /** PostgreSQL URL. On Neon use the DIRECT endpoint (not `-pooler`): LISTEN needs a session. Required. */
  databaseUrl: string;
  /** Shared secret isolates send as `Authorization: Bearer …`; at least 32 bytes. Required unless insecureDev. */
  secret?: string;
  /**
   * Run without a secret (local development only; every request is accepted). Default false. Refused with a
   * `host` that is not loopback (127.0.0.0/8, ::1, localhost): the network could then do anything the isolates can.
   */
  insecureDev?: boolean;
  /** 'pg' (node-postgres over TCP) or 'neon' (@neondatabase/serverless over WebSocket). Default: 'neon' for *.neon.tech hosts, else 'pg'. */
  driver?: 'pg' | 'neon';
  /** For the neon driver against a non-Neon PostgreSQL: a WebSocket proxy `host:port/path` (no TLS). */
  neonWsProxy?: string;
  /** HTTP port. Default 8787; 0 picks a free one. */
  port?: number;
  /** HTTP host. Default '127.0.0.1'; use '0.0.0.0' in a container. */
  host?: string;
  schemaName?: string;
  tablePrefix?: string;
  /** Apply migrations at start. Default false (a missing schema is then a startup error). */
  migrate?: boolean;
  /** Touch flush interval. Default 10 s (isolates' touches wait at most this long). */
  lastAccessUpdateInterval?: number;
  /** Rows per touch-flush statement. Default 5000. */
  lastAccessUpdateBatchSize?: number;
  /** Cleanup interval (also runs once at start). Default 1 h. */
  cleanupInterval?: number;
  /** Rows per cleanup delete statement (each aims to stay well under 100 ms). Default 1000. */
  cleanupBatchSize?: number;
  /** Session idle timeout used by cleanup; must match the managers'. Default 48 h. */
  inactivityDuration?: number;
  /** How long change records are kept for catch-up (cursors older than this get a reset). Default 15 min. */
  changeRetention?: number;
  /**
   * Record the sessions cleanup deletes (expired, idle_expired) in the audit table, as the managers do with
   * their `audit` option; set it when theirs is on. Default false.
   */
  audit?: boolean;
  /** Audit rows older than this are pruned by cleanup (match the managers' `auditRetention`). Default 365 days. */
  auditRetention?: number;
  /** Safety-net read of the change record even without a wake-up. Default 250 ms (keep well under maxStaleness). */
  pollInterval?: number;
  /** Trailing read after each wake-up, to catch transactions whose wake-up was skipped. Default 25 ms. */
  settleDelay?: number;
  /** Most touches held in memory before POST /v1/touches answers 503. Default 1,000,000. */
  maxPendingTouches?: number;
  /**
   * Most /v1/stream subscribers at once; beyond it the stream answers 503 `TOO_MANY_SUBSCRIBERS` with
   * `Retry-After` (clients poll meanwhile). Each costs a connection and a few KB (events are serialized
   * once and shared). Default 1000.
   */
  maxSubscribers?: number;
  /**
   * Go idle after this long without a subscriber, a poll, touches or a wake-up: pending touches are written,
   * the LISTEN connection is closed and no query is sent (cleanup waits too), so a Neon compute can scale to
   * zero. The next request reconnects and catches up from the cursor. In ms; default 60 s; 0 never idles.
   */
  idleTimeout?: number;
  /** Largest reconnect delay. Default 10 s. */
  maxBackoff?: number;
  /** Where JSON log lines go. Default process.stdout. 'silent' drops them. */
  log?: ((line: string) => void) | 'silent';
}

export type ResolvedWorkerOptions = Required<Omit<WorkerOptions, 'secret' | 'neonWsProxy' | 'log'>> & {
  secret: string | undefined;
  neonWsProxy: string | undefined;
  log: (line: string) => void;
};

const SECOND = 1000;

export function resolveWorkerOptions(o: WorkerOptions): ResolvedWorkerOptions {
  if (typeof o.databaseUrl !== 'string' || o.databaseUrl.length === 0) throw new ConfigError('databaseUrl', 'DATABASE_URL is required');
  let url: URL;
  try {
    url = new URL(o.databaseUrl);
  } catch {
    throw new ConfigError('databaseUrl', 'not a URL (postgres://user:password@host:port/db)');
  }
  if (!/^postgres(ql)?:$/.test(url.protocol)) throw new ConfigError('databaseUrl', 'must start with postgres:// or postgresql://');
  if (url.hostname.includes('-pooler')) {
    throw new ConfigError(
      'databaseUrl',
      "is a pooled (-pooler) Neon endpoint: LISTEN does not work through PgBouncer's transaction mode; use the direct endpoint",
    );
  }
  const insecureDev = o.insecureDev === true;
  if (o.secret !== undefined && o.secret !== '') {
    if (new TextEncoder().encode(o.secret).length < 32)
      throw new ConfigError('secret', 'must be at least 32 bytes (e.g. `openssl rand -base64 32`)');
  } else if (!insecureDev) {
    throw new ConfigError(
      'secret',
      'no secret configured: set PG_EDGE_SESSION_SECRET (≥ 32 bytes), or pass --insecure-dev for local development',
    );
  }
  const host = o.host ?? '127.0.0.1';
  if (insecureDev && !isLoopback(host)) {
    throw new ConfigError(
      'insecureDev',
      `--insecure-dev accepts every request without a secret, so it is only allowed on a loopback host (127.0.0.1, ::1, localhost), not ${host}; set a secret instead`,
    );
  }
  const num = (name: keyof WorkerOptions, v: unknown, def: number, min: number, max = Number.MAX_SAFE_INTEGER) => {
    const x = v === undefined ? def : v;
    if (typeof x !== 'number' || !Number.isFinite(x) || x < min || x > max)
      throw new ConfigError(name, `expected a number between ${min} and ${max}, got ${String(v)}`);
    return x;
  };
  const driver = o.driver ?? (url.hostname.endsWith('.neon.tech') ? 'neon' : 'pg');
  if (driver !== 'pg' && driver !== 'neon') throw new ConfigError('driver', "expected 'pg' or 'neon'");
  const log = o.log === 'silent' ? () => {} : (o.log ?? ((line: string) => process.stdout.write(`${line}\n`)));
  return {
    databaseUrl: o.databaseUrl,
    secret: o.secret === '' ? undefined : o.secret,
    insecureDev,
    driver,
    neonWsProxy: o.neonWsProxy,
    port: num('port', o.port, 8787, 0, 65535),
    host,
    schemaName: validateSchemaName(o.schemaName ?? 'public'),
    tablePrefix: validateTablePrefix(o.tablePrefix ?? ''),
    migrate: o.migrate === true,
    lastAccessUpdateInterval: num('lastAccessUpdateInterval', o.lastAccessUpdateInterval, 10 * SECOND, 10),
    lastAccessUpdateBatchSize: num('lastAccessUpdateBatchSize', o.lastAccessUpdateBatchSize, 5000, 1, 50000),
    cleanupInterval: num('cleanupInterval', o.cleanupInterval, 3600 * SECOND, 10),
    cleanupBatchSize: num('cleanupBatchSize', o.cleanupBatchSize, 1000, 1, 50000),
    inactivityDuration: num('inactivityDuration', o.inactivityDuration, 48 * 3600 * SECOND, 0),
    changeRetention: num('changeRetention', o.changeRetention, 15 * 60 * SECOND, 1000),
    audit: o.audit === true,
    auditRetention: num('auditRetention', o.auditRetention, 365 * 24 * 3600 * SECOND, 1),
    pollInterval: num('pollInterval', o.pollInterval, 250, 5, 60 * SECOND),
    settleDelay: num('settleDelay', o.settleDelay, 25, 0, 10 * SECOND),
    maxPendingTouches: num('maxPendingTouches', o.maxPendingTouches, 1_000_000, 1),
    maxSubscribers: num('maxSubscribers', o.maxSubscribers, 1000, 0, 1_000_000),
    idleTimeout: num('idleTimeout', o.idleTimeout, 60 * SECOND, 0),
    maxBackoff: num('maxBackoff', o.maxBackoff, 10 * SECOND, 10),
    log,
  };
}

/** 127.0.0.0/8, ::1 (also written out) and localhost: addresses only this machine can reach. */
function isLoopback(host: string): boolean {
  const h = host.toLowerCase().replace(/^\[(.*)\]$/, '$1');
  return h === 'localhost' || /^127(\.\d{1,3}){3}$/.test(h) || h === '::1' || h === '0:0:0:0:0:0:0:1';
}

export const HELP = `pg-edge-session-worker — the sync worker of pg-edge-session

Holds the LISTEN connection, serves the invalidation feed to isolates, batches their touches into
last_accessed, and cleans up expired sessions (one runner at a time across replicas).

Usage: pg-edge-session-worker [flags]

Flags (each also read from the environment variable in brackets; flags win):
  --database-url URL          PostgreSQL URL; on Neon the DIRECT endpoint, not -pooler [DATABASE_URL] (required)
  --secret S                  shared secret, >= 32 bytes [PG_EDGE_SESSION_SECRET] (required unless --insecure-dev)
  --insecure-dev              accept requests without a secret (local development only; loopback --host only)
  --port N                    HTTP port [PORT] (default 8787)
  --host H                    HTTP host [HOST] (default 127.0.0.1)
  --schema NAME               schema of the session tables [PG_EDGE_SESSION_SCHEMA] (default public)
  --prefix P                  table prefix [PG_EDGE_SESSION_PREFIX] (default '')
  --driver pg|neon            database driver [PG_EDGE_SESSION_DRIVER] (default neon for *.neon.tech, else pg)
  --neon-ws-proxy HOST:PORT   WebSocket proxy for the neon driver against non-Neon PostgreSQL [PG_EDGE_SESSION_NEON_WS_PROXY]
  --migrate                   apply migrations at start [PG_EDGE_SESSION_MIGRATE=1]
  --flush-interval MS         touch flush interval [PG_EDGE_SESSION_FLUSH_INTERVAL] (default 10000)
  --flush-batch N             rows per flush statement [PG_EDGE_SESSION_FLUSH_BATCH] (default 5000)
  --cleanup-interval MS       cleanup interval [PG_EDGE_SESSION_CLEANUP_INTERVAL] (default 3600000)
  --cleanup-batch N           rows per cleanup statement [PG_EDGE_SESSION_CLEANUP_BATCH] (default 1000)
  --inactivity MS             idle timeout used by cleanup [PG_EDGE_SESSION_INACTIVITY] (default 172800000)
  --retention MS              change-record retention [PG_EDGE_SESSION_RETENTION] (default 900000)
  --audit                     record sessions cleanup deletes in the audit table [PG_EDGE_SESSION_AUDIT=1] (default off)
  --audit-retention MS        audit rows older than this are pruned [PG_EDGE_SESSION_AUDIT_RETENTION] (default 31536000000)
  --poll-interval MS          safety-net read interval [PG_EDGE_SESSION_POLL_INTERVAL] (default 250)
  --max-subscribers N         most /v1/stream subscribers, 503 beyond [PG_EDGE_SESSION_MAX_SUBSCRIBERS] (default 1000)
  --idle-timeout MS           no query after this long without traffic, so Neon can scale to zero; 0 never
                              [PG_EDGE_SESSION_IDLE_TIMEOUT] (default 60000)
  --help                      print this and exit

Endpoints: GET /healthz, GET /readyz, GET /metrics, GET /v1/changes?after=CURSOR, GET /v1/stream?after=CURSOR,
POST /v1/touches. All but /healthz and /readyz need "Authorization: Bearer <secret>". The two probes are
open and say nothing but alive (/healthz) and ready or not (/readyz: 200 {"ready":true} or 503 {"ready":false}).
SIGTERM/SIGINT: stop accepting, flush pending touches, exit 0.
`;

/** Parses argv + env into WorkerOptions. Returns 'help' for --help. */
export function parseCli(argv: string[], env: NodeJS.ProcessEnv): WorkerOptions | 'help' {
  const { values } = parseArgs({
    args: argv,
    strict: true,
    options: {
      'database-url': { type: 'string' },
      secret: { type: 'string' },
      'insecure-dev': { type: 'boolean' },
      port: { type: 'string' },
      host: { type: 'string' },
      schema: { type: 'string' },
      prefix: { type: 'string' },
      driver: { type: 'string' },
      'neon-ws-proxy': { type: 'string' },
      migrate: { type: 'boolean' },
      'flush-interval': { type: 'string' },
      'flush-batch': { type: 'string' },
      'cleanup-interval': { type: 'string' },
      'cleanup-batch': { type: 'string' },
      inactivity: { type: 'string' },
      retention: { type: 'string' },
      audit: { type: 'boolean' },
      'audit-retention': { type: 'string' },
      'poll-interval': { type: 'string' },
      'max-subscribers': { type: 'string' },
      'idle-timeout': { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help) return 'help';
  const n = (flag: string, v: string | undefined): number | undefined => {
    if (v === undefined || v === '') return undefined;
    const x = Number(v);
    if (!Number.isFinite(x)) throw new ConfigError(flag, `expected a number, got ${JSON.stringify(v)}`);
    return x;
  };
  const pick = (flag: keyof typeof values, envName: string) => (values[flag] as string | undefined) ?? env[envName];
  return {
    databaseUrl: pick('database-url', 'DATABASE_URL') ?? '',
    secret: pick('secret', 'PG_EDGE_SESSION_SECRET'),
    insecureDev: values['insecure-dev'] === true || env.PG_EDGE_SESSION_INSECURE_DEV === '1',
    port: n('port', pick('port', 'PORT')),
    host: pick('host', 'HOST'),
    schemaName: pick('schema', 'PG_EDGE_SESSION_SCHEMA'),
    tablePrefix: pick('prefix', 'PG_EDGE_SESSION_PREFIX'),
    driver: pick('driver', 'PG_EDGE_SESSION_DRIVER') as 'pg' | 'neon' | undefined,
    neonWsProxy: pick('neon-ws-proxy', 'PG_EDGE_SESSION_NEON_WS_PROXY'),
    migrate: values.migrate === true || env.PG_EDGE_SESSION_MIGRATE === '1',
    lastAccessUpdateInterval: n('flush-interval', pick('flush-interval', 'PG_EDGE_SESSION_FLUSH_INTERVAL')),
    lastAccessUpdateBatchSize: n('flush-batch', pick('flush-batch', 'PG_EDGE_SESSION_FLUSH_BATCH')),
    cleanupInterval: n('cleanup-interval', pick('cleanup-interval', 'PG_EDGE_SESSION_CLEANUP_INTERVAL')),
    cleanupBatchSize: n('cleanup-batch', pick('cleanup-batch', 'PG_EDGE_SESSION_CLEANUP_BATCH')),
    inactivityDuration: n('inactivity', pick('inactivity', 'PG_EDGE_SESSION_INACTIVITY')),
    changeRetention: n('retention', pick('retention', 'PG_EDGE_SESSION_RETENTION')),
    audit: values.audit === true || env.PG_EDGE_SESSION_AUDIT === '1',
    auditRetention: n('audit-retention', pick('audit-retention', 'PG_EDGE_SESSION_AUDIT_RETENTION')),
    pollInterval: n('poll-interval', pick('poll-interval', 'PG_EDGE_SESSION_POLL_INTERVAL')),
    maxSubscribers: n('max-subscribers', pick('max-subscribers', 'PG_EDGE_SESSION_MAX_SUBSCRIBERS')),
    idleTimeout: n('idle-timeout', pick('idle-timeout', 'PG_EDGE_SESSION_IDLE_TIMEOUT')),
  };
}
