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
 */
import type { Context, ExecutionContext, MiddlewareHandler } from 'hono';
import { deleteCookie, getCookie, setCookie } from 'hono/cookie';
import { createMiddleware } from 'hono/factory';
import { HTTPException } from 'hono/http-exception';
import type { CookieOptions } from 'hono/utils/cookie';
import { type DeviceInfo, prepareDevice } from './core/device.ts';
import { ConfigError, ImpersonationError, InvalidArgumentError, SessionError, SessionNotFoundError } from './core/errors.ts';
import { type CreateSessionOptions, SessionManager, type UpdateSessionOptions } from './core/manager.ts';
import type { Attributes, Session } from './core/session.ts';
import { isWellFormedToken } from './core/token.ts';
import type { SessionEndReason } from './db/store.ts';
import { type ClientIpOption, resolveClientIp, resolveClientLocation } from './middleware/client-ip.ts';
import { SyncClient } from './sync/client.ts';

// ---- public types -------------------------------------------------------------------------------

/** Cookie prefixes (RFC 6265bis): `__Host-` binds the cookie to this exact host over HTTPS. */
export type SessionCookiePrefix = '__Host-' | '__Secure-' | 'none';

/**
 * Attributes of the session cookie. The defaults are the safe production setting:
 * `__Host-session=<token>; Max-Age=<until expiry>; Path=/; HttpOnly; Secure; SameSite=Lax`.
 *
 * Plain-http local development (`http://localhost`): browsers refuse `Secure` cookies from plain http
 * origins other than localhost, and `__Host-`/`__Secure-` cookies require `Secure`. Use
 * `{ secure: false, prefix: 'none' }` there, and only there.
 */
export interface SessionCookieOptions {
  /**
   * Cookie name, without the prefix. Default `'session'` (so the cookie is `__Host-session`). Must be a
   * valid cookie name token and must not start with `__Host-`/`__Secure-` itself (use `prefix`).
   */
  name?: string;
  /**
   * Prepended to `name`. Default `'__Host-'`: the browser then only accepts the cookie with `Secure`,
   * `Path=/` and no `Domain`, so a sibling subdomain or a plain-http page cannot plant or overwrite it
   * (session fixation through a subdomain). `'__Secure-'` only requires `Secure` (allows `domain` and
   * another `path`). `'none'` sends the bare name (needed with `secure: false`).
   */
  prefix?: SessionCookiePrefix;
  /** `HttpOnly`: scripts cannot read the token. Default `true`. */
  httpOnly?: boolean;
  /**
   * `Secure`: the cookie is only sent over HTTPS. Default `true`. `false` is for plain-http local
   * development and requires `prefix: 'none'` (both prefixes require `Secure`).
   */
  secure?: boolean;
  /**
   * `SameSite`. Default `'Lax'`: the browser does not send the cookie with cross-site subrequests and
   * POSTs, but sends it on top-level navigations. This is not CSRF protection by itself: a sibling
   * subdomain is same-site (its POSTs carry the cookie), and `'None'` sends it everywhere. The
   * middleware's origin check (`csrf`, on by default) is what refuses cross-origin unsafe requests.
   * `'None'` requires `secure`.
   */
  sameSite?: 'Strict' | 'Lax' | 'None';
  /** `Path`. Default `'/'`; must be `'/'` with the `__Host-` prefix. */
  path?: string;
  /**
   * `Domain`: share the cookie with subdomains. Default unset (host-only cookie, the safer choice).
   * Forbidden with the `__Host-` prefix.
   */
  domain?: string;
  /**
   * Lifetime of the cookie in the browser.
   * - `'expiry'` (default): `Max-Age` = time left until the session's absolute expiry (`expiresAt`),
   *   capped at 400 days (browsers cap it there). Idle expiry is enforced by the server.
   * - `'browser-session'`: no `Max-Age`; the browser drops the cookie when it ends its session. The
   *   server-side expiry applies as well.
   */
  maxAge?: 'expiry' | 'browser-session';
}

/**
 * What happens when a request reads a live session (`get()` or an accessor):
 * - `'manager'` (default): `manager.getSession` records the access in memory (`touch: true`); the
 *   touches are written in batches: by the sync host with `sync`, else by the manager itself every
 *   lastAccessUpdateInterval (its own timer on Node and Bun; after a response, through `waitUntil`, here).
 * - `'none'`: no last access is recorded (idle expiry then counts from creation and the last update).
 * - a function: called with the session after the response (through `executionCtx.waitUntil` when the
 *   runtime has one), instead of the manager's recording. Errors go to `onBackgroundError`.
 */
export type TouchStrategy<A extends Attributes = Attributes> =
  | 'manager'
  | 'none'
  | ((session: Session<A>, c: Context) => void | Promise<void>);

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

