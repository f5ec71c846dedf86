/**
 * The example app, shared by every runtime: Cloudflare Workers (example/worker.ts), Node (npm start), or
 * anything else that runs Hono. It only needs a `SessionManager` (and, on the edge, a `SyncClient`).
 *
 * Server-rendered HTML, no client JavaScript: every action is a POST form answered with a 303 redirect.
 *
 *   GET  /                      sign-in form (saying why a session ended, when it did), or the session's
 *                               attributes, my devices, recent sign-outs and the actions
 *   POST /login                 name → c.var.session.login(userId, { name }) (records the device)
 *   POST /attributes            edit name/theme/note (saved once, after the handler, by the middleware)
 *   POST /sessions/revoke       revoke one of my sessions (manager.deleteSessionById(id, { userId }))
 *   POST /sessions/revoke-others  manager.deleteAllUserSessions(userId, { exceptSessionId })
 *   POST /notices/dismiss       dismiss a "New sign-in: …" notice (example/notices.ts)
 *   POST /logout                c.var.session.destroy()
 *   GET  /api/me                JSON: the session, or null
 *
 * Demo only: signing in takes a user name and no password. Notices ("Saved.") travel in a one-shot cookie
 * that the next page clears, so a reload does not show them again. With the manager's `audit` option on,
 * the page lists why recent sessions ended, and a browser whose session was revoked elsewhere is told so.
 * Given `db`, a sign-in from a new device (label, network, country: README.md "New-device sign-ins") leaves
 * "New sign-in: Firefox on Linux, 203.0.113.x" on the user's other devices (example/notices.ts).
 *
 * CSRF: the session middleware refuses POSTs another origin made (its `csrf` option, on by default),
 * before any handler runs: a browser sends `Origin` with every cross-origin POST form submission and
 * `Sec-Fetch-Site` where it supports fetch metadata, and when present they must say "this origin". That
 * covers what SameSite=Lax leaves open, same-site sibling subdomains and login CSRF (signing the victim
 * into the attacker's account needs no cookie at all). Clients that send neither (curl, tests) are not
 * browsers and cannot be forged into sending a victim's cookie. Behind a proxy whose request URL is not
 * the public origin, pass `csrf: { trustedOrigins: 'https://your.public.origin' }` in the deps.
 */
import { type Context, Hono } from 'hono';
import { deleteCookie, getCookie, setCookie } from 'hono/cookie';
import { html } from 'hono/html';
import { HTTPException } from 'hono/http-exception';
import { type SessionEndInfo, type SessionEndReason, type SessionInfo, SessionNotFoundError, type SqlExecutor } from 'pg-edge-session';
import { type SessionEnv, type SessionMiddlewareOptions, sessionMiddleware } from 'pg-edge-session/hono';
import { type SignInNotice, SignInNotices } from './notices.ts';

/** The session attributes of this app. */
export type ExampleAttributes = {
  /** Display name, as typed at sign-in (the user id is its lower-cased form). */
  name: string;
  theme: 'light' | 'dark';
  note: string;
};

export interface ExampleDeps extends SessionMiddlewareOptions<ExampleAttributes> {
  /** Shown in the page footer, e.g. "Cloudflare Workers". */
  runtime?: string;
  /**
   * The manager's database: with it, a new-device sign-in leaves a notice on the user's other devices
   * (example/notices.ts keeps them in a table of its own). Without it, no notices.
   */
  db?: SqlExecutor;
}

const MAX_NAME = 64;
const MAX_NOTE = 500;
const THEMES = ['light', 'dark'] as const;
/** A sign-in notice's id (example/notices.ts: a bigint identity). */
const NOTICE_ID_RE = /^[0-9]{1,18}$/;
const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
/** Printable text: no control characters (a name is shown and used as the user id). */
const NAME_RE = /^[^\p{Cc}\p{Cf}]+$/u;

/** Fixed texts for the one-shot notice cookie (its value never reaches the page as text). */
const NOTICES: Record<string, string> = {
  'signed-out': 'Signed out.',
  saved: 'Saved.',
  revoked: 'Session revoked.',
  'revoked-others': 'Every other session was revoked.',
  'bad-name': `A name is 1 to ${MAX_NAME} printable characters.`,
  'bad-input': 'That input was not accepted.',
  'not-found': 'No such session of yours (already revoked?).',
  gone: 'Your session ended meanwhile (revoked elsewhere or expired). Sign in again.',
};

