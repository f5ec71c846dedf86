// Measurement primitives: closed-loop load at a fixed concurrency, tight loops, percentiles, medians,
// and interleaved repetitions so that every figure of a comparison sees the same machine noise.

/** One repetition of one figure. Latencies are in milliseconds. */
export interface Sample {
  /** Operations (or rows, for row-rate figures) per second. */
  ops: number;
  p50?: number;
  p99?: number;
  /** Operations (or rows) done. */
  count: number;
  durationMs: number;
}

export interface Summary {
  ops: number;
  p50?: number;
  p99?: number;
  samples: Sample[];
}

export function median(values: number[]): number {
  if (values.length === 0) return Number.NaN;
  const s = [...values].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 === 1 ? (s[mid] as number) : ((s[mid - 1] as number) + (s[mid] as number)) / 2;
}

/** Median of each metric across repetitions (each taken on its own). */
export function summarize(samples: Sample[]): Summary {
  const pick = (k: 'p50' | 'p99') => {
    const v = samples.map((s) => s[k]).filter((x): x is number => x !== undefined);
    return v.length === 0 ? undefined : median(v);
  };
  return { ops: median(samples.map((s) => s.ops)), p50: pick('p50'), p99: pick('p99'), samples };
}

/** Nearest-rank percentile of sorted values. */
export function percentile(sorted: Float64Array, q: number): number {
  if (sorted.length === 0) return Number.NaN;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1));
  return sorted[i] as number;
}

