// A chaos run: its own PostgreSQL (restartable), migrations (the main schema and the idle pool's), a TCP
// proxy in front of it, three sync workers (the real CLI; the third serves the idle pool's schema with a short
// inactivityDuration), four app processes with clocks skewed by up to ±5 min — one per way an app keeps its
// cache fresh: stream, poll (without the direct database fallback), standalone (no sync client) and HTTP
// through the Hono middleware with real cookies — an observer of the change feed, a sampler of the database,
// touches injected for idle-expired sessions (as a peer could send them) followed by probing reads, and a
// fault every few seconds. Everything is recorded (chaos/types.ts) and checked (chaos/check.ts). Every loop
// has a deadline; every child runs in its own process group and is killed as a group at the end, also on
// failure; the database is stopped and its directory removed.
import { drizzle } from 'drizzle-orm/node-postgres';
import pg from 'pg';
import { freePort } from '../harness/free-port.ts';
import { startTcpProxy, type TcpProxy } from '../harness/tcp-proxy.ts';
import { SessionError } from '../src/core/errors.ts';
import { SessionManager } from '../src/core/manager.ts';
import { migrate } from '../src/migrate.ts';
import type { FeedResponse } from '../src/protocol.ts';
import type { AppMode, RegEvent, Target } from './app-proc.ts';
import { type CheckResult, checkHistory } from './check.ts';
import { type ChaosPostgres, startChaosPostgres } from './postgres.ts';
import { AppProc, WorkerSlot } from './procs.ts';
import { Rng } from './rng.ts';
import { formatSummary, type Summary, summarize } from './summary.ts';
import {
  type CountSample,
  type Delivery,
  FAULT_KINDS,
  type Fault,
  type FaultKind,
  type History,
  type LastAccessSample,
  type Op,
  type Pool,
  type ProcessEvent,
  type TouchOp,
  wallNow,
} from './types.ts';

export interface ChaosOptions {
  /** Load duration, ms. */
  durationMs: number;
  seed: number;
  /** Pause between two faults, ms (uniform in the range). Default [2000, 4000]. */
  faultGapMs?: [number, number];
  /** Concurrent operation loops per app process. Default 4. */
  loopsPerApp?: number;
  /** Think time between two operations of a loop, ms. Default [4, 12]. */
  thinkMs?: [number, number];
  /** Fault kinds to draw from. Default: all. */
  faultKinds?: readonly FaultKind[];
  /**
   * Faults injected during the load, at least (the one after the load not counted): when faults run slow (a
   * loaded machine takes seconds to restart PostgreSQL) the gaps shrink so this many still fit before the
   * load ends. Default 0.
   */
  minFaults?: number;
  /**
   * Largest clock skew of an app process, ms (each one's is drawn from the seed within ±this: the stream and
   * poll processes behind, the HTTP one ahead, by at least a fifth of it). Default 300000 (5 min); 0: no skew.
   */
  maxClockSkewMs?: number;
  /** Progress lines. Default: none. */
  log?: (line: string) => void;
}

export interface ChaosResult {
  history: History;
  check: CheckResult;
  summary: Summary;
  text: string;
}

const SECRET = 'chaos-secret-0123456789-abcdefghijklmnopqrstuvwxyz';
/** One app process per mode (chaos/app-proc.ts), and the worker its sync clients use (-1: none). */
const MODES: readonly AppMode[] = ['stream', 'poll', 'standalone', 'http'];
const MODE_WORKER = [0, 1, -1, 1];
const APPS = MODES.length;
/** Workers 0 and 1 serve the main schema; worker 2 the idle pool's. */
const WORKERS = 3;
const IDLE_WORKER = 2;
/** inactivityDuration of the idle pool (its managers and its worker). */
const IDLE_MS = 4000;
const MAX_STALENESS = 1000;
const CAP = 3;
const TOUCH_INTERVAL = 500;
const TOUCH_FALLBACK_INTERVAL = 2000;
const FLUSH_INTERVAL = 1000;
/** The idle pool worker's touchMaxHold (its clients push every TOUCH_INTERVAL). */
const TOUCH_MAX_HOLD = 2000;
const PAUSE_MS = 2000;
/** Times from different processes' clocks are compared with this tolerance (larger is more lenient). */
const CLOCK_SLACK_MS = 20;
const LISTENER_APP_NAME = 'pg-edge-session-listener';
const CAPPED_USERS = Array.from({ length: 6 }, (_, i) => `capped-${i}`);
const FREE_USERS = Array.from({ length: 30 }, (_, i) => `user-${i}`);
const IDLE_USERS = Array.from({ length: 10 }, (_, i) => `idle-${i}`);
/** Reads of both pools' tables (the idle pool has its own schema). */
const SESSION_TABLES = ['public.sessions', 'idle.sessions'];

