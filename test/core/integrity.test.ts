// Integrity under attack: a rotated-away or revoked token stays dead, writes are bound to the
// token a Session came through, the cache is only filled under a token a statement proved current, a
// worker's clock is never trusted past the client's own, touches cannot revive an idle-expired session,
// eviction ranks by the newest known access, and memory is bounded in bytes. Each test replays the attack
// of the issue against the real database, on both drivers.
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Hono } from 'hono';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ConfigError, SessionNotFoundError, SessionTooLargeError } from '../../src/core/errors.ts';
import { SessionManager } from '../../src/core/manager.ts';
import { type SessionEnv, sessionMiddleware } from '../../src/hono.ts';
import { SyncClient } from '../../src/sync/client.ts';
import { type RunningWorker, startWorker } from '../../worker/main.ts';
import { DRIVERS, databaseUrl, fakeClock } from '../support/db.ts';
import { countRows, rawRow, table, uid } from '../support/manager-helpers.ts';
import { useStore } from '../support/store-suite.ts';

const SECOND = 1000;
const MINUTE = 60 * SECOND;
const SECRET = 'integrity-secret-0123456789-abcdefghijklmnop';
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe.each(DRIVERS)('a rotated-away token stays dead (%s)', (driver) => {
  const fx = useStore(driver, 'integ_rot');

  /** Managers A and B on one database; B loaded the session through T before A rotated T away. */
  async function rotatedAway(config: { maxStaleness?: number } = {}) {
    const clock = fakeClock();
    const a = fx.manager({ clock, ...config });
    const b = fx.manager({ clock, ...config });
    const { session, token } = await a.createSession(uid(), { n: 1 });
    const viaT = (await b.getSession(token))!;
    expect(viaT.id).toBe(session.id);
    const rotated = (await a.rotate(token))!;
    return { clock, a, b, token, viaT, rotated, before: (await rawRow(fx, session.id))! };
  }

  it('a write through a Session loaded by a rotated-away token is SESSION_NOT_FOUND and writes nothing', async () => {
    for (const staleness of ['within maxStaleness', 'after maxStaleness'] as const) {
      const { clock, b, token, viaT, before } = await rotatedAway();
      if (staleness === 'after maxStaleness') {
        clock.advance(1.5 * SECOND);
        expect(await b.getSession(token)).toBeNull();
      }
      viaT.set('n', 2);
      await expect(b.updateSession(viaT)).rejects.toBeInstanceOf(SessionNotFoundError);
      viaT.set('n', 3);
      await expect(b.updateSession(viaT, { checkVersion: true })).rejects.toMatchObject({ code: 'SESSION_NOT_FOUND' });
      await expect(b.updateSession(viaT, { checkAttributeVersion: true })).rejects.toMatchObject({ code: 'SESSION_NOT_FOUND' });
      const after = (await rawRow(fx, viaT.id))!;
      expect(after.xmin).toBe(before.xmin);
      expect(after.attributes.n?.v).toBe(1);
      // The old token was not put back into the cache by the failed writes.
      expect(await b.getSession(token)).toBeNull();
      clock.advance(10 * SECOND);
      expect(await b.getSession(token)).toBeNull();
    }
  });

  it('a Session loaded by a rotated-away token cannot rotate (no new token for the old holder) or delete', async () => {
    const { a, b, viaT, rotated, before } = await rotatedAway();
    expect(await b.rotate(viaT)).toBeNull();
    expect(await b.deleteSession(viaT)).toBe(false);
    const after = (await rawRow(fx, viaT.id))!;
    expect(after.xmin).toBe(before.xmin);
    expect(after.token_hash).toBe(before.token_hash);
    // The legitimate holder's token still works.
    expect((await a.getSession(rotated.token, { forceRefresh: true }))?.id).toBe(viaT.id);
  });

  it('the current token keeps working for writes, rotation and delete through its Session', async () => {
    const clock = fakeClock();
    const m = fx.manager({ clock });
    const { token } = await m.createSession(uid(), { n: 1 });
    const s = (await m.getSession(token))!;
    s.set('n', 2);
    await m.updateSession(s);
    const r = (await m.rotate(s))!;
    // The rotated Session is bound to the new token: it writes on.
    s.set('n', 3);
    await m.updateSession(s);
    expect((await m.getSession(r.token, { forceRefresh: true }))?.get('n')).toBe(3);
    expect(await m.getSession(token, { forceRefresh: true })).toBeNull();
    expect(await m.deleteSession(s)).toBe(true);
  });

  it('a write through a deleted session writes nothing and is SESSION_NOT_FOUND', async () => {
    const clock = fakeClock();
    const a = fx.manager({ clock });
    const b = fx.manager({ clock });
    const { token } = await a.createSession(uid(), { n: 1 });
    const s = (await b.getSession(token))!;
    await a.deleteSession(token);
    s.set('n', 2);
    await expect(b.updateSession(s)).rejects.toBeInstanceOf(SessionNotFoundError);
    expect(await b.getSession(token)).toBeNull();
  });

  it('through the middleware: an old cookie cannot write, cannot mint a token, and the new one keeps working', async () => {
    const { clock, b, token, rotated, viaT, before } = await rotatedAway();
    const app = new Hono<SessionEnv<{ n: number }>>();
    const errors: string[] = [];
    app.onError((e, c) => {
      errors.push((e as { code?: string }).code ?? String(e));
      return c.text('gone', 409);
    });
    app.use(sessionMiddleware({ manager: b as unknown as SessionManager<{ n: number }> }));
    app.post('/set', async (c) => {
      const s = await c.var.session.get();
      if (s === null) return c.text('signed out', 401);
      s.set('n', 99);
      return c.text('saved');
    });
    app.post('/rotate', async (c) => c.json({ rotated: (await c.var.session.rotate()) !== null }));
    const old = { cookie: `__Host-session=${token}` };
    // Within maxStaleness B may still serve the cached session, but its write is refused.
    const r1 = await app.request('/set', { method: 'POST', headers: old });
    expect(r1.status).toBe(409);
    expect(errors).toEqual(['SESSION_NOT_FOUND']);
    const r2 = await app.request('/rotate', { method: 'POST', headers: old });
    expect(await r2.json()).toEqual({ rotated: false });
    expect(r2.headers.getSetCookie().join()).not.toMatch(/__Host-session=[A-Za-z0-9_-]{43}/);
    for (let i = 0; i < 5; i++) {
      clock.advance(SECOND);
      const r = await app.request('/set', { method: 'POST', headers: old });
      expect(r.status).toBe(401);
    }
    const after = (await rawRow(fx, viaT.id))!;
    expect(after.xmin).toBe(before.xmin);
    expect(after.attributes.n?.v).toBe(1);
    // The legitimate holder (new token) writes normally.
    const r3 = await app.request('/set', { method: 'POST', headers: { cookie: `__Host-session=${rotated.token}` } });
    expect(r3.status).toBe(200);
    expect((await rawRow(fx, viaT.id))!.attributes.n?.v).toBe(99);
  });
});