/** What a signed-out browser is told about the session it had (from the audit record). */
const ENDED: Partial<Record<SessionEndReason, string>> = {
  revoked: 'This session was revoked from another device. Sign in again.',
  admin_revoked: 'This session was revoked by an administrator. Sign in again.',
  user_sessions_deleted: 'You were signed out everywhere from another device. Sign in again.',
  expired: 'This session expired. Sign in again.',
  idle_expired: 'This session expired after a period of inactivity. Sign in again.',
  reauthentication_expired: 'You signed in too long ago. Sign in again.',
  evicted: 'This session was closed because you signed in on too many devices. Sign in again.',
  logout: 'This session was signed out. Sign in again.',
};

/** Labels of recorded session ends in the "recent sign-outs" list. */
const END_LABELS: Record<SessionEndReason, string> = {
  logout: 'signed out',
  replaced: 'replaced by a new sign-in',
  revoked: 'revoked by you',
  admin_revoked: 'revoked by an administrator',
  rotated: 'token rotated',
  evicted: 'closed: too many devices',
  idle_expired: 'expired (inactive)',
  expired: 'expired',
  reauthentication_expired: 'expired: sign-in too long ago',
  user_sessions_deleted: 'signed out everywhere',
  group_deleted: 'group signed out',
  all_deleted: 'all sessions cleared',
};

const NOTICE_COOKIE = 'notice';

function field(form: Record<string, unknown>, key: string): string | undefined {
  const v = form[key];
  return typeof v === 'string' ? v : undefined;
}

function validName(v: string | undefined): v is string {
  return v !== undefined && v.length >= 1 && v.length <= MAX_NAME && NAME_RE.test(v);
}

