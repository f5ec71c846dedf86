// Cloudflare Hyperdrive caches read queries (60 s by default). Its documented rule (developers.cloudflare.com,
// Hyperdrive, "Query caching"): mutating queries are not cached, nor are queries that use functions
// PostgreSQL designates VOLATILE or STABLE; only queries whose functions are all IMMUTABLE are. A cached
// session read would serve a revoked session; a cached statement that writes would skip its write.
//
// This test records EVERY statement the library sends through node-postgres in this process (a wrapper
// around pg.Client.prototype.query) while it exercises migrate(), the whole manager API (audit on and off,
// with inactivity, eviction, cleanup, the touch flush), the feed reads an isolate makes, and a sync worker
// (listener, feed, touches, cleanup), then checks each distinct text against that rule with PostgreSQL's own
// parser and catalog: the statement is replayed once (in a transaction rolled back, on a connection of its
// own) with debug_print_parse on, and its top-level parse tree gives its command type and the functions it
// calls (pg_proc.provolatile). A new statement is caught because the set checked is the set recorded.
import { randomUUID } from 'node:crypto';
import { drizzle } from 'drizzle-orm/node-postgres';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SessionManager } from '../../src/core/manager.ts';
import { readChanges } from '../../src/db/feed.ts';
import { objectNames } from '../../src/db/names.ts';
import { Store } from '../../src/db/store.ts';
import { migrate } from '../../src/migrate.ts';
import { SyncClient } from '../../src/sync/client.ts';
import { startWorker } from '../../worker/main.ts';
import { databaseUrl, dropSchema, uniqueSchema } from '../support/db.ts';

interface Recorded {
  text: string;
  values: unknown[] | undefined;
  /** What was running when it was sent. */
  phases: Set<string>;
}

const recorded = new Map<string, Recorded>();
let phase = 'setup';
/** Connections of the test itself (checks, replays): not recorded. */
const own = new WeakSet<pg.Client>();
/** Connections of the pool the managers and feed reads run on (what an isolate sends through Hyperdrive). */
const isolateConnections = new WeakSet<pg.Client>();
const originalQuery = pg.Client.prototype.query;

/**
 * The SQL layer's methods run during the exercise. Every manager statement is sent by one of them, so a
 * method added to Store and not exercised here fails the test (see the first test) instead of going
 * unchecked.
 */
const storeMethodsRun = new Set<string>();
const STORE_METHODS = Object.getOwnPropertyNames(Store.prototype).filter(
  (n) => n !== 'constructor' && typeof Object.getOwnPropertyDescriptor(Store.prototype, n)?.value === 'function',
);
const storeOriginals = new Map<string, unknown>();

function startRecording(): void {
  const proto = Store.prototype as unknown as Record<string, (...args: unknown[]) => unknown>;
  for (const name of STORE_METHODS) {
    const original = proto[name] as (...args: unknown[]) => unknown;
    storeOriginals.set(name, original);
    proto[name] = function (this: unknown, ...args: unknown[]) {
      storeMethodsRun.add(name);
      return original.apply(this, args);
    };
  }
  // biome-ignore lint/suspicious/noExplicitAny: node-postgres' overloads
  pg.Client.prototype.query = function (this: pg.Client, config: any, values?: any, ...rest: any[]) {
    if (!own.has(this)) {
      const text = typeof config === 'string' ? config : typeof config?.text === 'string' ? config.text : undefined;
      if (text !== undefined) {
        const vals = Array.isArray(values) ? values : Array.isArray(config?.values) ? config.values : undefined;
        const r = recorded.get(text) ?? { text, values: vals, phases: new Set<string>() };
        r.phases.add(phase === 'migrate' || isolateConnections.has(this) ? phase : 'sync worker');
        recorded.set(text, r);
      }
    }
    // biome-ignore lint/suspicious/noExplicitAny: node-postgres' overloads
    return (originalQuery as any).call(this, config, values, ...rest);
  } as typeof pg.Client.prototype.query;
}

function stopRecording(): void {
  pg.Client.prototype.query = originalQuery;
  for (const [name, original] of storeOriginals) (Store.prototype as unknown as Record<string, unknown>)[name] = original;
  storeOriginals.clear();
}

async function ownClient(): Promise<pg.Client> {
  const c = new pg.Client({ connectionString: databaseUrl() });
  own.add(c);
  await c.connect();
  return c;
}

