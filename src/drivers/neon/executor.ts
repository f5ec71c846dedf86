/**
 * The executor of `pg-edge-session/neon`: one Neon connection per statement (the module comment of
 * `src/neon.ts` says why). Loads Neon's driver.
 */
import type { SQL } from 'drizzle-orm';
import { drizzle } from 'drizzle-orm/neon-serverless';
import { ConfigError } from '../../core/errors.ts';
import type { SqlExecutor } from '../../db/executor.ts';
import { pendingWork } from '../closing.ts';
import { connectFailure, neonClient } from './client.ts';
import { type NeonConnectionSettings, neonSettings } from './settings.ts';

/** Options of `neonExecutor` (documented on `NeonSessionsOptions` in `src/neon.ts`). */
export interface NeonExecutorOptions {
  databaseUrl: string;
  applicationName?: string | undefined;
  wsProxy?: string | undefined;
  neonConfig?: NeonConnectionSettings | undefined;
  /**
   * `'after'` (default): a statement settles when its rows arrive and its connection closes after it (await
   * `closed()`, in `waitUntil` on Workers). `'before'`: the statement settles only once its connection is
   * closed (the sync host's statements, where no request waits).
   */
  close?: 'after' | 'before' | undefined;
}

/** The executor `neonExecutor()` builds: a Neon connection per statement. */
export interface NeonExecutor extends SqlExecutor {
  /**
   * Settles when the connections of the statements under way now are closed (and those their completion
   * starts). `neonSessionMiddleware` hands it to `waitUntil` after each response.
   */
  closed(): Promise<void>;
}

/**
 * An executor that runs each statement on its own Neon connection, opened by the request that runs it;
 * the statement settles when its rows arrive and the connection's close goes on after it, off the
 * request's path (the module comment of `pg-edge-session/neon`, `src/neon.ts`, says why).
 */
export function neonExecutor(options: NeonExecutorOptions): NeonExecutor {
  if (typeof options?.databaseUrl !== 'string' || options.databaseUrl === '') {
    throw new ConfigError('databaseUrl', 'expected a PostgreSQL connection string (on Neon: the pooled endpoint)');
  }
  const settings = neonSettings(options.wsProxy, options.neonConfig);
  const connectionString = options.databaseUrl;
  const applicationName = options.applicationName ?? 'pg-edge-session';
  const closeBefore = options.close === 'before';
  if (options.close !== undefined && options.close !== 'after' && !closeBefore) {
    throw new ConfigError('close', "expected 'after' or 'before'");
  }
  /** Statements under way and connections still closing. */
  const work = pendingWork();
  async function run(query: SQL) {
    const client = neonClient(connectionString, applicationName, settings);
    // A dropped connection also emits 'error'; the statement's promise carries it to the caller.
    client.on('error', () => {});
    try {
      await client.connect();
    } catch (e) {
      throw connectFailure(e, connectionString, options.wsProxy);
    }
    let closing: Promise<unknown> | undefined;
    try {
      return await drizzle(client).execute(query);
    } finally {
      // Ending sends Terminate and waits for the socket's close: a round trip no caller needs to wait for.
      closing = work.track(client.end().catch(() => {}));
      if (closeBefore) await closing;
    }
  }
  return {
    execute: (query: SQL) => work.track(run(query)),
    closed: work.settled,
  };
}