export interface SessionMiddlewareOptions<A extends Attributes = Attributes> {
  /** The isolate's (or process's) `SessionManager`. Required. */
  manager: SessionManager<A>;
  /** Session cookie attributes; see `SessionCookieOptions` for each default. */
  cookie?: SessionCookieOptions;
  /** How reads record a last access. Default `'manager'`; see `TouchStrategy`. */
  touch?: TouchStrategy<A>;
  /**
   * The isolate's client of the sync worker (`new SyncClient(manager, { workerUrl, secret })`). With it,
   * reads keep the cache fresh from the worker's feed (polling in `waitUntil`, inline only when the
   * cache is older than maxStaleness) and touches go to the worker after the response. Without it the
   * manager works alone: cached entries are trusted for maxStaleness after they were read, and once the
   * oldest recorded touch is lastAccessUpdateInterval old the middleware writes the touches after the
   * response (`manager.flushTouchesIfDue()`, through `waitUntil` where the runtime has it).
   */
  sync?: SyncClient;
  /**
   * Refusal of cross-origin unsafe requests; see `CsrfOptions`. Default `true` (on, own origin only).
   * `{ trustedOrigins }` also accepts those origins. `false` turns the check off: do it only when
   * something else in front of the app refuses cross-origin requests (e.g. `hono/csrf` with your own
   * rules), since SameSite=Lax alone lets sibling subdomains and login CSRF through.
   */
  csrf?: boolean | CsrfOptions;
  /**
   * Where `login()` takes the client IP it records with the session (shown by `listUserSessions`).
   * Default `'platform'`: the address the runtime saw, never a header a client could set. Behind your own
   * proxies, list them: `{ trustedProxies: [...] }`. See `ClientIpOption`. An address is normalized (an
   * IPv6 zone like `%eth0` dropped); a value that is not an address (`CF-Connecting-IP: garbage`) never
   * fails the sign-in: the session gets no IP, and the first such value is reported to
   * `onBackgroundError`.
   */
  clientIp?: ClientIpOption;
  /**
   * Receives errors of work done after the response (a touch callback), and, once per middleware, an
   * `InvalidArgumentError` (argument `'clientIp'`) for the first client address that was not an IP
   * address (see `clientIp`). Default: `console.error`.
   * Errors of the request's own work (loading, saving, login, rotate, destroy) are not sent here: they
   * are thrown, and Hono's `app.onError` sees them (branch on `error.code`).
   */
  onBackgroundError?: (error: unknown, c: Context) => void;
  /**
   * Called after the response (through `waitUntil` where the runtime has it) when `login()` signed the
   * user in from a device new for them (see `CreateSessionOptions.checkNewDevice`, which every `login()`
   * then sets): e.g. to e-mail "New sign-in: Firefox on Linux, 203.0.113.x". Its errors go to
   * `onBackgroundError`. The check is part of the create statement (no extra round trip).
   */
  onNewDevice?: (event: NewDeviceEvent, c: Context) => unknown;
}

/** A sign-in from a device new for the user (`onNewDevice`). */
export interface NewDeviceEvent {
  userId: string;
  sessionId: string;
  /** The device label ("Firefox on Linux"), or null. */
  device: string | null;
  userAgent: string | null;
  ip: string | null;
  at: Date;
}

