// The one PostgreSQL of a run, node-postgres pools through Drizzle, a statement-counting executor, and a
// schema per section.
import type { SQL } from 'drizzle-orm';
import { drizzle } from 'drizzle-orm/node-postgres';
import { PgDialect } from 'drizzle-orm/pg-core';
import pg from 'pg';
import { type EmbeddedDatabase, startEmbeddedPostgres } from '../../harness/embedded-db.ts';
import { type PgQueryable, pgQueryableOf, type SqlExecutor, type TransactionalDatabase } from '../../src/db/executor.ts';
import { migrate } from '../../src/migrate.ts';

export interface Database {
  url: string;
  /** Where it came from: DATABASE_URL, or an embedded PostgreSQL started for this run. */
  source: 'DATABASE_URL' | 'embedded';
  version: string;
  stop(): Promise<void>;
}

export async function openDatabase(): Promise<Database> {
  let embedded: EmbeddedDatabase | undefined;
  let url = process.env.DATABASE_URL;
  if (!url) {
    embedded = await startEmbeddedPostgres();
    url = embedded.url;
  }
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  const version = String((await c.query<{ v: string }>("SELECT current_setting('server_version') AS v")).rows[0]?.v);
  await c.end();
  return { url, source: embedded ? 'embedded' : 'DATABASE_URL', version, stop: async () => embedded?.stop() };
}

export interface BenchPool {
  pool: pg.Pool;
  /** Drizzle over the pool (drizzle-orm/node-postgres), what SessionManager and the floors use. */
  db: TransactionalDatabase;
  close(): Promise<void>;
}

/** A pg.Pool of exactly `max` connections, all opened now so no measurement pays for a connect. */
export async function openPool(url: string, max: number): Promise<BenchPool> {
  const pool = new pg.Pool({ connectionString: url, max, idleTimeoutMillis: 0 });
  pool.on('error', () => {});
  const clients = await Promise.all(Array.from({ length: max }, () => pool.connect()));
  for (const c of clients) c.release();
  return { pool, db: drizzle(pool) as unknown as TransactionalDatabase, close: () => pool.end() };
}

const dialect = new PgDialect();
const WRITE = /\b(INSERT|UPDATE|DELETE)\b/i;

/**
 * Wraps a Drizzle database's `execute`: counts statements, optionally tells writes from reads (by the
 * SQL text) and times each statement. The wrapper is what the SessionManager gets.
 */
export class CountingExecutor implements SqlExecutor {
  statements = 0;
  writes = 0;
  /** Duration (ms) of each statement, when timing is on. */
  durations: number[] = [];
  /** The last statement sent (to replay exactly what the library sends). */
  last: SQL | undefined;
  readonly #inner: SqlExecutor;
  readonly #classify: boolean;
  readonly #time: boolean;

  /** The inner database's pg client, counted and timed the same way (the library sends its hot statements there). */
  readonly $client: PgQueryable | undefined;
  /** The last statement sent to `$client` (to replay exactly what the library sends). */
  lastPrepared: { name: string; text: string; values: unknown[] } | undefined;

  constructor(inner: SqlExecutor, options: { classify?: boolean; time?: boolean } = {}) {
    this.#inner = inner;
    this.#classify = options.classify === true;
    this.#time = options.time === true;
    const client = pgQueryableOf(inner);
    this.$client =
      client === undefined
        ? undefined
        : Object.assign(Object.create(client) as PgQueryable, {
            query: (config: { name: string; text: string; values: unknown[] }) => {
              this.lastPrepared = config;
              return this.#track(config.text, () => client.query(config));
            },
          });
  }

  execute(query: SQL): PromiseLike<unknown> {
    this.last = query;
    return this.#track(this.#classify ? dialect.sqlToQuery(query).sql : '', () => this.#inner.execute(query));
  }

  #track<T>(text: string, run: () => PromiseLike<T>): Promise<T> {
    this.statements++;
    if (this.#classify && WRITE.test(text)) this.writes++;
    if (!this.#time) return Promise.resolve(run());
    const t0 = performance.now();
    return Promise.resolve(run()).then((r) => {
      this.durations.push(performance.now() - t0);
      return r;
    });
  }

  reset(): void {
    this.statements = 0;
    this.writes = 0;
    this.durations = [];
  }
}

/** `bench_<section>_<pid>`: one schema per section, so nothing a section leaves behind meets another. */
export function schemaName(section: string): string {
  return `bench_${section}_${process.pid}`.toLowerCase();
}

/** Creates the section's schema with the library's tables (migrate()); returns its name. */
export async function createSchema(admin: pg.Pool, db: TransactionalDatabase, section: string): Promise<string> {
  const schema = schemaName(section);
  await dropSchema(admin, schema);
  await migrate(db, { schemaName: schema });
  return schema;
}

export async function dropSchema(admin: pg.Pool, schema: string): Promise<void> {
  await admin.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
}
