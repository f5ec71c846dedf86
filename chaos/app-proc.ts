// One chaos app process (a load driver). Its mode (env MODE) is how an app keeps its cache fresh:
//   stream     — SyncClients in stream mode (Node, Bun, Deno);
//   poll       — SyncClients in poll mode, asked before every read as the middleware asks them (Workers), and
//                with DIRECT_FALLBACK=0 without the direct database fallback: its cache then only ever
//                learns changes from the worker;
//   standalone — no sync client: cached entries are trusted for maxStaleness, touches are flushed by the
//                managers themselves (startBackgroundTasks);
//   http       — a Hono app with the session middleware (chaos/http-app.ts, poll-mode SyncClient) on a real
//                HTTP server, driven by browser-like clients with real cookies: login, reads, writes (some
//                rotating in the same request), rotations, logout, and replays of cookies another process
//                rotated away or revoked. Requests carry a same-origin Origin, so the CSRF check passes.
// Every mode has three SessionManagers over one node-postgres pool through the chaos proxy: capped users
// (maxSessions CAP), free users, and the idle pool (schema `idle`, inactivityDuration IDLE_MS, its own
// worker). The managers' clock runs CLOCK_SKEW ms ahead of the reference clock the history is recorded on
// (negative: behind). Operations are random for the run's duration and every one is recorded (start/end on
// the reference clock, the clock value the library used, result or typed error) for the parent, which relays
// the sessions other processes created, rotated or revoked: reads, writes and Sessions held from earlier
// reads then hit other processes' changes, and a Session or cookie whose token another process rotated away
// or revoked is written through on purpose.
//
// Driven over IPC by chaos/procs.ts: {id, cmd, args} → {id, ok, value | error}; events {type: 'ops' | 'reg'}.
import { AsyncLocalStorage } from 'node:async_hooks';
import type { AddressInfo } from 'node:net';
import { serve } from '@hono/node-server';
import { drizzle } from 'drizzle-orm/node-postgres';
import pg from 'pg';
import { SessionError } from '../src/core/errors.ts';
import { SessionManager } from '../src/core/manager.ts';
import type { Session } from '../src/core/session.ts';
import { SyncClient } from '../src/sync/client.ts';
import { type ChaosInfo, COOKIE_NAME, createChaosApp, type OpContext } from './http-app.ts';
import { Rng } from './rng.ts';
import type { CreateOp, DeleteAllOp, DeleteOp, Op, Pool, ReadOp, RotateOp, UpdateOp } from './types.ts';
import { wallNow } from './types.ts';

export type AppMode = 'stream' | 'poll' | 'standalone' | 'http';

const env = process.env;
const PROC = Number(env.PROC ?? 0);
const MODE = (env.MODE ?? 'stream') as AppMode;
const CAP = Number(env.CAP ?? 3);
const MAX_STALENESS = Number(env.MAX_STALENESS ?? 1000);
const OP_TIMEOUT = Number(env.OP_TIMEOUT ?? 10_000);
const SKEW = Number(env.CLOCK_SKEW ?? 0);
const IDLE_MS = Number(env.IDLE_MS ?? 4000);
const DIRECT_FALLBACK = env.DIRECT_FALLBACK !== '0';
const TOUCH_INTERVAL = Number(env.TOUCH_INTERVAL ?? 500);
/** An idle-pool session is picked for load during this long after it was registered, then left to idle out. */
const IDLE_PICK_WINDOW = 20_000;
const POOLS: readonly Pool[] = ['capped', 'free', 'idle'];

/** Registry events shared between app processes (through the parent). */
export type RegEvent =
  | { kind: 'created'; id: string; token: string; user: string; pool: Pool; expiresAt: number }
  | { kind: 'rotated'; id: string; oldToken: string; newToken: string }
  | { kind: 'dead'; ids: string[] };

export interface LoadOptions {
  durationMs: number;
  seed: number;
  loops: number;
  thinkMs: [number, number];
  cappedUsers: string[];
  freeUsers: string[];
  idleUsers: string[];
}

export interface Target {
  token: string;
  sid: string;
  pool: Pool;
}

const pool = new pg.Pool({
  connectionString: env.DATABASE_URL,
  max: 10,
  connectionTimeoutMillis: 5000,
  application_name: `chaos-app-${PROC}`,
});
pool.on('error', () => {});
const db = drizzle(pool);

// The managers' clock: the reference clock (whole ms) + this process's skew. The first value it gives inside
// a library call (timed) is what the call used as "now": getSession's expiry check and touch, createSession's
// created_at, the time an update or rotation checks expiry against.
const clockCtx = new AsyncLocalStorage<{ first?: number }>();
const clock = () => {
  const t = Math.floor(wallNow()) + SKEW;
  const c = clockCtx.getStore();
  if (c !== undefined && c.first === undefined) c.first = t;
  return t;
};
function timed<T>(f: () => Promise<T>): { promise: Promise<T>; clockAt: () => number | undefined } {
  const c: { first?: number } = {};
  const promise = clockCtx.run(c, f);
  return { promise, clockAt: () => c.first };
}

// Which ids a create evicted and a delete removed: the store's answers, observed per operation.
const opContext = new AsyncLocalStorage<OpContext>();

