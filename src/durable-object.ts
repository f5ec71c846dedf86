/**
 * `pg-edge-session/durable-object`: the sync host as a Cloudflare Durable Object, so a Workers app needs no
 * server of its own for fresh caches. The object runs the same core as the Node worker (`./host`): the
 * listener on Neon's WebSocket driver (LISTEN, reads of the change record, catch-up from its cursor), the
 * feed, touch ingestion and batched flushes, and cleanup under the advisory lock. Isolates reach it through
 * the namespace binding with the same protocol as the Node worker (`SyncClient`'s `durableObject` option).
 *
 * ```ts
 * // worker.ts (wrangler.toml: [[durable_objects.bindings]] name = "SESSION_SYNC", class_name = "SessionSyncObject",
 * //            and a migration: [[migrations]] tag = "v1", new_classes = ["SessionSyncObject"])
 * export { SessionSyncObject } from 'pg-edge-session/durable-object';
 * app.use(neonSessionMiddleware((env: Env) => ({ databaseUrl: env.DATABASE_URL, sync: { durableObject: env.SESSION_SYNC } })));
 * ```
 *
 * Lifecycle. The first request builds the core and starts the listener from the cursor kept in the
 * object's storage. An alarm every flush interval writes the touches received since the last one and,
 * when the cleanup interval has passed (its due time is kept in storage too), runs cleanup; it stores the
 * listener's cursor. After `idleTimeout` without a poll, a stream or a touch, the listener writes pending
 * touches and closes its connection, and the next alarm sets no further alarm: no connection, no timer,
 * no query, so the object can be evicted and the database scale to zero. The next request wakes it (the
 * listener reconnects, catches up from its cursor; skipped cleanup runs) and sets the alarm again.
 *
 * What a crash or eviction costs: touches received since the last flush (at most one flush interval, as
 * with the Node worker's SIGKILL). Nothing of the feed: clients keep their own cursors and the record is
 * durable, so a restarted object answers any cursor from the database, and its listener resumes from the
 * stored cursor.
 *
 * Not a subclass of `cloudflare:workers`' `DurableObject` (that module exists only inside workerd, and this
 * one is importable everywhere): a plain class with `fetch` and `alarm`, which the runtime accepts.
 * Edge-safe: Web APIs only.
 */

import { ConfigError, describeError } from './core/errors.ts';
import { createNeonHostDb, type NeonConnectionSettings, neonSettings } from './drivers/neon/index.ts';
import { createSyncCore, type SyncCore } from './host/core.ts';
import { jsonLogger } from './host/log.ts';
import { createMemoryMetrics } from './host/metrics.ts';
import { HOST_OPTION_TABLE, type HostOptionSpec } from './host/option-table.ts';
import { type HostOptions, logSink, optionsFromText, type ResolvedHostOptions, resolveHostOptions } from './host/options.ts';
import { isPoolerHost } from './internal/hosts.ts';
import type { ErrorBody } from './protocol.ts';

/** What the object uses of its state (Cloudflare's `DurableObjectState` fits). */
export interface DurableObjectStateLike {
  readonly storage: {
    get<T = unknown>(key: string): Promise<T | undefined>;
    put<T>(key: string, value: T): Promise<void>;
    getAlarm(): Promise<number | null>;
    setAlarm(scheduledTime: number): Promise<void>;
  };
}

/** Options of the object (from `options(env)`): the host core's plus the connection. Durations in ms. */
export interface SessionSyncOptions extends Omit<HostOptions, 'secret'> {
  /**
   * PostgreSQL URL of the DIRECT endpoint (LISTEN does not work through Neon's `-pooler`, which the
   * handlers use). Required.
   */
  databaseUrl: string;
  /** Local development only: `host:port/path` of a WebSocket-to-TCP proxy in front of a plain PostgreSQL. */
  wsProxy?: string | undefined;
  /** Any other per-connection setting of Neon's driver, applied after `wsProxy`'s. */
  neonConfig?: NeonConnectionSettings | undefined;
  /** Where JSON log lines go. Default console.log (`wrangler tail` shows them). 'silent' drops them. */
  log?: ((line: string) => void) | 'silent' | undefined;
}

