// pg-edge-session/hyperdrive inside workerd (Miniflare): a Worker with a Hyperdrive binding whose local
// connection string points at the real PostgreSQL (workerd opens real TCP sockets to it, as `wrangler dev`
// does with `localConnectionString`; Hyperdrive's cache is not simulated locally, see
// test/db/cacheability.test.ts), node-postgres and postgres.js as the driver in turn (a client per statement,
// closed after the response through waitUntil), two app isolates and the Durable Object host between them.
import { drizzle } from 'drizzle-orm/node-postgres';
import { Miniflare } from 'miniflare';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { bundleWorker, COMPATIBILITY_DATE, CookieJar } from '../../harness/workerd.ts';
import { migrate } from '../../src/migrate.ts';
import { databaseUrl, dropSchema, uniqueSchema } from '../support/db.ts';

const APP_ENTRY = new URL('../support/hyperdrive-app.ts', import.meta.url).pathname;
const MAX_STALENESS = 1000;
const SYNC_INTERVAL = 100;
/** As test/system/workerd.test.ts: maxStaleness + syncInterval + a margin for workerd's clock, not for speed. */
const BOUND = MAX_STALENESS + SYNC_INTERVAL + 150;
const APPLICATION_NAME = 'pges-hyperdrive-test';

type Me = { id: string; userId: string; version: number; attributes: { theme?: string } } | null;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

type Driver = 'node-postgres' | 'postgres-js';

