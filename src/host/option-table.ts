// HOST_OPTION_TABLE: every option of the sync hosts in one list, after postgres.js's `parseOptions`: its key,
// the Node worker's CLI flag and environment variable, the Durable Object's variable, its default, its
// checker (src/internal/validate.ts) and one line of help. src/host/options.ts resolves options with it,
// worker/config.ts builds its flags, env reading and `--help` from it, src/durable-object.ts its env reader.
import { validateSchemaName, validateTablePrefix } from '../core/config.ts';
import { ConfigError } from '../core/errors.ts';
import { choice, flag, num, string } from '../internal/validate.ts';
import type { HostOptions } from './options.ts';

/** One row of `HOST_OPTION_TABLE`. */
export interface HostOptionSpec {
  /** The key in `HostOptions` (or, with `worker`, in the Node worker's `WorkerOptions`). */
  readonly key: string;
  /** Only the Node worker has it (its network, driver and start-up options); not a `HostOptions` key. */
  readonly worker?: true;
  /** The Node worker's CLI flag, without `--`. None: settable in code only. */
  readonly flag?: string;
  /** The flag's value as `--help` shows it (`MS`, `N`, ...). None: a boolean flag (its variable is on at "1"). */
  readonly arg?: string;
  /** The environment variable the Node worker reads when the flag is not given. */
  readonly env?: string;
  /** The environment variable the Durable Object reads (`SessionSyncEnv`). None: set it in code (`options(env)`). */
  readonly objectEnv?: string;
  readonly type: 'number' | 'string' | 'boolean';
  /** The value when unset; `undefined`: none (required, or decided by another option). */
  readonly default: number | string | boolean | undefined;
  /** How `--help` states the default when not by its value ("required", a rule). */
  readonly defaultText?: string;
  /** The checker (src/internal/validate.ts): the value, or a `ConfigError` naming `option`. */
  readonly check: (option: string, v: unknown) => unknown;
  /** One line for `--help`. */
  readonly help: string;
}

const SECOND = 1000;
const HOUR = 3600 * SECOND;
const range =
  (min: number, max?: number) =>
  (option: string, v: unknown): number =>
    num(option, v, min, max);
const text = (option: string, v: unknown): string => string(option, v, true);

/** Isolates send it as `Authorization: Bearer …`: at least 32 bytes; '' is unset. */
function checkSecret(option: string, v: unknown): string | undefined {
  if (v === '') return undefined;
  string(option, v);
  if (new TextEncoder().encode(v as string).length < 32)
    throw new ConfigError(option, 'must be at least 32 bytes (e.g. `openssl rand -base64 32`)');
  return v as string;
}

/**
 * Every option of the sync hosts, in `--help`'s order. Flags, variable names and defaults are public
 * (README.md, "The sync worker" and the Durable Object's section): add rows, never rename one.
 */