/**
 * The environment `SessionSyncObject` reads by default (vars or secrets of the Worker that hosts it):
 * - `SESSION_SYNC_DATABASE_URL`: the DIRECT endpoint; falls back to `DATABASE_URL` (a `-pooler` host is refused)
 * - `NEON_WS_PROXY`, `SESSION_SCHEMA`, `SESSION_TABLE_PREFIX`: as the app's (see `neonSessions`)
 * - `SESSION_SYNC_FLUSH_INTERVAL_MS` (10000), `SESSION_SYNC_CLEANUP_INTERVAL_MS` (3600000),
 *   `SESSION_SYNC_IDLE_TIMEOUT_MS` (60000), `SESSION_SYNC_POLL_INTERVAL_MS` (250),
 *   `SESSION_SYNC_INACTIVITY_MS` (the managers' inactivityDuration, 172800000), `SESSION_SYNC_AUDIT` ("1": on),
 *   `SESSION_SYNC_TOUCH_MAX_HOLD_MS` (touchMaxHold, 10000), `SESSION_SYNC_AUDIT_MAX_PER_USER` (auditMaxPerUser, 1000)
 * The host core's variables are the rows of `HOST_OPTION_TABLE` (src/host/options.ts) that name one, each
 * checked as the Node worker's flag is. Anything else: subclass and override `options(env)`.
 */
export interface SessionSyncEnv {
  SESSION_SYNC_DATABASE_URL?: string;
  DATABASE_URL?: string;
  NEON_WS_PROXY?: string;
  SESSION_SCHEMA?: string;
  SESSION_TABLE_PREFIX?: string;
  SESSION_SYNC_FLUSH_INTERVAL_MS?: string;
  SESSION_SYNC_CLEANUP_INTERVAL_MS?: string;
  SESSION_SYNC_IDLE_TIMEOUT_MS?: string;
  SESSION_SYNC_POLL_INTERVAL_MS?: string;
  SESSION_SYNC_INACTIVITY_MS?: string;
  SESSION_SYNC_TOUCH_MAX_HOLD_MS?: string;
  SESSION_SYNC_AUDIT_MAX_PER_USER?: string;
  SESSION_SYNC_AUDIT?: string;
}

/** Storage keys (the object's own storage; one object per app). */
const CURSOR_KEY = 'pg-edge-session:cursor';
const CLEANUP_AT_KEY = 'pg-edge-session:cleanup-at';

/** `SessionSyncOptions` from the environment (see `SessionSyncEnv`). Throws `ConfigError` naming the variable. */
export function sessionSyncOptionsFromEnv(env: SessionSyncEnv): SessionSyncOptions {
  const e = (env ?? {}) as Record<string, unknown>;
  const str = (name: string): string | undefined => {
    const v = e[name];
    if (v === undefined || v === '') return undefined;
    if (typeof v !== 'string') throw new ConfigError(name, 'expected a string');
    return v;
  };
  const databaseUrl = str('SESSION_SYNC_DATABASE_URL') ?? str('DATABASE_URL');
  if (databaseUrl === undefined) throw new ConfigError('SESSION_SYNC_DATABASE_URL', 'not set (the direct endpoint of the database)');
  // The host core's options: the rows of HOST_OPTION_TABLE (src/host/options.ts) that name a variable here.
  const core = optionsFromText(OBJECT_ENV_ROWS, (row) => {
    const value = str(row.objectEnv as string);
    return value === undefined ? undefined : { name: row.objectEnv as string, value };
  });
  return { databaseUrl, wsProxy: str('NEON_WS_PROXY'), ...core };
}

const OBJECT_ENV_ROWS: readonly HostOptionSpec[] = HOST_OPTION_TABLE.filter((r: HostOptionSpec) => r.objectEnv !== undefined);
// Every variable the table names for the object is declared in SessionSyncEnv (a compile error otherwise).
type ObjectEnvName = Extract<(typeof HOST_OPTION_TABLE)[number], { objectEnv: string }>['objectEnv'];
const declared: [Exclude<ObjectEnvName, keyof SessionSyncEnv>] extends [never] ? true : never = true;
void declared;
/** The keys `SessionSyncOptions` adds to the host core's: checked by the object, not by `resolveHostOptions`. */
const OBJECT_OWN_KEYS = ['databaseUrl', 'wsProxy', 'neonConfig', 'log'] as const satisfies readonly Exclude<
  keyof SessionSyncOptions,
  keyof HostOptions
>[];

interface Running {
  core: SyncCore;
  o: ResolvedHostOptions;
  log: ReturnType<typeof jsonLogger>;
}

/**
 * The sync host as a Durable Object. Export it from the Worker's main module under the `class_name` of
 * the binding. Configured from the environment (`SessionSyncEnv`) unless a subclass overrides `options`.
 */
export class SessionSyncObject<Env = SessionSyncEnv> {
  readonly #state: DurableObjectStateLike;
  readonly #env: Env;
  #running: Promise<Running> | undefined;
  /** The alarm this instance set and that has not fired yet (avoids a storage call per request). */
  #alarmSet = false;
  #storedCursor: string | null | undefined;

  constructor(state: DurableObjectStateLike, env: Env) {
    this.#state = state;
    this.#env = env;
  }