/** PostgreSQL's CmdType (nodes.h). */
const COMMAND = { 1: 'SELECT', 2: 'UPDATE', 3: 'INSERT', 4: 'DELETE', 5: 'MERGE', 6: 'UTILITY' } as Record<number, string>;
/** CoercionForm (primnodes.h): a function written as a call, or as SQL syntax (CURRENT_TIMESTAMP, EXTRACT). */
const WRITTEN_AS_CALL = new Set([0, 3]);
const TRANSACTION_CONTROL = /^\s*(BEGIN|COMMIT|ROLLBACK|SAVEPOINT|RELEASE|START TRANSACTION)\b/i;

interface Verdict {
  text: string;
  phases: string[];
  command: string;
  modifyingCte: boolean;
  /** Functions the statement calls by name: name, schema, provolatile. */
  calls: { name: string; schema: string; volatility: 'i' | 's' | 'v' }[];
  cacheable: boolean;
  why: string;
}

/** pg_proc's name, schema and provolatile of functions by oid. */
function volatilityIn(pool: pg.Pool): (oids: number[]) => Promise<Verdict['calls']> {
  return async (oids) =>
    oids.length === 0
      ? []
      : (
          await pool.query<Verdict['calls'][number]>(
            'SELECT p.proname AS name, n.nspname AS schema, p.provolatile AS volatility FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace WHERE p.oid = ANY($1::oid[]) ORDER BY 2, 1',
            [oids],
          )
        ).rows;
}

/** The top-level parse tree of one statement, from PostgreSQL's own parser (debug_print_parse). */
async function parseTree(r: Recorded): Promise<string> {
  const c = await ownClient();
  const notices: string[] = [];
  c.on('notice', (n) => notices.push(`${n.message}\n${(n as { detail?: string }).detail ?? ''}`));
  try {
    await c.query('SET debug_print_parse = on');
    await c.query('SET client_min_messages = log');
    await c.query('BEGIN');
    notices.length = 0;
    // The tree is printed when the statement is parsed, before it runs; an error running it (a replayed
    // value that no longer fits) does not matter, and the rollback undoes what it did.
    // biome-ignore lint/suspicious/noExplicitAny: node-postgres' overloads
    await ((originalQuery as any).call(c, { text: r.text, values: r.values ?? [] }) as Promise<unknown>).catch(() => {});
    await c.query('ROLLBACK').catch(() => {});
    const tree = notices.find((n) => n.startsWith('parse tree'));
    if (tree === undefined) throw new Error(`no parse tree for: ${r.text}`);
    return tree;
  } finally {
    await c.end();
  }
}

