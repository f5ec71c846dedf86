// `npm run bench:opcost [-- --rounds=N] [-- --miss-concurrency=N] [-- --write-concurrency=N]`
// Where each hot path's time goes, next to the floors and connect-pg-simple it is judged against, all on
// one pool and interleaved in one run: client CPU, backend CPU (/proc/<pid>/schedstat) and p50 per
// operation, or per row for the touch flush and cleanup. `npm run bench` says whether a goal holds; this
// says what the operation costs, what the same work costs without the library's extras (the capture
// trigger, the PL/pgSQL function, the attribute merge), and so how far the best design could get.
import { randomBytes, randomUUID } from 'node:crypto';
import { cpus, loadavg } from 'node:os';
import { sql } from 'drizzle-orm';
import pg from 'pg';
import { SessionManager } from '../src/core/manager.ts';
import type { Session } from '../src/core/session.ts';
import { hashToken } from '../src/core/token.ts';
import { migrate } from '../src/migrate.ts';
import { CountingExecutor, createSchema, dropSchema, openDatabase, openPool } from './lib/db.ts';
import { createFloorTable } from './lib/floors.ts';
import { interleave, warmupPolicy } from './lib/measure.ts';
import { backendCpuNs, type Cost, type CostLog, medianCost, perOp, perRow, poolBackends, wakeupCostUs } from './lib/opcost.ts';
import { createPeerTable, openPeer } from './lib/peer.ts';
import {
  APP_ATTRIBUTES,
  peerSession,
  peerSid,
  STORED_ATTRIBUTES_JSON,
  seedOursBulk,
  seedOursWithTokens,
  seedPeerBulk,
  seedPeerWithSids,
} from './lib/seed.ts';

const USAGE = `Usage: npm run bench:opcost -- [--rounds=N] [--miss-concurrency=N] [--write-concurrency=N]

  --rounds=N             measured rounds (default 5, at least 3); every figure runs once per round, in
                         an order that rotates, and the table shows the median
  --miss-concurrency=N   callers of the getSession miss figures (default 1, as the bench's miss goal)
  --write-concurrency=N  callers of the create, delete and update figures (default 32, as the bench's
                         writes goals); the pool has as many connections as the larger of the two

Uses DATABASE_URL when set, else starts an embedded PostgreSQL. Backend CPU is read from
/proc/<pid>/schedstat of the pool's backends: Linux, with the server on this machine, only.`;

/** Sessions in each table before anything is measured (ours, the peer's, the LIKE copy). */
const ROWS = 10_000;
/** Operations per round of a per-operation figure: reads, writes. */
const PER_ROUND_MISS = 1500;
const PER_ROUND_WRITE = 3000;
/** Touches per flush. */
const FLUSH_ROWS = 50_000;
/** Expired rows per cleanup, and live rows that stay in each cleanup table. */
const CLEAN_ROWS = 50_000;
const CLEAN_LIVE = 10_000;
const WARMUP_MS = 500;

interface Options {
  rounds: number;
  miss: number;
  write: number;
}

function parseArgs(argv: string[]): Options {
  const o: Options = { rounds: 5, miss: 1, write: 32 };
  for (const a of argv) {
    const [k, v] = a.split('=');
    if (k === '--rounds') o.rounds = Number(v);
    else if (k === '--miss-concurrency') o.miss = Number(v);
    else if (k === '--write-concurrency') o.write = Number(v);
    else if (a === '--help' || a === '-h') {
      console.log(USAGE);
      process.exit(0);
    } else {
      console.error(`unknown argument ${a}\n\n${USAGE}`);
      process.exit(2);
    }
  }
  if (!Number.isInteger(o.rounds) || o.rounds < 3) {
    console.error('--rounds must be an integer ≥ 3');
    process.exit(2);
  }
  for (const c of [o.miss, o.write]) {
    if (!Number.isInteger(c) || c < 1 || c > 64) {
      console.error('--miss-concurrency and --write-concurrency take an integer from 1 to 64');
      process.exit(2);
    }
  }
  return o;
}