/** `c.var.session`: the request's session, loaded on first use. */
export interface SessionHandle<A extends Attributes = Attributes> {
  /**
   * The session named by the request's cookie, or null (no cookie, malformed cookie, unknown or expired
   * session). Loaded on the first call and cached for the request; after `login`/`rotate`/`destroy` it
   * returns the new state. Change it with `session.set`/`delete`: the changes are saved after the handler.
   *
   * Several cookies of the session's name (browsers send every cookie whose Domain and Path match, so a
   * stale one or one planted by a sibling subdomain can come along with the user's own):
   * - values that are not well-formed tokens are ignored (no query); at most 3 distinct well-formed
   *   values are looked up, one `getSession` each — more than 3 is a crafted header: no lookup, null;
   * - exactly one names a live session: that session, and no Set-Cookie;
   * - several name live sessions of one user: the most recently created one (then the smallest id);
   * - live sessions of different users: null for this request and no Set-Cookie. Choosing one could put
   *   the user in the attacker's session; clearing would delete the user's own cookie (a clearing
   *   Set-Cookie hits the cookie with this middleware's Path and Domain, not the planted one);
   * - none live: null, and the cookie is cleared as for a single dead cookie.
   * Every live session looked up is touched (its holder is active; a `touch` function gets only the one
   * used). A single cookie (the usual case) costs what it always did: one header scan, one `getSession`.
   */
  get(): Promise<Session<A> | null>;
  /** The session if `get()` already ran (no I/O): `undefined` when it has not been loaded. */
  peek(): Session<A> | null | undefined;
  /** Shorthand for `(await get())?.userId ?? null`. */
  userId(): Promise<string | null>;
  /** Shorthand for `(await get())?.get(key)`: undefined without a session. */
  getAttribute<K extends keyof A & string>(key: K): Promise<A[K] | undefined>;
  /**
   * Signs in: creates a session for `userId` and sets the cookie. Against session fixation, a new token
   * is always issued and the session the request's cookie named (if any) is deleted first — with several
   * cookies of the name, every session they name (the first 3 distinct well-formed values), so no planted
   * or stale duplicate survives to make the next request ambiguous; copy what you want to keep
   * (`(await get())?.toObject()`) into `attributes`. Records the request's device with the session: its
   * User-Agent and the client IP from the `clientIp` option (`options.device` overrides either or adds a
   * `label`). With `options.impersonatedBy` an administrator opens the session as the user (see
   * `CreateSessionOptions`); from an impersonation session that is an ImpersonationError, nothing deleted or
   * written. Returns the new session.
   */
  login(userId: string, attributes?: Partial<A>, options?: CreateSessionOptions): Promise<Session<A>>;
  /**
   * Whether this request's `login()` came from a device new for the user (checked when the middleware has
   * `onNewDevice`, or the login passed `checkNewDevice`); undefined when no such login ran in this request.
   */
  newDevice(): boolean | undefined;
  /**
   * Why the session this browser had ended, when the request's cookie names no live session any more and
   * the manager's `audit` option is on: `{ reason, endedAt }` (`'revoked'` from another device, `'expired'`,
   * `'idle_expired'`, `'logout'` elsewhere...), or null. Found from the dead cookie's own token (each
   * audited end records a check of its token's hash: `manager.sessionEndOfToken`), so only the browser that
   * held the session is told; one query per well-formed cookie value (usually one, at most 3), only when
   * called on such a request. Lets a sign-in page say "This session was revoked from another device"
   * instead of nothing.
   */
  ended(): Promise<{ reason: SessionEndReason; endedAt: Date } | null>;
  /**
   * Records that the user just proved who they are again (call it after re-checking a password, a passkey
   * or a second factor): the session's `authenticatedAt` becomes now, in one statement (see
   * `manager.reauthenticate`), so `requireFresh` lets it through. Unsaved attribute changes stay pending.
   * Returns the session, or null when there is none (or it ended meanwhile: the cookie is then cleared).
   * Consider `rotate()` too: a new token after a privilege change.
   */
  reauthenticated(): Promise<Session<A> | null>;
  /**
   * Issues a new token for the current session (same data, id and expiry) and sets the cookie; the old
   * token stops working at once (do it on privilege changes). Changes made in this request and not yet
   * saved are kept and saved after the handler. Returns the session, or null when there is none (the
   * cookie is then cleared).
   */
  rotate(): Promise<Session<A> | null>;
  /**
   * Signs out: deletes the session and clears the cookie. With several cookies of the name, deletes every
   * session they name (up to 3, as `login`), so none of them keeps the user signed in. Returns whether a
   * session was deleted.
   */
  destroy(): Promise<boolean>;
  /**
   * Saves pending attribute changes now (one statement) instead of after the handler, e.g. to catch a
   * `VersionConflictError` with `{ checkVersion: true }` or before streaming a long response. A no-op
   * without a session or without changes. When it throws, the handler has seen the failure and decides:
   * the changes are then not saved after the handler either.
   */
  save(options?: UpdateSessionOptions): Promise<void>;
}

/** Context variables set by the middleware. Merge into your own `Variables` if you have others. */
export interface SessionVariables<A extends Attributes = Attributes> {
  session: SessionHandle<A>;
}

/** Hono `Env` for an app (or a route group) using the middleware: `new Hono<SessionEnv<Attrs>>()`. */
export interface SessionEnv<A extends Attributes = Attributes> {
  Variables: SessionVariables<A>;
}

// ---- options ------------------------------------------------------------------------------------

