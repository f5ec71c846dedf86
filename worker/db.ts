// The worker's connections: one dedicated client for LISTEN and change reads, and a small pool for
// touch flushes and cleanup. node-postgres over TCP, or Neon's driver over WebSocket.
import { Client as NeonClient, Pool as NeonPool, neonConfig } from '@neondatabase/serverless';
import { drizzle as drizzleNeon } from 'drizzle-orm/neon-serverless';
import { drizzle as drizzlePg } from 'drizzle-orm/node-postgres';
import pg from 'pg';
import ws from 'ws';
import type { TransactionalDatabase } from '../src/db.ts';
import type { ResolvedWorkerOptions } from './config.ts';

/** application_name of the LISTEN connection (find it in pg_stat_activity). */
export const LISTENER_APPLICATION_NAME = 'pg-edge-session-listener';

/** What the worker needs of a client: pg.Client and Neon's Client both fit. */
export interface ListenClient {
  connect(): Promise<unknown>;
  query(text: string): Promise<unknown>;
  on(event: 'notification', fn: (msg: { channel: string }) => void): unknown;
  on(event: 'error', fn: (err: Error) => void): unknown;
  on(event: 'end', fn: () => void): unknown;
  end(): Promise<void>;
}

export interface PooledClient {
  release(destroy?: boolean): void;
}

export interface WorkerDb {
  newListenClient(): ListenClient;
  /** Drizzle database over a client (for reads on the listen connection). */
  overClient(client: ListenClient): TransactionalDatabase;
  /** Drizzle database over the pool. */
  pool: TransactionalDatabase;
  /** A client checked out of the pool (cleanup holds its advisory lock on one connection). */
  checkout(): Promise<{ db: TransactionalDatabase; release(destroy?: boolean): void }>;
  end(): Promise<void>;
}

/**
 * A checked-out client has no 'error' listener (the pool removes its idle one until release), so a connection
 * that breaks while checked out would be an unhandled 'error' event and kill the process. The query in flight
 * still rejects (the caller then releases the client with destroy).
 */
const ignoreError = () => {};

export function connectWorkerDb(o: ResolvedWorkerOptions): WorkerDb {
  // Idle pool connections close within the listener's idle timeout, so an idle worker holds none.
  const idleTimeoutMillis = o.idleTimeout > 0 ? Math.min(10_000, o.idleTimeout) : 10_000;
  if (o.driver === 'neon') {
    neonConfig.webSocketConstructor = ws;
    if (o.neonWsProxy) {
      const proxy = o.neonWsProxy;
      neonConfig.wsProxy = (host, port) => `${proxy}?address=${host}:${port}`;
      neonConfig.useSecureWebSocket = false;
      neonConfig.pipelineTLS = false;
      neonConfig.pipelineConnect = false;
    }
    neonConfig.coalesceWrites = false;
    const pool = new NeonPool({ connectionString: o.databaseUrl, max: 4, idleTimeoutMillis });
    pool.on('error', () => {});
    return {
      newListenClient: () =>
        new NeonClient({
          connectionString: o.databaseUrl,
          application_name: LISTENER_APPLICATION_NAME,
        } as never) as unknown as ListenClient,
      overClient: (c) => drizzleNeon(c as unknown as NeonClient) as unknown as TransactionalDatabase,
      pool: drizzleNeon(pool) as unknown as TransactionalDatabase,
      checkout: async () => {
        const c = await pool.connect();
        c.on('error', ignoreError);
        return {
          db: drizzleNeon(c as unknown as NeonClient) as unknown as TransactionalDatabase,
          release: (d) => {
            c.removeListener('error', ignoreError);
            c.release(d);
          },
        };
      },
      end: () => pool.end(),
    };
  }
  const pool = new pg.Pool({ connectionString: o.databaseUrl, max: 4, idleTimeoutMillis });
  pool.on('error', () => {});
  return {
    newListenClient: () =>
      new pg.Client({
        connectionString: o.databaseUrl,
        keepAlive: true,
        application_name: LISTENER_APPLICATION_NAME,
      }) as unknown as ListenClient,
    overClient: (c) => drizzlePg(c as unknown as pg.Client) as unknown as TransactionalDatabase,
    pool: drizzlePg(pool) as unknown as TransactionalDatabase,
    checkout: async () => {
      const c = await pool.connect();
      c.on('error', ignoreError);
      return {
        db: drizzlePg(c) as unknown as TransactionalDatabase,
        release: (d) => {
          c.removeListener('error', ignoreError);
          c.release(d);
        },
      };
    },
    end: () => pool.end(),
  };
}
