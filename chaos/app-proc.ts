// One chaos app process (a load driver): two SessionManagers (one with maxSessions = CAP for the capped
// users, one practically uncapped) over one node-postgres pool that goes through the chaos proxy, each kept
// fresh by a SyncClient in stream mode against one sync worker. It runs random operations for the run's
// duration and records every one (start/end wall clock, result or typed error) for the parent, which
// relays the sessions other app processes created, rotated or revoked, so reads hit other processes'
// writes (and their revocations) through this process's cache.
//
// Driven over IPC by chaos/procs.ts: {id, cmd, args} → {id, ok, value | error}; events {type: 'ops' | 'reg'}.
import { AsyncLocalStorage } from 'node:async_hooks';
import { drizzle } from 'drizzle-orm/node-postgres';
import pg from 'pg';
import { SessionError } from '../src/errors.ts';
import { SessionManager } from '../src/manager.ts';
import type { Session } from '../src/session.ts';
import { SyncClient } from '../src/sync.ts';
import { Rng } from './rng.ts';
import type { CreateOp, DeleteAllOp, DeleteOp, Op, ReadOp, RotateOp, UpdateOp } from './types.ts';
import { wallNow } from './types.ts';

const env = process.env;
const PROC = Number(env.PROC ?? 0);
const CAP = Number(env.CAP ?? 3);
const MAX_STALENESS = Number(env.MAX_STALENESS ?? 1000);
const OP_TIMEOUT = Number(env.OP_TIMEOUT ?? 10_000);

/** Registry events shared between app processes (through the parent). */
export type RegEvent =
  | { kind: 'created'; id: string; token: string; user: string; capped: boolean; expiresAt: number }
  | { kind: 'rotated'; id: string; oldToken: string; newToken: string }
  | { kind: 'dead'; ids: string[] };

export interface LoadOptions {
  durationMs: number;
  seed: number;
  loops: number;
  thinkMs: [number, number];
  cappedUsers: string[];
  freeUsers: string[];
}

const pool = new pg.Pool({
  connectionString: env.DATABASE_URL,
  max: 10,
  connectionTimeoutMillis: 5000,
  application_name: `chaos-app-${PROC}`,
});
pool.on('error', () => {});
const db = drizzle(pool);

// The managers' clock: Date.now, and the first value read during a synchronous call is captured, which
// is the time getSession records as the touch and createSession stores as created_at/last_accessed.
let captured: number[] | undefined;
const clock = () => {
  const t = Date.now();
  captured?.push(t);
  return t;
};
function capturingClock<T>(f: () => Promise<T>): { promise: Promise<T>; first: number | undefined } {
  captured = [];
  try {
    const promise = f();
    return { promise, first: captured[0] };
  } finally {
    captured = undefined;
  }
}

// Which ids a create evicted and a delete removed: the store's answers, observed per operation.
const opContext = new AsyncLocalStorage<{ evicted?: string[]; deleted?: string[] }>();

function makeManager(maxSessions: number): SessionManager {
  const m = new SessionManager(db, { maxSessions, maxStaleness: MAX_STALENESS, clock });
  const store = m.store;
  const create = store.create.bind(store);
  store.create = async (p) => {
    const created = await create(p);
    const ctx = opContext.getStore();
    if (ctx && 'evicted' in created) ctx.evicted = created.evicted;
    return created;
  };
  const deleteWhere = store.deleteWhere.bind(store);
  store.deleteWhere = async (operation, where) => {
    const ids = await deleteWhere(operation, where);
    const ctx = opContext.getStore();
    if (ctx) ctx.deleted = ids;
    return ids;
  };
  return m;
}

