// The packages as users get them: the tarballs installed into fresh projects (see global-setup.ts),
// type-checked by the consumer's own tsc, and run on Node 20, Bun, Deno, Vercel Edge (edge-runtime) and
// workerd (a Worker bundled by wrangler, in Miniflare), with the newest and the oldest peers the ranges
// allow. Runtimes without TCP (edge-runtime, workerd) use the Neon driver through the local WebSocket proxy.
// The sync worker's package (pg-edge-session-worker) runs from its own install with plain node.
import { spawn } from 'node:child_process';

import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { drizzle } from 'drizzle-orm/node-postgres';
import { build } from 'esbuild';
import { Miniflare } from 'miniflare';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { SessionManager } from '../src/core/manager.ts';
import { snippet } from './readme.ts';
import { COMPATIBILITY_DATE, mustRun, PEERS, type PeerSet, REPO, run, wranglerBundle } from './support.ts';

const projects = inject('projects');
const databaseUrl = inject('databaseUrl');
const wsProxy = `127.0.0.1:${inject('wsProxyPort')}/v2`;
const SETS = Object.keys(PEERS) as PeerSet[];
const STEPS = ['create', 'get', 'rotate', 'delete', 'middleware'];
const EDGE_EXPORTS = [
  '.',
  './hono',
  './neon',
  './hyperdrive',
  './schema',
  './migrate',
  './feed',
  './protocol',
  './host',
  './durable-object',
];

let admin: pg.Pool;
const schemas: string[] = [];
function schema(label: string): string {
  const name = `cons_${label}_${Math.random().toString(36).slice(2, 8)}`;
  schemas.push(name);
  return name;
}

beforeAll(() => {
  admin = new pg.Pool({ connectionString: databaseUrl, max: 2 });
});
afterAll(async () => {
  for (const s of schemas) {
    await admin.query(`DROP SCHEMA IF EXISTS "${s}" CASCADE`);
    await admin.query(`DROP TABLE IF EXISTS drizzle."__drizzle_migrations_${s}"`);
  }
  await admin.end();
});

/** Runs node-run.mjs (migrate, every export, the scenario on node-postgres) with a runtime. */
async function nodeRun(file: string, args: string[], cwd: string, label: string) {
  const schemaName = schema(label);
  const out = await mustRun(file, [...args, 'node-run.mjs'], { cwd, env: { DATABASE_URL: databaseUrl, CONSUMER_SCHEMA: schemaName } });
  const report = JSON.parse(out.trim().split('\n').at(-1) as string);
  expect(report.steps).toEqual(STEPS);
  expect(report.migrationsApplied).toBeGreaterThan(0);
  expect(Object.keys(report.exports)).toEqual(EDGE_EXPORTS.map((e) => `pg-edge-session${e.slice(1)}`));
  return report;
}

/** migrate() from the installed package (Node, node-postgres), for the runtimes that run without TCP. */
async function migrated(set: PeerSet, label: string): Promise<string> {
  const schemaName = schema(label);
  await mustRun(
    process.execPath,
    [
      '--input-type=module',
      '-e',
      `import pg from 'pg'; import { drizzle } from 'drizzle-orm/node-postgres'; import { migrate } from 'pg-edge-session/migrate';
       const pool = new pg.Pool({ connectionString: process.env.DATABASE_URL }); await migrate(drizzle(pool), { schemaName: process.env.S }); await pool.end();`,
    ],
    { cwd: projects.node[set], env: { DATABASE_URL: databaseUrl, S: schemaName } },
  );
  return schemaName;
}

