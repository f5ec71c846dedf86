/**
 * The sync host's connections on Neon's driver. Loads Neon's driver: `neonHostDb` (`./host-db.ts`) imports
 * this module at its first connect; the Durable Object imports it directly.
 */
import type { Client } from '@neondatabase/serverless';
import { drizzle } from 'drizzle-orm/neon-serverless';
import { type HostDb, LISTENER_APPLICATION_NAME, type ListenClient } from '../../host/db.ts';
import { neonClient } from './client.ts';
import { neonExecutor } from './executor.ts';
import type { NeonHostDbOptions } from './host-db.ts';

/**
 * The sync host's connections on Neon's driver (`neonHostDb` of `src/host/db.ts` loads this lazily; the
 * Durable Object calls it directly): the LISTEN client stays open while the host is awake; every flush
 * statement and every feed read from the record opens its own connection and closes it before it settles
 * (no pool that keeps idle connections, so an idle host holds none); a cleanup run holds one for its
 * advisory lock.
 */
export function createNeonHostDb(options: NeonHostDbOptions): HostDb {
  const settings = options.settings ?? {};
  return {
    newListenClient: () => neonClient(options.databaseUrl, LISTENER_APPLICATION_NAME, settings) as unknown as ListenClient,
    overClient: (c) => drizzle(c as unknown as Client),
    pool: neonExecutor({
      databaseUrl: options.databaseUrl,
      applicationName: 'pg-edge-session-sync',
      neonConfig: settings,
      close: 'before',
    }),
    checkout: async () => {
      const c = neonClient(options.databaseUrl, 'pg-edge-session-cleanup', settings);
      c.on('error', () => {}); // a dropped connection also rejects the statement in flight
      await c.connect();
      return { db: drizzle(c), release: () => void c.end().catch(() => {}) };
    },
    end: async () => {},
  };
}
