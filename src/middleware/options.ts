/**
 * The options of `sessionMiddleware` and their check, done once when the middleware is created: a bad
 * value throws a `ConfigError` whose `option` names it (`'manager'`, `'cookie.domain'`, ...). The cookie's
 * and the CSRF check's own options live beside their work (cookies.ts, csrf.ts).
 */
import type { Context } from 'hono';
import type { DeviceLocation } from '../core/device.ts';
import { ConfigError, InvalidArgumentError } from '../core/errors.ts';
import { SessionManager } from '../core/manager.ts';
import type { Attributes, Session } from '../core/session.ts';
import { fn, options, show } from '../internal/validate.ts';
import { SyncClient } from '../sync/client.ts';
import { type ClientIpOption, resolveClientIp, resolveClientLocation } from './client-ip.ts';
import { type ResolvedCookie, resolveCookie, type SessionCookieOptions } from './cookies.ts';
import { type CsrfOptions, resolveCsrf } from './csrf.ts';
import type { NewDeviceEvent } from './session-handle.ts';

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

const OPTION_KEYS = new Set(['manager', 'cookie', 'touch', 'onBackgroundError', 'sync', 'csrf', 'clientIp', 'onNewDevice']);

type BackgroundErrorHandler = (error: unknown, c: Context) => void;
type NewDeviceHandler = (event: NewDeviceEvent, c: Context) => unknown;

/** The options, checked, with their defaults. */
export interface ResolvedOptions<A extends Attributes> {
  manager: SessionManager<A>;
  cookie: ResolvedCookie;
  touch: TouchStrategy<A>;
  sync: SyncClient | undefined;
  /** Whether a request may go on (see csrf.ts); undefined when the check is off. */
  csrf: ((c: Context) => boolean | Promise<boolean>) | undefined;
  clientIp: (c: Context) => string | undefined;
  clientLocation: (c: Context) => DeviceLocation | undefined;
  onBackgroundError: BackgroundErrorHandler;
  onNewDevice: NewDeviceHandler | undefined;
}

function defaultBackgroundError(error: unknown): void {
  console.error('[pg-edge-session] background task failed:', error);
}

export function resolveOptions<A extends Attributes>(input: SessionMiddlewareOptions<A>): ResolvedOptions<A> {
  if (input === undefined) throw new ConfigError('options', `expected an object, got ${show(input)}`);
  const o = options('options', input, OPTION_KEYS);
  const manager = o.manager;
  if (!(manager instanceof SessionManager)) throw new ConfigError('manager', 'expected a SessionManager');
  const cookie = resolveCookie(o.cookie);
  const touch = o.touch ?? 'manager';
  if (touch !== 'manager' && touch !== 'none' && typeof touch !== 'function') {
    throw new ConfigError('touch', `expected "manager", "none" or a function (session, c) => void, got ${show(touch)}`);
  }
  const onNewDevice =
    o.onNewDevice === undefined ? undefined : fn<NewDeviceHandler>('onNewDevice', o.onNewDevice, 'a function (event, c) => void');
  const onBackgroundError = fn<BackgroundErrorHandler>('onBackgroundError', o.onBackgroundError ?? defaultBackgroundError);
  const sync = o.sync;
  if (sync !== undefined && !(sync instanceof SyncClient)) throw new ConfigError('sync', `expected a SyncClient, got ${show(sync)}`);
  const csrf = resolveCsrf(o.csrf, cookie.name);
  const clientIp = resolveClientIp(o.clientIp, malformedIpReporter(onBackgroundError));
  return {
    manager: manager as SessionManager<A>,
    cookie,
    touch: touch as TouchStrategy<A>,
    sync,
    csrf,
    clientIp,
    clientLocation: resolveClientLocation(o.clientIp),
    onBackgroundError,
    onNewDevice,
  };
}

/** A malformed address costs the session its IP, never the sign-in; the operator hears of it once. */
function malformedIpReporter(onBackgroundError: BackgroundErrorHandler): (value: unknown, c: Context) => void {
  let reported = false;
  return (value, c) => {
    if (reported) return;
    reported = true;
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
  };
}
