// Subscribers: the worker (the real CLI, in its own process) with 1,000 push-stream subscribers (in another
// process), idle and during a 10,000-row change burst: GET /v1/changes latency from a poller that follows
// its own cursor (what a Workers isolate does), the worker's RSS, and how long the burst takes to reach
// every subscriber. Before: 1,000 subscribers and one 8,000-row DELETE took the worker to 541 MB and
// /v1/changes to the isolates' 2 s timeout, because every event was serialized once per subscriber.
import { type ChildProcess, fork } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { startWorkerProcess, type WorkerProcess } from '../../harness/worker-process.ts';
import type { Section } from '../lib/context.ts';
import { createSchema, dropSchema, openPool } from '../lib/db.ts';
import { closedLoop, median, type Sample, sleep } from '../lib/measure.ts';
import { seedOursWithTokens } from '../lib/seed.ts';

const SECRET = 'bench-secret-0123456789-abcdefghijklmnopq';
const BURST_ROWS = 10_000;
const TIMEOUT_MS = 5000;

/** Resident set size of a process, from /proc (Linux), in bytes. */
function rss(pid: number): number {
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) * 1024 : Number.NaN;
  } catch {
    return Number.NaN; // the process is gone
  }
}

interface Report {
  open: number;
  closed: number;
  refused: number;
  minBytes: number;
  maxBytes: number;
  minEvents: number;
}