describe('the packed package', () => {
  it('ships dist/ (JavaScript, declarations, source maps), the SQL migrations and the README; no TypeScript sources', async () => {
    const files = (await mustRun('tar', ['-tzf', projects.tarball], { cwd: projects.root })).trim().split('\n');
    expect(files).toContain('package/dist/src/index.js');
    expect(files).toContain('package/dist/src/index.d.ts');
    expect(files).toContain('package/dist/src/index.js.map');
    expect(files).toContain('package/dist/src/neon.js');
    expect(files).toContain('package/dist/bin/pg-edge-session.js');
    expect(files).toContain('package/drizzle/0000_init.sql');
    expect(files).toContain('package/README.md');
    expect(files.filter((f) => f.endsWith('.ts') && !f.endsWith('.d.ts'))).toEqual([]);
    const pkg = JSON.parse(readFileSync(join(projects.edge.newest, 'node_modules/pg-edge-session/package.json'), 'utf8'));
    for (const [sub, target] of Object.entries(pkg.exports as Record<string, { types: string; default: string } | string>)) {
      if (typeof target === 'string') continue;
      expect(files, sub).toContain(`package/${target.types.slice(2)}`);
      expect(files, sub).toContain(`package/${target.default.slice(2)}`);
    }
  });

  it("names the same subpaths in package.json exports as tsconfig.paths.json's paths (the repository's own resolution)", () => {
    const pkg = JSON.parse(readFileSync(join(REPO, 'package.json'), 'utf8'));
    const tsconfig = readFileSync(join(REPO, 'tsconfig.paths.json'), 'utf8');
    for (const [sub, target] of Object.entries(pkg.exports as Record<string, { default: string } | string>)) {
      if (typeof target === 'string') continue;
      const source = target.default.replace(/^\.\/dist\//, './').replace(/\.js$/, '.ts');
      expect(tsconfig, sub).toContain(`"pg-edge-session${sub.slice(1)}": ["${source}"]`);
    }
  });

  it('without the optional Neon peer (hono, drizzle-orm and pg only), plain node imports every entry but ./neon and ./durable-object', async () => {
    const entries = EDGE_EXPORTS.filter((e) => e !== './neon' && e !== './durable-object');
    // Each entry in a process of its own, so one entry's imports never make another's look importable.
    const script = `const e = process.argv[1];
      const r = await import(e).then((m) => ({ names: Object.keys(m).length }), (err) => ({ error: err.code ?? String(err) }));
      if (e === 'pg-edge-session/host' && r.names) {
        // neonHostDb is exported all the same; it needs Neon's driver only once it connects, and says so.
        const { sql } = await import('drizzle-orm');
        const db = (await import(e)).neonHostDb({ databaseUrl: 'postgres://u@127.0.0.1:9/db' });
        r.neonHost = await db.pool.execute(sql\`SELECT 1\`).then(() => 'connected', (err) => ({ name: err.name, code: err.code, message: err.message }));
      }
      console.log(JSON.stringify(r));`;
    const load = async (entry: string) => {
      const out = await mustRun(process.execPath, ['--input-type=module', '-e', script, entry], { cwd: projects.bare });
      return JSON.parse(out.trim().split('\n').at(-1) as string);
    };
    for (const entry of entries) {
      const r = await load(`pg-edge-session${entry.slice(1)}`);
      expect(r, entry).toEqual(expect.objectContaining({ names: expect.any(Number) }));
      if (entry === './host') {
        expect(r.neonHost).toEqual({
          name: 'ConfigError',
          code: 'CONFIG_INVALID',
          message: expect.stringContaining('@neondatabase/serverless'),
        });
      }
    }
    // The project really has no Neon: the entries that need it fail to load.
    expect(await load('pg-edge-session/neon')).toEqual({ error: 'ERR_MODULE_NOT_FOUND' });
    expect(await load('pg-edge-session/durable-object')).toEqual({ error: 'ERR_MODULE_NOT_FOUND' });
  });

  it.each(SETS)('an edge app (%s peers) installs the library with its two dependencies, and nothing of the worker', (set) => {
    const { packages, bytes } = projects.edgeInstall[set];
    const pkg = JSON.parse(readFileSync(join(projects.edge[set], 'node_modules/pg-edge-session/package.json'), 'utf8'));
    expect(Object.keys(pkg.dependencies)).toEqual(['eventsource-parser', 'lru-cache']);
    expect(Object.keys(pkg.peerDependencies).sort()).toEqual(['@neondatabase/serverless', 'drizzle-orm', 'hono']);
    expect(pkg.bin).toEqual({ 'pg-edge-session': './dist/bin/pg-edge-session.js' });
    for (const serverOnly of ['pg', 'pg-pool', 'ws', 'prom-client', '@hono/node-server', 'tsx', 'esbuild'])
      expect(packages).not.toContain(serverOnly);
    // With the newest peers, that is all there is (Neon 1.0 itself still depended on @types/pg and pg-types).
    if (set === 'newest') {
      expect(packages).toEqual(['@neondatabase/serverless', 'drizzle-orm', 'eventsource-parser', 'hono', 'lru-cache', 'pg-edge-session']);
    }
    console.log(`[consumers] edge app install (${set} peers): ${packages.length} packages, ${(bytes / 1e6).toFixed(1)} MB`);
  });

  it("runs README's `npx pg-edge-session ws-proxy` from the edge app's install (plain node, no ws package), and Neon's driver reaches PostgreSQL through it", async () => {
    const cwd = projects.edge.newest;
    expect(snippet('README.md', 'workers-ws-proxy').replace(/#.*$/gm, '').trim()).toBe('npx pg-edge-session ws-proxy');
    expect(/^NEON_WS_PROXY="([^"]+)"/m.exec(snippet('README.md', 'workers-dev-vars'))?.[1]).toBe('127.0.0.1:5433/v2');
    // As written, but on a free port rather than 5433 (this machine may use it).
    const proc = spawn(join(cwd, 'node_modules/.bin/pg-edge-session'), ['ws-proxy', '--port', '0'], {
      cwd,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const output: string[] = [];
    const exited = new Promise<number | null>((r) => proc.on('exit', (code) => r(code)));
    try {
      // It prints the .dev.vars line to use.
      const proxy = await new Promise<string>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`ws-proxy did not listen:\n${output.join('')}`)), 15_000);
        const onData = (d: Buffer) => {
          output.push(d.toString());
          const m = /NEON_WS_PROXY="(127\.0\.0\.1:\d+\/v2)"/.exec(output.join(''));
          if (m) {
            clearTimeout(timer);
            resolve(m[1] as string);
          }
        };
        proc.stdout.on('data', onData);
        proc.stderr.on('data', onData);
      });
      const schemaName = await migrated('newest', 'ws_proxy_bin');
      // Node 20's own WebSocket (undici, behind a flag): the edge app installs no ws package.
      const out = await mustRun(
        process.execPath,
        [
          '--experimental-websocket',
          '--input-type=module',
          '-e',
          `import { neonSessions } from 'pg-edge-session/neon';
           const { manager } = neonSessions({ databaseUrl: process.env.DATABASE_URL, wsProxy: process.env.WS_PROXY, config: { schemaName: process.env.S } });
           const { session, token } = await manager.createSession('proxied', { big: 'x'.repeat(15000) });
           const read = await manager.getSession(token, { forceRefresh: true });
           console.log(JSON.stringify({ same: read?.id === session.id, big: read?.get('big')?.length, deleted: await manager.deleteSession(token) }));`,
        ],
        { cwd, env: { DATABASE_URL: databaseUrl, WS_PROXY: proxy, S: schemaName } },
      );
      expect(JSON.parse(out.trim().split('\n').at(-1) as string)).toEqual({ same: true, big: 15000, deleted: true });
      proc.kill('SIGTERM');
      expect(await exited, output.join('')).toBe(0);
    } finally {
      proc.kill('SIGKILL');
    }
  });
});

