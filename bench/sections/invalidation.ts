// Invalidation: commit of an update in this process → eviction in another process's cache, through
// the real worker CLI, for the push stream and for polling (the SyncClient's default 250 ms interval);
// and the same through the Durable Object host: commit → eviction in a workerd isolate whose SyncClient
// polls SessionSyncObject through its binding (Miniflare, Neon's driver through the local proxy).
import { drizzle } from 'drizzle-orm/node-postgres';
import { startCluster } from '../../harness/durable-object.ts';
import { startManagerProcess, startWorkerProcess } from '../../harness/worker-process.ts';
import { startWsProxy } from '../../harness/ws-proxy.ts';
import { SessionManager } from '../../src/core/manager.ts';
import type { Section } from '../lib/context.ts';
import { createSchema, dropSchema, openPool } from '../lib/db.ts';
import { median, percentile, type Sample, sleep } from '../lib/measure.ts';

const SECRET = 'bench-secret-0123456789-abcdefghijklmnopq';
const now = () => performance.timeOrigin + performance.now();

export const invalidation: Section = {
  name: 'invalidation',
  title: 'Invalidation: commit → eviction in another process',
  async run(ctx) {
    const p = await openPool(ctx.url, 4);
    const schema = await createSchema(ctx.admin, p.db, 'inval');
    const worker = await startWorkerProcess([], {
      DATABASE_URL: ctx.url,
      PG_EDGE_SESSION_SECRET: SECRET,
      PG_EDGE_SESSION_SCHEMA: schema,
      PORT: '0',
    });
    const env = { DATABASE_URL: ctx.url, SCHEMA: schema, WORKER_URL: worker.url, SECRET };
    const push = await startManagerProcess({ ...env, SYNC_MODE: 'stream' });
    const poll = await startManagerProcess({ ...env, SYNC_MODE: 'poll', SYNC_INTERVAL: '250' });
    const writer = new SessionManager(drizzle(p.pool), { schemaName: schema });
    const rounds = ctx.pick(20, 60);
    try {
      const results: Record<'push' | 'poll', Sample[]> = { push: [], poll: [] };
      for (let rep = 0; rep < ctx.reps; rep++) {
        const lat: Record<'push' | 'poll', number[]> = { push: [], poll: [] };
        for (let i = 0; i < rounds; i++) {
          const { session, token } = await writer.createSession(`inval-${rep}-${i}`, { n: 0 });
          await push.call('get', { token });
          await poll.call('get', { token });
          const marks = { push: push.events.length, poll: poll.events.length };
          session.set('n', i + 1);
          await writer.updateSession(session);
          const committedAt = now();
          for (const [kind, proc] of [
            ['push', push],
            ['poll', poll],
          ] as const) {
            const deadline = Date.now() + 5000;
            let at: number | undefined;
            while (at === undefined && Date.now() < deadline) {
              const ev = proc.events
                .slice(marks[kind])
                .find((e) => e.type === 'applied' && ((e.ids as string[]).includes(session.id) || e.reset === true));
              if (ev) at = ev.at as number;
              else await sleep(2);
            }
            if (at === undefined) throw new Error(`${kind}: no eviction of ${session.id} within 5 s`);
            lat[kind].push(Math.max(0, at - committedAt));
          }
          // Spread the commits over the poll interval so the poll figure is not phase-locked.
          await sleep(37);
        }
        for (const kind of ['push', 'poll'] as const) {
          const sorted = Float64Array.from(lat[kind]).sort();
          results[kind].push({
            ops: Number.NaN,
            p50: percentile(sorted, 0.5),
            p99: percentile(sorted, 0.99),
            count: sorted.length,
            durationMs: 0,
          });
          ctx.log(`  ${kind} rep ${rep + 1}: p50 ${percentile(sorted, 0.5).toFixed(1)} ms p99 ${percentile(sorted, 0.99).toFixed(1)} ms`);
        }
      }
      const sum = (s: Sample[]) => ({
        ops: Number.NaN,
        p50: median(s.map((x) => x.p50 as number)),
        p99: median(s.map((x) => x.p99 as number)),
        samples: s,
      });
      ctx.add({
        id: 'push',
        label: 'commit → eviction, push stream (SSE)',
        summary: sum(results.push),
        goal: { metric: 'value', cmp: '<=', target: 100 },
        value: median(results.push.map((x) => x.p99 as number)),
        unit: 'ms p99',
        note: `${rounds} updates per repetition; worker CLI + 2 manager processes`,
      });
      ctx.add({
        id: 'poll',
        label: 'commit → eviction, polling every 250 ms',
        summary: sum(results.poll),
        value: median(results.poll.map((x) => x.p99 as number)),
        unit: 'ms p99',
        note: 'bounded by the poll interval (the Workers mode); the worker itself reads the record on wake-up',
      });
    } finally {
      await push.close();
      await poll.close();
      worker.kill('SIGTERM');
      await worker.exited;
    }
    try {
      await durableObject(ctx, schema, writer, rounds);
    } finally {
      await dropSchema(ctx.admin, schema);
      await p.close();
    }
  },
};

