// The worker as users run it (the CLI, a real child process) with managers in other processes.

import { fileURLToPath } from 'node:url';
import { drizzle } from 'drizzle-orm/node-postgres';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type ManagerProcess, startManagerProcess, startWorkerProcess, type WorkerProcess } from '../../harness/worker-process.ts';
import { SessionManager } from '../../src/core/manager.ts';
import { migrate } from '../../src/migrate.ts';
import type { FeedResponse } from '../../src/protocol.ts';
import { databaseUrl, dropSchema, uniqueSchema } from '../support/db.ts';

const SECRET = 'process-secret-0123456789-abcdefghijklmnop';
const auth = { authorization: `Bearer ${SECRET}` };

function percentile(xs: number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))] as number;
}

describe('worker process and manager processes', () => {
  let admin: pg.Pool;
  let schemaName: string;
  let manager: SessionManager;
  const workers: WorkerProcess[] = [];
  const managers: ManagerProcess[] = [];

  const workerEnv = (extra: Record<string, string> = {}) => ({
    DATABASE_URL: databaseUrl(),
    PG_EDGE_SESSION_SECRET: SECRET,
    PG_EDGE_SESSION_SCHEMA: schemaName,
    PORT: '0',
    PG_EDGE_SESSION_CLEANUP_INTERVAL: '3600000',
    ...extra,
  });
  const startW = async (extra: Record<string, string> = {}, args: string[] = []) => {
    const w = await startWorkerProcess(args, workerEnv(extra));
    workers.push(w);
    return w;
  };
  const feed = async (url: string, after?: string) =>
    (await (
      await fetch(`${url}/v1/changes${after ? `?after=${encodeURIComponent(after)}` : ''}`, {
        headers: auth,
        signal: AbortSignal.timeout(5000),
      })
    ).json()) as FeedResponse;
  const lastAccessed = async (id: string) =>
    (
      await admin.query(`SELECT (extract(epoch from last_accessed) * 1000)::float8 AS t FROM "${schemaName}"."sessions" WHERE id = $1`, [
        id,
      ])
    ).rows[0]?.t as number;

  beforeAll(async () => {
    admin = new pg.Pool({ connectionString: databaseUrl(), max: 4 });
    schemaName = uniqueSchema('wproc');
    await migrate(drizzle(admin), { schemaName });
    manager = new SessionManager(drizzle(admin), { schemaName });
  });
  afterAll(async () => {
    for (const m of managers) await m.close();
    for (const w of workers) {
      w.kill('SIGKILL');
      await w.exited;
    }
    await dropSchema(admin, schemaName);
    await admin.end();
  });

  it('an update or delete in process A evicts the cache of B (stream) and C (poll); reports commit → eviction latency', async () => {
    const w = await startW();
    const env = { DATABASE_URL: databaseUrl(), SCHEMA: schemaName, WORKER_URL: w.url, SECRET };
    const a = await startManagerProcess(env);
    const b = await startManagerProcess({ ...env, SYNC_MODE: 'stream' });
    const c = await startManagerProcess({ ...env, SYNC_MODE: 'poll', SYNC_INTERVAL: '100' });
    managers.push(a, b, c);
    // Each sync client's first answer is a reset (it clears its cache): wait for it before measuring.
    for (const proc of [b, c]) {
      const deadline = Date.now() + 10000;
      while (!proc.events.some((e) => e.type === 'applied' && e.reset === true) && Date.now() < deadline)
        await new Promise((r) => setTimeout(r, 20));
    }
    const latencies: Record<'stream' | 'poll', number[]> = { stream: [], poll: [] };
    const rounds = 25;
    for (let i = 0; i < rounds; i++) {
      const { id, token } = await a.call<{ id: string; token: string }>('create', { userId: `proc-${i}`, attributes: { n: 0 } });
      // Precondition: both caches hold the session (a feed reset, e.g. a client's first poll, may
      // clear a cache right after a read: read again until it sticks).
      for (const proc of [b, c]) {
        const deadline = Date.now() + 3000;
        do expect(await proc.call('get', { token })).toMatchObject({ id, attributes: { n: 0 } });
        while (!(await proc.call('cached', { id })) && Date.now() < deadline);
        expect(await proc.call('cached', { id })).toBe(true);
      }
      const marks = [b.events.length, c.events.length];
      const { committedAt } =
        i % 5 === 4
          ? await a.call<{ committedAt: number }>('delete', { token })
          : await a.call<{ committedAt: number }>('update', { token, set: { n: i + 1 } });
      for (const [proc, mode, mark] of [
        [b, 'stream', marks[0]],
        [c, 'poll', marks[1]],
      ] as const) {
        const deadline = Date.now() + 5000;
        let ev: { at: number } | undefined;
        while (Date.now() < deadline) {
          ev = proc.events.slice(mark).find((e) => e.type === 'applied' && ((e.ids as string[]).includes(id) || e.reset === true)) as
            | { at: number }
            | undefined;
          if (ev) break;
          await new Promise((r) => setTimeout(r, 5));
        }
        expect(ev, `${mode} eviction of round ${i}`).toBeDefined();
        latencies[mode].push(Math.max(0, (ev as { at: number }).at - committedAt));
        expect(await proc.call('cached', { id })).toBe(false);
        const now = await proc.call<{ attributes: { n: number } } | null>('get', { token });
        if (i % 5 === 4) expect(now).toBeNull();
        else expect(now?.attributes.n).toBe(i + 1);
      }
    }
    const summary = Object.fromEntries(
      Object.entries(latencies).map(([k, v]) => [
        k,
        { n: v.length, p50ms: +percentile(v, 50).toFixed(1), p99ms: +percentile(v, 99).toFixed(1) },
      ]),
    );
    console.log(`[worker-process] commit → eviction in another process: ${JSON.stringify(summary)}`);
    expect(latencies.stream.length).toBe(rounds);
  });

  it('after the worker is SIGKILLed and restarted, an old cursor still gets every change (none missing)', async () => {
    const w1 = await startW();
    const sessions = await Promise.all(Array.from({ length: 10 }, (_, i) => manager.createSession(`kill-${i}`, {})));
    const c0 = (await feed(w1.url)).cursor;
    w1.kill('SIGKILL');
    await w1.exited;
    for (const s of sessions) {
      s.session.set('k', 1);
      await manager.updateSession(s.session);
    }
    const w2 = await startW();
    const page = await feed(w2.url, c0);
    expect(page.reset).toBe(false);
    expect([...page.ids].sort()).toEqual(sessions.map((s) => s.session.id).sort());
  });

  // The README's supervisor section: the supervisor signals the one process it started (Docker's PID 1,
  // systemd's main PID), so that process must be Node: `node <bin>` (or the bin itself, whose shebang execs
  // node), or a shell entrypoint that `exec`s it. Only that PID is signalled here, never the group.
  it.each([
    ['node as the process', [process.execPath, 'worker/bin.mjs']],
    ['a shell entrypoint that execs it', ['/bin/sh', '-c', `exec "${process.execPath}" worker/bin.mjs`]],
  ])('SIGTERM to the supervised process (%s) flushes pending touches and exits 0', async (_how, command) => {
    const w = await startSupervised(command as string[], workerEnv({ PG_EDGE_SESSION_FLUSH_INTERVAL: '3600000' }));
    const s = await manager.createSession('term-1', {});
    // After the creation, not after the worker's clock (it clamps touches from the future).
    await new Promise((r) => setTimeout(r, 50));
    const at = Date.now();
    const r = await fetch(`${w.url}/v1/touches`, {
      method: 'POST',
      headers: auth,
      body: JSON.stringify({ touches: [[s.session.id, at]] }),
    });
    expect(r.status).toBe(200);
    expect(await lastAccessed(s.session.id)).toBeLessThan(at);
    w.proc.kill('SIGTERM'); // the PID only, as a supervisor does
    expect(await w.exited).toEqual({ code: 0, signal: null });
    expect(await lastAccessed(s.session.id)).toBe(at);
    expect(w.logs.join('\n')).toContain('"signal":"SIGTERM"');
    expect(w.logs.join('\n')).not.toContain(SECRET);
  });

  it('SIGKILL loses at most the touches of the pending interval, nothing else', async () => {
    const w = await startW({ PG_EDGE_SESSION_FLUSH_INTERVAL: '200' });
    const s1 = await manager.createSession('killtouch-1', {});
    const s2 = await manager.createSession('killtouch-2', {});
    await new Promise((r) => setTimeout(r, 50));
    const t1 = Date.now() - 10;
    await fetch(`${w.url}/v1/touches`, { method: 'POST', headers: auth, body: JSON.stringify({ touches: [[s1.session.id, t1]] }) });
    const deadline = Date.now() + 5000;
    while (Date.now() < deadline && (await lastAccessed(s1.session.id)) !== t1) await new Promise((r) => setTimeout(r, 50));
    expect(await lastAccessed(s1.session.id)).toBe(t1);
    const before2 = await lastAccessed(s2.session.id);
    await fetch(`${w.url}/v1/touches`, { method: 'POST', headers: auth, body: JSON.stringify({ touches: [[s2.session.id, t1 + 1]] }) });
    w.kill('SIGKILL');
    await w.exited;
    // The flushed touch stays; the pending one may be lost (at most the pending interval), and the
    // sessions themselves are untouched otherwise.
    expect(await lastAccessed(s1.session.id)).toBe(t1);
    expect([before2, t1 + 1]).toContain(await lastAccessed(s2.session.id));
    expect(await manager.getSession(s1.token, { forceRefresh: true })).not.toBeNull();
  });

  it('the CLI prints --help and refuses to start without a secret', async () => {
    const { spawnSync } = await import('node:child_process');
    const help = spawnSync(process.execPath, ['worker/bin.mjs', '--help'], { encoding: 'utf8' });
    expect(help.status).toBe(0);
    expect(help.stdout).toContain('--insecure-dev');
    const env = { ...process.env, DATABASE_URL: databaseUrl(), PG_EDGE_SESSION_SECRET: '' };
    const noSecret = spawnSync(process.execPath, ['worker/bin.mjs'], { encoding: 'utf8', env });
    expect(noSecret.status).toBe(2);
    expect(noSecret.stderr).toContain('secret');
  });
});

/** The worker started as a supervisor starts it: `command` is the one process it will signal. */
async function startSupervised(command: string[], env: Record<string, string>) {
  const { spawn } = await import('node:child_process');
  const [cmd, ...args] = command as [string, ...string[]];
  const proc = spawn(cmd, args, {
    cwd: fileURLToPath(new URL('../..', import.meta.url)),
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const logs: string[] = [];
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((r) =>
    proc.on('exit', (code, signal) => r({ code, signal })),
  );
  let buf = '';
  const ready = new Promise<string>((resolve, reject) => {
    const onData = (d: Buffer) => {
      buf += d.toString();
      const lines = buf.split('\n');
      buf = lines.pop() ?? '';
      logs.push(...lines);
      const listening = logs.find((l) => l.includes('"msg":"worker listening"'));
      if (listening && logs.some((l) => l.includes('"msg":"listener ready"'))) resolve(JSON.parse(listening).url as string);
    };
    proc.stdout?.on('data', onData);
    proc.stderr?.on('data', onData);
    void exited.then((e) => reject(new Error(`worker exited (${JSON.stringify(e)}) before it was ready:\n${logs.join('\n')}`)));
  });
  const url = await ready;
  return { url, proc, logs, exited };
}
