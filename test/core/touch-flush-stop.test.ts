// startBackgroundTasks()'s stop function hands the touches back to the manager (README.md, "Using it": on
// Node it writes them on its own timer): touches its interval had not written yet are written within
// lastAccessUpdateInterval of the stop, with no other call. Before, they waited for close(): the stopped
// timer had taken them, and the pending run they were in armed no timer of the manager's own. Real
// PostgreSQL over node-postgres.
import { drizzle } from 'drizzle-orm/node-postgres';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SessionManager } from '../../src/core/manager.ts';
import { migrate } from '../../src/migrate.ts';
import { databaseUrl, dropSchema, uniqueSchema } from '../support/db.ts';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('after startBackgroundTasks() is stopped', () => {
  let pool: pg.Pool;
  let schemaName: string;
  beforeAll(async () => {
    pool = new pg.Pool({ connectionString: databaseUrl(), max: 3 });
    schemaName = uniqueSchema('touch_stop');
    await migrate(drizzle(pool), { schemaName });
  });
  afterAll(async () => {
    await dropSchema(pool, schemaName);
    await pool.end();
  });

  it('the touches its timer left pending are written by the manager within lastAccessUpdateInterval', async () => {
    const manager = new SessionManager(drizzle(pool), { schemaName, lastAccessUpdateInterval: 500 });
    try {
      const stop = manager.startBackgroundTasks();
      const { session, token } = await manager.createSession('stopped-tasks');
      await sleep(20);
      expect(await manager.getSession(token)).not.toBeNull(); // a cache hit: its access held in memory
      stop(); // before the tasks' interval wrote it
      expect(manager.pendingTouchCount).toBe(1);
      await sleep(50);
      expect(await manager.getSession(token)).not.toBeNull(); // the same pending run: starts no new one
      let written = false;
      for (let i = 0; i < 40 && !written; i++) {
        await sleep(100); // up to 4 s: eight intervals
        const r = await pool.query(`SELECT last_accessed > created_at AS moved FROM "${schemaName}".sessions WHERE id = $1`, [session.id]);
        written = r.rows[0].moved;
      }
      expect(written).toBe(true);
      expect(manager.pendingTouchCount).toBe(0);
    } finally {
      await manager.close();
    }
  });
});
