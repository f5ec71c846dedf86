/**
 * Closes off a request's critical path, for the executors that open connections on Workers
 * (`pg-edge-session/neon`, `pg-edge-session/hyperdrive`): a statement settles when its rows arrive, its
 * connection's close goes on after it, and the middleware hands `closed()` to `waitUntil` once the response
 * is ready. An executor that can give one request a connection of its own (`request()`) gets one per
 * request: the request's session runs on the manager bound to it (`SessionManager._on`), and the
 * connection is released when the middleware is done, also when the handler threw. Edge-safe: no I/O of
 * its own.
 */
import type { Context, MiddlewareHandler } from 'hono';
import type { SessionManager } from '../core/manager.ts';
import type { Attributes } from '../core/session.ts';
import type { SqlExecutor } from '../db/executor.ts';
import type { SessionEnv } from '../hono.ts';
import type { SyncClient } from '../sync/client.ts';

/** The work an executor has under way: statements, and connections still closing. */
export interface PendingWork {
  /** Keeps `p` in the set until it settles; returns it. */
  track<T>(p: Promise<T>): Promise<T>;
  /** How many promises are under way now. */
  readonly size: number;
  /** Settles when everything under way now has settled (and what it started meanwhile, a few rounds at most). */
  settled(): Promise<void>;
}

export function pendingWork(): PendingWork {
  const busy = new Set<Promise<unknown>>();
  return {
    track<T>(p: Promise<T>): Promise<T> {
      busy.add(p);
      const done = () => {
        busy.delete(p);
      };
      p.then(done, done);
      return p;
    },
    get size() {
      return busy.size;
    },
    async settled() {
      // Work that ends now may start more (a statement's close): wait until none is left, a few rounds at most.
      for (let round = 0; round < 4 && busy.size > 0; round++) {
        await Promise.allSettled([...busy]);
        await new Promise((r) => setTimeout(r, 0));
      }
    },
  };
}

/** A statement as node-postgres takes it: `name` (the hot statements) prepares it. */
export interface StatementConfig {
  text: string;
  values: unknown[];
  name?: string;
}

/** A client opened for one statement (node-postgres' or postgres.js', adapted). */
export interface StatementClient {
  query(config: StatementConfig): Promise<{ rows: unknown[] }>;
  end(): Promise<unknown>;
}

/**
 * A function that runs each statement on a client of its own (`open()`): it settles with the rows; the
 * client's close (`end()`, its failure ignored) is handed to `track` after it.
 */
export function statementPerClient(
  open: () => StatementClient,
  track: (closing: Promise<unknown>) => unknown,
): (config: StatementConfig) => Promise<{ rows: unknown[] }> {
  return async (config) => {
    const client = open();
    try {
      return await client.query(config);
    } finally {
      track(client.end().catch(() => {}));
    }
  };
}

/**
 * Hands `closed` to the request's `waitUntil` when the runtime gave the context one (Hono's `executionCtx`
 * getter throws where there is none, e.g. `app.request()` in a test; then the closes just run on).
 */
export function waitUntilClosed(c: { readonly executionCtx: { waitUntil(p: Promise<unknown>): void } }, closed: () => Promise<void>): void {
  let ctx: { waitUntil(p: Promise<unknown>): void } | undefined;
  try {
    ctx = c.executionCtx;
  } catch {
    ctx = undefined;
  }
  ctx?.waitUntil(closed());
}

/** A connection one request's statements share; `release()` when the request is done (see NeonExecutor.request). */
export interface RequestConnection extends SqlExecutor {
  release(): void;
}

/** What a driver's middleware builds on its first request: the session middleware and its executor's `closed`. */
export interface BuiltSessions<A extends Attributes> {
  manager: SessionManager<A>;
  sync: SyncClient | undefined;
  db: { closed(): Promise<void>; request?(): RequestConnection };
}

/** The manager bound to a request's connection, by the request's context (set for the middleware's length). */
type ManagerOf<A extends Attributes> = (c: Context) => SessionManager<A> | undefined;

/**
 * A driver's middleware (`neonSessionMiddleware`, `hyperdriveSessionMiddleware`): `build` runs on the first
 * request with the bindings and makes the sessions and the session middleware, kept for the isolate's life;
 * the session middleware asks `managerOf(c)` for the request's manager (bound to the request's connection
 * when the executor has `request()`); after each request the connection is released and the executor's
 * closes go to `waitUntil`.
 */
// biome-ignore lint/suspicious/noExplicitAny: the bindings type is the app's
export function closingSessionMiddleware<A extends Attributes, B extends object = any>(
  build: (env: B) => {
    sessions: BuiltSessions<A>;
    middleware: (sessions: BuiltSessions<A>, managerOf: ManagerOf<A>) => MiddlewareHandler<SessionEnv<A>>;
  },
): MiddlewareHandler<SessionEnv<A> & { Bindings: B }> {
  let built: { middleware: MiddlewareHandler<SessionEnv<A>>; sessions: BuiltSessions<A> } | undefined;
  const bound = new WeakMap<Context, SessionManager<A>>();
  const managerOf: ManagerOf<A> = (c) => bound.get(c);
  return async function sessionsOnWorkers(c, next) {
    if (built === undefined) {
      const { sessions, middleware } = build(c.env);
      built = { middleware: middleware(sessions, managerOf), sessions };
    }
    const { sessions } = built;
    const connection = sessions.db.request?.();
    if (connection !== undefined) bound.set(c, sessions.manager._on(connection));
    try {
      // biome-ignore lint/suspicious/noExplicitAny: the same context, with the app's bindings
      return await built.middleware(c as any, next);
    } finally {
      // The response is decided: the connection closes once its statements settled, in waitUntil.
      connection?.release();
      bound.delete(c);
      waitUntilClosed(c, sessions.db.closed);
    }
  };
}