for (const driver of ['node-postgres', 'postgres-js'] as const satisfies readonly Driver[])
  describe(`pg-edge-session/hyperdrive in workerd (Miniflare Hyperdrive binding, ${driver})`, () => {
    let admin: pg.Pool;
    let schemaName: string;
    let mf: Miniflare;
    let apps: Record<1 | 2, { fetch(url: string, init?: RequestInit): Promise<Response> }>;

    beforeAll(async () => {
      admin = new pg.Pool({ connectionString: databaseUrl(), max: 2 });
      schemaName = uniqueSchema(`hyperdrive_${driver === 'postgres-js' ? 'pgjs' : 'pg'}`);
      await migrate(drizzle(admin), { schemaName });
      const script = await bundleWorker(APP_ENTRY, { nodeBuiltins: true });
      const modules = [{ type: 'ESModule' as const, path: 'app.mjs', contents: script }];
      // Miniflare wants a password in the string; the local PostgreSQL trusts loopback and ignores it.
      const url = new URL(databaseUrl());
      url.password ||= 'unused';
      const vars = {
        SESSION_SCHEMA: schemaName,
        MAX_STALENESS_MS: String(MAX_STALENESS),
        SYNC_INTERVAL_MS: String(SYNC_INTERVAL),
        DRIVER: driver,
      };
      const app = (name: string) => ({
        name,
        modules,
        compatibilityDate: COMPATIBILITY_DATE,
        compatibilityFlags: ['nodejs_compat'],
        bindings: vars,
        hyperdrives: { HYPERDRIVE: url.toString() },
        durableObjects: { SESSION_SYNC: { className: 'SessionSyncObject', scriptName: 'sync', useSQLite: true } },
      });
      mf = new Miniflare({
        workers: [
          app('app1'),
          app('app2'),
          {
            name: 'sync',
            modules,
            compatibilityDate: COMPATIBILITY_DATE,
            compatibilityFlags: ['nodejs_compat'],
            // The object keeps its own LISTEN connection (Neon's driver through the local WebSocket proxy).
            bindings: {
              ...vars,
              DATABASE_URL: databaseUrl(),
              NEON_WS_PROXY: `127.0.0.1:${inject('wsProxyPort')}/v2`,
              SESSION_SYNC_POLL_INTERVAL_MS: '100',
            },
            durableObjects: { SESSION_SYNC: { className: 'SessionSyncObject', useSQLite: true } },
          },
        ],
      });
      await mf.ready;
      apps = { 1: await mf.getWorker('app1'), 2: await mf.getWorker('app2') } as unknown as typeof apps;
    });

    afterAll(async () => {
      await mf?.dispose();
      if (admin) {
        await dropSchema(admin, schemaName);
        await admin.end();
      }
    });

    async function send(n: 1 | 2, jar: CookieJar, method: 'GET' | 'POST', path: string) {
      const cookie = jar.header();
      const res = await apps[n].fetch(`http://app.test${path}`, { method, headers: cookie ? { cookie } : {} });
      jar.take(res as unknown as Response);
      expect(res.status, `${method} ${path}`).toBe(200);
      return (await res.json()) as unknown;
    }
    const me = async (n: 1 | 2, jar: CookieJar) => (await send(n, jar, 'GET', '/me')) as Me;
    const row = async (id: string) =>
      (await admin.query(`SELECT version, attributes FROM "${schemaName}".sessions WHERE id = $1`, [id])).rows[0] as
        | { version: number; attributes: { theme?: { v: string } } }
        | undefined;
    const openConnections = async () =>
      Number(
        (
          await admin.query(
            'SELECT count(*)::int AS n FROM pg_stat_activity WHERE application_name = $1 AND datname = current_database()',
            [APPLICATION_NAME],
          )
        ).rows[0].n,
      );
    async function waitForNoConnections(): Promise<number> {
      const deadline = Date.now() + 5000;
      while ((await openConnections()) > 0 && Date.now() < deadline) await sleep(50);
      return openConnections();
    }

    it('signs in, reads, updates and signs out over real sockets; every client is closed afterwards', async () => {
      const jar = new CookieJar();
      const { id } = (await send(1, jar, 'POST', '/login?user=alice')) as { id: string };
      expect(jar.get('session')).toMatch(/^[A-Za-z0-9_-]{43}$/);
      expect(await row(id)).toMatchObject({ version: 1, attributes: { theme: { v: 'light' } } });
      expect(await me(1, jar)).toMatchObject({ id, userId: 'alice', version: 1, attributes: { theme: 'light' } });

      await send(1, jar, 'POST', '/theme?theme=dark');
      expect(await row(id)).toMatchObject({ version: 2, attributes: { theme: { v: 'dark' } } });
      expect(await me(1, jar)).toMatchObject({ id, version: 2, attributes: { theme: 'dark' } });
      // The other isolate has no cache entry: a miss, read through its own Hyperdrive connection.
      expect(await me(2, jar)).toMatchObject({ id, version: 2, attributes: { theme: 'dark' } });

      // The app's own statement beside the library's: drizzle-orm's postgres-js driver, a client per request.
      expect(await send(2, jar, 'GET', '/own-count?user=alice')).toEqual({ n: 1 });

      expect(await send(1, jar, 'POST', '/logout')).toEqual({ deleted: true });
      expect(jar.get('session')).toBeUndefined();
      expect(await row(id)).toBeUndefined();
      expect(await send(2, jar, 'GET', '/own-count?user=alice')).toEqual({ n: 0 });
      // Connections of the Worker (application_name) do not outlive their requests' waitUntil work.
      expect(await waitForNoConnections()).toBe(0);
    });

    it('a sign-out in one isolate is seen by the other through the Durable Object host within the bound', async () => {
      const jar = new CookieJar();
      const { id } = (await send(1, jar, 'POST', '/login?user=bob')) as { id: string };
      // Isolate 2 caches the session (the second read is a hit).
      expect(await me(2, jar)).toMatchObject({ id });
      expect(await me(2, jar)).toMatchObject({ id });
      const copy = new CookieJar();
      copy.take(new Response(null, { headers: { 'set-cookie': `session=${jar.get('session')}; Path=/` } }));
      expect(await send(1, jar, 'POST', '/logout')).toEqual({ deleted: true });
      const revokedAt = Date.now();
      let firstRejectedAfter: number | undefined;
      while (Date.now() - revokedAt < BOUND) {
        const s = await me(2, copy);
        if (s === null) firstRejectedAfter ??= Date.now() - revokedAt;
        else expect(firstRejectedAfter, 'served again after being rejected').toBeUndefined();
        await sleep(25);
      }
      expect(await me(2, copy)).toBeNull();
      expect(firstRejectedAfter).toBeDefined();
      console.log(`[hyperdrive] sign-out seen by the other isolate after ~${firstRejectedAfter} ms (bound ${MAX_STALENESS} ms)`);
    });

    it(`sends the hot statements as named prepared statements through the app's ${driver} client`, async () => {
      const before = ((await (await apps[1].fetch('http://app.test/__test/named')).json()) as string[]).length;
      const jar = new CookieJar();
      await send(1, jar, 'POST', '/login?user=carol');
      await send(2, jar, 'GET', '/me');
      await send(1, jar, 'POST', '/theme?theme=dark');
      await send(1, jar, 'POST', '/logout');
      const named1 = ((await (await apps[1].fetch('http://app.test/__test/named')).json()) as string[]).slice(before);
      const named2 = (await (await apps[2].fetch('http://app.test/__test/named')).json()) as string[];
      // create, update, delete on isolate 1 and at least the get on isolate 2, each answered (the rows above).
      expect(named1.length).toBeGreaterThanOrEqual(3);
      expect(named2.length).toBeGreaterThanOrEqual(1);
      if (driver === 'node-postgres') {
        expect(new Set(named1).size).toBe(3);
        for (const name of [...named1, ...named2]) expect(name).toMatch(/^pg_edge_session_[0-9a-f]{16}$/);
      } else {
        // postgres.js names a statement itself (a random prefix per connection and a counter), as recorded from
        // its answered query; the statement was parsed under that name, then bound and executed by it.
        for (const name of [...named1, ...named2]) expect(name).toMatch(/^[0-9a-z]+\d$/);
      }
    });

    it("a client's close is not on the request's path: the response comes while the close is still under way", async () => {
      // Each close held back 2 s inside the client: a response that waited for it would come after that.
      await apps[1].fetch('http://app.test/__test/slow-close?ms=2000', { method: 'POST' });
      try {
        const jar = new CookieJar();
        const { id } = (await send(1, jar, 'POST', '/login?user=dave')) as { id: string };
        expect(await row(id)).toMatchObject({ version: 1 });
        // The login's client is still closing now (its end() is waited on in waitUntil, not by the response).
        expect(((await (await apps[1].fetch('http://app.test/__test/closing')).json()) as { closing: number }).closing).toBeGreaterThan(0);
      } finally {
        await apps[1].fetch('http://app.test/__test/slow-close?ms=0', { method: 'POST' });
      }
      expect(await waitForNoConnections()).toBe(0);
    });
  });
