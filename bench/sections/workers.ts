// Workers, in round trips: the example operations through each Workers path inside workerd (Miniflare),
// with a proxy standing in for the distance to the database (harness/tcp-proxy.ts: a fixed one-way
// delay, so a round trip costs RTT = 2 × delay, and a count of client→server flights), then again with no
// delay (the local path) beside it. Where the delay sits:
//   Neon paths: between workerd and the WebSocket proxy (bin/ws-proxy.ts), where Neon's own proxy sits
//     next to the database: the upgrade, the start-up and every statement cross it. Production adds TCP
//     and TLS before the upgrade (not simulated: ws:// on loopback).
//   Hyperdrive: between workerd and PostgreSQL, except the start-up (up to the server's first
//     ReadyForQuery), which goes through undelayed: Hyperdrive answers it in the Worker's location from
//     its pool; statements cross the distance (Hyperdrive's cache never answers the library's statements,
//     test/db/cacheability.test.ts). Miniflare's local Hyperdrive opens a real socket to PostgreSQL per client.
//     node-postgres and postgres.js each have their own proxy (postgres.js waits for a statement's
//     parameter types before binding it, src/drivers/postgres-js.ts: its flights are counted apart).
// Every path uses the Durable Object host in poll mode (its own connections are not delayed: it sits next
// to the database). Goals apply to the recommended path (README "Cloudflare Workers").
import { Miniflare } from 'miniflare';
import pg from 'pg';
import { startWsProxy } from '../../bin/ws-proxy.ts';
import { startTcpProxy, type TcpProxy } from '../../harness/tcp-proxy.ts';
import { bundleWorker, COMPATIBILITY_DATE, CookieJar } from '../../harness/workerd.ts';
import type { BenchContext, Section } from '../lib/context.ts';
import { createSchema, dropSchema, openPool } from '../lib/db.ts';
import { median, percentile, type Summary, sleep } from '../lib/measure.ts';
import type { GoalSpec } from '../lib/report.ts';

const ONE_WAY_MS = 20;
const RTT_MS = 2 * ONE_WAY_MS;
const PATHS = [
  { id: 'hyperdrive', label: 'Hyperdrive + node-postgres (client per statement, close in waitUntil)' },
  { id: 'hyperdrive-postgres-js', label: 'Hyperdrive + postgres.js (client per statement, close in waitUntil)' },
  { id: 'neon', label: 'Neon WebSocket (connection per statement, close in waitUntil)' },
  { id: 'neon-per-statement', label: 'Neon WebSocket, previous (connection per statement, close awaited)' },
] as const;
type PathId = (typeof PATHS)[number]['id'];
/** The recommended path: README's Workers section leads with it. */
const RECOMMENDED: PathId = 'hyperdrive';
const OPS = [
  { id: 'hit', label: 'cache hit (GET, session cached by this isolate)' },
  { id: 'miss', label: 'miss (GET on an isolate without the session)' },
  { id: 'login', label: 'login (no cookie)' },
  { id: 'update', label: 'update (one attribute, session cached)' },
  { id: 'login-old-cookie', label: 'login over an old live cookie' },
  { id: 'logout', label: 'logout' },
  { id: 'cold', label: "cold isolate's first request (a miss)" },
] as const;
type OpId = (typeof OPS)[number]['id'];
/**
 * On the recommended path at RTT 40 ms: flights on the request's path (the figure's value), p50 ÷ RTT (its
 * floor ratio), and, on a figure of its own, the round trips the distance adds ((p50 − local p50) ÷ RTT:
 * what is left once the work that costs the same without distance, such as a new PostgreSQL backend for
 * each client of Miniflare's Hyperdrive, is taken out).
 */
