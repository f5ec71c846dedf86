/**
 * The middleware's refusal of cross-origin unsafe requests (CSRF and login CSRF): the `csrf` option, its
 * check (run before the handler and before any session work), and the 403 it throws. See `CsrfOptions`.
 */
import type { Context } from 'hono';
import { HTTPException } from 'hono/http-exception';
import { ConfigError } from '../core/errors.ts';
import { options, show } from '../internal/validate.ts';
import { cookieValues } from './cookies.ts';

/**
 * Origins other than the request's own whose unsafe requests are accepted — the shapes of `hono/csrf`'s
 * `origin` option: one origin, a list, or a function. An origin is `scheme://host[:port]` exactly as a
 * browser sends it in `Origin` (lower case, no default port, no path or trailing slash); the list is
 * checked at construction. No wildcards (`hono/csrf` has none either): `'https://*.example.com'` is a
 * `ConfigError`; use the function form for a pattern. The function is called only for an `Origin` that is present, not `"null"`
 * and not the request's own origin, and trusts it only when it returns `true`; it can look at the
 * context, e.g. `(origin, c) => origin.endsWith('.example.com') && origin.startsWith('https://')`.
 */
export type TrustedOrigins = string | readonly string[] | ((origin: string, c: Context) => boolean | Promise<boolean>);

/**
 * The middleware's refusal of cross-origin unsafe requests (CSRF and login CSRF).
 *
 * A request whose method is not GET or HEAD, and that is not a CORS preflight (OPTIONS with
 * `Access-Control-Request-Method` and no session cookie: browsers never send cookies with one), is
 * refused — whatever its content type — unless:
 * - its `Origin` is the request URL's origin (`new URL(c.req.url).origin`) and its `Sec-Fetch-Site`, if
 *   sent, is `same-origin`; or
 * - its `Origin` is one of `trustedOrigins` (any `Sec-Fetch-Site`: a trusted site is cross-site); or
 * - it has no `Origin` and its `Sec-Fetch-Site` is `same-origin`; or
 * - it has neither header. Browsers send `Origin` with every cross-origin unsafe request (and
 *   `Sec-Fetch-Site` since 2023), so such a request comes from a client that is not a browser (curl, a
 *   server, a webhook): it is not something a web page can make a victim's browser send.
 * `Origin: null` (sandboxed frames, `data:` URLs, cross-origin redirects) is always refused, and so is
 * `Sec-Fetch-Site: same-site`, `cross-site` or `none` without a trusted `Origin`.
 *
 * Refused means: a 403 thrown as an `HTTPException` (so `app.onError` can shape it; `err.getResponse()`
 * is a plain "Forbidden"), before the handler and before any session work — no cookie read, no query,
 * no Set-Cookie, and `c.var.session` is not set.
 *
 * Behind a proxy whose request URL is not the public origin (TLS ended at the proxy, so the URL is
 * `http://`; or another host or port), the app's own browser requests would be refused: list the public
 * origin in `trustedOrigins`. GET and HEAD are never checked: they must not change state.
 *
 * The method checked is the one the handler sees: `hono/method-override` in front of this middleware
 * turns a form POST with `_method=OPTIONS` (or PUT, DELETE...) into a new request of that method, with
 * the POST's headers and cookie, and this middleware checks that request. An OPTIONS that carries the
 * session cookie or is not a preflight is therefore checked like a POST.
 *
 * Why not `hono/csrf` itself: it checks only form content types (a JSON or other body would pass, relying
 * on CORS preflights that a permissive CORS setup gives away), it accepts a request when either header
 * passes (we want every header present to agree), and it refuses requests without either header (we
 * accept them, see above). The option shapes and the 403 are the same.
 */
export interface CsrfOptions {
  /** Cross-origin senders to accept. Default none: only the request's own origin. See `TrustedOrigins`. */
  trustedOrigins?: TrustedOrigins;
}

function originOf(s: string): string | undefined {
  try {
    return new URL(s).origin;
  } catch {
    return undefined;
  }
}

/** True when `s` is an origin exactly as a browser serializes it in `Origin` (and not the opaque "null"). */
function isSerializedOrigin(s: string): boolean {
  return s !== 'null' && originOf(s) === s;
}

