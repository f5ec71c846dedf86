// A process's own write is not evicted when the change feed brings it back: the feed carries the version
// each change left its session at (drizzle/0018, FeedResponse.versions in src/protocol.ts), and the cache
// keeps an entry already at that version (src/core/cache.ts). Every other change still invalidates
// (ARCHITECTURE.md, promise 1): another process's newer write, a delete, a change of unknown version (plain
// SQL that does not raise the version, a record from before drizzle/0018), and any id of a feed answer
// without versions (an earlier worker).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SessionCache, type SessionRecord } from '../../src/core/cache.ts';
import type { SessionManager } from '../../src/core/manager.ts';
import type { Session } from '../../src/core/session.ts';
import { readChanges } from '../../src/db/feed.ts';
import { MIGRATIONS } from '../../src/db/migrations.ts';
import { objectNames, renderSql } from '../../src/db/names.ts';
import { Hub } from '../../src/host/hub.ts';
import { migrate } from '../../src/migrate.ts';
import { PATHS } from '../../src/protocol.ts';
import { type FetcherLike, SyncClient } from '../../src/sync/client.ts';
import { type RunningWorker, startWorker } from '../../worker/main.ts';
import { DRIVERS, databaseUrl, dropSchema, uniqueSchema } from '../support/db.ts';
import { uid } from '../support/manager-helpers.ts';
import { useStore } from '../support/store-suite.ts';

const SECRET = 'own-write-secret-0123456789-abcdefghijk';
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function record(id: string, version: number): SessionRecord {
  const at = Date.UTC(2030, 0, 1);
  return {
    size: 1100,
    id,
    userId: 'u',
    groupId: null,
    version,
    createdAt: at,
    updatedAt: at,
    lastAccessed: at,
    expiresAt: at + 86_400_000,
    authenticatedAt: at,
    impersonatedBy: null,
    attributes: new Map(),
  };
}

describe('SessionCache: invalidations that name a version', () => {
  const TOKEN = 'a'.repeat(43);
  const cached = (c: SessionCache) => c.entry(TOKEN, 0, Number.POSITIVE_INFINITY)?.record.version;

  it('keeps an entry at or above the version, drops an older one and every one of unknown version', () => {
    const c = new SessionCache(10);
    c.fill(TOKEN, record('s', 3), 0, c.begin());
    c.invalidate(['s'], [3]);
    expect(cached(c)).toBe(3);
    c.invalidate(['s'], [2]);
    expect(cached(c)).toBe(3);
    c.invalidate(['s'], [4]);
    expect(cached(c)).toBeUndefined();
    for (const unknown of [undefined, [null], ['3'], [3.5], []]) {
      c.fill(TOKEN, record('s', 3), 0, c.begin());
      c.invalidate(['s'], unknown as unknown[] | undefined);
      expect(cached(c)).toBeUndefined();
    }
  });

  it('fences fills by version: one started before a versioned change is kept only at that version or newer', () => {
    const c = new SessionCache(10);
    let start = c.begin();
    c.invalidate(['s'], [5]);
    expect(c.fill(TOKEN, record('s', 4), 0, start)).toBe(false);
    expect(c.fill(TOKEN, record('s', 5), 0, start)).toBe(true);
    start = c.begin();
    c.invalidate(['s'], [null]);
    c.invalidate(['s'], [9]);
    // The unknown change came after the fill started: whatever its version, the row may miss it.
    expect(c.fill(TOKEN, record('s', 9), 0, start)).toBe(false);
    expect(c.fill(TOKEN, record('s', 9), 0, c.begin())).toBe(true);
  });

  it('refresh: a write whose own change the feed brought back first is still cached; one overtaken by a newer change is not', () => {
    const c = new SessionCache(10);
    let start = c.begin();
    c.invalidate(['s'], [2]); // the feed was faster than the write's answer
    c.refresh(record('s', 2), 0, start, TOKEN);
    expect(cached(c)).toBe(2);
    start = c.begin();
    c.invalidate(['s'], [4]); // another process wrote version 4 after ours
    c.refresh(record('s', 3), 0, start, TOKEN);
    expect(cached(c)).toBeUndefined();
  });
});