describe.each(DRIVERS)('a rotated-away token stays dead with a sync client (%s)', (driver) => {
  const fx = useStore(driver, 'integ_sync');
  let worker: RunningWorker;
  beforeAll(async () => {
    worker = await startWorker({
      databaseUrl: databaseUrl(),
      secret: SECRET,
      port: 0,
      schemaName: fx.schemaName,
      lastAccessUpdateInterval: 3_600_000,
      cleanupInterval: 3_600_000,
      log: 'silent',
    });
    await worker.ready();
  });
  afterAll(async () => {
    await worker?.close();
  });

  for (const mode of ['poll', 'stream'] as const) {
    it(`${mode} mode: writes through the old token are refused and it is never served again`, async () => {
      const a = fx.manager();
      const b = fx.manager({ maxStaleness: 1000 });
      const sync = new SyncClient(b, { workerUrl: worker.url, secret: SECRET, mode, syncInterval: 50, touchInterval: 100_000 });
      sync.start();
      try {
        if (mode === 'poll') await sync.sync();
        const { session, token } = await a.createSession(uid(), { n: 1 });
        const viaT = (await b.getSession(token))!;
        const rotated = (await a.rotate(token))!;
        const before = (await rawRow(fx, session.id))!;
        // Keep writing through the old token, as the attacker of the issue did, for 2.5 s.
        const deadline = Date.now() + 2500;
        let served = 0;
        while (Date.now() < deadline) {
          if (mode === 'poll') await sync.sync();
          viaT.set('n', Math.random());
          await expect(b.updateSession(viaT)).rejects.toBeInstanceOf(SessionNotFoundError);
          if ((await b.getSession(token)) !== null) served++;
          await sleep(100);
        }
        // Served at most while the cache entry was still within maxStaleness (never refilled by a write).
        expect(served).toBeLessThanOrEqual(1);
        expect(await b.getSession(token)).toBeNull();
        expect((await rawRow(fx, session.id))!.xmin).toBe(before.xmin);
        expect((await b.getSession(rotated.token))?.get('n')).toBe(1);
      } finally {
        await sync.stop();
      }
    });
  }
});