function makeManager(p: Pool): SessionManager {
  const m = new SessionManager(db, {
    maxSessions: p === 'capped' ? CAP : 1_000_000,
    maxStaleness: MAX_STALENESS,
    clock,
    ...(p === 'idle' ? { schemaName: 'idle', inactivityDuration: IDLE_MS } : {}),
    // Standalone: the managers write their own touches (startBackgroundTasks), as often as a worker would.
    ...(MODE === 'standalone' ? { lastAccessUpdateInterval: 2 * TOUCH_INTERVAL } : {}),
  });
  const store = m.store;
  const create = store.create.bind(store);
  store.create = async (p) => {
    const created = await create(p);
    const ctx = opContext.getStore();
    if (ctx && 'evicted' in created) ctx.evicted = [...(ctx.evicted ?? []), ...created.evicted];
    // A sign-in over an old session deletes it in the create's own statement (createSession's `replaces`).
    if (ctx && created.replaced !== undefined) ctx.deleted = [...(ctx.deleted ?? []), ...created.replaced];
    return created;
  };
  // Every Store method that deletes sessions and answers their ids (deleteWhere, deleteByToken, ...), whatever
  // the store's internals become; deleteSession's own answer cross-checks it (deletedIds).
  const methods = store as unknown as Record<string, unknown>;
  const proto = Object.getPrototypeOf(store) as Record<string, unknown>;
  for (const name of Object.getOwnPropertyNames(proto)) {
    if (!/^delete/.test(name) || /Attribute/.test(name) || typeof proto[name] !== 'function') continue;
    const f = (proto[name] as (...a: unknown[]) => Promise<unknown>).bind(store);
    methods[name] = async (...a: unknown[]) => {
      const r = await f(...a);
      const ctx = opContext.getStore();
      if (ctx && Array.isArray(r)) ctx.deleted = [...(ctx.deleted ?? []), ...(r as string[])];
      return r;
    };
  }
  return m;
}

const managers: Record<Pool, SessionManager> = { capped: makeManager('capped'), free: makeManager('free'), idle: makeManager('idle') };
const syncStats = { errors: 0, applied: 0, resets: 0, bySource: {} as Record<string, number> };
const syncMode = MODE === 'stream' ? 'stream' : MODE === 'standalone' ? undefined : 'poll';
const syncs = new Map<Pool, SyncClient>();
/** Made once the workers listen (the parent forks this process while they start). */
function startSync(): void {
  if (syncMode === undefined || syncs.size > 0) return;
  for (const p of POOLS) {
    syncs.set(
      p,
      new SyncClient(managers[p], {
        workerUrl: (p === 'idle' ? env.IDLE_WORKER_URL : env.WORKER_URL) as string,
        secret: env.SECRET,
        mode: syncMode,
        directFallback: DIRECT_FALLBACK,
        touchInterval: TOUCH_INTERVAL,
        touchFallbackInterval: Number(env.TOUCH_FALLBACK_INTERVAL ?? 2000),
        requestTimeout: 2000,
        onApply: ({ reset, source }) => {
          syncStats.applied++;
          if (reset) syncStats.resets++;
          syncStats.bySource[source] = (syncStats.bySource[source] ?? 0) + 1;
        },
        onError: () => {
          syncStats.errors++;
        },
      }),
    );
  }
  if (syncMode === 'stream') for (const s of syncs.values()) s.start();
}
if (MODE === 'standalone') {
  for (const m of Object.values(managers))
    m.startBackgroundTasks(() => {
      syncStats.errors++;
    });
}

/** Poll mode: what the middleware does before a read (an inline poll when the cache is stale). */
async function beforeRead(p: Pool): Promise<void> {
  if (syncMode !== 'poll') return;
  const due = (syncs.get(p) as SyncClient).beforeRead();
  if (due.promise === undefined) return;
  if (due.mustAwait) await due.promise.catch(() => {});
  else due.promise.catch(() => {});
}

/** Poll mode: what the middleware does after a response (send the touches when due). */
function afterOp(): void {
  if (syncMode !== 'poll') return;
  for (const s of syncs.values()) s.pushTouchesIfDue()?.catch(() => {});
}

// ---- the registry of sessions this process knows (its own and those relayed by the parent) ----------

interface Known {
  id: string;
  user: string;
  pool: Pool;
  token: string;
  expiresAt: number;
  alive: boolean;
  registeredAt: number;
}
class AliveList {
  readonly ids: string[] = [];
  readonly #index = new Map<string, number>();
  add(id: string): void {
    if (this.#index.has(id)) return;
    this.#index.set(id, this.ids.length);
    this.ids.push(id);
  }
  remove(id: string): void {
    const i = this.#index.get(id);
    if (i === undefined) return;
    const last = this.ids.pop() as string;
    if (last !== id) {
      this.ids[i] = last;
      this.#index.set(last, i);
    }
    this.#index.delete(id);
  }
}
const known = new Map<string, Known>();
/** Capped and free sessions believed alive. */
const aliveMain = new AliveList();
/** Idle-pool sessions still picked for load (registered less than IDLE_PICK_WINDOW ago). */
const aliveIdle = new AliveList();
const deadTokens: { token: string; sid: string; pool: Pool }[] = [];
const MAX_DEAD_TOKENS = 400;

function rememberDeadToken(k: Known, token: string): void {
  deadTokens.push({ token, sid: k.id, pool: k.pool });
  if (deadTokens.length > MAX_DEAD_TOKENS) deadTokens.splice(0, deadTokens.length - MAX_DEAD_TOKENS);
}

function markDead(id: string): void {
  const k = known.get(id);
  if (k === undefined || !k.alive) return;
  k.alive = false;
  rememberDeadToken(k, k.token);
  aliveMain.remove(id);
  aliveIdle.remove(id);
}

function applyReg(ev: RegEvent): void {
  if (ev.kind === 'created') {
    if (known.has(ev.id)) return;
    known.set(ev.id, {
      id: ev.id,
      user: ev.user,
      pool: ev.pool,
      token: ev.token,
      expiresAt: ev.expiresAt,
      alive: true,
      registeredAt: wallNow(),
    });
    if (ev.pool === 'idle') aliveIdle.add(ev.id);
    else aliveMain.add(ev.id);
  } else if (ev.kind === 'rotated') {
    const k = known.get(ev.id);
    if (k !== undefined && k.token === ev.oldToken) {
      k.token = ev.newToken;
      rememberDeadToken(k, ev.oldToken);
    }
  } else {
    for (const id of ev.ids) markDead(id);
  }
  // A Session or cookie this process holds may just have died: write through it, now or a little later.
  if (ev.kind === 'rotated') staleSoon([ev.id], ev.oldToken);
  else if (ev.kind === 'dead') staleSoon(ev.ids);
}

function publish(ev: RegEvent): void {
  applyReg(ev);
  process.send?.({ type: 'reg', ev });
}

function pickAlive(rng: Rng): Known | undefined {
  // The capped users are the busy ones: 30% of the picks go to their (few) sessions.
  const all = aliveMain.ids;
  const busy = rng.chance(0.3) ? all.filter((id) => (known.get(id) as Known).pool === 'capped') : all;
  const from = busy.length > 0 ? busy : all;
  for (let tries = 0; tries < 5 && from.length > 0; tries++) {
    const k = known.get(rng.pick(from)) as Known;
    if (k.expiresAt > clock()) return k;
    markDead(k.id); // expired (on this process's clock): it becomes a probe of a dead token
  }
  return undefined;
}

function pickIdle(rng: Rng): Known | undefined {
  for (let tries = 0; tries < 5 && aliveIdle.ids.length > 0; tries++) {
    const k = known.get(rng.pick(aliveIdle.ids)) as Known;
    if (wallNow() - k.registeredAt < IDLE_PICK_WINDOW) return k;
    aliveIdle.remove(k.id); // left alone from now on: it idles out (probes and injected touches still come)
  }
  return undefined;
}

const targetOf = (k: Known): Target => ({ token: k.token, sid: k.id, pool: k.pool });

// ---- recording --------------------------------------------------------------------------------------

let seq = 0;
let buffer: Op[] = [];
function record(op: Op): void {
  buffer.push(op);
}
function flushOps(): void {
  if (buffer.length === 0) return;
  const ops = buffer;
  buffer = [];
  process.send?.({ type: 'ops', ops });
}
const flushTimer = setInterval(flushOps, 100);

type Outcome<T> = { status: 'ok'; value: T } | { status: 'error'; code?: string; error: string } | { status: 'timeout'; error: string };

/**
 * The ids a deleteSession removed, as observed at the store; its own answer must agree (a store whose
 * deleting method the wrappers missed would otherwise make deleted sessions look alive to the checker).
 */
function deletedIds(deleted: boolean, ctx: OpContext): string[] {
  const ids = ctx.deleted ?? [];
  if (deleted !== ids.length > 0)
    throw new Error(`chaos: deleteSession answered ${deleted} but the store was seen deleting [${ids.join(', ')}]`);
  return ids;
}

/** Runs one library call with a deadline; classifies what it threw (typed SessionError or not). */
async function guard<T>(p: Promise<T>): Promise<Outcome<T>> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<'timeout'>((r) => {
    timer = setTimeout(() => r('timeout'), OP_TIMEOUT);
  });
  try {
    const v = await Promise.race([p, timeout]);
    if (v === 'timeout') {
      p.catch(() => {});
      return { status: 'timeout', error: `no answer within ${OP_TIMEOUT} ms` };
    }
    return { status: 'ok', value: v as T };
  } catch (e) {
    if (e instanceof SessionError) return { status: 'error', code: e.code, error: e.message.slice(0, 300) };
    return { status: 'error', error: `${(e as Error)?.name ?? 'Error'}: ${String((e as Error)?.message ?? e).slice(0, 300)}` };
  } finally {
    clearTimeout(timer);
  }
}

