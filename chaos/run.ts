// Entry of `npm run chaos`: tsx chaos/run.ts [--duration=SECONDS] [--seed=N] [--json=path]
// Runs the chaos test (chaos/runner.ts), prints the summary, writes the history and the summary as JSON
// when asked, and exits 1 when a violation was found.
import { writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { emergencyCleanup, runChaos } from './runner.ts';
import { FAULT_KINDS, type FaultKind } from './types.ts';

const { values } = parseArgs({
  options: {
    duration: { type: 'string' },
    seed: { type: 'string' },
    json: { type: 'string' },
    faults: { type: 'string' },
    help: { type: 'boolean' },
  },
  strict: true,
});
if (values.help) {
  process.stdout.write(
    `Usage: tsx chaos/run.ts [--duration=SECONDS (default 60)] [--seed=N] [--json=path] [--faults=kind,kind (default all: ${FAULT_KINDS.join(',')})]\n`,
  );
  process.exit(0);
}
const duration = Number(values.duration ?? 60);
const seed = values.seed === undefined ? Date.now() % 2 ** 31 : Number(values.seed);
if (!Number.isFinite(duration) || duration <= 0 || !Number.isInteger(seed) || seed < 0) {
  process.stderr.write('chaos: --duration must be a positive number of seconds and --seed a non-negative integer\n');
  process.exit(2);
}

const faultKinds = values.faults?.split(',').map((k) => k.trim()) as FaultKind[] | undefined;
const unknown = faultKinds?.filter((k) => !FAULT_KINDS.includes(k));
if (unknown && unknown.length > 0) {
  process.stderr.write(`chaos: unknown fault kind(s) ${unknown.join(', ')}; known: ${FAULT_KINDS.join(', ')}\n`);
  process.exit(2);
}

let interrupted = false;
for (const sig of ['SIGINT', 'SIGTERM'] as const) {
  process.once(sig, () => {
    interrupted = true;
    process.stderr.write(`chaos: ${sig}, stopping every process of the run\n`);
    void emergencyCleanup().finally(() => process.exit(130));
  });
}

const t0 = Date.now();
try {
  const r = await runChaos({
    durationMs: duration * 1000,
    seed,
    faultKinds,
    log: (l) => process.stderr.write(`[chaos +${((Date.now() - t0) / 1000).toFixed(1)}s] ${l}\n`),
  });
  r.summary.seed = seed;
  if (values.json) {
    writeFileSync(values.json, JSON.stringify({ summary: r.summary, history: r.history }));
    process.stderr.write(`chaos: wrote ${values.json}\n`);
  }
  process.stdout.write(`\n${r.text.replace(/^chaos run:/, `chaos run (seed ${seed}):`)}\n`);
  process.exit(r.check.violations.length === 0 ? 0 : 1);
} catch (e) {
  if (!interrupted) {
    process.stderr.write(`chaos: run failed: ${(e as Error)?.stack ?? e}\n`);
    process.exit(2);
  }
}