describe.each(SETS)('with the %s peers', (set) => {
  const peers = Object.entries(PEERS[set])
    .map(([n, v]) => `${n}@${v}`)
    .join(', ');

  it(`type-checks in the consumer's tsc 5.9 and 7.0: NodeNext strict, with exactOptionalPropertyTypes, bundler, and the library's declarations without skipLibCheck (${peers})`, async () => {
    const cwd = projects.node[set];
    const compilers = [
      ['tsc 5.9', join(cwd, 'node_modules/typescript/bin/tsc')],
      ['tsc 7.0', join(REPO, 'node_modules/.bin/tsc')],
    ] as const;
    const failures: string[] = [];
    for (const [name, tsc] of compilers) {
      for (const config of ['tsconfig.nodenext.json', 'tsconfig.exact.json', 'tsconfig.bundler.json']) {
        const r = await run(process.execPath, [tsc, '-p', config], { cwd });
        if (r.code !== 0 || r.stdout !== '') failures.push(`${name} ${config}:\n${r.stdout}${r.stderr}`);
      }
      // skipLibCheck false: the library's own .d.ts and the app must be clean. drizzle-orm's and Neon's
      // declarations have errors of their own there (mysql2/gel types they import, ...): counted, not ours.
      const r = await run(process.execPath, [tsc, '-p', 'tsconfig.libcheck.json'], { cwd });
      const errors = r.stdout.split('\n').filter((l) => /error TS\d+/.test(l));
      const ours = errors.filter((l) => !/^node_modules\/(?!pg-edge-session\/)/.test(l));
      if (ours.length > 0) failures.push(`${name} tsconfig.libcheck.json:\n${ours.join('\n')}`);
      // README.md "Install" says drizzle-orm's declarations need skipLibCheck: true; once they need it no
      // more, that sentence goes.
      if (!errors.some((l) => /^node_modules\/drizzle-orm\//.test(l))) {
        failures.push(
          `${name} tsconfig.libcheck.json: no error in drizzle-orm's declarations, but README.md "Install" says they need skipLibCheck`,
        );
      }
      console.log(
        `[consumers] ${name}, skipLibCheck false (${set} peers): ${errors.length - ours.length} errors in other packages' declarations, none in pg-edge-session's`,
      );
    }
    // The edge app's Worker: bundler resolution, Web APIs only (no Node types), exactOptionalPropertyTypes.
    for (const [name, tsc] of compilers) {
      const r = await run(process.execPath, [tsc, '-p', 'worker/tsconfig.json'], { cwd: projects.edge[set] });
      if (r.code !== 0 || r.stdout !== '') failures.push(`${name} worker/tsconfig.json:\n${r.stdout}${r.stderr}`);
    }
    expect(failures.join('\n\n')).toBe('');
  });

  it('Node 20: plain node imports every export and runs create → get → rotate → delete (node-postgres)', async () => {
    const report = await nodeRun(process.execPath, [], projects.node[set], `${set}_node`);
    expect(report.runtime).toMatch(/^node v20\./);
  });

  it('Bun 1.4: the same script (node-postgres)', async () => {
    const report = await nodeRun(join(projects.runtimes, 'node_modules/.bin/bun'), [], projects.node[set], `${set}_bun`);
    expect(report.runtime).toBe('bun 1.4.5');
  });

  it('Deno 2.9: the same script (node-postgres, npm packages from node_modules)', async () => {
    const report = await nodeRun(
      join(projects.runtimes, 'node_modules/.bin/deno'),
      ['run', '--allow-all'],
      projects.node[set],
      `${set}_deno`,
    );
    expect(report.runtime).toBe('deno 2.9.6');
  });

  it("Vercel Edge (edge-runtime 4): a bundle made with Vercel's export conditions, Neon over WebSocket, the library's Neon executor", async () => {
    const cwd = projects.edge[set];
    const bundled = await build({
      entryPoints: [join(cwd, 'edge-entry.mjs')],
      absWorkingDir: cwd,
      bundle: true,
      write: false,
      format: 'iife',
      platform: 'browser',
      target: 'es2022',
      conditions: ['edge-light', 'worker', 'browser'],
      logLevel: 'silent',
    });
    const code = bundled.outputFiles[0]?.text as string;
    expect(code).not.toMatch(/require\(["']node:/);
    const { EdgeRuntime } = createRequire(join(projects.runtimes, 'package.json'))('edge-runtime');
    const runtime = new EdgeRuntime({ initialCode: code });
    const schemaName = await migrated(set, `${set}_edge`);
    const res = await runtime.dispatchFetch('http://consumer.test/', {
      headers: { 'x-database-url': databaseUrl, 'x-ws-proxy': wsProxy, 'x-schema': schemaName },
    });
    const report = await res.json();
    expect(report.error).toBeUndefined();
    expect(report.steps).toEqual(STEPS);
    expect(Object.keys(report.exports)).toEqual(EDGE_EXPORTS.map((e) => `pg-edge-session${e.slice(1)}`));
  });

  it('workerd: the README Worker bundled by wrangler from the installed package (no nodejs_compat), its sync host the Durable Object, in Miniflare', async () => {
    const cwd = projects.edge[set];
    const outdir = join(cwd, 'out');
    await wranglerBundle(cwd, 'worker/wrangler.toml', outdir);
    const script = readFileSync(join(outdir, 'index.js'), 'utf8');
    // The size a user sees: README's app alone (the test Worker also imports every export).
    const readmeOut = join(cwd, 'out-readme');
    await wranglerBundle(cwd, 'worker/wrangler.readme.toml', readmeOut);
    const readme = readFileSync(join(readmeOut, 'readme.js'));
    console.log(
      `[consumers] Worker bundle of README's app (${set} peers, wrangler): ${(readme.length / 1024).toFixed(1)} KiB, ${(gzipSync(readme).length / 1024).toFixed(1)} KiB gzip`,
    );
    const schemaName = await migrated(set, `${set}_workerd`);
    const mf = new Miniflare({
      modules: [{ type: 'ESModule', path: 'index.js', contents: script }],
      compatibilityDate: COMPATIBILITY_DATE,
      bindings: { DATABASE_URL: databaseUrl, NEON_WS_PROXY: wsProxy, SESSION_SCHEMA: schemaName },
      // The library's Durable Object, exported by the Worker as README says (wrangler.toml's binding).
      durableObjects: { SESSION_SYNC: { className: 'SessionSyncObject', useSQLite: true } },
    });
    try {
      const scenario = (await (await mf.dispatchFetch('http://consumer.test/scenario')).json()) as { steps: string[]; exports: object };
      expect(scenario.steps).toEqual(STEPS);
      expect(Object.keys(scenario.exports)).toEqual(EDGE_EXPORTS.map((e) => `pg-edge-session${e.slice(1)}`));
      // The README app itself: sign in, read, sign out, with neonSessionMiddleware.
      const login = await mf.dispatchFetch('http://consumer.test/login', { method: 'POST', redirect: 'manual' });
      const cookie = /^session=[^;]+/.exec(login.headers.get('set-cookie') ?? '')?.[0];
      expect(login.status).toBe(302);
      expect(cookie).toBeDefined();
      expect(await (await mf.dispatchFetch('http://consumer.test/', { headers: { cookie: cookie as string } })).json()).toEqual({
        theme: 'dark',
      });
      expect(
        await (await mf.dispatchFetch('http://consumer.test/logout', { method: 'POST', headers: { cookie: cookie as string } })).json(),
      ).toEqual({
        deleted: true,
      });
      expect(await (await mf.dispatchFetch('http://consumer.test/', { headers: { cookie: cookie as string } })).json()).toBeNull();
      const { rows } = await admin.query(`SELECT count(*)::int AS n FROM "${schemaName}".sessions`);
      expect(rows[0].n).toBe(0);
      // The isolate's sync client polled the feed through the object (pg-edge-session/durable-object).
      const check = (await (await mf.dispatchFetch('http://consumer.test/sync-check')).json()) as {
        cursor: string | null;
        sources: string[];
        errors: string[];
      };
      expect(check.errors).toEqual([]);
      expect(check.sources).toEqual(['worker']);
      expect(check.cursor).toMatch(/^\d+:\d+:/);
    } finally {
      await mf.dispose();
    }
  });
});

describe('the sync worker package (pg-edge-session-worker), installed on its own', () => {
  const SECRET = 'consumer-worker-secret-0123456789-abcdef';

  it('ships built JavaScript, its declarations, the Dockerfile and deploy examples; depends on the library instead of copying it', async () => {
    const files = (await mustRun('tar', ['-tzf', projects.workerTarball], { cwd: projects.root })).trim().split('\n');
    for (const f of ['dist/cli.js', 'dist/main.js', 'dist/main.d.ts', 'Dockerfile', 'README.md']) expect(files).toContain(`package/${f}`);
    expect(files.filter((f) => f.endsWith('.ts') && !f.endsWith('.d.ts'))).toEqual([]);
    // The core (listener, feed, flush, cleanup) is the library's, imported by name: one implementation.
    expect(files.filter((f) => /hub|listen|touches|cleanup/.test(f))).toEqual([]);
    const main = readFileSync(join(projects.worker, 'node_modules/pg-edge-session-worker/dist/main.js'), 'utf8');
    expect(main).toContain("from 'pg-edge-session/host'");
  });

  it('installs its server dependencies and no tooling; the edge app installs none of them', () => {
    const { packages, bytes } = projects.workerInstall;
    for (const dep of ['pg-edge-session', 'pg-edge-session-worker', 'pg', 'ws', 'prom-client', '@hono/node-server', 'hono', 'drizzle-orm'])
      expect(packages).toContain(dep);
    for (const tooling of ['tsx', 'esbuild', 'typescript', 'vitest']) expect(packages).not.toContain(tooling);
    console.log(
      `[consumers] worker install (npm install pg-edge-session-worker): ${packages.length} packages, ${(bytes / 1e6).toFixed(1)} MB`,
    );
  });

  it("type-checks an app that embeds startWorker in the consumer's tsc 5.9 and 7.0 (NodeNext, exactOptionalPropertyTypes)", async () => {
    const failures: string[] = [];
    for (const tsc of [join(projects.node.newest, 'node_modules/typescript/bin/tsc'), join(REPO, 'node_modules/.bin/tsc')]) {
      const r = await run(process.execPath, [tsc, '-p', 'worker-app/tsconfig.json'], { cwd: projects.worker });
      if (r.code !== 0 || r.stdout !== '') failures.push(`${tsc}:\n${r.stdout}${r.stderr}`);
    }
    expect(failures.join('\n\n')).toBe('');
  });

  it('runs its bin with plain node: --help, --migrate, /healthz, a change delivered to a poll, SIGTERM exits 0', async () => {
    const bin = join(projects.worker, 'node_modules/.bin/pg-edge-session-worker');
    const help = await run(bin, ['--help'], { cwd: projects.worker });
    expect(help.code, help.stderr).toBe(0);
    expect(help.stdout).toContain('Usage: pg-edge-session-worker');

    const schemaName = schema('worker_bin');
    // As the Dockerfile starts it: Node itself is the process (the bin's #!/usr/bin/env node), configured by env.
    const proc = spawn(bin, ['--migrate'], {
      cwd: projects.worker,
      env: {
        ...process.env,
        DATABASE_URL: databaseUrl,
        PG_EDGE_SESSION_SECRET: SECRET,
        PG_EDGE_SESSION_SCHEMA: schemaName,
        HOST: '127.0.0.1',
        PORT: '0',
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const lines: string[] = [];
    const exited = new Promise<number | null>((r) => proc.on('exit', (code) => r(code)));
    try {
      const url = await new Promise<string>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`worker did not listen:\n${lines.join('\n')}`)), 30_000);
        const onData = (d: Buffer) => {
          lines.push(...d.toString().split('\n').filter(Boolean));
          const listening = lines.find((l) => l.includes('"msg":"worker listening"'));
          if (listening) {
            clearTimeout(timer);
            resolve(JSON.parse(listening).url);
          }
        };
        proc.stdout.on('data', onData);
        proc.stderr.on('data', onData);
        void exited.then((c) => reject(new Error(`worker exited with ${c}:\n${lines.join('\n')}`)));
      });
      expect(await (await fetch(`${url}/healthz`)).json()).toEqual({ ok: true });
      const auth = { authorization: `Bearer ${SECRET}` };
      expect((await fetch(`${url}/v1/changes`)).status).toBe(401);
      const manager = new SessionManager(drizzle(admin), { schemaName, cacheSize: 0 });
      const { session } = await manager.createSession('consumer-worker', { n: 1 });
      const first = (await (await fetch(`${url}/v1/changes`, { headers: auth })).json()) as { cursor: string };
      expect(await manager.deleteSessionById(session.id)).toBe(true);
      let delivered: string[] = [];
      const deadline = Date.now() + 10_000;
      while (!delivered.includes(session.id) && Date.now() < deadline) {
        const r = (await (await fetch(`${url}/v1/changes?after=${encodeURIComponent(first.cursor)}`, { headers: auth })).json()) as {
          ids: string[];
        };
        delivered = r.ids;
        if (!delivered.includes(session.id)) await new Promise((res) => setTimeout(res, 50));
      }
      expect(delivered).toContain(session.id);
    } finally {
      proc.kill('SIGTERM');
    }
    expect(await exited).toBe(0);
    expect(lines.join('\n')).toContain('"msg":"worker stopped"');
  });
});

describe('drizzle-kit 0.31 in the user project, and the SQL for migrations the user owns', () => {
  const PREFIX = 'app_';

  /** Tables, columns, indexes, constraints, functions, triggers and recorded tags of one schema, schema name blanked out. */
  async function catalog(schemaName: string) {
    const q = async (text: string) =>
      JSON.stringify((await admin.query(text, [schemaName])).rows)
        .replaceAll(`"${schemaName}"`, 'SCHEMA')
        .replaceAll(schemaName, 'SCHEMA');
    return {
      tables: await q(
        `SELECT c.relname, c.relkind, c.reloptions FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = $1 AND c.relkind IN ('r','p') ORDER BY 1`,
      ),
      columns: await q(
        `SELECT c.relname, a.attname, format_type(a.atttypid, a.atttypmod) AS type, a.attnotnull, pg_get_expr(d.adbin, d.adrelid) AS def
         FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace
         LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
         WHERE n.nspname = $1 AND c.relkind = 'r' AND a.attnum > 0 AND NOT a.attisdropped AND c.relname <> '__drizzle_migrations' ORDER BY 1, 2`,
      ),
      indexes: await q(
        `SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = $1 AND tablename <> '__drizzle_migrations' ORDER BY 1`,
      ),
      constraints: await q(
        `SELECT conname, pg_get_constraintdef(co.oid) AS def FROM pg_constraint co JOIN pg_namespace n ON n.oid = co.connamespace
         WHERE n.nspname = $1 AND conname NOT LIKE '__drizzle%' ORDER BY 1`,
      ),
      functions: await q(
        `SELECT p.proname, pg_get_function_identity_arguments(p.oid) AS args, pg_get_functiondef(p.oid) AS def
         FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace WHERE n.nspname = $1 ORDER BY 1, 2`,
      ),
      triggers: await q(
        `SELECT t.tgname, pg_get_triggerdef(t.oid) AS def FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid
         JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = $1 AND NOT t.tgisinternal ORDER BY 1`,
      ),
      tags: await q(`SELECT string_agg(tag, ',' ORDER BY tag) AS tags FROM "${schemaName}"."${PREFIX}session_migrations" WHERE $1 <> ''`),
    };
  }

  async function migrateWithPackage(cwd: string, schemaName: string): Promise<string[]> {
    const out = await mustRun(
      process.execPath,
      [
        '--input-type=module',
        '-e',
        `import pg from 'pg'; import { drizzle } from 'drizzle-orm/node-postgres'; import { migrate } from 'pg-edge-session/migrate';
         const pool = new pg.Pool({ connectionString: process.env.DATABASE_URL });
         const r = await migrate(drizzle(pool), { schemaName: process.env.S, tablePrefix: process.env.P }); await pool.end();
         console.log(JSON.stringify(r.applied));`,
      ],
      { cwd, env: { DATABASE_URL: databaseUrl, S: schemaName, P: PREFIX } },
    );
    return JSON.parse(out);
  }

  const drizzleKit = (cwd: string, args: string[], env: Record<string, string>) =>
    run(process.execPath, [join(cwd, 'node_modules/drizzle-kit/bin.cjs'), ...args], {
      cwd: join(cwd, 'drizzle'),
      env: { DATABASE_URL: databaseUrl, SESSION_PREFIX: PREFIX, ...env },
    });

  it.each(SETS)(
    'migrate() owns the tables (%s peers): `drizzle-kit push` with the tables listed proposes nothing (no drop)',
    async (set) => {
      const cwd = projects.node[set];
      const schemaName = schema(`${set}_push`);
      expect((await migrateWithPackage(cwd, schemaName)).length).toBeGreaterThan(0);
      const push = await drizzleKit(cwd, ['push', '--verbose'], { SESSION_SCHEMA: schemaName });
      const out = `${push.stdout}${push.stderr}`;
      expect(push.code, out).toBe(0);
      // A DROP here means a table migrate() makes is missing from the schema file (and from README's list).
      expect(out).not.toMatch(/DROP|ALTER TABLE|CREATE TABLE/);
      expect(out).toContain('No changes detected');
    },
  );

  it.each(SETS)(
    'the user owns the migrations (%s peers): drizzle-kit generate + the CLI custom migration = the database migrate() makes; then generate and push find nothing',
    async (set) => {
      const cwd = projects.node[set];
      const reference = schema(`${set}_ref`);
      await migrateWithPackage(cwd, reference);

      const owned = schema(`${set}_own`);
      const env = { SESSION_SCHEMA: owned, MIGRATIONS_DIR: `./migrations-${owned}`, WITH_USERS: '1' };
      const gen = await drizzleKit(cwd, ['generate', '--name=init'], env);
      expect(gen.code, `${gen.stdout}${gen.stderr}`).toBe(0);
      const custom = await drizzleKit(cwd, ['generate', '--custom', '--name=pg_edge_session'], env);
      expect(custom.code, `${custom.stdout}${custom.stderr}`).toBe(0);
      const file = join(cwd, 'drizzle', `migrations-${owned}`, '0001_pg_edge_session.sql');
      const sql = await mustRun(
        process.execPath,
        [
          join(cwd, 'node_modules/pg-edge-session/dist/bin/pg-edge-session.js'),
          'sql',
          '--mode',
          'drizzle-kit',
          '--schema',
          owned,
          '--prefix',
          PREFIX,
        ],
        { cwd },
      );
      writeFileSync(file, sql);
      const mig = await drizzleKit(cwd, ['migrate'], env);
      expect(mig.code, `${mig.stdout}${mig.stderr}`).toBe(0);

      // migrate() (e.g. the worker's --migrate) finds every migration recorded.
      expect(await migrateWithPackage(cwd, owned)).toEqual([]);
      const again = await drizzleKit(cwd, ['generate', '--name=again'], env);
      expect(`${again.stdout}${again.stderr}`).toContain('No schema changes');
      const push = await drizzleKit(cwd, ['push', '--verbose'], env);
      expect(`${push.stdout}${push.stderr}`).toContain('No changes detected');

      await admin.query(`DROP TABLE "${owned}".users`);
      const expected = await catalog(reference);
      // Not two empty lists: the tables, functions and triggers migrate() makes are there to compare.
      expect(JSON.parse(expected.tables).length).toBeGreaterThanOrEqual(4);
      expect(JSON.parse(expected.functions).length).toBeGreaterThanOrEqual(7);
      expect(JSON.parse(expected.triggers).length).toBeGreaterThanOrEqual(3);
      expect(await catalog(owned)).toEqual(expected);
    },
  );

  // README.md's "With drizzle-kit" as written: its schema file and drizzle.config.ts (schema auth, no prefix)
  // in a project directory of their own, against a database of its own (the snippets name the schema).
  const databases: string[] = [];
  afterAll(async () => {
    for (const d of databases) await admin.query(`DROP DATABASE IF EXISTS "${d}" WITH (FORCE)`);
  });
  async function readmeProject(set: PeerSet, label: string): Promise<{ cwd: string; env: Record<string, string> }> {
    const name = `cons_readme_${label}_${Math.random().toString(36).slice(2, 8)}`;
    await admin.query(`CREATE DATABASE "${name}"`);
    databases.push(name);
    const url = new URL(databaseUrl);
    url.pathname = `/${name}`;
    // Inside the Node project, so that the package, drizzle-kit and npx's bins resolve from its node_modules.
    const cwd = join(projects.node[set], name);
    mkdirSync(join(cwd, 'src'), { recursive: true });
    writeFileSync(join(cwd, 'src/schema.ts'), snippet('README.md', 'drizzle-kit-schema'));
    writeFileSync(join(cwd, 'drizzle.config.ts'), snippet('README.md', 'drizzle-kit-config'));
    return { cwd, env: { DATABASE_URL: url.toString() } };
  }
  /** migrate() for the README's schema, then a manager with audit on ends a session: the result and the audit rows. */
  async function migrateAndAudit(cwd: string, env: Record<string, string>) {
    const out = await mustRun(
      process.execPath,
      [
        '--input-type=module',
        '-e',
        `import pg from 'pg'; import { drizzle } from 'drizzle-orm/node-postgres'; import { migrate } from 'pg-edge-session/migrate';
         import { SessionManager } from 'pg-edge-session';
         const pool = new pg.Pool({ connectionString: process.env.DATABASE_URL }); const db = drizzle(pool);
         const result = await migrate(db, { schemaName: 'auth' });
         const m = new SessionManager(db, { schemaName: 'auth', audit: true });
         const { token } = await m.createSession('user-1'); await m.deleteSession(token);
         const ends = (await pool.query('SELECT reason FROM auth.session_audit')).rows.map((r) => r.reason);
         console.log(JSON.stringify({ ...result, ends })); process.exit(0);`,
      ],
      { cwd, env },
    );
    return JSON.parse(out.trim().split('\n').at(-1) as string) as { applied: string[]; repaired: string[]; ends: string[] };
  }
  const npx = (cwd: string, args: string[], env: Record<string, string>) => run('npx', args, { cwd, env });

  it.each(SETS)(
    "README's drizzle-kit schema file as written (%s peers), migrate() owns the tables: push proposes nothing, the audit records stay",
    async (set) => {
      const { cwd, env } = await readmeProject(set, `push_${set}`);
      const first = await migrateAndAudit(cwd, env);
      expect(first.applied.length).toBeGreaterThan(0);
      expect(first.ends).toEqual(['logout']);
      const push = await npx(cwd, ['drizzle-kit', 'push', '--verbose'], env);
      const out = `${push.stdout}${push.stderr}`;
      expect(push.code, out).toBe(0);
      // A DROP here is a session table the README's export list leaves out (the audit table, before).
      expect(out).not.toMatch(/DROP|ALTER TABLE|CREATE TABLE/);
      expect(out).toContain('No changes detected');
      const again = await migrateAndAudit(cwd, env);
      expect(again).toMatchObject({ applied: [], repaired: [] });
      expect(again.ends).toEqual(['logout', 'logout']);
      // The same file with a table left out of its list (what a newer release's table is to an older copy):
      // loading it fails, so drizzle-kit never gets to compare, and nothing is dropped.
      const schemaFile = join(cwd, 'src/schema.ts');
      const listed = readFileSync(schemaFile, 'utf8');
      expect(listed).toMatch(/^ {2}sessionAudit,$/m);
      writeFileSync(schemaFile, listed.replace(/^ {2}sessionAudit,\n/m, ''));
      const short = await npx(cwd, ['drizzle-kit', 'push', '--verbose'], env);
      const shortOut = `${short.stdout}${short.stderr}`;
      expect(shortOut).toContain('does not export sessionAudit from createSessionTables(...).tables');
      expect(shortOut).not.toMatch(/DROP|ALTER TABLE|CREATE TABLE/);
      expect((await migrateAndAudit(cwd, env)).ends).toEqual(['logout', 'logout', 'logout']);
    },
  );

  it.each(SETS)(
    "README's drizzle-kit schema file and generate steps as written (%s peers): every table made, audit works, migrate(), generate and push find nothing",
    async (set) => {
      const { cwd, env } = await readmeProject(set, `gen_${set}`);
      const steps = await run('sh', ['-e', '-c', snippet('README.md', 'drizzle-kit-generate')], { cwd, env });
      expect(steps.code, `${steps.stdout}${steps.stderr}`).toBe(0);
      // The tables came from drizzle-kit (migrate() made nothing again), the rest from the custom migration.
      const after = await migrateAndAudit(cwd, env);
      expect(after).toEqual({ applied: [], repaired: [], ends: ['logout'] });
      const again = await npx(cwd, ['drizzle-kit', 'generate'], env);
      expect(`${again.stdout}${again.stderr}`).toContain('No schema changes');
      const push = await npx(cwd, ['drizzle-kit', 'push', '--verbose'], env);
      expect(`${push.stdout}${push.stderr}`).toContain('No changes detected');
    },
  );

  it('the CLI with plain node: `pg-edge-session sql` (everything, run as plain SQL) makes the database migrate() makes', async () => {
    const cwd = projects.node.newest;
    const cli = join(cwd, 'node_modules/.bin/pg-edge-session');
    const tags = (await mustRun(cli, ['tags'], { cwd })).trim().split('\n');
    expect(tags[0]).toBe('0000_init');
    const reference = schema('sql_ref');
    expect(await migrateWithPackage(cwd, reference)).toEqual(tags);
    const plain = schema('sql_plain');
    const sql = await mustRun(cli, ['sql', '--schema', plain, '--prefix', PREFIX], { cwd });
    const client = await admin.connect();
    try {
      await client.query('BEGIN');
      for (const statement of sql.split('--> statement-breakpoint')) await client.query(statement);
      await client.query('COMMIT');
    } finally {
      client.release();
    }
    expect(await migrateWithPackage(cwd, plain)).toEqual([]);
    expect(await catalog(plain)).toEqual(await catalog(reference));
    // An upgrade: only what comes after the newest tag the database has, recorded as applied.
    const upgrade = await mustRun(cli, ['sql', '--mode', 'drizzle-kit', '--schema', plain, '--after', tags.at(-2) as string], { cwd });
    expect(upgrade).toContain(`VALUES ('${tags.at(-1)}') ON CONFLICT`);
    expect(upgrade).not.toContain(`'${tags[0]}'`);
    const bad = await run(cli, ['sql', '--schema', 'pg_nope'], { cwd });
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain('schemaName');
  });
});
