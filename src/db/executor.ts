import { type SQL, sql } from 'drizzle-orm';

/**
 * What the library needs of a Drizzle database: `execute(sql)`. Every Drizzle PostgreSQL database has it
 * (node-postgres, neon-serverless, neon-http, postgres-js, pglite), so the user picks the driver.
 */
export interface SqlExecutor {
  execute(query: SQL): PromiseLike<unknown>;
  /**
   * The driver's client, as Drizzle exposes it. When it is a node-postgres or Neon serverless Pool or
   * Client, the hot statements go to it directly as named prepared statements (see `Statement`).
   */
  readonly $client?: unknown;
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

/**
 * A statement the library runs often, written once with `$1..$n` placeholders. Through node-postgres or
 * Neon's Pool/Client it runs as a named prepared statement (parsed and planned once per connection, then
 * only bound and executed); through any other driver it is sent with `db.execute` like every other query.
 */
export interface Statement {
  /** Derived from the text, so one name never stands for two texts (a pool may serve several schemas). */
  readonly name: string;
  readonly text: string;
  /** The text split at its placeholders, and the parameter index each placeholder takes. */
  readonly parts: readonly string[];
  readonly order: readonly number[];
}

export function statement(text: string): Statement {
  const parts: string[] = [];
  const order: number[] = [];
  let last = 0;
  for (const m of text.matchAll(/\$(\d+)/g)) {
    parts.push(text.slice(last, m.index));
    order.push(Number(m[1]) - 1);
    last = m.index + m[0].length;
  }
  parts.push(text.slice(last));
  return { name: `pg_edge_session_${fnv1a(text, 0x811c9dc5)}${fnv1a(text, 0x050c5d1f)}`, text, parts, order };
}

/** The statement as a Drizzle query (for `db.execute`): the same text and parameters. */
export function toSql(st: Statement, values: readonly unknown[]): SQL {
  const chunks: SQL[] = [];
  for (let i = 0; i < st.parts.length; i++) {
    chunks.push(sql.raw(st.parts[i] as string));
    if (i < st.order.length) chunks.push(sql`${values[st.order[i] as number]}`);
  }
  return sql.join(chunks);
}

/** 32-bit FNV-1a of the text's UTF-16 units, as 8 hex digits. */
function fnv1a(s: string, seed: number): string {
  let h = seed;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return (h >>> 0).toString(16).padStart(8, '0');
}

/** What the library uses of a node-postgres or Neon serverless Pool/Client (both speak `{ name, text, values }`). */
export interface PgQueryable {
  query(config: { name: string; text: string; values: unknown[] }): Promise<{ rows: unknown[] }>;
}

/**
 * Marks an executor's own `$client` that takes `{ name, text, values }` like node-postgres (the Hyperdrive
 * executor's, src/hyperdrive.ts, which opens a node-postgres client per statement).
 */
export const NAMED_STATEMENTS: unique symbol = Symbol.for('pg-edge-session.named-statements');

/**
 * The Drizzle database's own client (`db.$client`) when it is a node-postgres or Neon serverless Pool or
 * Client (or marked NAMED_STATEMENTS); undefined for every other driver (neon-http and postgres-js clients
 * are functions, PGlite has neither mark), which then keep going through `db.execute`.
 */
export function pgQueryableOf(db: SqlExecutor): PgQueryable | undefined {
  const c = (db as { $client?: unknown }).$client;
  if (c === null || typeof c !== 'object') return undefined;
  if (typeof (c as { query?: unknown }).query !== 'function') return undefined;
  if (NAMED_STATEMENTS in c) return c as unknown as PgQueryable;
  // pg-pool's Pool (and Neon's, built on it) has totalCount; pg's Client (and Neon's) connectionParameters.
  return 'totalCount' in c || 'connectionParameters' in c ? (c as unknown as PgQueryable) : undefined;
}
