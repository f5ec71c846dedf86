/**
 * Hono session middleware: `c.var.session` is a per-request handle on the session named by the cookie.
 *
 * ```ts
 * import { Hono } from 'hono';
 * import { sessionMiddleware, type SessionEnv } from 'pg-edge-session/hono';
 *
 * type Attrs = { cartId: string; theme: 'light' | 'dark' };
 * const app = new Hono<SessionEnv<Attrs>>();
 * app.use(sessionMiddleware({ manager })); // manager: SessionManager<Attrs>
 *
 * app.post('/login', async (c) => {
 *   await c.var.session.login(userId); // new session, new token, Set-Cookie
 *   return c.redirect('/');
 * });
 * app.post('/theme', async (c) => {
 *   const session = await c.var.session.get(); // loaded on first use only
 *   if (session === null) return c.text('sign in first', 401);
 *   session.set('theme', 'dark'); // saved once, after the handler
 *   return c.text('ok');
 * });
 * ```
 *
 * Costs: a route that never calls `get()` (or an accessor) does no hashing and no query. `get()` costs
 * what `manager.getSession` costs (a cache hit does no I/O, a miss is one SELECT) and runs at most once
 * per request. Attribute changes are written by one `updateSession` after the handler, and not at all
 * when the handler threw. A `Set-Cookie` header is sent only when the session is created, rotated or
 * destroyed, or when the request's cookie names no live session (the cookie is then cleared); such a
 * response also gets `Cache-Control: no-store`, so no shared cache keeps or replays it.
 *
 * Cross-origin requests: unsafe methods (anything but GET, HEAD and cookie-less CORS preflights) from
 * another origin are refused with a 403 before the handler runs and before any session work (see
 * `CsrfOptions`). SameSite=Lax
 * alone does not do it: it lets same-site sibling subdomains through, `sameSite: 'None'` lets everything
 * through, and login CSRF (signing the victim in as the attacker) needs no cookie at all.
 *
 * Several cookies of the session's name in one request (a stale one left with another Path or Domain, or
 * one planted by a sibling subdomain when the prefix is not `__Host-`): see `SessionHandle.get`. A planted
 * or stale duplicate never signs the user out and never puts them in another user's session.
 *
 * Edge-safe: Web APIs and `hono` only.
 *
 * This file only re-exports; the work is in src/middleware/: session-middleware.ts (the Hono wiring),
 * request-session.ts (the per-request session, Hono-free, given a cookie get/set/delete), session-handle.ts
 * (`c.var.session`'s contract), cookies.ts, csrf.ts, options.ts, client-ip.ts and require-fresh.ts.
 */
export type { ClientIpOption } from './middleware/client-ip.ts';
export type { SessionCookieOptions, SessionCookiePrefix } from './middleware/cookies.ts';
export type { CsrfOptions, TrustedOrigins } from './middleware/csrf.ts';
export type { SessionMiddlewareOptions, TouchStrategy } from './middleware/options.ts';
export { type RequireFreshOptions, requireFresh } from './middleware/require-fresh.ts';
export type { NewDeviceEvent, SessionHandle } from './middleware/session-handle.ts';
export { type SessionEnv, type SessionVariables, sessionMiddleware } from './middleware/session-middleware.ts';