/** A stand-in sync worker that answers with a clock one hour ahead, then goes away. */
async function lyingWorker(
  answer: (now: number) => object,
): Promise<{ url: string; hits: () => number; down(): void; close(): Promise<void> }> {
  let hits = 0;
  let up = true;
  const server: Server = createServer((req, res) => {
    hits++;
    if (!up) {
      res.destroy();
      return;
    }
    const body = answer(Date.now());
    if (req.url?.startsWith('/v1/stream')) {
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      res.write(`event: changes\ndata: ${JSON.stringify({ from: '', ...body })}\n\n`);
      return;
    }
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify(body));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    hits: () => hits,
    down: () => {
      up = false;
      server.closeAllConnections();
    },
    close: () => {
      server.closeAllConnections();
      return new Promise<void>((r) => server.close(() => r()));
    },
  };
}

describe.each(DRIVERS)('the sync client never trusts the worker clock past its own (%s)', (driver) => {
  const fx = useStore(driver, 'integ_clock');
  const HOUR = 3_600_000;
  const answers = {
    'freshAsOf and now an hour ahead': (now: number) => ({
      cursor: '10:10:',
      ids: [],
      reset: false,
      freshAsOf: now + HOUR,
      now: now + HOUR,
    }),
    'freshAsOf an hour ahead, no now': (now: number) => ({ cursor: '10:10:', ids: [], reset: false, freshAsOf: now + HOUR }),
    'freshAsOf after now (a lie)': (now: number) => ({ cursor: '10:10:', ids: [], reset: false, freshAsOf: now + HOUR, now }),
  };

  for (const [name, answer] of Object.entries(answers)) {
    for (const mode of ['poll', 'stream'] as const) {
      it(`${mode}, ${name}: a session deleted by psql is not served after maxStaleness`, async () => {
        const w = await lyingWorker(answer);
        const m = fx.manager({ maxStaleness: 1000 });
        const sync = new SyncClient(m, { workerUrl: w.url, mode, directFallback: false, syncInterval: 50, streamIdleTimeout: 60_000 });
        try {
          const { session, token } = await m.createSession(uid());
          if (mode === 'poll') await sync.sync();
          else {
            sync.start();
            const deadline = Date.now() + 3000;
            while (sync.cursor === null && Date.now() < deadline) await sleep(10);
          }
          expect(sync.cursor).toBe('10:10:');
          // Never marked later than the local time the request was sent.
          expect(m.cache.freshAsOf).toBeLessThanOrEqual(Date.now());
          w.down();
          await fx.t.admin.query(`DELETE FROM ${table(fx)} WHERE id = $1`, [session.id]);
          await sleep(1500);
          if (mode === 'poll') await sync.sync();
          expect(await m.getSession(token)).toBeNull();
          await sleep(3500);
          expect(await m.getSession(token)).toBeNull();
        } finally {
          await sync.stop();
          await w.close();
        }
      });
    }
  }

  it('refuses a plain-http worker URL off loopback unless insecureHttp is set', () => {
    const m = fx.manager();
    expect(() => new SyncClient(m, { workerUrl: 'http://sessions.internal:8787' })).toThrow(ConfigError);
    expect(() => new SyncClient(m, { workerUrl: 'http://10.0.0.5:8787' })).toThrow(/https/);
    expect(() => new SyncClient(m, { workerUrl: 'ftp://127.0.0.1' })).toThrow(ConfigError);
    expect(() => new SyncClient(m, { workerUrl: 'https://user:pw@sessions.example' })).toThrow(/credentials/);
    expect(() => new SyncClient(m, { workerUrl: 'not a url' })).toThrow(ConfigError);
    for (const ok of ['https://sessions.example.com', 'http://127.0.0.1:8787', 'http://localhost:1', 'http://[::1]:8787']) {
      expect(() => new SyncClient(m, { workerUrl: ok })).not.toThrow();
    }
    expect(() => new SyncClient(m, { workerUrl: 'http://sessions.internal:8787', insecureHttp: true })).not.toThrow();
  });
});

