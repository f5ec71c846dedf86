// The sync host as a Durable Object (pg-edge-session/durable-object) inside workerd (Miniflare): two app
// isolates, each with its own cache and a SyncClient on the object's binding; the object runs the
// library's host core on Neon's WebSocket driver through the local proxy to the real PostgreSQL.
import { drizzle } from 'drizzle-orm/node-postgres';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { type Cluster, metricValue, startCluster } from '../../harness/durable-object.ts';
import { startTcpProxy, type TcpProxy } from '../../harness/tcp-proxy.ts';
import { SessionManager } from '../../src/core/manager.ts';
import { SessionSyncObject, sessionSyncOptionsFromEnv } from '../../src/durable-object.ts';
import { migrate } from '../../src/migrate.ts';
import { databaseUrl, dropSchema, uniqueSchema } from '../support/db.ts';

const MAX_STALENESS = 1000;
const SYNC_INTERVAL = 100;
/** As in workerd.test.ts: the bound of ARCHITECTURE.md promise 1 for a polling isolate, plus 150 ms for clocks (not speed). */
const BOUND = MAX_STALENESS + SYNC_INTERVAL + 150;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
async function sleepUntil(t: number): Promise<void> {
  while (Date.now() < t) await sleep(t - Date.now());
}
async function until(what: string, fn: () => Promise<boolean>, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await fn())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(50);
  }
}

type Fetch = (path: string, init?: RequestInit) => Promise<Response>;

async function signIn(app: Fetch, user: string): Promise<{ cookie: string; id: string }> {
  const r = await app(`/login?user=${user}`, { method: 'POST' });
  const cookie = /^session=[^;]+/.exec(r.headers.get('set-cookie') ?? '')?.[0];
  const { id } = (await r.json()) as { id: string };
  if (!cookie) throw new Error('no cookie');
  return { cookie, id };
}
const me = async (app: Fetch, cookie: string) => (await (await app('/me', { headers: { cookie } })).json()) as { id: string } | null;
const lastAccessed = async (id: string) =>
  Number(
    (await admin.query(`SELECT (extract(epoch from last_accessed) * 1000)::float8 AS l FROM "${schemaName}".sessions WHERE id = $1`, [id]))
      .rows[0].l,
  );

let admin: pg.Pool;
let nodeManager: SessionManager;
let schemaName: string;
const wsProxy = () => `127.0.0.1:${inject('wsProxyPort')}/v2`;

beforeAll(async () => {
  admin = new pg.Pool({ connectionString: databaseUrl(), max: 4 });
  schemaName = uniqueSchema('dobj');
  await migrate(drizzle(admin), { schemaName });
  nodeManager = new SessionManager(drizzle(admin), { schemaName, cacheSize: 0 });
});
afterAll(async () => {
  if (admin) {
    await dropSchema(admin, schemaName);
    await admin.end();
  }
});

describe('Durable Object host: configuration', () => {
  const state = {
    storage: { get: async () => undefined, put: async () => {}, getAlarm: async () => null, setAlarm: async () => {} },
  };

  it('reads the environment; a missing or malformed variable is a ConfigError naming it', () => {
    expect(() => sessionSyncOptionsFromEnv({})).toThrow(
      expect.objectContaining({ code: 'CONFIG_INVALID', option: 'SESSION_SYNC_DATABASE_URL' }),
    );
    expect(() => sessionSyncOptionsFromEnv({ DATABASE_URL: 'postgres://h/db', SESSION_SYNC_FLUSH_INTERVAL_MS: 'soon' })).toThrow(
      expect.objectContaining({ option: 'SESSION_SYNC_FLUSH_INTERVAL_MS' }),
    );
    expect(
      sessionSyncOptionsFromEnv({
        DATABASE_URL: 'postgres://pooled/db',
        SESSION_SYNC_DATABASE_URL: 'postgres://direct/db',
        SESSION_SYNC_IDLE_TIMEOUT_MS: '0',
        SESSION_SYNC_AUDIT: '1',
        SESSION_SYNC_TOUCH_MAX_HOLD_MS: '5000',
      }),
    ).toMatchObject({ databaseUrl: 'postgres://direct/db', idleTimeout: 0, audit: true, touchMaxHold: 5000 });
  });

  it("answers a typed 500 (and starts nothing) when given Neon's pooled endpoint, which cannot LISTEN", async () => {
    const object = new SessionSyncObject(state, { DATABASE_URL: 'postgres://u:secret-pw@ep-x-pooler.eu.aws.neon.tech/db' });
    const r = await object.fetch(new Request('https://pg-edge-session.sync/v1/changes'));
    expect(r.status).toBe(500);
    const body = (await r.json()) as { error: { code: string; message: string } };
    expect(body.error.code).toBe('CONFIG_INVALID');
    expect(body.error.message).toContain('direct endpoint');
    expect(JSON.stringify(body)).not.toContain('secret-pw');
  });
});

