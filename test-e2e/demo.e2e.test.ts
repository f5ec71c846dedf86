// The demo as a new user meets it: `npm start`'s script on a fresh embedded database, driven in headless
// Chromium (Debian's, through playwright-core) from two browser profiles. Revoking one profile's session
// from the other signs it out; Ctrl-C (SIGINT) stops everything with exit code 0.
import { type ChildProcess, spawn } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { type Browser, chromium } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const root = fileURLToPath(new URL('..', import.meta.url));
const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';

describe('the npm start demo in a browser', () => {
  let proc: ChildProcess;
  let exited: Promise<number | null>;
  let appUrl: string;
  let browser: Browser;
  const dataDir = mkdtempSync(join(tmpdir(), 'pges-e2e-'));
  // PostgreSQL runs as an unprivileged user when we are root: it must be able to enter the folder.
  chmodSync(dataDir, 0o755);
  const output: string[] = [];

  beforeAll(async () => {
    if (!existsSync(CHROMIUM)) throw new Error(`Chromium not found at ${CHROMIUM}: apt-get install chromium (or set CHROMIUM_PATH)`);
    const env: NodeJS.ProcessEnv = { ...process.env, PORT: '0', WORKER_PORT: '0', DATA_DIR: join(dataDir, 'pg') };
    delete env.DATABASE_URL; // exactly what a fresh clone does
    proc = spawn(process.execPath, ['--import', 'tsx', 'scripts/start.ts'], {
      cwd: root,
      env,
      detached: true,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    exited = new Promise((r) => proc.on('exit', (code) => r(code)));
    appUrl = await new Promise<string>((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`npm start did not print its URL:\n${output.join('')}`)), 60_000);
      const onData = (d: Buffer) => {
        output.push(d.toString());
        const m = /Example app:\s+(http:\/\/\S+)/.exec(output.join(''));
        if (m) {
          clearTimeout(t);
          resolve(m[1] as string);
        }
      };
      proc.stdout?.on('data', onData);
      proc.stderr?.on('data', onData);
    });
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
    if (proc && proc.exitCode === null) {
      try {
        process.kill(-(proc.pid as number), 'SIGKILL');
      } catch {}
    }
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
    // Revoke the session that is not A's own.
    await a.locator('li[data-session-id]:not([data-current]) form[action="/sessions/revoke"] button').click();
    await a.waitForURL(/notice=revoked/);
    expect(await a.locator('li[data-session-id]').count()).toBe(1);
    await b.reload();
    expect(await b.locator('form[action="/login"]').count()).toBe(1);
    await a.screenshot({ path: join(root, '.data', 'e2e-demo.png'), fullPage: true });
    // A still works and can edit an attribute.
    await a.fill('textarea[name="note"]', 'hello from the e2e test');
    await a.click('form[action="/attributes"] button');
    await a.waitForURL(/notice=saved/);
    expect(await a.locator('textarea[name="note"]').inputValue()).toBe('hello from the e2e test');
  }, 60_000);

  it('Ctrl-C stops everything cleanly (exit code 0)', async () => {
    process.kill(-(proc.pid as number), 'SIGINT');
    expect(await exited).toBe(0);
    expect(output.join('')).toContain('Stopped.');
  }, 30_000);
});
