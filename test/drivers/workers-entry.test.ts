// The middleware both Workers entries build through (src/drivers/workers-entry.ts): init's options split
// as `const { <entry's own>, ...rest } = init(env)` would, the entry's own building the sessions, the rest
// reaching the session middleware (which rejects a name it does not know, so an entry option leaking into
// it fails the request).
import { Hono } from 'hono';
import { describe, expect, it } from 'vitest';
import { ConfigError } from '../../src/core/errors.ts';
import { SessionManager } from '../../src/core/manager.ts';
import { workersSessionMiddleware } from '../../src/drivers/workers-entry.ts';
import type { SessionEnv } from '../../src/hono.ts';
import { useStore } from '../support/store-suite.ts';

describe('workersSessionMiddleware (the Neon and Hyperdrive entries)', () => {
  const fx = useStore('node-postgres', 'workers_entry');

  const app = (init: () => object) => {
    const seen: Record<string, unknown>[] = [];
    const db = Object.assign(fx.t.db, { closed: async () => {} });
    const app = new Hono<SessionEnv>();
    app.onError((e) => new Response(e instanceof ConfigError ? `ConfigError ${e.option}` : String(e), { status: 500 }));
    app.use(
      workersSessionMiddleware<Record<string, never>, { databaseUrl: string; config: { schemaName: string } }>(
        init as never,
        { databaseUrl: true, config: true },
        (options) => {
          seen.push({ ...options });
          return { manager: new SessionManager(db, options.config), sync: undefined, db };
        },
      ),
    );
    app.get('/login', async (c) => c.text((await c.var.session.login('workers-entry-user')).userId));
    return { app, seen };
  };

  it('gives the entry its own options (inherited ones too) and the session middleware the rest, once per isolate', async () => {
    const base = { databaseUrl: 'postgres://inherited' };
    let calls = 0;
    const { app: a, seen } = app(() => {
      calls++;
      return Object.assign(Object.create(base), {
        config: { schemaName: fx.schemaName },
        cookie: { name: 'custom', prefix: 'none', secure: false },
      });
    });
    for (let i = 0; i < 2; i++) {
      const res = await a.request('/login');
      expect(await res.text()).toBe('workers-entry-user');
      expect(res.headers.get('set-cookie')).toMatch(/^custom=/);
    }
    expect(calls).toBe(1);
    expect(seen).toEqual([{ databaseUrl: 'postgres://inherited', config: { schemaName: fx.schemaName } }]);
  });

  it('an option neither the entry nor the session middleware knows is refused by the session middleware', async () => {
    const { app: a, seen } = app(() => ({ databaseUrl: 'x', config: { schemaName: fx.schemaName }, wsProxy: '127.0.0.1:1' }));
    const res = await a.request('/login');
    expect(await res.text()).toBe('ConfigError wsProxy');
    expect(seen).toEqual([{ databaseUrl: 'x', config: { schemaName: fx.schemaName } }]);
  });

  it('throws a ConfigError naming init when init is not a function', () => {
    expect(() => workersSessionMiddleware(undefined as never, {}, () => ({}) as never)).toThrow(ConfigError);
  });
});