const sleep = (ms: number) => new Promise((r) => setTimeout(r, Math.max(0, ms)));

/** Cleanups of runs in progress, for a signal handler (run.ts) to call before exiting. */
const active = new Set<() => Promise<void>>();
export async function emergencyCleanup(): Promise<void> {
  await Promise.allSettled([...active].map((f) => f()));
}

/** Polls GET /v1/changes on the workers in turn, carrying one cursor, and records every answer. */
class Observer {
  readonly deliveries: Delivery[] = [];
  failures = 0;
  #cursor: string | null = null;
  #i = 0;
  #stopped = false;
  #loop: Promise<void> | undefined;
  constructor(private readonly workers: WorkerSlot[]) {}

  async pollOnce(): Promise<Delivery | undefined> {
    const w = this.workers[this.#i++ % this.workers.length] as WorkerSlot;
    const requestStart = wallNow();
    try {
      const q = this.#cursor === null ? '' : `?after=${encodeURIComponent(this.#cursor)}`;
      const res = await fetch(`${w.url}/v1/changes${q}`, {
        headers: { authorization: `Bearer ${SECRET}` },
        signal: AbortSignal.timeout(2000),
      });
      if (!res.ok) {
        this.failures++;
        await res.body?.cancel();
        return undefined;
      }
      const body = (await res.json()) as FeedResponse;
      const d: Delivery = {
        worker: w.index,
        requestStart,
        receivedAt: wallNow(),
        after: this.#cursor,
        cursor: body.cursor,
        ids: body.ids,
        reset: body.reset,
        freshAsOf: body.freshAsOf,
      };
      this.deliveries.push(d);
      this.#cursor = body.cursor;
      return d;
    } catch {
      this.failures++;
      return undefined;
    }
  }

  start(deadline: number): void {
    this.#loop = (async () => {
      while (!this.#stopped && wallNow() < deadline) {
        await this.pollOnce();
        await sleep(100);
      }
    })();
  }

  /** Polls until an answer is fresh as of `t` (every change committed before t delivered), or the deadline. */
  async catchUp(t: number, deadline: number): Promise<boolean> {
    while (wallNow() < deadline) {
      const d = await this.pollOnce();
      if (d !== undefined && d.freshAsOf > t) return true;
      await sleep(100);
    }
    return false;
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    await this.#loop;
  }
}

