// The Node worker's connections (the host core's HostDb): one dedicated client for LISTEN and change reads,
// and a small pool for touch flushes, the feed's database answers and cleanup. node-postgres over TCP, or
// Neon's driver over WebSocket (the `ws` package: Node 20 has no global WebSocket).
import { Client as NeonClient, Pool as NeonPool, neonConfig } from '@neondatabase/serverless';
import { drizzle as drizzleNeon } from 'drizzle-orm/neon-serverless';
import { drizzle as drizzlePg } from 'drizzle-orm/node-postgres';
import pg from 'pg';
import type { TransactionalDatabase } from 'pg-edge-session';
import { type HostDb, LISTENER_APPLICATION_NAME, type ListenClient, neonSettings } from 'pg-edge-session/host';
import ws from 'ws';
import type { ResolvedWorkerOptions } from './config.ts';

export { LISTENER_APPLICATION_NAME };

export interface WorkerDb extends HostDb {
  /** Drizzle database over the pool (with transactions: `--migrate` runs on it). */
  pool: TransactionalDatabase;
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
    // The pool's connections take the driver's global settings: the library's (a local proxy), with Node
    // 20's missing WebSocket supplied, and writes sent at once (no coalescing delay).
    Object.assign(neonConfig, neonSettings(o.neonWsProxy || undefined, { webSocketConstructor: ws, coalesceWrites: false }));
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
