// Per-operation cost for `npm run bench:opcost`: around each repetition of a figure, the client's CPU
// (process.cpuUsage: this Node process, every thread), the database's CPU (the first field of
// /proc/<pid>/schedstat, nanoseconds on the CPU, summed over every backend of the pool) and the wall time.
// On a CPU-bound machine throughput at high concurrency is set by CPU per operation, client and backend
// together, so these say what a ratio of the full bench is made of and what its floor allows.
import { readFileSync } from 'node:fs';
import type pg from 'pg';
import { type Contestant, closedLoop, median, type Sample } from './measure.ts';

/** The backends of a pool whose CPU can be read here, or why not. */
export interface Backends {
  pids: number[];
  /** Why backend CPU is "n/a" (empty when it is read). */
  why: string;
}

/**
 * The backend pids of every connection of `pool` (which must hold exactly `size` open connections, as
 * `openPool` leaves it). A pid counts only when /proc/<pid> on this machine is that connection's backend:
 * its command line names the client's own port (a remote server's pid would name some unrelated process).
 */
export async function poolBackends(pool: pg.Pool, size: number): Promise<Backends> {
  const clients = await Promise.all(Array.from({ length: size }, () => pool.connect()));
  try {
    const pids: number[] = [];
    for (const c of clients) {
      const pid = Number((await c.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')).rows[0]?.pid);
      pids.push(pid);
    }
    if (process.platform !== 'linux') return { pids: [], why: `${process.platform}: /proc/<pid>/schedstat is Linux only` };
    for (const [k, pid] of pids.entries()) {
      let cmdline: string;
      try {
        cmdline = readFileSync(`/proc/${pid}/cmdline`, 'utf8').replaceAll('\0', ' ');
        readFileSync(`/proc/${pid}/schedstat`, 'utf8');
      } catch {
        return { pids: [], why: `backend ${pid} is not a process of this machine (remote server?)` };
      }
      const port = (clients[k] as unknown as { connection?: { stream?: { localPort?: number } } }).connection?.stream?.localPort;
      const ours = port === undefined ? cmdline.startsWith('postgres') : cmdline.includes(`(${port})`);
      if (!ours) return { pids: [], why: `pid ${pid} here is not the backend of this connection (remote server or another PID namespace)` };
    }
    return { pids, why: '' };
  } finally {
    for (const c of clients) c.release();
  }
}

/** Nanoseconds the backends have spent on a CPU so far; undefined when they cannot be read. */
export function backendCpuNs(b: Backends): number | undefined {
  if (b.pids.length === 0) return undefined;
  let ns = 0;
  for (const pid of b.pids) {
    try {
      ns += Number(readFileSync(`/proc/${pid}/schedstat`, 'utf8').split(' ')[0]);
    } catch {
      return undefined;
    }
  }
  return ns;
}

/** One repetition of one figure, per unit (an operation, or a row for row-rate figures). */
export interface Cost {
  clientUs: number;
  /** undefined: backend CPU not readable here. */
  backendUs: number | undefined;
  /** Latency p50 (µs) of the operations, for per-operation figures. */
  p50Us: number | undefined;
  /** Wall time per unit (µs). */
  wallUs: number;
  /** Units per second. */
  rate: number;
}

/** The harness's CPU readings around `work`, which returns how many units it did (and their p50, ms). */
export async function metered(b: Backends, work: () => Promise<{ units: number; p50Ms?: number }>): Promise<Cost> {
  const s0 = backendCpuNs(b);
  const c0 = process.cpuUsage();
  const t0 = performance.now();
  const r = await work();
  const ms = performance.now() - t0;
  const c = process.cpuUsage(c0);
  const s1 = backendCpuNs(b);
  const n = Math.max(1, r.units);
  return {
    clientUs: (c.user + c.system) / n,
    backendUs: s0 === undefined || s1 === undefined ? undefined : (s1 - s0) / 1000 / n,
    p50Us: r.p50Ms === undefined ? undefined : r.p50Ms * 1000,
    wallUs: (ms * 1000) / n,
    rate: (r.units * 1000) / ms,
  };
}

/** Costs of every repetition, by figure id (what the contestants below record). */
export type CostLog = Map<string, Cost[]>;

function record(log: CostLog, id: string, c: Cost): Sample {
  const list = log.get(id) ?? [];
  list.push(c);
  log.set(id, list);
  return { ops: c.rate, p50: c.p50Us === undefined ? undefined : c.p50Us / 1000, count: 0, durationMs: 0 };
}

/**
 * A per-operation figure for `interleave()`: `perRound` operations by `concurrency` callers per repetition,
 * metered. The warm-up repeats windows of `warmupMs` until the rate stops climbing (the bench's policy),
 * or runs `perRound` operations once when `consumes` (each operation uses up its data, e.g. a delete).
 * `before`/`after` run around every window, outside the meter.
 */
export function perOp(
  log: CostLog,
  b: Backends,
  o: {
    id: string;
    op: (i: number, worker: number) => Promise<unknown>;
    concurrency: number;
    perRound: number;
    warmupMs: number;
    consumes?: boolean;
    before?: () => Promise<void>;
    after?: () => Promise<void>;
  },
): Contestant {
  const around = async <T>(f: () => Promise<T>): Promise<T> => {
    await o.before?.();
    try {
      return await f();
    } finally {
      await o.after?.();
    }
  };
  return {
    id: o.id,
    maxWarmups: o.consumes === true ? 1 : undefined,
    warmup: () =>
      around(() =>
        o.consumes === true
          ? closedLoop(o.op, { concurrency: o.concurrency, totalOps: o.perRound })
          : closedLoop(o.op, { concurrency: o.concurrency, durationMs: o.warmupMs }),
      ),
    run: () =>
      around(async () => {
        const c = await metered(b, async () => {
          const s = await closedLoop(o.op, { concurrency: o.concurrency, totalOps: o.perRound });
          return { units: s.count, p50Ms: s.p50 };
        });
        return record(log, o.id, c);
      }),
  };
}

/**
 * A row-rate figure for `interleave()`: `prepare` (not metered: loading data, VACUUM) then `work`, which
 * returns the rows it changed. Warmed up once.
 */
export function perRow(
  log: CostLog,
  b: Backends,
  o: { id: string; prepare?: () => Promise<void>; work: () => Promise<number> },
): Contestant {
  const once = async () => {
    await o.prepare?.();
    return metered(b, async () => ({ units: await o.work() }));
  };
  return {
    id: o.id,
    maxWarmups: 1,
    warmup: async () => {
      const c = await once();
      return { ops: c.rate, count: 0, durationMs: 0 } satisfies Sample;
    },
    run: async () => record(log, o.id, await once()),
  };
}

/**
 * CPU this process is charged per wake-up from idle: a 1 ms timer awaited `n` times, nothing else to do.
 * On a virtual machine a wake-up can cost tens of µs, charged to the thread woken; every round trip at
 * concurrency 1 pays it on both sides (the client and the backend sleep while the other works).
 */
export async function wakeupCostUs(n = 500): Promise<number> {
  const c0 = process.cpuUsage();
  for (let k = 0; k < n; k++) await new Promise((r) => setTimeout(r, 1));
  const c = process.cpuUsage(c0);
  return (c.user + c.system) / n;
}

/** Median of each field over the repetitions; `totalUs` is the median of each repetition's client + backend. */
export function medianCost(costs: Cost[]): Cost & { totalUs: number | undefined } {
  const m = (f: (c: Cost) => number | undefined) => {
    const v = costs.map(f).filter((x): x is number => x !== undefined);
    return v.length === 0 ? undefined : median(v);
  };
  return {
    clientUs: m((c) => c.clientUs) ?? Number.NaN,
    backendUs: m((c) => c.backendUs),
    p50Us: m((c) => c.p50Us),
    wallUs: m((c) => c.wallUs) ?? Number.NaN,
    rate: m((c) => c.rate) ?? Number.NaN,
    totalUs: m((c) => (c.backendUs === undefined ? undefined : c.clientUs + c.backendUs)),
  };
}
