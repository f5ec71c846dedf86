// The demo as a new user meets it: the README's command, `npm start`, on a fresh embedded database, driven
// in headless Chromium (Debian's, through playwright-core) from two browser profiles. Revoking one
// profile's session from the other signs it out; the printed psql command opens the database; Ctrl-C (SIGINT
// to the whole process group, as a terminal sends it to npm, sh, tsx and node alike) stops everything:
// "Stopped.", and the touches still pending written to the database. Then the Workers demo as
// example/README.md runs it: `wrangler dev` of the repository's wrangler.toml, its sync host the Durable
// Object, Neon's driver through the local WebSocket proxy, in the same browser.
import { execFile } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { drizzle } from 'drizzle-orm/node-postgres';
import pg from 'pg';
import { type Browser, chromium, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type EmbeddedDatabase, startEmbeddedPostgres } from '../harness/embedded-db.ts';
import { freePort } from '../harness/free-port.ts';
import { type Child, spawnChild } from '../harness/processes.ts';
import { startWsProxy, type WsProxy } from '../harness/ws-proxy.ts';
import { migrate } from '../src/migrate.ts';

const root = fileURLToPath(new URL('..', import.meta.url));
const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
const PSQL = '/usr/bin/psql';
const FIREFOX = 'Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0';

/**
 * A sign-in as `name` from a new device (a browser profile with Firefox's user agent, where the others are
 * Chromium) shows "New sign-in: Firefox on Linux, 127.0.0.x" on `other`, the user's page in another profile,
 * not on the new one; "It was me" dismisses it. `shot`: a screenshot of `other` with the notice (.data/).
 */
async function newDeviceNotice(browser: Browser, appUrl: string, name: string, other: Page, shot?: string): Promise<Page> {
  const firefox = await (await browser.newContext({ userAgent: FIREFOX })).newPage();
  await firefox.goto(appUrl);
  await firefox.fill('input[name="name"]', name);
  await firefox.click('form[action="/login"] button');
  await firefox.waitForSelector('form[action="/logout"]');
  // The notice is written after the sign-in's response (onNewDevice): the other page may need a reload or two.
  const deadline = Date.now() + 10_000;
  do await other.reload();
  while ((await other.locator('.sign-in').count()) === 0 && Date.now() < deadline);
  expect(await other.locator('.sign-in strong').textContent()).toBe('New sign-in: Firefox on Linux, 127.0.0.x');
  expect(await firefox.locator('.sign-in').count()).toBe(0);
  if (shot !== undefined) await other.screenshot({ path: join(root, '.data', shot), fullPage: true });
  await other.locator('.sign-in form[action="/notices/dismiss"] button').click();
  await other.waitForSelector('form[action="/logout"]');
  expect(await other.locator('.sign-in').count()).toBe(0);
  return firefox;
}