const managers = { capped: makeManager(CAP), free: makeManager(1_000_000) };
const syncStats = { errors: 0, applied: 0, resets: 0, bySource: {} as Record<string, number> };
const syncs = Object.values(managers).map(
  (m) =>
    new SyncClient(m, {
      workerUrl: env.WORKER_URL as string,
      secret: env.SECRET,
      mode: 'stream',
      touchInterval: Number(env.TOUCH_INTERVAL ?? 500),
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
for (const s of syncs) s.start();
const managerFor = (capped: boolean) => (capped ? managers.capped : managers.free);

// ---- the registry of sessions this process knows (its own and those relayed by the parent) ----------

interface Known {
  id: string;
  user: string;
  capped: boolean;
  token: string;
  expiresAt: number;
  alive: boolean;
}
const known = new Map<string, Known>();
const alive: string[] = [];
const aliveIndex = new Map<string, number>();
const deadTokens: { token: string; sid: string; capped: boolean }[] = [];
const MAX_DEAD_TOKENS = 400;

function rememberDeadToken(k: Known, token: string): void {
  deadTokens.push({ token, sid: k.id, capped: k.capped });
  if (deadTokens.length > MAX_DEAD_TOKENS) deadTokens.splice(0, deadTokens.length - MAX_DEAD_TOKENS);
}

function markDead(id: string): void {
  const k = known.get(id);
  if (k === undefined || !k.alive) return;
  k.alive = false;
  rememberDeadToken(k, k.token);
  const i = aliveIndex.get(id);
  if (i !== undefined) {
    const last = alive.pop() as string;
    if (last !== id) {
      alive[i] = last;
      aliveIndex.set(last, i);
    }
    aliveIndex.delete(id);
  }
}

function applyReg(ev: RegEvent): void {
  if (ev.kind === 'created') {
    if (known.has(ev.id)) return;
    known.set(ev.id, { id: ev.id, user: ev.user, capped: ev.capped, token: ev.token, expiresAt: ev.expiresAt, alive: true });
    aliveIndex.set(ev.id, alive.length);
    alive.push(ev.id);
  } else if (ev.kind === 'rotated') {
    const k = known.get(ev.id);
    if (k !== undefined && k.token === ev.oldToken) {
      k.token = ev.newToken;
      rememberDeadToken(k, ev.oldToken);
    }
  } else {
    for (const id of ev.ids) markDead(id);
  }
}

function publish(ev: RegEvent): void {
  applyReg(ev);
  process.send?.({ type: 'reg', ev });
}

function pickAlive(rng: Rng): Known | undefined {
  // The capped users are the busy ones: 30% of the picks go to their (few) sessions.
  const busy = rng.chance(0.3) ? alive.filter((id) => (known.get(id) as Known).capped) : alive;
  const from = busy.length > 0 ? busy : alive;
  for (let tries = 0; tries < 5 && from.length > 0; tries++) {
    const k = known.get(rng.pick(from)) as Known;
    if (k.expiresAt > wallNow()) return k;
    markDead(k.id); // expired: everyone knows its expiry; it becomes a probe of a dead token
  }
  return undefined;
}

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

/** Runs one library call with a deadline; classifies what it threw (typed SessionError or not). */
async function guard<T>(f: () => Promise<T>): Promise<Outcome<T>> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const p = f();
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

// ---- operations -------------------------------------------------------------------------------------

async function doRead(
  target: { token: string; sid?: string; capped: boolean },
  o: { force: boolean; touch: boolean; origin: ReadOp['origin']; phase: 'load' | 'final' },
): Promise<Session | null | undefined> {
  const op: ReadOp = { ...base('read', o.phase), token: target.token, sid: target.sid, force: o.force, touch: o.touch, origin: o.origin };
  const m = managerFor(target.capped);
  let touchAt: number | undefined;
  op.start = wallNow();
  const r = await guard(() => {
    const c = capturingClock(() => m.getSession(target.token, { forceRefresh: o.force, touch: o.touch }));
    touchAt = c.first;
    return c.promise;
  });
  settle(op, r);
  let s: Session | null | undefined;
  if (r.status === 'ok') {
    s = r.value;
    op.result =
      s === null ? { found: false } : { found: true, id: s.id, version: s.version, attrs: attrsOf(s), ...(o.touch ? { touchAt } : {}) };
  }
  record(op);
  return s;
}

async function doCreate(rng: Rng, opts: LoadOptions): Promise<void> {
  const capped = rng.chance(0.4);
  const user = rng.pick(capped ? opts.cappedUsers : opts.freeUsers);
  const op: CreateOp = { ...base('create', 'load'), user, attrs: {}, expiresAt: 0 };
  op.attrs = { a: `${PROC}.${op.seq}.a`, b: `${PROC}.${op.seq}.b` };
  const short = rng.chance(0.15);
  const ctx: { evicted?: string[] } = {};
  let at: number | undefined;
  op.start = wallNow();
  op.expiresAt = Math.round(op.start) + (short ? rng.int(2000, 10_000) : 3_600_000);
  const r = await guard(() =>
    opContext.run(ctx, () => {
      const c = capturingClock(() => managerFor(capped).createSession(user, op.attrs, { expiresAt: op.expiresAt }));
      at = c.first;
      return c.promise;
    }),
  );
  settle(op, r);
  if (r.status === 'ok') {
    op.result = {
      id: r.value.session.id,
      token: r.value.token,
      version: r.value.session.version,
      at: at as number,
      evicted: ctx.evicted ?? [],
    };
  }
  record(op);
  if (op.result) {
    publish({ kind: 'created', id: op.result.id, token: op.result.token, user, capped, expiresAt: op.expiresAt });
    if (op.result.evicted.length > 0) publish({ kind: 'dead', ids: op.result.evicted });
  }
}

async function doUpdate(rng: Rng): Promise<void> {
  const k = pickAlive(rng);
  if (k === undefined) return;
  const target = { token: k.token, sid: k.id, capped: k.capped };
  let s = await doRead(target, { force: false, touch: true, origin: 'update', phase: 'load' });
  const mode = rng.weighted({ plain: 2, version: 1, attrVersion: 1 } as const);
  const keys = rng.chance(0.3) ? rng.shuffle(['a', 'b', 'c']).slice(0, 2) : [rng.pick(['a', 'b', 'c'])];
  for (let attempt = 0; s && attempt < 4; attempt++) {
    const op: UpdateOp = {
      ...base('update', 'load'),
      sid: k.id,
      token: target.token,
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
    const r = await guard(() =>
      managerFor(k.capped).updateSession(session, { checkVersion: mode === 'version', checkAttributeVersion: mode === 'attrVersion' }),
    );
    settle(op, r);
    if (r.status === 'ok') {
      const vers: Record<string, number> = {};
      for (const key of keys) vers[key] = r.value.attributeVersion(key);
      op.result = { version: r.value.version, vers };
    }
    record(op);
    if (r.status === 'error' && r.code === 'SESSION_NOT_FOUND') markDead(k.id);
    if (!(r.status === 'error' && r.code === 'VERSION_CONFLICT')) return;
    s = await doRead(target, { force: true, touch: true, origin: 'update', phase: 'load' });
  }
}

async function doRotate(rng: Rng): Promise<void> {
  const k = pickAlive(rng);
  if (k === undefined) return;
  const op: RotateOp = { ...base('rotate', 'load'), sid: k.id, token: k.token };
  op.start = wallNow();
  const r = await guard(() => managerFor(k.capped).rotate(op.token));
  settle(op, r);
  if (r.status === 'ok') {
    op.result = r.value === null ? { rotated: false } : { rotated: true, newToken: r.value.token, version: r.value.session.version };
  }
  record(op);
  if (op.result?.rotated) publish({ kind: 'rotated', id: k.id, oldToken: op.token, newToken: op.result.newToken as string });
}

async function doDelete(rng: Rng): Promise<void> {
  const dead = deadTokens.length > 0 && rng.chance(0.1) ? rng.pick(deadTokens) : undefined;
  const k = dead === undefined ? pickAlive(rng) : undefined;
  const target = dead ?? (k ? { token: k.token, sid: k.id, capped: k.capped } : undefined);
  if (target === undefined) return;
  const op: DeleteOp = { ...base('delete', 'load'), sid: target.sid, token: target.token };
  const ctx: { deleted?: string[] } = {};
  op.start = wallNow();
  const r = await guard(() => opContext.run(ctx, () => managerFor(target.capped).deleteSession(op.token)));
  settle(op, r);
  if (r.status === 'ok') op.result = { ids: ctx.deleted ?? [] };
  record(op);
  if (op.result && op.result.ids.length > 0) publish({ kind: 'dead', ids: op.result.ids });
}

async function doDeleteAll(rng: Rng, opts: LoadOptions): Promise<void> {
  const capped = rng.chance(0.5);
  const user = rng.pick(capped ? opts.cappedUsers : opts.freeUsers);
  const op: DeleteAllOp = { ...base('deleteAll', 'load'), user };
  const ctx: { deleted?: string[] } = {};
  op.start = wallNow();
  const r = await guard(() => opContext.run(ctx, () => managerFor(capped).deleteAllUserSessions(user)));
  settle(op, r);
  if (r.status === 'ok') op.result = { ids: ctx.deleted ?? [] };
  record(op);
  if (op.result && op.result.ids.length > 0) publish({ kind: 'dead', ids: op.result.ids });
}

async function doReadStep(rng: Rng): Promise<void> {
  if (deadTokens.length > 0 && rng.chance(0.12)) {
    await doRead(rng.pick(deadTokens), { force: rng.chance(0.2), touch: true, origin: 'read', phase: 'load' });
    return;
  }
  const k = pickAlive(rng);
  if (k === undefined) return;
  await doRead({ token: k.token, sid: k.id, capped: k.capped }, { force: rng.chance(0.1), touch: true, origin: 'read', phase: 'load' });
}

// ---- the load ---------------------------------------------------------------------------------------

let stopping = false;
let loops: Promise<void>[] = [];
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function loadLoop(rng: Rng, opts: LoadOptions, deadline: number): Promise<void> {
  while (!stopping && wallNow() < deadline) {
    const step = rng.weighted({
      read: 50,
      update: 22,
      create: alive.length < 150 ? 12 : alive.length < 300 ? 5 : 1,
      rotate: 4,
      delete: 1.5,
      deleteAll: 0.15,
    });
    if (step === 'read') await doReadStep(rng);
    else if (step === 'update') await doUpdate(rng);
    else if (step === 'create') await doCreate(rng, opts);
    else if (step === 'rotate') await doRotate(rng);
    else if (step === 'delete') await doDelete(rng);
    else await doDeleteAll(rng, opts);
    await sleep(rng.int(opts.thinkMs[0], opts.thinkMs[1]));
  }
}

async function finalReads(targets: { token: string; sid: string; capped: boolean }[], force: boolean): Promise<number> {
  let next = 0;
  const worker = async () => {
    while (next < targets.length) {
      const t = targets[next++] as (typeof targets)[number];
      await doRead(t, { force, touch: false, origin: 'final', phase: 'final' });
    }
  };
  await Promise.all(Array.from({ length: 8 }, worker));
  flushOps();
  return targets.length;
}

const handlers: Record<string, (a: Record<string, unknown>) => Promise<unknown> | unknown> = {
  ping: () => 'pong',
  start: (a) => {
    const opts = a as unknown as LoadOptions;
    const rng = new Rng(opts.seed);
    const deadline = wallNow() + opts.durationMs;
    loops = Array.from({ length: opts.loops }, (_, i) => loadLoop(rng.fork(i), opts, deadline));
    return true;
  },
  stopLoad: async () => {
    stopping = true;
    await Promise.all(loops);
    flushOps();
    return { ops: seq, sync: syncStats, alive: alive.length };
  },
  pushTouches: async () => {
    await Promise.all(syncs.map((s) => s.pushTouches()));
    return true;
  },
  finalReads: (a) => finalReads(a.targets as { token: string; sid: string; capped: boolean }[], a.force === true),
  /** Stops the sync clients (their last touch push) and writes whatever touches are still pending. */
  shutdown: async () => {
    await Promise.all(syncs.map((s) => s.stop()));
    let pending = 0;
    for (const m of Object.values(managers)) {
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
    return { pendingTouches: pending, sync: syncStats };
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
