/**
 * What the two Workers entries (`pg-edge-session/neon`, src/neon.ts, and `pg-edge-session/hyperdrive`,
 * src/hyperdrive.ts) build alike around their own executor: the manager and the sync client on it
 * (`workersSessions`), and the middleware that builds them on the first request (`workersSessionMiddleware`,
 * over `closingSessionMiddleware`, src/drivers/closing.ts). Edge-safe: no I/O of its own.
 */
import type { MiddlewareHandler } from 'hono';
import type { SessionConfig } from '../core/config.ts';
import { ConfigError } from '../core/errors.ts';
import { SessionManager } from '../core/manager.ts';
import type { Attributes } from '../core/session.ts';
import type { SqlExecutor } from '../db/executor.ts';
import type { SessionEnv, SessionMiddlewareOptions } from '../hono.ts';
import { boundSessionMiddleware } from '../middleware/session-middleware.ts';
import { SyncClient, type SyncClientOptions } from '../sync/client.ts';
import { type BuiltSessions, closingSessionMiddleware } from './closing.ts';

/** The options both entries' `...Sessions()` take beside their connection's own. */
export interface WorkersSessionsOptions {
  config?: SessionConfig | undefined;
  sync?: SyncClientOptions | undefined;
}

/**
 * The manager, the sync client (`mode` defaults to `'poll'`) and the executor `executor(options)` builds.
 * Throws a `ConfigError` naming the option when one is invalid.
 */
export function workersSessions<A extends Attributes, O extends WorkersSessionsOptions, D extends SqlExecutor>(
  options: O,
  executor: (options: O) => D,
): { manager: SessionManager<A>; sync: SyncClient | undefined; db: D } {
  if (options === null || typeof options !== 'object') throw new ConfigError('options', 'expected an object');
  const db = executor(options);
  const manager = new SessionManager<A>(db, options.config ?? {});
  const sync = options.sync === undefined ? undefined : new SyncClient(manager, { mode: 'poll', ...options.sync });
  return { manager, sync, db };
}

/**
 * An entry's middleware: `init` gives the options on the first request; those named in `own` (all of the
 * entry's `...SessionsOptions`, which the type holds) build the sessions through `sessions`, the rest are the
 * session middleware's. The request's session runs on the manager bound to the request's connection when the
 * executor has `request()` (src/drivers/closing.ts).
 */
// biome-ignore lint/suspicious/noExplicitAny: the bindings type is the app's
export function workersSessionMiddleware<A extends Attributes, O extends object, B extends object = any>(
  init: (env: B) => O & Omit<SessionMiddlewareOptions<A>, 'manager' | 'sync'>,
  own: Record<keyof O, true>,
  sessions: (options: O) => BuiltSessions<A>,
): MiddlewareHandler<SessionEnv<A> & { Bindings: B }> {
  if (typeof init !== 'function') throw new ConfigError('init', 'expected a function (env) => options');
  return closingSessionMiddleware<A, B>((env) => {
    // As `const { databaseUrl, ..., ...rest } = init(env)` would: the named ones read as properties (inherited
    // ones too), the rest copied from the own enumerable ones.
    const options: Record<PropertyKey, unknown> = init(env);
    const picked: Record<PropertyKey, unknown> = {};
    for (const key of Object.keys(own)) picked[key] = options[key];
    const rest: Record<PropertyKey, unknown> = {};
    for (const key of Reflect.ownKeys(Object(options)))
      if (!Object.hasOwn(own, key) && Object.prototype.propertyIsEnumerable.call(options, key)) rest[key] = options[key];
    const middlewareOptions = rest as Omit<SessionMiddlewareOptions<A>, 'manager' | 'sync'>;
    return {
      sessions: sessions(picked as O),
      middleware: (s, managerOf) =>
        boundSessionMiddleware<A>({ ...middlewareOptions, manager: s.manager, ...(s.sync ? { sync: s.sync } : {}) }, managerOf),
    };
  });
}
