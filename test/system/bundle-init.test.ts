// A Worker importing every edge entry together — pg-edge-session/host (neonHostDb keeps a dynamic import in
// the bundle), /durable-object, /neon and /hyperdrive — starts in workerd and signs in, reads and ends a
// session against PostgreSQL. A bundle with a dynamic import makes esbuild initialise the modules it
// reaches lazily, drizzle-orm's `sql` among them; no module of src/ may call it while it is evaluated.
import { Miniflare } from 'miniflare';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bundleWorker, COMPATIBILITY_DATE, CookieJar } from '../../harness/workerd.ts';
import { type NeonWorkerd, startNeonWorkerd } from '../support/neon-workerd.ts';

describe('every edge entry in one Worker bundle', () => {
  let w: NeonWorkerd;
  beforeAll(async () => {
    w = await startNeonWorkerd(new URL('../support/bundle-init-worker.ts', import.meta.url), 'bundle_init', 'pges-bundle-init-test');
  }, 60_000);
  afterAll(async () => {
    await w?.close();
  });
  const send = async (jar: CookieJar, method: string, path: string) => {
    const cookie = jar.header();
    const res = await w.mf.dispatchFetch(`http://app.test${path}`, { method, headers: cookie ? { cookie } : {} });
    const body = await res.text();
    jar.take(res as unknown as Response);
    return { status: res.status, body };
  };

  it('starts with all four entries, and signs in, reads and ends a session', async () => {
    const jar = new CookieJar();
    expect(await send(jar, 'GET', '/entries')).toEqual({
      status: 200,
      body: JSON.stringify(['function', 'function', 'function', 'function']),
    });
    expect(await send(jar, 'GET', '/host-db')).toEqual({ status: 200, body: JSON.stringify('function') });
    const login = await send(jar, 'POST', '/login?user=bundle-init');
    expect(login.status).toBe(200);
    const { id } = JSON.parse(login.body) as { id: string };
    expect(await send(jar, 'GET', '/me')).toEqual({ status: 200, body: JSON.stringify(id) });
    const stored = await w.admin.query(`SELECT user_id FROM "${w.schemaName}".sessions WHERE id = $1`, [id]);
    expect(stored.rows).toEqual([{ user_id: 'bundle-init' }]);
    // The logout's statement carries the audit CTE (src/db/audit.ts): its row is written.
    expect(await send(jar, 'POST', '/logout')).toEqual({ status: 200, body: 'null' });
    const audited = await w.admin.query(`SELECT user_id FROM "${w.schemaName}".session_audit WHERE session_id = $1`, [id]);
    expect(audited.rows).toEqual([{ user_id: 'bundle-init' }]);
    expect(await send(jar, 'GET', '/me')).toEqual({ status: 200, body: 'null' });
  });

  it('a Worker importing pg-edge-session/host alone starts', async () => {
    const script = await bundleWorker(new URL('../support/bundle-init-host-worker.ts', import.meta.url).pathname);
    const mf = new Miniflare({ modules: true, script, compatibilityDate: COMPATIBILITY_DATE });
    try {
      const res = await mf.dispatchFetch('http://app.test/');
      expect(await res.json()).toEqual({ neonHostDb: 'function', audit: '"bundle_init"."session_audit"' });
    } finally {
      await mf.dispose();
    }
  });
});
