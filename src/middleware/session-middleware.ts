/**
 * The Hono wiring of the session: `sessionMiddleware` checks its options once (options.ts), refuses
 * cross-origin unsafe requests (csrf.ts), gives each request a `RequestSession` (request-session.ts) over
 * the session cookie (cookies.ts) as `c.var.session`, and after the handler saves it, writes its cookie and
 * hands the work that can wait (touches, new-device notices) to `waitUntil`. The package entry is
 * `src/hono.ts`, whose header shows the use and the costs.
 */
import type { Context, ExecutionContext, MiddlewareHandler } from 'hono';
import { createMiddleware } from 'hono/factory';
import type { SessionManager } from '../core/manager.ts';
import type { Attributes } from '../core/session.ts';
import { honoCookieJar } from './cookies.ts';
import { csrfRefusal } from './csrf.ts';
import { type ResolvedOptions, resolveOptions, type SessionMiddlewareOptions } from './options.ts';
import { RequestSession } from './request-session.ts';
import type { NewDeviceEvent, SessionHandle } from './session-handle.ts';

/** Context variables set by the middleware. Merge into your own `Variables` if you have others. */
export interface SessionVariables<A extends Attributes = Attributes> {
  session: SessionHandle<A>;
}

/** Hono `Env` for an app (or a route group) using the middleware: `new Hono<SessionEnv<Attrs>>()`. */
export interface SessionEnv<A extends Attributes = Attributes> {
  Variables: SessionVariables<A>;
}

/** Runs work after the response: kept alive by `waitUntil` where the runtime has it, detached otherwise. */
function afterResponse(c: Context, work: () => unknown, onError: (error: unknown, c: Context) => void): void {
  const done = Promise.resolve()
    .then(work)
    .catch((error: unknown) => {
      try {
        onError(error, c);
      } catch {
        // An error reporter that throws must not become an unhandled rejection.
      }
    });
  let ctx: ExecutionContext | undefined;
  try {
    // Hono's getter throws when the runtime gave no execution context (Node, Bun, app.request()).
    ctx = c.executionCtx;
  } catch {
    ctx = undefined;
  }
  ctx?.waitUntil(done);
}

/** The sync client's catch-up before a request's first read, or undefined without a sync client. */
function beforeRead<A extends Attributes>(c: Context, o: ResolvedOptions<A>): (() => Promise<void>) | undefined {
  const sync = o.sync;
  if (sync === undefined) return undefined;
  return async () => {
    const due = sync.beforeRead();
    if (due.promise === undefined) return;
    // Errors are reported through onError/onBackgroundError; a failed sync only means misses.
    if (due.mustAwait) await due.promise.catch(() => {});
    else afterResponse(c, () => due.promise, o.onBackgroundError);
  };
}

/**
 * Creates the session middleware. Options are validated here, once: a bad one throws a `ConfigError`
 * whose `option` names it (`'manager'`, `'cookie.domain'`, ...).
 */
export function sessionMiddleware<A extends Attributes = Attributes>(
  options: SessionMiddlewareOptions<A>,
): MiddlewareHandler<SessionEnv<A>> {
  return boundSessionMiddleware(options, () => undefined);
}

/**
 * @internal `sessionMiddleware` whose request sessions run on `managerOf(c)` when it gives one: the same
 * manager with the request's own connection (src/drivers/closing.ts). Work after the response (touch
 * flushes) stays on `options.manager`.
 */
export function boundSessionMiddleware<A extends Attributes = Attributes>(
  options: SessionMiddlewareOptions<A>,
  managerOf: (c: Context) => SessionManager<A> | undefined,
): MiddlewareHandler<SessionEnv<A>> {
  const o = resolveOptions(options);
  const { manager, touch, sync, csrf, onBackgroundError, onNewDevice } = o;
  const clock = manager.config.clock;
  // Without a sync client the manager writes its own touches: the middleware hands a due flush to waitUntil
  // (Workers, whose timers do not outlive a request) or lets it run in the background (Node), after the
  // response, never before it.
  const flushesTouches = sync === undefined && touch === 'manager';
  if (flushesTouches) manager._flushedAfterResponses();

  /** The work after the response is decided: touches, flushes and new-device notices. */
  const after = (c: Context, handle: RequestSession<A>, newDevices: readonly NewDeviceEvent[]): void => {
    const loaded = handle.loadedSession();
    if (typeof touch === 'function' && loaded !== null) afterResponse(c, () => touch(loaded, c), onBackgroundError);
    const push = sync?.pushTouchesIfDue();
    if (push !== undefined) afterResponse(c, () => push, onBackgroundError);
    const flush = flushesTouches ? manager.flushTouchesIfDue() : undefined;
    if (flush !== undefined) afterResponse(c, () => flush, onBackgroundError);
    if (onNewDevice !== undefined) for (const e of newDevices) afterResponse(c, () => onNewDevice(e, c), onBackgroundError);
  };

  return createMiddleware<SessionEnv<A>>(async function session(c, next) {
    // Before anything else: a refused request reads no cookie, runs no query and sets nothing.
    if (csrf !== undefined && !(await csrf(c))) throw csrfRefusal();
    // New-device sign-ins of this request, handed to onNewDevice once the response is decided.
    const newDevices: NewDeviceEvent[] = [];
    const handle = new RequestSession<A>({
      manager: managerOf(c) ?? manager,
      cookie: honoCookieJar(c, o.cookie, clock),
      touch: touch === 'manager',
      beforeRead: beforeRead(c, o),
      device: () => ({ userAgent: c.req.header('user-agent'), ip: o.clientIp(c), location: o.clientLocation(c) }),
      onNewDevice: onNewDevice === undefined ? undefined : (event) => newDevices.push(event),
    });
    c.set('session', handle);
    let failed = true;
    try {
      await next();
      // Hono turns a handler's throw into an error response before next() returns; c.error tells.
      failed = c.error !== undefined;
    } finally {
      try {
        // Attribute changes of a failed request are dropped; login/rotate/destroy are already committed,
        // so their cookie is sent either way.
        if (!failed) await handle.saveAfterHandler();
      } finally {
        // No more login/rotate/destroy; the cookie is written.
        handle.close();
        after(c, handle, newDevices);
      }
    }
  });
}
