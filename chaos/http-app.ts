// The chaos run's web app: Hono with the session middleware (default cookie and CSRF settings) over one
// SessionManager, driven through a real HTTP server by browser-like clients with real cookies (app-proc.ts,
// mode 'http'). Each route does what an app does with a session (sign in, read, write, rotate, sign out);
// every response carries an `x-chaos` header with what the load driver must record and cannot see from the
// outside: the session as loaded, the versions a write was based on and wrote, the ids a statement deleted
// or evicted (observed at the store, as in the library-level processes).
import type { AsyncLocalStorage } from 'node:async_hooks';
import { Hono } from 'hono';
import { HTTPException } from 'hono/http-exception';
import { SessionError } from '../src/core/errors.ts';
import type { SessionManager } from '../src/core/manager.ts';
import type { Session } from '../src/core/session.ts';
import { type SessionVariables, sessionMiddleware } from '../src/hono.ts';
import type { SyncClient } from '../src/sync/client.ts';

/** What the store wrappers of a manager record for the operation in progress. */
export interface OpContext {
  evicted?: string[];
  deleted?: string[];
}

/** A session as the driver records it: key → [value, attribute version]. */
export interface Snapshot {
  id: string;
  version: number;
  attrs: Record<string, [string, number]>;
}

/** The `x-chaos` response header. */
export interface ChaosInfo {
  /** The session the request's cookie named, as loaded (null: none alive); absent when not loaded. */
  loaded?: Snapshot | null;
  /** A rotation in the request: the rotated version and the new token, or null when the session was gone. */
  rotated?: { version: number; token: string } | null;
  /** What a write was based on (right before it was saved). */
  base?: { version: number; vers: Record<string, number> };
  /** The request's session after the middleware saved it (null: none; absent: never loaded). */
  state?: Snapshot | null;
  evicted?: string[];
  deleted?: string[];
}

export const COOKIE_NAME = '__Host-session';

export function snapshot(s: Session): Snapshot {
  const attrs: Record<string, [string, number]> = {};
  for (const key of s.keys()) attrs[key] = [String(s.get(key)), s.attributeVersion(key)];
  return { id: s.id, version: s.version, attrs };
}

type Env = { Variables: SessionVariables & { chaos: ChaosInfo } };

export function createChaosApp(manager: SessionManager, sync: SyncClient | undefined, ops: AsyncLocalStorage<OpContext>): Hono<Env> {
  const app = new Hono<Env>();
  // Errors become responses whose body names the library's code (a 500 without one is an untyped error).
  app.onError((e, c) => {
    if (e instanceof HTTPException) return e.getResponse();
    if (e instanceof SessionError) {
      const status = e.code === 'SESSION_NOT_FOUND' ? 404 : e.code === 'VERSION_CONFLICT' ? 409 : 503;
      return c.json({ code: e.code, message: e.message.slice(0, 200) }, status);
    }
    return c.json({ error: `${(e as Error)?.name ?? 'Error'}: ${String((e as Error)?.message ?? e).slice(0, 300)}` }, 500);
  });
  // Outside the session middleware: its after-handler save has run when next() returns.
  app.use('*', async (c, next) => {
    const ctx: OpContext = {};
    const info: ChaosInfo = {};
    c.set('chaos', info);
    await ops.run(ctx, () => next());
    const s = c.var.session?.peek();
    if (s !== undefined) info.state = s === null ? null : snapshot(s);
    if (ctx.evicted) info.evicted = ctx.evicted;
    if (ctx.deleted) info.deleted = ctx.deleted;
    c.header('x-chaos', JSON.stringify(info));
  });
  app.use('*', sessionMiddleware({ manager, sync, onBackgroundError: () => {} }));

  app.post('/login', async (c) => {
    const b = await c.req.json<{ user: string; attrs: Record<string, string>; expiresAt: number }>();
    const s = await c.var.session.login(b.user, b.attrs, { expiresAt: b.expiresAt });
    return c.json({ id: s.id, version: s.version, at: s.createdAt.getTime() });
  });

  app.get('/me', async (c) => {
    const s = await c.var.session.get();
    c.var.chaos.loaded = s === null ? null : snapshot(s);
    return c.json({ found: s !== null });
  });

  // Sets attributes; with `rotate`, rotates first (the changes are saved under the new token after the
  // handler); a compare-and-set mode saves inside the handler (a conflict is a 409 and saves nothing).
  app.post('/write', async (c) => {
    const b = await c.req.json<{ values: Record<string, string>; mode: 'plain' | 'version' | 'attrVersion'; rotate?: boolean }>();
    const info = c.var.chaos;
    const handle = c.var.session;
    const s = await handle.get();
    info.loaded = s === null ? null : snapshot(s);
    if (s === null) return c.json({ found: false }, 401);
    if (b.rotate) {
      const r = await handle.rotate();
      info.rotated = r === null ? null : { version: r.version, token: r._token() };
      if (r === null) return c.json({ found: false }, 404);
    }
    const vers: Record<string, number> = {};
    for (const k of Object.keys(b.values)) vers[k] = s.attributeVersion(k);
    info.base = { version: s.version, vers };
    for (const [k, v] of Object.entries(b.values)) s.set(k, v);
    if (b.mode !== 'plain') await handle.save({ checkVersion: b.mode === 'version', checkAttributeVersion: b.mode === 'attrVersion' });
    return c.json({ ok: true });
  });

  app.post('/rotate', async (c) => {
    const handle = c.var.session;
    const s = await handle.get();
    c.var.chaos.loaded = s === null ? null : snapshot(s);
    if (s === null) return c.json({ found: false }, 401);
    const r = await handle.rotate();
    c.var.chaos.rotated = r === null ? null : { version: r.version, token: r._token() };
    return c.json({ rotated: r !== null }, r === null ? 404 : 200);
  });

  app.post('/logout', async (c) => {
    const handle = c.var.session;
    const s = await handle.get();
    c.var.chaos.loaded = s === null ? null : snapshot(s);
    const deleted = await handle.destroy();
    return c.json({ deleted });
  });

  return app;
}
