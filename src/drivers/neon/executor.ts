/**
 * The executor of `pg-edge-session/neon`: one Neon connection per statement, or one per request through
 * `request()` (the module comment of `src/neon.ts` says when each is used). Loads Neon's driver.
 */
import type { Client } from '@neondatabase/serverless';
import type { SQL } from 'drizzle-orm';
import { drizzle } from 'drizzle-orm/neon-serverless';
import { ConfigError, findErrorCode } from '../../core/errors.ts';
import type { SqlExecutor } from '../../db/executor.ts';
import { type PendingWork, pendingWork, type RequestConnection } from '../closing.ts';
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

/** The executor `neonExecutor()` builds: a Neon connection per statement, or per request (`request()`). */
export interface NeonExecutor extends SqlExecutor {
  /**
   * Settles when the connections of the statements under way now are closed (and those their completion
   * starts). `neonSessionMiddleware` hands it to `waitUntil` after each response.
   */
  closed(): Promise<void>;
  /**
   * One request's connection: opened at its first statement (a request served by the cache opens none),
   * shared by the request's statements (one at a time, in order), closed once `release()` was called and
   * they settled; a statement after `release()` gets a connection of its own. Use it only from the request
   * that made it (Workers forbid another request's I/O on it); `closed()` covers its close.
   */
  request(): RequestConnection;
}

/**
 * An executor that runs each statement on its own Neon connection, opened by the request that runs it;
 * the statement settles when its rows arrive and the connection's close goes on after it, off the
 * request's path (the module comment of `pg-edge-session/neon`, `src/neon.ts`, says why). `request()`
 * gives a connection that one request's statements share.
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
  /** Clients whose connection ended: their end() would wait for an 'end' that came already. */
  const ended = new WeakSet<Client>();
  /** A connected client; `onBroken` hears of a connection that failed or ended after its connect. */
  async function connect(onBroken: () => void = () => {}): Promise<Client> {
    const client = neonClient(connectionString, applicationName, settings);
    // A dropped connection emits 'error' or 'end'; the statement's promise carries the error to the caller.
    client.on('error', onBroken);
    client.on('end', () => {
      ended.add(client);
      onBroken();
    });
    try {
      await client.connect();
    } catch (e) {
      throw connectFailure(e, connectionString, options.wsProxy);
    }
    return client;
  }
  /**
   * Ending sends Terminate and waits for the socket's close: a round trip no caller needs to wait for. A
   * connection that broke meanwhile settles it with its 'end'.
   */
  const end = (client: Client): Promise<unknown> => {
    if (ended.has(client)) return Promise.resolve();
    const closedBySocket = new Promise((resolve) => client.once('end', resolve));
    return work.track(Promise.race([client.end().catch(() => {}), closedBySocket]));
  };
  async function run(query: SQL) {
    const client = await connect();
    let closing: Promise<unknown> | undefined;
    try {
      return await drizzle(client).execute(query);
    } finally {
      closing = end(client);
      if (closeBefore) await closing;
    }
  }
  return {
    execute: (query: SQL) => work.track(run(query)),
    closed: work.settled,
    request: () => requestConnection(connect, run, end, work),
  };
}

/** `NeonExecutor.request()`: see there. */
function requestConnection(
  connect: (onBroken: () => void) => Promise<Client>,
  runAlone: (query: SQL) => Promise<unknown>,
  end: (client: Client) => Promise<unknown>,
  work: PendingWork,
): RequestConnection {
  /** The connection, once a statement asked for it; dropped when it fails, so the next statement opens another. */
  let conn: Promise<Client> | undefined;
  /** The last statement sent on `conn`: a client answers in order, so when it settles all before it have. */
  let last: Promise<unknown> = Promise.resolve();
  let released = false;
  /** Broken (or never made): later statements get a new connection; this one is ended. */
  const drop = (broken: Promise<Client>) => {
    if (conn === broken) conn = undefined;
    broken.then(end, () => {});
  };
  const open = (): Promise<Client> => {
    if (conn !== undefined) return conn;
    const opening: Promise<Client> = connect(() => drop(opening));
    conn = opening;
    opening.catch(() => drop(opening));
    return opening;
  };
  const runShared = async (query: SQL) => {
    const client = open();
    try {
      return await drizzle(await client).execute(query);
    } catch (e) {
      // An error without a SQLSTATE, or of class 08 (connection) or 57 (operator intervention), may have
      // ended the connection before the client says so: not used again.
      if (!/^(?!08|57)[0-9A-Z]{5}$/.test(findErrorCode(e) ?? '')) drop(client);
      throw e;
    }
  };
  return {
    execute(query: SQL) {
      if (released) return work.track(runAlone(query));
      const p = work.track(runShared(query));
      last = p.catch(() => {});
      return p;
    },
    release() {
      if (released) return;
      released = true;
      const opened = conn;
      if (opened === undefined) return;
      work.track(last.then(() => opened).then(end, () => {}));
    },
  };
}