describe.each(DRIVERS)('touches cannot revive an idle-expired session (%s)', (driver) => {
  const fx = useStore(driver, 'integ_idle');
  const IDLE = 4 * SECOND;

  it('flushTouches: a touch that begins after the idle timeout is not written; a fresh manager still sees it dead', async () => {
    const clock = fakeClock();
    const m = fx.manager({ clock, inactivityDuration: IDLE, lastAccessUpdateInterval: MINUTE });
    const { session, token } = await m.createSession(uid());
    m.takePendingTouches();
    clock.advance(4.5 * SECOND);
    expect(await m.getSession(token)).toBeNull();
    const before = (await rawRow(fx, session.id))!;
    // A touch recorded "now" (by a clock that says so, or handed back by a client) arrives anyway.
    m.restoreTouches([[session.id, clock() + 59 * SECOND]]);
    expect(await m.flushTouches()).toEqual({ rows: 0, batches: 1 });
    expect((await rawRow(fx, session.id))!.last_accessed).toBe(before.last_accessed);
    expect(await fx.manager({ clock, inactivityDuration: IDLE }).getSession(token)).toBeNull();
  });

  it('a run of accesses that kept the session alive is written whole, even when longer than the idle timeout', async () => {
    const clock = fakeClock();
    const m = fx.manager({ clock, inactivityDuration: IDLE, lastAccessUpdateInterval: MINUTE });
    const { session, token } = await m.createSession(uid());
    for (let i = 0; i < 5; i++) {
      clock.advance(3 * SECOND);
      expect(await m.getSession(token)).not.toBeNull();
    }
    expect(await m.flushTouches()).toEqual({ rows: 1, batches: 1 });
    expect((await rawRow(fx, session.id))!.last_accessed).toBe(clock());
    clock.advance(3 * SECOND);
    expect(await fx.manager({ clock, inactivityDuration: IDLE }).getSession(token)).not.toBeNull();
  });

  it('a touch is clamped to the flusher clock and never written past the absolute expiry', async () => {
    const clock = fakeClock();
    const m = fx.manager({ clock, inactivityDuration: 0 });
    const { session } = await m.createSession(uid(), {}, { expiresAt: clock() + 10 * SECOND });
    m.takePendingTouches();
    clock.advance(SECOND);
    m.restoreTouches([[session.id, clock() + 59 * SECOND]]);
    await m.flushTouches();
    expect((await rawRow(fx, session.id))!.last_accessed).toBe(clock());
    clock.advance(20 * SECOND);
    m.restoreTouches([[session.id, clock()]]);
    expect(await m.flushTouches()).toEqual({ rows: 0, batches: 1 });
  });

  it('the worker clamps a touch from the future and refuses to revive an idle-expired session', async () => {
    const schemaIdle = 1000;
    const w = await startWorker({
      databaseUrl: databaseUrl(),
      secret: SECRET,
      port: 0,
      schemaName: fx.schemaName,
      inactivityDuration: schemaIdle,
      lastAccessUpdateInterval: 3_600_000,
      cleanupInterval: 3_600_000,
      log: 'silent',
    });
    try {
      const m = fx.manager({ inactivityDuration: schemaIdle });
      const { session, token } = await m.createSession(uid());
      const created = (await rawRow(fx, session.id))!.last_accessed;
      // Alive: a touch 59 s in the future is clamped to the worker's clock.
      await sleep(200);
      const r1 = await fetch(`${w.url}/v1/touches`, {
        method: 'POST',
        headers: { authorization: `Bearer ${SECRET}` },
        body: JSON.stringify({ touches: [[session.id, Date.now() + 59 * SECOND]] }),
      });
      expect(r1.status).toBe(200);
      await w.flushTouches();
      const clamped = (await rawRow(fx, session.id))!.last_accessed;
      expect(clamped).toBeGreaterThan(created);
      expect(clamped).toBeLessThanOrEqual(Date.now());
      // Idle past the timeout: dead, and a touch sent now does not bring it back.
      await sleep(1200);
      expect(await fx.manager({ inactivityDuration: schemaIdle }).getSession(token)).toBeNull();
      await fetch(`${w.url}/v1/touches`, {
        method: 'POST',
        headers: { authorization: `Bearer ${SECRET}` },
        body: JSON.stringify({ touches: [[session.id, Date.now() + 59 * SECOND]] }),
      });
      await w.flushTouches();
      expect((await rawRow(fx, session.id))!.last_accessed).toBe(clamped);
      expect(await fx.manager({ inactivityDuration: schemaIdle }).getSession(token)).toBeNull();
    } finally {
      await w.close();
    }
  });
});