function base<K extends Op['kind']>(kind: K, phase: 'load' | 'final') {
  return { kind, proc: PROC, seq: ++seq, start: 0, end: 0, status: 'ok' as const, phase };
}

function settle(op: Op, o: Outcome<unknown>): void {
  op.end = wallNow();
  op.status = o.status;
  if (o.status !== 'ok') {
    op.error = o.error;
    if (o.status === 'error' && o.code !== undefined) op.code = o.code;
  }
}

function attrsOf(s: Session): Record<string, [string, number]> {
  const out: Record<string, [string, number]> = {};
  for (const key of s.keys()) out[key] = [String(s.get(key)), s.attributeVersion(key)];
  return out;
}

// ---- Sessions held from earlier reads -----------------------------------------------------------------

interface Held {
  s: Session;
  pool: Pool;
}
const held: Held[] = [];
const MAX_HELD = 40;
let procRng = new Rng(PROC + 1);
let stopping = false;
let loadRunning = false;
const scheduled = new Set<Promise<void>>();

function hold(s: Session, p: Pool): void {
  if (held.some((h) => h.s === s)) return;
  if (held.length >= MAX_HELD) held.splice(procRng.int(0, held.length - 1), 1);
  held.push({ s, pool: p });
}

/** Runs `f` after `ms` unless the load is over by then; stopLoad waits for it. */
function later(ms: number, f: () => Promise<void>): void {
  const p = new Promise<void>((r) => setTimeout(r, ms))
    .then(() => (loadRunning && !stopping ? f() : undefined))
    .catch(() => {})
    .finally(() => scheduled.delete(p));
  scheduled.add(p);
}

/** Sessions (held) or cookies (http) of these ids may be dead now: use them, within maxStaleness and after. */
function staleSoon(ids: string[], oldToken?: string): void {
  if (!loadRunning || stopping) return;
  for (const id of ids) {
    if (MODE === 'http') {
      const token = oldToken ?? recentTokenOf.get(id);
      if (token !== undefined && recentTokens.has(token) && procRng.chance(0.8)) {
        const rng = procRng.fork(seq);
        later(procRng.int(0, 1500), () => httpStale(rng, { token, sid: id, pool: 'free' }));
      }
      continue;
    }
    for (const h of held) {
      if (h.s.id !== id || !procRng.chance(0.8)) continue;
      const rng = procRng.fork(seq);
      later(procRng.int(0, 1500), () => doHeld(rng, h));
    }
  }
}