describe('Durable Object host: freshness across isolates', () => {
  let c: Cluster;
  beforeAll(async () => {
    c = await startCluster({
      appDatabaseUrl: databaseUrl(),
      objectDatabaseUrl: databaseUrl(),
      wsProxy: wsProxy(),
      schemaName,
      maxStaleness: MAX_STALENESS,
      syncInterval: SYNC_INTERVAL,
    });
  });
  afterAll(() => c?.dispose());

  it('a revoke made in one isolate is rejected by another isolate within maxStaleness + syncInterval', async () => {
    const a = await signIn(c.app(1), 'do-frank');
    const b = await signIn(c.app(1), 'do-frank');
    expect(await me(c.app(2), b.cookie)).toMatchObject({ id: b.id });
    expect(await me(c.app(2), b.cookie)).toMatchObject({ id: b.id }); // cached in isolate 2
    expect(await (await c.app(1)(`/revoke?id=${b.id}`, { method: 'POST', headers: { cookie: a.cookie } })).json()).toEqual({
      deleted: true,
    });
    const revokedAt = Date.now();
    let firstRejectedAfter: number | undefined;
    while (Date.now() - revokedAt < BOUND) {
      const s = await me(c.app(2), b.cookie);
      if (s === null) firstRejectedAfter ??= Date.now() - revokedAt;
      else expect(firstRejectedAfter).toBeUndefined(); // once rejected, never served again
      await sleep(25);
    }
    expect(firstRejectedAfter).toBeDefined();
    expect(await me(c.app(2), b.cookie)).toBeNull();
    expect(await me(c.app(2), a.cookie)).toMatchObject({ id: a.id });
    // Delivered through the object's feed (not only aged out of the cache).
    const state = (await (await c.app(2)('/__test/state')).json()) as { applied: string[] };
    expect(state.applied).toContain(b.id);
    console.log(`[durable-object] revoke seen by the other isolate after ~${firstRejectedAfter} ms (bound ${BOUND} ms)`);
  });

  it('a DELETE typed into psql is rejected by both isolates within the bound', async () => {
    const s = await signIn(c.app(1), 'do-grace');
    expect(await me(c.app(1), s.cookie)).toMatchObject({ id: s.id });
    expect(await me(c.app(2), s.cookie)).toMatchObject({ id: s.id });
    await admin.query(`DELETE FROM "${schemaName}".sessions WHERE id = $1`, [s.id]);
    const deletedAt = Date.now();
    await sleepUntil(deletedAt + BOUND);
    expect(await me(c.app(1), s.cookie)).toBeNull();
    expect(await me(c.app(2), s.cookie)).toBeNull();
  });
});

