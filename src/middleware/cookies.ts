/**
 * The session cookie: its options (checked once, at construction), every value of its name in a request,
 * and the `SessionCookieJar` through which a `RequestSession` reads and writes it in a Hono context.
 */
import type { Context } from 'hono';
import { deleteCookie, getCookie, setCookie } from 'hono/cookie';
import type { CookieOptions } from 'hono/utils/cookie';
import { ConfigError } from '../core/errors.ts';
import { choice, flag, options, show } from '../internal/validate.ts';
import type { SessionCookieJar } from './request-session.ts';

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
   *   in whole seconds rounded up (the cookie never ends before its session), capped at 400 days (browsers
   *   cap it there). Idle expiry is enforced by the server.
   * - `'browser-session'`: no `Max-Age`; the browser drops the cookie when it ends its session. The
   *   server-side expiry applies as well.
   */
  maxAge?: 'expiry' | 'browser-session';
}

/** Browsers cap Max-Age at 400 days (RFC 6265bis); hono's serializer refuses more. */
const MAX_COOKIE_AGE_SECONDS = 400 * 24 * 3600;
const COOKIE_NAME_RE = /^[\w!#$%&'*.^`|~+-]+$/;
/** Printable ASCII but ";": what an attribute value may hold without starting another attribute. */
const COOKIE_ATTRIBUTE_RE = /^[ -:<-~]*$/;
const COOKIE_KEYS = new Set(['name', 'prefix', 'httpOnly', 'secure', 'sameSite', 'path', 'domain', 'maxAge']);
const SAME_SITE = { strict: 'Strict', lax: 'Lax', none: 'None' } as const;

export interface ResolvedCookie {
  /** Full name, prefix included. */
  name: string;
  attributes: CookieOptions;
  persistent: boolean;
}

/** The `cookie` option, checked; a bad value is a `ConfigError` naming it (`cookie.domain`, ...). */
export function resolveCookie(input: unknown): ResolvedCookie {
  const o = options('cookie', input, COOKIE_KEYS, 'cookie.');
  const name = o.name ?? 'session';
  if (typeof name !== 'string' || !COOKIE_NAME_RE.test(name)) {
    throw new ConfigError('cookie.name', `expected a cookie name (letters, digits and !#$%&'*.^\`|~+-_), got ${show(name)}`);
  }
  if (/^__(host|secure)-/i.test(name)) throw new ConfigError('cookie.name', 'give the name without "__Host-"/"__Secure-" and set `prefix`');
  const prefix = choice('cookie.prefix', o.prefix ?? '__Host-', ['__Host-', '__Secure-', 'none'] as const);
  const secure = o.secure === undefined || flag('cookie.secure', o.secure);
  const httpOnly = o.httpOnly === undefined || flag('cookie.httpOnly', o.httpOnly);
  const sameSiteInput = o.sameSite ?? 'Lax';
  // Any case: 'lax' is 'Lax'.
  const sameSite = typeof sameSiteInput === 'string' ? SAME_SITE[sameSiteInput.toLowerCase() as keyof typeof SAME_SITE] : undefined;
  if (sameSite === undefined) throw new ConfigError('cookie.sameSite', `expected "Strict", "Lax" or "None", got ${show(sameSiteInput)}`);
  const path = o.path ?? '/';
  if (typeof path !== 'string' || !path.startsWith('/') || !COOKIE_ATTRIBUTE_RE.test(path)) {
    throw new ConfigError('cookie.path', `expected a path starting with "/" (no ";" or control characters), got ${show(path)}`);
  }
  const domain = o.domain;
  if (domain !== undefined && (typeof domain !== 'string' || domain === '' || !COOKIE_ATTRIBUTE_RE.test(domain) || /\s/.test(domain))) {
    throw new ConfigError('cookie.domain', `expected a domain name, got ${show(domain)}`);
  }
  const maxAge = choice('cookie.maxAge', o.maxAge ?? 'expiry', ['expiry', 'browser-session'] as const);
  checkPrefix(prefix, secure, domain, path);
  if (sameSite === 'None' && !secure)
    throw new ConfigError('cookie.sameSite', '"None" requires secure: true (browsers reject it otherwise)');
  return {
    name: prefix === 'none' ? name : `${prefix}${name}`,
    attributes: { path, secure, httpOnly, sameSite, ...(domain === undefined ? {} : { domain }) },
    persistent: maxAge === 'expiry',
  };
}

/** What the prefixes demand of the other attributes (RFC 6265bis; browsers refuse such cookies otherwise). */
function checkPrefix(prefix: SessionCookiePrefix, secure: boolean, domain: string | undefined, path: string): void {
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
}

/**
 * Every value of cookie `name` in a Cookie header, in header order. hono's `getCookie` returns only the
 * first, and a browser sends every cookie whose Domain and Path match the request, so one name can come
 * several times. Values are returned raw (no unquoting, no percent-decoding): a token this middleware
 * issued has neither, so such a value is simply not a well-formed token.
 */
export function cookieValues(header: string | null, name: string): string[] {
  const values: string[] = [];
  if (header === null || !header.includes(name)) return values;
  for (const pair of header.split(';')) {
    const eq = pair.indexOf('=');
    if (eq !== -1 && pair.slice(0, eq).trim() === name) values.push(pair.slice(eq + 1).trim());
  }
  return values;
}

/**
 * The session cookie of one Hono request. A response that sets or clears it gets `Cache-Control: no-store`
 * (replacing whatever the handler set): a token, or its removal, must not be stored by a shared cache and
 * replayed to someone else. Earlier releases kept the session's id in `<name>.id` next to the token: no
 * longer set, and cleared wherever a browser still sends one.
 */
export function honoCookieJar(c: Context, cookie: ResolvedCookie, clock: () => number): SessionCookieJar {
  const idCookie = `${cookie.name}.id`;
  const dropIdCookie = (): void => {
    if (getCookie(c, idCookie) !== undefined) deleteCookie(c, idCookie, cookie.attributes);
  };
  return {
    get: () => cookieValues(c.req.raw.headers.get('cookie'), cookie.name),
    set(token, expiresAt) {
      c.header('Cache-Control', 'no-store');
      const opts: CookieOptions = { ...cookie.attributes };
      if (cookie.persistent) {
        // Rounded up: the browser keeps the cookie as long as the session lives (0 only once it has expired).
        const left = Math.ceil((expiresAt - clock()) / 1000);
        opts.maxAge = Math.max(0, Math.min(left, MAX_COOKIE_AGE_SECONDS));
      }
      setCookie(c, cookie.name, token, opts);
      dropIdCookie();
    },
    delete() {
      c.header('Cache-Control', 'no-store');
      deleteCookie(c, cookie.name, cookie.attributes);
      dropIdCookie();
    },
  };
}