/** A write, rotation or delete through a Session loaded earlier (its token may have died since). */
async function doHeld(rng: Rng, h: Held): Promise<void> {
  const i = held.indexOf(h);
  if (i === -1) return; // in use, or already dropped
  held.splice(i, 1);
  const m = managers[h.pool];
  const s = h.s;
  const action = rng.weighted({ update: 6, rotate: 2, delete: 1 });
  if (action === 'update') {
    const key = rng.pick(['a', 'b', 'c']);
    const mode = rng.weighted({ plain: 2, version: 1, attrVersion: 1 } as const);
    const op: UpdateOp = {
      ...base('update', 'load'),
      sid: s.id,
      token: s._token(),
      mode,
      values: {},
      base: { version: s.version, vers: { [key]: s.attributeVersion(key) } },
      held: true,
    };
    op.values[key] = `${PROC}.${op.seq}.${key}`;
    s.set(key, op.values[key]);
    op.start = wallNow();
    const t = timed(() => m.updateSession(s, { checkVersion: mode === 'version', checkAttributeVersion: mode === 'attrVersion' }));
    const r = await guard(t.promise);
    settle(op, r);
    op.clockAt = t.clockAt();
    if (r.status === 'ok') op.result = { version: r.value.version, vers: { [key]: r.value.attributeVersion(key) } };
    record(op);
    // Only a clean Session is held again (a failed one keeps its changes pending).
    if (r.status === 'ok') held.push(h);
    // The same token read again a little later (past maxStaleness, sometimes): a write through a dead token
    // must not have brought it back.
    const target = { token: op.token, sid: s.id, pool: h.pool };
    later(rng.int(300, 1800), async () => {
      await doRead(target, { force: false, touch: true, origin: 'read', phase: 'load' });
    });
  } else if (action === 'rotate') {
    const op: RotateOp = { ...base('rotate', 'load'), sid: s.id, token: s._token(), bySession: true, held: true };
    op.start = wallNow();
    const t = timed(() => m.rotate(s));
    const r = await guard(t.promise);
    settle(op, r);
    op.clockAt = t.clockAt();
    if (r.status === 'ok') {
      op.result = r.value === null ? { rotated: false } : { rotated: true, newToken: r.value.token, version: r.value.session.version };
    }
    record(op);
    if (op.result?.rotated) {
      publish({ kind: 'rotated', id: s.id, oldToken: op.token, newToken: op.result.newToken as string });
      held.push(h); // now bound to the new token
    }
  } else {
    const op: DeleteOp = { ...base('delete', 'load'), sid: s.id, token: s._token(), bySession: true, held: true };
    const ctx: OpContext = {};
    op.start = wallNow();
    const r = await guard(opContext.run(ctx, () => m.deleteSession(s)));
    settle(op, r);
    if (r.status === 'ok') op.result = { ids: deletedIds(r.value, ctx) };
    record(op);
    if (op.result && op.result.ids.length > 0) publish({ kind: 'dead', ids: op.result.ids });
  }
  afterOp();
}

// ---- operations -------------------------------------------------------------------------------------

async function doRead(
  target: { token: string; sid?: string; pool: Pool },
  o: { force: boolean; touch: boolean; origin: ReadOp['origin']; phase: 'load' | 'final' },
): Promise<Session | null | undefined> {
  const op: ReadOp = { ...base('read', o.phase), token: target.token, sid: target.sid, force: o.force, touch: o.touch, origin: o.origin };
  const m = managers[target.pool];
  op.start = wallNow();
  await beforeRead(target.pool);
  const t = timed(() => m.getSession(target.token, { forceRefresh: o.force, touch: o.touch }));
  const r = await guard(t.promise);
  settle(op, r);
  let s: Session | null | undefined;
  if (r.status === 'ok') {
    s = r.value;
    const clockAt = t.clockAt();
    op.result =
      s === null
        ? { found: false, clockAt }
        : { found: true, id: s.id, version: s.version, attrs: attrsOf(s), clockAt, ...(o.touch ? { touchAt: clockAt } : {}) };
  }
  record(op);
  afterOp();
  return s;
}

async function doCreate(rng: Rng, opts: LoadOptions, p: Pool): Promise<void> {
  const user = rng.pick(p === 'capped' ? opts.cappedUsers : p === 'idle' ? opts.idleUsers : opts.freeUsers);
  const op: CreateOp = { ...base('create', 'load'), user, attrs: {}, expiresAt: 0, pool: p, ...(p === 'idle' ? { idleMs: IDLE_MS } : {}) };
  op.attrs = { a: `${PROC}.${op.seq}.a`, b: `${PROC}.${op.seq}.b` };
  const short = p !== 'idle' && rng.chance(0.15);
  const ctx: OpContext = {};
  op.start = wallNow();
  // On this process's clock, as the library reads it.
  op.expiresAt = clock() + (short ? rng.int(2000, 10_000) : 3_600_000);
  const t = timed(() => opContext.run(ctx, () => managers[p].createSession(user, op.attrs, { expiresAt: op.expiresAt })));
  const r = await guard(t.promise);
  settle(op, r);
  if (r.status === 'ok') {
    op.result = {
      id: r.value.session.id,
      token: r.value.token,
      version: r.value.session.version,
      at: t.clockAt() as number,
      evicted: ctx.evicted ?? [],
    };
  }
  record(op);
  if (op.result) {
    publish({ kind: 'created', id: op.result.id, token: op.result.token, user, pool: p, expiresAt: op.expiresAt });
    if (op.result.evicted.length > 0) publish({ kind: 'dead', ids: op.result.evicted });
  }
  afterOp();
}

async function doUpdate(rng: Rng, k: Known): Promise<void> {
  const target = targetOf(k);
  let s = await doRead(target, { force: false, touch: true, origin: 'update', phase: 'load' });
  const mode = rng.weighted({ plain: 2, version: 1, attrVersion: 1 } as const);
  const keys = rng.chance(0.3) ? rng.shuffle(['a', 'b', 'c']).slice(0, 2) : [rng.pick(['a', 'b', 'c'])];
  for (let attempt = 0; s && attempt < 4; attempt++) {
    const op: UpdateOp = {
      ...base('update', 'load'),
      sid: k.id,
      token: s._token(),
      mode,
      values: {},
      base: { version: s.version, vers: {} },
    };
    for (const key of keys) {
      op.values[key] = `${PROC}.${op.seq}.${key}`;
      op.base.vers[key] = s.attributeVersion(key);
      s.set(key, op.values[key]);
    }
    const session = s;
    op.start = wallNow();
    const t = timed(() =>
      managers[k.pool].updateSession(session, { checkVersion: mode === 'version', checkAttributeVersion: mode === 'attrVersion' }),
    );
    const r = await guard(t.promise);
    settle(op, r);
    op.clockAt = t.clockAt();
    if (r.status === 'ok') {
      const vers: Record<string, number> = {};
      for (const key of keys) vers[key] = r.value.attributeVersion(key);
      op.result = { version: r.value.version, vers };
    }
    record(op);
    afterOp();
    // Not found: deleted, expired, idle — or its token was rotated away by someone (the session lives on).
    if (r.status === 'error' && r.code === 'SESSION_NOT_FOUND' && k.token === op.token && k.pool !== 'idle') markDead(k.id);
    if (!(r.status === 'error' && r.code === 'VERSION_CONFLICT')) return;
    s = await doRead(target, { force: true, touch: true, origin: 'update', phase: 'load' });
  }
}