describe('Durable Object host: aborted mid-burst', () => {
  let c: Cluster;
  beforeAll(async () => {
    c = await startCluster({
      appDatabaseUrl: databaseUrl(),
      objectDatabaseUrl: databaseUrl(),
      wsProxy: wsProxy(),
      schemaName,
      objectVars: { SESSION_SYNC_FLUSH_INTERVAL_MS: '500' },
    });
  });
  afterAll(() => c?.dispose());

  it('a client with an old cursor still ends with every changed id of a 1,000-change burst evicted', async () => {
    const N = 1000;
    const created: { id: string; token: string }[] = [];
    for (let i = 0; i < N; i++) {
      const { session, token } = await nodeManager.createSession(`burst-${i}`, { i });
      created.push({ id: session.id, token });
    }
    const warmed = created.slice(0, 60);
    // Isolate 1's first poll (no cursor yet: a reset), then it caches a sample and takes its cursor from the
    // object: the "old cursor".
    await c.app(1)('/__test/sync', { method: 'POST' });
    expect(
      (
        (await (await c.app(1)('/__test/warm', { method: 'POST', body: JSON.stringify(warmed.map((s) => s.token)) })).json()) as {
          cached: number;
        }
      ).cached,
    ).toBe(warmed.length);
    const before = (await (await c.app(1)('/__test/sync', { method: 'POST' })).json()) as { cursor: string };
    expect(before.cursor).toMatch(/^\d+:\d+:/);
    const cachedBefore = (await (await c.app(1)('/__test/cached')).json()) as string[];
    expect(cachedBefore).toEqual(expect.arrayContaining(warmed.map((s) => s.id)));
    const firstInstance = (await c.info()).instance;
    // Let the object store a cursor (alarm every 500 ms) while isolate 2 keeps it busy.
    await c.app(2)('/__test/sync', { method: 'POST' });
    await sleep(700);

    // The burst: 1,000 deletes, each its own transaction, 4 at a time; the object is aborted halfway.
    let aborted: Response | Error | undefined;
    const ids = created.map((s) => s.id);
    for (let i = 0; i < N; i += 4) {
      await Promise.all(ids.slice(i, i + 4).map((id) => admin.query(`DELETE FROM "${schemaName}".sessions WHERE id = $1`, [id])));
      if (i === N / 2) {
        // Another isolate polls through the object mid-burst (its listener is reading the record), then the abort.
        await c.app(2)('/__test/sync', { method: 'POST' });
        aborted = await c.object('/__test/abort').catch((e: Error) => e);
      }
    }
    // abort() ends the object with an error to the caller; a 501 would mean the runtime lacks it.
    expect(aborted instanceof Response ? aborted.status : 'threw').not.toBe(501);

    // The old cursor, asked after the burst: a new instance of the object answers it.
    await c.app(1)('/__test/sync', { method: 'POST' });
    const after = await c.info();
    expect(after.instance).not.toBe(firstInstance);
    const state = (await (await c.app(1)('/__test/state')).json()) as { applied: string[]; resets: number };
    expect(state.resets).toBe(1); // the first poll's, before the burst
    const applied = new Set(state.applied);
    expect(ids.filter((id) => !applied.has(id))).toEqual([]);
    const cachedAfter = new Set((await (await c.app(1)('/__test/cached')).json()) as string[]);
    expect(warmed.filter((s) => cachedAfter.has(s.id))).toEqual([]);
  });
});