/** A growable list of latencies. */
class Latencies {
  #a = new Float64Array(1 << 14);
  #n = 0;
  push(v: number): void {
    if (this.#n === this.#a.length) {
      const b = new Float64Array(this.#a.length * 2);
      b.set(this.#a);
      this.#a = b;
    }
    this.#a[this.#n++] = v;
  }
  sorted(): Float64Array {
    return this.#a.slice(0, this.#n).sort();
  }
}

export interface LoadOptions {
  concurrency: number;
  /** Run until this much time has passed (each worker finishes its operation in flight)... */
  durationMs?: number;
  /** ...or until this many operations were started... */
  totalOps?: number;
  /** ...or until this returns true (checked before each operation). */
  until?: () => boolean;
}

/**
 * Closed-loop load: `concurrency` workers each await `op` back to back. `i` is a global operation index
 * (0, 1, 2... across workers), `worker` the worker's index. Every operation's latency is recorded.
 */
export async function closedLoop(op: (i: number, worker: number) => Promise<unknown>, o: LoadOptions): Promise<Sample> {
  if (o.durationMs === undefined && o.totalOps === undefined && o.until === undefined) throw new Error('closedLoop needs a stop condition');
  const until = o.until ?? (() => false);
  const lat = new Latencies();
  const start = performance.now();
  const deadline = o.durationMs === undefined ? Number.POSITIVE_INFINITY : start + o.durationMs;
  const total = o.totalOps ?? Number.POSITIVE_INFINITY;
  let next = 0;
  const worker = async (w: number) => {
    for (;;) {
      const t0 = performance.now();
      if (t0 >= deadline || next >= total || until()) return;
      const i = next++;
      await op(i, w);
      lat.push(performance.now() - t0);
    }
  };
  await Promise.all(Array.from({ length: o.concurrency }, (_, w) => worker(w)));
  const durationMs = performance.now() - start;
  const sorted = lat.sorted();
  return {
    ops: (sorted.length * 1000) / durationMs,
    p50: percentile(sorted, 0.5),
    p99: percentile(sorted, 0.99),
    count: sorted.length,
    durationMs,
  };
}

/** Sink for tight-loop results so the JIT cannot drop the work. */
export let blackhole: unknown;

/** A synchronous operation in a tight loop for about `durationMs`; throughput only. */
export function tightLoop(fn: (i: number) => unknown, durationMs: number, chunk = 10_000): Sample {
  const start = performance.now();
  const deadline = start + durationMs;
  let i = 0;
  let sink: unknown;
  let now = start;
  while (now < deadline) {
    for (const end = i + chunk; i < end; i++) sink = fn(i);
    now = performance.now();
  }
  blackhole = sink;
  const elapsed = now - start;
  return { ops: (i * 1000) / elapsed, count: i, durationMs: elapsed };
}

/** An async operation awaited back to back (one caller) for about `durationMs`; throughput only. */
export async function tightLoopAsync(fn: (i: number) => Promise<unknown>, durationMs: number, chunk = 5_000): Promise<Sample> {
  const start = performance.now();
  const deadline = start + durationMs;
  let i = 0;
  let sink: unknown;
  let now = start;
  while (now < deadline) {
    for (const end = i + chunk; i < end; i++) sink = await fn(i);
    now = performance.now();
  }
  blackhole = sink;
  const elapsed = now - start;
  return { ops: (i * 1000) / elapsed, count: i, durationMs: elapsed };
}

/** One figure of a side-by-side comparison. */
export interface Contestant {
  id: string;
  /**
   * Not measured: runs before the first repetition (fills JIT, connections, caches). When it returns a
   * Sample, it is repeated until the rate stops climbing (see `warmUp`).
   */
  warmup?: () => Promise<unknown> | unknown;
  /** Most warm-up windows (default: the run's policy). 1 for contestants that use up data (deletes). */
  maxWarmups?: number;
  /** One repetition. */
  run: (rep: number) => Promise<Sample> | Sample;
}

/**
 * How warm-ups end: a window is repeated until its rate is no more than `tolerance` above the previous
 * window's (the JIT, the pool, PostgreSQL's caches and plans are then warm), at least twice and at most
 * `maxWindows` times. The run sets it once (bench/run.ts).
 */
export const warmupPolicy = { maxWindows: 8, tolerance: 0.05 };

/** Warm-up windows used per contestant id in this run (for the report). */
export const warmupWindows = new Map<string, number[]>();

/**
 * Runs `once` (one warm-up window) until the rate stops climbing (see warmupPolicy). Returns the rates
 * seen. A warm-up that returns no Sample runs once.
 */
export async function warmUp(id: string, once: () => Promise<unknown> | unknown, maxWindows = warmupPolicy.maxWindows): Promise<number[]> {
  const rates: number[] = [];
  for (let w = 0; w < Math.max(1, maxWindows); w++) {
    const r = (await once()) as Partial<Sample> | undefined;
    if (typeof r?.ops !== 'number') break;
    rates.push(r.ops);
    const prev = rates.at(-2);
    if (prev !== undefined && r.ops <= prev * (1 + warmupPolicy.tolerance)) break;
  }
  warmupWindows.set(id, rates);
  return rates;
}

/**
 * Warms every contestant (until stable, see warmUp), then runs `reps` rounds; each round runs every
 * contestant once, in an order rotated per round, so slow drifts of a shared, noisy machine hit all of
 * them alike.
 */
export async function interleave(
  contestants: Contestant[],
  reps: number,
  log: (s: string) => void = () => {},
): Promise<Map<string, Sample[]>> {
  const out = new Map<string, Sample[]>(contestants.map((c) => [c.id, []]));
  for (const c of contestants) {
    if (c.warmup === undefined) continue;
    const rates = await warmUp(c.id, c.warmup, c.maxWarmups);
    if (rates.length > 0) log(`  ${c.id} warm-up: ${rates.length} window(s), ${rates.map(fmtOps).join(' → ')} ops/s`);
  }
  for (let r = 0; r < reps; r++) {
    for (let k = 0; k < contestants.length; k++) {
      const c = contestants[(k + r) % contestants.length] as Contestant;
      const s = await c.run(r);
      out.get(c.id)?.push(s);
      log(
        `  ${c.id} rep ${r + 1}: ${fmtOps(s.ops)} ops/s${s.p50 === undefined ? '' : ` p50 ${fmtMs(s.p50)} p99 ${fmtMs(s.p99 ?? Number.NaN)}`}`,
      );
    }
  }
  return out;
}

export function fmtOps(v: number): string {
  if (!Number.isFinite(v)) return '—';
  return Math.round(v).toLocaleString('en-US');
}

export function fmtMs(v: number): string {
  if (!Number.isFinite(v)) return '—';
  if (v < 0.01) return `${(v * 1000).toFixed(2)} µs`;
  if (v < 1) return `${(v * 1000).toFixed(0)} µs`;
  if (v < 100) return `${v.toFixed(2)} ms`;
  return `${v.toFixed(0)} ms`;
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
