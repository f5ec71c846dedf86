// The per-request session without Hono (src/middleware/request-session.ts): given a cookie jar (get / set /
// delete, like @hono/session's core) and the request's facts, it signs in, loads, rotates and signs out
// against the real database, and writes its cookie through the jar only when the request is closed. Its
// module graph loads no `hono` (checked by bundling it with esbuild, which drops `import type`).
import { build } from 'esbuild';
import { describe, expect, it } from 'vitest';
import { SessionError } from '../../src/core/errors.ts';
import type { SessionManager } from '../../src/core/manager.ts';
import { type RequestFacts, RequestSession, type SessionCookieJar } from '../../src/middleware/request-session.ts';
import type { NewDeviceEvent } from '../../src/middleware/session-handle.ts';
import { uid } from '../support/manager-helpers.ts';
import { useStore } from '../support/store-suite.ts';

/** A browser's one cookie: what the request carries, and what the response did to it. */
class MemoryJar implements SessionCookieJar {
  reads = 0;
  written: { token: string; expiresAt: number } | 'deleted' | undefined;
  constructor(readonly values: string[] = []) {}
  get(): string[] {
    this.reads++;
    return this.values;
  }
  set(token: string, expiresAt: number): void {
    this.written = { token, expiresAt };
  }
  delete(): void {
    this.written = 'deleted';
  }
}

/** The packages a module of src/middleware/ loads at run time, through any chain of imports. */
async function packagesOf(file: string): Promise<string[]> {
  const loaded: string[] = [];
  await build({
    entryPoints: [new URL(`../../src/middleware/${file}`, import.meta.url).pathname],
    bundle: true,
    write: false,
    format: 'esm',
    platform: 'neutral',
    logLevel: 'silent',
    plugins: [
      {
        name: 'record-packages',
        setup(b) {
          b.onResolve({ filter: /^[^./]/ }, (args) => {
            loaded.push(args.path);
            return { path: args.path, external: true };
          });
        },
      },
    ],
  });
  return loaded;
}

const FIREFOX = 'Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0';

describe('RequestSession without Hono', () => {
  const fx = useStore('node-postgres', 'reqsession');
  const open = (manager: SessionManager, jar: MemoryJar, facts: Partial<RequestFacts> = {}) =>
    new RequestSession({ manager, cookie: jar, touch: true, device: () => ({ userAgent: FIREFOX }), ...facts });

  it('its modules load no hono (the Hono wiring beside it does)', async () => {
    const isHono = (p: string) => p === 'hono' || p.startsWith('hono/') || p.startsWith('@hono/');
    expect((await packagesOf('request-session.ts')).filter(isHono)).toEqual([]);
    expect((await packagesOf('session-middleware.ts')).filter(isHono)).toContain('hono/factory');
  });

  it('signs in, is found by the cookie it set, and signs out; the jar is written only on close', async () => {
    const m = fx.manager();
    const first = new MemoryJar();
    const events: NewDeviceEvent[] = [];
    const login = open(m, first, { onNewDevice: (e) => events.push(e) });
    const user = uid();
    const session = await login.login(user, {});
    expect(login.newDevice()).toBe(true);
    expect(events).toMatchObject([{ userId: user, sessionId: session.id, userAgent: FIREFOX }]);
    expect(first.written).toBeUndefined();
    login.close();
    expect(first.written).toEqual({ token: expect.any(String), expiresAt: session.expiresAt.getTime() });
    await expect(login.login(user, {})).rejects.toThrow(SessionError);

    const token = (first.written as { token: string }).token;
    const next = new MemoryJar([token]);
    const again = open(m, next);
    expect(next.reads).toBe(0); // nothing read before the first use
    expect((await again.get())?.id).toBe(session.id);
    expect(await again.userId()).toBe(user);
    again.close();
    expect(next.written).toBeUndefined(); // a live cookie is left as it is
    expect(again.loadedSession()?.id).toBe(session.id);

    const out = open(m, new MemoryJar([token]));
    expect(await out.destroy()).toBe(true);
    const outJar = new MemoryJar([token]);
    const gone = open(m, outJar);
    expect(await gone.get()).toBeNull();
    gone.close();
    expect(outJar.written).toBe('deleted'); // a dead cookie is cleared
  });

  it('rotate writes the new token; save writes pending attribute changes', async () => {
    const m = fx.manager<{ theme: string }>();
    const { session, token } = await m.createSession(uid(), { theme: 'light' });
    const jar = new MemoryJar([token]);
    const handle = new RequestSession({ manager: m, cookie: jar, touch: false, device: () => ({}) });
    const loaded = await handle.get();
    loaded?.set('theme', 'dark');
    expect((await handle.rotate())?.id).toBe(session.id);
    await handle.saveAfterHandler();
    handle.close();
    const rotated = (jar.written as { token: string }).token;
    expect(rotated).not.toBe(token);
    expect(await m.getSession(token)).toBeNull();
    expect((await m.getSession(rotated))?.get('theme')).toBe('dark');
  });
});