/** Browsers cap Max-Age at 400 days (RFC 6265bis); hono's serializer refuses more. */
const MAX_COOKIE_AGE_SECONDS = 400 * 24 * 3600;
const COOKIE_NAME_RE = /^[\w!#$%&'*.^`|~+-]+$/;
/** Printable ASCII but ";": what an attribute value may hold without starting another attribute. */
const COOKIE_ATTRIBUTE_RE = /^[ -:<-~]*$/;
const OPTION_KEYS = new Set(['manager', 'cookie', 'touch', 'onBackgroundError', 'sync', 'csrf', 'clientIp', 'onNewDevice']);
const CSRF_KEYS = new Set(['trustedOrigins']);
/**
 * At most this many distinct well-formed session cookie values are looked up in one request: a crafted
 * Cookie header with dozens of values costs no more than this many `getSession` calls.
 */
const MAX_COOKIE_CANDIDATES = 3;
const COOKIE_KEYS = new Set(['name', 'prefix', 'httpOnly', 'secure', 'sameSite', 'path', 'domain', 'maxAge']);

interface ResolvedCookie {
  /** Full name, prefix included. */
  name: string;
  attributes: CookieOptions;
  persistent: boolean;
}

function show(v: unknown): string {
  if (typeof v === 'string') return JSON.stringify(v);
  if (v === null || typeof v !== 'object') return String(v);
  return Object.prototype.toString.call(v);
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

function bool(option: string, v: unknown, fallback: boolean): boolean {
  if (v === undefined) return fallback;
  if (typeof v !== 'boolean') throw new ConfigError(option, `expected a boolean, got ${show(v)}`);
  return v;
}

function resolveCookie(input: unknown): ResolvedCookie {
  if (input !== undefined && !isPlainObject(input)) throw new ConfigError('cookie', `expected an object, got ${show(input)}`);
  const o = (input ?? {}) as Record<string, unknown>;
  for (const k of Object.keys(o)) if (!COOKIE_KEYS.has(k)) throw new ConfigError(`cookie.${k}`, 'unknown option');

  const name = o.name ?? 'session';
  if (typeof name !== 'string' || !COOKIE_NAME_RE.test(name)) {
    throw new ConfigError('cookie.name', `expected a cookie name (letters, digits and !#$%&'*.^\`|~+-_), got ${show(name)}`);
  }
  if (/^__(host|secure)-/i.test(name)) throw new ConfigError('cookie.name', 'give the name without "__Host-"/"__Secure-" and set `prefix`');

  const prefix = o.prefix ?? '__Host-';
  if (prefix !== '__Host-' && prefix !== '__Secure-' && prefix !== 'none') {
    throw new ConfigError('cookie.prefix', `expected "__Host-", "__Secure-" or "none", got ${show(prefix)}`);
  }
  const secure = bool('cookie.secure', o.secure, true);
  const httpOnly = bool('cookie.httpOnly', o.httpOnly, true);

  const sameSiteInput = o.sameSite ?? 'Lax';
  const sameSite =
    typeof sameSiteInput === 'string' ? ({ strict: 'Strict', lax: 'Lax', none: 'None' } as const)[sameSiteInput.toLowerCase()] : undefined;
  if (sameSite === undefined) throw new ConfigError('cookie.sameSite', `expected "Strict", "Lax" or "None", got ${show(sameSiteInput)}`);

  const path = o.path ?? '/';
  if (typeof path !== 'string' || !path.startsWith('/') || !COOKIE_ATTRIBUTE_RE.test(path)) {
    throw new ConfigError('cookie.path', `expected a path starting with "/" (no ";" or control characters), got ${show(path)}`);
  }
  const domain = o.domain;
  if (domain !== undefined && (typeof domain !== 'string' || domain === '' || !COOKIE_ATTRIBUTE_RE.test(domain) || /\s/.test(domain))) {
    throw new ConfigError('cookie.domain', `expected a domain name, got ${show(domain)}`);
  }
  const maxAge = o.maxAge ?? 'expiry';
  if (maxAge !== 'expiry' && maxAge !== 'browser-session') {
    throw new ConfigError('cookie.maxAge', `expected "expiry" or "browser-session", got ${show(maxAge)}`);
  }

  if (prefix !== 'none' && !secure) {
    throw new ConfigError(
      'cookie.secure',
      `the "${prefix}" prefix requires Secure; for plain-http local development set both secure: false and prefix: "none"`,
    );
  }
  if (prefix === '__Host-' && domain !== undefined) {
    throw new ConfigError(
      'cookie.domain',
      'not allowed with the "__Host-" prefix (host-only by definition); use prefix "__Secure-" to share the cookie',
    );
  }
  if (prefix === '__Host-' && path !== '/') throw new ConfigError('cookie.path', 'must be "/" with the "__Host-" prefix');
  if (sameSite === 'None' && !secure)
    throw new ConfigError('cookie.sameSite', '"None" requires secure: true (browsers reject it otherwise)');

  return {
    name: prefix === 'none' ? name : `${prefix}${name}`,
    attributes: { path, secure, httpOnly, sameSite, ...(domain === undefined ? {} : { domain: domain as string }) },
    persistent: maxAge === 'expiry',
  };
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

type OriginCheck = (c: Context) => boolean | Promise<boolean>;

/** How to say a wildcard origin with the function form, e.g. for "https://*.example". */
function wildcardHint(pattern: string): string {
  const sub = /^(https?):\/\/\*\.([a-z0-9.-]+(?::\d+)?)$/.exec(pattern);
  const check = sub === null ? '/* your rule */ false' : `origin.startsWith('${sub[1]}://') && origin.endsWith('.${sub[2]}')`;
  return `list each origin, or pass a function, e.g. trustedOrigins: (origin) => ${check}`;
}

/** The CSRF check of the options, or undefined when it is off. Validated here, once. */
function resolveCsrf(input: unknown): OriginCheck | undefined {
  if (input === false) return undefined;
  if (input !== undefined && input !== true && !isPlainObject(input)) {
    throw new ConfigError('csrf', `expected true, false or { trustedOrigins }, got ${show(input)}`);
  }
  const o = (isPlainObject(input) ? input : {}) as Record<string, unknown>;
  for (const k of Object.keys(o)) if (!CSRF_KEYS.has(k)) throw new ConfigError(`csrf.${k}`, 'unknown option');

  const t = o.trustedOrigins;
  let trusted: (origin: string, c: Context) => boolean | Promise<boolean>;
  if (t === undefined) trusted = () => false;
  else if (typeof t === 'function') trusted = t as (origin: string, c: Context) => boolean | Promise<boolean>;
  else {
    const list: unknown[] = typeof t === 'string' ? [t] : Array.isArray(t) ? t : [t];
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
    trusted = (origin) => set.has(origin);
  }

  return (c) => {
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
}

/**
 * Every value of cookie `name` in a Cookie header, in header order. hono's `getCookie` returns only the
 * first, and a browser sends every cookie whose Domain and Path match the request, so one name can come
 * several times. Values are returned raw (no unquoting, no percent-decoding): a token this middleware
 * issued has neither, so such a value is simply not a well-formed token.
 */
function cookieValues(header: string | null, name: string): string[] {
  const values: string[] = [];
  if (header === null || !header.includes(name)) return values;
  for (const pair of header.split(';')) {
    const eq = pair.indexOf('=');
    if (eq !== -1 && pair.slice(0, eq).trim() === name) values.push(pair.slice(eq + 1).trim());
  }
  return values;
}

/** The distinct well-formed values of duplicate cookies: at most MAX_COOKIE_CANDIDATES, and whether more were sent. */
function cookieCandidates(values: readonly string[]): { tokens: string[]; overflow: boolean } {
  const tokens = [...new Set(values.filter((v) => isWellFormedToken(v)))];
  return { tokens: tokens.slice(0, MAX_COOKIE_CANDIDATES), overflow: tokens.length > MAX_COOKIE_CANDIDATES };
}

/** Deterministic choice between live sessions of one user: the most recent sign-in, then the smaller id. */
function newer(a: { createdAt: Date; id: string }, b: { createdAt: Date; id: string }): boolean {
  const d = a.createdAt.getTime() - b.createdAt.getTime();
  return d > 0 || (d === 0 && a.id < b.id);
}

// ---- the per-request session --------------------------------------------------------------------

const CLEAR = Symbol('clear');

/** What the response must do with the cookie: nothing, clear it, or set a token. */
type CookieChange = undefined | typeof CLEAR | { token: string; expiresAt: number; sessionId: string };

/** What a request offers the session state beyond its cookie: its device, and where new-device sign-ins go. */
interface RequestInfo {
  device(): DeviceInfo;
  /** Set when the middleware has `onNewDevice`: every login checks, and a new device is handed to it. */
  onNewDevice: ((event: NewDeviceEvent) => void) | undefined;
}

/**
 * One request's session state. Knows nothing of Hono: the middleware gives it a cookie reader and,
 * after the handler, asks it what to save and what to send back.
 */
class RequestSession<A extends Attributes> implements SessionHandle<A> {
  readonly #manager: SessionManager<A>;
  readonly #readCookies: () => string[];
  readonly #touchInManager: boolean;
  /** Every value of the session cookie in the request, read on first use (usually zero or one). */
  #incoming: string[] | undefined;
  /** The token the loaded session was found by, when the request had several cookie values. */
  #loadedToken: string | undefined;
  /** login/destroy deleted the sessions the request's cookies name: not again in this request. */
  #cookieSessionsDeleted = false;
  /** In-flight or finished load; replaced by a settled promise after login/rotate/destroy. */
  #loading: Promise<Session<A> | null> | undefined;
  #session: Session<A> | null | undefined;
  /** The session as loaded from the cookie (the one a touch callback is about). */
  #loaded: Session<A> | null = null;
  #cookie: CookieChange;
  #closed = false;
  /** An explicit save() failed: the handler owns the outcome, the after-handler save stays out of it. */
  #saveFailed = false;
  #newDevice: boolean | undefined;

  readonly #beforeRead: (() => Promise<void>) | undefined;
  readonly #request: RequestInfo;

  constructor(
    manager: SessionManager<A>,
    readCookies: () => string[],
    touchInManager: boolean,
    beforeRead: (() => Promise<void>) | undefined,
    request: RequestInfo,
  ) {
    this.#manager = manager;
    this.#readCookies = readCookies;
    this.#touchInManager = touchInManager;
    this.#beforeRead = beforeRead;
    this.#request = request;
  }

  #incomingValues(): string[] {
    this.#incoming ??= this.#readCookies();
    return this.#incoming;
  }

  /** Several values: a clearing Set-Cookie could hit a live one, so only the load may decide to clear. */
  #hasDuplicates(): boolean {
    return this.#incomingValues().length > 1;
  }

  get(): Promise<Session<A> | null> {
    this.#loading ??= this.#load();
    return this.#loading;
  }

  async #load(): Promise<Session<A> | null> {
    const values = this.#incomingValues();
    if (values.length === 0) {
      this.#session = null;
      return null;
    }
    // Keep the cache fresh from the worker's feed (inline only when it is older than maxStaleness).
    if (this.#beforeRead !== undefined) await this.#beforeRead();
    const session = values.length === 1 ? await this.#loadOne(values[0] as string) : await this.#loadAmong(values);
    this.#session = session;
    this.#loaded = session;
    return session;
  }

  /** The usual case, kept to one `getSession`. */
  async #loadOne(token: string): Promise<Session<A> | null> {
    // Malformed and forged tokens come back null without a query (manager.getSession checks the shape).
    const session = await this.#manager.getSession(token, { touch: this.#touchInManager });
    // The cookie names nothing alive: tell the browser to drop it (unless this request issues another).
    if (session === null) this.#cookie ??= CLEAR;
    return session;
  }

  /** Several cookies of the name (see SessionHandle.get for the rules and why). */
  async #loadAmong(values: readonly string[]): Promise<Session<A> | null> {
    const { tokens, overflow } = cookieCandidates(values);
    // More well-formed values than we look up: the user's own may be among the rest. Undecidable.
    if (overflow) return null;
    // Every live session the browser presented is touched, as one cookie's would be: the holder is active.
    // (In the ambiguous case that keeps a planted session alive too; its holder could do that anyway.)
    const found = await Promise.all(tokens.map((t) => this.#manager.getSession(t, { touch: this.#touchInManager })));
    let chosen: Session<A> | null = null;
    let chosenToken: string | undefined;
    for (const [i, session] of found.entries()) {
      if (session === null) continue;
      // Different users: using either could be the attacker's; clearing could delete the user's own.
      if (chosen !== null && session.userId !== chosen.userId) return null;
      if (chosen === null || newer(session, chosen)) {
        chosen = session;
        chosenToken = tokens[i];
      }
    }
    // Nothing in the header names a live session: clearing cannot hit a live cookie.
    if (chosen === null) {
      this.#cookie ??= CLEAR;
      return null;
    }
    this.#loadedToken = chosenToken;
    return chosen;
  }

  peek(): Session<A> | null | undefined {
    return this.#session;
  }

  async userId(): Promise<string | null> {
    return (await this.get())?.userId ?? null;
  }

  async getAttribute<K extends keyof A & string>(key: K): Promise<A[K] | undefined> {
    return (await this.get())?.get(key);
  }

  async login(userId: string, attributes?: Partial<A>, options?: CreateSessionOptions): Promise<Session<A>> {
    this.#assertOpen('login');
    await this.#settle();
    if (options?.impersonatedBy !== undefined) {
      // An impersonation cannot start another one (before anything is deleted or written).
      const current = this.#session === undefined ? await this.get() : this.#session;
      if (current?.impersonatedBy != null) throw new ImpersonationError(current.id, current.impersonatedBy, 'start another impersonation');
    }
    await this.#deleteCurrent('replaced');
    // The old session is gone from here on, whatever happens next.
    this.#settleTo(null);
    this.#cookie = this.#incomingValues().length === 0 ? undefined : CLEAR;
    const device: DeviceInfo = { ...this.#request.device(), ...options?.device };
    const hook = this.#request.onNewDevice;
    const checkNewDevice = options?.checkNewDevice ?? hook !== undefined;
    const { session, token, newDevice } = await this.#manager.createSession(userId, attributes, { ...options, device, checkNewDevice });
    this.#newDevice = newDevice;
    if (newDevice === true && hook !== undefined) {
      const listed = prepareDevice(device);
      hook({
        userId,
        sessionId: session.id,
        device: listed?.device ?? null,
        userAgent: listed?.userAgent ?? null,
        ip: listed?.ip ?? null,
        at: session.createdAt,
      });
    }
    this.#settleTo(session);
    this.#cookie = { token, expiresAt: session.expiresAt.getTime(), sessionId: session.id };
    return session;
  }

  newDevice(): boolean | undefined {
    return this.#newDevice;
  }

  async ended(): Promise<{ reason: SessionEndReason; endedAt: Date } | null> {
    if (!this.#manager.config.audit || this.#incomingValues().length === 0) return null;
    if ((await this.get()) !== null) return null;
    // By what the browser holds, never by an id it names (an id is no credential).
    for (const token of cookieCandidates(this.#incomingValues()).tokens) {
      const end = await this.#manager.sessionEndOfToken(token);
      if (end !== null) return { reason: end.reason, endedAt: end.endedAt };
    }
    return null;
  }

  async reauthenticated(): Promise<Session<A> | null> {
    this.#assertOpen('reauthenticated');
    await this.#settle();
    const session = this.#session === undefined ? await this.get() : this.#session;
    if (session === null) return null;
    try {
      return await this.#manager.reauthenticate(session);
    } catch (e) {
      if (!(e instanceof SessionNotFoundError)) throw e;
      this.#settleTo(null);
      this.#clearCookie();
      return null;
    }
  }

  async rotate(): Promise<Session<A> | null> {
    this.#assertOpen('rotate');
    await this.#settle();
    const session = this.#session === undefined ? await this.get() : this.#session;
    if (session === null) return null;
    // manager.rotate rebases the session on the rotated row and keeps its unsaved changes pending.
    const rotated = await this.#manager.rotate(session);
    if (rotated === null) {
      this.#settleTo(null);
      this.#clearCookie();
      return null;
    }
    this.#cookie = { token: rotated.token, expiresAt: session.expiresAt.getTime(), sessionId: session.id };
    return session;
  }

  async destroy(): Promise<boolean> {
    this.#assertOpen('destroy');
    await this.#settle();
    // If the delete fails, the cookie stays: the user can still sign out (retry) with it.
    const deleted = await this.#deleteCurrent('logout');
    this.#settleTo(null);
    // A session issued earlier in this request never reached the browser: nothing to clear then.
    this.#cookie = this.#incomingValues().length === 0 ? undefined : CLEAR;
    return deleted;
  }

  async save(options?: UpdateSessionOptions): Promise<void> {
    const session = this.#session;
    if (session === undefined || session === null || !session.isModified) return;
    try {
      await this.#manager.updateSession(session, options);
      this.#saveFailed = false;
    } catch (e) {
      this.#saveFailed = true;
      if (e instanceof SessionNotFoundError) {
        // Deleted or expired while the handler ran (signed out elsewhere): the cookie is dead too.
        this.#settleTo(null);
        this.#clearCookie();
      }
      throw e;
    }
  }

  /**
   * Deletes the sessions this request holds: its current one (loaded, rotated or issued) and, once per
   * request, those its cookies name but it did not load — with duplicate cookies every candidate, a stale
   * or planted one included, so that none survives a sign-in or sign-out. deleteSession rejects a
   * malformed token without a query. Returns whether anything was deleted.
   */
  async #deleteCurrent(reason: 'logout' | 'replaced'): Promise<boolean> {
    const targets: Array<string | Session<A>> = [];
    if (this.#session) targets.push(this.#session);
    if (!this.#cookieSessionsDeleted) {
      const values = this.#incomingValues();
      // One value: once loaded (found or not), the current session above is all it names.
      if (values.length === 1 && this.#session === undefined) targets.push(values[0] as string);
      if (values.length > 1) {
        // The loaded one is deleted as a Session above (its token may have been rotated in this request).
        for (const t of cookieCandidates(values).tokens) if (!(this.#session && t === this.#loadedToken)) targets.push(t);
      }
    }
    const deleted = await Promise.all(targets.map((t) => this.#manager.deleteSession(t, { reason })));
    this.#cookieSessionsDeleted = true;
    return deleted.includes(true);
  }

  /**
   * The request's cookie names nothing alive any more: tell the browser to drop it. Not when the request
   * had several values of the name that were not all deleted here: a clearing Set-Cookie hits the cookie
   * with this middleware's Path and Domain, which may be a live one this request did not use.
   */
  #clearCookie(): void {
    if (!this.#hasDuplicates() || this.#cookieSessionsDeleted) this.#cookie = CLEAR;
  }

  /** Waits for a load in flight so that its result cannot overwrite what a mutation sets. */
  async #settle(): Promise<void> {
    if (this.#loading !== undefined) await this.#loading.catch(() => undefined);
  }

  #settleTo(session: Session<A> | null): void {
    this.#session = session;
    this.#loading = Promise.resolve(session);
  }

  #assertOpen(method: string): void {
    if (this.#closed) {
      throw new SessionError(
        'INVALID_ARGUMENT',
        `c.var.session.${method}() was called after the session middleware finished: the response (and its cookie) is already sent`,
      );
    }
  }

  // ---- used by the middleware after the handler ----

  /** The save after a handler that did not throw. */
  async saveAfterHandler(): Promise<void> {
    if (!this.#saveFailed) await this.save();
  }

  /** No more login/rotate/destroy: the response's cookie is decided. */
  close(): void {
    this.#closed = true;
  }

  /** The session loaded from the cookie, if it is still this request's session (not destroyed/replaced). */
  loadedSession(): Session<A> | null {
    return this.#loaded !== null && this.#loaded === this.#session ? this.#loaded : null;
  }

  cookieChange(): CookieChange {
    return this.#cookie;
  }
}

// ---- the middleware -----------------------------------------------------------------------------

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

function defaultBackgroundError(error: unknown): void {
  console.error('[pg-edge-session] background task failed:', error);
}

/**
 * Creates the session middleware. Options are validated here, once: a bad one throws a `ConfigError`
 * whose `option` names it (`'manager'`, `'cookie.domain'`, ...).
 */
export function sessionMiddleware<A extends Attributes = Attributes>(
  options: SessionMiddlewareOptions<A>,
): MiddlewareHandler<SessionEnv<A>> {
  if (!isPlainObject(options)) throw new ConfigError('options', `expected an object, got ${show(options)}`);
  for (const k of Object.keys(options)) if (!OPTION_KEYS.has(k)) throw new ConfigError(k, 'unknown option');
  const { manager } = options;
  if (!(manager instanceof SessionManager)) throw new ConfigError('manager', 'expected a SessionManager');
  const cookie = resolveCookie(options.cookie);
  const touch = options.touch ?? 'manager';
  if (touch !== 'manager' && touch !== 'none' && typeof touch !== 'function') {
    throw new ConfigError('touch', `expected "manager", "none" or a function (session, c) => void, got ${show(touch)}`);
  }
  const onBackgroundError = options.onBackgroundError ?? defaultBackgroundError;
  const onNewDevice = options.onNewDevice;
  if (onNewDevice !== undefined && typeof onNewDevice !== 'function')
    throw new ConfigError('onNewDevice', `expected a function (event, c) => void, got ${show(onNewDevice)}`);
  if (typeof onBackgroundError !== 'function')
    throw new ConfigError('onBackgroundError', `expected a function, got ${show(onBackgroundError)}`);
  const clock = manager.config.clock;
  const sync = options.sync;
  if (sync !== undefined && !(sync instanceof SyncClient)) throw new ConfigError('sync', `expected a SyncClient, got ${show(sync)}`);
  const sameOrigin = resolveCsrf(options.csrf);
  // A malformed address costs the session its IP, never the sign-in; the operator hears of it once.
  let malformedIpReported = false;
  const clientIp = resolveClientIp(options.clientIp, (value, c) => {
    if (malformedIpReported) return;
    malformedIpReported = true;
    const shown = typeof value === 'string' ? JSON.stringify(value.slice(0, 64)) : show(value);
    const error = new InvalidArgumentError(
      'clientIp',
      `the client address ${shown} is not an IP address; sessions are created without one (reported once per middleware)`,
    );
    try {
      onBackgroundError(error, c);
    } catch {
      // A reporter that throws must not fail the sign-in.
    }
  });
  const clientLocation = resolveClientLocation(options.clientIp);
  // Without a sync client the manager writes its own touches: the middleware hands a due flush to waitUntil
  // (Workers, whose timers do not outlive a request) or lets it run in the background (Node), after the
  // response, never before it.
  const flushesTouches = sync === undefined && touch === 'manager';
  if (flushesTouches) manager._flushedAfterResponses();
  // Earlier releases kept the session's id in `<name>.id` next to the token (for ended(), which now reads the
  // token itself): no longer set, and cleared where a browser still has one.
  const idCookie = `${cookie.name}.id`;

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
      cookieValues(c.req.raw.headers.get('cookie'), cookie.name).length === 0
    );
  };

  const writeCookie = (c: Context, change: CookieChange): void => {
    if (change === undefined) return;
    // A response carrying a token (or its removal) must not be stored by a shared cache and replayed to
    // someone else (OWASP session management). Replaces whatever Cache-Control the handler set.
    c.header('Cache-Control', 'no-store');
    if (change === CLEAR) {
      deleteCookie(c, cookie.name, cookie.attributes);
      if (getCookie(c, idCookie) !== undefined) deleteCookie(c, idCookie, cookie.attributes);
      return;
    }
    const opts: CookieOptions = { ...cookie.attributes };
    if (cookie.persistent) {
      const left = Math.floor((change.expiresAt - clock()) / 1000);
      opts.maxAge = Math.max(0, Math.min(left, MAX_COOKIE_AGE_SECONDS));
    }
    setCookie(c, cookie.name, change.token, opts);
    if (getCookie(c, idCookie) !== undefined) deleteCookie(c, idCookie, cookie.attributes);
  };

  return createMiddleware<SessionEnv<A>>(async function session(c, next) {
    // Before anything else: a refused request reads no cookie, runs no query and sets nothing.
    if (sameOrigin !== undefined && !unchecked(c) && !(await sameOrigin(c))) {
      throw new HTTPException(403, {
        message: 'cross-origin request refused by the session middleware (see the csrf option)',
        res: new Response('Forbidden', { status: 403, headers: { 'content-type': 'text/plain; charset=UTF-8' } }),
      });
    }
    const beforeRead =
      sync === undefined
        ? undefined
        : async () => {
            const due = sync.beforeRead();
            if (due.promise === undefined) return;
            // Errors are reported through onError/onBackgroundError; a failed sync only means misses.
            if (due.mustAwait) await due.promise.catch(() => {});
            else afterResponse(c, () => due.promise, onBackgroundError);
          };
    // New-device sign-ins of this request, handed to onNewDevice once the response is decided.
    const newDevices: NewDeviceEvent[] = [];
    const handle = new RequestSession<A>(
      manager,
      () => cookieValues(c.req.raw.headers.get('cookie'), cookie.name),
      touch === 'manager',
      beforeRead,
      {
        device: () => ({ userAgent: c.req.header('user-agent'), ip: clientIp(c), location: clientLocation(c) }),
        onNewDevice: onNewDevice === undefined ? undefined : (event) => newDevices.push(event),
      },
    );
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
        handle.close();
        writeCookie(c, handle.cookieChange());
        const loaded = handle.loadedSession();
        if (typeof touch === 'function' && loaded !== null) afterResponse(c, () => touch(loaded, c), onBackgroundError);
        const push = sync?.pushTouchesIfDue();
        if (push !== undefined) afterResponse(c, () => push, onBackgroundError);
        const flush = flushesTouches ? manager.flushTouchesIfDue() : undefined;
        if (flush !== undefined) afterResponse(c, () => flush, onBackgroundError);
        if (onNewDevice !== undefined) for (const e of newDevices) afterResponse(c, () => onNewDevice(e, c), onBackgroundError);
      }
    }
  });
}
export type { ClientIpOption } from './middleware/client-ip.ts';
export { type RequireFreshOptions, requireFresh } from './middleware/require-fresh.ts';
