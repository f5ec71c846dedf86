// The sync host's connections, as the core sees them: one dedicated client for LISTEN and change reads,
// an executor for touch flushes and the feed's database answers, and a client checked out for cleanup
// (it holds a session-level advisory lock). The Node worker backs them with a node-postgres or Neon
// Pool; the Durable Object with Neon connections over the runtime's WebSocket (`neonHostDb` below).
import { Client } from '@neondatabase/serverless';
import { drizzle } from 'drizzle-orm/neon-serverless';
import type { SqlExecutor } from '../db.ts';
import { type NeonConnectionSettings, neonExecutor } from '../neon.ts';

/** application_name of the LISTEN connection (find it in pg_stat_activity). */
export const LISTENER_APPLICATION_NAME = 'pg-edge-session-listener';

/** What the listener needs of a client: pg.Client and Neon's Client both fit. */
export interface ListenClient {
  connect(): Promise<unknown>;
  query(text: string): Promise<unknown>;
  on(event: 'notification', fn: (msg: { channel: string }) => void): unknown;
  on(event: 'error', fn: (err: Error) => void): unknown;
  on(event: 'end', fn: () => void): unknown;
  end(): Promise<void>;
}

export interface HostDb {
  newListenClient(): ListenClient;
  /** Drizzle database over a client (for reads on the listen connection). */
  overClient(client: ListenClient): SqlExecutor;
  /** Touch flushes and the feed's answers from the record. */
  pool: SqlExecutor;
  /** A connection of its own for one cleanup run (it holds the advisory lock); released or destroyed after. */
  checkout(): Promise<{ db: SqlExecutor; release(destroy?: boolean): void }>;
  end(): Promise<void>;
}

export interface NeonHostDbOptions {
  /** The DIRECT endpoint (LISTEN needs a session; the `-pooler` endpoint cannot LISTEN). */
  databaseUrl: string;
  /** Per-connection settings of Neon's driver (a local proxy, a WebSocket constructor). */
  settings?: NeonConnectionSettings | undefined;
}

/**
 * Neon's driver, one connection per use: the LISTEN client stays open while the host is awake; every
 * flush statement and every feed read from the record opens its own connection and closes it before it
 * settles (no pool that keeps idle connections, so an idle host holds none); a cleanup run holds one for
 * its advisory lock. For runtimes whose WebSocket is a Web API (workerd: the Durable Object host).
 */
export function neonHostDb(options: NeonHostDbOptions): HostDb {
  const settings = options.settings ?? {};
  const client = (applicationName: string) => {
    const c = new Client({ connectionString: options.databaseUrl, application_name: applicationName } as never);
    Object.assign((c as unknown as { neonConfig: NeonConnectionSettings }).neonConfig, settings);
    return c;
  };
  return {
    newListenClient: () => client(LISTENER_APPLICATION_NAME) as unknown as ListenClient,
    overClient: (c) => drizzle(c as unknown as Client),
    pool: neonExecutor({ databaseUrl: options.databaseUrl, applicationName: 'pg-edge-session-sync', neonConfig: settings }),
    checkout: async () => {
      const c = client('pg-edge-session-cleanup');
      c.on('error', () => {}); // a dropped connection also rejects the statement in flight
      await c.connect();
      return { db: drizzle(c), release: () => void c.end().catch(() => {}) };
    },
    end: async () => {},
  };
}