export const HOST_OPTION_TABLE = [
  {
    key: 'databaseUrl',
    worker: true,
    flag: 'database-url',
    arg: 'URL',
    env: 'DATABASE_URL',
    type: 'string',
    default: undefined,
    defaultText: 'required',
    check: text,
    help: 'PostgreSQL URL; on Neon the DIRECT endpoint, not -pooler',
  },
  {
    key: 'secret',
    flag: 'secret',
    arg: 'S',
    env: 'PG_EDGE_SESSION_SECRET',
    type: 'string',
    default: undefined,
    defaultText: 'required unless --insecure-dev',
    check: checkSecret,
    help: 'shared secret, >= 32 bytes',
  },
  {
    key: 'insecureDev',
    worker: true,
    flag: 'insecure-dev',
    env: 'PG_EDGE_SESSION_INSECURE_DEV',
    type: 'boolean',
    default: false,
    check: flag,
    help: 'accept requests without a secret (local development only; loopback --host only)',
  },
  {
    key: 'port',
    worker: true,
    flag: 'port',
    arg: 'N',
    env: 'PORT',
    type: 'number',
    default: 8787,
    check: range(0, 65535),
    help: 'HTTP port (0 picks a free one)',
  },
  {
    key: 'host',
    worker: true,
    flag: 'host',
    arg: 'H',
    env: 'HOST',
    type: 'string',
    default: '127.0.0.1',
    check: (option: string, v: unknown) => string(option, v),
    help: 'HTTP host (0.0.0.0 in a container)',
  },
  {
    key: 'schemaName',
    flag: 'schema',
    arg: 'NAME',
    env: 'PG_EDGE_SESSION_SCHEMA',
    objectEnv: 'SESSION_SCHEMA',
    type: 'string',
    default: 'public',
    check: (option: string, v: unknown) => validateSchemaName(v, option),
    help: "schema of the session tables (the managers')",
  },
  {
    key: 'tablePrefix',
    flag: 'prefix',
    arg: 'P',
    env: 'PG_EDGE_SESSION_PREFIX',
    objectEnv: 'SESSION_TABLE_PREFIX',
    type: 'string',
    default: '',
    defaultText: "''",
    check: (option: string, v: unknown) => validateTablePrefix(v, option),
    help: "table prefix (the managers')",
  },
  {
    key: 'driver',
    worker: true,
    flag: 'driver',
    arg: 'pg|neon',
    env: 'PG_EDGE_SESSION_DRIVER',
    type: 'string',
    default: undefined,
    defaultText: 'neon for *.neon.tech, else pg',
    check: (option: string, v: unknown) => choice(option, v, ['pg', 'neon'] as const),
    help: 'database driver',
  },
  {
    key: 'neonWsProxy',
    worker: true,
    flag: 'neon-ws-proxy',
    arg: 'HOST:PORT',
    env: 'PG_EDGE_SESSION_NEON_WS_PROXY',
    type: 'string',
    default: undefined,
    defaultText: 'unset',
    check: text,
    help: 'WebSocket proxy host:port/path for the neon driver against non-Neon PostgreSQL',
  },
  {
    key: 'migrate',
    worker: true,
    flag: 'migrate',
    env: 'PG_EDGE_SESSION_MIGRATE',
    type: 'boolean',
    default: false,
    check: flag,
    help: 'apply migrations at start (without it a missing schema is a startup error)',
  },
  {
    key: 'lastAccessUpdateInterval',
    flag: 'flush-interval',
    arg: 'MS',
    env: 'PG_EDGE_SESSION_FLUSH_INTERVAL',
    objectEnv: 'SESSION_SYNC_FLUSH_INTERVAL_MS',
    type: 'number',
    default: 10 * SECOND,
    check: range(10),
    help: 'touch flush interval',
  },
  {
    key: 'lastAccessUpdateBatchSize',
    flag: 'flush-batch',
    arg: 'N',
    env: 'PG_EDGE_SESSION_FLUSH_BATCH',
    type: 'number',
    default: 5000,
    check: range(1, 50_000),
    help: 'rows per flush statement',
  },
  {
    key: 'cleanupInterval',
    flag: 'cleanup-interval',
    arg: 'MS',
    env: 'PG_EDGE_SESSION_CLEANUP_INTERVAL',
    objectEnv: 'SESSION_SYNC_CLEANUP_INTERVAL_MS',
    type: 'number',
    default: HOUR,
    check: range(10),
    help: 'cleanup interval (also runs once at start)',
  },
  {
    key: 'cleanupBatchSize',
    flag: 'cleanup-batch',
    arg: 'N',
    env: 'PG_EDGE_SESSION_CLEANUP_BATCH',
    type: 'number',
    default: 1000,
    check: range(1, 50_000),
    help: 'rows per cleanup statement',
  },
  {
    key: 'inactivityDuration',
    flag: 'inactivity',
    arg: 'MS',
    env: 'PG_EDGE_SESSION_INACTIVITY',
    objectEnv: 'SESSION_SYNC_INACTIVITY_MS',
    type: 'number',
    default: 48 * HOUR,
    check: range(0),
    help: "idle timeout used by cleanup and touch flushes (match the managers' inactivityDuration)",
  },
  {
    key: 'touchMaxHold',
    flag: 'touch-max-hold',
    arg: 'MS',
    env: 'PG_EDGE_SESSION_TOUCH_MAX_HOLD',
    objectEnv: 'SESSION_SYNC_TOUCH_MAX_HOLD_MS',
    type: 'number',
    default: 10 * SECOND,
    check: range(0, 24 * HOUR),
    help: "longest a client may hold a touch; a touch's first access counts as no earlier than its arrival minus this",
  },
  {
    key: 'changeRetention',
    flag: 'retention',
    arg: 'MS',
    env: 'PG_EDGE_SESSION_RETENTION',
    type: 'number',
    default: 15 * 60 * SECOND,
    check: range(1000),
    help: 'change-record retention (older cursors get a reset)',
  },
  {
    key: 'audit',
    flag: 'audit',
    env: 'PG_EDGE_SESSION_AUDIT',
    objectEnv: 'SESSION_SYNC_AUDIT',
    type: 'boolean',
    default: false,
    check: flag,
    help: "record sessions cleanup deletes in the audit table (set it when the managers' audit is on)",
  },
  {
    key: 'auditRetention',
    flag: 'audit-retention',
    arg: 'MS',
    env: 'PG_EDGE_SESSION_AUDIT_RETENTION',
    type: 'number',
    default: 365 * 24 * HOUR,
    check: range(1),
    help: 'audit rows older than this are pruned',
  },
  {
    key: 'auditMaxPerUser',
    flag: 'audit-max-per-user',
    arg: 'N',
    env: 'PG_EDGE_SESSION_AUDIT_MAX_PER_USER',
    objectEnv: 'SESSION_SYNC_AUDIT_MAX_PER_USER',
    type: 'number',
    default: 1000,
    check: range(0, 1_000_000_000),
    help: 'most audit rows kept per user when cleanup records ends; 0 no bound',
  },
  {
    key: 'pollInterval',
    flag: 'poll-interval',
    arg: 'MS',
    env: 'PG_EDGE_SESSION_POLL_INTERVAL',
    objectEnv: 'SESSION_SYNC_POLL_INTERVAL_MS',
    type: 'number',
    default: 250,
    check: range(5, 60 * SECOND),
    help: 'safety-net read interval (keep well under maxStaleness)',
  },
  {
    key: 'maxSubscribers',
    flag: 'max-subscribers',
    arg: 'N',
    env: 'PG_EDGE_SESSION_MAX_SUBSCRIBERS',
    type: 'number',
    default: 1000,
    check: range(0, 1_000_000),
    help: 'most /v1/stream subscribers, 503 beyond',
  },
  {
    key: 'idleTimeout',
    flag: 'idle-timeout',
    arg: 'MS',
    env: 'PG_EDGE_SESSION_IDLE_TIMEOUT',
    objectEnv: 'SESSION_SYNC_IDLE_TIMEOUT_MS',
    type: 'number',
    default: 60 * SECOND,
    check: range(0),
    help: 'no query after this long without traffic, so Neon can scale to zero; 0 never',
  },
  {
    key: 'settleDelay',
    type: 'number',
    default: 25,
    check: range(0, 10 * SECOND),
    help: 'trailing read after each wake-up',
  },
  {
    key: 'maxPendingTouches',
    type: 'number',
    default: 1_000_000,
    check: range(1),
    help: 'most touches held in memory before POST /v1/touches answers 503',
  },
  {
    key: 'maxBackoff',
    type: 'number',
    default: 10 * SECOND,
    check: range(10),
    help: 'largest reconnect delay of the listener',
  },
] as const satisfies readonly HostOptionSpec[];

type Row = (typeof HOST_OPTION_TABLE)[number];
/** The Node worker's own options (the rows marked `worker`). */
export type WorkerOwnOptionKey = Extract<Row, { worker: true }>['key'];
// Every HostOptions key has a row, and every row not marked `worker` is a HostOptions key.
type Missing = Exclude<keyof HostOptions, Exclude<Row, { worker: true }>['key']>;
type Extra = Exclude<Exclude<Row, { worker: true }>['key'], keyof HostOptions>;
const covered: [Missing, Extra] extends [never, never] ? true : never = true;
void covered;