describe.each(DRIVERS)('max-sessions eviction uses the newest known access (%s)', (driver) => {
  const fx = useStore(driver, 'integ_evict');

  it('the session read 40 ms ago (touch not yet written) is kept; the never-used one is evicted', async () => {
    const clock = fakeClock();
    const m = fx.manager({ clock, maxSessions: 2 });
    const user = uid();
    const used = await m.createSession(user);
    clock.advance(10);
    const unused = await m.createSession(user);
    clock.advance(1000);
    expect(await m.getSession(used.token)).not.toBeNull(); // touch pending in this manager
    clock.advance(40);
    await m.createSession(user);
    expect(await rawRow(fx, used.session.id)).toBeDefined();
    expect(await rawRow(fx, unused.session.id)).toBeUndefined();
    expect(await countRows(fx, 'user_id = $1', [user])).toBe(2);
  });
});

describe.each(DRIVERS)('memory and size bounds (%s)', (driver) => {
  const fx = useStore(driver, 'integ_size');

  it('the cache is bounded in estimated bytes, not only in count', async () => {
    const m = fx.manager({ cacheMaxBytes: 1024 * 1024, maxSessionBytes: 200_000, maxAttributeLength: 16384 });
    const big = Object.fromEntries(Array.from({ length: 8 }, (_, i) => [`k${i}`, 'x'.repeat(16_000)]));
    for (let i = 0; i < 40; i++) {
      const { token } = await m.createSession(uid(), big);
      await m.getSession(token);
      expect(m.cache.bytes).toBeLessThanOrEqual(1024 * 1024);
    }
    // 40 sessions of ~128 KB: only a handful fit in 1 MiB.
    expect(m.cache.size).toBeLessThan(10);
    expect(m.cache.size).toBeGreaterThan(0);
  });

  it('small sessions read through misses are weighed by their estimated heap, not by their JSON alone', async () => {
    // Regression: a miss weighed a record by its row's JSON length (~300 bytes) while it takes over 1 KB of
    // heap, so the byte bound let the cache grow to about 4x its size.
    const m = fx.manager({ cacheMaxBytes: 256 * 1024, cacheSize: 100_000 });
    const tokens: string[] = [];
    for (let i = 0; i < 400; i++) tokens.push((await fx.manager().createSession(uid(), { theme: 'dark' })).token);
    for (const t of tokens) await m.getSession(t);
    expect(m.cache.bytes).toBeLessThanOrEqual(256 * 1024);
    expect(m.cache.size).toBeLessThanOrEqual(256);
    expect(m.cache.size).toBeGreaterThan(100);
  });

  it('the default cache bound fits a Workers isolate', () => {
    expect(fx.manager().config.cacheMaxBytes).toBeLessThanOrEqual(64 * 1024 * 1024);
  });

  it('a session larger than maxSessionBytes is refused with a typed error and nothing written', async () => {
    const m = fx.manager({ maxSessionBytes: 64 * 1024 });
    const user = uid();
    const attrs = Object.fromEntries(Array.from({ length: 64 }, (_, i) => [`k${i}`, 'y'.repeat(16_000)]));
    const err = await m.createSession(user, attrs).catch((e) => e);
    expect(err).toBeInstanceOf(SessionTooLargeError);
    expect(err).toMatchObject({ code: 'SESSION_TOO_LARGE', limit: 64 * 1024 });
    // Just over the bound as PostgreSQL prints it (JSON.stringify would count it as under).
    const near = Object.fromEntries(Array.from({ length: 4 }, (_, i) => [`k${i}`, 'z'.repeat(16_370)]));
    await expect(m.createSession(user, near)).rejects.toBeInstanceOf(SessionTooLargeError);
    expect(await countRows(fx, 'user_id = $1', [user])).toBe(0);

    const { session } = await m.createSession(user, { a: 'a'.repeat(16_000) });
    const before = (await rawRow(fx, session.id))!;
    for (let i = 0; i < 4; i++) session.set(`b${i}`, 'b'.repeat(16_000));
    await expect(m.updateSession(session)).rejects.toBeInstanceOf(SessionTooLargeError);
    expect((await rawRow(fx, session.id))!.xmin).toBe(before.xmin);
  });

  it('an update over the cheap size bound but within maxSessionBytes is written (drizzle/0019 falls back to the exact size)', async () => {
    const m = fx.manager({ maxSessionBytes: 64 * 1024 });
    const { session } = await m.createSession(uid(), { a0: 'a'.repeat(13_000), a1: 'a'.repeat(13_000), a2: 'a'.repeat(13_000) });
    // Stored ~39 kB + 3 × the change's ~10 kB is over 64 KiB; the merged attributes (~49 kB) are not.
    session.set('b', 'b'.repeat(10_000));
    const updated = await m.updateSession(session);
    expect(updated.get('b')).toBe('b'.repeat(10_000));
    const { rows } = await fx.t.admin.query(`SELECT attributes -> 'b' ->> 'v' AS b, version FROM ${table(fx)} WHERE id = $1`, [session.id]);
    expect(rows[0]).toEqual({ b: 'b'.repeat(10_000), version: 2 });
  });

  it('concurrent updates of different keys cannot together pass maxSessionBytes', async () => {
    const m = fx.manager({ maxSessionBytes: 64 * 1024 });
    const { token } = await m.createSession(uid(), {});
    const writers = await Promise.all(Array.from({ length: 6 }, () => m.getSession(token, { forceRefresh: true })));
    const results = await Promise.allSettled(
      writers.map((s, i) => {
        s!.set(`w${i}`, 'w'.repeat(16_000));
        return m.updateSession(s!);
      }),
    );
    // Four such attributes fit in 64 KiB, six do not: at least two writers are refused.
    const ok = results.filter((r) => r.status === 'fulfilled').length;
    expect(ok).toBeGreaterThan(0);
    expect(ok).toBeLessThanOrEqual(4);
    for (const r of results) if (r.status === 'rejected') expect(r.reason).toBeInstanceOf(SessionTooLargeError);
    const { rows } = await fx.t.admin.query(`SELECT octet_length(attributes::text) AS n FROM ${table(fx)} WHERE id = $1`, [writers[0]!.id]);
    expect(rows[0].n).toBeLessThanOrEqual(64 * 1024);
  });

  it('refuses a maxSessionBytes below maxAttributeLength, naming the option', () => {
    expect(() => new SessionManager({ execute: async () => ({ rows: [] }) }, { maxSessionBytes: 1000, maxAttributeLength: 2000 })).toThrow(
      /maxSessionBytes/,
    );
  });
});
