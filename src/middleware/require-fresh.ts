import type { MiddlewareHandler } from 'hono';
import { createMiddleware } from 'hono/factory';
import { HTTPException } from 'hono/http-exception';
import { ConfigError, ReauthenticationRequiredError, SessionError } from '../core/errors.ts';
import type { Attributes } from '../core/session.ts';
import type { SessionEnv } from './session-middleware.ts';

export interface RequireFreshOptions {
  /** Longest time, in ms, since the user last proved who they are (signed in or `reauthenticated()`). */
  maxAge: number;
}

/**
 * Step-up: lets a request through only if its session's user proved who they are at most `maxAge` ms ago
 * (signed in, or `c.var.session.reauthenticated()` after the app re-checked a password or passkey). Mount
 * it after `sessionMiddleware` on the routes that need it (changing the password or e-mail, deleting the
 * account, a payment). Otherwise it throws, before the handler runs, a 401 `HTTPException` whose `cause` is
 * a `ReauthenticationRequiredError` (code `REAUTHENTICATION_REQUIRED`, `authenticatedAt`, `maxAge`) and whose
 * response is JSON, `{ code, authenticatedAt, maxAge }`, `Cache-Control: no-store`; shape it in `app.onError`
 * (e.g. redirect to a password prompt). A request without a session gets the same 401 with `authenticatedAt:
 * null` (signing in is the re-authentication it needs). No I/O beyond the session's own load (a cache hit
 * costs none).
 */
export function requireFresh<A extends Attributes = Attributes>(options: RequireFreshOptions): MiddlewareHandler<SessionEnv<A>> {
  if (options === null || typeof options !== 'object') throw new ConfigError('options', 'expected { maxAge }');
  const maxAge = options.maxAge;
  if (typeof maxAge !== 'number' || !Number.isFinite(maxAge) || maxAge < 0) {
    throw new ConfigError('maxAge', `expected a finite number of milliseconds ≥ 0, got ${String(maxAge)}`);
  }
  return createMiddleware<SessionEnv<A>>(async function requireFresh(c, next) {
    const handle = c.get('session');
    if (handle === undefined) {
      throw new SessionError('INVALID_ARGUMENT', 'requireFresh() runs after sessionMiddleware(): c.var.session is not set');
    }
    const session = await handle.get();
    if (session?.authenticatedWithin(maxAge)) return next();
    const error =
      session === null
        ? new ReauthenticationRequiredError(null, null, maxAge)
        : new ReauthenticationRequiredError(session.id, session.authenticatedAt, maxAge);
    const body = { code: error.code, authenticatedAt: error.authenticatedAt?.toISOString() ?? null, maxAge };
    throw new HTTPException(401, {
      message: error.message,
      cause: error,
      res: new Response(JSON.stringify(body), {
        status: 401,
        headers: { 'content-type': 'application/json; charset=UTF-8', 'cache-control': 'no-store' },
      }),
    });
  });
}
