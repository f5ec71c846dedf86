// pg-edge-session/neon in workerd: a statement's connection is closed after the response, in waitUntil,
// not on the request's path. A proxy between the WebSocket proxy and PostgreSQL holds every connection
// that sent Terminate open (neither side sees the close) until released: the response must come while
// the close is held (before, each statement awaited client.end() and the request hung), and once released
// no connection of the Worker stays open.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { TcpProxy } from '../../harness/tcp-proxy.ts';
import { CookieJar } from '../../harness/workerd.ts';
import { type NeonWorkerd, startNeonWorkerd } from '../support/neon-workerd.ts';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('pg-edge-session/neon in workerd: the close of a statement is not on the request path', () => {
  let w: NeonWorkerd;
  let hold: TcpProxy;
  let mf: NeonWorkerd['mf'];
  let admin: NeonWorkerd['admin'];
  let schemaName: string;

  beforeAll(async () => {
    w = await startNeonWorkerd(new URL('../support/neon-close-worker.ts', import.meta.url), 'neon_close', 'pges-neon-close-test');
    ({ proxy: hold, mf, admin, schemaName } = w);
  }, 60_000);
  afterAll(async () => {
    await w?.close();
  });

  const open = () => w.open();

  it('answers a sign-in while their connections are still closing; none stays open once released', async () => {
    hold.holdTerminate = true;
    try {
      const jar = new CookieJar();
      const login = await mf.dispatchFetch('http://app.test/login?user=neon-close', { method: 'POST' });
      expect(login.status).toBe(200);
      jar.take(login as unknown as Response);
      const { id } = (await login.json()) as { id: string };
      const row = await admin.query(`SELECT user_id FROM "${schemaName}".sessions WHERE id = $1`, [id]);
      expect(row.rows[0]?.user_id).toBe('neon-close');
      // The sign-in's connection sent Terminate and is held: the response above did not wait for it.
      expect(hold.held).toBe(1);
      expect(await open()).toBe(1);
      // The next request is not held up by the connection still closing (a hit: the isolate cached the sign-in).
      const me = await mf.dispatchFetch('http://app.test/me', { headers: { cookie: jar.header() } });
      expect(await me.json()).toBe(id);
    } finally {
      hold.holdTerminate = false;
      hold.release();
    }
    const deadline = Date.now() + 5000;
    while ((await open()) > 0 && Date.now() < deadline) await sleep(50);
    expect(await open()).toBe(0);
  });
});