async function doRotate(rng: Rng): Promise<void> {
  const k = pickAlive(rng);
  if (k === undefined) return;
  const op: RotateOp = { ...base('rotate', 'load'), sid: k.id, token: k.token };
  op.start = wallNow();
  const t = timed(() => managers[k.pool].rotate(op.token));
  const r = await guard(t.promise);
  settle(op, r);
  op.clockAt = t.clockAt();
  if (r.status === 'ok') {
    op.result = r.value === null ? { rotated: false } : { rotated: true, newToken: r.value.token, version: r.value.session.version };
  }
  record(op);
  if (op.result?.rotated) publish({ kind: 'rotated', id: k.id, oldToken: op.token, newToken: op.result.newToken as string });
  afterOp();
}

async function doDelete(rng: Rng): Promise<void> {
  const dead = deadTokens.length > 0 && rng.chance(0.1) ? rng.pick(deadTokens) : undefined;
  const k = dead === undefined ? pickAlive(rng) : undefined;
  const target = dead ?? (k ? targetOf(k) : undefined);
  if (target === undefined) return;
  const op: DeleteOp = { ...base('delete', 'load'), sid: target.sid, token: target.token };
  const ctx: OpContext = {};
  op.start = wallNow();
  const r = await guard(opContext.run(ctx, () => managers[target.pool].deleteSession(op.token)));
  settle(op, r);
  if (r.status === 'ok') op.result = { ids: deletedIds(r.value, ctx) };
  record(op);
  if (op.result && op.result.ids.length > 0) publish({ kind: 'dead', ids: op.result.ids });
  afterOp();
}

async function doDeleteAll(rng: Rng, opts: LoadOptions): Promise<void> {
  const capped = rng.chance(0.5);
  const user = rng.pick(capped ? opts.cappedUsers : opts.freeUsers);
  const op: DeleteAllOp = { ...base('deleteAll', 'load'), user };
  const ctx: OpContext = {};
  op.start = wallNow();
  const r = await guard(opContext.run(ctx, () => managers[capped ? 'capped' : 'free'].deleteAllUserSessions(user)));
  settle(op, r);
  if (r.status === 'ok') {
    const ids = ctx.deleted ?? [];
    if (ids.length !== r.value)
      throw new Error(`chaos: deleteAllUserSessions answered ${r.value} but the store was seen deleting ${ids.length}`);
    op.result = { ids };
  }
  record(op);
  if (op.result && op.result.ids.length > 0) publish({ kind: 'dead', ids: op.result.ids });
  afterOp();
}

async function doReadStep(rng: Rng): Promise<void> {
  if (deadTokens.length > 0 && rng.chance(0.12)) {
    await doRead(rng.pick(deadTokens), { force: rng.chance(0.2), touch: true, origin: 'read', phase: 'load' });
    return;
  }
  const k = pickAlive(rng);
  if (k === undefined) return;
  const s = await doRead(targetOf(k), { force: rng.chance(0.1), touch: true, origin: 'read', phase: 'load' });
  if (s && rng.chance(0.2)) hold(s, k.pool);
}

/** The idle pool: few sessions, read and written for a while after their creation, then left to idle out. */
async function doIdleStep(rng: Rng, opts: LoadOptions): Promise<void> {
  if (aliveIdle.ids.length < 10 || rng.chance(0.12)) return doCreate(rng, opts, 'idle');
  const k = pickIdle(rng);
  if (k === undefined) return;
  if (rng.chance(0.8)) {
    const s = await doRead(targetOf(k), { force: rng.chance(0.1), touch: true, origin: 'read', phase: 'load' });
    if (s && rng.chance(0.1)) hold(s, 'idle');
  } else await doUpdate(rng, k);
}

async function doHeldStep(rng: Rng): Promise<void> {
  if (held.length === 0) return;
  await doHeld(rng, rng.pick(held));
}

// ---- HTTP mode: browser-like clients of the chaos app ---------------------------------------------------

interface Jar {
  token: string;
  sid: string;
}
const jars: Jar[] = [];
const MAX_JARS = 40;
/** Tokens sent recently (a stale replay of one hits this process's cache), and the token last sent per id. */
const recentTokens = new Map<string, number>();
const recentTokenOf = new Map<string, string>();
let httpBase = '';
/** Numbers the values HTTP writes send (each value unique in the run). */
let httpValues = 0;
let server: ReturnType<typeof serve> | undefined;

function noteToken(token: string, sid: string | undefined): void {
  recentTokens.set(token, wallNow());
  if (sid !== undefined) recentTokenOf.set(sid, token);
  if (recentTokens.size > 2000) {
    const cutoff = wallNow() - 3000;
    for (const [t, at] of recentTokens) if (at < cutoff) recentTokens.delete(t);
  }
  if (recentTokenOf.size > 2000) recentTokenOf.clear();
}

interface HttpAnswer {
  status: number;
  body: { code?: string; message?: string; error?: string; id?: string; version?: number; at?: number };
  info: ChaosInfo;
  /** The session cookie the response set: a token, null when it cleared it, undefined when untouched. */
  cookie: string | null | undefined;
  /** A token the response set with Max-Age=0 (its session expired before the response was written). */
  expiredToken?: string;
}

