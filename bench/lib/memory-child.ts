// Runs in its own process (`node --expose-gc --import tsx`): fills a SessionManager's cache through real
// getSession misses and prints the retained heap per cached session as JSON. The database is a stub that
// answers every read with a fresh row, shaped as the library's read statement returns it (memory, not
// I/O, is measured here).
import type { SQL } from 'drizzle-orm';
import { SessionManager } from '../../src/core/manager.ts';
import { generateToken } from '../../src/core/token.ts';
import { STORED_ATTRIBUTES_JSON } from './seed.ts';

const [n = 20_000, reps = 3] = process.argv.slice(2).map(Number);
const touch = process.argv.includes('--touch');
const gc = (globalThis as { gc?: () => void }).gc;
if (gc === undefined) throw new Error('run with --expose-gc');

let k = 0;
const stub = {
  execute(_q: SQL) {
    const now = Date.now();
    k++;
    // What a driver hands back for the read (SELECT session_get(...)::text AS s): the row's json as text.
    return Promise.resolve({
      rows: [
        {
          s: JSON.stringify({
            id: crypto.randomUUID(),
            user_id: `user-${k}`,
            group_id: null,
            attributes: JSON.parse(STORED_ATTRIBUTES_JSON),
            version: 1,
            created_at: now,
            updated_at: now,
            last_accessed: now,
            expires_at: now + 30 * 86_400_000,
          }),
          uncacheable: true,
        },
      ],
    });
  },
};

const settle = () => {
  for (let i = 0; i < 4; i++) gc();
  return process.memoryUsage().heapUsed;
};

async function fill(manager: SessionManager, count: number): Promise<void> {
  // Fresh token strings, as cookies of separate requests would be: the cache holds the only reference.
  for (let i = 0; i < count; i++) await manager.getSession(generateToken(), { touch });
}

// Warm up the code paths (JIT, module state) outside the measurement.
await fill(new SessionManager(stub, { cacheSize: 1000, maxStaleness: 3_600_000 }), 2000);

const results: number[] = [];
/** What the cache's byte bound counts per session (SessionRecord.size, from recordWeight). */
const weights: number[] = [];
for (let r = 0; r < reps; r++) {
  const before = settle();
  // The byte bound (cacheMaxBytes) is set out of the way: this measures what n cached sessions take.
  let manager: SessionManager | undefined = new SessionManager(stub, { cacheSize: n, cacheMaxBytes: n * 65536, maxStaleness: 3_600_000 });
  await fill(manager, n);
  const after = settle();
  if (manager.cache.size !== n) throw new Error(`cache holds ${manager.cache.size} of ${n}`);
  results.push((after - before) / n);
  weights.push(manager.cache.bytes / n);
  manager = undefined;
  settle();
}
process.stdout.write(`${JSON.stringify({ n, touch, bytesPerSession: results, weightPerSession: weights })}\n`);