describe('Hub: versions in answers from memory', () => {
  it('merges an id across reads: the highest version, unknown when any read did not know it; none without versions', () => {
    const hub = new Hub();
    hub.publish(null, '1:1:', [], true, 0);
    hub.publish('1:1:', '2:2:', ['a', 'b', 'c'], false, 0, [2, 7, 1]);
    hub.publish('2:2:', '3:3:', ['a', 'b', 'd'], false, 0, [3, null, 1]);
    hub.publish('3:3:', '4:4:', ['e'], false, 0);
    const all = hub.answer('1:1:');
    const byId = Object.fromEntries((all?.ids ?? []).map((id, i) => [id, all?.versions?.[i]]));
    expect(byId).toEqual({ a: 3, b: null, c: 1, d: 1, e: null });
    expect(hub.answer('3:3:')).toEqual({ cursor: '4:4:', ids: ['e'], reset: false, freshAsOf: 0 });
    // A read whose versions do not line up with its ids is published without them.
    hub.publish('4:4:', '5:5:', ['f', 'g'], false, 0, [1]);
    expect(hub.answer('4:4:')?.versions).toBeUndefined();
  });
});

describe.each(DRIVERS)('own writes and the change feed (%s)', (driver) => {
  const fx = useStore(driver, 'ownwrite');
  let worker: RunningWorker;
  beforeAll(async () => {
    worker = await startWorker({ databaseUrl: databaseUrl(), secret: SECRET, port: 0, schemaName: fx.schemaName, log: 'silent' });
    await worker.ready();
  });
  afterAll(async () => {
    for (const stop of stops) await stop();
    await worker?.close();
  });

  const MAX_STALENESS = 2000;
  const stops: (() => Promise<void>)[] = [];

  /**
   * A manager with its sync client. `watch(id)`, called before a write, returns a wait for the first feed
   * answer naming `id` applied after it; `read(token)` reads as the middleware does (a poll first when due).
   */
  const client = async (mode: 'poll' | 'stream', fetcher?: FetcherLike) => {
    const manager = fx.manager({ maxStaleness: MAX_STALENESS });
    const applied = new Set<string>();
    let answers = 0;
    const sync = new SyncClient(manager, {
      ...(fetcher === undefined ? { workerUrl: worker.url, secret: SECRET } : { fetcher }),
      mode,
      syncInterval: 20,
      touchInterval: 60_000,
      onApply: (c) => {
        answers++;
        for (const id of c.ids) applied.add(id);
      },
    });
    if (mode === 'stream') sync.start();
    stops.push(() => sync.stop());
    // The first answer (a reset: the client has no cursor yet) is in before the test caches anything.
    while (answers === 0) await (mode === 'poll' ? sync.sync() : sleep(10));
    const watch = (id: string) => {
      applied.delete(id);
      return async () => {
        const deadline = Date.now() + MAX_STALENESS;
        while (!applied.has(id)) {
          if (Date.now() > deadline) throw new Error(`the feed did not deliver ${id} within maxStaleness`);
          if (mode === 'poll') await sync.sync();
          await sleep(10);
        }
      };
    };
    const read = async (token: string) => {
      // The middleware hands a poll that is not due inline to waitUntil; here every poll is awaited.
      await sync.beforeRead().promise;
      return manager.getSession(token);
    };
    return { manager, sync, watch, read };
  };

  /** A session created by `m` and read back, so `m` caches it. */
  const cachedSession = async (m: SessionManager) => {
    const { token } = await m.createSession(uid('own'), { n: 1 });
    const s = await m.getSession(token);
    if (s === null) throw new Error('just created');
    return { token, s };
  };

  /** Reads through `read` until `done` holds or maxStaleness (and a poll) passed; returns the last read. */
  const readUntil = async (read: (t: string) => Promise<Session | null>, token: string, done: (s: Session | null) => boolean) => {
    const deadline = Date.now() + MAX_STALENESS + 200;
    let s = await read(token);
    while (!done(s) && Date.now() < deadline) {
      await sleep(10);
      s = await read(token);
    }
    return s;
  };

  for (const mode of ['poll', 'stream'] as const) {
    it(`${mode}: the process's own update, brought back by the feed, stays cached: the next read runs no statement`, async () => {
      const { manager, watch } = await client(mode);
      const { token, s } = await cachedSession(manager);
      for (const n of [2, 3]) {
        // The second round: the fence of the first write does not turn the next one into a miss.
        const delivered = watch(s.id);
        s.set('n', n);
        await manager.updateSession(s);
        await delivered();
        manager.db.reset();
        const again = await manager.getSession(token);
        expect([again?.get('n'), again?.version]).toEqual([n, n]);
        expect(manager.db.count).toBe(0);
      }
    });

    it(`${mode}: another manager's update of the same session is served within maxStaleness`, async () => {
      const { manager, read } = await client(mode);
      const other = fx.manager();
      const { token } = await cachedSession(manager);
      const theirs = (await other.getSession(token)) as Session;
      theirs.set('n', 5);
      await other.updateSession(theirs);
      const changedAt = Date.now();
      const seen = await readUntil(read, token, (s) => s?.get('n') === 5);
      expect(seen?.get('n')).toBe(5);
      expect(Date.now() - changedAt).toBeLessThan(MAX_STALENESS + 200);
    });

    it(`${mode}: a delete elsewhere and a logout always invalidate, also an entry at the session's newest version`, async () => {
      const { manager, watch } = await client(mode);
      const other = fx.manager();
      const a = await cachedSession(manager);
      const own = watch(a.s.id);
      a.s.set('n', 2);
      await manager.updateSession(a.s); // cached at version 2, the newest there is
      await own();
      const delivered = watch(a.s.id);
      expect(await other.deleteSession(a.token)).toBe(true);
      await delivered();
      manager.db.reset();
      expect(await manager.getSession(a.token)).toBeNull();
      expect(manager.db.count).toBe(1);
      const b = await cachedSession(manager);
      expect(await manager.deleteSession(b.token)).toBe(true);
      expect(await manager.getSession(b.token)).toBeNull();
    });

    it(`${mode}: own write, then another manager's newer one, both delivered: the newer version is served`, async () => {
      const { manager, watch, read } = await client(mode);
      const other = fx.manager();
      const { token, s } = await cachedSession(manager);
      s.set('mine', 1);
      await manager.updateSession(s); // version 2, cached
      const theirs = (await other.getSession(token)) as Session;
      theirs.set('theirs', 1);
      await other.updateSession(theirs); // version 3
      const newest = await readUntil(read, token, (x) => x?.version === 3);
      expect([newest?.version, newest?.get('mine'), newest?.get('theirs')]).toEqual([3, 1, 1]);
      // The other order: their write first, then ours on top of it; ours is the newest and stays cached.
      const theirs2 = (await other.getSession(token)) as Session;
      theirs2.set('theirs', 2);
      await other.updateSession(theirs2); // version 4
      const delivered = watch(s.id);
      const mine = newest as Session;
      mine.set('mine', 2);
      await manager.updateSession(mine); // version 5, on top of 4
      await delivered();
      manager.db.reset();
      const last = await read(token);
      expect([last?.version, last?.get('mine'), last?.get('theirs')]).toEqual([5, 2, 2]);
      expect(manager.db.count).toBe(0);
    });
  }

  it('poll: an answer without versions (an earlier worker) invalidates every id, the own write included', async () => {
    const earlierWorker: FetcherLike = {
      async fetch(request) {
        const url = new URL(request.url);
        const res = await fetch(`${worker.url}${url.pathname}${url.search}`, {
          method: request.method,
          headers: { ...Object.fromEntries(request.headers), authorization: `Bearer ${SECRET}` },
          body: request.method === 'GET' ? undefined : await request.text(),
        });
        if (url.pathname !== PATHS.changes || !res.ok) return res;
        const { versions: _dropped, ...answer } = (await res.json()) as Record<string, unknown>;
        return Response.json(answer);
      },
    };
    const { manager, watch } = await client('poll', earlierWorker);
    const { token, s } = await cachedSession(manager);
    const delivered = watch(s.id);
    s.set('n', 2);
    await manager.updateSession(s);
    await delivered();
    manager.db.reset();
    expect((await manager.getSession(token))?.get('n')).toBe(2);
    expect(manager.db.count).toBe(1);
  });

  it('plain SQL that changes a session without raising its version (or moves it back) invalidates it', async () => {
    const { manager, watch } = await client('poll');
    const { token, s } = await cachedSession(manager);
    const table = `"${fx.schemaName}"."sessions"`;
    for (const [n, set] of [
      [7, ''],
      [8, ', version = 0'],
    ] as const) {
      const delivered = watch(s.id);
      await fx.t.admin.query(`UPDATE ${table} SET attributes = '{"n": {"v": ${n}, "ver": ${n}}}'${set} WHERE id = $1`, [s.id]);
      await delivered();
      manager.db.reset();
      expect((await manager.getSession(token))?.get('n')).toBe(n);
      expect(manager.db.count).toBe(1);
    }
  });

  it('the change record: an update carries the version it wrote; deletes and unversioned changes carry none', async () => {
    const m = fx.manager();
    const names = objectNames(fx.schemaName, '');
    const a = await cachedSession(m);
    const b = await cachedSession(m);
    const from = (await readChanges(fx.t.db, names, null)).cursor;
    a.s.set('n', 2);
    await m.updateSession(a.s);
    a.s.set('n', 3);
    await m.updateSession(a.s);
    b.s.set('n', 2);
    await m.updateSession(b.s);
    const page = await readChanges(fx.t.db, names, from);
    const byId = (p: typeof page) => Object.fromEntries(p.ids.map((id, i) => [id, p.versions?.[i] ?? null]));
    expect(byId(page)).toEqual({ [a.s.id]: 3, [b.s.id]: 2 });
    await fx.t.admin.query(`UPDATE "${fx.schemaName}"."sessions" SET expires_at = expires_at + interval '1 day' WHERE id = $1`, [b.s.id]);
    expect(byId(await readChanges(fx.t.db, names, from))).toEqual({ [a.s.id]: 3, [b.s.id]: null });
    const more = page.cursor;
    await m.deleteSession(a.token);
    expect(byId(await readChanges(fx.t.db, names, more))).toEqual({ [a.s.id]: null, [b.s.id]: null });
  });

  it('carries a store at 0017 forward: its pending change records have no version (they invalidate), new ones do', async () => {
    const schemaName = uniqueSchema('mig_versions');
    const names = objectNames(schemaName, '');
    try {
      await fx.t.admin.query(`CREATE SCHEMA "${schemaName}"`);
      await fx.t.admin.query(`CREATE TABLE ${names.migrations} (tag text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())`);
      for (const mig of MIGRATIONS.filter((x) => x.tag < '0018')) {
        for (const statement of mig.statements) await fx.t.admin.query(renderSql(statement, schemaName, ''));
        await fx.t.admin.query(`INSERT INTO ${names.migrations} (tag) VALUES ($1)`, [mig.tag]);
      }
      const { rows } = await fx.t.admin.query<{ id: string }>(
        `INSERT INTO ${names.sessions} (id, token_hash, user_id, attributes, created_at, updated_at, last_accessed, expires_at)
         VALUES (gen_random_uuid(), decode(md5('x') || md5('y'), 'hex'), 'carried', '{}', now(), now(), now(), now() + interval '1 day')
         RETURNING id::text AS id`,
      );
      const id = rows[0]?.id as string;
      const old = (await readChanges(fx.t.db, names, null)).cursor;
      // Written by the capture of an earlier release: no version recorded.
      await fx.t.admin.query(`UPDATE ${names.sessions} SET attributes = '{"x": {"v": 1, "ver": 1}}', version = version + 1 WHERE id = $1`, [
        id,
      ]);
      // This release before the migration ran (a rollout in that order): the record is read without versions.
      expect(await readChanges(fx.t.db, names, old)).toEqual({ cursor: expect.any(String), ids: [id], reset: false });
      expect((await migrate(fx.t.db, { schemaName })).applied).toEqual(MIGRATIONS.map((m) => m.tag).filter((tag) => tag >= '0018'));
      expect(await readChanges(fx.t.db, names, old)).toEqual({ cursor: expect.any(String), ids: [id], reset: false });
      const middle = (await readChanges(fx.t.db, names, null)).cursor;
      await fx.t.admin.query(`UPDATE ${names.sessions} SET attributes = '{"x": {"v": 2, "ver": 2}}', version = version + 1 WHERE id = $1`, [
        id,
      ]);
      expect(await readChanges(fx.t.db, names, middle)).toMatchObject({ ids: [id], versions: [3], reset: false });
      // Both records for the old cursor: one of unknown version makes the id's version unknown.
      const fromOld = await readChanges(fx.t.db, names, old);
      expect([fromOld.ids, fromOld.versions]).toEqual([[id], undefined]);
    } finally {
      await dropSchema(fx.t.admin, schemaName);
    }
  });
});