async function request(
  rng: Rng,
  method: 'GET' | 'POST',
  path: string,
  token: string | undefined,
  body?: unknown,
): Promise<{ ok: true; a: HttpAnswer } | { ok: false; error: string }> {
  const headers: Record<string, string> = { origin: httpBase };
  if (rng.chance(0.5)) headers['sec-fetch-site'] = 'same-origin';
  if (token !== undefined) headers.cookie = `${COOKIE_NAME}=${token}`;
  if (body !== undefined) headers['content-type'] = 'application/json';
  try {
    const res = await fetch(`${httpBase}${path}`, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      signal: AbortSignal.timeout(OP_TIMEOUT),
    });
    const text = await res.text();
    let parsed: HttpAnswer['body'];
    try {
      parsed = JSON.parse(text);
    } catch {
      parsed = { error: text.slice(0, 200) };
    }
    let cookie: string | null | undefined;
    let expiredToken: string | undefined;
    for (const line of res.headers.getSetCookie()) {
      if (!line.startsWith(`${COOKIE_NAME}=`)) continue;
      const value = line.slice(COOKIE_NAME.length + 1).split(';')[0] as string;
      const dropped = value === '' || /;\s*max-age=0(;|$)/i.test(line);
      cookie = dropped ? null : value;
      expiredToken = dropped && value !== '' ? value : undefined;
    }
    const info = JSON.parse(res.headers.get('x-chaos') ?? '{}') as ChaosInfo;
    return { ok: true, a: { status: res.status, body: parsed, info, cookie, expiredToken } };
  } catch (e) {
    return { ok: false, error: `${(e as Error)?.name ?? 'Error'}: ${String((e as Error)?.message ?? e).slice(0, 200)}` };
  }
}

/** The outcome of the part of a request that failed (or of the whole request when it succeeded). */
function httpFailure(x: { ok: true; a: HttpAnswer } | { ok: false; error: string }): Outcome<never> {
  // A request whose answer never came may or may not have done its work, like a statement that timed out.
  if (!x.ok) return { status: 'timeout', error: x.error };
  const b = x.a.body;
  if (typeof b.code === 'string') return { status: 'error', code: b.code, error: String(b.message ?? b.code) };
  return { status: 'error', error: `HTTP ${x.a.status}: ${b.error ?? ''}` };
}

function httpOp<O extends Op>(op: O, start: number, end: number): O {
  op.start = start;
  op.end = end;
  op.via = 'http';
  return op;
}

/** The read part of a request: the session its cookie named, as the middleware loaded it. */
function recordHttpRead(
  x: { ok: true; a: HttpAnswer } | { ok: false; error: string },
  t: { token: string; sid?: string },
  origin: ReadOp['origin'],
  start: number,
  end: number,
): ReadOp {
  const op = httpOp<ReadOp>({ ...base('read', 'load'), token: t.token, sid: t.sid, force: false, touch: true, origin }, start, end);
  const loaded = x.ok ? x.a.info.loaded : undefined;
  if (loaded === undefined) settle(op, httpFailure(x));
  else op.result = loaded === null ? { found: false } : { found: true, id: loaded.id, version: loaded.version, attrs: loaded.attrs };
  op.end = end;
  record(op);
  return op;
}

/** The browser keeps what the response set. */
function applyCookie(jar: Jar | undefined, x: { ok: true; a: HttpAnswer } | { ok: false; error: string }): void {
  if (jar === undefined || !x.ok || x.a.cookie === undefined) return;
  if (x.a.cookie === null) {
    const i = jars.indexOf(jar);
    if (i !== -1) jars.splice(i, 1);
  } else jar.token = x.a.cookie;
}

async function httpLogin(rng: Rng, opts: LoadOptions, jar: Jar | undefined): Promise<void> {
  const user = rng.pick(opts.freeUsers);
  const create: CreateOp = { ...base('create', 'load'), user, attrs: {}, expiresAt: 0, pool: 'free' };
  create.attrs = { a: `${PROC}.${create.seq}.a`, b: `${PROC}.${create.seq}.b` };
  create.expiresAt = clock() + (rng.chance(0.15) ? rng.int(2000, 10_000) : 3_600_000);
  const start = wallNow();
  const x = await request(rng, 'POST', '/login', jar?.token, { user, attrs: create.attrs, expiresAt: create.expiresAt });
  const end = wallNow();
  if (jar !== undefined) {
    // Against fixation, login deletes the session the request's cookie named first.
    const del = httpOp<DeleteOp>({ ...base('delete', 'load'), sid: jar.sid, token: jar.token }, start, end);
    if (x.ok && x.a.info.deleted !== undefined) del.result = { ids: x.a.info.deleted };
    else if (!(x.ok && x.a.status === 200)) settle(del, httpFailure(x));
    else del.result = { ids: [] };
    del.end = end;
    record(del);
    if (del.result && del.result.ids.length > 0) publish({ kind: 'dead', ids: del.result.ids });
  }
  httpOp(create, start, end);
  // A session that expired before its response was written gets its token with Max-Age=0 (the browser keeps
  // nothing): created all the same. One still alive must come with a cookie the browser keeps.
  const token = x.ok ? (x.a.cookie ?? (create.expiresAt <= clock() ? x.a.expiredToken : undefined)) : undefined;
  if (x.ok && x.a.status === 200) {
    if (typeof token !== 'string') {
      const why =
        x.a.expiredToken === undefined ? 'without a session cookie' : `with Max-Age=0 for a session alive until ${create.expiresAt}`;
      settle(create, { status: 'error', error: `login answered 200 ${why}` });
    } else
      create.result = {
        id: x.a.body.id as string,
        token,
        version: x.a.body.version as number,
        at: x.a.body.at as number,
        evicted: x.a.info.evicted ?? [],
      };
  } else settle(create, httpFailure(x));
  create.end = end;
  record(create);
  if (jar !== undefined) {
    const i = jars.indexOf(jar);
    if (i !== -1) jars.splice(i, 1);
  }
  if (create.result) {
    publish({ kind: 'created', id: create.result.id, token: create.result.token, user, pool: 'free', expiresAt: create.expiresAt });
    if (x.ok && x.a.cookie === create.result.token) jars.push({ token: create.result.token, sid: create.result.id });
    noteToken(create.result.token, create.result.id);
  }
}

async function httpMe(rng: Rng, target: { token: string; sid?: string }, jar?: Jar): Promise<void> {
  // The jar (when the target is one) takes the response's cookie before the operations are recorded.
  const t = { token: target.token, sid: target.sid };
  noteToken(t.token, t.sid);
  const start = wallNow();
  const x = await request(rng, 'GET', '/me', t.token);
  recordHttpRead(x, t, 'read', start, wallNow());
  applyCookie(jar, x);
}

