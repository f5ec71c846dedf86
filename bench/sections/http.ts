// HTTP: requests per second of the same handler (find the user, answer { user }) through
// @hono/node-server with no session (the floor), Hono + this middleware on a cache hit, and
// express + express-session + connect-pg-simple (the peer). Each server runs in its own process;
// autocannon drives it from this one (32 connections).
import { type ChildProcess, spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import autocannon from 'autocannon';
import type { Section } from '../lib/context.ts';
import { createSchema, dropSchema, openPool } from '../lib/db.ts';
import { interleave, type Sample } from '../lib/measure.ts';
import { createPeerTable } from '../lib/peer.ts';

const root = fileURLToPath(new URL('../..', import.meta.url));

interface Server {
  port: number;
  cookie: string | undefined;
  proc: ChildProcess;
}

async function startServer(mode: string, url: string, schema: string): Promise<Server> {
  const proc = spawn(process.execPath, ['--import', 'tsx', `${root}bench/lib/http-server.ts`, mode, url, schema], {
    cwd: root,
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  let cookie: string | undefined;
  const port = await new Promise<number>((resolve, reject) => {
    let buf = '';
    proc.stdout?.on('data', (d: Buffer) => {
      buf += d.toString();
      const c = /cookie (.*)\n/.exec(buf);
      if (c) cookie = c[1];
      const m = /listening (\d+)\n/.exec(buf);
      if (m) resolve(Number(m[1]));
    });
    proc.on('exit', (code) => reject(new Error(`${mode} server exited with ${code}`)));
  });
  return { port, cookie, proc };
}

async function load(s: Server, durationSec: number): Promise<Sample> {
  const r = await autocannon({
    url: `http://127.0.0.1:${s.port}/me`,
    connections: 32,
    duration: durationSec,
    headers: s.cookie ? { cookie: s.cookie } : {},
  });
  if (r.non2xx > 0 || r.errors > 0) throw new Error(`autocannon: ${r.non2xx} non-2xx, ${r.errors} errors`);
  return { ops: r.requests.average, p50: r.latency.p50, p99: r.latency.p99, count: r.requests.total, durationMs: durationSec * 1000 };
}

export const http: Section = {
  name: 'http',
  title: 'HTTP: Hono + middleware vs bare Hono vs express-session + connect-pg-simple',
  async run(ctx) {
    const p = await openPool(ctx.url, 2);
    const schema = await createSchema(ctx.admin, p.db, 'http');
    await createPeerTable(ctx.admin, schema);
    const servers: Server[] = [];
    try {
      const [bare, hono, exp] = [
        await startServer('bare', ctx.url, schema),
        await startServer('hono', ctx.url, schema),
        await startServer('express', ctx.url, schema),
      ];
      servers.push(bare, hono, exp);
      const secs = ctx.pick(2, 10);
      const contestant = (id: string, s: Server) => ({ id, warmup: () => load(s, 1), run: () => load(s, secs) });
      const r = await interleave([contestant('bare', bare), contestant('hono', hono), contestant('express', exp)], ctx.reps, ctx.log);
      const sum = (id: string) => {
        const s = r.get(id) ?? [];
        const med = (k: 'ops' | 'p50' | 'p99') => [...s.map((x) => x[k] as number)].sort((a, b) => a - b)[s.length >> 1] as number;
        return { ops: med('ops'), p50: med('p50'), p99: med('p99'), samples: s };
      };
      ctx.add({
        id: 'bare',
        label: 'bare Hono (@hono/node-server): reads the cookie, no session lookup',
        summary: sum('bare'),
        reference: true,
      });
      ctx.add({
        id: 'express',
        label: 'express + express-session + connect-pg-simple',
        summary: sum('express'),
        reference: true,
        note: 'every request reads the session from PostgreSQL (and express-session touches it)',
      });
      ctx.add({
        id: 'hono',
        label: 'Hono + sessionMiddleware, cache hit',
        summary: sum('hono'),
        floor: 'bare',
        peer: 'express',
        goal: [
          { metric: 'floor', cmp: '>=', target: 0.8 },
          { metric: 'peer', cmp: '>=', target: 3 },
        ],
        note: `autocannon, 32 connections, ${secs} s per repetition; servers in their own processes (2 cores shared with the load generator)`,
      });
    } finally {
      for (const s of servers) s.proc.kill('SIGKILL');
      await dropSchema(ctx.admin, schema);
      await p.close();
    }
  },
};