const iso = (ms: number) => new Date(ms).toISOString();

async function main(): Promise<void> {
  const { rounds, miss: CM, write: CW } = parseArgs(process.argv.slice(2));
  const C = Math.max(CM, CW);
  const t0 = performance.now();
  const log = (s: string) => process.stderr.write(`[${((performance.now() - t0) / 1000).toFixed(1).padStart(5)}s] ${s}\n`);
  const cores = cpus().length;
  const loads: string[] = [];
  const load = (phase: string) => {
    const l = loadavg()[0] ?? 0;
    loads.push(`${phase} ${l.toFixed(2)}`);
    log(`== ${phase}; load average ${l.toFixed(2)} on ${cores} cores${l > cores ? ' (busy: above the core count)' : ''}`);
    return l;
  };
  warmupPolicy.maxWindows = 5;

  const database = await openDatabase();
  log(`PostgreSQL ${database.version} (${database.source}); ${rounds} rounds, misses at c=${CM}, writes at c=${CW}`);
  const admin = new pg.Pool({ connectionString: database.url, max: 2 });
  admin.on('error', () => {});
  // One pool for everything measured: the library, the floors and connect-pg-simple share its backends.
  const p = await openPool(database.url, C);
  const schema = await createSchema(admin, p.db, 'opcost');
  // Ctrl-C: drop the schema (the capture trigger may be disabled in it) and stop an embedded server.
  const onSignal = () => {
    void dropSchema(admin, schema)
      .catch(() => {})
      .finally(() => database.stop().finally(() => process.exit(130)));
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  const costs: CostLog = new Map();
  let busiest = 0;
  try {
    // Three stores in the one schema: '' for the per-operation figures, flush_ and clean_ for the row
    // rates, so each table holds only what its figures put there.
    await migrate(p.db, { schemaName: schema, tablePrefix: 'flush_' });
    await migrate(p.db, { schemaName: schema, tablePrefix: 'clean_' });
    const backends = await poolBackends(p.pool, C);
    log(backends.why === '' ? `backend CPU: /proc/<pid>/schedstat of ${backends.pids.join(', ')}` : `backend CPU n/a: ${backends.why}`);

    // ---- per-operation figures: data
    busiest = Math.max(busiest, load('setup'));
    const reader = new SessionManager(p.db, { schemaName: schema, cacheSize: 0 });
    const writer = new SessionManager(p.db, { schemaName: schema });
    const table = writer.names.sessions;
    const peerTable = await createPeerTable(admin, schema);
    const peer = openPeer(p.pool, schema);
    const tokens = await seedOursWithTokens(admin, table, ROWS);
    const sids = await seedPeerWithSids(admin, peerTable, ROWS);
    // The LIKE copy (same columns and indexes, no trigger): the plain UPDATE's rows and the trigger-less deletes.
    const floor = await createFloorTable(admin, schema, ROWS, CW);
    const consumed = PER_ROUND_WRITE * (rounds + 1);
    const delTokens = await seedOursWithTokens(admin, table, consumed, 'live', 'del');
    const copyHashes = await Promise.all((await seedOursWithTokens(admin, floor.table, consumed, 'live', 'delc')).map((t) => hashToken(t)));
    const delSids = await seedPeerWithSids(admin, peerTable, consumed);
    const [probe] = await seedOursWithTokens(admin, table, 1, 'live', 'probe');
    await admin.query(`ANALYZE ${table}; ANALYZE ${peerTable}; ANALYZE ${floor.table}`);

    // The library's own statements, captured as it sends them (named, prepared), to replay them.
    const exec = new CountingExecutor(p.db);
    const capture = new SessionManager(exec, { schemaName: schema, cacheSize: 0 });
    await capture.getSession(tokens[0] as string);
    const missStatement = exec.lastPrepared;
    await capture.deleteSession(probe as string);
    const deleteStatement = exec.lastPrepared;
    if (missStatement === undefined || deleteStatement === undefined || !deleteStatement.text.includes(table)) {
      throw new Error('the library sent no prepared statement through the pool: nothing to replay');
    }
    const missHashes = await Promise.all(tokens.map((t) => hashToken(t)));
    const deleteOnCopy = { name: `${deleteStatement.name}_nocapture`, text: deleteStatement.text.replaceAll(table, floor.table) };

    // One session per caller for each update figure.
    const mine: Session[] = [];
    const mineNoCapture: Session[] = [];
    for (let w = 0; w < CW; w++) {
      mine.push((await writer.createSession(`upd-${w}`, { ...APP_ATTRIBUTES })).session);
      mineNoCapture.push((await writer.createSession(`updnc-${w}`, { ...APP_ATTRIBUTES })).session);
    }
    const trigger = (on: boolean) => async () => {
      await admin.query(`ALTER TABLE ${table} ${on ? 'ENABLE' : 'DISABLE'} TRIGGER sessions_capture_update`);
    };

    let found = 0;
    let gets = 0;
    let created = 0;
    let deleted = 0;
    let deletedCopy = 0;
    let kDel = 0;
    let kCopy = 0;
    let kPeer = 0;
    const insertText = `INSERT INTO ${table} (id, token_hash, user_id, group_id, attributes, version, created_at, updated_at, last_accessed, expires_at)
      VALUES ($1::uuid, decode($2, 'hex'), $3::text, NULL, $4::jsonb, 1, $5::timestamptz, $5::timestamptz, $5::timestamptz, $6::timestamptz)`;
    const o = (
      id: string,
      op: (i: number, w: number) => Promise<unknown>,
      extra: { consumes?: boolean; before?: () => Promise<void>; after?: () => Promise<void> } = {},
    ) => perOp(costs, backends, { id, op, concurrency: CW, perRound: PER_ROUND_WRITE, warmupMs: WARMUP_MS, ...extra });
    const read = (id: string, op: (i: number) => Promise<unknown>) =>
      perOp(costs, backends, { id, op, concurrency: CM, perRound: PER_ROUND_MISS, warmupMs: WARMUP_MS });
    const contestants = [
      read('get-miss', async (i) => {
        gets++;
        if ((await reader.getSession(tokens[i % ROWS] as string)) !== null) found++;
      }),
      read('miss-statement', (i) => p.pool.query({ ...missStatement, values: [missHashes[i % ROWS]] })),
      read('select1-prepared', (i) => p.pool.query({ name: 'opcost_select1', text: 'SELECT $1::int AS n', values: [i] })),
      read('select1-execute', (i) => p.db.execute(sql`SELECT ${i}::int AS n`) as Promise<unknown>),
      read('peer-get', (i) => peer.get(sids[i % ROWS] as string)),
      o('create', () => writer.createSession(`new-${created++}`, { ...APP_ATTRIBUTES })),
      o('insert', () => {
        const now = Date.now();
        return p.pool.query({
          name: 'opcost_insert',
          text: insertText,
          values: [
            randomUUID(),
            randomBytes(32).toString('hex'),
            `ins-${created++}`,
            STORED_ATTRIBUTES_JSON,
            iso(now),
            iso(now + 30 * 86_400_000),
          ],
        });
      }),
      o('peer-create', (i) => peer.set(peerSid(), peerSession(`new-${i}`))),
      o(
        'delete',
        async () => {
          if (await writer.deleteSession(delTokens[kDel++] as string)) deleted++;
        },
        { consumes: true },
      ),
      o(
        'delete-nocapture',
        async () => {
          const r = await p.pool.query({ ...deleteOnCopy, values: [copyHashes[kCopy++], null] });
          deletedCopy += r.rowCount ?? 0;
        },
        { consumes: true },
      ),
      o('peer-delete', () => peer.destroy(delSids[kPeer++] as string), { consumes: true }),
      o('update', (i, w) => {
        const s = mine[w] as Session;
        s.set('counter', i);
        return writer.updateSession(s);
      }),
      o(
        'update-nocapture',
        (i, w) => {
          const s = mineNoCapture[w] as Session;
          s.set('counter', i);
          return writer.updateSession(s);
        },
        { before: trigger(false), after: trigger(true) },
      ),
      o(
        'plain-update',
        (_i, w) =>
          p.db.execute(
            sql`UPDATE ${sql.raw(floor.table)} SET version = version + 1, updated_at = ${new Date().toISOString()}::timestamptz WHERE id = ${floor.ids[w]}::uuid`,
          ) as Promise<unknown>,
      ),
    ];
    busiest = Math.max(busiest, load('per-operation figures'));
    await interleave(contestants, rounds, log);
    if (found !== gets) throw new Error(`getSession found ${found} of ${gets} sessions`);
    if (deleted !== kDel || deletedCopy !== kCopy)
      throw new Error(`deletes: ${deleted} of ${kDel}, ${deletedCopy} of ${kCopy} on the copy`);

    // ---- touch flush: every row's last access moves forward by a second each time, so every touch writes.
    busiest = Math.max(busiest, load('touch flush'));
    const flusher = new SessionManager(p.db, { schemaName: schema, tablePrefix: 'flush_' });
    const flushTable = flusher.names.sessions;
    let at = Date.now() - 3_600_000;
    await seedOursBulk(admin, flushTable, FLUSH_ROWS, 'live', { lastAccessed: at });
    await admin.query(`VACUUM ANALYZE ${flushTable}`);
    // In the order a plain SELECT returns them, as the bench's touch section gives them.
    const flushIds = (await admin.query<{ id: string }>(`SELECT id::text AS id FROM ${flushTable}`)).rows.map((r) => r.id);
    await interleave(
      [
        perRow(costs, backends, {
          id: 'flush',
          prepare: async () => {
            await admin.query(`VACUUM ${flushTable}`);
            at += 1000;
            flusher.restoreTouches(flushIds.map((id) => [id, at] as const));
          },
          work: async () => {
            const r = await flusher.flushTouches();
            if (r.rows !== FLUSH_ROWS) throw new Error(`flushTouches wrote ${r.rows} of ${FLUSH_ROWS}`);
            return r.rows;
          },
        }),
        perRow(costs, backends, {
          id: 'flush-floor',
          prepare: async () => {
            await admin.query(`VACUUM ${flushTable}`);
          },
          work: async () =>
            (
              await p.pool.query(
                `UPDATE ${flushTable} SET last_accessed = last_accessed + interval '1 millisecond' WHERE user_id LIKE 'bulk-%'`,
              )
            ).rowCount ?? 0,
        }),
      ],
      rounds,
      log,
    );

    // ---- cleanup: N expired rows among CLEAN_LIVE live ones, VACUUM ANALYZE, then one pass.
    busiest = Math.max(busiest, load('cleanup'));
    // The cleaner as the worker runs it: no cache (so no ids come back).
    const cleaner = new SessionManager(p.db, { schemaName: schema, tablePrefix: 'clean_', cacheSize: 0 });
    const cleanTable = cleaner.names.sessions;
    const copyTable = `"${schema}"."clean_copy"`;
    await admin.query(`CREATE TABLE ${copyTable} (LIKE ${cleanTable} INCLUDING ALL)`);
    await seedOursBulk(admin, cleanTable, CLEAN_LIVE, 'live');
    await seedOursBulk(admin, copyTable, CLEAN_LIVE, 'live');
    const loadExpired = (t: string) => async () => {
      await seedOursBulk(admin, t, CLEAN_ROWS, 'expired');
      await admin.query(`VACUUM ANALYZE ${t}`);
    };
    /**
     * What deleteExpired's session walk deletes, as plain DELETEs of the due sessions found through
     * sessions_cleanup_idx (drizzle/0015), at most lastAccessUpdateBatchSize per statement, as
     * src/db/cleanup-statement.ts reads them (without its locks, deadlines and counts).
     */
    const plainDelete = (t: string) => async () => {
      const now = Date.now();
      const idleCutoff = now - cleaner.config.inactivityDuration - cleaner.config.lastAccessUpdateInterval;
      const batch = cleaner.config.lastAccessUpdateBatchSize;
      let n = 0;
      for (let got = batch; got === batch; ) {
        const r = await p.pool.query(
          `DELETE FROM ${t} WHERE ctid = ANY(ARRAY(SELECT ctid FROM ${t} WHERE LEAST(cleanup_at, expires_at) <= $1::timestamptz
             ORDER BY LEAST(cleanup_at, expires_at) LIMIT $3::integer)) AND (expires_at <= $1::timestamptz OR last_accessed <= $2::timestamptz)`,
          [iso(now), iso(idleCutoff), batch],
        );
        got = r.rowCount ?? 0;
        n += got;
      }
      if (n !== CLEAN_ROWS) throw new Error(`plain DELETE on ${t} deleted ${n} of ${CLEAN_ROWS}`);
      return n;
    };
    /** deleteExpired's cost split by walk, read at every statement it reports (onBatch); warm-up first. */
    const walks: Record<'sessions' | 'attributes' | 'rest', Cost>[] = [];
    const expiredPeer = async () =>
      Number((await admin.query<{ n: number }>(`SELECT count(*)::integer AS n FROM ${peerTable} WHERE expire < now()`)).rows[0]?.n);
    await interleave(
      [
        perRow(costs, backends, {
          id: 'cleanup',
          prepare: loadExpired(cleanTable),
          work: async () => {
            const split = { sessions: { c: 0, s: 0, ms: 0 }, attributes: { c: 0, s: 0, ms: 0 }, rest: { c: 0, s: 0, ms: 0 } };
            let s0 = backendCpuNs(backends) ?? 0;
            let c0 = process.cpuUsage();
            const w0 = performance.now();
            const r = await cleaner.deleteExpired({
              pause: 0,
              onBatch: (kind, _rows, ms) => {
                const s = backendCpuNs(backends) ?? 0;
                const c = process.cpuUsage(c0);
                split[kind].c += c.user + c.system;
                split[kind].s += s - s0;
                split[kind].ms += ms;
                s0 = s;
                c0 = process.cpuUsage();
              },
            });
            const c = process.cpuUsage(c0);
            split.rest.c += c.user + c.system;
            split.rest.s += (backendCpuNs(backends) ?? 0) - s0;
            split.rest.ms = performance.now() - w0 - split.sessions.ms - split.attributes.ms;
            if (r.sessions !== CLEAN_ROWS) throw new Error(`deleteExpired deleted ${r.sessions} of ${CLEAN_ROWS}`);
            const per = (x: { c: number; s: number; ms: number }): Cost => ({
              clientUs: x.c / CLEAN_ROWS,
              backendUs: backends.why === '' ? x.s / 1000 / CLEAN_ROWS : undefined,
              p50Us: undefined,
              wallUs: (x.ms * 1000) / CLEAN_ROWS,
              rate: Number.NaN,
            });
            walks.push({ sessions: per(split.sessions), attributes: per(split.attributes), rest: per(split.rest) });
            return r.sessions;
          },
        }),
        perRow(costs, backends, { id: 'range-delete', prepare: loadExpired(cleanTable), work: plainDelete(cleanTable) }),
        perRow(costs, backends, { id: 'range-delete-nocapture', prepare: loadExpired(copyTable), work: plainDelete(copyTable) }),
        perRow(costs, backends, {
          id: 'peer-prune',
          prepare: async () => {
            await seedPeerBulk(admin, peerTable, CLEAN_ROWS, 'expired');
            await admin.query(`VACUUM ANALYZE ${peerTable}`);
            const n = await expiredPeer();
            if (n !== CLEAN_ROWS) throw new Error(`${n} expired rows in the peer's table, expected ${CLEAN_ROWS}`);
          },
          work: async () => {
            await peer.prune();
            return CLEAN_ROWS;
          },
        }),
      ],
      rounds,
      log,
    );
    if ((await expiredPeer()) !== 0) throw new Error('pruneSessions left expired rows');
    for (const [k, list] of [
      ['cleanup.sessions', walks.slice(1).map((w) => w.sessions)],
      ['cleanup.attributes', walks.slice(1).map((w) => w.attributes)],
      ['cleanup.rest', walks.slice(1).map((w) => w.rest)],
    ] as const) {
      costs.set(k, list);
    }
    busiest = Math.max(busiest, load('end'));
    const wakeup = await wakeupCostUs();

    console.log(
      report({
        costs,
        rounds,
        missConcurrency: CM,
        writeConcurrency: CW,
        backends: backends.why === '' ? `/proc/<pid>/schedstat of the pool's ${backends.pids.length} backend(s)` : `n/a (${backends.why})`,
        database: `PostgreSQL ${database.version} (${database.source})`,
        seconds: (performance.now() - t0) / 1000,
        loads,
        busy: busiest > cores,
        cores,
        wakeup,
      }),
    );
    await reader.close();
    await writer.close();
    await capture.close();
    await flusher.close();
    await cleaner.close();
  } finally {
    await dropSchema(admin, schema).catch(() => {});
    await p.close();
    await admin.end();
    await database.stop();
  }
}

type Group = { group: string; at: 'miss' | 'write' | 'serial'; per: 'op' | 'row'; rows: [id: string, label: string][] };

const ROWS_SHOWN: Group[] = [
  {
    group: 'getSession miss',
    at: 'miss',
    per: 'op',
    rows: [
      ['get-miss', 'getSession miss (cacheSize 0, touch on)'],
      ['miss-statement', '… its statement alone (session_get, prepared), replayed with each token’s hash'],
      ['select1-prepared', '`SELECT $1::int`, named prepared'],
      ['select1-execute', '`SELECT $1::int` via db.execute (the bench floor)'],
      ['peer-get', 'connect-pg-simple get'],
    ],
  },
  {
    group: 'createSession',
    at: 'write',
    per: 'op',
    rows: [
      ['create', 'createSession (new user)'],
      ['insert', 'plain INSERT of the same row (prepared)'],
      ['peer-create', 'connect-pg-simple set (new sid)'],
    ],
  },
  {
    group: 'deleteSession',
    at: 'write',
    per: 'op',
    rows: [
      ['delete', 'deleteSession (by token)'],
      ['delete-nocapture', 'the same DELETE on a LIKE copy (no capture trigger)'],
      ['peer-delete', 'connect-pg-simple destroy'],
    ],
  },
  {
    group: 'updateSession',
    at: 'write',
    per: 'op',
    rows: [
      ['update', 'updateSession (one attribute)'],
      ['update-nocapture', 'the same with the capture trigger disabled'],
      ['plain-update', 'plain one-row UPDATE via db.execute (the bench floor)'],
    ],
  },
  {
    group: 'touch flush',
    at: 'serial',
    per: 'row',
    rows: [
      ['flush', `flushTouches of ${FLUSH_ROWS.toLocaleString('en-US')} touches`],
      ['flush-floor', 'one UPDATE of last_accessed of the same rows'],
    ],
  },
  {
    group: 'cleanup',
    at: 'serial',
    per: 'row',
    rows: [
      ['cleanup', `deleteExpired pause 0 (${CLEAN_ROWS.toLocaleString('en-US')} expired, ${CLEAN_LIVE.toLocaleString('en-US')} live)`],
      ['cleanup.sessions', '… of which the session walk'],
      ['cleanup.attributes', '… of which the attribute walk'],
      ['cleanup.rest', '… of which the rest (audit prune)'],
      ['range-delete', 'plain DELETE of the due sessions, a batch per statement, capture trigger'],
      ['range-delete-nocapture', 'the same on a LIKE copy, no trigger'],
      ['peer-prune', 'connect-pg-simple pruneSessions'],
    ],
  },
];

function fmt(v: number | undefined): string {
  if (v === undefined || !Number.isFinite(v)) return 'n/a';
  const a = Math.abs(v);
  if (a < 1) return v.toFixed(2);
  if (a < 100) return v.toFixed(1);
  return v.toFixed(0);
}

/** A difference, signed. */
function diff(a: number | undefined, b: number | undefined): string {
  if (a === undefined || b === undefined || !Number.isFinite(a - b)) return 'n/a';
  return a - b >= 0 ? `+${fmt(a - b)}` : `−${fmt(b - a)}`;
}

function ratio(a: number | undefined, b: number | undefined): string {
  return a === undefined || b === undefined || !Number.isFinite(a) || !Number.isFinite(b) || b === 0 ? 'n/a' : `${(a / b).toFixed(2)}×`;
}

function report(r: {
  costs: CostLog;
  rounds: number;
  missConcurrency: number;
  writeConcurrency: number;
  backends: string;
  database: string;
  seconds: number;
  loads: string[];
  busy: boolean;
  cores: number;
  wakeup: number;
}): string {
  const m = (id: string) => medianCost(r.costs.get(id) ?? []);
  const at = (g: Group) =>
    g.at === 'miss' ? `c=${r.missConcurrency}` : g.at === 'write' ? `c=${r.writeConcurrency}` : 'one statement at a time';
  const lines = [
    `## Per-operation cost (npm run bench:opcost, ${new Date().toISOString()})`,
    '',
    `${r.database}, Node ${process.version}, ${r.cores} CPUs; one pool of ${Math.max(r.missConcurrency, r.writeConcurrency)} connection(s) shared by the library, the floors and connect-pg-simple. Misses at c=${r.missConcurrency} (${PER_ROUND_MISS} per round), writes at c=${r.writeConcurrency} (${PER_ROUND_WRITE} per round), as the goals of \`npm run bench\` are measured; median of ${r.rounds} interleaved rounds; ${r.seconds.toFixed(0)} s.`,
    `Client CPU: process.cpuUsage() of this process. Backend CPU: ${r.backends}. p50: per operation. Wall: elapsed time ÷ operations (or rows).`,
    `Load average (1 min): ${r.loads.join(', ')}${r.busy ? ` — ⚠️ above the ${r.cores} cores: other work shared the CPUs, trust CPU figures more than wall, p50 and rates` : ''}.`,
    '',
    '| operation | per | client CPU µs | backend CPU µs | client+backend µs | p50 µs | wall µs | per second |',
    '| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |',
  ];
  for (const g of ROWS_SHOWN) {
    lines.push(`| **${g.group}** (${at(g)}) | | | | | | | |`);
    for (const [id, label] of g.rows) {
      const c = m(id);
      lines.push(
        `| ${label} | ${g.per} | ${fmt(c.clientUs)} | ${fmt(c.backendUs)} | ${fmt(c.totalUs)} | ${fmt(c.p50Us)} | ${fmt(c.wallUs)} | ${Number.isFinite(c.rate) ? Math.round(c.rate).toLocaleString('en-US') : '—'} |`,
      );
    }
  }
  lines.push('', '### Reading the goals from this table', '');
  const miss = m('get-miss');
  const st = m('miss-statement');
  const s1p = m('select1-prepared');
  const s1e = m('select1-execute');
  lines.push(
    `- getSession miss p50 ÷ SELECT $1 p50 (goal ≤ 1.5× at c=1): ${ratio(miss.p50Us, s1e.p50Us)} vs db.execute (the bench's floor), ${ratio(miss.p50Us, s1p.p50Us)} vs prepared. Its statement alone: ${ratio(st.p50Us, s1e.p50Us)} of db.execute's p50, ${ratio(st.p50Us, s1p.p50Us)} of prepared (backend ${fmt(st.backendUs)} vs ${fmt(s1p.backendUs)} µs). A miss beyond its statement: ${diff(miss.p50Us, st.p50Us)} µs p50, ${diff(miss.clientUs, st.clientUs)} µs client CPU (hashing the token, building the session), ${diff(miss.backendUs, st.backendUs)} µs backend.`,
  );
  // At high concurrency on a CPU-bound machine, ops/s goes as 1 / (client + backend CPU per op).
  const cpuLine = (goal: string, ours: string, other: string, floorId: string, floorWhat: string) => {
    const a = m(ours);
    const b = m(other);
    const f = m(floorId);
    const bound = f.backendUs === undefined ? undefined : a.clientUs + f.backendUs;
    return `${goal}: ${ratio(a.rate, b.rate)} by ops/s here; CPU-bound estimate ${ratio(b.totalUs, a.totalUs)} (${fmt(b.totalUs)} ÷ ${fmt(a.totalUs)} µs client+backend). Backend ${fmt(a.backendUs)} µs vs ${fmt(f.backendUs)} µs ${floorWhat} (${diff(a.backendUs, f.backendUs)} µs); with the backend at that floor and today's client (${fmt(a.clientUs)} µs): ${ratio(b.totalUs, bound)}.`;
  };
  lines.push(
    `- ${cpuLine(`createSession ÷ connect-pg-simple set (goal ≥ 1.0× at c=32)`, 'create', 'peer-create', 'insert', 'for a plain INSERT of the row')}`,
    `- ${cpuLine(`deleteSession ÷ connect-pg-simple destroy (goal ≥ 1.0× at c=32)`, 'delete', 'peer-delete', 'delete-nocapture', 'for the same DELETE without the capture trigger')}`,
    `- ${cpuLine(`updateSession ÷ plain one-row UPDATE (goal ≥ 0.7× at c=32)`, 'update', 'plain-update', 'update-nocapture', 'with the capture trigger disabled')} Without the trigger, the function and the attribute merge still cost ${diff(m('update-nocapture').backendUs, m('plain-update').backendUs)} µs backend and ${diff(m('update-nocapture').clientUs, m('plain-update').clientUs)} µs client over the plain UPDATE.`,
  );
  const fl = m('flush');
  const ff = m('flush-floor');
  lines.push(
    `- flushTouches ÷ one UPDATE of the same rows (goal ≥ 0.8×, ≥ 100k rows/s): ${ratio(ff.wallUs, fl.wallUs)} by wall time, ${Math.round(fl.rate).toLocaleString('en-US')} rows/s; backend ${fmt(fl.backendUs)} vs ${fmt(ff.backendUs)} µs/row, client ${fmt(fl.clientUs)} µs/row.`,
  );
  const cl = m('cleanup');
  const rd = m('range-delete');
  const rn = m('range-delete-nocapture');
  const pp = m('peer-prune');
  lines.push(
    `- deleteExpired pause 0 ÷ connect-pg-simple prune (goal ≥ 0.5×): ${ratio(pp.wallUs, cl.wallUs)} by wall time (backend ${fmt(cl.backendUs)} vs ${fmt(pp.backendUs)} µs/row). A plain DELETE of the due sessions reaches ${ratio(pp.wallUs, rd.wallUs)} with the capture trigger, ${ratio(pp.wallUs, rn.wallUs)} without it: the trigger alone costs ${diff(rd.backendUs, rn.backendUs)} µs/row of backend, against a budget of ${fmt(2 * (pp.wallUs ?? Number.NaN))} µs/row of wall time for the whole cleanup.`,
  );
  lines.push(
    '',
    `CPU-bound estimate: at c=32 on ${r.cores} cores, with client and server on the same CPUs and the machine saturated, ops/s goes as 1 ÷ (client + backend CPU per operation). A process woken from sleep is charged CPU for the wake-up (here ${fmt(r.wakeup)} µs per wake-up from a 1 ms timer with nothing else to do): at c=1 every round trip pays it on both sides, alike for every row, so at c=1 differences between rows are the operations' own cost and ratios are compressed.`,
  );
  return lines.join('\n');
}

main().then(
  () => process.exit(0),
  (e) => {
    console.error(e);
    process.exit(1);
  },
);
