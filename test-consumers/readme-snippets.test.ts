// The READMEs' code as a user copies it. Every ts/sh/toml/json block in README.md, example/README.md and
// worker/README.md carries a marker (test-consumers/readme.ts): `<!-- snippet: <id> -->` when a test runs the
// block as written, `<!-- illustrative -->` when it shows a shape (the README says so next to it). The tests
// here read each snippet from the README itself and run it against the packed tarballs (global-setup.ts's
// projects). What they change, and only that: the package spec `pg-edge-session` (and
// `pg-edge-session-worker`) becomes the tarball's path, since neither is published from here, and a
// placeholder URL (`postgres://...`) becomes a database of the test's own. Each run gets a fresh database,
// because the snippets use the default schema, `public`.
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdirSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Miniflare } from 'miniflare';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { READMES, readmeBlocks, snippet } from './readme.ts';
import { COMPATIBILITY_DATE, mustRun, PEERS, type PeerSet, REPO, run, wranglerBundle } from './support.ts';

const projects = inject('projects');
const databaseUrl = inject('databaseUrl');
const wsProxy = `127.0.0.1:${inject('wsProxyPort')}/v2`;
const SETS = Object.keys(PEERS) as PeerSet[];

/** The block languages a user runs or pastes into a file; '' (a fence without one) may be either, so it counts too. */
const CODE = new Set([
  '',
  'ts',
  'typescript',
  'tsx',
  'mts',
  'cts',
  'js',
  'javascript',
  'jsx',
  'mjs',
  'cjs',
  'sh',
  'bash',
  'shell',
  'zsh',
  'console',
  'shell-session',
  'toml',
  'json',
  'jsonc',
]);
/** Where a snippet id counts as used: the consumer tests, and the clone check CI runs (scripts/check-private-clone.sh). */
const USERS = [
  ...readdirSync(join(REPO, 'test-consumers'))
    .filter((f) => f.endsWith('.test.ts'))
    .map((f) => `test-consumers/${f}`),
  'scripts/check-private-clone.sh',
  '.ci/run',
];

let admin: pg.Pool;
const databases: string[] = [];
beforeAll(() => {
  admin = new pg.Pool({ connectionString: databaseUrl, max: 2 });
});
afterAll(async () => {
  for (const d of databases) await admin.query(`DROP DATABASE IF EXISTS "${d}" WITH (FORCE)`);
  await admin.end();
});

/** An empty database of its own (the snippets use `public`), its URL. */
async function freshDatabase(label: string): Promise<string> {
  const name = `readme_${label}_${Math.random().toString(36).slice(2, 8)}`;
  await admin.query(`CREATE DATABASE "${name}"`);
  databases.push(name);
  const url = new URL(databaseUrl);
  url.pathname = `/${name}`;
  return url.toString();
}

async function tablesIn(url: string): Promise<string[]> {
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  try {
    const { rows } = await c.query(`SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY 1`);
    return rows.map((r) => r.tablename as string);
  } finally {
    await c.end();
  }
}

/** The commands of a shell block: its non-empty lines that are not comments. */
function commands(code: string): string[] {
  return code.split('\n').filter((l) => l.trim() !== '' && !l.trim().startsWith('#'));
}

/** A scratch project like global-setup's: a package.json and nothing else. */
function emptyProject(name: string): string {
  const dir = join(projects.root, name);
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'package.json'), `${JSON.stringify({ name, private: true, type: 'module' }, null, 2)}\n`);
  return dir;
}

