// The sync host's connections, as the core sees them: one dedicated client for LISTEN and change reads,
// an executor for touch flushes and the feed's database answers, and a client checked out for cleanup
// (it holds a session-level advisory lock). The Node worker backs them with a node-postgres or Neon
// Pool; the Durable Object with Neon connections over the runtime's WebSocket (`src/drivers/neon.ts`).

import { ConfigError } from '../core/errors.ts';
import type { SqlExecutor } from '../db/executor.ts';
import type { NeonConnectionSettings } from '../drivers/neon.ts';

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
 * Neon's driver, one connection per use (`createNeonHostDb` in `src/drivers/neon.ts`). For runtimes whose
 * WebSocket is a Web API (workerd: the Durable Object host). `@neondatabase/serverless` is an optional peer,
 * so it is loaded when the host first connects, not when this module is imported: without it installed,
 * that first connect fails with a `ConfigError` saying so.
 */
export function neonHostDb(options: NeonHostDbOptions): HostDb {
  if (typeof options?.databaseUrl !== 'string' || options.databaseUrl === '') {
    throw new ConfigError('databaseUrl', 'expected a PostgreSQL connection string (the direct endpoint)');
  }
  let loading: Promise<HostDb> | undefined;
  const load = () =>
    (loading ??= import('../drivers/neon.ts').then(
      (m) => m.createNeonHostDb(options),
      (err: unknown) => {
        const e = err as { code?: unknown; message?: unknown } | null;
        if (e?.code !== 'ERR_MODULE_NOT_FOUND' || !String(e.message).includes('@neondatabase/serverless')) throw err;
        throw new ConfigError('neonHostDb', 'needs the optional peer @neondatabase/serverless: npm install @neondatabase/serverless');
      },
    ));
  // The listener's client is asked for before anything connects: it takes its handlers now and hands them
  // to the driver's client on connect().
  const clients = new WeakMap<ListenClient, () => ListenClient>();
  return {
    newListenClient() {
      let real: ListenClient | undefined;
      const handlers: [string, (arg: never) => void][] = [];
      const notConnected = () => Promise.reject(new Error('the listen client is not connected'));
      const client: ListenClient = {
        connect: async () => {
          real = (await load()).newListenClient();
          for (const [event, fn] of handlers) real.on(event as 'end', fn as () => void);
          return real.connect();
        },
        query: (text) => real?.query(text) ?? notConnected(),
        on(event: string, fn: (arg: never) => void) {
          if (real === undefined) handlers.push([event, fn]);
          else real.on(event as 'end', fn as () => void);
          return client;
        },
        end: async () => real?.end(),
      };
      clients.set(client, () => real ?? client);
      return client;
    },
    overClient: (c) => ({ execute: async (query) => (await load()).overClient(clients.get(c)?.() ?? c).execute(query) }),
    pool: { execute: async (query) => (await load()).pool.execute(query) },
    checkout: async () => (await load()).checkout(),
    end: async () => {},
  };
}
