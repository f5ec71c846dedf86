import { parseArgs } from 'node:util';
import { ConfigError } from 'pg-edge-session';
import {
  HOST_OPTION_TABLE,
  type HostOptionSpec,
  type HostOptions,
  isLoopbackHost,
  isPoolerHost,
  logSink,
  optionsFromText,
  type ResolvedHostOptions,
  resolveHostOptions,
  type WorkerOwnOptionKey,
} from 'pg-edge-session/host';

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
  const insecureDev = own<boolean>(o, 'insecureDev');
  if ((o.secret === undefined || o.secret === '') && !insecureDev) {
    throw new ConfigError(
      'secret',
      'no secret configured: set PG_EDGE_SESSION_SECRET (≥ 32 bytes), or pass --insecure-dev for local development',
    );
  }
  const host = own<string>(o, 'host');
  if (insecureDev && !isLoopbackHost(host)) {
    throw new ConfigError(
      'insecureDev',
      `--insecure-dev accepts every request without a secret, so it is only allowed on a loopback host (127.0.0.1, ::1, localhost), not ${host}; set a secret instead`,
    );
  }
  const core = resolveHostOptions(o, WORKER_OWN_KEYS);
  const log = logSink(o.log, (line) => process.stdout.write(`${line}\n`));
  return {
    ...core,
    databaseUrl: o.databaseUrl,
    insecureDev,
    driver: own(o, 'driver', url.hostname.endsWith('.neon.tech') ? 'neon' : 'pg'),
    neonWsProxy: own(o, 'neonWsProxy'),
    port: own(o, 'port'),
    host,
    migrate: own(o, 'migrate'),
    log,
  };
}

/** A worker option's value: its default (or `fallback`) when unset, else checked by its row of the table. */
function own<T>(o: WorkerOptions, key: WorkerOwnOptionKey, fallback?: T): T {
  const row = HOST_OPTION_TABLE.find((r) => r.key === key) as HostOptionSpec;
  const v = o[key];
  return (v === undefined ? (fallback ?? row.default) : row.check(key, v)) as T;
}

/** The keys `WorkerOptions` adds to `HostOptions`: checked here, not by `resolveHostOptions`. */
const WORKER_OWN_KEYS: readonly string[] = [...HOST_OPTION_TABLE.filter((r: HostOptionSpec) => r.worker === true).map((r) => r.key), 'log'];

/** The rows with a CLI flag: the worker's flags, in `--help`'s order. */
const FLAG_ROWS: readonly HostOptionSpec[] = HOST_OPTION_TABLE.filter((r: HostOptionSpec) => r.flag !== undefined);
const HELP_WIDTH = 120;
const HELP_INDENT = 30;

/** How `--help` and README.md state a row's default: its words for it, 'off', or the value. */
export function shownDefault(row: HostOptionSpec): string | undefined {
  if (row.defaultText !== undefined) return row.defaultText;
  if (row.type === 'boolean') return 'off';
  return row.default === undefined ? undefined : String(row.default);
}

/** One flag of `--help`: `--flag ARG`, then its line, [its variable] and (its default), wrapped. */
export function helpLine(row: HostOptionSpec): string {
  const shown = shownDefault(row);
  const env = row.type === 'boolean' ? `${row.env}=1` : row.env;
  const tail = shown === undefined ? [] : [shown.startsWith('required') || shown === 'unset' ? `(${shown})` : `(default ${shown})`];
  const head = `  --${row.flag}${row.arg === undefined ? '' : ` ${row.arg}`}`.padEnd(HELP_INDENT);
  const lines: string[] = [];
  let line = '';
  for (const word of [...row.help.split(' '), `[${env}]`, ...tail]) {
    if (line !== '' && HELP_INDENT + line.length + 1 + word.length > HELP_WIDTH) {
      lines.push(line);
      line = word;
    } else line = line === '' ? word : `${line} ${word}`;
  }
  lines.push(line);
  return head + lines.join(`\n${' '.repeat(HELP_INDENT)}`);
}

export const HELP = `pg-edge-session-worker — the sync worker of pg-edge-session

Holds the LISTEN connection, serves the invalidation feed to isolates, batches their touches into
last_accessed, and cleans up expired sessions (one runner at a time across replicas).

Usage: pg-edge-session-worker [flags]

Flags (each also read from the environment variable in brackets; flags win):
${FLAG_ROWS.map(helpLine).join('\n')}
  --help                      print this and exit

Endpoints: GET /healthz, GET /readyz, GET /metrics, GET /v1/changes?after=CURSOR, GET /v1/stream?after=CURSOR,
POST /v1/touches. All but /healthz and /readyz need "Authorization: Bearer <secret>". The two probes are
open and say nothing but alive (/healthz) and ready or not (/readyz: 200 {"ready":true} or 503 {"ready":false}).
SIGTERM/SIGINT: stop accepting, flush pending touches, exit 0.
`;

/** Parses argv + env into WorkerOptions. Returns 'help' for --help. */
export function parseCli(argv: string[], env: NodeJS.ProcessEnv): WorkerOptions | 'help' {
  const flags: Record<string, { type: 'string' | 'boolean'; short?: string }> = { help: { type: 'boolean', short: 'h' } };
  for (const row of FLAG_ROWS) flags[row.flag as string] = { type: row.type === 'boolean' ? 'boolean' : 'string' };
  const { values } = parseArgs({ args: argv, strict: true, options: flags });
  if (values.help) return 'help';
  const parsed = optionsFromText(FLAG_ROWS, (row) => {
    const given = values[row.flag as string];
    if (given !== undefined) return { name: row.flag as string, value: given as string | boolean };
    const fromEnv = row.env === undefined ? undefined : env[row.env];
    return fromEnv === undefined ? undefined : { name: row.env as string, value: fromEnv };
  });
  return { ...parsed, databaseUrl: (parsed.databaseUrl as string | undefined) ?? '' } as WorkerOptions;
}
