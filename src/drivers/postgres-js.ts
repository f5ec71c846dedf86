/**
 * One statement on its own postgres.js client (`postgres` 3.4.5 or later, the driver Hyperdrive's
 * documentation recommends), for `pg-edge-session/hyperdrive` (src/hyperdrive.ts). The library imports no
 * driver: the app passes postgres.js' default export and the library calls it once per statement.
 *
 * The client is set up as drizzle-orm's postgres-js driver sets up its own (drizzle-orm/postgres-js/driver.js,
 * `construct`): json and jsonb parameters go as the text the library gives (postgres.js would JSON-encode a
 * string again), times in and out as text; so the statements see exactly what they see under
 * `drizzle(postgres(...))`. `fetch_types: false` as Cloudflare's example: no type query before the first
 * statement (the library's array parameters are array literals, which need no array type).
 *
 * Round trips: postgres.js sends a statement with parameters that is not yet prepared on its connection as
 * Parse + Describe, waits for the parameter types, then sends Bind + Execute (postgres/src/connection.js,
 * `describeFirst`), prepared or not; on a new client per statement that is two flights after the start-up.
 * Edge-safe: no I/O of its own.
 */
import type { StatementClient } from './closing.ts';

/** What the library uses of postgres.js' `sql` (what `postgres(url, options)` returns). */
export interface PostgresJsSqlLike {
  unsafe(text: string, values: never[], options: { prepare: boolean }): PromiseLike<readonly unknown[]>;
  end(): Promise<unknown>;
  readonly options: {
    serializers: Record<number, (value: never) => unknown>;
    parsers: Record<number, (value: never) => unknown>;
  };
}

/** The options the library passes to postgres.js. */
export interface PostgresJsClientOptions {
  max: number;
  fetch_types: boolean;
  prepare: boolean;
  onnotice: (notice: unknown) => void;
  connection: { application_name: string };
}

/** postgres.js' default export (`import postgres from 'postgres'`), or a function with its signature. */
export type PostgresJsFactory = (url: string, options: PostgresJsClientOptions) => PostgresJsSqlLike;

/** The type oids drizzle's postgres-js driver reads and writes as text (time types, some of their arrays, numeric[]). */
const TEXT_TIME_TYPES = [1184, 1082, 1083, 1114, 1182, 1185, 1115, 1231];
const JSON_TYPES = [114, 3802];
const asIs = (value: never): unknown => value;

/**
 * Opens a new postgres.js client for one statement (src/drivers/closing.ts, `statementPerClient`, runs it and
 * hands its `end()` on). `config.name` (the hot statements) prepares the statement (postgres.js names it
 * itself); the others go unnamed, as through node-postgres.
 */
export function postgresJsClient(postgres: PostgresJsFactory, connectionString: string, applicationName: string): () => StatementClient {
  return () => {
    const sql = postgres(connectionString, {
      max: 1,
      fetch_types: false,
      prepare: true,
      onnotice: () => {},
      connection: { application_name: applicationName },
    });
    for (const type of TEXT_TIME_TYPES) {
      sql.options.parsers[type] = asIs;
      sql.options.serializers[type] = asIs;
    }
    for (const type of JSON_TYPES) sql.options.serializers[type] = asIs;
    return {
      async query(config) {
        const rows = await sql.unsafe(config.text, config.values as never[], { prepare: config.name !== undefined });
        return { rows: rows as unknown[] };
      },
      end: () => sql.end(),
    };
  };
}
