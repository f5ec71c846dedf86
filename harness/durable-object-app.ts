// The Worker the Durable Object tests run in workerd: a small app (sign in, read, revoke) whose SyncClient
// talks to SessionSyncObject through its binding, plus /__test/ routes that show what the isolate's sync
// client applied and what is in its cache. Its object class is SessionSyncObject with test hooks only
// (an alarm counter, an abort, the instance's identity); everything else is the library's.
import { type ExecutionContext, Hono } from 'hono';
import type { DurableObjectNamespaceLike } from 'pg-edge-session';
import { type DurableObjectStateLike, type SessionSyncEnv, SessionSyncObject } from 'pg-edge-session/durable-object';
import { type SessionEnv, sessionMiddleware } from 'pg-edge-session/hono';
import { neonSessions } from 'pg-edge-session/neon';

export interface TestAppEnv extends SessionSyncEnv {
  SESSION_SYNC: DurableObjectNamespaceLike;
  APP_DATABASE_URL: string;
  MAX_STALENESS_MS: string;
  SYNC_INTERVAL_MS: string;
  /** The SyncClient's requestTimeout in ms; empty: the library's default. */
  REQUEST_TIMEOUT_MS: string;
}

const stub = (env: TestAppEnv) => env.SESSION_SYNC.get(env.SESSION_SYNC.idFromName('pg-edge-session'));

function setUp(env: TestAppEnv) {
  /** Changed session id → when this isolate applied its invalidation (ms). */
  const applied = new Map<string, number>();
  let resets = 0;
  const { manager, sync } = neonSessions({
    databaseUrl: env.APP_DATABASE_URL,
    wsProxy: env.NEON_WS_PROXY,
    config: { schemaName: env.SESSION_SCHEMA, maxStaleness: Number(env.MAX_STALENESS_MS) },
    sync: {
      durableObject: env.SESSION_SYNC,
      syncInterval: Number(env.SYNC_INTERVAL_MS),
      touchInterval: 0,
      ...(env.REQUEST_TIMEOUT_MS ? { requestTimeout: Number(env.REQUEST_TIMEOUT_MS) } : {}),
      onApply: (c) => {
        if (c.reset) resets++;
        const at = Date.now();
        for (const id of c.ids) if (!applied.has(id)) applied.set(id, at);
      },
      onError: (e) => console.warn('[do-app] sync error', String(e)),
    },
  });
  const app = new Hono<SessionEnv>();
  app.use(sessionMiddleware({ manager, ...(sync ? { sync } : {}), cookie: { prefix: 'none', secure: false }, csrf: false }));
  app.post('/login', async (c) => {
    const s = await c.var.session.login(c.req.query('user') ?? 'user', { n: 1 });
    return c.json({ id: s.id });
  });
  app.get('/me', async (c) => {
    const s = await c.var.session.get();
    return c.json(s === null ? null : { id: s.id, userId: s.userId });
  });
  app.post('/revoke', async (c) => c.json({ deleted: await manager.deleteSessionById(c.req.query('id') ?? '') }));
  // Test hooks (this isolate's sync client and cache).
  app.post('/__test/sync', async (c) => {
    await sync?.sync();
    return c.json({ cursor: sync?.cursor ?? null });
  });
  app.get('/__test/state', (c) => c.json({ cursor: sync?.cursor ?? null, applied: [...applied.keys()], resets }));
  app.get('/__test/applied/:id', (c) => c.json({ at: applied.get(c.req.param('id')) ?? null }));
  app.post('/__test/warm', async (c) => {
    const tokens = (await c.req.json()) as string[];
    let cached = 0;
    for (let i = 0; i < tokens.length; i += 6) {
      const got = await Promise.all(tokens.slice(i, i + 6).map((t) => manager.getSession(t, { touch: false })));
      cached += got.filter((s) => s !== null).length;
    }
    return c.json({ cached });
  });
  app.get('/__test/cached', (c) => c.json(manager.cache.ids()));
  app.all('/__test/object/*', (c) => {
    const url = new URL(c.req.url);
    return stub(c.env as TestAppEnv).fetch(
      new Request(`https://object${url.pathname.slice('/__test/object'.length)}${url.search}`, c.req.raw),
    );
  });
  return app;
}

let app: ReturnType<typeof setUp> | undefined;

export default {
  fetch(request: Request, env: TestAppEnv, ctx: ExecutionContext) {
    app ??= setUp(env);
    return app.fetch(request, env, ctx);
  },
};

/** SessionSyncObject plus test hooks answered before the library sees the request (they wake nothing). */
export class TestSessionSync extends SessionSyncObject<TestAppEnv> {
  readonly #state: DurableObjectStateLike & { abort?: (reason?: string) => void };
  readonly #instance = crypto.randomUUID();
  #alarms = 0;

  constructor(state: DurableObjectStateLike, env: TestAppEnv) {
    super(state, env);
    this.#state = state;
  }

  override async fetch(request: Request): Promise<Response> {
    const path = new URL(request.url).pathname;
    if (path === '/__test/info') return Response.json({ instance: this.#instance, alarms: this.#alarms });
    if (path === '/__test/abort') {
      // What a crash does: the object's memory is gone, its storage (cursor, alarm) stays.
      this.#state.abort?.('test: aborted mid-burst');
      return new Response('abort() not available', { status: 501 });
    }
    return super.fetch(request);
  }

  override async alarm(): Promise<void> {
    this.#alarms++;
    return super.alarm();
  }
}