  /** The object's options. Default: `sessionSyncOptionsFromEnv(env)`. Override to configure it in code. */
  protected options(env: Env): SessionSyncOptions {
    return sessionSyncOptionsFromEnv(env as SessionSyncEnv);
  }

  /** The running core (built on first use), for subclasses and tests. */
  protected core(): Promise<SyncCore> {
    return this.#start().then((r) => r.core);
  }

  #start(): Promise<Running> {
    this.#running ??= (async () => {
      const opts = this.options(this.#env);
      if (opts === null || typeof opts !== 'object') throw new ConfigError('options', 'expected an object');
      if (typeof opts.databaseUrl !== 'string' || opts.databaseUrl === '')
        throw new ConfigError('databaseUrl', 'required (the direct endpoint)');
      let host: string;
      try {
        host = new URL(opts.databaseUrl).hostname;
      } catch {
        throw new ConfigError('databaseUrl', 'not a URL (postgres://user:password@host:port/db)');
      }
      if (isPoolerHost(host)) {
        throw new ConfigError(
          'databaseUrl',
          'is a pooled (-pooler) Neon endpoint: LISTEN needs the direct endpoint (SESSION_SYNC_DATABASE_URL)',
        );
      }
      const o = resolveHostOptions({ ...opts, secret: undefined }, OBJECT_OWN_KEYS);
      const log = jsonLogger(logSink(opts.log, (line) => console.log(line)));
      const db = createNeonHostDb({ databaseUrl: opts.databaseUrl, settings: neonSettings(opts.wsProxy, opts.neonConfig) });
      const core = createSyncCore(o, { db, metrics: createMemoryMetrics(), log });
      const cursor = (await this.#state.storage.get<string>(CURSOR_KEY)) ?? null;
      this.#storedCursor = cursor;
      core.listener.resumeFrom(cursor);
      core.start();
      log('info', 'sync object started', { schema: o.schemaName, prefix: o.tablePrefix, resumedFrom: cursor });
      return { core, o, log };
    })();
    // A configuration error is answered on every request (not cached as a broken object forever: a fixed
    // variable takes effect on the next deploy, which restarts the object anyway).
    this.#running.catch(() => {
      this.#running = undefined;
    });
    return this.#running;
  }

  async fetch(request: Request): Promise<Response> {
    let r: Running;
    try {
      r = await this.#start();
    } catch (e) {
      const body: ErrorBody = {
        error:
          e instanceof ConfigError ? { code: e.code, message: e.message } : { code: 'INTERNAL', message: 'sync object failed to start' },
      };
      console.error(JSON.stringify({ level: 'error', msg: 'sync object failed to start', error: describeError(e) }));
      return Response.json(body, { status: 500 });
    }
    const response = await r.core.app.fetch(request);
    // The request may have woken the listener: flushes and cleanup run on alarms while it is awake.
    if (!r.core.listener.resting) await this.#armAlarm(r.o).catch((err) => r.log('warn', 'setting the alarm failed', { err }));
    return response;
  }

  /** Every flush interval while awake: write touches, run cleanup when due, store the cursor, set the next alarm. */
  async alarm(): Promise<void> {
    this.#alarmSet = false;
    // An alarm left by an instance that was evicted or crashed: this one has no touches to write, and
    // starting the listener for nobody would wake the database. The next request starts it (and the alarms).
    if (this.#running === undefined) return;
    let r: Running;
    try {
      r = await this.#running;
    } catch {
      return; // misconfigured: fetch says why
    }
    const { core, o, log } = r;
    await core.flushTouches().catch(() => {}); // failed batches stay pending (logged by the buffer)
    const now = Date.now();
    const cleanupAt = (await this.#state.storage.get<number>(CLEANUP_AT_KEY)) ?? 0;
    if (now >= cleanupAt) {
      // While the listener is idle this only remembers it: it runs when traffic wakes the listener.
      void core.cleanupDue();
      await this.#state.storage.put(CLEANUP_AT_KEY, now + o.cleanupInterval);
    }
    const cursor = core.listener.cursor;
    if (cursor !== null && cursor !== this.#storedCursor) {
      await this.#state.storage.put(CURSOR_KEY, cursor);
      this.#storedCursor = cursor;
    }
    if (core.listener.resting) {
      log('info', 'sync object idle: no alarm until the next request');
      return;
    }
    await this.#armAlarm(o);
  }

  async #armAlarm(o: ResolvedHostOptions): Promise<void> {
    if (this.#alarmSet) return;
    this.#alarmSet = true;
    try {
      const at = await this.#state.storage.getAlarm();
      if (at === null) await this.#state.storage.setAlarm(Date.now() + o.lastAccessUpdateInterval);
    } catch (e) {
      this.#alarmSet = false;
      throw e;
    }
  }
}