describe('the npm start demo in a browser', () => {
  let proc: Child;
  let appUrl: string;
  let browser: Browser;
  let pageA: Page | undefined;
  const dataDir = mkdtempSync(join(tmpdir(), 'pges-e2e-'));
  // PostgreSQL runs as an unprivileged user when we are root: it must be able to enter the folder.
  chmodSync(dataDir, 0o755);

  beforeAll(async () => {
    if (!existsSync(CHROMIUM)) throw new Error(`Chromium not found at ${CHROMIUM}: apt-get install chromium (or set CHROMIUM_PATH)`);
    const env: NodeJS.ProcessEnv = { ...process.env, PORT: '0', WORKER_PORT: '0', DATA_DIR: join(dataDir, 'pg') };
    delete env.DATABASE_URL; // exactly what a fresh clone does
    // The README's command, in a process group of its own (a terminal's foreground job).
    proc = spawnChild('npm', ['start'], { cwd: root, env });
    await proc.waitForLine(/Ctrl-C to stop/, 60_000); // printed after the URLs
    appUrl = /Example app:\s+(http:\/\/\S+)/.exec(proc.text())?.[1] as string;
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      headless: true,
      args: [
        '--no-sandbox',
        '--disable-gpu',
        '--disable-quic',
        '--no-first-run',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync',
      ],
    });
  }, 90_000);

  afterAll(async () => {
    await browser?.close();
    if (proc?.running) proc.signal('SIGKILL');
    rmSync(dataDir, { recursive: true, force: true });
  });

  it('signs in from two profiles, revokes one from the other, and the revoked one is signed out', async () => {
    const a = await (await browser.newContext()).newPage();
    const b = await (await browser.newContext()).newPage();
    for (const p of [a, b]) {
      await p.goto(appUrl);
      await p.fill('input[name="name"]', 'Ada');
      await p.click('form[action="/login"] button');
      await p.waitForSelector('form[action="/logout"]');
    }
    await a.reload();
    const items = a.locator('li[data-session-id]');
    expect(await items.count()).toBe(2);
    // Each device with its label (from the user agent: headless Chromium on Linux), IP (the socket's, on
    // Node) and last use; this device marked.
    for (const item of await items.all()) {
      expect(await item.locator('.device').textContent()).toBe('Chrome on Linux');
      expect(await item.locator('.ip').textContent()).toBe('127.0.0.1');
      expect(await item.locator('time').first().getAttribute('datetime')).toMatch(/^\d{4}-\d\d-\d\dT/);
    }
    expect(await a.locator('li[data-session-id][data-current]', { hasText: '(this device)' }).count()).toBe(1);
    // Revoke the session that is not A's own.
    const revokedId = await a.locator('li[data-session-id]:not([data-current])').getAttribute('data-session-id');
    await a.locator('li[data-session-id]:not([data-current]) form[action="/sessions/revoke"] button').click();
    await a.locator('p.notice', { hasText: 'Session revoked.' }).waitFor();
    expect(await a.locator('li[data-session-id]').count()).toBe(1);
    // The audit shows it under recent sign-outs.
    expect(await a.locator(`li[data-ended-session-id="${revokedId}"][data-reason="revoked"]`).count()).toBe(1);
    // B is told why it is signed out, once; a reload after that is a plain sign-in page.
    await b.reload();
    expect(await b.locator('form[action="/login"]').count()).toBe(1);
    await b.locator('p.notice', { hasText: 'This session was revoked from another device.' }).waitFor();
    await b.screenshot({ path: join(root, '.data', 'e2e-revoked.png'), fullPage: true });
    await b.reload();
    expect(await b.locator('form[action="/login"]').count()).toBe(1);
    expect(await b.locator('p.notice').count()).toBe(0);
    await a.screenshot({ path: join(root, '.data', 'e2e-demo.png'), fullPage: true });
    // A still works and can edit an attribute; the "Saved." notice does not survive a reload.
    await a.fill('textarea[name="note"]', 'hello from the e2e test');
    await a.click('form[action="/attributes"] button');
    await a.locator('p.notice', { hasText: 'Saved.' }).waitFor();
    expect(await a.locator('textarea[name="note"]').inputValue()).toBe('hello from the e2e test');
    await a.reload();
    expect(await a.locator('p.notice').count()).toBe(0);
    pageA = a;
  }, 60_000);

  it('a sign-in from a new device shows "New sign-in: Firefox on Linux, 127.0.0.x" on the other one', async () => {
    await newDeviceNotice(browser, appUrl, 'Ada', pageA as Page, 'e2e-new-sign-in.png');
  }, 60_000);

  it('prints a psql command that opens the database', async () => {
    const line = /Database:\s+(psql .+?)(?:\s{2,}\(|\n)/.exec(proc.text());
    expect(line, proc.text()).not.toBeNull();
    const [cmd, ...args] = String(line?.[1]).trim().split(/\s+/);
    expect(cmd).toBe('psql');
    expect(args.join(' ')).not.toContain('***');
    if (existsSync(PSQL)) {
      const { stdout } = await promisify(execFile)(PSQL, [...args, '-Atc', 'SELECT count(*) > 0 FROM sessions']);
      expect(stdout.trim()).toBe('t');
    } else {
      const c = new pg.Client({ connectionString: args[0] });
      await c.connect();
      expect((await c.query('SELECT count(*)::int AS n FROM sessions')).rows[0].n).toBeGreaterThan(0);
      await c.end();
    }
  });

  it('Ctrl-C stops everything cleanly: "Stopped.", the pending touches written, npm exits as for any Ctrl-C', async () => {
    // A read right before Ctrl-C: its touch is still pending in the app's manager (pushed every 2 s, written
    // by the worker every 5 s), so only the shutdown path can write it.
    const a = pageA as Page;
    const id = await a.locator('li[data-session-id][data-current]').getAttribute('data-session-id');
    expect(id).toMatch(/^[0-9a-f-]{36}$/);
    const readAt = Date.now();
    await a.reload();
    proc.signal('SIGINT');
    // npm runs the script through sh, which got the SIGINT too and exits by it once the script is done;
    // npm then re-raises it on itself: exit status 130 in a terminal, as for any command stopped by Ctrl-C.
    // What shows the script's own clean stop is "Stopped." (printed right before it exits 0).
    expect([
      { code: 0, signal: null },
      { code: null, signal: 'SIGINT' },
    ]).toContainEqual(await proc.finished);
    expect(proc.text()).toContain('Stopped.');
    expect(proc.text()).not.toMatch(/unwritten touches|Force killing/);
    // The database was stopped with everything: start it again on the same data and look.
    const db = await startEmbeddedPostgres({ dir: join(dataDir, 'pg'), persistent: true });
    try {
      const c = new pg.Client({ connectionString: db.url });
      await c.connect();
      const { rows } = await c.query(`SELECT (extract(epoch from last_accessed) * 1000)::float8 AS t FROM sessions WHERE id = $1`, [id]);
      await c.end();
      expect(rows[0]?.t).toBeGreaterThanOrEqual(readAt);
    } finally {
      await db.stop();
    }
  }, 60_000);
});