/**
 * Commit → eviction in a workerd isolate through the Durable Object host, polling every 250 ms as the
 * Node figure above: the isolate caches the session (a read), the update commits here, and the isolate
 * keeps serving reads (each may start a background poll of the object); the figure is when its SyncClient
 * applied the invalidation (its own Date.now(), the same machine clock) minus the commit.
 */
async function durableObject(ctx: Parameters<Section['run']>[0], schema: string, writer: SessionManager, rounds: number): Promise<void> {
  const proxy = await startWsProxy();
  const cluster = await startCluster({
    appDatabaseUrl: ctx.url,
    objectDatabaseUrl: ctx.url,
    wsProxy: `127.0.0.1:${proxy.port}/v2`,
    schemaName: schema,
    syncInterval: 250,
  });
  try {
    const app = cluster.app(1);
    const results: Sample[] = [];
    for (let rep = 0; rep < ctx.reps; rep++) {
      const lat: number[] = [];
      for (let i = 0; i < rounds; i++) {
        const { session, token } = await writer.createSession(`inval-do-${rep}-${i}`, { n: 0 });
        const read = () => app('/me', { headers: { cookie: `session=${token}` } }).then((r) => r.text());
        await read();
        session.set('n', i + 1);
        await writer.updateSession(session);
        const committedAt = now();
        const deadline = Date.now() + 5000;
        let at: number | null = null;
        while (at === null && Date.now() < deadline) {
          await read();
          at = ((await (await app(`/__test/applied/${session.id}`)).json()) as { at: number | null }).at;
          if (at === null) await sleep(5);
        }
        if (at === null) throw new Error(`durable object: no eviction of ${session.id} within 5 s`);
        lat.push(Math.max(0, at - committedAt));
        await sleep(37);
      }
      const sorted = Float64Array.from(lat).sort();
      results.push({ ops: Number.NaN, p50: percentile(sorted, 0.5), p99: percentile(sorted, 0.99), count: sorted.length, durationMs: 0 });
      ctx.log(
        `  durable object rep ${rep + 1}: p50 ${percentile(sorted, 0.5).toFixed(1)} ms p99 ${percentile(sorted, 0.99).toFixed(1)} ms`,
      );
    }
    ctx.add({
      id: 'durable-object',
      label: 'commit → eviction in a workerd isolate, polling the Durable Object every 250 ms',
      summary: {
        ops: Number.NaN,
        p50: median(results.map((x) => x.p50 as number)),
        p99: median(results.map((x) => x.p99 as number)),
        samples: results,
      },
      value: median(results.map((x) => x.p99 as number)),
      unit: 'ms p99',
      note: `${rounds} updates per repetition; Miniflare (workerd), SessionSyncObject on Neon's driver via the local proxy; beside the Node worker's poll figure`,
    });
  } finally {
    await cluster.dispose();
    await proxy.close();
  }
}