export async function runChaos(o: ChaosOptions): Promise<ChaosResult> {
  const log = o.log ?? (() => {});
  const rng = new Rng(o.seed);
  const faultRng = rng.fork(1);
  const gap = o.faultGapMs ?? [2000, 4000];
  const ops: Op[] = [];
  const faults: Fault[] = [];
  const samples: LastAccessSample[] = [];
  const counts: CountSample[] = [];
  const processEvents: ProcessEvent[] = [];
  const appStats: unknown[] = [];
  let stopping = false;
  // Clock skews of the app processes (ms ahead of the reference clock), from the seed. The library-level sync
  // clients (stream, poll) run behind, so the workers' freshAsOf is ahead of their clocks (issue 9.3); the
  // HTTP process runs ahead (its touches reach the worker from the future); the standalone one either way.
  const maxSkew = Math.max(0, Math.round(o.maxClockSkewMs ?? 300_000));
  const skewRng = rng.fork(4);
  const atLeast = Math.ceil(maxSkew / 5);
  const skews = MODES.map((mode) =>
    maxSkew === 0
      ? 0
      : mode === 'stream' || mode === 'poll'
        ? -skewRng.int(atLeast, maxSkew)
        : mode === 'http'
          ? skewRng.int(atLeast, maxSkew)
          : skewRng.int(-maxSkew, maxSkew),
  );
  let injectorPool: pg.Pool | undefined;

  let pgdb: ChaosPostgres | undefined;
  let admin: pg.Pool | undefined;
  let proxy: TcpProxy | undefined;
  const workers: WorkerSlot[] = [];
  const apps: AppProc[] = [];
  let observer: Observer | undefined;
  let samplerLoop: Promise<void> | undefined;

  // If this process exits in the middle of a run (a test runner giving up), take the children along.
  const onExit = () => {
    for (const p of [...apps, ...workers]) p.killNow();
  };
  process.once('exit', onExit);
  const cleanup = async () => {
    process.removeListener('exit', onExit);
    stopping = true;
    await observer?.stop().catch(() => {});
    await Promise.allSettled([...apps.map((a) => a.destroy()), ...workers.map((w) => w.destroy())]);
    await samplerLoop?.catch(() => {});
    await admin?.end().catch(() => {});
    await injectorPool?.end().catch(() => {});
    await proxy?.close().catch(() => {});
    await pgdb?.destroy().catch(() => {});
  };
  active.add(cleanup);

  try {
    // ---- setup ------------------------------------------------------------------------------------------
    pgdb = await startChaosPostgres();
    const db = pgdb;
    log(`postgres on port ${db.port}`);
    admin = new pg.Pool({ connectionString: db.url, max: 3, connectionTimeoutMillis: 3000, application_name: 'chaos-admin' });
    admin.on('error', () => {});
    const adminPool = admin;
    const q = async <T>(text: string, params: unknown[] = []): Promise<T[] | undefined> => {
      try {
        return (await adminPool.query(text, params)).rows as T[];
      } catch {
        return undefined;
      }
    };
    await migrate(drizzle(admin));
    await migrate(drizzle(admin), { schemaName: 'idle' });
    proxy = await startTcpProxy({ port: db.port });
    const px = proxy;
    // Every process reaches PostgreSQL through its own port of the proxy (so a fault can hit one of them).
    const proxyUrl = async (tag: string) => `postgres://postgres:postgres@127.0.0.1:${await px.listen(tag)}/test`;

    const workerEnv = {
      PG_EDGE_SESSION_SECRET: SECRET,
      PG_EDGE_SESSION_FLUSH_INTERVAL: String(FLUSH_INTERVAL),
      PG_EDGE_SESSION_CLEANUP_INTERVAL: '5000',
      PG_EDGE_SESSION_POLL_INTERVAL: '250',
    };
    for (let i = 0; i < WORKERS; i++) {
      const idleEnv: Record<string, string> =
        i === IDLE_WORKER
          ? {
              PG_EDGE_SESSION_SCHEMA: 'idle',
              PG_EDGE_SESSION_INACTIVITY: String(IDLE_MS),
              PG_EDGE_SESSION_TOUCH_MAX_HOLD: String(TOUCH_MAX_HOLD),
              PG_EDGE_SESSION_CLEANUP_INTERVAL: '10000',
            }
          : {};
      const w = new WorkerSlot(i, await freePort(), { ...workerEnv, ...idleEnv, DATABASE_URL: await proxyUrl(`worker-${i}`) });
      w.onUnexpectedExit = (info, logs) => {
        processEvents.push({
          at: wallNow(),
          process: `worker ${i}`,
          kind: 'unexpected-exit',
          worker: i,
          detail: `exit ${info.code ?? info.signal}; last log lines: ${logs.slice(-5).join(' | ')}`,
        });
        log(`!! worker ${i} exited on its own (${info.code ?? info.signal}); restarting`);
        if (!stopping) void w.start().catch(() => {});
      };
      w.onUnwrittenTouches = (line) =>
        processEvents.push({ at: wallNow(), process: `worker ${i}`, kind: 'unwritten-touches', worker: i, detail: line });
      workers.push(w);
    }
    // The app processes load their modules while the workers start; they connect at the first ping.
    const workersReady = Promise.all(workers.map((w) => w.start()));
    workersReady.catch(() => {});

    const aliveIds = new Set<string>();
    /** Idle-pool sessions, with the newest access recorded for them (a clock value), for the touch injector. */
    const idle = new Map<string, { token: string; newest: number; dead: boolean; injected: number }>();
    const onReg = (from: number, ev: RegEvent) => {
      for (const a of apps) if (a.index !== from) a.relay(ev);
      if (ev.kind === 'created') {
        aliveIds.add(ev.id);
        if (ev.pool === 'idle') idle.set(ev.id, { token: ev.token, newest: Number.NEGATIVE_INFINITY, dead: false, injected: 0 });
      } else if (ev.kind === 'rotated') {
        const s = idle.get(ev.id);
        if (s !== undefined && s.token === ev.oldToken) s.token = ev.newToken;
      } else
        for (const id of ev.ids) {
          aliveIds.delete(id);
          const s = idle.get(id);
          if (s !== undefined) s.dead = true;
        }
    };
    const noteAccess = (op: Op) => {
      const at = op.kind === 'create' ? op.result?.at : op.kind === 'read' ? op.result?.touchAt : undefined;
      const id = op.kind === 'create' ? op.result?.id : op.kind === 'read' ? op.result?.id : undefined;
      const s = id === undefined ? undefined : idle.get(id);
      if (s !== undefined && at !== undefined && at > s.newest) s.newest = at;
    };
    for (let i = 0; i < APPS; i++) {
      const w = MODE_WORKER[i] as number;
      apps.push(
        new AppProc(
          i,
          {
            MODE: MODES[i] as AppMode,
            CLOCK_SKEW: String(skews[i]),
            DATABASE_URL: await proxyUrl(`app-${i}`),
            WORKER_URL: w === -1 ? '' : (workers[w] as WorkerSlot).url,
            IDLE_WORKER_URL: (workers[IDLE_WORKER] as WorkerSlot).url,
            // Poll mode without the direct database fallback: only the worker's feed keeps its cache fresh.
            DIRECT_FALLBACK: MODES[i] === 'poll' ? '0' : '1',
            SECRET,
            CAP: String(CAP),
            MAX_STALENESS: String(MAX_STALENESS),
            IDLE_MS: String(IDLE_MS),
            TOUCH_INTERVAL: String(TOUCH_INTERVAL),
            TOUCH_FALLBACK_INTERVAL: String(TOUCH_FALLBACK_INTERVAL),
          },
          {
            onOps: (_p, batch) => {
              for (const op of batch) {
                ops.push(op);
                noteAccess(op);
              }
            },
            onReg,
            onUnexpectedExit: (p, info, output) => {
              processEvents.push({
                at: wallNow(),
                process: `app ${p}`,
                kind: 'unexpected-exit',
                detail: `exit ${info.code ?? info.signal}; output: ${output.slice(-10).join(' | ')}`,
              });
              log(`!! app ${p} exited (${info.code ?? info.signal}): ${output.slice(-10).join('\n')}`);
            },
          },
        ),
      );
    }
    await workersReady;
    log(`workers ready: ${workers.map((w) => w.url).join(', ')}`);
    const pings = await Promise.all(apps.map((a) => a.call<{ mode: string; skew: number; http?: string }>('ping', {}, 60_000)));
    log(
      `apps ready: ${pings.map((p, i) => `${i} ${p.mode} (clock ${p.skew >= 0 ? '+' : ''}${(p.skew / 1000).toFixed(0)} s${p.http ? `, ${p.http}` : ''})`).join(', ')}`,
    );

    // ---- load, observer, sampler, faults -----------------------------------------------------------------
    const loadStart = wallNow();
    const deadline = loadStart + o.durationMs;
    const hardDeadline = deadline + 120_000;
    observer = new Observer(workers.filter((w) => w.index !== IDLE_WORKER));
    const obs = observer;
    obs.start(hardDeadline);
    const sampleRng = rng.fork(2);
    /** Sessions touches were injected for: sampled every round for a while. */
    const watched = new Map<string, number>();
    samplerLoop = (async () => {
      while (!stopping && wallNow() < hardDeadline) {
        const pool = [...aliveIds];
        const ids = sampleRng.shuffle(pool).slice(0, 48);
        for (const [id, until] of watched) {
          if (until < wallNow()) watched.delete(id);
          else if (!ids.includes(id)) ids.push(id);
        }
        if (ids.length > 0) {
          const at = wallNow();
          const rows = await q<{ id: string; la: number }>(
            SESSION_TABLES.map(
              (t) => `SELECT id::text AS id, (extract(epoch from last_accessed) * 1000)::float8 AS la FROM ${t} WHERE id = ANY($1::uuid[])`,
            ).join(' UNION ALL '),
            [ids],
          );
          const end = wallNow();
          for (const r of rows ?? []) samples.push({ at, end, id: r.id, lastAccessed: Number(r.la) });
        }
        const at = wallNow();
        const rows = await q<{ user_id: string; n: number }>(
          'SELECT user_id, count(*)::integer AS n FROM public.sessions WHERE user_id = ANY($1::text[]) GROUP BY user_id',
          [CAPPED_USERS],
        );
        for (const r of rows ?? []) counts.push({ at, user: r.user_id, count: Number(r.n) });
        await sleep(250);
      }
    })();
    await Promise.all(
      apps.map((a, i) =>
        a.call('start', {
          durationMs: o.durationMs,
          seed: (o.seed * 31 + i * 7919) >>> 0,
          loops: o.loopsPerApp ?? 4,
          thinkMs: o.thinkMs ?? [4, 12],
          cappedUsers: CAPPED_USERS,
          freeUsers: FREE_USERS,
          idleUsers: IDLE_USERS,
        }),
      ),
    );
    log(`load started for ${(o.durationMs / 1000).toFixed(0)} s (seed ${o.seed})`);

    // Touches for idle-expired sessions, as a peer holding the worker's secret (or a manager restoring old
    // touches) could send them: claimed a minute ahead, and to the worker with the run's first access
    // back-dated to the session's newest recorded access. The receivers must drop them; probing reads follow.
    injectorPool = new pg.Pool({ connectionString: db.url, max: 2, connectionTimeoutMillis: 3000, application_name: 'chaos-admin' });
    injectorPool.on('error', () => {});
    const injector = new SessionManager(drizzle(injectorPool), {
      schemaName: 'idle',
      inactivityDuration: IDLE_MS,
      clock: () => Math.floor(wallNow()),
    });
    const idleWorker = workers[IDLE_WORKER] as WorkerSlot;
    let injectSeq = 0;
    const probes = new Set<Promise<unknown>>();
    const injectTouch = async (sid: string, token: string, target: TouchOp['target'], newest: number): Promise<TouchOp> => {
      const start = wallNow();
      const op: TouchOp = {
        kind: 'touch',
        proc: APPS,
        seq: ++injectSeq,
        start,
        end: start,
        status: 'ok',
        phase: 'load',
        sid,
        token,
        target,
        value: Math.floor(start) + 59_000,
        ...(target === 'worker' ? { first: Number.isFinite(newest) ? Math.floor(newest) : 1 } : {}),
        recvLo: start,
        recvHi: start,
      };
      if (target === 'worker') {
        try {
          const res = await fetch(`${idleWorker.url}/v1/touches`, {
            method: 'POST',
            headers: { authorization: `Bearer ${SECRET}`, 'content-type': 'application/json' },
            body: JSON.stringify({ touches: [[sid, op.value, op.first]] }),
            signal: AbortSignal.timeout(2000),
          });
          const body = (await res.json().catch(() => ({}))) as { accepted?: number; error?: { code?: string; message?: string } };
          if (res.ok) op.result = { accepted: Number(body.accepted ?? 0) };
          else {
            op.status = 'error';
            op.code = body.error?.code ?? `HTTP_${res.status}`;
            op.error = body.error?.message ?? `worker answered ${res.status}`;
          }
        } catch (e) {
          op.status = 'timeout';
          op.error = String((e as Error)?.message ?? e);
        }
      } else {
        injector.takePendingTouches();
        injector.restoreTouches([[sid, op.value, op.value]]);
        try {
          op.result = { accepted: (await injector.flushTouches()).rows };
        } catch (e) {
          injector.takePendingTouches(); // not retried later, when the session may have changed
          op.status = e instanceof SessionError && e.code !== 'DATABASE_UNAVAILABLE' ? 'error' : 'timeout';
          if (e instanceof SessionError) op.code = e.code;
          op.error = String((e as Error)?.message ?? e).slice(0, 300);
        }
      }
      op.end = wallNow();
      op.recvHi = op.end;
      ops.push(op);
      return op;
    };
    const injectRng = rng.fork(3);
    const injectLoop = (async () => {
      while (!stopping && wallNow() < deadline - 3000) {
        await sleep(injectRng.int(1200, 2000));
        const now = wallNow();
        // Idle-expired for longer than the worker's touchMaxHold: no first access it could vouch for is alive.
        const candidates = [...idle.entries()].filter(
          ([, s]) => !s.dead && s.injected === 0 && s.newest + IDLE_MS + TOUCH_MAX_HOLD + 1000 <= now,
        );
        const picks = injectRng.shuffle(candidates).slice(0, 2);
        if (picks.length === 0) continue;
        const targets: Target[] = [];
        for (const [i, [sid, s]] of picks.entries()) {
          s.injected++;
          watched.set(sid, wallNow() + 6000);
          await injectTouch(sid, s.token, i === 0 ? 'worker' : 'manager', s.newest);
          targets.push({ token: s.token, sid, pool: 'idle' });
        }
        // After the worker's next flush: every app reads them (through its cache), one forces a database read.
        const forced = injectRng.int(0, APPS - 1);
        const p = sleep(FLUSH_INTERVAL + 1500).then(() =>
          Promise.all(
            apps.map((a, i) =>
              a
                .call('probe', { targets, force: false }, 30_000)
                .then(() => i === forced && a.call('probe', { targets, force: true }, 30_000)),
            ),
          ),
        );
        const tracked = p.catch(() => {}).finally(() => probes.delete(tracked));
        probes.add(tracked);
      }
    })();

    const inject = async (kind: FaultKind): Promise<Fault> => {
      const start = wallNow();
      const f: Fault = { kind, start, end: start, ok: true };
      try {
        if (kind === 'terminate-listener') {
          const rows =
            (await q<{ pid: number }>('SELECT pid FROM pg_stat_activity WHERE application_name = $1', [LISTENER_APP_NAME])) ?? [];
          if (rows.length === 0) throw new Error('no listener connected');
          const pid = faultRng.pick(rows).pid;
          const r = await q<{ ok: boolean }>('SELECT pg_terminate_backend($1) AS ok', [pid]);
          f.detail = `pid ${pid} (of ${rows.length} listeners): ${r?.[0]?.ok ? 'terminated' : 'not terminated'}`;
          f.ok = r?.[0]?.ok === true;
        } else if (kind === 'terminate-backends') {
          const rows =
            (await q<{ pid: number; app: string }>(
              `SELECT pid, application_name AS app FROM pg_stat_activity
               WHERE datname = 'test' AND backend_type = 'client backend' AND pid <> pg_backend_pid() AND application_name <> 'chaos-admin'`,
            )) ?? [];
          const victims = faultRng.shuffle(rows).slice(0, 3);
          for (const v of victims) await q('SELECT pg_terminate_backend($1)', [v.pid]);
          f.detail = `${victims.map((v) => `${v.pid}(${v.app || 'worker pool'})`).join(', ')} of ${rows.length} backends`;
          f.ok = victims.length > 0;
        } else if (kind === 'worker-sigkill' || kind === 'worker-sigterm') {
          const w = faultRng.pick(workers);
          f.target = w.index;
          f.start = wallNow();
          const info = await w.kill(kind === 'worker-sigkill' ? 'SIGKILL' : 'SIGTERM', 10_000);
          const exitedAt = wallNow();
          if (kind === 'worker-sigterm' && (info.forced || info.code !== 0)) {
            processEvents.push({
              at: wallNow(),
              process: `worker ${w.index}`,
              kind: 'unclean-stop',
              worker: w.index,
              detail: `SIGTERM: ${info.forced ? 'did not exit in 10 s' : `exit ${info.code ?? info.signal}`}; ${w.logs.slice(-5).join(' | ')}`,
            });
          }
          await sleep(faultRng.int(300, 1000));
          const restartAt = wallNow();
          await w.start();
          f.detail = `worker ${w.index} exit ${info.code ?? info.signal} after ${(exitedAt - f.start).toFixed(0)} ms, ready ${(wallNow() - restartAt).toFixed(0)} ms after restart`;
        } else if (kind === 'proxy-pause') {
          f.detail = `${px.connections()} connections held for ${PAUSE_MS} ms`;
          await px.pause(PAUSE_MS);
        } else if (kind === 'delay-app-responses') {
          f.target = faultRng.int(0, APPS - 1);
          const tag = `app-${f.target}`;
          f.detail = `answers to ${tag} (${px.connections(tag)} connections) held for ${PAUSE_MS} ms`;
          await px.pause(PAUSE_MS, tag, 'responses');
        } else if (kind === 'partition-worker') {
          f.target = faultRng.int(0, WORKERS - 1);
          const tag = `worker-${f.target}`;
          f.detail = `${px.connections(tag)} connections of ${tag} held for ${PAUSE_MS} ms`;
          await px.pause(PAUSE_MS, tag);
        } else if (kind === 'proxy-cut') {
          f.detail = `${px.cut()} connections cut`;
        } else if (kind === 'pg-restart') {
          const t0 = wallNow();
          await db.stop();
          const down = wallNow();
          await sleep(faultRng.int(200, 800));
          await db.start();
          f.detail = `stop ${(down - t0).toFixed(0)} ms, down ${(wallNow() - down).toFixed(0)} ms`;
        }
      } catch (e) {
        f.ok = false;
        f.detail = `${f.detail ?? ''} failed: ${(e as Error).message}`;
        if (kind === 'pg-restart' && !db.running) await db.start().catch(() => {});
      }
      f.end = wallNow();
      return f;
    };

    let bag: FaultKind[] = [];
    while (!stopping) {
      let wait = faultRng.int(gap[0], gap[1]);
      const owed = (o.minFaults ?? 0) - faults.length;
      // Behind the floor: split what is left of the load between the faults still owed (each gets a slice for
      // its gap and its own run), so a slow fault cannot push the last ones past the end of the load.
      if (owed > 0) wait = Math.min(wait, Math.max(0, Math.floor((deadline - 500 - wallNow()) / (owed + 1))));
      if (wallNow() + wait >= deadline - 500 && (owed <= 0 || wallNow() >= deadline - 200)) break;
      await sleep(wait);
      if (bag.length === 0) bag = faultRng.shuffle(o.faultKinds ?? FAULT_KINDS);
      const kind = bag.shift() as FaultKind;
      const f = await inject(kind);
      faults.push(f);
      log(`fault ${kind}${f.ok ? '' : ' (FAILED)'}: ${f.detail ?? ''} [${(f.end - f.start).toFixed(0)} ms]`);
    }
    await sleep(deadline - wallNow());
    await injectLoop;
    await Promise.all([...probes]);
    for (const s of await Promise.all(apps.map((a) => a.call('stopLoad', {}, 60_000)))) appStats.push(s);
    const loadEnd = wallNow();
    log(`load stopped: ${ops.length} operations recorded`);
    // Push the apps' pending touches: the last ones now sit in the workers' buffers. Restart PostgreSQL for
    // longer than a flush interval, so those flushes fail and must be retried (no worker is killed here:
    // nothing may be lost).
    await Promise.all(apps.map((a) => a.call('pushTouches', {}, 30_000)));
    const finalRestart: Fault = {
      kind: 'pg-restart',
      start: wallNow(),
      end: 0,
      ok: true,
      detail: 'after the load, while the workers hold the last touches',
    };
    await db.stop();
    await sleep(FLUSH_INTERVAL + 500);
    await db.start();
    finalRestart.end = wallNow();
    faults.push(finalRestart);
    log(`pg-restart after the load, while the workers hold the last touches [${(finalRestart.end - finalRestart.start).toFixed(0)} ms]`);

    // ---- verification -------------------------------------------------------------------------------------
    await sleep(MAX_STALENESS + 200);
    // Every token ever handed out (dead ones must read as null, live ones as their session).
    const poolOf = new Map<string, Pool>();
    for (const op of ops) if (op.kind === 'create' && op.result) poolOf.set(op.result.id, op.pool ?? 'free');
    const targets: Target[] = [];
    for (const op of ops) {
      if (op.status !== 'ok') continue;
      if (op.kind === 'create' && op.result) targets.push({ token: op.result.token, sid: op.result.id, pool: op.pool ?? 'free' });
      else if (op.kind === 'rotate' && op.result?.newToken)
        targets.push({ token: op.result.newToken, sid: op.sid, pool: poolOf.get(op.sid) ?? 'free' });
    }
    await Promise.all(apps.map((a) => a.call('finalReads', { targets, force: false }, 120_000)));
    await Promise.all(
      apps.map((a, i) => a.call('finalReads', { targets: targets.filter((_, k) => k % APPS === i), force: true }, 120_000)),
    );
    log(`final reads: ${targets.length} tokens, cached in every app and forceRefresh once`);
    const lastEnd = Math.max(...ops.map((x) => x.end));
    const covered = await obs.catchUp(lastEnd, wallNow() + 20_000);
    await obs.stop();
    log(`observer: ${obs.deliveries.length} deliveries, ${obs.failures} failed polls, caught up: ${covered}`);
    for (const s of await Promise.all(apps.map((a) => a.call('shutdown', {}, 60_000)))) appStats.push(s);
    const stops = await Promise.all(workers.map((w) => w.kill('SIGTERM')));
    stops.forEach((info, i) => {
      if (info.forced || info.code !== 0)
        processEvents.push({
          at: wallNow(),
          process: `worker ${i}`,
          kind: 'unclean-stop',
          worker: i,
          detail: `final SIGTERM: ${info.forced ? 'did not exit in 20 s' : `exit ${info.code ?? info.signal}`}`,
        });
    });
    stopping = true;
    await samplerLoop;
    const finalAt = wallNow();
    let rows: { id: string; user_id: string; la: number; exp: number }[] | undefined;
    for (let attempt = 0; attempt < 20 && rows === undefined; attempt++) {
      rows = await q(
        SESSION_TABLES.map(
          (t) =>
            `SELECT id::text AS id, user_id, (extract(epoch from last_accessed) * 1000)::float8 AS la, (extract(epoch from expires_at) * 1000)::float8 AS exp FROM ${t}`,
        ).join(' UNION ALL '),
      );
      if (rows === undefined) await sleep(250);
    }
    if (rows === undefined) throw new Error('could not read the final state of the database');

    const history: History = {
      config: {
        maxStalenessMs: MAX_STALENESS,
        clockSlackMs: CLOCK_SLACK_MS,
        cap: CAP,
        cappedUsers: CAPPED_USERS,
        // touch push interval + worker flush interval + the longest outage a flush can wait out (a PostgreSQL
        // restart or a worker restart, a few seconds here) + margin.
        touchLossWindowMs: TOUCH_INTERVAL + FLUSH_INTERVAL + Math.max(3000, ...faults.map((f) => f.end - f.start)) + 3000,
        touchMaxHoldMs: TOUCH_MAX_HOLD,
        procWorker: [...MODE_WORKER, -1],
        clockSkewMs: [...skews, 0],
        procMode: [...MODES, 'runner'],
        idleWorker: IDLE_WORKER,
      },
      loadStart,
      loadEnd,
      ops,
      faults,
      deliveries: obs.deliveries,
      samples,
      counts,
      processEvents,
      final: {
        at: finalAt,
        sessions: rows.map((r) => ({ id: r.id, userId: r.user_id, lastAccessed: Number(r.la), expiresAt: Number(r.exp) })),
      },
    };
    const check = checkHistory(history);
    const summary = summarize(history, check, appStats);
    return { history, check, summary, text: formatSummary(summary) };
  } finally {
    await cleanup();
    active.delete(cleanup);
  }
}