/** POST /write: the read, the rotation when asked, and the write through the (possibly new) token. */
async function httpWrite(rng: Rng, target: { token: string; sid?: string }, jar?: Jar, rotate = rng.chance(0.15)): Promise<void> {
  // The jar (when the target is one) takes the response's cookie before the operations are recorded.
  const t = { token: target.token, sid: target.sid };
  noteToken(t.token, t.sid);
  const mode = rng.weighted({ plain: 2, version: 1, attrVersion: 1 } as const);
  const keys = rng.chance(0.3) ? rng.shuffle(['a', 'b', 'c']).slice(0, 2) : [rng.pick(['a', 'b', 'c'])];
  const n = ++httpValues;
  const values: Record<string, string> = {};
  for (const key of keys) values[key] = `${PROC}.h${n}.${key}`;
  const start = wallNow();
  const x = await request(rng, 'POST', '/write', t.token, { values, mode, rotate });
  const end = wallNow();
  const read = recordHttpRead(x, t, 'update', start, end);
  applyCookie(jar, x);
  if (!read.result?.found || !x.ok) return;
  const sid = read.result.id as string;
  const info = x.a.info;
  let token = t.token;
  if (rotate) {
    const rot = httpOp<RotateOp>({ ...base('rotate', 'load'), sid, token: t.token, bySession: true }, start, end);
    if (info.rotated === undefined) settle(rot, httpFailure(x));
    else if (info.rotated === null) rot.result = { rotated: false };
    else rot.result = { rotated: true, newToken: info.rotated.token, version: info.rotated.version };
    rot.end = end;
    record(rot);
    if (!rot.result?.rotated) return;
    token = rot.result.newToken as string;
    publish({ kind: 'rotated', id: sid, oldToken: t.token, newToken: token });
  }
  if (info.base === undefined) return; // failed before the write was attempted (recorded above)
  const op = httpOp<UpdateOp>({ ...base('update', 'load'), sid, token, mode, values, base: info.base }, start, end);
  if (x.a.status === 200) {
    const st = info.state;
    if (st === null || st === undefined || st.id !== sid)
      settle(op, { status: 'error', error: 'write answered 200 without the saved session' });
    else {
      const vers: Record<string, number> = {};
      for (const key of keys) vers[key] = st.attrs[key]?.[1] ?? 0;
      op.result = { version: st.version, vers };
    }
  } else settle(op, httpFailure(x));
  op.end = end;
  record(op);
}

async function httpRotate(rng: Rng, target: { token: string; sid?: string }, jar?: Jar): Promise<void> {
  // The jar (when the target is one) takes the response's cookie before the operations are recorded.
  const t = { token: target.token, sid: target.sid };
  noteToken(t.token, t.sid);
  const start = wallNow();
  const x = await request(rng, 'POST', '/rotate', t.token);
  const end = wallNow();
  const read = recordHttpRead(x, t, 'read', start, end);
  applyCookie(jar, x);
  if (!read.result?.found || !x.ok) return;
  const sid = read.result.id as string;
  const rot = httpOp<RotateOp>({ ...base('rotate', 'load'), sid, token: t.token, bySession: true }, start, end);
  const r = x.a.info.rotated;
  if (r === undefined) settle(rot, httpFailure(x));
  else rot.result = r === null ? { rotated: false } : { rotated: true, newToken: r.token, version: r.version };
  rot.end = end;
  record(rot);
  if (rot.result?.rotated) publish({ kind: 'rotated', id: sid, oldToken: t.token, newToken: rot.result.newToken as string });
}

async function httpLogout(rng: Rng, target: { token: string; sid?: string }, jar?: Jar): Promise<void> {
  // The jar (when the target is one) takes the response's cookie before the operations are recorded.
  const t = { token: target.token, sid: target.sid };
  noteToken(t.token, t.sid);
  const start = wallNow();
  const x = await request(rng, 'POST', '/logout', t.token);
  const end = wallNow();
  const read = recordHttpRead(x, t, 'read', start, end);
  applyCookie(jar, x);
  if (read.status !== 'ok') return;
  const del = httpOp<DeleteOp>(
    { ...base('delete', 'load'), sid: read.result?.id ?? t.sid, token: t.token, bySession: read.result?.found === true },
    start,
    end,
  );
  if (x.ok && x.a.status === 200) {
    const ids = x.a.info.deleted ?? [];
    if ((x.a.body as { deleted?: boolean }).deleted !== ids.length > 0)
      throw new Error(
        `chaos: logout answered deleted=${(x.a.body as { deleted?: boolean }).deleted} but the store was seen deleting [${ids.join(', ')}]`,
      );
    del.result = { ids };
  } else settle(del, httpFailure(x));
  del.end = end;
  record(del);
  if (del.result && del.result.ids.length > 0) publish({ kind: 'dead', ids: del.result.ids });
}

/** A cookie another process rotated away or revoked, sent again: mostly to write or rotate through it. */
async function httpStale(rng: Rng, d: Target): Promise<void> {
  const what = rng.weighted({ write: 6, rotate: 3, logout: 1, me: 1 });
  if (what === 'write') {
    await httpWrite(rng, d, undefined, rng.chance(0.2));
    // The browser's next request with the same cookie: it must not have come back to life.
    later(rng.int(300, 1800), () => httpMe(rng, d));
  } else if (what === 'rotate') await httpRotate(rng, d);
  else if (what === 'logout') await httpLogout(rng, d);
  else await httpMe(rng, d);
}