describe('the Workers demo under wrangler dev, its sync host the Durable Object', () => {
  let db: EmbeddedDatabase;
  let admin: pg.Pool;
  let proxy: WsProxy;
  let proc: Child;
  let appUrl: string;
  let browser: Browser;
  const persist = mkdtempSync(join(tmpdir(), 'pges-e2e-wrangler-'));
  const dataDir = mkdtempSync(join(tmpdir(), 'pges-e2e-do-'));
  chmodSync(dataDir, 0o755);

  beforeAll(async () => {
    if (!existsSync(CHROMIUM)) throw new Error(`Chromium not found at ${CHROMIUM}: apt-get install chromium (or set CHROMIUM_PATH)`);
    // A database of its own: the object's LISTEN connection is then the only one of its kind there.
    db = await startEmbeddedPostgres({ dir: join(dataDir, 'pg') });
    admin = new pg.Pool({ connectionString: db.url, max: 2 });
    admin.on('error', () => {}); // the database stops at the end, maybe before an idle client has closed
    await migrate(drizzle(admin)); // example/README.md step 2
    proxy = await startWsProxy(); // step 1
    const port = await freePort();
    // Step 3's .dev.vars as --var flags (a .dev.vars of the developer's own stays untouched), step 4.
    const vars = {
      DATABASE_URL: db.url,
      NEON_WS_PROXY: `127.0.0.1:${proxy.port}/v2`,
      INSECURE_COOKIES: '1',
      SESSION_SYNC_IDLE_TIMEOUT_MS: '5000',
    };
    proc = spawnChild(
      process.execPath,
      [
        join(root, 'node_modules/wrangler/bin/wrangler.js'),
        'dev',
        '--ip',
        '127.0.0.1',
        '--port',
        String(port),
        '--persist-to',
        persist,
        ...Object.entries(vars).flatMap(([k, v]) => ['--var', `${k}:${v}`]),
      ],
      { cwd: root, env: { ...process.env, WRANGLER_SEND_METRICS: 'false', CI: '1' } },
    );
    await proc.waitForLine(/Ready on http:\/\/127\.0\.0\.1:\d+/, 60_000);
    appUrl = `http://127.0.0.1:${port}`;
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      headless: true,
      args: ['--no-sandbox', '--disable-gpu', '--no-first-run'],
    });
  }, 120_000);

  afterAll(async () => {
    await browser?.close();
    if (proc?.running) {
      proc.signal('SIGTERM');
      await new Promise((r) => setTimeout(r, 500));
      proc.signal('SIGKILL'); // the group: workerd too, should wrangler have gone first
    }
    await proxy?.close();
    await admin?.end();
    await db?.stop();
    rmSync(persist, { recursive: true, force: true });
    rmSync(dataDir, { recursive: true, force: true });
  });

  it('signs in from two profiles, revokes one from the other; a DELETE in psql signs the other out; the object holds the LISTEN connection', async () => {
    const a = await (await browser.newContext()).newPage();
    const b = await (await browser.newContext()).newPage();
    for (const p of [a, b]) {
      await p.goto(appUrl);
      await p.fill('input[name="name"]', 'Grace');
      await p.click('form[action="/login"] button');
      await p.waitForSelector('form[action="/logout"]');
    }
    await a.reload();
    expect(await a.locator('li[data-session-id]').count()).toBe(2);
    expect(await a.locator('footer', { hasText: 'on Cloudflare Workers' }).count()).toBe(1);
    await a.locator('li[data-session-id]:not([data-current]) form[action="/sessions/revoke"] button').click();
    await a.locator('p.notice', { hasText: 'Session revoked.' }).waitFor();
    await b.reload();
    expect(await b.locator('form[action="/login"]').count()).toBe(1);
    await b.locator('p.notice', { hasText: 'This session was revoked from another device.' }).waitFor();
    await newDeviceNotice(browser, appUrl, 'Grace', a);

    // The isolates polled the Durable Object, which opened its LISTEN connection (through the proxy).
    const listeners = async () =>
      Number(
        (await admin.query(`SELECT count(*)::int AS n FROM pg_stat_activity WHERE application_name = 'pg-edge-session-listener'`)).rows[0]
          .n,
      );
    const deadline = Date.now() + 10_000;
    while ((await listeners()) === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
    expect(await listeners()).toBe(1);

    // Typed into psql: A is signed out within maxStaleness (1 s) + the poll interval.
    const id = await a.locator('li[data-session-id][data-current]').getAttribute('data-session-id');
    await admin.query('DELETE FROM sessions WHERE id = $1', [id]);
    await new Promise((r) => setTimeout(r, 1000 + 250 + 150));
    await a.reload();
    expect(await a.locator('form[action="/login"]').count()).toBe(1);
    await a.screenshot({ path: join(root, '.data', 'e2e-workers-do.png'), fullPage: true });
  }, 60_000);
});
