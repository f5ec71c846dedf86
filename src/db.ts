import type { SQL } from 'drizzle-orm';

/**
 * What the library needs of a Drizzle database: `execute(sql)`. Every Drizzle PostgreSQL database has it
 * (node-postgres, neon-serverless, neon-http, postgres-js, pglite), so the user picks the driver.
 */
export interface SqlExecutor {
  execute(query: SQL): PromiseLike<unknown>;
}

/** A database that can also run interactive transactions (everything but neon-http); `migrate()` needs one. */
export interface TransactionalDatabase extends SqlExecutor {
  transaction<T>(fn: (tx: SqlExecutor) => Promise<T>): Promise<T>;
}

/** Drivers disagree on the result shape: node-postgres/neon return `{ rows }`, postgres-js an array. */
export function rowsOf<T>(result: unknown): T[] {
  if (Array.isArray(result)) return result as T[];
  const rows = (result as { rows?: unknown } | null)?.rows;
  if (Array.isArray(rows)) return rows as T[];
  throw new TypeError('Unexpected result shape from the database driver');
}
