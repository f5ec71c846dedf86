import { parseArgs } from 'node:util';
import { ConfigError } from 'pg-edge-session';
import { type HostOptions, isLoopbackHost, isPoolerHost, type ResolvedHostOptions, resolveHostOptions } from 'pg-edge-session/host';

/**
 * Options of the sync worker (startWorker and the CLI): the host core's (`HostOptions`: intervals, batch
 * sizes, schema, idle timeout, ... with their defaults) plus the Node process's own. Durations in ms.
 */
export interface WorkerOptions extends HostOptions {
  /** PostgreSQL URL. On Neon use the DIRECT endpoint (not `-pooler`): LISTEN needs a session. Required. */
  databaseUrl: string;
  /** Shared secret isolates send as `Authorization: Bearer …`; at least 32 bytes. Required unless insecureDev. */
  secret?: string | undefined;
  /**
   * Run without a secret (local development only; every request is accepted). Default false. Refused with a
   * `host` that is not loopback (127.0.0.0/8, ::1, localhost): the network could then do anything the isolates can.
   */
  insecureDev?: boolean | undefined;
  /** 'pg' (node-postgres over TCP) or 'neon' (@neondatabase/serverless over WebSocket). Default: 'neon' for *.neon.tech hosts, else 'pg'. */
  driver?: 'pg' | 'neon' | undefined;
  /** For the neon driver against a non-Neon PostgreSQL: a WebSocket proxy `host:port/path` (no TLS). */
  neonWsProxy?: string | undefined;
  /** HTTP port. Default 8787; 0 picks a free one. */
  port?: number | undefined;
  /** HTTP host. Default '127.0.0.1'; use '0.0.0.0' in a container. */
  host?: string | undefined;
  /** Apply migrations at start. Default false (a missing schema is then a startup error). */
  migrate?: boolean | undefined;
  /** Where JSON log lines go. Default process.stdout. 'silent' drops them. */
  log?: ((line: string) => void) | 'silent' | undefined;
}

export type ResolvedWorkerOptions = ResolvedHostOptions & {
  databaseUrl: string;
  insecureDev: boolean;
  driver: 'pg' | 'neon';
  neonWsProxy: string | undefined;
  port: number;
  host: string;
  migrate: boolean;
  log: (line: string) => void;
};

export function resolveWorkerOptions(o: WorkerOptions): ResolvedWorkerOptions {
  if (typeof o.databaseUrl !== 'string' || o.databaseUrl.length === 0) throw new ConfigError('databaseUrl', 'DATABASE_URL is required');
  let url: URL;
  try {
    url = new URL(o.databaseUrl);
  } catch {
    throw new ConfigError('databaseUrl', 'not a URL (postgres://user:password@host:port/db)');
  }
  if (!/^postgres(ql)?:$/.test(url.protocol)) throw new ConfigError('databaseUrl', 'must start with postgres:// or postgresql://');
  if (isPoolerHost(url.hostname)) {
    throw new ConfigError(
      'databaseUrl',
      "is a pooled (-pooler) Neon endpoint: LISTEN does not work through PgBouncer's transaction mode; use the direct endpoint",
    );
  }
  const insecureDev = o.insecureDev === true;
  if ((o.secret === undefined || o.secret === '') && !insecureDev) {
    throw new ConfigError(
      'secret',
      'no secret configured: set PG_EDGE_SESSION_SECRET (≥ 32 bytes), or pass --insecure-dev for local development',
    );
  }
  const host = o.host ?? '127.0.0.1';
  if (insecureDev && !isLoopbackHost(host)) {
    throw new ConfigError(
      'insecureDev',
      `--insecure-dev accepts every request without a secret, so it is only allowed on a loopback host (127.0.0.1, ::1, localhost), not ${host}; set a secret instead`,
    );
  }
  const core = resolveHostOptions(o);
  const port = o.port ?? 8787;
  if (typeof port !== 'number' || !Number.isFinite(port) || port < 0 || port > 65535)
    throw new ConfigError('port', `expected a number between 0 and 65535, got ${String(o.port)}`);
  const driver = o.driver ?? (url.hostname.endsWith('.neon.tech') ? 'neon' : 'pg');
  if (driver !== 'pg' && driver !== 'neon') throw new ConfigError('driver', "expected 'pg' or 'neon'");
  const log = o.log === 'silent' ? () => {} : (o.log ?? ((line: string) => process.stdout.write(`${line}\n`)));
  return {
    ...core,
    databaseUrl: o.databaseUrl,
    insecureDev,
    driver,
    neonWsProxy: o.neonWsProxy,
    port,
    host,
    migrate: o.migrate === true,
    log,
  };
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
  --inactivity MS             idle timeout used by cleanup and touch flushes [PG_EDGE_SESSION_INACTIVITY] (default 172800000)
  --touch-max-hold MS         longest a client may hold a touch; a touch's first access counts as no earlier than
                              its arrival minus this [PG_EDGE_SESSION_TOUCH_MAX_HOLD] (default 10000)
  --retention MS              change-record retention [PG_EDGE_SESSION_RETENTION] (default 900000)
  --audit                     record sessions cleanup deletes in the audit table [PG_EDGE_SESSION_AUDIT=1] (default off)
  --audit-retention MS        audit rows older than this are pruned [PG_EDGE_SESSION_AUDIT_RETENTION] (default 31536000000)
  --audit-max-per-user N      most audit rows kept per user when cleanup records ends; 0 no bound
                              [PG_EDGE_SESSION_AUDIT_MAX_PER_USER] (default 1000)
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
      'touch-max-hold': { type: 'string' },
      retention: { type: 'string' },
      audit: { type: 'boolean' },
      'audit-retention': { type: 'string' },
      'audit-max-per-user': { type: 'string' },
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
    touchMaxHold: n('touch-max-hold', pick('touch-max-hold', 'PG_EDGE_SESSION_TOUCH_MAX_HOLD')),
    changeRetention: n('retention', pick('retention', 'PG_EDGE_SESSION_RETENTION')),
    audit: values.audit === true || env.PG_EDGE_SESSION_AUDIT === '1',
    auditRetention: n('audit-retention', pick('audit-retention', 'PG_EDGE_SESSION_AUDIT_RETENTION')),
    auditMaxPerUser: n('audit-max-per-user', pick('audit-max-per-user', 'PG_EDGE_SESSION_AUDIT_MAX_PER_USER')),
    pollInterval: n('poll-interval', pick('poll-interval', 'PG_EDGE_SESSION_POLL_INTERVAL')),
    maxSubscribers: n('max-subscribers', pick('max-subscribers', 'PG_EDGE_SESSION_MAX_SUBSCRIBERS')),
    idleTimeout: n('idle-timeout', pick('idle-timeout', 'PG_EDGE_SESSION_IDLE_TIMEOUT')),
  };
}