/** Creates the example app. `deps` are the session middleware's options (manager, sync, cookie, ...). */
export function createExampleApp(deps: ExampleDeps) {
  const { runtime, db, ...middlewareOptions } = deps;
  const { manager } = middlewareOptions;
  const notices = db === undefined ? undefined : new SignInNotices(db, manager);
  const app = new Hono<SessionEnv<ExampleAttributes>>();

  app.use(async (c, next) => {
    await next();
    // Pages show session data: never cached; no framing (revoke buttons), no script at all.
    c.header('cache-control', 'no-store');
    c.header('x-frame-options', 'DENY');
    c.header('referrer-policy', 'same-origin');
    c.header(
      'content-security-policy',
      "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    );
  });
  const { onNewDevice } = middlewareOptions;
  app.use(
    sessionMiddleware<ExampleAttributes>({
      ...middlewareOptions,
      // After the response (waitUntil on Workers): tell the user's other sessions.
      ...(notices === undefined
        ? {}
        : {
            onNewDevice: async (event, c) => {
              await onNewDevice?.(event, c);
              await notices.leave(event);
            },
          }),
    }),
  );

  // Post/redirect/get: the notice rides in a short-lived cookie that the next page reads and clears.
  const back = (c: Context, notice?: string) => {
    if (notice !== undefined) setCookie(c, NOTICE_COOKIE, notice, { path: '/', httpOnly: true, sameSite: 'Lax', maxAge: 60 });
    return c.redirect('/', 303);
  };
  const takeNotice = (c: Context): string | undefined => {
    const code = getCookie(c, NOTICE_COOKIE);
    if (code === undefined) return undefined;
    deleteCookie(c, NOTICE_COOKIE, { path: '/' });
    return NOTICES[code];
  };

  app.onError((err, c) => {
    if (err instanceof HTTPException) return err.getResponse();
    // The session was deleted while this request held it (e.g. saving after a revoke elsewhere): the
    // middleware has already cleared the cookie.
    if (err instanceof SessionNotFoundError) return back(c, 'gone');
    console.error('[example] request failed:', err);
    return c.text('Internal Server Error', 500);
  });

  app.get('/', async (c) => {
    let notice = takeNotice(c);
    const session = await c.var.session.get();
    if (session === null) {
      // The cookie named a session that has ended: say why (audit on), once — the middleware clears it.
      const ended = await c.var.session.ended();
      if (ended !== null) notice = ENDED[ended.reason] ?? notice;
      return c.html(
        page(
          'Sign in',
          'light',
          runtime,
          notice,
          html`<form method="post" action="/login">
  <label>Your name <input name="name" required maxlength="${MAX_NAME}" autocomplete="username"></label>
  <button>Sign in</button>
</form>
<p class="muted">Demo: no password. The name becomes the user id (lower case), so signing in with the same name on
another device gives that user a second session.</p>`,
        ),
      );
    }
    const theme = session.get('theme') ?? 'light';
    const [sessions, ends, signIns] = await Promise.all([
      manager.listUserSessions(session.userId, { current: session }),
      manager.config.audit ? manager.listSessionEnds(session.userId, { limit: 5 }) : Promise.resolve([]),
      notices === undefined ? Promise.resolve([]) : notices.list(session.id),
    ]);
    return c.html(
      page(
        'Your session',
        theme,
        runtime,
        notice,
        html`${signIns.map((n) => signInItem(n))}<p>Signed in as <strong>${session.get('name') ?? session.userId}</strong> (user id <code>${session.userId}</code>).</p>

<h2>Attributes</h2>
<form method="post" action="/attributes" class="stack">
  <label>Name <input name="name" required maxlength="${MAX_NAME}" value="${session.get('name') ?? ''}"></label>
  <label>Theme <select name="theme">${THEMES.map(
    (t) => html`<option value="${t}"${t === theme ? html` selected` : ''}>${t}</option>`,
  )}</select></label>
  <label>Note <textarea name="note" maxlength="${MAX_NOTE}" rows="3">${session.get('note') ?? ''}</textarea></label>
  <button>Save</button>
</form>
<p class="muted">Session version ${session.version}, created <time datetime="${iso(session.createdAt)}">${iso(session.createdAt)}</time>,
expires <time datetime="${iso(session.expiresAt)}">${iso(session.expiresAt)}</time>.</p>

<h2>My devices</h2>
<ul class="sessions">${sessions.map((s) => sessionItem(s))}</ul>
<form method="post" action="/sessions/revoke-others"><button${sessions.length > 1 ? '' : html` disabled`}>Revoke all others</button></form>
${
  ends.length === 0
    ? ''
    : html`<h2>Recent sign-outs</h2>
<ul class="ends">${ends.map((e) => endItem(e))}</ul>`
}

<h2>Sign out</h2>
<form method="post" action="/logout"><button>Sign out</button></form>`,
      ),
    );
  });

  app.post('/login', async (c) => {
    const name = field(await c.req.parseBody(), 'name')?.trim();
    if (!validName(name)) return back(c, 'bad-name');
    // login() deletes the session the cookie named (if any) and issues a new token: no fixation.
    await c.var.session.login(name.toLowerCase(), { name, theme: 'light', note: '' });
    return back(c);
  });

  app.post('/attributes', async (c) => {
    const session = await c.var.session.get();
    if (session === null) return back(c, 'gone');
    const form = await c.req.parseBody();
    const name = field(form, 'name')?.trim();
    const theme = field(form, 'theme');
    const note = field(form, 'note');
    if (name !== undefined && !validName(name)) return back(c, 'bad-name');
    if (theme !== undefined && !THEMES.includes(theme as ExampleAttributes['theme'])) return back(c, 'bad-input');
    if (note !== undefined && note.length > MAX_NOTE) return back(c, 'bad-input');
    // Only what changed: an unchanged form writes nothing. The middleware saves once, after this handler.
    if (name !== undefined && name !== session.get('name')) session.set('name', name);
    if (theme !== undefined && theme !== session.get('theme')) session.set('theme', theme as ExampleAttributes['theme']);
    if (note !== undefined && note !== session.get('note')) session.set('note', note);
    return back(c, 'saved');
  });

  app.post('/sessions/revoke', async (c) => {
    const session = await c.var.session.get();
    if (session === null) return back(c, 'gone');
    const form = await c.req.parseBody();
    const id = field(form, 'id') ?? '';
    if (!UUID_RE.test(id)) return back(c, 'bad-input');
    // Revoked from its "New sign-in" notice: the notice goes too.
    const notice = field(form, 'notice');
    if (notices !== undefined && notice !== undefined && NOTICE_ID_RE.test(notice)) await notices.dismiss(session.id, notice);
    if (id.toLowerCase() === session.id) {
      await c.var.session.destroy();
      return back(c, 'signed-out');
    }
    // Scoped to this user in the statement itself: another user's session id deletes nothing.
    // The audit row records which of the user's sessions revoked it.
    const revoked = await manager.deleteSessionById(id.toLowerCase(), {
      userId: session.userId,
      actor: { kind: 'session', id: session.id },
    });
    return back(c, revoked ? 'revoked' : 'not-found');
  });

  app.post('/sessions/revoke-others', async (c) => {
    const session = await c.var.session.get();
    if (session === null) return back(c, 'gone');
    await manager.deleteAllUserSessions(session.userId, { exceptSessionId: session.id });
    return back(c, 'revoked-others');
  });

  app.post('/notices/dismiss', async (c) => {
    const session = await c.var.session.get();
    if (session === null) return back(c, 'gone');
    const id = field(await c.req.parseBody(), 'id') ?? '';
    if (notices === undefined || !NOTICE_ID_RE.test(id)) return back(c, 'bad-input');
    // Scoped to this session in the statement: another session's notice id deletes nothing.
    await notices.dismiss(session.id, id);
    return back(c);
  });

  app.post('/logout', async (c) => {
    await c.var.session.destroy();
    return back(c, 'signed-out');
  });

  app.get('/api/me', async (c) => {
    const s = await c.var.session.get();
    return c.json(
      s && {
        id: s.id,
        userId: s.userId,
        version: s.version,
        attributes: s.toObject(),
        createdAt: iso(s.createdAt),
        expiresAt: iso(s.expiresAt),
      },
    );
  });

  return app;
}

function iso(d: Date): string {
  return d.toISOString();
}

function sessionItem(s: SessionInfo) {
  return html`
  <li data-session-id="${s.id}"${s.current ? html` data-current="true"` : ''}>
    <strong class="device">${s.label ?? s.device ?? 'Unknown device'}</strong>${s.current ? html` <em>(this device)</em>` : ''}
    <span class="muted">${s.ip === null ? '' : html`from <code class="ip">${s.ip}</code>, `}${locationText(s) === '' ? '' : html`in <span class="location">${locationText(s)}</span>, `}last seen <time datetime="${iso(s.lastAccessedAt)}">${iso(s.lastAccessedAt)}</time>,
    signed in <time datetime="${iso(s.createdAt)}">${iso(s.createdAt)}</time></span>
    <form method="post" action="/sessions/revoke" class="inline"><input type="hidden" name="id" value="${s.id}"><button>Revoke</button></form>
  </li>`;
}

/** "New sign-in: Firefox on Linux, 203.0.113.x", with a revoke button for that session and a dismiss button. */
function signInItem(n: SignInNotice) {
  return html`<div class="sign-in" role="alert" data-notice-id="${n.id}" data-new-session-id="${n.sessionId}">
  <strong>New sign-in: ${n.device}${n.network === null ? '' : `, ${n.network}`}</strong>
  <span class="muted"><time datetime="${iso(n.at)}">${iso(n.at)}</time>. Not you? Revoke it, then change your password.</span>
  <form method="post" action="/sessions/revoke" class="inline"><input type="hidden" name="id" value="${n.sessionId}"><input type="hidden" name="notice" value="${n.id}"><button>Revoke it</button></form>
  <form method="post" action="/notices/dismiss" class="inline"><input type="hidden" name="id" value="${n.id}"><button>It was me</button></form>
</div>`;
}

/** "Frankfurt am Main, Hesse, DE (FRA)": what the platform or a trusted proxy said at sign-in, or ''. */
function locationText(s: SessionInfo): string {
  const l = s.location;
  if (l === null) return '';
  const place = [l.city, l.region, l.country].filter((x) => x !== undefined).join(', ');
  return l.colo === undefined ? place : place === '' ? l.colo : `${place} (${l.colo})`;
}

function endItem(e: SessionEndInfo) {
  return html`
  <li data-ended-session-id="${e.sessionId}" data-reason="${e.reason}">${e.label ?? e.device ?? 'Unknown device'}: ${END_LABELS[e.reason] ?? e.reason}
    <span class="muted"><time datetime="${iso(e.endedAt)}">${iso(e.endedAt)}</time></span></li>`;
}

function page(title: string, theme: 'light' | 'dark', runtime: string | undefined, notice: string | undefined, body: unknown) {
  return html`<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${title} · pg-edge-session example</title>
<style>
  body { font: 16px/1.5 system-ui, sans-serif; max-width: 44rem; margin: 2rem auto; padding: 0 1rem; }
  body.dark { background: #16181d; color: #e6e6e6; }
  .muted { opacity: .7; font-size: .9em; }
  .notice { padding: .5rem .75rem; border-left: 4px solid #3b82f6; background: rgba(59,130,246,.12); }
  .sign-in { padding: .5rem .75rem; margin: .5rem 0; border-left: 4px solid #f59e0b; background: rgba(245,158,11,.14); }
  .stack label { display: block; margin: .4rem 0; }
  .sessions li { margin: .4rem 0; }
  form.inline { display: inline; }
  textarea { width: 100%; }
</style>
</head>
<body class="${theme}">
<h1>${title}</h1>
${notice === undefined ? '' : html`<p class="notice" role="status">${notice}</p>`}
${body}
<footer class="muted"><p>pg-edge-session example${runtime === undefined ? '' : html` on ${runtime}`}.</p></footer>
</body>
</html>`;
}
