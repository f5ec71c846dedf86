// The sync host's connections, as the core sees them: one dedicated client for LISTEN and change reads,
// an executor for touch flushes and the feed's database answers, and a client checked out for cleanup
// (it holds a session-level advisory lock). The Node worker backs them with a node-postgres or Neon
// Pool; the Durable Object with Neon connections over the runtime's WebSocket (`neonHostDb`, in
// `src/drivers/neon/host-db.ts`).

import type { SqlExecutor } from '../db/executor.ts';

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