describe('Durable Object host: alarms', () => {
  let c: Cluster;
  beforeAll(async () => {
    c = await startCluster({
      appDatabaseUrl: databaseUrl(),
      objectDatabaseUrl: databaseUrl(),
      wsProxy: wsProxy(),
      schemaName,
      // On a loaded machine a touch push can outlast the default 2 s timeout and be sent again with the
      // next one (a 21st touch, pending after the flush); these tests count the object's own work.
      requestTimeout: 15_000,
      objectVars: { SESSION_SYNC_FLUSH_INTERVAL_MS: '3000', SESSION_SYNC_CLEANUP_INTERVAL_MS: '2000', SESSION_SYNC_AUDIT: '1' },
    });
  });
  afterAll(() => c?.dispose());

  const metrics = async () => (await c.object('/metrics')).text();

  it('flush touches on the alarm: 20 requests → one row written, nothing before the alarm', async () => {
    const s = await signIn(c.app(1), 'do-touch');
    const created = await lastAccessed(s.id);
    const m0 = await metrics();
    for (let i = 0; i < 20; i++) expect(await me(c.app(i % 2 === 0 ? 1 : 2), s.cookie)).toMatchObject({ id: s.id });
    // Touches went to the object after each response; reads never write.
    await until(
      '20 touches received',
      async () => metricValue(await metrics(), 'pges_touches_received_total') - metricValue(m0, 'pges_touches_received_total') >= 20,
    );
    const m1 = await metrics();
    expect(metricValue(m1, 'pges_touches_received_total') - metricValue(m0, 'pges_touches_received_total')).toBe(20);
    expect(metricValue(m1, 'pges_touches_pending')).toBe(1);
    const alarmsBefore = (await c.info()).alarms;
    if (metricValue(m1, 'pges_flush_rows_total') === metricValue(m0, 'pges_flush_rows_total')) {
      expect(await lastAccessed(s.id)).toBe(created);
    }
    // The row moves when the flush commits; the object counts it when the statement's answer is back, which
    // on a loaded machine can come after a /metrics request: wait for both.
    const flushed = async () => metricValue(await metrics(), 'pges_flush_batches_total') > metricValue(m0, 'pges_flush_batches_total');
    await until('the alarm flushed', async () => (await lastAccessed(s.id)) > created && (await flushed()), 10_000);
    const m2 = await metrics();
    expect(metricValue(m2, 'pges_flush_rows_total') - metricValue(m0, 'pges_flush_rows_total')).toBe(1);
    expect(metricValue(m2, 'pges_flush_batches_total') - metricValue(m0, 'pges_flush_batches_total')).toBe(1);
    expect(metricValue(m2, 'pges_touches_pending')).toBe(0);
    expect((await c.info()).alarms).toBeGreaterThan(alarmsBefore);
  });

  it('run cleanup on the alarm: an expired session is deleted without any request naming it', async () => {
    const { session } = await nodeManager.createSession('do-expired', {});
    await admin.query(`UPDATE "${schemaName}".sessions SET expires_at = now() - interval '1 minute' WHERE id = $1`, [session.id]);
    const exists = async () => (await admin.query(`SELECT 1 FROM "${schemaName}".sessions WHERE id = $1`, [session.id])).rowCount === 1;
    expect(await exists()).toBe(true);
    await c.app(1)('/__test/sync', { method: 'POST' }); // traffic keeps the object awake
    await until('cleanup deleted it', async () => {
      await c.app(1)('/__test/sync', { method: 'POST' });
      return !(await exists());
    });
    // Deleted by cleanup (the only deleter that records `expired`; the object runs with audit on).
    const audit = await admin.query(`SELECT reason FROM "${schemaName}".session_audit WHERE session_id = $1`, [session.id]);
    expect(audit.rows).toEqual([{ reason: 'expired' }]);
  });
});