interface Started {
  proc: ChildProcess;
  output: string[];
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** Every process that held its stdout and stderr has ended (a shell's children outlive it on a signal). */
  closed: Promise<void>;
  /** Resolves with the first match of `pattern` in the output (stdout and stderr). */
  waitFor(pattern: RegExp, ms?: number): Promise<RegExpExecArray>;
  /** The signal to the process group (a shell line starts npx, sh, node: a terminal's Ctrl-C reaches them all). */
  signal(sig: NodeJS.Signals): void;
}

/** A long-running command in a process group of its own. */
function start(file: string, args: string[], cwd: string, env: NodeJS.ProcessEnv): Started {
  const proc = spawn(file, args, {
    cwd,
    env: { ...process.env, NO_COLOR: '1', ...env },
    detached: true,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const output: string[] = [];
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((r) =>
    proc.on('exit', (code, signal) => r({ code, signal })),
  );
  const listeners = new Set<() => void>();
  const onData = (d: Buffer) => {
    output.push(d.toString());
    for (const l of listeners) l();
  };
  proc.stdout?.on('data', onData);
  proc.stderr?.on('data', onData);
  const closed = new Promise<void>((r) => proc.on('close', () => r()));
  return {
    proc,
    output,
    exited,
    closed,
    waitFor: (pattern, ms = 60_000) =>
      new Promise((resolve, reject) => {
        const check = () => {
          const m = pattern.exec(output.join(''));
          if (m) {
            listeners.delete(check);
            clearTimeout(timer);
            resolve(m);
          }
        };
        const timer = setTimeout(() => {
          listeners.delete(check);
          reject(new Error(`no ${pattern} within ${ms} ms:\n${output.join('')}`));
        }, ms);
        listeners.add(check);
        void exited.then((e) => reject(new Error(`exited (${e.code ?? e.signal}) before ${pattern}:\n${output.join('')}`)));
        check();
      }),
    signal: (sig) => {
      try {
        process.kill(-(proc.pid as number), sig);
      } catch {
        // already gone
      }
    },
  };
}

/** Stops what a test started if an assertion failed first. */
async function stopAll(started: Started[]) {
  for (const s of started) {
    if (s.proc.exitCode === null && s.proc.signalCode === null) s.signal('SIGKILL');
  }
}

describe('the README blocks', () => {
  it('every ts/sh/toml/json block is marked: a snippet id (unique, used by a test) or illustrative (said so next to it)', () => {
    const problems: string[] = [];
    const seen = new Map<string, string>();
    const users = USERS.map((f) => readFileSync(join(REPO, f), 'utf8')).join('\n');
    for (const file of READMES) {
      const lines = readFileSync(join(REPO, file), 'utf8').split('\n');
      for (const b of readmeBlocks(file)) {
        if (!CODE.has(b.lang)) continue;
        const where = `${file}:${b.line} (${b.lang})`;
        if (b.marker === null) {
          problems.push(`${where}: no marker (<!-- snippet: <id> --> or <!-- illustrative -->) on the line before the fence`);
        } else if (b.marker === 'illustrative') {
          // The prose just before the marker says so, for the reader (not only for the tests).
          const before = lines.slice(Math.max(0, b.line - 8), b.line - 2).join('\n');
          if (!/illustrative/i.test(before)) problems.push(`${where}: illustrative, but the text before it does not say so`);
        } else {
          if (seen.has(b.marker)) problems.push(`${where}: snippet id ${b.marker} also marks ${seen.get(b.marker)}`);
          seen.set(b.marker, where);
          const id = b.marker.replace(/[.]/g, '\\.');
          if (!new RegExp(`(^|[^A-Za-z0-9._-])${id}([^A-Za-z0-9._-]|$)`, 'm').test(users)) {
            problems.push(`${where}: snippet ${b.marker} is not used by any of ${USERS.join(', ')}`);
          }
        }
      }
    }
    expect(problems.join('\n')).toBe('');
    // Not vacuous: the READMEs have blocks, and most are run.
    expect(seen.size).toBeGreaterThanOrEqual(5);
  });
});

describe('README "Install": both lines in a fresh app, against the packed tarball', () => {
  const lines = commands(snippet('README.md', 'install-app'));

  it('has the two install lines, for the edge and the Node app', () => {
    expect(lines).toHaveLength(2);
    for (const l of lines) expect(l).toMatch(/^npm install pg-edge-session /);
  });

  it.each([
    ['edge', 0, ['pg-edge-session', 'pg-edge-session/hono', 'pg-edge-session/neon', 'pg-edge-session/durable-object']],
    ['node', 1, ['pg-edge-session', 'pg-edge-session/hono', 'pg-edge-session/migrate', 'drizzle-orm/node-postgres', 'pg']],
  ] as const)('the %s line installs with consistent peers, and plain node imports what its runtime uses', async (kind, index, modules) => {
    const cwd = emptyProject(`readme-install-${kind}`);
    // The line as written (comment included: sh ignores it), the package spec replaced by the tarball's path.
    const line = (lines[index] as string).replace(/^npm install pg-edge-session /, `npm install ${projects.tarball} `);
    const r = await run('sh', ['-c', line], { cwd, timeoutMs: 300_000 });
    expect(r.code, `${r.stdout}${r.stderr}`).toBe(0);
    const named = (lines[index] as string).replace(/#.*/, '').trim().split(/\s+/).slice(2);
    const deps = Object.keys(JSON.parse(readFileSync(join(cwd, 'package.json'), 'utf8')).dependencies).sort();
    expect(deps).toEqual([...named].sort());
    // npm ls exits non-zero on a missing or out-of-range peer (e.g. a drizzle-orm newer than the range).
    const ls = await run('npm', ['ls', '--all'], { cwd });
    expect(ls.code, `${ls.stdout}${ls.stderr}`).toBe(0);
    const imported = await run(
      process.execPath,
      ['--input-type=module', '-e', `for (const m of ${JSON.stringify(modules)}) await import(m); console.log('ok');`],
      { cwd },
    );
    expect(`${imported.stdout}${imported.stderr}`.trim()).toBe('ok');
  });
});

describe('README "The sync worker" and worker/README.md: install the worker and run its bin', () => {
  it('is the same block in both READMEs; installed from the two tarballs, it migrates, listens, answers, and stops on Ctrl-C', async () => {
    const code = snippet('README.md', 'worker-cli');
    expect(snippet('worker/README.md', 'worker-package-cli')).toBe(code);
    const [install, runLine, ...rest] = commands(code);
    expect(rest).toEqual([]);
    const cwd = emptyProject('readme-worker-cli');
    // `npm install pg-edge-session-worker`: its own tarball, and the library's beside it (neither is published here).
    expect(install).toBe('npm install pg-edge-session-worker');
    await mustRun('sh', ['-c', `npm install ${projects.tarball} ${projects.workerTarball}`], { cwd, timeoutMs: 300_000 });
    const url = await freshDatabase('worker_cli');
    expect(runLine).toContain('DATABASE_URL=postgres://... ');
    // The line as written, its placeholder URL replaced; PORT=0 from the environment (8787 may be taken here).
    const worker = start('sh', ['-c', (runLine as string).replace('postgres://...', url)], cwd, { PORT: '0' });
    try {
      const listening = await worker.waitFor(/"msg":"worker listening".*"url":"(http:\/\/[^"]+)"/);
      const base = listening[1] as string;
      expect(await (await fetch(`${base}/healthz`)).json()).toEqual({ ok: true });
      expect(await (await fetch(`${base}/readyz`)).json()).toEqual({ ready: true });
      // The secret is the random one the line made: without it, the feed is refused.
      expect((await fetch(`${base}/v1/changes`)).status).toBe(401);
      // --migrate made the tables in the database the URL names.
      expect(await tablesIn(url)).toEqual(expect.arrayContaining(['session_changes', 'session_migrations', 'sessions']));
      // Ctrl-C in the terminal (SIGINT to the process group: sh, npx, node): the worker shuts down cleanly.
      worker.signal('SIGINT');
      await worker.closed;
      expect(worker.output.join('')).toContain('"msg":"worker stopped"');
    } finally {
      await stopAll([worker]);
    }
  });
});

/** The README's Node snippets, compiled by the consumer's own tsc 5.9 (strict, NodeNext) into plain JavaScript for Node 20. */
async function compile(cwd: string, files: Record<string, string>): Promise<void> {
  mkdirSync(cwd, { recursive: true });
  for (const [name, text] of Object.entries(files)) writeFileSync(join(cwd, name), text);
  writeFileSync(
    join(cwd, 'tsconfig.json'),
    JSON.stringify({
      compilerOptions: {
        target: 'ES2022',
        module: 'NodeNext',
        moduleResolution: 'NodeNext',
        lib: ['ES2022'],
        types: ['node'],
        strict: true,
        // drizzle-orm's own declarations do not check without it (README "Install").
        skipLibCheck: true,
        outDir: 'out',
      },
      files: Object.keys(files),
    }),
  );
  const r = await run(process.execPath, [join(cwd, '../node_modules/typescript/bin/tsc'), '-p', 'tsconfig.json'], { cwd });
  expect(`${r.stdout}${r.stderr}`, 'tsc').toBe('');
  expect(r.code).toBe(0);
}

describe.each(SETS)('README "Using it" on Node 20 (%s peers)', (set) => {
  it('the server, as written: sign in (same Origin), read with the cookie, sign out; SIGTERM stops it', async () => {
    const cwd = join(projects.node[set], 'readme-node-server');
    await compile(cwd, { 'server.ts': snippet('README.md', 'node-server') });
    const url = await freshDatabase(`server_${set}`);
    const server = start(process.execPath, ['out/server.js'], cwd, { DATABASE_URL: url, PORT: '0' });
    try {
      const base = (await server.waitFor(/(http:\/\/(?:localhost|127\.0\.0\.1|\[::1\]|0\.0\.0\.0):\d+)/))[1]?.replace(
        '0.0.0.0',
        '127.0.0.1',
      ) as string;
      const origin = new URL(base).origin;
      const login = await fetch(`${base}/login`, { method: 'POST', redirect: 'manual', headers: { origin } });
      expect(login.status).toBe(302);
      const cookie = /^[^=;]*session=[^;]+/.exec(login.headers.get('set-cookie') ?? '')?.[0];
      expect(cookie, login.headers.get('set-cookie') ?? 'no set-cookie').toBeDefined();
      const home = await fetch(`${base}/`, { headers: { cookie: cookie as string } });
      expect(home.status).toBe(200);
      expect(await home.text()).toBe('hello Ada');
      // Another origin cannot sign the user out (the middleware's CSRF check).
      expect(
        (
          await fetch(`${base}/logout`, {
            method: 'POST',
            redirect: 'manual',
            headers: { cookie: cookie as string, origin: 'https://evil.example' },
          })
        ).status,
      ).toBe(403);
      const logout = await fetch(`${base}/logout`, { method: 'POST', redirect: 'manual', headers: { cookie: cookie as string, origin } });
      expect(logout.status).toBe(302);
      expect(await (await fetch(`${base}/`, { headers: { cookie: cookie as string } })).text()).toBe('signed out');
      const c = new pg.Client({ connectionString: url });
      await c.connect();
      try {
        expect((await c.query('SELECT count(*)::int AS n FROM sessions')).rows[0].n).toBe(0);
      } finally {
        await c.end();
      }
      server.signal('SIGTERM');
      const exit = await server.exited;
      expect(exit, server.output.join('')).toEqual({ code: 0, signal: null });
    } finally {
      await stopAll([server]);
    }
  });

  it('the Node server snippet on Ctrl-C: exits 0 on its own and has written the last access it held in memory', async () => {
    const cwd = join(projects.node[set], 'readme-node-server-sigint');
    await compile(cwd, { 'server.ts': snippet('README.md', 'node-server') });
    const url = await freshDatabase(`sigint_${set}`);
    const server = start(process.execPath, ['out/server.js'], cwd, { DATABASE_URL: url, PORT: '0' });
    try {
      const line = await server.waitFor(/^listening on (http:\/\/localhost:\d+)$/m);
      const base = (line[1] as string).replace('localhost', '127.0.0.1');
      const login = await fetch(`${base}/login`, { method: 'POST', redirect: 'manual', headers: { origin: new URL(base).origin } });
      expect(login.status).toBe(302);
      const cookie = /^[^=;]*session=[^;]+/.exec(login.headers.get('set-cookie') ?? '')?.[0] as string;
      await new Promise((r) => setTimeout(r, 50));
      // The login cached the session: this read is a hit, its access held in memory (default interval 10 min).
      expect(await (await fetch(`${base}/`, { headers: { cookie } })).text()).toBe('hello Ada');
      server.signal('SIGINT');
      expect(await server.exited, server.output.join('')).toEqual({ code: 0, signal: null });
      const c = new pg.Client({ connectionString: url });
      await c.connect();
      try {
        const row = (await c.query('SELECT last_accessed > created_at AS moved FROM sessions')).rows;
        expect(row).toEqual([{ moved: true }]);
      } finally {
        await c.end();
      }
    } finally {
      await stopAll([server]);
    }
  });

  it('"Without the middleware": the block after the server snippet up to its manager, run as written', async () => {
    const cwd = join(projects.node[set], 'readme-manager-api');
    // The block uses `manager` from "Using it": that snippet's text up to where its manager is made, then
    // this block, then the checks.
    const server = snippet('README.md', 'node-server').split('\n');
    const upTo = server.findIndex((l) => /^const manager\b/.test(l));
    expect(upTo, 'the node-server snippet makes `const manager`').toBeGreaterThanOrEqual(0);
    let end = upTo;
    while (!/;\s*(\/\/.*)?$/.test(server[end] as string)) end++;
    const checks = `
const after = {
  oldToken: await manager.getSession(token),
  theme: (await manager.getSession(rotated!.token))?.get('theme'),
  sessions: (await manager.listUserSessions('user-42')).map((l) => l.id),
  sessionId: rotated!.session.id === session.id,
};
console.log(JSON.stringify(after));
process.exit(0);
`;
    const text = `${server.slice(0, end + 1).join('\n')}\n\n${snippet('README.md', 'manager-api')}${checks}`;
    await compile(cwd, { 'manager-api.ts': text });
    const url = await freshDatabase(`api_${set}`);
    const out = await mustRun(process.execPath, ['out/manager-api.js'], { cwd, env: { DATABASE_URL: url } });
    const after = JSON.parse(out.trim().split('\n').at(-1) as string);
    // The old token is dead after rotate(), the attribute set with its own expiry was saved, one session is left.
    expect(after.oldToken).toBeNull();
    expect(after.theme).toBe('light');
    expect(after.sessions).toHaveLength(1);
    expect(after.sessionId).toBe(true);
  });
});

describe.each(SETS)('README "Deploying on Cloudflare Workers + Neon" in workerd (%s peers)', (set) => {
  it('the Worker and its wrangler.toml lines as written, bundled by wrangler, driven in Miniflare: sign in, read, sign out', async () => {
    // global-setup.ts wrote worker/readme.ts and worker/wrangler.readme.toml from the README's two blocks.
    const cwd = projects.edge[set];
    expect(readFileSync(join(cwd, 'worker/readme.ts'), 'utf8')).toBe(snippet('README.md', 'workers-app'));
    expect(readFileSync(join(cwd, 'worker/wrangler.readme.toml'), 'utf8')).toContain(snippet('README.md', 'workers-wrangler-toml'));
    const outdir = join(cwd, 'out-readme-snippet');
    await wranglerBundle(cwd, 'worker/wrangler.readme.toml', outdir);
    const url = await freshDatabase(`workers_${set}`);
    await mustRun(
      process.execPath,
      [
        '--input-type=module',
        '-e',
        `import pg from 'pg'; import { drizzle } from 'drizzle-orm/node-postgres'; import { migrate } from 'pg-edge-session/migrate';
         const pool = new pg.Pool({ connectionString: process.env.DATABASE_URL }); await migrate(drizzle(pool)); await pool.end();`,
      ],
      { cwd: projects.node[set], env: { DATABASE_URL: url } },
    );
    const mf = new Miniflare({
      modules: [{ type: 'ESModule', path: 'readme.js', contents: readFileSync(join(outdir, 'readme.js'), 'utf8') }],
      compatibilityDate: COMPATIBILITY_DATE,
      // What .dev.vars gives `wrangler dev` against a local PostgreSQL (example/README.md).
      bindings: { DATABASE_URL: url, NEON_WS_PROXY: wsProxy },
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
      expect(await (await mf.dispatchFetch(`${base}/logout`, { method: 'POST', headers })).json()).toEqual({ deleted: true });
      expect(await (await mf.dispatchFetch(`${base}/`, { headers })).json()).toBeNull();
    } finally {
      await mf.dispose();
    }
  });
});

describe('README "Deploying on Cloudflare Workers + Neon", step 3: local development in the user\'s own app, as written', () => {
  it('the app, its wrangler.toml and .dev.vars; `npx pg-edge-session ws-proxy` from the install; the tables through psql; `npx wrangler dev`: sign in, read, sign out, the row gone', async () => {
    const started: Started[] = [];
    // The user's app: a folder of the edge app (the tarball and the README's install line), steps 1 and 2's
    // blocks in it, with the lines every wrangler.toml has before them (name, main, compatibility_date).
    const dir = join(projects.edge.newest, `readme-dev-${Math.random().toString(36).slice(2, 8)}`);
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, 'app.ts'), snippet('README.md', 'workers-app'));
    writeFileSync(
      join(dir, 'wrangler.toml'),
      `name = "readme-dev"\nmain = "app.ts"\ncompatibility_date = "${COMPATIBILITY_DATE}"\n\n${snippet('README.md', 'workers-wrangler-toml')}`,
    );
    // The user has wrangler (a global install here: `npx wrangler` finds it in npm's global bin, as it would
    // `npm install -g wrangler`), the repository's own rather than one from the registry.
    const globalPrefix = join(projects.root, 'npm-global-readme-dev');
    mkdirSync(join(globalPrefix, 'bin'), { recursive: true });
    rmSync(join(globalPrefix, 'bin/wrangler'), { force: true });
    symlinkSync(join(REPO, 'node_modules/wrangler/bin/wrangler.js'), join(globalPrefix, 'bin/wrangler'));
    try {
      // "In one terminal": the line as written (its default port), from the app's own install.
      const [proxyLine, ...more] = commands(snippet('README.md', 'workers-ws-proxy'));
      expect(more).toEqual([]);
      expect(proxyLine).toMatch(/^npx pg-edge-session ws-proxy\b/);
      const proxy = start('sh', ['-c', proxyLine as string], dir, {});
      started.push(proxy);
      const proxyPort = (await proxy.waitFor(/ws-proxy listening on ws:\/\/127\.0\.0\.1:(\d+)/))[1];

      // .dev.vars as written, the database it names replaced by the test's own; it names the proxy just started.
      const devVars = snippet('README.md', 'workers-dev-vars');
      const machine = /^DATABASE_URL="([^"]+)"/m.exec(devVars)?.[1] as string;
      expect(machine).toBe('postgres://postgres@127.0.0.1:5432/postgres');
      expect(devVars).toContain(`NEON_WS_PROXY="127.0.0.1:${proxyPort}/v2"`);
      const url = await freshDatabase('workers_dev');
      writeFileSync(join(dir, '.dev.vars'), devVars.replace(machine, url));

      // "Then create the tables once (`npx pg-edge-session sql | psql "…"`)": the command in the text, on that database.
      const readme = readFileSync(join(REPO, 'README.md'), 'utf8');
      const [, tablesLine, tablesUrl] = /`(npx pg-edge-session sql \| psql "([^"]+)")`/.exec(readme) ?? [];
      expect(tablesUrl).toBe(machine);
      const tables = await run('bash', ['-o', 'pipefail', '-c', (tablesLine as string).replace(machine, url)], { cwd: dir });
      expect(tables.code, tables.stderr).toBe(0);
      expect(tables.stderr.split('\n').filter((l) => l.trim() !== '' && !l.startsWith('NOTICE:'))).toEqual([]);
      expect(await tablesIn(url)).toEqual(expect.arrayContaining(['session_changes', 'session_migrations', 'sessions']));

      // "and run `npx wrangler dev`".
      expect(readme).toContain('and run `npx wrangler dev`');
      const dev = start('sh', ['-c', 'npx wrangler dev'], dir, {
        CI: '1',
        WRANGLER_SEND_METRICS: 'false',
        npm_config_prefix: globalPrefix,
      });
      started.push(dev);
      const base = (await dev.waitFor(/Ready on (http:\/\/[^\s]+)/, 180_000))[1]?.replace(/\/$/, '') as string;
      const origin = new URL(base).origin;
      const login = await fetch(`${base}/login`, { method: 'POST', redirect: 'manual', headers: { origin } });
      expect(login.status, await login.clone().text()).toBe(302);
      const cookie = /^[^=;]*session=[^;]+/.exec(login.headers.get('set-cookie') ?? '')?.[0];
      expect(cookie, login.headers.get('set-cookie') ?? 'no set-cookie').toBeDefined();
      const headers = { cookie: cookie as string, origin };
      expect(await (await fetch(`${base}/`, { headers })).json()).toEqual({ theme: 'dark' });
      // Written through the proxy into the database .dev.vars names.
      const db = new pg.Client({ connectionString: url });
      await db.connect();
      try {
        expect((await db.query('SELECT user_id FROM sessions')).rows).toEqual([{ user_id: 'alice' }]);
        expect(await (await fetch(`${base}/logout`, { method: 'POST', headers })).json()).toEqual({ deleted: true });
        expect(await (await fetch(`${base}/`, { headers })).json()).toBeNull();
        expect((await db.query('SELECT count(*)::int AS n FROM sessions')).rows).toEqual([{ n: 0 }]);
      } finally {
        await db.end();
      }
      // Ctrl-C in both terminals.
      dev.signal('SIGINT');
      proxy.signal('SIGINT');
      await Promise.all([dev.closed, proxy.closed]);
      expect(proxy.output.join('')).toContain('ws-proxy: SIGINT, closing');
    } finally {
      await stopAll(started);
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('example/README.md "`wrangler dev` against a local PostgreSQL": its four steps as written, in the repository', () => {
  it('the proxy on its default port, the tables through psql, .dev.vars, wrangler dev: sign in, /api/me, sign out', async () => {
    const started: Started[] = [];
    // Step 4 runs in a directory of its own inside the checkout (so npx finds the repository's wrangler): the
    // repository's wrangler.toml with `main` pointing at example/worker.ts, and step 3's .dev.vars beside it,
    // instead of a .dev.vars in the repository root (a developer's own stays untouched).
    const dir = join(REPO, '.wrangler', `readme-example-${Math.random().toString(36).slice(2, 8)}`);
    try {
      const [proxyLine, ...more] = commands(snippet('example/README.md', 'example-ws-proxy'));
      expect(more).toEqual([]);
      const proxy = start('sh', ['-c', proxyLine as string], REPO, {});
      started.push(proxy);
      const proxyPort = (await proxy.waitFor(/ws-proxy listening on ws:\/\/127\.0\.0\.1:(\d+)/))[1];

      const url = await freshDatabase('example');
      const machine = 'postgres://postgres@127.0.0.1:5432/test';
      const [tablesLine] = commands(snippet('example/README.md', 'example-tables'));
      expect(tablesLine).toContain(machine);
      // The URL README names for this machine, replaced by the test's own database.
      // psql goes on after a failed statement and exits 0: nothing but the server's NOTICEs on its stderr.
      const tables = await run('bash', ['-o', 'pipefail', '-c', (tablesLine as string).replace(machine, url)], { cwd: REPO });
      expect(tables.code, tables.stderr).toBe(0);
      expect(tables.stderr.split('\n').filter((l) => l.trim() !== '' && !l.startsWith('NOTICE:'))).toEqual([]);
      expect(await tablesIn(url)).toEqual(expect.arrayContaining(['session_changes', 'session_migrations', 'sessions']));

      const devVars = snippet('example/README.md', 'example-dev-vars');
      expect(devVars).toContain(`DATABASE_URL="${machine}"`);
      // Step 1's proxy is the one .dev.vars names.
      expect(devVars).toContain(`NEON_WS_PROXY="127.0.0.1:${proxyPort}/v2"`);
      mkdirSync(dir, { recursive: true });
      writeFileSync(join(dir, '.dev.vars'), devVars.replace(machine, url));
      writeFileSync(
        join(dir, 'wrangler.toml'),
        readFileSync(join(REPO, 'wrangler.toml'), 'utf8').replace(
          /^main = .*$/m,
          `main = ${JSON.stringify(join(REPO, 'example/worker.ts'))}`,
        ),
      );
      const [devLine, ...rest] = commands(snippet('example/README.md', 'example-wrangler-dev'));
      expect(rest).toEqual([]);
      const dev = start('sh', ['-c', devLine as string], dir, { CI: '1' });
      started.push(dev);
      const base = (await dev.waitFor(/Ready on (http:\/\/[^\s]+)/, 120_000))[1]?.replace(/\/$/, '') as string;
      const origin = new URL(base).origin;
      const login = await fetch(`${base}/login`, {
        method: 'POST',
        redirect: 'manual',
        headers: { origin, 'content-type': 'application/x-www-form-urlencoded' },
        body: 'name=Ada',
      });
      expect(login.status).toBe(303); // the example's forms answer See Other
      const cookie = /^[^=;]*session=[^;]+/.exec(login.headers.get('set-cookie') ?? '')?.[0];
      expect(cookie, login.headers.get('set-cookie') ?? 'no set-cookie').toBeDefined();
      const me = (await (await fetch(`${base}/api/me`, { headers: { cookie: cookie as string } })).json()) as { userId: string } | null;
      expect(me?.userId).toBe('ada');
      await fetch(`${base}/logout`, { method: 'POST', redirect: 'manual', headers: { cookie: cookie as string, origin } });
      expect(await (await fetch(`${base}/api/me`, { headers: { cookie: cookie as string } })).json()).toBeNull();
      dev.signal('SIGTERM');
      proxy.signal('SIGTERM');
      await Promise.all([dev.exited, proxy.exited]);
    } finally {
      await stopAll(started);
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe.each(SETS)('README "Cloudflare Workers with Hyperdrive" in workerd (%s peers)', (set) => {
  it('the Worker and its wrangler.toml lines as written, bundled by wrangler, driven in Miniflare through a Hyperdrive binding', async () => {
    // The node app has what the Hyperdrive app installs: the tarball, its peers (Neon's driver for the
    // Durable Object) and pg.
    const cwd = projects.node[set];
    const dir = join(cwd, 'worker-hyperdrive');
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, 'readme.ts'), snippet('README.md', 'hyperdrive-app'));
    writeFileSync(
      join(dir, 'wrangler.toml'),
      `name = "pg-edge-session-readme-hyperdrive"\nmain = "readme.ts"\ncompatibility_date = "${COMPATIBILITY_DATE}"\n${snippet('README.md', 'hyperdrive-wrangler-toml')}\n${snippet('README.md', 'workers-wrangler-toml')}`,
    );
    const outdir = join(dir, 'out');
    await wranglerBundle(cwd, 'worker-hyperdrive/wrangler.toml', outdir);
    const url = await freshDatabase(`hyperdrive_${set}`);
    await mustRun(
      process.execPath,
      [
        '--input-type=module',
        '-e',
        `import pg from 'pg'; import { drizzle } from 'drizzle-orm/node-postgres'; import { migrate } from 'pg-edge-session/migrate';
         const pool = new pg.Pool({ connectionString: process.env.DATABASE_URL }); await migrate(drizzle(pool)); await pool.end();`,
      ],
      { cwd, env: { DATABASE_URL: url } },
    );
    // What `wrangler dev` gives the binding from localConnectionString (Miniflare wants a password in it;
    // the local PostgreSQL trusts loopback), and the object's direct URL through the WebSocket proxy.
    const local = new URL(url);
    local.password ||= 'unused';
    const mf = new Miniflare({
      modules: [{ type: 'ESModule', path: 'readme.js', contents: readFileSync(join(outdir, 'readme.js'), 'utf8') }],
      compatibilityDate: COMPATIBILITY_DATE,
      compatibilityFlags: ['nodejs_compat'],
      hyperdrives: { HYPERDRIVE: local.toString() },
      bindings: { SESSION_SYNC_DATABASE_URL: url, NEON_WS_PROXY: wsProxy },
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
      // Written through Hyperdrive's connection, into the database the binding points at.
      const db = new pg.Client({ connectionString: url });
      await db.connect();
      try {
        expect((await db.query(`SELECT user_id FROM sessions`)).rows).toEqual([{ user_id: 'alice' }]);
      } finally {
        await db.end();
      }
      expect(await (await mf.dispatchFetch(`${base}/logout`, { method: 'POST', headers })).json()).toEqual({ deleted: true });
      expect(await (await mf.dispatchFetch(`${base}/`, { headers })).json()).toBeNull();
    } finally {
      await mf.dispose();
    }
  });
});
