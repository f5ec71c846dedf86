import http from 'node:http';
import { drizzle } from 'drizzle-orm/node-postgres';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { startTcpProxy } from '../../harness/tcp-proxy.ts';
import { SessionError } from '../../src/core/errors.ts';
import { SessionManager } from '../../src/core/manager.ts';
import { migrate } from '../../src/migrate.ts';
import type { FeedResponse } from '../../src/protocol.ts';
import { HELP } from '../../worker/config.ts';
import { type RunningWorker, startWorker, type WorkerOptions } from '../../worker/main.ts';
import { databaseUrl, dropSchema, uniqueSchema } from '../support/db.ts';

const SECRET = 'test-secret-0123456789-abcdefghijklmnop';
const auth = { authorization: `Bearer ${SECRET}` };

/** Worker drivers: node-postgres over TCP, and Neon's driver over the WebSocket proxy. */
const WORKER_DRIVERS = ['pg', 'neon'] as const;

describe.each(WORKER_DRIVERS)('sync worker (listener via %s)', (driver) => {
  let admin: pg.Pool;
  let schemaName: string;
  let manager: SessionManager;
  const workers: RunningWorker[] = [];
  const logs: string[] = [];

  const start = async (o: Partial<WorkerOptions> = {}) => {
    const w = await startWorker({
      databaseUrl: databaseUrl(),
      secret: SECRET,
      driver,
      neonWsProxy: driver === 'neon' ? `127.0.0.1:${inject('wsProxyPort')}/v2` : undefined,
      port: 0,
      schemaName,
      cleanupInterval: 3_600_000,
      lastAccessUpdateInterval: 3_600_000,
      maxBackoff: 200,
      log: (l) => logs.push(l),
      ...o,
    });
    workers.push(w);
    await w.ready();
    return w;
  };
  const feed = async (w: RunningWorker, after?: string): Promise<FeedResponse> => {
    const r = await fetch(`${w.url}/v1/changes${after ? `?after=${encodeURIComponent(after)}` : ''}`, {
      headers: auth,
      signal: AbortSignal.timeout(5000),
    });
    expect(r.status).toBe(200);
    return (await r.json()) as FeedResponse;
  };
  /** Polls until `pred` holds of the union of ids delivered since `after`. */
  const collect = async (w: RunningWorker, after: string, pred: (ids: Set<string>) => boolean, timeoutMs = 10000) => {
    const ids = new Set<string>();
    let cursor = after;
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      const r = await feed(w, cursor);
      expect(r.reset).toBe(false);
      for (const id of r.ids) ids.add(id);
      cursor = r.cursor;
      if (pred(ids)) return { ids, cursor };
      await new Promise((res) => setTimeout(res, 50));
    }
    return { ids, cursor };
  };

  beforeAll(async () => {
    admin = new pg.Pool({ connectionString: databaseUrl(), max: 4 });
    schemaName = uniqueSchema(`worker_${driver}`);
    await migrate(drizzle(admin), { schemaName });
    manager = new SessionManager(drizzle(admin), { schemaName });
  });
  afterAll(async () => {
    for (const w of workers) await w.close();
    await dropSchema(admin, schemaName);
    await admin.end();
    // Never a token, never the secret in the logs.
    const all = logs.join('\n');
    expect(all).not.toContain(SECRET);
  });

  it('refuses to start without a secret unless --insecure-dev, and with a short one', async () => {
    await expect(startWorker({ databaseUrl: databaseUrl(), schemaName, log: 'silent' })).rejects.toMatchObject({
      code: 'CONFIG_INVALID',
      option: 'secret',
    });
    await expect(startWorker({ databaseUrl: databaseUrl(), schemaName, secret: 'short', log: 'silent' })).rejects.toMatchObject({
      option: 'secret',
    });
    await expect(
      startWorker({ databaseUrl: 'postgres://u:p@ep-x-pooler.eu.aws.neon.tech/db', secret: SECRET, log: 'silent' }),
    ).rejects.toMatchObject({ option: 'databaseUrl' });
  });

  it('fails at start with a typed error when the tables are missing', async () => {
    await expect(
      startWorker({ databaseUrl: databaseUrl(), schemaName: 'no_such_schema_x', secret: SECRET, log: 'silent', port: 0 }),
    ).rejects.toMatchObject({
      code: 'SCHEMA_MISSING',
    });
  });

  it('the startup check says what is wrong: wrong port, unknown host, missing database, unknown user (never the password)', async () => {
    const url = (patch: (u: URL) => void) => {
      const u = new URL(databaseUrl());
      u.password = 'planted-password-123';
      patch(u);
      return u.toString();
    };
    const cases: [string, string, RegExp][] = [
      ['wrong port', url((u) => (u.port = '1')), driver === 'pg' ? /ECONNREFUSED/ : /Connection terminated/],
      [
        'unknown host',
        url((u) => (u.hostname = 'no-such-host.invalid')),
        // ENOTFOUND where a DNS server answers; EAI_AGAIN where none can be reached (the suite runs offline).
        driver === 'pg' ? /(?:ENOTFOUND|EAI_AGAIN) no-such-host\.invalid/ : /Connection terminated/,
      ],
      ['missing database', url((u) => (u.pathname = '/no_such_db_x')), /SQLSTATE 3D000\): database "no_such_db_x" does not exist/],
      ['unknown user', url((u) => (u.username = 'no_such_user_x')), /SQLSTATE 28000\): role "no_such_user_x" does not exist/],
    ];
    for (const [name, databaseUrl, cause] of cases) {
      const e = await startWorker({
        databaseUrl,
        secret: SECRET,
        driver,
        neonWsProxy: driver === 'neon' ? `127.0.0.1:${inject('wsProxyPort')}/v2` : undefined,
        schemaName,
        port: 0,
        log: 'silent',
      }).then(
        () => undefined,
        (err: Error) => err,
      );
      expect(e, name).toBeInstanceOf(SessionError);
      // A host that does not resolve (with or without a DNS server) is unavailable, as a refused port is.
      if (name === 'wrong port' || name === 'unknown host') expect((e as SessionError).code, name).toBe('DATABASE_UNAVAILABLE');
      const u = new URL(databaseUrl);
      // Where it tried (user@host:port/db) and why, in one line.
      expect(e?.message, name).toContain(`startup check of ${u.username}@${u.hostname}:${u.port || 5432}${u.pathname}`);
      expect(e?.message, name).toMatch(cause);
      expect(e?.message, name).not.toContain('planted-password');
      expect(e?.message, name).not.toMatch(/Failed query|params:/);
    }
  });

  it('/v1/changes and /v1/stream answer a typed 503 DATABASE_UNAVAILABLE while the database cannot be reached', async () => {
    const proxy = await startTcpProxy(databaseUrl());
    try {
      const w = await start({ databaseUrl: proxy.url });
      const c0 = (await feed(w)).cursor;
      await proxy.down();
      const deadline = Date.now() + 10_000;
      while (w.listener.ready && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
      for (const path of [`/v1/changes?after=${encodeURIComponent(c0)}`, '/v1/changes', `/v1/stream?after=${encodeURIComponent(c0)}`]) {
        const r = await fetch(`${w.url}${path}`, { headers: auth, signal: AbortSignal.timeout(10_000) });
        expect(r.status, path).toBe(503);
        expect(r.headers.get('retry-after'), path).toBe('1');
        expect(((await r.json()) as { error: { code: string } }).error.code, path).toBe('DATABASE_UNAVAILABLE');
      }
      // And it comes back on its own: the same cursor gets everything after it.
      await proxy.up();
      await w.ready();
      expect((await feed(w, c0)).reset).toBe(false);
      await w.close();
    } finally {
      await proxy.close();
    }
  });

  it('answers 401 without the right secret, except the probes /healthz and /readyz; Bearer is case-insensitive', async () => {
    const w = await start();
    expect((await fetch(`${w.url}/healthz`)).status).toBe(200);
    for (const path of ['/v1/changes', '/metrics']) {
      expect((await fetch(`${w.url}${path}`)).status).toBe(401);
      expect((await fetch(`${w.url}${path}`, { headers: { authorization: 'Bearer wrong' } })).status).toBe(401);
      expect((await fetch(`${w.url}${path}`, { headers: { authorization: `Bearer ${SECRET}x` } })).status).toBe(401);
      expect((await fetch(`${w.url}${path}`, { headers: { authorization: `Basic ${SECRET}` } })).status).toBe(401);
      // RFC 7235: the auth scheme is case-insensitive; the secret is not.
      for (const scheme of ['bearer', 'BEARER', 'bEaReR']) {
        expect((await fetch(`${w.url}${path}`, { headers: { authorization: `${scheme} ${SECRET}` } })).status).toBe(200);
      }
      expect((await fetch(`${w.url}${path}`, { headers: { authorization: `Bearer ${SECRET.toUpperCase()}` } })).status).toBe(401);
    }
    const r = await fetch(`${w.url}/v1/touches`, { method: 'POST', body: '{"touches":[]}' });
    expect(r.status).toBe(401);
    expect(((await r.json()) as { error: { code: string } }).error.code).toBe('UNAUTHORIZED');
  });

  it('/readyz is open to an orchestrator probe (no secret) and reveals nothing but ready / not ready', async () => {
    const w = await start();
    // What --help, the README and src/protocol.ts promise: no secret needed.
    expect(HELP).toMatch(/All but \/healthz and \/readyz need "Authorization: Bearer <secret>"/);
    const open = await fetch(`${w.url}/readyz`);
    expect(open.status).toBe(200);
    expect(await open.json()).toEqual({ ready: true });
    // A wrong secret does not matter either: the probe carries none.
    expect((await fetch(`${w.url}/readyz`, { headers: { authorization: 'Bearer wrong' } })).status).toBe(200);
    await w.close();
    const closed = await fetch(`${w.url}/readyz`).catch(() => undefined);
    // Closed: refused outright, or a bare "not ready".
    if (closed !== undefined) {
      expect(closed.status).toBe(503);
      expect(await closed.json()).toEqual({ ready: false });
    }
  });

  it('refuses --insecure-dev on a host that is not loopback (every request would be accepted from the network)', async () => {
    for (const host of ['0.0.0.0', '::', '10.0.0.5', 'example.com']) {
      await expect(
        startWorker({ databaseUrl: databaseUrl(), schemaName, insecureDev: true, host, port: 0, log: 'silent' }),
      ).rejects.toMatchObject({
        code: 'CONFIG_INVALID',
        option: 'insecureDev',
      });
    }
    for (const host of ['127.0.0.1', '::1', 'localhost']) {
      const w = await start({ secret: undefined, insecureDev: true, host });
      expect((await fetch(`${w.url}/v1/changes`)).status).toBe(200);
      await w.close();
    }
  });

  it('delivers library changes and plain-SQL changes through the feed, with compatible cursors', async () => {
    const w = await start();
    const a = await manager.createSession('w-u1', { n: 1 });
    const b = await manager.createSession('w-u2', { n: 1 });
    const c0 = (await feed(w)).cursor;
    a.session.set('n', 2);
    await manager.updateSession(a.session);
    await admin.query(`DELETE FROM "${schemaName}"."sessions" WHERE id = $1`, [b.session.id]);
    const { ids } = await collect(w, c0, (s) => s.has(a.session.id) && s.has(b.session.id));
    expect([...ids].sort()).toEqual([a.session.id, b.session.id].sort());
  });

  it('push stream: delivers a change and heartbeats with advancing freshness', async () => {
    const w = await start();
    const a = await manager.createSession('w-u3', {});
    const start0 = await feed(w);
    const ac = new AbortController();
    const res = await fetch(`${w.url}/v1/stream?after=${encodeURIComponent(start0.cursor)}`, { headers: auth, signal: ac.signal });
    expect(res.headers.get('content-type')).toContain('text/event-stream');
    const reader = (res.body as ReadableStream<Uint8Array>)
      .pipeThrough(new TextDecoderStream() as unknown as TransformStream<Uint8Array, string>)
      .getReader();
    let text = '';
    const seen: FeedResponse[] = [];
    setTimeout(() => {
      a.session.set('x', 1);
      void manager.updateSession(a.session);
    }, 100);
    const deadline = Date.now() + 10000;
    while (Date.now() < deadline && !seen.some((e) => e.ids.includes(a.session.id))) {
      const { value } = await reader.read();
      text += value ?? '';
      for (const m of text.matchAll(/data: (.*)\n\n/g)) seen.push(JSON.parse(m[1] as string));
      text = text.slice(text.lastIndexOf('\n\n') + 2);
    }
    ac.abort();
    expect(seen.some((e) => e.ids.includes(a.session.id))).toBe(true);
    expect(seen.length).toBeGreaterThan(1);
    expect((seen.at(-1) as FeedResponse).freshAsOf).toBeGreaterThanOrEqual(seen[0]?.freshAsOf as number);
  });

  it('catches up on every change after pg_terminate_backend of the listener (no gaps)', async () => {
    const w = await start();
    const sessions = await Promise.all(Array.from({ length: 20 }, (_, i) => manager.createSession(`w-term-${i}`, {})));
    const c0 = (await feed(w)).cursor;
    const writes = (async () => {
      for (const [i, s] of sessions.entries()) {
        s.session.set('i', i);
        await manager.updateSession(s.session);
        await new Promise((r) => setTimeout(r, 10));
      }
    })();
    await new Promise((r) => setTimeout(r, 30));
    // Every listener of this test database (other workers of this file reconnect too).
    const killed = await admin.query(
      `SELECT pg_terminate_backend(pid) AS ok FROM pg_stat_activity WHERE application_name = 'pg-edge-session-listener' AND datname = current_database()`,
    );
    expect(killed.rowCount).toBeGreaterThanOrEqual(1);
    await writes;
    const { ids } = await collect(w, c0, (s) => s.size >= sessions.length, 15000);
    if (ids.size !== sessions.length) console.log(logs.slice(-30).join('\n'));
    expect([...ids].sort()).toEqual(sessions.map((s) => s.session.id).sort());
    await w.ready();
    expect(logs.some((l) => l.includes('listener reconnecting'))).toBe(true);
  });

  it('answers a cursor from another worker replica correctly, and cleanup runs on one worker at a time', async () => {
    const w1 = await start();
    const w2 = await start();
    const a = await manager.createSession('w-u4', {});
    const c1 = (await feed(w1)).cursor;
    a.session.set('r', 1);
    await manager.updateSession(a.session);
    const { ids } = await collect(w2, c1, (s) => s.has(a.session.id));
    expect(ids.has(a.session.id)).toBe(true);

    const lockHolder = await admin.connect();
    try {
      await lockHolder.query(`SELECT pg_advisory_lock(hashtext('pg-edge-session:cleanup'), hashtext($1))`, [`${schemaName}.`]);
      expect((await w1.runCleanup()).ran).toBe(false);
      expect((await w2.runCleanup()).ran).toBe(false);
      await lockHolder.query(`SELECT pg_advisory_unlock_all()`);
    } finally {
      lockHolder.release();
    }
    const [r1, r2] = await Promise.all([w1.runCleanup(), w2.runCleanup()]);
    expect(r1.ran || r2.ran).toBe(true);
  });

  it('coalesces many touches of one session into one row update, with GREATEST', async () => {
    const w = await start();
    const a = await manager.createSession('w-u5', {});
    // Touch times lie between the creation and now (the worker clamps later ones to its clock).
    await new Promise((r) => setTimeout(r, 100));
    const base = Date.now() - 60;
    for (let i = 0; i < 50; i++) {
      const r = await fetch(`${w.url}/v1/touches`, {
        method: 'POST',
        headers: auth,
        body: JSON.stringify({ touches: [[a.session.id, base + i]] }),
      });
      expect(r.status).toBe(200);
    }
    expect(w.pendingTouches).toBe(1);
    const before = await metric(w, 'pges_flush_rows_total');
    await w.flushTouches();
    expect((await metric(w, 'pges_flush_rows_total')) - before).toBe(1);
    const { rows } = await admin.query(
      `SELECT (extract(epoch from last_accessed) * 1000)::float8 AS t FROM "${schemaName}"."sessions" WHERE id = $1`,
      [a.session.id],
    );
    expect(rows[0].t).toBe(base + 49);
    // an older touch never moves it back
    await fetch(`${w.url}/v1/touches`, {
      method: 'POST',
      headers: auth,
      body: JSON.stringify({ touches: [[a.session.id, base - 100000]] }),
    });
    await w.flushTouches();
    const again = await admin.query(
      `SELECT (extract(epoch from last_accessed) * 1000)::float8 AS t FROM "${schemaName}"."sessions" WHERE id = $1`,
      [a.session.id],
    );
    expect(again.rows[0].t).toBe(base + 49);
  });

  it('no touch, batch or merge of them revives an idle-expired session (back-dated first access, runs merged across posts)', async () => {
    const IDLE = 2000;
    const HOLD = 1000;
    const w = await start({ inactivityDuration: IDLE, touchMaxHold: HOLD });
    const idleManager = new SessionManager(drizzle(admin), { schemaName, inactivityDuration: IDLE, cacheSize: 0 });
    const lastAccessed = async (id: string) =>
      Number(
        (
          await admin.query(
            `SELECT (extract(epoch from last_accessed) * 1000)::float8 AS t FROM "${schemaName}"."sessions" WHERE id = $1`,
            [id],
          )
        ).rows[0].t,
      );
    const post = async (touches: unknown[]) => {
      const r = await fetch(`${w.url}/v1/touches`, { method: 'POST', headers: auth, body: JSON.stringify({ touches }) });
      expect(r.status).toBe(200);
    };
    const at = async (t: number) => {
      while (Date.now() < t) await new Promise((r) => setTimeout(r, t - Date.now()));
    };
    const victims = await Promise.all([1, 2, 3].map((i) => idleManager.createSession(`w-idle-victim-${i}`, {})));
    const merged = await idleManager.createSession('w-idle-merged', {});
    const created = await lastAccessed(merged.session.id);
    // While alive: a touch of `merged` reaches the buffer (not flushed: the flush interval is an hour).
    await post([[merged.session.id, Date.now()]]);
    // Now idle-expired for longer than touchMaxHold.
    await at(created + IDLE + HOLD + 500);
    for (const v of victims) expect(await idleManager.getSession(v.token, { forceRefresh: true })).toBeNull();
    const [v1, v2, v3] = victims.map((v) => v.session.id);
    const attacks: [string, string, unknown[][]][] = [
      ['first back-dated 10 s', v1 as string, [[[v1, Date.now(), Date.now() - 10_000]]]],
      ['first at 1 ms', v2 as string, [[[v2, Date.now(), 1]]]],
      ['two posts, 10 s ago then now', v3 as string, [[[v3, Date.now() - 10_000]], [[v3, Date.now()]]]],
      ['a run held in the buffer since before the idle timeout, then a touch now', merged.session.id, [[[merged.session.id, Date.now()]]]],
    ];
    const revived: Record<string, boolean> = {};
    for (const [, , posts] of attacks) for (const touches of posts) await post(touches);
    await w.flushTouches();
    for (const [name, id] of attacks) revived[name] = (await lastAccessed(id)) >= created + IDLE;
    expect(revived).toEqual(Object.fromEntries(attacks.map(([name]) => [name, false])));
    for (const v of [...victims, merged]) expect(await idleManager.getSession(v.token, { forceRefresh: true })).toBeNull();

    // An honest touch held past the idle timeout, whose run began while the session was alive and within
    // touchMaxHold of its arrival, still lands.
    const honest = await idleManager.createSession('w-idle-honest', {});
    const honestAt = await lastAccessed(honest.session.id);
    await at(honestAt + IDLE + 300);
    await post([[honest.session.id, Date.now(), honestAt + IDLE - 200]]);
    await w.flushTouches();
    expect(await lastAccessed(honest.session.id)).toBeGreaterThan(honestAt + IDLE);
  });

  it('rejects malformed touch bodies with a typed 400, oversized ones with 413, and changes nothing', async () => {
    const w = await start();
    const a = await manager.createSession('w-u6', {});
    const bad = [
      'not json',
      '[]',
      '{}',
      '{"touches": {}}',
      JSON.stringify({ touches: [[a.session.id]] }),
      JSON.stringify({ touches: [['not-a-uuid', Date.now()]] }),
      JSON.stringify({ touches: [[a.session.id, 'soon']] }),
      // a run whose first access comes after its last
      JSON.stringify({ touches: [[a.session.id, Date.now(), Date.now() + 10]] }),
      JSON.stringify({ touches: [[a.session.id, Date.now(), 'earlier']] }),
      JSON.stringify({
        touches: [
          [a.session.id, Date.now()],
          ['x', 1],
        ],
      }),
      JSON.stringify({ touches: Array.from({ length: 20001 }, () => [a.session.id, Date.now()]) }),
      `{"touches":[${'0'.repeat(1024 * 1024 + 10)}]}`,
    ];
    for (const body of bad) {
      const r = await fetch(`${w.url}/v1/touches`, { method: 'POST', headers: auth, body });
      expect(r.status).toBe(body.length > 1024 * 1024 ? 413 : 400);
      const e = (await r.json()) as { error: { code: string; message: string } };
      expect(['BAD_REQUEST', 'BODY_TOO_LARGE']).toContain(e.error.code);
    }
    expect(w.pendingTouches).toBe(0);
  });

  it("an oversized touch body gets 413 and Connection: close, and a keep-alive client's next request works", async () => {
    const w = await start();
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    const request = (body: string | undefined, chunked = false) =>
      new Promise<{ status: number; headers: http.IncomingHttpHeaders; body: string }>((resolve, reject) => {
        const u = new URL(`${w.url}${body === undefined ? '/v1/changes' : '/v1/touches'}`);
        const req = http.request(
          {
            agent,
            host: u.hostname,
            port: u.port,
            path: u.pathname,
            method: body === undefined ? 'GET' : 'POST',
            headers: { ...auth, ...(chunked ? {} : body === undefined ? {} : { 'content-length': Buffer.byteLength(body) }) },
          },
          (res) => {
            let text = '';
            res.on('data', (d: Buffer) => (text += d.toString()));
            res.on('end', () => resolve({ status: res.statusCode as number, headers: res.headers, body: text }));
          },
        );
        req.on('error', reject);
        req.end(body);
      });
    try {
      expect((await request(undefined)).status).toBe(200);
      const big = `{"touches":[${'0'.repeat(1024 * 1024 + 10)}]}`;
      const r = await request(big);
      expect(r.status).toBe(413);
      expect(r.headers.connection).toBe('close');
      expect(JSON.parse(r.body).error.code).toBe('BODY_TOO_LARGE');
      // The next request on the same keep-alive agent gets a fresh connection, not a socket hang up.
      expect((await request(undefined)).status).toBe(200);
      expect((await request('{"touches":[]}')).status).toBe(200);
      expect(w.pendingTouches).toBe(0);
    } finally {
      agent.destroy();
    }
  });

  it('exposes Prometheus metrics', async () => {
    const w = await start();
    const text = await (await fetch(`${w.url}/metrics`, { headers: auth })).text();
    for (const name of [
      'pges_notifications_total',
      'pges_changes_delivered_total',
      'pges_subscribers',
      'pges_touches_pending',
      'pges_flush_batches_total',
      'pges_flush_rows_total',
      'pges_flush_duration_seconds',
      'pges_cleanup_rows_total',
      'pges_cleanup_duration_seconds',
      'pges_listener_reconnects_total',
      'pges_catchup_lag_seconds',
    ]) {
      expect(text).toContain(name);
    }
  });
});

async function metric(w: RunningWorker, name: string): Promise<number> {
  const text = await (await fetch(`${w.url}/metrics`, { headers: auth })).text();
  const m = new RegExp(`^${name} (\\S+)$`, 'm').exec(text);
  return m ? Number(m[1]) : 0;
}