describe('Durable Object host: idle', () => {
  let c: Cluster;
  let tcp: TcpProxy;
  beforeAll(async () => {
    // The object's connections go through a TCP proxy that counts their bytes (the app's do not).
    tcp = await startTcpProxy(databaseUrl());
    c = await startCluster({
      appDatabaseUrl: databaseUrl(),
      objectDatabaseUrl: tcp.url,
      wsProxy: wsProxy(),
      schemaName,
      objectVars: { SESSION_SYNC_FLUSH_INTERVAL_MS: '500', SESSION_SYNC_IDLE_TIMEOUT_MS: '1000' },
    });
  });
  afterAll(async () => {
    await c?.dispose();
    await tcp?.close();
  });

  it('with no isolate asking, sends nothing and sets no alarm; the next request gets a change made meanwhile', async () => {
    const s = await signIn(c.app(1), 'do-idle');
    expect(await me(c.app(1), s.cookie)).toMatchObject({ id: s.id });
    await c.app(1)('/__test/sync', { method: 'POST' });
    expect(tcp.open).toBeGreaterThan(0); // the listener's connection
    // Idle: the listener closes its connection; one more alarm sees it and sets none.
    await until('the object dropped its connections', async () => tcp.open === 0, 15_000);
    await sleep(1000);
    const bytes = tcp.bytesUp + tcp.bytesDown;
    const opened = tcp.opened;
    const alarms = (await c.info()).alarms;
    await admin.query(`DELETE FROM "${schemaName}".sessions WHERE id = $1`, [s.id]); // made meanwhile
    await sleep(3000);
    expect(tcp.bytesUp + tcp.bytesDown).toBe(bytes);
    expect(tcp.opened).toBe(opened);
    expect((await c.info()).alarms).toBe(alarms);
    console.log(`[durable-object] idle for 3 s: 0 bytes, no connection, ${alarms} alarms before and after`);

    // The next request wakes it: the change made meanwhile is delivered to the isolate.
    await c.app(1)('/__test/sync', { method: 'POST' });
    const state = (await (await c.app(1)('/__test/state')).json()) as { applied: string[] };
    expect(state.applied).toContain(s.id);
    expect(await me(c.app(1), s.cookie)).toBeNull();
    await until('the listener reconnected', async () => tcp.open > 0);
  });
});

describe('Durable Object host: touches', () => {
  const IDLE = 2000;
  const HOLD = 1000;
  let c: Cluster;
  beforeAll(async () => {
    c = await startCluster({
      appDatabaseUrl: databaseUrl(),
      objectDatabaseUrl: databaseUrl(),
      wsProxy: wsProxy(),
      schemaName,
      objectVars: {
        SESSION_SYNC_FLUSH_INTERVAL_MS: '300',
        SESSION_SYNC_CLEANUP_INTERVAL_MS: '3600000', // no cleanup deletes the idle sessions meanwhile
        SESSION_SYNC_INACTIVITY_MS: String(IDLE),
        SESSION_SYNC_TOUCH_MAX_HOLD_MS: String(HOLD),
      },
    });
    // Wake the object and let its start-up cleanup pass before the sessions exist (none runs after it).
    await c.object('/metrics');
    await sleep(1000);
  });
  afterAll(() => c?.dispose());

  it('code holding the binding cannot revive an idle-expired session with a back-dated touch', async () => {
    const victims = await Promise.all([1, 2, 3].map((i) => nodeManager.createSession(`do-idle-victim-${i}`, {})));
    const [v1, v2, v3] = victims.map((v) => v.session.id) as [string, string, string];
    const created = Math.max(...(await Promise.all([v1, v2, v3].map(lastAccessed))));
    // Idle-expired (by the object's inactivityDuration) for longer than its touchMaxHold.
    await sleep(created + IDLE + HOLD + 500 - Date.now());
    const batches = async () => metricValue(await (await c.object('/metrics')).text(), 'pges_flush_batches_total');
    const before = await batches();
    const posts = [[[v1, Date.now(), Date.now() - 10_000]], [[v2, Date.now(), 1]], [[v3, Date.now() - 10_000]], [[v3, Date.now()]]];
    for (const touches of posts) {
      const r = await c.object('/v1/touches', { method: 'POST', body: JSON.stringify({ touches }) });
      expect(r.status).toBe(200);
    }
    await until('the alarm flushed them', async () => (await batches()) > before);
    await sleep(700); // a post that missed that flush is in the next one
    const revived = Object.fromEntries(await Promise.all([v1, v2, v3].map(async (id) => [id, (await lastAccessed(id)) >= created + IDLE])));
    expect(revived).toEqual({ [v1]: false, [v2]: false, [v3]: false });
  });
});