async function judge(r: Recorded, volatility: (oids: number[]) => Promise<Verdict['calls']>): Promise<Verdict> {
  const phases = [...r.phases].sort();
  if (TRANSACTION_CONTROL.test(r.text)) {
    return { text: r.text, phases, command: 'UTILITY', modifyingCte: false, calls: [], cacheable: false, why: 'transaction control' };
  }
  const tree = await parseTree(r);
  const command = COMMAND[Number(/:commandType (\d)/.exec(tree)?.[1])] ?? '?';
  const modifyingCte = /:hasModifyingCTE true/.exec(tree)?.index === /:hasModifyingCTE (true|false)/.exec(tree)?.index;
  const oids = [...tree.matchAll(/\{FUNCEXPR\s+:funcid (\d+)\s[^{]*?:funcformat (\d)/g)]
    .filter((m) => WRITTEN_AS_CALL.has(Number(m[2])))
    .map((m) => Number(m[1]));
  const calls = await volatility([...new Set(oids)]);
  // PostgreSQL 15 parses CURRENT_TIMESTAMP, CURRENT_DATE, LOCALTIME, CURRENT_USER, ... into SQLValueFunction
  // nodes (16 into function calls): all stable.
  if (/\{SQLVALUEFUNCTION/.test(tree)) calls.push({ name: 'SQL value function', schema: 'pg_catalog', volatility: 's' });
  const nonImmutable = calls.filter((f) => f.volatility !== 'i');
  let cacheable = true;
  let why = 'a read calling only immutable functions';
  if (command !== 'SELECT') {
    cacheable = false;
    why = command === 'UTILITY' ? 'not a query (utility statement)' : `a write (${command})`;
  } else if (nonImmutable.length > 0) {
    cacheable = false;
    why = `calls ${nonImmutable.map((f) => `${f.schema}.${f.name} (${f.volatility === 'v' ? 'volatile' : 'stable'})`).join(', ')}`;
  } else if (modifyingCte) {
    why = 'a SELECT over a data-modifying WITH, calling only immutable functions (the rule does not say it is a write)';
  }
  return { text: r.text, phases, command, modifyingCte, calls, cacheable, why };
}

describe('Hyperdrive cacheability of every statement the library sends', () => {
  let schemaName: string;
  let admin: pg.Pool;
  const verdicts: Verdict[] = [];

  beforeAll(async () => {
    schemaName = uniqueSchema('cacheability');
    startRecording();
    const pool = new pg.Pool({ connectionString: databaseUrl(), max: 4 });
    pool.on('connect', (c) => isolateConnections.add(c));
    const db = drizzle(pool);
    try {
      phase = 'migrate';
      await migrate(db, { schemaName });

      // The manager over node-postgres: hot statements named and prepared (the Hyperdrive entry's path).
      phase = 'manager (audit, inactivity)';
      const m = new SessionManager<{ theme: string; n: number }>(db, {
        schemaName,
        audit: true,
        inactivityDuration: 3_600_000,
        maxSessions: 2,
        lastAccessUpdateInterval: 1,
        auditRetention: 1,
      });
      const device = { userAgent: 'Mozilla/5.0 (X11; Linux x86_64) Firefox/140.0', ip: '203.0.113.9' };
      const a = await m.createSession('alice', { theme: 'light', n: 1 }, { device, groupId: 'g1' });
      const b = await m.createSession('alice', { theme: 'dark' }, { groupId: 'g1' });
      // A third: maxSessions evicts the oldest.
      const c = await m.createSession('alice', { n: 3 });
      await m.clearAllCaches();
      const sb = await m.getSession(b.token);
      const sc = await m.getSession(c.token);
      if (sb === null || sc === null) throw new Error('sessions not found');
      sb.set('theme', 'light');
      await m.updateSession(sb);
      await m.getSession(c.token); // a hit, touched
      await m.reauthenticate(sb);
      await m.flushTouches();
      await m.rotate(sc);
      await m.listUserSessions('alice');
      await m.listSessionEnds('alice');
      await m.sessionEnd(a.session.id);
      await m.deleteAttributeFromAllUserSessions('alice', 'theme');
      const d = await m.createSession('bob', {}, { groupId: 'g2' });
      await m.deleteSession(d.token);
      const e = await m.createSession('bob', {});
      // A sign-in over an old session (the middleware's login over an old cookie), with and without the device check.
      const e2 = await m.createSession('bob', {}, { replaces: e.token, device, checkNewDevice: true });
      await m.createSession('bob', {}, { replaces: e2.token });
      await m.deleteSessionById(e.session.id);
      await m.createSession('bob', {});
      await m.deleteAllUserSessions('bob');
      await m.createSession('carol', {}, { groupId: 'g3' });
      await m.deleteSessionsByGroup('g3');
      await m.deleteExpired();
      const names = objectNames(schemaName, '');
      // What an isolate reads when its sync host is down: the change record.
      await readChanges(db, names, null);
      await readChanges(db, names, (await readChanges(db, names, null)).cursor);

      phase = 'manager (no audit)';
      const plain = new SessionManager(db, { schemaName });
      const f = await plain.createSession('dave', { k: 'v' });
      await plain.clearAllCaches();
      const sf = await plain.getSession(f.token);
      if (sf === null) throw new Error('session not found');
      sf.set('k', 'w');
      await plain.updateSession(sf);
      await plain.getSession(f.token);
      await plain.flushTouches();
      await plain.rotate(f.token);
      await plain.deleteSession((await plain.createSession('dave', {})).token);
      await plain.deleteSessionById((await plain.createSession('dave', {})).session.id);
      await plain.deleteAllUserSessions('dave');
      await plain.deleteExpired();
      await plain.deleteAllSessions();

      // The sync worker: its listener, feed, touch flush and cleanup, driven by an isolate's SyncClient.
      phase = 'sync worker';
      const secret = 'cacheability-secret-0123456789-abcdefgh';
      const worker = await startWorker({
        databaseUrl: databaseUrl(),
        secret,
        port: 0,
        schemaName,
        lastAccessUpdateInterval: 3_600_000,
        cleanupInterval: 3_600_000,
        log: () => {},
      });
      try {
        await worker.ready();
        phase = 'isolate with a sync worker';
        const iso = new SessionManager(db, { schemaName });
        const sync = new SyncClient(iso, { workerUrl: worker.url, secret, mode: 'poll', insecureHttp: true });
        const g = await iso.createSession('erin', {});
        await sync.sync();
        await iso.getSession(g.token);
        await sync.pushTouches();
        await sync.sync();
        phase = 'sync worker';
        await worker.flushTouches();
        await worker.runCleanup();
      } finally {
        await worker.close();
      }
    } finally {
      phase = 'done';
      await pool.end();
    }
    stopRecording();

    admin = new pg.Pool({ connectionString: databaseUrl(), max: 2 });
    const volatility = volatilityIn(admin);
    for (const r of recorded.values()) verdicts.push(await judge(r, volatility));
  }, 120_000);

  afterAll(async () => {
    stopRecording();
    if (admin) {
      await dropSchema(admin, schemaName);
      await admin.end();
    }
  });

  it('runs every method of the SQL layer (Store): a new one must be exercised here before it ships', () => {
    expect(STORE_METHODS.length).toBeGreaterThan(10);
    expect(STORE_METHODS.filter((m) => !storeMethodsRun.has(m))).toEqual([]);
  });

  it('records the statements of every part exercised', () => {
    const phases = new Set(verdicts.flatMap((v) => v.phases));
    for (const p of ['migrate', 'manager (audit, inactivity)', 'manager (no audit)', 'isolate with a sync worker', 'sync worker']) {
      expect(phases, p).toContain(p);
    }
    console.log(
      `[cacheability] ${verdicts.length} distinct statements:\n${verdicts
        .map(
          (v) =>
            `  ${v.cacheable ? 'CACHEABLE' : 'not cached'}  ${v.command.padEnd(7)} ${v.why}  [${v.phases.join(', ')}]  ${v.text.replace(/\s+/g, ' ').slice(0, 140)}`,
        )
        .join('\n')}`,
    );
  });

  it('no statement is cacheable by Hyperdrive: each writes, is not a query, or calls a volatile or stable function', () => {
    const cacheable = verdicts.filter((v) => v.cacheable).map((v) => `${v.why} [${v.phases.join(', ')}]: ${v.text}`);
    expect(cacheable).toEqual([]);
  });

  it("the library's PL/pgSQL functions are volatile (PostgreSQL's default for a function)", async () => {
    const { rows } = await admin.query<{ proname: string; provolatile: string }>(
      `SELECT p.proname, p.provolatile FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
         JOIN pg_language l ON l.oid = p.prolang WHERE n.nspname = $1 AND l.lanname = 'plpgsql' ORDER BY 1`,
      [schemaName],
    );
    expect(rows.map((r) => r.proname)).toEqual(expect.arrayContaining(['session_create', 'session_get', 'session_update']));
    for (const r of rows) expect(r, r.proname).toMatchObject({ provolatile: 'v' });
  });

  it('the session read (getSession) calls clock_timestamp(), a volatile built-in, besides session_get', () => {
    const get = verdicts.filter((v) => v.calls.some((f) => f.name === 'session_get'));
    expect(get.length).toBeGreaterThan(0);
    for (const v of get) expect(v.calls).toContainEqual({ name: 'clock_timestamp', schema: 'pg_catalog', volatility: 'v' });
  });
});

// A guard on the judge itself: a plain read is cacheable, the same read with now() is not.
describe('the cacheability judge', () => {
  it('tells a cacheable read from one calling a stable function, and a write', async () => {
    const admin = new pg.Pool({ connectionString: databaseUrl(), max: 1 });
    try {
      const volatility = volatilityIn(admin);
      const r = (text: string, values?: unknown[]): Recorded => ({ text, values, phases: new Set(['t']) });
      expect(await judge(r('SELECT upper($1::text) AS u', ['x']), volatility)).toMatchObject({ cacheable: true });
      expect(await judge(r('SELECT $1::text AS u, now() AS t', ['x']), volatility)).toMatchObject({ cacheable: false });
      expect(await judge(r('SELECT CURRENT_TIMESTAMP AS t'), volatility)).toMatchObject({ cacheable: false });
      expect(await judge(r('SELECT random() AS t'), volatility)).toMatchObject({ cacheable: false });
      expect(await judge(r(`SELECT '${randomUUID()}'::uuid AS id`), volatility)).toMatchObject({ cacheable: true });
      expect(await judge(r('CREATE TEMP TABLE t_cacheability (x int)'), volatility)).toMatchObject({
        cacheable: false,
        command: 'UTILITY',
      });
      // A write inside a WITH under a SELECT is not trusted to be seen as a write: it needs a volatile call.
      const cte = 'WITH d AS (DELETE FROM pg_catalog.pg_description WHERE false RETURNING 1) SELECT count(*)::integer AS n';
      expect(await judge(r(`${cte} FROM d`), volatility)).toMatchObject({ cacheable: true, modifyingCte: true });
      expect(await judge(r(`${cte}, clock_timestamp() IS NOT NULL AS u FROM d`), volatility)).toMatchObject({ cacheable: false });
      expect(await judge(r('UPDATE pg_catalog.pg_description SET description = description WHERE false'), volatility)).toMatchObject({
        cacheable: false,
        command: 'UPDATE',
      });
    } finally {
      await admin.end();
    }
  });
});
