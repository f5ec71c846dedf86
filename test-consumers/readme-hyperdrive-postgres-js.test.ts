// README "Hyperdrive with postgres.js" as a user copies it: the Worker written as the README has it, with the
// README's wrangler.toml lines, bundled by wrangler in a project that installs the tarball, the peers and
// postgres.js (no node-postgres: the Worker can only have used postgres.js), then driven in Miniflare
// through a Hyperdrive binding whose local connection string is a fresh database of the test's own.
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Miniflare } from 'miniflare';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { snippet } from './readme.ts';
import { COMPATIBILITY_DATE, mustRun, npmInstall, PEERS, type PeerSet, wranglerBundle } from './support.ts';

const projects = inject('projects');
const databaseUrl = inject('databaseUrl');
const wsProxy = `127.0.0.1:${inject('wsProxyPort')}/v2`;
const SETS = Object.keys(PEERS) as PeerSet[];
/** The repository's devDependency (package.json), 3.4.5 or later as Cloudflare's Hyperdrive guide asks. */
const POSTGRES_JS = 'postgres@3.4.9';

let admin: pg.Pool;
const databases: string[] = [];
beforeAll(() => {
  admin = new pg.Pool({ connectionString: databaseUrl, max: 2 });
});
afterAll(async () => {
  for (const d of databases) await admin.query(`DROP DATABASE IF EXISTS "${d}" WITH (FORCE)`);
  await admin.end();
});

describe.each(SETS)('README "Hyperdrive with postgres.js" in workerd (%s peers)', (set) => {
  it('the Worker and the wrangler.toml lines as written, bundled by wrangler, driven in Miniflare through a Hyperdrive binding', async () => {
    const cwd = join(projects.root, `hyperdrive-postgres-js-${set}`);
    mkdirSync(cwd, { recursive: true });
    writeFileSync(
      join(cwd, 'package.json'),
      `${JSON.stringify({ name: `consumer-hyperdrive-postgres-js-${set}`, private: true, type: 'module' })}\n`,
    );
    await npmInstall(cwd, [projects.tarball, ...Object.entries(PEERS[set]).map(([n, v]) => `${n}@${v}`), POSTGRES_JS]);
    writeFileSync(join(cwd, 'readme.ts'), snippet('README.md', 'hyperdrive-postgres-js-app'));
    writeFileSync(
      join(cwd, 'wrangler.toml'),
      `name = "pg-edge-session-readme-hyperdrive-postgres-js"\nmain = "readme.ts"\ncompatibility_date = "${COMPATIBILITY_DATE}"\n${snippet('README.md', 'hyperdrive-wrangler-toml')}\n${snippet('README.md', 'workers-wrangler-toml')}`,
    );
    const outdir = join(cwd, 'out');
    await wranglerBundle(cwd, 'wrangler.toml', outdir);

    const name = `readme_hyperdrive_pgjs_${set}_${Math.random().toString(36).slice(2, 8)}`;
    await admin.query(`CREATE DATABASE "${name}"`);
    databases.push(name);
    const url = new URL(databaseUrl);
    url.pathname = `/${name}`;
    // The tables, migrated through postgres.js too (drizzle's postgres-js driver).
    await mustRun(
      process.execPath,
      [
        '--input-type=module',
        '-e',
        `import postgres from 'postgres'; import { drizzle } from 'drizzle-orm/postgres-js'; import { migrate } from 'pg-edge-session/migrate';
         const sql = postgres(process.env.DATABASE_URL, { max: 1, onnotice: () => {} }); await migrate(drizzle(sql)); await sql.end();`,
      ],
      { cwd, env: { DATABASE_URL: url.toString() } },
    );
    // What `wrangler dev` gives the binding from localConnectionString (Miniflare wants a password in it).
    const local = new URL(url);
    local.password ||= 'unused';
    const mf = new Miniflare({
      modules: [{ type: 'ESModule', path: 'readme.js', contents: readFileSync(join(outdir, 'readme.js'), 'utf8') }],
      compatibilityDate: COMPATIBILITY_DATE,
      compatibilityFlags: ['nodejs_compat'],
      hyperdrives: { HYPERDRIVE: local.toString() },
      bindings: { SESSION_SYNC_DATABASE_URL: url.toString(), NEON_WS_PROXY: wsProxy },
      durableObjects: { SESSION_SYNC: { className: 'SessionSyncObject', useSQLite: true } },
    });
    try {
      const base = 'https://app.example';
      const login = await mf.dispatchFetch(`${base}/login`, { method: 'POST', redirect: 'manual', headers: { origin: base } });
      expect(login.status, await login.clone().text()).toBe(302);
      const cookie = /^[^=;]*session=[^;]+/.exec(login.headers.get('set-cookie') ?? '')?.[0];
      expect(cookie).toBeDefined();
      const headers = { cookie: cookie as string, origin: base };
      expect(await (await mf.dispatchFetch(`${base}/`, { headers })).json()).toEqual({ theme: 'dark' });
      // The app's own statement through drizzle's postgres-js driver sees the row the library wrote.
      expect(await (await mf.dispatchFetch(`${base}/signed-in`, { headers })).json()).toEqual({ n: 1 });
      // Written through the binding into the database it points at; the attributes a JSON object, not a string.
      const db = new pg.Client({ connectionString: url.toString() });
      await db.connect();
      try {
        expect((await db.query('SELECT user_id, attributes FROM sessions')).rows).toMatchObject([
          { user_id: 'alice', attributes: { theme: { v: 'dark' } } },
        ]);
      } finally {
        await db.end();
      }
      expect(await (await mf.dispatchFetch(`${base}/logout`, { method: 'POST', headers })).json()).toEqual({ deleted: true });
      expect(await (await mf.dispatchFetch(`${base}/`, { headers })).json()).toBeNull();
      expect(await (await mf.dispatchFetch(`${base}/signed-in`, { headers })).json()).toEqual({ n: 0 });
    } finally {
      await mf.dispose();
    }
  });
});
