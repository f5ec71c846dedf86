/**
 * Hono on Cloudflare Workers through Hyperdrive with node-postgres or postgres.js: the session manager, the
 * sync client and the database connection wired for a runtime where a connection cannot outlive a request.
 *
 * ```ts
 * import { Hono } from 'hono';
 * import pg from 'pg';
 * import type { SessionEnv } from 'pg-edge-session/hono';
 * import { hyperdriveSessionMiddleware } from 'pg-edge-session/hyperdrive';
 *
 * type Bindings = { HYPERDRIVE: { connectionString: string } };
 * const app = new Hono<{ Bindings: Bindings } & SessionEnv>();
 * app.use(hyperdriveSessionMiddleware((env: Bindings) => ({ hyperdrive: env.HYPERDRIVE, Client: pg.Client })));
 * ```
 *
 * With postgres.js instead: `import postgres from 'postgres'` and `({ hyperdrive: env.HYPERDRIVE, postgres })`.
 *
 * The library imports no driver: the app passes node-postgres' `Client` or postgres.js' `postgres` (its
 * `pg` or `postgres` dependency, bundled by wrangler with the `nodejs_compat` flag; Hyperdrive's own
 * examples use both), so nothing new is installed with pg-edge-session. A postgres.js client is set up as
 * drizzle-orm's postgres-js driver sets up its own (src/drivers/postgres-js.ts).
 *
 * The connection: Workers forbid using an I/O object (a socket) from a request other than the one that
 * opened it, and Hyperdrive keeps the pool to the database itself, so each statement the manager runs gets
 * its own client (`Client` or `postgres(...)`), connected to Hyperdrive in the request (or `waitUntil` work) that runs the statement.
 * The statement settles when its rows arrive; the client's close (`end()`) goes on after it, and the
 * middleware hands the closes to `waitUntil` once the response is ready, so no close is on a request's
 * critical path. A read served by the cache opens no connection. The hot statements go to the client as
 * named prepared statements (see README "Named prepared statements"; postgres.js names them itself); a server
 * that refuses them switches the manager to unnamed ones.
 *
 * Hyperdrive's query cache: every statement the library sends is a write or calls a volatile function, so
 * Hyperdrive never answers one from its cache (test/db/cacheability.test.ts checks each against PostgreSQL's
 * catalog). Edge-safe: Web APIs only.
 */
import type { SQL } from 'drizzle-orm';
import { PgDialect } from 'drizzle-orm/pg-core';
import type { MiddlewareHandler } from 'hono';
import type { SessionConfig } from './core/config.ts';
import { ConfigError } from './core/errors.ts';
import type { SessionManager } from './core/manager.ts';
import type { Attributes } from './core/session.ts';
import { NAMED_STATEMENTS, type PgQueryable, type SqlExecutor } from './db/executor.ts';
import { pendingWork, type StatementClient, statementPerClient } from './drivers/closing.ts';
import { type PostgresJsFactory, postgresJsClient } from './drivers/postgres-js.ts';
import { workersSessionMiddleware, workersSessions } from './drivers/workers-entry.ts';
import type { SessionEnv, SessionMiddlewareOptions } from './hono.ts';
import type { SyncClient, SyncClientOptions } from './sync/client.ts';

/** What the library uses of a Hyperdrive binding (`env.HYPERDRIVE`). */
export interface HyperdriveLike {
  readonly connectionString: string;
}

/** What the library uses of a node-postgres `Client`. */
export interface PgClientLike {
  connect(): Promise<unknown>;
  query(config: { text: string; values: unknown[]; name?: string }): Promise<{ rows: unknown[] }>;
  end(): Promise<unknown>;
  on(event: 'error', listener: (error: Error) => void): unknown;
}

/** node-postgres' `Client` (`import pg from 'pg'; pg.Client`), or a class with the same constructor. */
export type PgClientConstructor = new (config: { connectionString: string; application_name?: string }) => PgClientLike;

export type { PostgresJsClientOptions, PostgresJsFactory, PostgresJsSqlLike } from './drivers/postgres-js.ts';

/** Options of `hyperdriveSessions()`. */
export interface HyperdriveSessionsOptions {
  /** The Hyperdrive binding (`env.HYPERDRIVE`), or a connection string. Required. */
  hyperdrive: HyperdriveLike | string;
  /**
   * node-postgres' `Client` class (`pg.Client`): the library opens one per statement with it. Required
   * unless `postgres` is given (exactly one of the two).
   */
  Client?: PgClientConstructor | undefined;
  /**
   * postgres.js' default export (`import postgres from 'postgres'`): the library calls it once per
   * statement (`max: 1, fetch_types: false`). Instead of `Client`.
   */
  postgres?: PostgresJsFactory | undefined;
  /** The `SessionManager`'s options (`schemaName`, `tablePrefix`, `maxStaleness`, ...). Default `{}`. */
  config?: SessionConfig | undefined;
  /**
   * The sync host: `{ durableObject: env.SESSION_SYNC }` or `{ workerUrl, secret }`, and any other
   * `SyncClientOptions` (`mode` defaults to `'poll'`). Omit it to run without one (cached sessions are then
   * trusted for `maxStaleness` after they were read).
   */
  sync?: SyncClientOptions | undefined;
  /** `application_name` of the connections. Default `'pg-edge-session'`. */
  applicationName?: string | undefined;
}

