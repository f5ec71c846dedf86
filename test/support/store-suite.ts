// Shared set-up for store tests: every suite runs once per driver, in its own schema.
import { afterAll, beforeAll } from 'vitest';
import type { SessionConfig } from '../../src/core/config.ts';
import { SessionManager } from '../../src/core/manager.ts';
import type { Attributes } from '../../src/core/session.ts';
import { type PgQueryable, pgQueryableOf, type SqlExecutor } from '../../src/db/executor.ts';
import { migrate } from '../../src/migrate.ts';
import { type Driver, dropSchema, openDb, type TestDb, uniqueSchema } from './db.ts';

/** Wraps a database so tests can count statements (each `execute` is one round trip). */
export function counting(db: SqlExecutor): SqlExecutor & { count: number; reset(): void } {
  const client = pgQueryableOf(db);
  const wrapper = {
    count: 0,
    reset() {
      wrapper.count = 0;
    },
    execute(q: Parameters<SqlExecutor['execute']>[0]) {
      wrapper.count++;
      return db.execute(q);
    },
    // The driver's own client, counted too: the hot statements go to it as named prepared statements.
    $client:
      client === undefined
        ? undefined
        : Object.assign(Object.create(client) as PgQueryable, {
            query(config: Parameters<PgQueryable['query']>[0]) {
              wrapper.count++;
              return client.query(config);
            },
          }),
  };
  return wrapper;
}

export interface StoreFixture {
  t: TestDb;
  schemaName: string;
  /** A manager on a counting database; extra managers share the schema. */
  manager<A extends Attributes = Attributes>(config?: SessionConfig): SessionManager<A> & { db: ReturnType<typeof counting> };
}

export function useStore(driver: Driver, tag: string, options: { max?: number } = {}): StoreFixture {
  const fx = {} as StoreFixture;
  beforeAll(async () => {
    fx.t = await openDb(driver, options);
    fx.schemaName = uniqueSchema(tag);
    await migrate(fx.t.db, { schemaName: fx.schemaName });
    fx.manager = <A extends Attributes>(config: SessionConfig = {}) => {
      const db = counting(fx.t.db);
      const m = new SessionManager<A>(db, { schemaName: fx.schemaName, ...config }) as SessionManager<A> & { db: typeof db };
      m.db = db;
      return m;
    };
  });
  afterAll(async () => {
    if (fx.t) {
      await dropSchema(fx.t.admin, fx.schemaName);
      await fx.t.close();
    }
  });
  return fx;
}