async function httpStep(rng: Rng, opts: LoadOptions): Promise<void> {
  const step = rng.weighted({
    login: jars.length < MAX_JARS ? 10 : 1,
    me: 35,
    write: 25,
    rotate: 5,
    logout: 2,
    stale: 8,
    foreign: 8,
  });
  const jar = jars.length > 0 ? rng.pick(jars) : undefined;
  if (step === 'login' || jar === undefined) return httpLogin(rng, opts, jar !== undefined && rng.chance(0.2) ? jar : undefined);
  if (step === 'me') return httpMe(rng, jar, jar);
  if (step === 'write') return httpWrite(rng, jar, jar);
  if (step === 'rotate') return httpRotate(rng, jar, jar);
  if (step === 'logout') return httpLogout(rng, jar, jar);
  if (step === 'stale') {
    const dead = deadTokens.filter((d) => d.pool === 'free');
    if (dead.length > 0) return httpStale(rng, rng.pick(dead));
    return;
  }
  // Another process's session, through its current token (as a browser holding that cookie would).
  const k = pickAlive(rng);
  if (k === undefined || k.pool !== 'free') return;
  if (rng.chance(0.5)) return httpMe(rng, targetOf(k));
  return httpWrite(rng, targetOf(k));
}

async function startHttp(): Promise<void> {
  const app = createChaosApp(managers.free, syncs.get('free'), opContext);
  await new Promise<void>((resolve, reject) => {
    const s = serve({ fetch: app.fetch, port: 0, hostname: '127.0.0.1' }, (info: AddressInfo) => {
      httpBase = `http://127.0.0.1:${info.port}`;
      resolve();
    });
    s.once('error', reject);
    server = s;
  });
}

// ---- the load ---------------------------------------------------------------------------------------

let loops: Promise<void>[] = [];
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function loadLoop(rng: Rng, opts: LoadOptions, deadline: number): Promise<void> {
  while (!stopping && wallNow() < deadline) {
    if (MODE === 'http') {
      await httpStep(rng, opts);
      await sleep(rng.int(opts.thinkMs[0], opts.thinkMs[1]));
      continue;
    }
    const n = aliveMain.ids.length;
    const step = rng.weighted({
      read: 50,
      update: 22,
      create: n < 150 ? 12 : n < 300 ? 5 : 1,
      rotate: 4,
      delete: 1.5,
      deleteAll: 0.15,
      idle: 8,
      held: 3,
    });
    if (step === 'read') await doReadStep(rng);
    else if (step === 'update') {
      const k = pickAlive(rng);
      if (k !== undefined) await doUpdate(rng, k);
    } else if (step === 'create') await doCreate(rng, opts, rng.chance(0.4) ? 'capped' : 'free');
    else if (step === 'rotate') await doRotate(rng);
    else if (step === 'delete') await doDelete(rng);
    else if (step === 'deleteAll') await doDeleteAll(rng, opts);
    else if (step === 'idle') await doIdleStep(rng, opts);
    else await doHeldStep(rng);
    await sleep(rng.int(opts.thinkMs[0], opts.thinkMs[1]));
  }
}

/** Reads of the targets (each once, 8 at a time), through this process's managers. */
async function readAll(
  targets: Target[],
  o: { force: boolean; touch: boolean; origin: ReadOp['origin']; phase: 'load' | 'final' },
): Promise<number> {
  let next = 0;
  const worker = async () => {
    while (next < targets.length) {
      const t = targets[next++] as Target;
      await doRead(t, o);
    }
  };
  await Promise.all(Array.from({ length: 8 }, worker));
  flushOps();
  return targets.length;
}

const handlers: Record<string, (a: Record<string, unknown>) => Promise<unknown> | unknown> = {
  ping: async () => {
    startSync();
    if (MODE === 'http' && server === undefined) await startHttp();
    return { mode: MODE, skew: SKEW, http: httpBase || undefined };
  },
  start: (a) => {
    const opts = a as unknown as LoadOptions;
    const rng = new Rng(opts.seed);
    procRng = rng.fork(1000);
    const deadline = wallNow() + opts.durationMs;
    loadRunning = true;
    loops = Array.from({ length: opts.loops }, (_, i) => loadLoop(rng.fork(i), opts, deadline));
    return true;
  },
  stopLoad: async () => {
    stopping = true;
    await Promise.all(loops);
    await Promise.all([...scheduled]);
    loadRunning = false;
    flushOps();
    return { proc: PROC, mode: MODE, skew: SKEW, ops: seq, sync: syncStats, alive: aliveMain.ids.length, held: held.length };
  },
  pushTouches: async () => {
    if (MODE === 'standalone') await Promise.all(Object.values(managers).map((m) => m.flushTouches().catch(() => {})));
    else await Promise.all([...syncs.values()].map((s) => s.pushTouches()));
    return true;
  },
  /** Reads of sessions the runner injected touches for (load phase, touching: a user coming back). */
  probe: (a) => readAll(a.targets as Target[], { force: a.force === true, touch: true, origin: 'probe', phase: 'load' }),
  finalReads: (a) => readAll(a.targets as Target[], { force: a.force === true, touch: false, origin: 'final', phase: 'final' }),
  /** Stops the sync clients (their last touch push) and writes whatever touches are still pending. */
  shutdown: async () => {
    if (server !== undefined) await new Promise<void>((r) => (server as ReturnType<typeof serve>).close(() => r()));
    await Promise.all([...syncs.values()].map((s) => s.stop()));
    let pending = 0;
    for (const m of Object.values(managers)) {
      m.stopBackgroundTasks();
      for (let attempt = 0; attempt < 10; attempt++) {
        try {
          await m.flushTouches();
          break;
        } catch {
          await sleep(300);
        }
      }
      pending += m.pendingTouchCount;
    }
    clearInterval(flushTimer);
    flushOps();
    await pool.end().catch(() => {});
    return { proc: PROC, pendingTouches: pending, sync: syncStats };
  },
};

process.on('message', async (m: { id?: number; cmd?: string; args?: Record<string, unknown>; type?: string; ev?: RegEvent }) => {
  if (m.type === 'reg' && m.ev) {
    applyReg(m.ev);
    return;
  }
  if (m.id === undefined || m.cmd === undefined) return;
  try {
    const h = handlers[m.cmd];
    if (!h) throw new Error(`unknown command ${m.cmd}`);
    process.send?.({ id: m.id, ok: true, value: await h(m.args ?? {}) });
  } catch (e) {
    process.send?.({ id: m.id, ok: false, error: String((e as Error)?.stack ?? e) });
  }
});
// Never outlive the parent.
process.on('disconnect', () => process.exit(0));
