// Memory: retained heap per cached session (small attributes), measured after forced GC in a child
// process so the harness's own heap does not blur it.
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';
import type { Section } from '../lib/context.ts';
import { summarize } from '../lib/measure.ts';

const run = promisify(execFile);

async function measure(n: number, reps: number, touch: boolean): Promise<{ bytesPerSession: number[]; weightPerSession: number[] }> {
  const child = join(import.meta.dirname, '..', 'lib', 'memory-child.ts');
  const args = ['--expose-gc', '--import', 'tsx', child, String(n), String(reps), ...(touch ? ['--touch'] : [])];
  const { stdout } = await run(process.execPath, args, { cwd: join(import.meta.dirname, '..', '..'), maxBuffer: 1 << 20 });
  return JSON.parse(stdout.trim().split('\n').at(-1) ?? '{}') as { bytesPerSession: number[]; weightPerSession: number[] };
}

async function measureWorker(n: number, reps: number): Promise<number[]> {
  const child = join(import.meta.dirname, '..', 'lib', 'worker-memory-child.ts');
  const { stdout } = await run(process.execPath, ['--expose-gc', '--import', 'tsx', child, String(n), String(reps)], {
    cwd: join(import.meta.dirname, '..', '..'),
    maxBuffer: 1 << 20,
  });
  return (JSON.parse(stdout.trim().split('\n').at(-1) ?? '{}') as { bytesPerTouch: number[] }).bytesPerTouch;
}

export const memory: Section = {
  name: 'memory',
  title: 'Memory',
  async run(ctx) {
    const n = ctx.pick(10_000, 100_000);
    for (const touch of [false, true]) {
      const { bytesPerSession: bytes, weightPerSession } = await measure(n, ctx.reps, touch);
      ctx.log(`  ${touch ? 'with' : 'without'} touches: ${bytes.map((b) => b.toFixed(0)).join(', ')} bytes per session`);
      const s = summarize(bytes.map((b) => ({ ops: b, count: n, durationMs: 0 })));
      ctx.add({
        id: touch ? 'bytes-per-session-touched' : 'bytes-per-session',
        label: `heap per cached session, ${n.toLocaleString('en-US')} cached (${touch ? 'getSession with touches: cache + pending touch' : 'cache only, touch: false'})`,
        value: s.ops,
        unit: 'bytes',
        note: touch ? undefined : 'token string, record, attribute map, id index and LRU bookkeeping; 4 small attributes',
      });
      if (!touch) {
        // cacheMaxBytes counts each session's estimated weight: it must not be below what the session takes.
        const weight = weightPerSession[0] ?? 0;
        ctx.add({
          id: 'weight-per-session',
          label: 'estimated weight per cached session (what cacheMaxBytes counts)',
          value: weight,
          unit: 'bytes',
          note: `${(weight / s.ops).toFixed(2)}x the measured heap (at least 1 keeps the byte bound an upper bound)`,
        });
      }
    }
    const touches = 100_000;
    const perTouch = await measureWorker(touches, ctx.reps);
    const t = summarize(perTouch.map((b) => ({ ops: b, count: touches, durationMs: 0 })));
    ctx.add({
      id: 'worker-pending-touches',
      label: `worker heap for ${touches.toLocaleString('en-US')} pending touches (distinct sessions)`,
      value: (t.ops * touches) / (1024 * 1024),
      unit: 'MiB',
      note: `${t.ops.toFixed(0)} bytes per pending touch (the TouchBuffer's Map of id → ms), after forced GC`,
    });
  },
};
