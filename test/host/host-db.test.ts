// `neonHostDb` of pg-edge-session/host: Neon's driver is loaded when the host first connects (so the entry
// imports without the optional peer: test-consumers/consumers.test.ts), and every connection of the host
// then works against the real database through the local WebSocket proxy: the listen client (handlers
// given before connect() included), reads over it, the per-statement executor and a cleanup checkout.
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { sql } from 'drizzle-orm';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import ws from 'ws';
import { ConfigError } from '../../src/core/errors.ts';
import { rowsOf } from '../../src/db/executor.ts';
import { neonHostDb } from '../../src/drivers/neon/host-db.ts';
import { neonSettings } from '../../src/drivers/neon/settings.ts';
import { LISTENER_APPLICATION_NAME } from '../../src/host/db.ts';
import { databaseUrl } from '../support/db.ts';

/**
 * Every module `entry` loads through static imports (relative ones followed; package names as written).
 * `import type` is erased from the JavaScript, so it loads nothing.
 */
function staticImports(entry: string): Set<string> {
  const seen = new Set<string>();
  const visit = (file: string) => {
    if (seen.has(file)) return;
    seen.add(file);
    for (const [, spec] of readFileSync(file, 'utf8').matchAll(/^(?:import|export)\s(?!type\s)[^;]*?\sfrom\s+'([^']+)'/gms)) {
      if (spec?.startsWith('.')) visit(join(dirname(file), spec));
      else seen.add(spec as string);
    }
  };
  visit(entry);
  return seen;
}

describe('the pg-edge-session/host entry', () => {
  it("loads neither the middleware nor Neon's driver (static imports)", () => {
    const src = fileURLToPath(new URL('../../src/', import.meta.url));
    const loaded = [...staticImports(join(src, 'host/index.ts'))].map((f) => (f.startsWith(src) ? f.slice(src.length) : f));
    expect(loaded).toContain('host/db.ts');
    expect(loaded).toContain('drivers/neon/host-db.ts');
    const neon = ['index.ts', 'client.ts', 'executor.ts', 'host-connections.ts'].map((f) => `drivers/neon/${f}`);
    for (const never of ['hono.ts', 'neon.ts', ...neon, '@neondatabase/serverless', 'drizzle-orm/neon-serverless']) {
      expect(loaded).not.toContain(never);
    }
    expect(loaded.filter((f) => f.startsWith('middleware/'))).toEqual([]);
  });
});

describe('neonHostDb (pg-edge-session/host)', () => {
  let admin: pg.Pool;
  beforeAll(() => {
    admin = new pg.Pool({ connectionString: databaseUrl(), max: 2 });
  });
  afterAll(async () => {
    await admin.end();
  });

  const hostDb = () =>
    neonHostDb({
      databaseUrl: databaseUrl(),
      settings: neonSettings(`127.0.0.1:${inject('wsProxyPort')}/v2`, { webSocketConstructor: ws }),
    });

  it('refuses a missing databaseUrl at once, with a ConfigError naming it', () => {
    for (const databaseUrl of [undefined, '', 42]) {
      expect(() => neonHostDb({ databaseUrl } as never)).toThrow(ConfigError);
      expect(() => neonHostDb({ databaseUrl } as never)).toThrow(/"databaseUrl"/);
    }
  });

  it('listens (handlers given before connect), reads over the listen client, runs statements and a checkout', async () => {
    const db = hostDb();
    const client = db.newListenClient();
    const channel = `host_db_${Math.random().toString(36).slice(2, 8)}`;
    const notified = new Promise<string>((resolve) => client.on('notification', (msg) => resolve(msg.channel)));
    let ended = false;
    client.on('end', () => {
      ended = true;
    });
    await expect(client.query('SELECT 1')).rejects.toThrow(/not connected/);
    await client.connect();
    try {
      const listeners = await admin.query('SELECT count(*)::int AS n FROM pg_stat_activity WHERE application_name = $1', [
        LISTENER_APPLICATION_NAME,
      ]);
      expect(listeners.rows[0].n).toBeGreaterThanOrEqual(1);
      await client.query(`LISTEN "${channel}"`);
      await admin.query(`SELECT pg_notify($1, '')`, [channel]);
      expect(await notified).toBe(channel);
      const over = rowsOf<{ pid: number }>(await db.overClient(client).execute(sql`SELECT pg_backend_pid() AS pid`))[0]?.pid;
      const pooled = rowsOf<{ pid: number }>(await db.pool.execute(sql`SELECT pg_backend_pid() AS pid`))[0]?.pid;
      expect(typeof over).toBe('number');
      expect(typeof pooled).toBe('number');
      // The pool's statement ran on a connection of its own, not on the listen client's.
      expect(pooled).not.toBe(over);
      const { db: conn, release } = await db.checkout();
      const checked = rowsOf<{ app: string }>(await conn.execute(sql`SELECT current_setting('application_name') AS app`))[0]?.app;
      release();
      expect(checked).toBe('pg-edge-session-cleanup');
    } finally {
      await client.end();
      await db.end();
    }
    await expect.poll(() => ended).toBe(true);
  });
});
