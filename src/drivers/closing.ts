/**
 * Closes off a request's critical path, for the executors that open a connection per statement on Workers
 * (`pg-edge-session/neon`, `pg-edge-session/hyperdrive`): a statement settles when its rows arrive, its
 * connection's close goes on after it, and the middleware hands `closed()` to `waitUntil` once the response
 * is ready. Edge-safe: no I/O of its own.
 */
import type { MiddlewareHandler } from 'hono';
import type { SessionManager } from '../core/manager.ts';
import type { Attributes } from '../core/session.ts';
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

/** What a driver's middleware builds on its first request: the session middleware and its executor's `closed`. */
export interface BuiltSessions<A extends Attributes> {
  manager: SessionManager<A>;
  sync: SyncClient | undefined;
  db: { closed(): Promise<void> };
}

/**
 * A driver's middleware (`neonSessionMiddleware`, `hyperdriveSessionMiddleware`): `build` runs on the first
 * request with the bindings and makes the sessions and the session middleware, kept for the isolate's life;
 * after each request the executor's closes go to `waitUntil`.
 */
// biome-ignore lint/suspicious/noExplicitAny: the bindings type is the app's
export function closingSessionMiddleware<A extends Attributes, B extends object = any>(
  build: (env: B) => { sessions: BuiltSessions<A>; middleware: (sessions: BuiltSessions<A>) => MiddlewareHandler<SessionEnv<A>> },
): MiddlewareHandler<SessionEnv<A> & { Bindings: B }> {
  let built: { middleware: MiddlewareHandler<SessionEnv<A>>; closed: () => Promise<void> } | undefined;
  return async function sessionsOnWorkers(c, next) {
    if (built === undefined) {
      const { sessions, middleware } = build(c.env);
      built = { middleware: middleware(sessions), closed: sessions.db.closed };
    }
    try {
      // biome-ignore lint/suspicious/noExplicitAny: the same context, with the app's bindings
      return await built.middleware(c as any, next);
    } finally {
      waitUntilClosed(c, built.closed);
    }
  };
}
