/**
 * `neonHostDb` of `pg-edge-session/host`: the sync host's connections on Neon's driver, loaded at the first
 * connect. This module loads nothing of Neon's driver, so the host entry imports in an app without the
 * optional peer `@neondatabase/serverless`.
 */
import { ConfigError } from '../../core/errors.ts';
import type { HostDb, ListenClient } from '../../host/db.ts';
import type { NeonConnectionSettings } from './settings.ts';

export interface NeonHostDbOptions {
  /** The DIRECT endpoint (LISTEN needs a session; the `-pooler` endpoint cannot LISTEN). */
  databaseUrl: string;
  /** Per-connection settings of Neon's driver (a local proxy, a WebSocket constructor). */
  settings?: NeonConnectionSettings | undefined;
}

/**
 * Neon's driver, one connection per use (`createNeonHostDb` in `./host-connections.ts`). For runtimes whose
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
    (loading ??= import('./host-connections.ts').then(
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