/** How to say a wildcard origin with the function form, e.g. for "https://*.example". */
function wildcardHint(pattern: string): string {
  const sub = /^(https?):\/\/\*\.([a-z0-9.-]+(?::\d+)?)$/.exec(pattern);
  const check = sub === null ? '/* your rule */ false' : `origin.startsWith('${sub[1]}://') && origin.endsWith('.${sub[2]}')`;
  return `list each origin, or pass a function, e.g. trustedOrigins: (origin) => ${check}`;
}

const CSRF_KEYS = new Set(['trustedOrigins']);

type TrustedOriginCheck = (origin: string, c: Context) => boolean | Promise<boolean>;

/**
 * The `csrf` option, checked once: a function telling whether a request may go on (true) or must be
 * refused (`csrfRefusal()`), or undefined when the check is off. `cookieName` is the session cookie's full
 * name (a preflight carries no cookie).
 */
export function resolveCsrf(input: unknown, cookieName: string): ((c: Context) => boolean | Promise<boolean>) | undefined {
  if (input === false) return undefined;
  if (input !== undefined && input !== true && (input === null || typeof input !== 'object' || Array.isArray(input))) {
    throw new ConfigError('csrf', `expected true, false or { trustedOrigins }, got ${show(input)}`);
  }
  const o = options('csrf', input === true ? undefined : input, CSRF_KEYS, 'csrf.');
  const t = o.trustedOrigins;
  const trusted: TrustedOriginCheck = t === undefined ? () => false : typeof t === 'function' ? (t as TrustedOriginCheck) : originList(t);

  /**
   * What the origin check lets through: GET and HEAD, and CORS preflights — OPTIONS asking
   * `Access-Control-Request-Method` without the session cookie (browsers send no credentials with a
   * preflight, so hono/cors behind this middleware still answers them). Any other OPTIONS is checked: a
   * method override makes one out of a cross-site form POST, cookie included.
   */
  const unchecked = (c: Context): boolean => {
    const method = c.req.method;
    if (method === 'GET' || method === 'HEAD') return true;
    return (
      method === 'OPTIONS' &&
      c.req.header('access-control-request-method') !== undefined &&
      cookieValues(c.req.raw.headers.get('cookie'), cookieName).length === 0
    );
  };
  const sameOrigin = (c: Context): boolean | Promise<boolean> => {
    const origin = c.req.header('origin');
    const site = c.req.header('sec-fetch-site');
    if (origin === undefined) return site === undefined || site === 'same-origin';
    // Every header present must agree: a browser never pairs its own origin with a cross-site marker.
    if (origin === new URL(c.req.url).origin) return site === undefined || site === 'same-origin';
    // Opaque origin: a sandboxed frame, a data: URL or a cross-origin redirect. Nobody can be trusted as it.
    if (origin === 'null') return false;
    const verdict = trusted(origin, c);
    return typeof verdict === 'boolean' ? verdict : Promise.resolve(verdict).then((v) => v === true);
  };
  return (c) => unchecked(c) || sameOrigin(c);
}

/** `trustedOrigins` as one origin or a list, checked: each exactly as a browser sends it in `Origin`. */
function originList(t: unknown): TrustedOriginCheck {
  const list: unknown[] = Array.isArray(t) ? t : [t];
  for (const origin of list) {
    // hono/csrf compares its origin list literally too: a pattern here would silently never match.
    if (typeof origin === 'string' && origin.includes('*')) {
      throw new ConfigError('csrf.trustedOrigins', `wildcards are not supported, got ${show(origin)}: ${wildcardHint(origin)}`);
    }
    if (typeof origin !== 'string' || !isSerializedOrigin(origin)) {
      const canonical = typeof origin === 'string' ? originOf(origin) : undefined;
      const hint = canonical === undefined || canonical === 'null' ? '' : ` (did you mean ${JSON.stringify(canonical)}?)`;
      throw new ConfigError(
        'csrf.trustedOrigins',
        `expected origins as browsers send them, "scheme://host[:port]" in lower case without path or trailing slash, got ${show(origin)}${hint}`,
      );
    }
  }
  const set = new Set(list as string[]);
  return (origin) => set.has(origin);
}

/** The refusal: a 403 `HTTPException` (so `app.onError` can shape it) whose response is a plain "Forbidden". */
export function csrfRefusal(): HTTPException {
  return new HTTPException(403, {
    message: 'cross-origin request refused by the session middleware (see the csrf option)',
    res: new Response('Forbidden', { status: 403, headers: { 'content-type': 'text/plain; charset=UTF-8' } }),
  });
}
