// Run with --expose-gc: retained heap of the worker's touch buffer holding N pending touches (distinct
// sessions), measured after forced GC. Prints one JSON line { bytesPerTouch: number[] }.
// With `--rss <database url> <schema>`: the sync worker (startWorker) started on that schema's tables,
// its first cleanup run and a touch flush done, then its RSS and heap after forced GC. The worker caches no
// session, so what it holds must not follow the table's size. Prints { rss: number, heapUsed: number }.

import type { Store } from '../../src/db/store.ts';
import { TouchBuffer } from '../../src/host/touches.ts';
import { startWorker } from '../../worker/main.ts';
import { createMetrics } from '../../worker/metrics.ts';

const gcOf = (globalThis as { gc?: () => void }).gc;
if (process.argv[2] === '--rss') {
  if (!gcOf) throw new Error('run with --expose-gc');
  const [databaseUrl, schemaName] = process.argv.slice(3);
  if (databaseUrl === undefined || schemaName === undefined) throw new Error('usage: --rss <database url> <schema>');
  const worker = await startWorker({ databaseUrl, schemaName, insecureDev: true, port: 0, log: 'silent' });
  await worker.ready();
  await worker.runCleanup();
  await worker.flushTouches();
  gcOf();
  gcOf();
  const m = process.memoryUsage();
  await worker.close();
  process.stdout.write(`${JSON.stringify({ rss: m.rss, heapUsed: m.heapUsed })}\n`);
  process.exit(0);
}

const n = Number(process.argv[2] ?? 100_000);
const reps = Number(process.argv[3] ?? 3);
const gc = (globalThis as { gc?: () => void }).gc;
if (!gc) throw new Error('run with --expose-gc');
const out: number[] = [];
let keep: TouchBuffer | undefined;
for (let r = 0; r <= reps; r++) {
  keep = undefined;
  const buffer = new TouchBuffer({} as Store, 5000, 10_000_000, 0, createMetrics(), () => {});
  gc();
  gc();
  const before = process.memoryUsage().heapUsed;
  // As from POST bodies: fresh id strings in batches of 20,000; only what the buffer keeps survives.
  for (let i = 0; i < n; i += 20000) {
    const pairs: [string, number][] = [];
    for (let j = i; j < Math.min(n, i + 20000); j++) pairs.push([crypto.randomUUID(), Date.now() + j]);
    // Parsed like a request body (crypto.randomUUID's own strings are much heavier than parsed ones).
    buffer.add(JSON.parse(JSON.stringify(pairs)) as [string, number][]);
  }
  gc();
  gc();
  const after = process.memoryUsage().heapUsed;
  if (buffer.size !== n) throw new Error('not all touches were kept');
  keep = buffer;
  if (r > 0) out.push((after - before) / n); // rep 0 warms up
  void keep;
}
process.stdout.write(`${JSON.stringify({ bytesPerTouch: out })}\n`);