/** The subscriber process: resolves once every stream got its first event. */
async function startSubscribers(
  url: string,
  n: number,
): Promise<{ child: ChildProcess; open: number; refused: number; ask<T>(cmd: string): Promise<T> }> {
  const child = fork(join(import.meta.dirname, '..', 'lib', 'sse-subscribers-child.ts'), [url, SECRET, String(n)], {
    execArgv: ['--import', 'tsx'],
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  const ready = await new Promise<{ open: number; refused: number }>((resolve, reject) => {
    child.once('message', (m: { type: string; open: number; refused: number }) => resolve(m));
    child.once('exit', (c) => reject(new Error(`subscriber process exited with ${c}`)));
  });
  const ask = <T>(cmd: string) =>
    new Promise<T>((resolve) => {
      child.once('message', (m) => resolve(m as T));
      child.send({ cmd });
    });
  return { child, ...ready, ask };
}

export const subscribers: Section = {
  name: 'subscribers',
  title: 'Worker under 1,000 stream subscribers: idle vs a 10,000-row change burst',
  async run(ctx) {
    const n = 1000;
    const repMs = 2000;
    const p = await openPool(ctx.url, 2);
    const schema = await createSchema(ctx.admin, p.db, 'subs');
    const table = `"${schema}"."sessions"`;
    await seedOursWithTokens(ctx.admin, table, BURST_ROWS);
    let worker: WorkerProcess | undefined;
    let subs: Awaited<ReturnType<typeof startSubscribers>> | undefined;
    try {
      worker = await startWorkerProcess([], {
        DATABASE_URL: ctx.url,
        PG_EDGE_SESSION_SECRET: SECRET,
        PG_EDGE_SESSION_SCHEMA: schema,
        PG_EDGE_SESSION_MAX_SUBSCRIBERS: String(n),
        PORT: '0',
      });
      const pid = worker.proc.pid as number;
      const w = worker;
      let died: string | undefined;
      void w.exited.then((code) => {
        died = `the worker exited (code ${code}, signal ${w.proc.signalCode}) during the run; its last log lines:\n${w.logs.slice(-5).join('\n')}`;
      });
      const rssAlone = rss(pid);
      subs = await startSubscribers(worker.url, n);
      ctx.log(
        `  ${subs.open} subscribers connected (${subs.refused} refused); worker RSS ${(rss(pid) / 2 ** 20).toFixed(0)} MB (alone ${(rssAlone / 2 ** 20).toFixed(0)} MB)`,
      );
      if (subs.open < n) throw new Error(`only ${subs.open} of ${n} subscribers connected`);

      const auth = { authorization: `Bearer ${SECRET}` };
      let timeouts = 0;
      const url = worker.url;
      // One poller following its own cursor, as a Workers isolate does (c=1: the latency, not throughput).
      let cursor = ((await (await fetch(`${url}/v1/changes`, { headers: auth })).json()) as { cursor: string }).cursor;
      const poll = async () => {
        if (died) throw new Error(died);
        try {
          const r = await fetch(`${url}/v1/changes?after=${encodeURIComponent(cursor)}`, {
            headers: auth,
            signal: AbortSignal.timeout(TIMEOUT_MS),
          });
          if (r.status !== 200) throw new Error(`/v1/changes answered ${r.status}`);
          cursor = ((await r.json()) as { cursor: string }).cursor;
        } catch (e) {
          // A request that times out counts with its timeout as latency (an isolate gives up at 2 s).
          if ((e as Error).name !== 'TimeoutError') throw e;
          timeouts++;
        }
      };
      for (let i = 0; i < 200; i++) await poll(); // warm-up

      const phase = async (burst: boolean) => {
        await subs?.ask('mark');
        let peak = rss(pid);
        const sampler = setInterval(() => {
          const now = rss(pid);
          if (now > peak) peak = now;
        }, 10);
        let fanOutMs = Number.NaN;
        const writer = burst
          ? (async () => {
              await sleep(250);
              const t0 = performance.now();
              // One statement, 10,000 rows: one change-record read of 10,000 ids, one event to every subscriber.
              await ctx.admin.query(`UPDATE ${table} SET version = version + 1`);
              // Until every subscriber has at least the burst's bytes (10,000 ids as JSON).
              for (;;) {
                const r = (await subs?.ask<Report>('report')) as Report;
                if (r.minBytes >= BURST_ROWS * 38 || performance.now() - t0 > repMs * 5 || died) break;
                await sleep(10);
              }
              fanOutMs = performance.now() - t0;
            })()
          : Promise.resolve();
        const sample = await closedLoop(poll, { concurrency: 1, durationMs: repMs });
        await writer;
        clearInterval(sampler);
        const report = (await subs?.ask<Report>('report')) as Report;
        return { sample, peak, fanOutMs, report };
      };

      const idle: { sample: Sample; peak: number }[] = [];
      const burst: { sample: Sample; peak: number; fanOutMs: number; report: Report }[] = [];
      // Every idle repetition first: the memory a burst takes is not given back to the system at once, so
      // an idle figure measured after a burst would hide the burst's cost (not interleaved for that reason).
      for (const b of [false, true]) {
        for (let rep = 0; rep < ctx.reps; rep++) {
          const r = await phase(b);
          (b ? burst : idle).push(r as never);
          ctx.log(
            `  ${b ? 'burst' : 'idle '} rep ${rep + 1}: p50 ${r.sample.p50?.toFixed(2)} ms p99 ${r.sample.p99?.toFixed(2)} ms, RSS peak ${(r.peak / 2 ** 20).toFixed(0)} MB${b ? `, fan-out ${r.fanOutMs.toFixed(0)} ms, ${r.report.open} open / ${r.report.closed} dropped` : ''}`,
          );
          await sleep(250);
        }
      }
      const sum = (xs: { sample: Sample }[]) => ({
        ops: median(xs.map((x) => x.sample.ops)),
        p50: median(xs.map((x) => x.sample.p50 as number)),
        p99: median(xs.map((x) => x.sample.p99 as number)),
        samples: xs.map((x) => x.sample),
      });
      const idleP99 = median(idle.map((x) => x.sample.p99 as number));
      const burstP99 = median(burst.map((x) => x.sample.p99 as number));
      const idleRss = Math.max(...idle.map((x) => x.peak)) / 2 ** 20;
      const burstRss = Math.max(...burst.map((x) => x.peak)) / 2 ** 20;
      const worst = (xs: { sample: Sample }[]) => Math.max(...xs.map((x) => x.sample.p99 as number)).toFixed(1);
      const burstMb = (BURST_ROWS * 39) / 2 ** 20; // one event of 10,000 ids as JSON
      ctx.add({
        id: 'idle',
        label: `GET /v1/changes, ${n} subscribers, idle`,
        summary: sum(idle),
        value: idleRss,
        unit: 'MB RSS',
        note: `peak RSS over the repetitions; worker CLI alone: ${(rssAlone / 2 ** 20).toFixed(0)} MB RSS; poller follows its own cursor, c=1, ${repMs} ms per repetition; worst p99 ${worst(idle)} ms`,
      });
      ctx.add({
        id: 'burst',
        label: `GET /v1/changes, ${n} subscribers, ${BURST_ROWS.toLocaleString('en-US')}-row change burst`,
        summary: sum(burst),
        value: burstRss,
        unit: 'MB RSS',
        goal: { metric: 'value', cmp: '<=', target: 1.5 * idleRss + burstMb },
        note: `one UPDATE of ${BURST_ROWS} rows 250 ms into each repetition (after every idle one); peak RSS; goal: 1.5 × idle + the burst's event (${burstMb.toFixed(2)} MB); worst p99 ${worst(burst)} ms; ${timeouts} requests timed out (${TIMEOUT_MS} ms)`,
      });
      ctx.add({
        id: 'p99ratio',
        label: 'burst p99 ÷ idle p99',
        value: burstP99 / idleP99,
        unit: '×',
        goal: { metric: 'value', cmp: '<=', target: 2 },
      });
      ctx.add({
        id: 'fanout',
        label: `burst commit → every subscriber has it`,
        value: median(burst.map((x) => x.fanOutMs)),
        unit: 'ms',
        note: `subscribers dropped during the bursts: ${burst.map((x) => x.report.closed).join(', ')} (of ${n})`,
      });
    } finally {
      subs?.child.send({ cmd: 'exit' });
      worker?.kill('SIGTERM');
      await worker?.exited;
      await dropSchema(ctx.admin, schema);
      await p.close();
    }
  },
};
