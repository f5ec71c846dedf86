// A manager process for cross-process tests: SessionManager + SyncClient, commands over IPC.
import { drizzle } from 'drizzle-orm/node-postgres';
import pg from 'pg';
import { SessionManager } from '../src/core/manager.ts';
import { SyncClient } from '../src/sync/client.ts';

const env = process.env;
const pool = new pg.Pool({ connectionString: env.DATABASE_URL, max: 4 });
const manager = new SessionManager(drizzle(pool), { schemaName: env.SCHEMA, maxStaleness: Number(env.MAX_STALENESS ?? 1000) });
const now = () => performance.timeOrigin + performance.now();
const sync = env.WORKER_URL
  ? new SyncClient(manager, {
      workerUrl: env.WORKER_URL,
      secret: env.SECRET,
      mode: (env.SYNC_MODE as 'poll' | 'stream') ?? 'stream',
      syncInterval: Number(env.SYNC_INTERVAL ?? 250),
      onApply: ({ ids, reset, source }) => {
        if (ids.length > 0 || reset) process.send?.({ type: 'applied', ids, reset, source, at: now() });
      },
    })
  : undefined;
sync?.start();
let pollTimer: ReturnType<typeof setInterval> | undefined;
if (sync && env.SYNC_MODE === 'poll') pollTimer = setInterval(() => void sync.sync(), Number(env.SYNC_INTERVAL ?? 250));

const handlers: Record<string, (a: Record<string, unknown>) => Promise<unknown> | unknown> = {
  ping: () => 'pong',
  create: async (a) => {
    const { session, token } = await manager.createSession(String(a.userId), (a.attributes as Record<string, unknown>) ?? {});
    return { id: session.id, token };
  },
  /** Reads through the cache; reports whether it was a hit (no statement) and the attributes. */
  get: async (a) => {
    const s = await manager.getSession(String(a.token));
    return s === null ? null : { id: s.id, attributes: s.toObject(), version: s.version };
  },
  cached: (a) => manager.cache.ids().includes(String(a.id)),
  update: async (a) => {
    const s = await manager.getSession(String(a.token), { forceRefresh: true });
    if (s === null) throw new Error('no session');
    for (const [k, v] of Object.entries(a.set as Record<string, unknown>)) s.set(k, v);
    await manager.updateSession(s);
    return { committedAt: now() };
  },
  delete: async (a) => {
    await manager.deleteSession(String(a.token));
    return { committedAt: now() };
  },
  syncNow: async () => {
    await sync?.sync();
    return sync?.cursor;
  },
  freshAsOf: () => manager.cache.freshAsOf,
  close: async () => {
    clearInterval(pollTimer);
    sync?.stop();
    await pool.end();
    return true;
  },
};

process.on('message', async (m: { id: number; cmd: string; args: Record<string, unknown> }) => {
  try {
    const h = handlers[m.cmd];
    if (!h) throw new Error(`unknown command ${m.cmd}`);
    process.send?.({ id: m.id, ok: true, value: await h(m.args) });
  } catch (e) {
    process.send?.({ id: m.id, ok: false, error: (e as Error).message });
  }
});