/** What `hyperdriveSessionMiddleware`'s function returns: `hyperdriveSessions` options plus the middleware's own. */
export interface HyperdriveSessionMiddlewareOptions<A extends Attributes = Attributes>
  extends HyperdriveSessionsOptions,
    Omit<SessionMiddlewareOptions<A>, 'manager' | 'sync'> {}

/** The executor `hyperdriveSessions()` builds: a node-postgres or postgres.js client per statement. */
export interface HyperdriveExecutor extends SqlExecutor {
  readonly $client: PgQueryable;
  /**
   * Settles when the clients of the statements under way now are closed (and those their completion
   * starts). The middleware hands it to `waitUntil` after each response.
   */
  closed(): Promise<void>;
}

/** What `hyperdriveSessions()` returns: keep it for the isolate's life (the middleware does). */
export interface HyperdriveSessions<A extends Attributes = Attributes> {
  manager: SessionManager<A>;
  /** The sync client, when `sync` was given. */
  sync: SyncClient | undefined;
  db: HyperdriveExecutor;
}

/** Made at first use: nothing of drizzle runs while the module loads (test/system/module-evaluation.test.ts). */
let dialect: PgDialect | undefined;
function pgDialect(): PgDialect {
  if (dialect === undefined) dialect = new PgDialect();
  return dialect;
}

/**
 * An executor that runs each statement on its own node-postgres or postgres.js client connected to
 * Hyperdrive; the statement settles when its rows arrive, the close goes on after it (await `closed()` in
 * `waitUntil`).
 */
export function hyperdriveExecutor(
  options: Pick<HyperdriveSessionsOptions, 'hyperdrive' | 'Client' | 'postgres' | 'applicationName'>,
): HyperdriveExecutor {
  if (options === null || typeof options !== 'object') throw new ConfigError('options', 'expected an object');
  const { hyperdrive, Client, postgres } = options;
  const connectionString = typeof hyperdrive === 'string' ? hyperdrive : hyperdrive?.connectionString;
  if (typeof connectionString !== 'string' || connectionString === '') {
    throw new ConfigError('hyperdrive', 'expected the Hyperdrive binding (env.HYPERDRIVE) or a PostgreSQL connection string');
  }
  if (postgres !== undefined && Client !== undefined) throw new ConfigError('postgres', 'expected Client or postgres, not both');
  if (postgres !== undefined && typeof postgres !== 'function')
    throw new ConfigError('postgres', "expected postgres.js' default export (import postgres from 'postgres')");
  if (postgres === undefined && typeof Client !== 'function')
    throw new ConfigError('Client', "expected node-postgres' Client class (import pg from 'pg'; pg.Client)");
  const applicationName = options.applicationName ?? 'pg-edge-session';
  /** Statements under way and clients still closing. */
  const work = pendingWork();
  const run = statementPerClient(
    postgres === undefined
      ? nodePostgresClient(Client as PgClientConstructor, connectionString, applicationName)
      : postgresJsClient(postgres, connectionString, applicationName),
    work.track,
  );
  const track = work.track;

  const $client: PgQueryable & { [NAMED_STATEMENTS]: true } = {
    [NAMED_STATEMENTS]: true,
    query: (config) => track(run(config)),
  };
  return {
    $client,
    execute(query: SQL) {
      const { sql, params } = pgDialect().sqlToQuery(query);
      return track(run({ text: sql, values: params }));
    },
    closed: work.settled,
  };
}

/** Opens a new node-postgres client for one statement; it connects when the statement is sent. */
function nodePostgresClient(Client: PgClientConstructor, connectionString: string, applicationName: string): () => StatementClient {
  return () => {
    const client = new Client({ connectionString, application_name: applicationName });
    // A dropped connection also emits 'error'; the statement's promise carries it to the caller.
    client.on('error', () => {});
    return {
      async query(config) {
        await client.connect();
        return await client.query(config);
      },
      end: () => client.end(),
    };
  };
}

/**
 * The manager, the sync client and the executor for one isolate (build them on the first request, as
 * `hyperdriveSessionMiddleware` does). Throws a `ConfigError` naming the option when one is invalid.
 */
export function hyperdriveSessions<A extends Attributes = Attributes>(options: HyperdriveSessionsOptions): HyperdriveSessions<A> {
  return workersSessions<A, HyperdriveSessionsOptions, HyperdriveExecutor>(options, hyperdriveExecutor);
}

/**
 * `sessionMiddleware` through Hyperdrive in one call. `init` receives the bindings (`c.env`) on the first
 * request and returns the options; what it builds is kept for the isolate's life. After each response the
 * clients' closes go to `waitUntil`. An invalid option throws a `ConfigError` from that first request.
 */
// biome-ignore lint/suspicious/noExplicitAny: the bindings type is the app's
export function hyperdriveSessionMiddleware<A extends Attributes = Attributes, B extends object = any>(
  init: (env: B) => HyperdriveSessionMiddlewareOptions<A>,
): MiddlewareHandler<SessionEnv<A> & { Bindings: B }> {
  // The executor has no request(): every request's session runs on the isolate's manager.
  const own = { hyperdrive: true, Client: true, postgres: true, config: true, sync: true, applicationName: true } as const;
  return workersSessionMiddleware<A, HyperdriveSessionsOptions, B>(init, own, hyperdriveSessions<A>);
}