const ROUND_TRIPS: Partial<Record<OpId, number>> = { hit: 0, miss: 1, update: 1, logout: 1, login: 2, cold: 2 };
const P50_PER_RTT: Partial<Record<OpId, number>> = { miss: 1.3, update: 1.3, logout: 1.3, login: 2, cold: 2 };
function goals(op: OpId): GoalSpec[] | undefined {
  const flights = ROUND_TRIPS[op];
  const p50 = P50_PER_RTT[op];
  if (flights === undefined) return undefined;
  return [
    { metric: 'value', cmp: flights === 0 ? '==' : '<=', target: flights },
    ...(p50 === undefined ? [] : [{ metric: 'floor' as const, cmp: '<=' as const, target: p50 }]),
  ];
}

type Fetcher = { fetch(url: string, init?: RequestInit): Promise<Response> };

interface Timing {
  ms: number;
  flights: number;
  closeFlights: number;
  connections: number;
}

export const workers: Section = {
  name: 'workers',
  title: 'Workers in round trips (workerd, delay proxy)',
  async run(ctx) {
    const p = await openPool(ctx.url, 1);
    const schema = await createSchema(ctx.admin, p.db, 'workers');
    await p.close();
    const db = new URL(ctx.url);
    const wsProxy = await startWsProxy({ port: 0 });
    const proxies: Record<PathId, TcpProxy> = {
      hyperdrive: await startTcpProxy({ host: db.hostname, port: Number(db.port || 5432) }, { model: 'hyperdrive' }),
      'hyperdrive-postgres-js': await startTcpProxy({ host: db.hostname, port: Number(db.port || 5432) }, { model: 'hyperdrive' }),
      neon: await startTcpProxy({ port: wsProxy.port }),
      'neon-per-statement': await startTcpProxy({ port: wsProxy.port }),
    };
    /** A Hyperdrive binding's local connection string, through that path's own delay proxy. */
    const hyperdriveUrlOf = (path: 'hyperdrive' | 'hyperdrive-postgres-js') => {
      const url = new URL(ctx.url);
      url.hostname = '127.0.0.1';
      url.port = String(proxies[path].port);
      // Miniflare wants a password in the string; a trusting local PostgreSQL ignores it.
      url.password ||= 'unused';
      return url.toString();
    };
    const script = await bundleWorker(new URL('../lib/workers-app.ts', import.meta.url).pathname, { nodeBuiltins: true });
    const modules = [{ type: 'ESModule' as const, path: 'app.mjs', contents: script }];
    const app = (path: PathId, n: 'a' | 'b') => ({
      name: `${path}-${n}`,
      modules,
      compatibilityDate: COMPATIBILITY_DATE,
      compatibilityFlags: ['nodejs_compat'],
      bindings: { PATH: path, DATABASE_URL: ctx.url, NEON_WS_PROXY: `127.0.0.1:${proxies[path].port}/v2`, SESSION_SCHEMA: schema },
      // Miniflare keys a Hyperdrive binding's local proxy by the binding's name across all workers: one
      // name per connection string, the same two in every worker.
      hyperdrives: { HYPERDRIVE: hyperdriveUrlOf('hyperdrive'), HYPERDRIVE_POSTGRES_JS: hyperdriveUrlOf('hyperdrive-postgres-js') },
      durableObjects: { SESSION_SYNC: { className: 'SessionSyncObject', scriptName: 'sync', useSQLite: true } },
    });
    const mf = new Miniflare({
      workers: [
        ...PATHS.flatMap(({ id }) => [app(id, 'a'), app(id, 'b')]),
        {
          name: 'sync',
          modules,
          compatibilityDate: COMPATIBILITY_DATE,
          compatibilityFlags: ['nodejs_compat'],
          bindings: { SESSION_SCHEMA: schema, DATABASE_URL: ctx.url, NEON_WS_PROXY: `127.0.0.1:${wsProxy.port}/v2` },
          durableObjects: { SESSION_SYNC: { className: 'SessionSyncObject', useSQLite: true } },
        },
      ],
    });
    try {
      await mf.ready;
      const reps = ctx.pick(5, 20);
      const rtt = await measureRtt(ctx, proxies.hyperdrive, hyperdriveUrlOf('hyperdrive'), reps);
      ctx.add({
        id: 'rtt',
        label: `one round trip: SELECT 1 on an open connection through the delay proxy (${ONE_WAY_MS} ms each way)`,
        summary: rtt,
        reference: true,
      });
      const results = new Map<string, Timing[]>();
      const workers = new Map<string, Fetcher>();
      for (const path of PATHS) {
        for (const n of ['a', 'b']) workers.set(`${path.id}-${n}`, (await mf.getWorker(`${path.id}-${n}`)) as unknown as Fetcher);
      }
      /** One round of every operation on one path at one delay; rep < 0 is a warm-up, not recorded. */
      const round = async (path: (typeof PATHS)[number], delay: number, rep: number) => {
        const proxy = proxies[path.id];
        proxy.delayMs = delay;
        const a = workers.get(`${path.id}-a`) as Fetcher;
        const b = workers.get(`${path.id}-b`) as Fetcher;
        const send = async (w: typeof a, jar: CookieJar, method: 'GET' | 'POST', url: string): Promise<Timing> => {
          await sleep(3 * delay + 30); // the previous request's waitUntil work (closes, polls) is over
          proxy.reset();
          const cookie = jar.header();
          const t0 = performance.now();
          const res = await w.fetch(`http://app.test${url}`, { method, headers: cookie ? { cookie } : {} });
          const body = await res.text();
          const ms = performance.now() - t0;
          const timing = { ms, flights: proxy.flights, closeFlights: proxy.closeFlights, connections: proxy.opened };
          if (res.status !== 200) throw new Error(`${path.id} ${method} ${url} answered ${res.status}: ${body}`);
          jar.take(res as unknown as Response);
          return timing;
        };
        const record = (op: OpId, t: Timing) => {
          const key = `${path.id}|${delay}|${op}`;
          results.set(key, [...(results.get(key) ?? []), t]);
        };
        {
          const jar = new CookieJar();
          const timings: [OpId, Timing][] = [];
          timings.push(['login', await send(a, jar, 'POST', `/login?user=bench-${rep}`)]);
          timings.push(['hit', await send(a, jar, 'GET', '/me')]);
          timings.push(['miss', await send(b, jar, 'GET', '/me')]);
          timings.push(['update', await send(a, jar, 'POST', '/theme?theme=dark')]);
          timings.push(['login-old-cookie', await send(a, jar, 'POST', `/login?user=bench-${rep}`)]);
          timings.push(['logout', await send(a, jar, 'POST', '/logout')]);
          const cold = new CookieJar();
          await send(a, cold, 'POST', `/login?user=bench-cold-${rep}`);
          await b.fetch('http://app.test/__bench/cold', { method: 'POST' });
          timings.push(['cold', await send(b, cold, 'GET', '/me')]);
          if (rep >= 0) for (const [op, t] of timings) record(op, t);
        }
      };
      // Rounds interleaved (every path, with and without the delay, in turn) so that all of them see the
      // same load on the machine; one warm-up round each first (module load, first connections).
      for (let rep = -1; rep < reps; rep++) {
        for (const delay of [ONE_WAY_MS, 0]) for (const path of PATHS) await round(path, delay, rep);
        if (rep >= 0 && (rep + 1) % 5 === 0) ctx.log(`   ${rep + 1} of ${reps} rounds`);
      }
      const rows: string[] = [];
      for (const path of PATHS) {
        for (const op of OPS) {
          const local = results.get(`${path.id}|0|${op.id}`) ?? [];
          const localP50 = latencies(local.map((x) => x.ms)).p50 ?? Number.NaN;
          for (const delay of [ONE_WAY_MS, 0]) {
            const t = results.get(`${path.id}|${delay}|${op.id}`) ?? [];
            const flights = median(t.map((x) => x.flights));
            const summary = latencies(t.map((x) => x.ms));
            const where = delay === 0 ? 'local (no delay)' : `RTT ${RTT_MS} ms`;
            const added = ((summary.p50 ?? Number.NaN) - localP50) / (rtt.p50 ?? RTT_MS);
            if (delay !== 0) {
              rows.push(
                `| ${path.id} | ${op.id} | ${flights} | ${median(t.map((x) => x.closeFlights))} | ${median(t.map((x) => x.connections))} | ${fmt(summary.p50)} / ${fmt(summary.p99)} | ${((summary.p50 ?? 0) / (rtt.p50 ?? RTT_MS)).toFixed(2)} | ${added.toFixed(2)} | ${fmt(localP50)} / ${fmt(percentile(Float64Array.from(local.map((x) => x.ms)).sort(), 0.99))} |`,
              );
            }
            ctx.add({
              id: `${path.id}.${op.id}${delay === 0 ? '.local' : ''}`,
              label: `${path.label}: ${op.label}, ${where}`,
              summary,
              value: flights,
              unit: 'flights',
              ...(delay === 0 ? {} : { floor: 'rtt', floorBy: 'p50' as const }),
              ...(delay !== 0 && path.id === RECOMMENDED && goals(op.id) ? { goal: goals(op.id) } : {}),
              note:
                `flights on the path (closes not counted) per round: ${t.map((x) => x.flights).join(' ')}; close flights ${t.map((x) => x.closeFlights).join(' ')}; ` +
                `connections ${t.map((x) => x.connections).join(' ')}` +
                (delay === 0 ? '' : `; distance adds ${added.toFixed(2)} RTT ((p50 − local p50) ÷ RTT)`),
            });
            const target = P50_PER_RTT[op.id];
            if (delay !== 0 && path.id === RECOMMENDED && target !== undefined) {
              ctx.add({
                id: `${path.id}.${op.id}.added`,
                label: `${path.label}: ${op.label}, round trips the distance adds ((p50 − local p50) ÷ RTT)`,
                value: added,
                unit: 'RTT',
                goal: { metric: 'value', cmp: '<=', target },
              });
            }
          }
        }
      }
      ctx.log(
        [
          `round trips at RTT ${RTT_MS} ms (one round trip measured: p50 ${fmt(rtt.p50)}):`,
          '| path | op | flights | close flights | connections | p50 / p99 | p50 ÷ RTT | (p50 − local p50) ÷ RTT | local p50 / p99 |',
          '| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |',
          ...rows,
        ].join('\n'),
      );
    } finally {
      await mf.dispose().catch(() => {});
      for (const proxy of Object.values(proxies)) await proxy.close();
      await wsProxy.close();
      await dropSchema(ctx.admin, schema);
    }
  },
};

const fmt = (ms: number | undefined) => (ms === undefined ? '—' : `${ms.toFixed(ms < 10 ? 1 : 0)} ms`);

/** p50/p99 of single requests; ops/s is left out (one request at a time, not a rate). */
function latencies(ms: number[]): Summary {
  const sorted = Float64Array.from(ms).sort();
  return { ops: undefined as unknown as number, p50: percentile(sorted, 0.5), p99: percentile(sorted, 0.99), samples: [] };
}

/** SELECT 1 on an open node-postgres connection through the proxy: what one round trip costs here. */
async function measureRtt(ctx: BenchContext, proxy: TcpProxy, url: string, reps: number): Promise<Summary> {
  proxy.delayMs = ONE_WAY_MS;
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  try {
    const ms: number[] = [];
    for (let i = 0; i < reps * 2; i++) {
      const t0 = performance.now();
      await c.query('SELECT 1');
      ms.push(performance.now() - t0);
    }
    ctx.log(`   one round trip through the proxy: p50 ${median(ms).toFixed(1)} ms`);
    return latencies(ms);
  } finally {
    await c.end();
  }
}
