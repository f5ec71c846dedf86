// pg-edge-session/neon in workerd: one connection per request. The statements of one request share one Neon
// connection, opened at the first of them (a cache hit opens none) and closed after the response, in
// waitUntil, also when the handler threw; concurrent requests of one isolate each have their own; work
// after the response (a touch flush) opens a connection of its own. Counted at a TCP proxy between the
// WebSocket proxy and PostgreSQL (one TCP connection per Neon connection), and in pg_stat_activity.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CookieJar } from '../../harness/workerd.ts';
import { type NeonWorkerd, startNeonWorkerd } from '../support/neon-workerd.ts';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('pg-edge-session/neon in workerd: one connection per request', () => {
  let w: NeonWorkerd;
  beforeAll(async () => {
    w = await startNeonWorkerd(new URL('../support/neon-request-worker.ts', import.meta.url), 'neon_request', 'pges-neon-request-test');
  }, 60_000);
  afterAll(async () => {
    await w?.close();
  });
  const open = () => w.open();
  /** Waits until the Worker has no connection left (the closes run in waitUntil, after the response). */
  const noneOpen = async () => {
    const deadline = Date.now() + 5000;
    while ((await open()) > 0 && Date.now() < deadline) await sleep(25);
    return open();
  };
  /** Sends a request; `opened`: the connections it made (counted at the proxy, once all of them closed). */
  const send = async (jar: CookieJar, method: string, path: string) => {
    await noneOpen();
    w.proxy.reset();
    const cookie = jar.header();
    const res = await w.mf.dispatchFetch(`http://app.test${path}`, { method, headers: cookie ? { cookie } : {} });
    const body = await res.text();
    jar.take(res as unknown as Response);
    const left = await noneOpen();
    return { status: res.status, body, opened: w.proxy.opened, left };
  };
  const row = async (id: string) =>
    (await w.admin.query(`SELECT attributes->'theme'->>'v' AS theme, authenticated_at FROM "${w.schemaName}".sessions WHERE id = $1`, [id]))
      .rows[0] as { theme: string; authenticated_at: Date } | undefined;

  it('a request running two statements opens one connection; a cache hit none; none stays open', async () => {
    const jar = new CookieJar();
    const login = await send(jar, 'POST', '/login?user=neon-request');
    expect(login).toMatchObject({ status: 200, opened: 1, left: 0 });
    const { id } = JSON.parse(login.body) as { id: string };
    expect(await send(jar, 'GET', '/me')).toMatchObject({ status: 200, body: JSON.stringify(id), opened: 0, left: 0 });
    const before = await row(id);
    const two = await send(jar, 'POST', '/two?theme=dark');
    expect(two).toMatchObject({ status: 200, opened: 1, left: 0 });
    // Both statements ran: the attribute is saved and the step-up moved authenticated_at.
    const after = await row(id);
    expect(after?.theme).toBe('dark');
    expect(after?.authenticated_at.getTime()).toBeGreaterThan(before?.authenticated_at.getTime() ?? Number.POSITIVE_INFINITY);
  });

  it('a handler that throws after two statements: the error response, its one connection closed afterwards', async () => {
    const jar = new CookieJar();
    const { id } = JSON.parse((await send(jar, 'POST', '/login?user=neon-request-boom')).body) as { id: string };
    const boom = await send(jar, 'POST', '/boom');
    expect(boom).toMatchObject({ status: 500, body: `boom after a statement for ${id}`, opened: 1, left: 0 });
    expect((await row(id))?.theme).toBe('boom');
  });

  it('concurrent requests of one isolate each run on their own connection', async () => {
    const jars = [new CookieJar(), new CookieJar()];
    const ids: string[] = [];
    for (const [i, jar] of jars.entries())
      ids.push((JSON.parse((await send(jar, 'POST', `/login?user=neon-request-c${i}`)).body) as { id: string }).id);
    await noneOpen();
    w.proxy.reset();
    // Interleaved: each request runs a statement, waits, runs another, while the other does the same.
    const answers = await Promise.all(
      jars.map(async (jar, i) => {
        const res = await w.mf.dispatchFetch(`http://app.test/pause?ms=${40 + 15 * i}`, {
          method: 'POST',
          headers: { cookie: jar.header() },
        });
        return { status: res.status, body: await res.text() };
      }),
    );
    expect(answers).toEqual(ids.map((id) => ({ status: 200, body: JSON.stringify(id) })));
    expect(await noneOpen()).toBe(0);
    expect(w.proxy.opened).toBe(2);
  });

  it('work after the response (a due touch flush) opens a connection of its own, closed after it', async () => {
    const jar = new CookieJar();
    const { id } = JSON.parse((await send(jar, 'POST', '/login?user=neon-request-touch')).body) as { id: string };
    const stored = async () =>
      new Date(
        (await w.admin.query(`SELECT last_accessed FROM "${w.schemaName}".sessions WHERE id = $1`, [id])).rows[0].last_accessed,
      ).getTime();
    const created = await stored();
    // Hits (no statement on the request's path), each after lastAccessUpdateInterval: one of them finds
    // a touch due and flushes it in waitUntil; that response's connections are the flush's alone.
    let opened = -1;
    for (let i = 0; i < 3 && opened < 0; i++) {
      await sleep(1100);
      w.proxy.reset();
      const read = await w.mf.dispatchFetch('http://app.test/me', { headers: { cookie: jar.header() } });
      expect(await read.json()).toBe(id);
      // The flush may not have begun when the response arrives: wait for its write, then for its close.
      const deadline = Date.now() + 2000;
      while ((await stored()) === created && Date.now() < deadline) await sleep(25);
      if ((await stored()) > created) {
        expect(await noneOpen()).toBe(0);
        opened = w.proxy.opened;
      }
    }
    expect(opened).toBe(1);
  });
});
